package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// TestDeleteWhileInFlight: an endpoint deleted while a message to it is on its way leaves
// nothing behind: the attempt recorded when the answer comes has no delivery to belong to
// and is not written (the prune removes attempts only with their deliveries, so it would
// stay forever, with the endpoint's answer in it).
func TestDeleteWhileInFlight(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		arrived, release := make(chan struct{}), make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-release
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("busy"))
		}))
		t.Cleanup(srv.Close)
		ep, _ := e.endpoint(t, srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
		e.recordCustomer(t, "D-1", grant("marketing_email"))
		ctx := context.Background()
		if _, err := e.engine.FanOut(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := e.engine.DeliverDue(ctx); done <- err }()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the message never arrived")
		}
		if err := e.hooks.Delete(ctx, e.tenant(), ep.ID, "test"); err != nil {
			t.Fatal(err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"deliveries", "delivery_attempts"} {
			if n := e.count(t, table, "tenant_id = ?", e.tenant()); n != 0 {
				t.Fatalf("%d rows left in %s of the deleted endpoint", n, table)
			}
		}
	})
}
