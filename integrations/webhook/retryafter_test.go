package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// onlyDelivery is the endpoint's one delivery.
func (e *env) onlyDelivery(t *testing.T, endpointID string) *integrations.Delivery {
	t.Helper()
	p, err := e.engine.Deliveries(context.Background(), e.tenant(), endpointID, integrations.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 {
		t.Fatalf("%d deliveries, want 1", len(p.Items))
	}
	return p.Items[0]
}

// TestShortRetryAfterKeepsTheSchedule: a receiver that answers every attempt with 429 and
// Retry-After: 1 is still tried on the schedule, for days; its message is not dead after
// eight attempts in as many seconds.
func TestShortRetryAfterKeepsTheSchedule(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		ep, secret := e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
		r.secret = secret
		r.setAnswer(func(int) (int, http.Header) { return 429, http.Header{"Retry-After": {"1"}} })
		e.recordCustomer(t, "S-1", grant("marketing_email"))
		e.step(t)
		if d := e.onlyDelivery(t, ep.ID); d.NextAttemptAt.Sub(e.clock.Now()) < 5*time.Second {
			t.Fatalf("next attempt in %s: a Retry-After of 1 s shortened the schedule's 5 s", d.NextAttemptAt.Sub(e.clock.Now()))
		}
		for range 10 {
			e.clock.Add(2 * time.Second)
			e.step(t)
		}
		if d := e.onlyDelivery(t, ep.ID); d.Status != integrations.StatusPending {
			t.Fatalf("after %d attempts in 20 s the message is %s", d.Attempts, d.Status)
		}
	})
}

// TestRetryAfterOnGatewayErrors: Standard Webhooks throttles on 502 and 504 too. A long
// Retry-After on them is not retried within the attempt, and the next attempt waits for it.
func TestRetryAfterOnGatewayErrors(t *testing.T) {
	for _, status := range []int{http.StatusBadGateway, http.StatusGatewayTimeout} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			each(t, func(t *testing.T, e *env) {
				hooks := webhook.New(e.db, e.keys, e.svc, e.clock.Now, webhook.Options{Client: safehttp.New(safehttp.Options{AllowPrivate: true}),
					Timeout: 5 * time.Second, InCallRetries: 2, InCallWait: 100 * time.Millisecond})
				engine := integrations.New(e.db, e.svc, hooks, hooks, e.clock.Now, integrations.Options{
					Jitter: func(d time.Duration) time.Duration { return d }})
				r := newReceiver(t)
				ep, secret := e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
				r.secret = secret
				r.setAnswer(func(int) (int, http.Header) { return status, http.Header{"Retry-After": {"600"}} })
				e.recordCustomer(t, "G-1", grant("marketing_email"))
				if err := engine.Step(context.Background()); err != nil {
					t.Fatal(err)
				}
				if n := r.callCount(); n != 1 {
					t.Fatalf("%d calls: a Retry-After of 10 minutes was retried at once", n)
				}
				if wait := e.onlyDelivery(t, ep.ID).NextAttemptAt.Sub(e.clock.Now()); wait != 10*time.Minute {
					t.Fatalf("next attempt in %s, want the Retry-After's 10 minutes", wait)
				}
			})
		})
	}
}

// TestInCallRetryWaitsForRetryAfter: a 503 asking for one second is retried within the
// attempt, but not before that second has passed.
func TestInCallRetryWaitsForRetryAfter(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		var at []time.Time
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Now())
			if len(at) == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		hooks := webhook.New(e.db, e.keys, e.svc, e.clock.Now, webhook.Options{Client: safehttp.New(safehttp.Options{AllowPrivate: true}),
			Timeout: 5 * time.Second, InCallRetries: 2, InCallWait: time.Second})
		engine := integrations.New(e.db, e.svc, hooks, hooks, e.clock.Now, integrations.Options{})
		ep, _ := e.endpoint(t, srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
		e.recordCustomer(t, "W-1", grant("marketing_email"))
		if err := engine.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(at) != 2 {
			t.Fatalf("%d calls, want 2", len(at))
		}
		if gap := at[1].Sub(at[0]); gap < time.Second {
			t.Fatalf("retried after %s, before the Retry-After's second", gap)
		}
		if d := e.onlyDelivery(t, ep.ID); d.Status != integrations.StatusDelivered {
			t.Fatalf("status %s", d.Status)
		}
	})
}
