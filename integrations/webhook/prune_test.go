package webhook_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// TestPrune: a fanned-out domain event is deleted a day after it was written, not while it waits
// for its fan-out; the delivery log keeps a finished message (skipped, failed) and its
// attempts for the retention and then deletes it, and never deletes a pending one; the
// admin listing shows what is left.
func TestPrune(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ok, failing, retrying := newReceiver(t), newReceiver(t), newReceiver(t)
		failing.setAnswer(func(int) (int, http.Header) { return 400, nil }) // final: failed
		retrying.setAnswer(func(int) (int, http.Header) { return 503, nil })
		epOK, _ := e.endpoint(t, ok.srv.URL, webhook.Input{})
		epFailed, _ := e.endpoint(t, failing.srv.URL, webhook.Input{})
		epRetrying, _ := e.endpoint(t, retrying.srv.URL, webhook.Input{})
		e.recordCustomer(t, "P-1", grant("marketing_email"))
		e.step(t)
		if len(ok.messages()) != 1 || failing.callCount() != 1 || retrying.callCount() != 1 {
			t.Fatalf("first attempts: %d delivered, %d and %d calls", len(ok.messages()), failing.callCount(), retrying.callCount())
		}
		e.recordCustomer(t, "P-2", grant("marketing_email")) // waits in the outbox: no step
		events := e.count(t, "domain_events", "tenant_id = ?", e.tenant())
		if events != 2 {
			t.Fatalf("%d domain events, want 2", events)
		}

		prune := func() integrations.Pruned {
			t.Helper()
			p, err := e.engine.Prune(ctx)
			if err != nil {
				t.Fatalf("prune: %v", err)
			}
			return p
		}
		if p := prune(); p != (integrations.Pruned{}) {
			t.Fatalf("a fresh database lost %+v", p)
		}
		if e.db.Dialect == sqldb.SQLite {
			// A pass that finds nothing takes no write transaction: SQLite's one write
			// connection (the consent writer's) may be busy meanwhile.
			busy := e.db.Write.Begin()
			tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			p, err := e.engine.Prune(tctx)
			cancel()
			busy.Rollback()
			if err != nil || p != (integrations.Pruned{}) {
				t.Fatalf("a pass with nothing to prune waited for the write connection: %+v, %v", p, err)
			}
		}

		e.clock.Add(integrations.DomainEventGrace + time.Hour)
		if p := prune(); p.DomainEvents != 1 || p.Messages != 0 {
			t.Fatalf("after a day: pruned %+v, want the fanned-out domain event only", p)
		}
		if n := e.count(t, "delivery_outbox", "tenant_id = ?", e.tenant()); n != 1 {
			t.Fatalf("the waiting event left the outbox: %d rows", n)
		}
		if n := e.count(t, "domain_events d", "tenant_id = ? AND EXISTS (SELECT 1 FROM delivery_outbox o WHERE o.event_id = d.id)", e.tenant()); n != 1 {
			t.Fatalf("the event waiting for its fan-out was deleted (%d left)", n)
		}

		// A connector's message that needed no call ends skipped: as final as the others.
		if err := e.db.Write.Exec("UPDATE deliveries SET status = ? WHERE tenant_id = ? AND endpoint_id = ?",
			integrations.StatusSkipped, e.tenant(), epOK.ID).Error; err != nil {
			t.Fatal(err)
		}
		e.clock.Add(integrations.DefaultLogRetention)
		if p := prune(); p.Messages != 2 {
			t.Fatalf("after the retention: pruned %+v, want the skipped and the failed message", p)
		}
		for _, c := range []struct {
			endpoint string
			want     int
		}{{epOK.ID, 0}, {epFailed.ID, 0}, {epRetrying.ID, 1}} {
			page, err := e.engine.Deliveries(ctx, e.tenant(), c.endpoint, integrations.DeliveryFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != c.want || (c.want == 1 && page.Items[0].Status != integrations.StatusPending) {
				t.Fatalf("endpoint %s lists %+v, want %d pending", c.endpoint, page.Items, c.want)
			}
		}
		if n := e.count(t, "delivery_attempts a", "tenant_id = ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = a.tenant_id AND d.id = a.delivery_id)", e.tenant()); n != 0 {
			t.Fatalf("%d attempts outlived their messages", n)
		}
		if n := e.count(t, "delivery_attempts", "tenant_id = ? AND endpoint_id = ?", e.tenant(), epRetrying.ID); n != 1 {
			t.Fatalf("the pending message's attempt is gone: %d", n)
		}

		// The pending message still goes out, and the waiting event is fanned out.
		retrying.setAnswer(nil)
		e.step(t)
		if len(retrying.messages()) != 2 {
			t.Fatalf("after pruning, the retrying endpoint got %d messages, want 2", len(retrying.messages()))
		}
	})
}
