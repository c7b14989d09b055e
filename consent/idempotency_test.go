package consent_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

func idem(key, requestHash string) *consent.IdempotencyKey {
	return &consent.IdempotencyKey{Route: "POST /v1/consents", Key: key, RequestHash: requestHash}
}

// oneInteraction is what a new device's two-decision interaction writes.
var oneInteraction = map[string]int64{"subjects": 1, "identifiers": 1, "consent_events": 2, "chain_heads": 1,
	"consent_state": 2, "receipts": 1, "domain_events": 1, "idempotency_keys": 1}

func TestIdempotentRetryWritesOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		request := func(k *consent.IdempotencyKey, decisions ...consent.DecisionInput) *consent.RecordRequest {
			r := e.deviceRequest("", consent.MethodBannerCustom, decisions...)
			r.Idempotency = k
			return r
		}
		before := e.tableCounts(t)
		first, err := e.svc.Record(ctx, request(idem("k-1", "h-1"), grant("analytics", 1), deny("social_advertising")))
		if err != nil || first.Replayed {
			t.Fatalf("first: %+v %v", first, err)
		}
		if got := e.grew(t, before); !maps.Equal(got, oneInteraction) {
			t.Fatalf("first request wrote %v, want %v", got, oneInteraction)
		}
		before = e.tableCounts(t)
		for i := range 3 {
			again, err := e.svc.Record(ctx, request(idem("k-1", "h-1"), grant("analytics", 1), deny("social_advertising")))
			if err != nil {
				t.Fatalf("retry %d: %v", i, err)
			}
			if !again.Replayed || again.InteractionID != first.InteractionID || again.Receipt != first.Receipt ||
				again.DeviceID != first.DeviceID || again.Subject != first.Subject || len(again.Events) != 2 ||
				again.Events[0] != first.Events[0] || again.Events[1] != first.Events[1] {
				t.Fatalf("retry %d answered differently:\n%+v\n%+v", i, again, first)
			}
		}
		// The same key with another request is refused, and writes nothing either.
		_, err = e.svc.Record(ctx, request(idem("k-1", "h-2"), grant("analytics", 1), grant("social_advertising", 1)))
		wantField(t, wantCode(t, err, identity.EIdempotency), "Idempotency-Key", "different request")
		if got := e.grew(t, before); len(got) != 0 {
			t.Fatalf("retries wrote %v", got)
		}
		// Keys are scoped by route: the same key on another route is another request.
		other := request(&consent.IdempotencyKey{Route: "POST /v1/subjects/consents", Key: "k-1", RequestHash: "h-1"}, grant("analytics", 1))
		if out, err := e.svc.Record(ctx, other); err != nil || out.Replayed || out.InteractionID == first.InteractionID {
			t.Fatalf("same key on another route: %+v %v", out, err)
		}
	})
}

func TestConcurrentSameKeyWritesOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		for round := range 8 {
			before := e.tableCounts(t)
			const n = 4
			outs := make([]*consent.Outcome, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := e.keyedRequest(fmt.Sprintf("round-%d", round), "same body")
					<-start
					outs[i], errs[i] = e.svc.Record(ctx, r)
				}()
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("round %d, request %d: %v", round, i, errs[i])
				}
				if outs[i].InteractionID != outs[0].InteractionID || outs[i].Receipt != outs[0].Receipt || outs[i].DeviceID != outs[0].DeviceID {
					t.Fatalf("round %d: concurrent requests with one key got different answers", round)
				}
			}
			if got := e.grew(t, before); !maps.Equal(got, oneInteraction) {
				t.Fatalf("round %d: %d concurrent requests with one key wrote %v, want %v", round, n, got, oneInteraction)
			}
		}
		e.mustVerifyOK(t)
	})
}

// Many requests arrive together; one reuses another's Idempotency-Key with a different
// body. Whichever of the two comes second is refused on its own; everything else commits.
func TestConflictingKeyInABatchFailsAlone(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		before := e.tableCounts(t)
		const n = 24
		outs := make([]*consent.Outcome, n+1)
		errs := make([]error, n+1)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n + 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.keyedRequest(fmt.Sprintf("key-%d", i), "body")
				if i == n { // the culprit: key-0 again, another body
					r.Decisions = []consent.DecisionInput{deny("analytics"), deny("social_advertising")}
					r.Idempotency = idem("key-0", "another body")
				}
				<-start
				outs[i], errs[i] = e.svc.Record(ctx, r)
			}()
		}
		close(start)
		wg.Wait()
		failed := 0
		for i, err := range errs {
			if err == nil {
				continue
			}
			failed++
			if i != 0 && i != n {
				t.Fatalf("request %d failed although its key was its own: %v", i, err)
			}
			wantField(t, wantCode(t, err, identity.EIdempotency), "Idempotency-Key", "different request")
		}
		if failed != 1 {
			t.Fatalf("%d requests failed, want exactly one of the two sharing key-0", failed)
		}
		want := map[string]int64{}
		for k, v := range oneInteraction {
			want[k] = v * n
		}
		if got := e.grew(t, before); !maps.Equal(got, want) {
			t.Fatalf("the batch wrote %v, want %v", got, want)
		}
		e.mustVerifyOK(t)
	})
}

// Two instances get the same Idempotency-Key at once, each inside a batch with another new
// device's interaction: the key is written once and both answer with it, and the other
// interactions of both batches commit. On PostgreSQL the loser finds the key taken when its
// batch inserts it, rolls back and writes again without it.
func TestTwoInstancesSameKeyWriteOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		instances := []*consent.Service{e.svc, e.secondInstance(t)}
		for round := range 10 {
			before := e.tableCounts(t)
			type result struct {
				out *consent.Outcome
				err error
			}
			same := make([]result, 4)
			others := make([]result, 4)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 4 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					r := e.keyedRequest(fmt.Sprintf("shared-%d", round), "same body")
					<-start
					same[i].out, same[i].err = instances[i%2].Record(ctx, r)
				}()
				go func() {
					defer wg.Done()
					r := e.keyedRequest(fmt.Sprintf("own-%d-%d", round, i), "own body")
					<-start
					others[i].out, others[i].err = instances[i%2].Record(ctx, r)
				}()
			}
			close(start)
			wg.Wait()
			for i := range 4 {
				if same[i].err != nil || others[i].err != nil {
					t.Fatalf("round %d, request %d: %v / %v", round, i, same[i].err, others[i].err)
				}
				if same[i].out.InteractionID != same[0].out.InteractionID || same[i].out.Receipt != same[0].out.Receipt {
					t.Fatalf("round %d: requests with one key got different answers", round)
				}
			}
			want := map[string]int64{}
			for tbl, n := range oneInteraction {
				want[tbl] = 5 * n // the shared key once, the four others once each
			}
			if got := e.grew(t, before); !maps.Equal(got, want) {
				t.Fatalf("round %d: wrote %v, want %v", round, got, want)
			}
		}
		e.mustVerifyOK(t)
	})
}

// keyedRequest is a new device's two-decision interaction under an Idempotency-Key.
func (e *env) keyedRequest(key, body string) *consent.RecordRequest {
	r := e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising"))
	r.Idempotency = idem(key, body)
	return r
}

// TestKeyInProgress: a retry that arrives while the first request with its key is still
// being processed (its claim holds no answer yet) is told so — the admin routes' answer,
// identity.ErrIdempotencyInProgress, not a conflict with the data — and writes nothing; a
// key taken a moment ago whose row has gone again is in progress too. The same key with
// another body is still the mismatch, and once the first request has failed and let its
// key go, the retry is processed.
func TestKeyInProgress(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		route := idem("", "").Route
		claim, stored, err := e.ids.ClaimIdempotency(ctx, e.tenant(), route, "k-busy", "h-1")
		if err != nil || stored != nil {
			t.Fatalf("claim: %v %v", stored, err)
		}
		before := e.tableCounts(t)
		_, err = e.svc.Record(ctx, e.keyedRequest("k-busy", "h-1"))
		wantCode(t, err, identity.EIdempotencyInProgress)
		_, err = e.svc.Record(ctx, e.keyedRequest("k-busy", "h-2"))
		wantField(t, wantCode(t, err, identity.EIdempotency), "Idempotency-Key", "different request")
		if got := e.grew(t, before); len(got) != 0 {
			t.Fatalf("retries of a key in progress wrote %v", got)
		}
		_, err = e.svc.ReplayTakenKey(ctx, e.keyedRequest("k-gone", "h-1"))
		wantCode(t, err, identity.EIdempotencyInProgress)

		if err := e.ids.ReleaseIdempotency(ctx, claim); err != nil {
			t.Fatal(err)
		}
		if out, err := e.svc.Record(ctx, e.keyedRequest("k-busy", "h-1")); err != nil || out.Replayed {
			t.Fatalf("retry after the first request failed: %+v %v", out, err)
		}
	})
}
