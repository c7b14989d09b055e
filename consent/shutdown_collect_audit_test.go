package consent_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
)

// stallWriter holds the writer's first batch until released: the metrics hook runs in the
// writer's goroutine before the batch's transaction.
type stallWriter struct {
	once             sync.Once
	entered, release chan struct{}
}

func (s *stallWriter) Waited(time.Duration) {
	s.once.Do(func() { close(s.entered); <-s.release })
}
func (*stallWriter) Batch(int, time.Duration) {}
func (*stallWriter) EventsWritten(int)        {}

// TestShutdownAnswersWhatWasQueued: when the writer is closed (graceful shutdown, after the
// HTTP server stopped taking requests) with interactions still queued behind a batch in
// flight, Close commits every one of them before it returns and each is answered with its
// outcome; an interaction submitted after Close began is refused (503) and writes nothing.
// So nothing acknowledged is lost, and nothing refused is written.
func TestShutdownAnswersWhatWasQueued(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		keys, err := keyring.Open(ctx, e.db, e.master, e.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		ids := identity.New(e.db, keys, e.clock.Now)
		svc := consent.NewService(e.db, ids, keys, e.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
		stall := &stallWriter{entered: make(chan struct{}), release: make(chan struct{})}
		// One worker (PostgreSQL's default is two): the queue is then exactly what waits.
		w := svc.StartWriter(consent.WriterOptions{Metrics: stall, MaxBatch: 4, Workers: 1})
		t.Cleanup(w.Close)
		var released sync.Once
		release := func() { released.Do(func() { close(stall.release) }) }
		t.Cleanup(release) // first, should the test fail with the batch held
		before := e.tableCounts(t)

		type result struct {
			out *consent.Outcome
			err error
		}
		const queued = 6
		results := make(chan result, queued+1)
		submit := func() {
			out, err := svc.Record(ctx, e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising")))
			results <- result{out, err}
		}
		go submit()
		<-stall.entered // the first batch is in flight
		for range queued {
			go submit()
		}
		eventually(t, "the queue to fill", func() bool { return w.Queued() == queued })
		closed := make(chan struct{})
		go func() { w.Close(); close(closed) }()
		eventually(t, "Close to begin", w.Closing)
		if _, err := svc.Record(ctx, e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 1))); !identity.IsCode(err, identity.EUnavailable) {
			t.Fatalf("a request after Close began: %v, want unavailable", err)
		}
		select {
		case <-closed:
			t.Fatal("Close returned with a batch in flight")
		case <-time.After(50 * time.Millisecond):
		}
		release()
		<-closed
		events := 0
		for range queued + 1 {
			r := <-results
			if r.err != nil {
				t.Fatalf("a queued interaction failed at shutdown: %v", r.err)
			}
			for _, ev := range r.out.Events {
				events++
				if n := e.count(t, "consent_events", "id = ? AND hash = ?", ev.ID, ev.Hash); n != 1 {
					t.Fatalf("acknowledged event %s is not in the ledger", ev.ID)
				}
			}
		}
		got := e.grew(t, before)
		if got["consent_events"] != int64(events) || events != 2*(queued+1) || got["receipts"] != queued+1 {
			t.Fatalf("shutdown wrote %v for %d acknowledged interactions", got, queued+1)
		}
		e.mustVerifyOK(t)
	})
}

// eventually polls cond until it holds, or fails the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
