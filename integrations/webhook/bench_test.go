package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// TestDeliveryThroughput measures fan-out and delivery on PostgreSQL: 10,000 subjects, a
// fifth of them changing three times, each change a domain event (written as the writer
// writes them), one endpoint, one POST per message. Set LUPA_BENCH_DELIVERIES=1 to run it;
// it prints deliveries_per_s.
func TestDeliveryThroughput(t *testing.T) {
	if os.Getenv("LUPA_BENCH_DELIVERIES") == "" {
		t.Skip("set LUPA_BENCH_DELIVERIES=1")
	}
	e := newEnv(t, sqldbtest.Open(t, sqldb.Postgres))
	e.clock = &clock{t: time.Now()}
	r := newReceiver(t)
	_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{})
	workers, _ := strconv.Atoi(os.Getenv("LUPA_BENCH_WORKERS"))
	e.engine = integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{Workers: workers})
	ctx := context.Background()
	const subjects = 10000
	var rows [][]any
	events := 0
	now := time.Now().UnixMilli()
	for i := range subjects {
		changes := 1
		if i%5 == 0 {
			changes = 3
		}
		sid := identity.NewID()
		for seq := 1; seq <= changes; seq++ {
			decision := "granted"
			if seq%2 == 0 {
				decision = "withdrawn"
			}
			payload, _ := json.Marshal(map[string]any{"tenant": e.tenant(), "subject": "p" + strconv.Itoa(i), "subject_id": sid,
				"interaction": identity.NewID(), "channel": "web", "method": "api", "at": time.Now().UTC(),
				"changes": []map[string]any{{"event_id": identity.NewID(), "seq": seq, "kind": "decision", "purpose": "marketing_email",
					"version": 1, "decision": decision}}})
			rows = append(rows, []any{e.tenant(), identity.NewID(), "consent.recorded", 1, sid, seq, string(payload), now + int64(seq)})
			events++
		}
	}
	if err := sqldb.BulkInsert(e.db.Write, "domain_events", []string{"tenant_id", "id", "type", "schema_version", "subject_id",
		"subject_seq", "payload", "created_at"}, rows, ""); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { e.engine.Run(runCtx); close(done) }()
	for {
		if e.count(t, "delivery_outbox", "tenant_id = ?", e.tenant()) == 0 &&
			e.count(t, "deliveries", "tenant_id = ? AND status = 'pending'", e.tenant()) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	<-done
	sent := len(r.messages())
	fmt.Printf("events=%d deliveries=%d superseded=%d seconds=%.2f deliveries_per_s=%.0f\n", events, sent,
		e.count(t, "deliveries", "tenant_id = ? AND status = 'superseded'", e.tenant()), took.Seconds(), float64(sent)/took.Seconds())
}

// TestDeliveryLag measures the time from a consent's commit to its delivery at 500
// consents/s on PostgreSQL (the engine woken by the writer's commits, as in lupa serve).
// Set LUPA_BENCH_DELIVERIES=1 to run it; it prints lag_p50_ms and lag_p99_ms.
func TestDeliveryLag(t *testing.T) {
	if os.Getenv("LUPA_BENCH_DELIVERIES") == "" {
		t.Skip("set LUPA_BENCH_DELIVERIES=1")
	}
	e := newEnv(t, sqldbtest.Open(t, sqldb.Postgres))
	e.clock.mu.Lock()
	e.clock.real = true
	e.clock.mu.Unlock()
	var mu sync.Mutex
	var lags []time.Duration
	r := newReceiver(t)
	_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
	r.onMessage = func(m message) {
		mu.Lock()
		lags = append(lags, time.Since(m.Updated.Time))
		mu.Unlock()
	}
	engine := integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	const rate, seconds = 500, 10
	tick := time.NewTicker(time.Second / rate)
	var wg sync.WaitGroup
	for i := range rate * seconds {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := grant("marketing_email")
			if i%3 == 0 {
				d = withdraw("marketing_email")
			}
			e.recordCustomer(t, "L-"+strconv.Itoa(i%2000), d)
			engine.Wake()
		}()
	}
	tick.Stop()
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for e.count(t, "deliveries", "tenant_id = ? AND status = 'pending'", e.tenant())+e.count(t, "delivery_outbox", "tenant_id = ?", e.tenant()) > 0 &&
		time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	if len(lags) == 0 {
		t.Fatal("nothing delivered")
	}
	fmt.Printf("delivered=%d lag_p50_ms=%d lag_p99_ms=%d\n", len(lags), lags[len(lags)/2].Milliseconds(), lags[len(lags)*99/100].Milliseconds())
}
