package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// TestSlowTargetDoesNotStarveOthers: a receiver that hangs (or a vendor's rate limit) holds
// at most 2×PerTarget−1 of the engine's workers; another endpoint's changes, made after a
// backlog for the slow one, are delivered at once.
func TestSlowTargetDoesNotStarveOthers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.clock.mu.Lock()
		e.clock.real = true
		e.clock.mu.Unlock()
		release := make(chan struct{})
		var inFlight, most atomic.Int32
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer slow.Close()
		fast := newReceiver(t)
		e.endpoint(t, slow.URL, webhook.Input{Purposes: []string{"personalisation"}})
		_, fast.secret = e.endpoint(t, fast.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})

		for i := range 20 {
			e.recordCustomer(t, fmt.Sprintf("SLOW-%d", i), grant("personalisation"))
		}
		engine := integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{Workers: 8, PerTarget: 2,
			Poll: 50 * time.Millisecond, Jitter: func(d time.Duration) time.Duration { return d }})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); engine.Run(ctx) }()
		defer func() { close(release); cancel(); wg.Wait() }()

		deadline := time.Now().Add(3 * time.Second)
		for inFlight.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // the slow receiver has its share of the workers
		}
		for i := range 5 {
			e.recordCustomer(t, fmt.Sprintf("FAST-%d", i), grant("marketing_email"))
		}
		engine.Wake()
		deadline = time.Now().Add(3 * time.Second)
		for len(fast.messages()) < 5 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := len(fast.messages()); n != 5 {
			t.Fatalf("the fast endpoint got %d of 5 changes while the slow one hung", n)
		}
		if m := most.Load(); m > 3 {
			t.Fatalf("the slow endpoint held %d workers at once, want at most 3", m)
		}
	})
}
