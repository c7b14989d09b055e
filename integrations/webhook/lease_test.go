package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// TestAttemptEndsWithItsLease: an attempt still retrying when its lease runs out must not
// send any more. Here a grant's attempt meets a slow 502 and retries in the call; its lease
// runs out meanwhile, so another instance supersedes it and delivers the withdrawal that
// followed. A retry of the grant sent after that would leave the receiver believing the
// person grants.
func TestAttemptEndsWithItsLease(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		var accepted []string // decisions the receiver accepted, in order
		grantCalls := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			b, _ := io.ReadAll(req.Body)
			var env struct{ Data integrations.ConsentUpdated }
			_ = json.Unmarshal(b, &env)
			if env.Data.Decision == consent.Granted {
				mu.Lock()
				grantCalls++
				n := grantCalls
				mu.Unlock()
				if n <= 2 {
					time.Sleep(600 * time.Millisecond) // a slow gateway
					w.WriteHeader(http.StatusBadGateway)
					return
				}
			}
			mu.Lock()
			accepted = append(accepted, env.Data.Decision)
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		client := safehttp.New(safehttp.Options{AllowPrivate: true})
		hooks := webhook.New(e.db, e.keys, e.svc, e.clock.Now, webhook.Options{Client: client, Timeout: 5 * time.Second,
			InCallRetries: 2, InCallWait: 200 * time.Millisecond})
		engine := func() *integrations.Engine {
			return integrations.New(e.db, e.svc, hooks, hooks, e.clock.Now, integrations.Options{Lease: time.Second,
				Jitter: func(d time.Duration) time.Duration { return d }})
		}
		a, b := engine(), engine()
		e.endpoint(t, srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})

		e.recordCustomer(t, "L-1", grant("marketing_email"))
		if _, err := a.FanOut(context.Background()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := a.DeliverDue(context.Background()); done <- err }()
		e.recordCustomer(t, "L-1", withdraw("marketing_email"))
		time.Sleep(1100 * time.Millisecond) // past the lease, in real time
		e.clock.Add(1100 * time.Millisecond)
		if err := b.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(accepted) == 0 || accepted[len(accepted)-1] != consent.Withdrawn {
			t.Fatalf("the receiver accepted %v: the grant's attempt went on past its lease, after the withdrawal", accepted)
		}
	})
}
