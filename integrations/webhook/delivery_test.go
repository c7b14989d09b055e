package webhook_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// TestProcessorAndThirdParty: a processor hears of every change in its scope, refusals
// included; a third party hears of a subject only from the grant of a purpose naming it,
// then of every change (the withdrawal too), and never of someone who refused before.
func TestProcessorAndThirdParty(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		proc, tp := newReceiver(t), newReceiver(t)
		_, ps := e.endpoint(t, proc.srv.URL, webhook.Input{Purposes: []string{"partner_sharing", "marketing_email"}})
		pankki := e.demo.Recipients["Demo Pankki Oyj"].ID
		_, ts := e.endpoint(t, tp.srv.URL, webhook.Input{RecipientKind: webhook.ThirdParty, RecipientID: pankki,
			EventTypes: []string{integrations.TypeConsentUpdated}})
		proc.secret, tp.secret = ps, ts
		proc.strict, tp.strict = true, true

		e.recordCustomer(t, "A-1", deny("partner_sharing"))  // refused before the partner held A-1
		e.recordCustomer(t, "B-2", grant("partner_sharing")) // given to the partner
		e.recordCustomer(t, "C-3", deny("personalisation"))  // out of the processor's scope
		e.step(t)
		e.recordCustomer(t, "B-2", withdraw("partner_sharing")) // the partner hears of the withdrawal
		e.step(t)

		pm := proc.messages()
		if got := updates(pm, "partner_sharing"); len(got) != 3 {
			t.Fatalf("processor got %d partner_sharing updates, want 3 (refusal, grant, withdrawal): %+v", len(got), got)
		}
		if len(updates(pm, "personalisation")) != 0 {
			t.Fatalf("processor heard of a purpose outside its scope")
		}
		tm := tp.messages()
		got := updates(tm, "partner_sharing")
		if len(got) != 2 || got[0].Decision != consent.Granted || got[1].Decision != consent.Withdrawn {
			t.Fatalf("third party got %+v, want the grant then the withdrawal of B-2 only", got)
		}
		if prev(got[0]) != "<nil>" || prev(got[1]) != consent.Granted {
			t.Fatalf("previous decisions %s, %s", prev(got[0]), prev(got[1]))
		}
		if got[1].Sequence <= got[0].Sequence || got[0].Reason != integrations.ReasonDecision || got[0].Channel == "" ||
			got[0].Subject == "" || got[0].Version != 1 {
			t.Fatalf("payload %+v", got)
		}
		for _, m := range tm {
			if strings.Contains(string(m.Body), "A-1") || strings.Contains(string(m.Body), "customer") {
				t.Fatalf("a payload names the customer: %s", m.Body)
			}
		}
		if n := e.count(t, "deliveries", "tenant_id = ? AND status <> 'delivered'", e.tenant()); n != 0 {
			t.Fatalf("%d deliveries not delivered", n)
		}
	})
}

// TestSignatureRotation: after a rotation with overlap both secrets sign; the official
// library verifies with either; after the overlap only the new one does.
func TestSignatureRotation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		ep, old := e.endpoint(t, r.srv.URL, webhook.Input{})
		if !strings.HasPrefix(old, "whsec_") {
			t.Fatalf("secret %q", old)
		}
		_, fresh, err := e.hooks.RotateSecret(context.Background(), e.tenant(), ep.ID, time.Hour, "test")
		if err != nil {
			t.Fatal(err)
		}
		e.recordCustomer(t, "R-1", grant("marketing_email"))
		e.step(t)
		ms := r.messages()
		if len(ms) != 1 {
			t.Fatalf("%d messages", len(ms))
		}
		m := ms[0]
		if n := len(strings.Fields(m.Signature)); n != 2 {
			t.Fatalf("signature header %q: want two signatures during the overlap", m.Signature)
		}
		h := http.Header{}
		h.Set("webhook-id", m.ID)
		h.Set("webhook-timestamp", m.Timestamp)
		h.Set("webhook-signature", m.Signature)
		for _, s := range []string{old, fresh} {
			wh, _ := standardwebhooks.NewWebhook(s)
			if err := wh.Verify(m.Body, h); err != nil {
				t.Fatalf("verify with %s…: %v", s[:10], err)
			}
		}
		e.clock.Add(2 * time.Hour)
		e.recordCustomer(t, "R-2", grant("marketing_email"))
		e.step(t)
		ms = r.messages()
		last := ms[len(ms)-1]
		if n := len(strings.Fields(last.Signature)); n != 1 {
			t.Fatalf("after the overlap: %q", last.Signature)
		}
		h.Set("webhook-id", last.ID)
		h.Set("webhook-timestamp", last.Timestamp)
		h.Set("webhook-signature", last.Signature)
		wh, _ := standardwebhooks.NewWebhook(old)
		if err := wh.VerifyIgnoringTimestamp(last.Body, h); err == nil {
			t.Fatal("the old secret still verifies after the overlap")
		}
		wh, _ = standardwebhooks.NewWebhook(fresh)
		if err := wh.VerifyIgnoringTimestamp(last.Body, h); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSupersession: while an endpoint fails, newer changes of the same (subject, purpose)
// supersede the waiting delivery; when it answers only the newest is sent, and its
// previous_decision is the last one delivered.
func TestSupersession(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
		e.recordCustomer(t, "S-1", grant("marketing_email"))
		e.step(t)
		r.setAnswer(func(int) (int, http.Header) { return 500, nil })
		e.recordCustomer(t, "S-1", withdraw("marketing_email"))
		e.step(t) // fails, waits 5 s
		e.recordCustomer(t, "S-1", grant("marketing_email"))
		e.recordCustomer(t, "S-1", withdraw("marketing_email"))
		e.step(t) // not due yet: nothing is sent
		r.setAnswer(nil)
		e.clock.Add(6 * time.Second)
		e.step(t)
		got := updates(r.messages(), "marketing_email")
		if len(got) != 2 || got[1].Decision != consent.Withdrawn || prev(got[1]) != consent.Granted {
			t.Fatalf("got %+v", got)
		}
		if n := e.count(t, "deliveries", "tenant_id = ? AND status = 'superseded'", e.tenant()); n != 2 {
			t.Fatalf("%d superseded, want 2", n)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Sequence <= got[i-1].Sequence {
				t.Fatalf("sequence went backwards: %+v", got)
			}
		}
	})
}

// TestRetryScheduleAndDeadLetter: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h,
// then a dead letter; nothing is tried before its time. Replaying it sends it again.
func TestRetryScheduleAndDeadLetter(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		ep, secret := e.endpoint(t, r.srv.URL, webhook.Input{})
		r.secret = secret
		r.setAnswer(func(int) (int, http.Header) { return 503, nil })
		e.recordCustomer(t, "D-1", grant("marketing_email"))
		e.step(t)
		if r.callCount() != 1 {
			t.Fatalf("first attempt: %d calls", r.callCount())
		}
		for i, wait := range integrations.DefaultSchedule {
			e.clock.Add(wait - time.Second)
			e.step(t)
			if r.callCount() != i+1 {
				t.Fatalf("attempt %d came early", i+2)
			}
			e.clock.Add(time.Second)
			e.step(t)
			if r.callCount() != i+2 {
				t.Fatalf("attempt %d after %s: %d calls", i+2, wait, r.callCount())
			}
		}
		dead, err := e.engine.Deliveries(context.Background(), e.tenant(), ep.ID, integrations.DeliveryFilter{DeadLetters: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(dead.Items) != 1 || dead.Items[0].Status != integrations.StatusDead || dead.Items[0].Attempts != 8 {
			t.Fatalf("dead letters %+v", dead.Items)
		}
		d, err := e.engine.Delivery(context.Background(), e.tenant(), ep.ID, dead.Items[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.AttemptLog) != 8 || d.AttemptLog[0].Status != 503 || d.AttemptLog[0].Response == "" {
			t.Fatalf("attempt log %+v", d.AttemptLog)
		}
		e.clock.Add(24 * time.Hour)
		e.step(t)
		if r.callCount() != 8 {
			t.Fatal("a dead letter was tried again")
		}
		r.setAnswer(nil)
		if n, err := e.engine.Replay(context.Background(), e.tenant(), ep.ID, "", "test"); err != nil || n != 1 {
			t.Fatalf("replay all: %d, %v", n, err)
		}
		e.step(t)
		if len(r.messages()) != 1 {
			t.Fatal("the replayed dead letter was not delivered")
		}
		first := dead.Items[0].ID
		if r.messages()[0].ID != first {
			t.Fatalf("webhook-id changed: %s vs %s", r.messages()[0].ID, first)
		}
	})
}

// TestStatusRules: Retry-After on 429 is honoured; 400 is final; 409 is retried; 410
// disables the endpoint, whose backlog goes out when it is enabled again.
func TestStatusRules(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		r := newReceiver(t)
		ep, secret := e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
		r.secret = secret

		r.setAnswer(func(int) (int, http.Header) { return 429, http.Header{"Retry-After": {"120"}} })
		e.recordCustomer(t, "T-1", grant("marketing_email"))
		e.step(t)
		e.clock.Add(60 * time.Second) // past the schedule's 5 s, not Retry-After's 120
		e.step(t)
		if r.callCount() != 1 {
			t.Fatalf("Retry-After ignored: %d calls", r.callCount())
		}
		r.setAnswer(func(int) (int, http.Header) { return 400, nil })
		e.clock.Add(61 * time.Second)
		e.step(t)
		if r.callCount() != 2 {
			t.Fatalf("%d calls", r.callCount())
		}
		if n := e.count(t, "deliveries", "tenant_id = ? AND status = 'failed'", e.tenant()); n != 1 {
			t.Fatal("400 is not final")
		}

		r.setAnswer(func(int) (int, http.Header) { return 409, nil })
		e.recordCustomer(t, "T-2", grant("marketing_email"))
		e.step(t)
		e.clock.Add(5 * time.Second)
		e.step(t)
		if r.callCount() != 4 {
			t.Fatalf("409 not retried: %d calls", r.callCount())
		}

		r.setAnswer(func(int) (int, http.Header) { return 410, nil })
		e.clock.Add(5 * time.Minute)
		e.step(t)
		got, err := e.hooks.Get(ctx, e.tenant(), ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != webhook.StatusDisabled {
			t.Fatalf("410 did not disable: %+v", got)
		}
		calls := r.callCount()
		e.recordCustomer(t, "T-3", grant("marketing_email"))
		e.clock.Add(time.Hour)
		e.step(t)
		if r.callCount() != calls {
			t.Fatal("a disabled endpoint was called")
		}
		r.setAnswer(nil)
		if _, err := e.hooks.SetStatus(ctx, e.tenant(), ep.ID, webhook.StatusEnabled, "", "test"); err != nil {
			t.Fatal(err)
		}
		e.step(t)
		if n := len(r.messages()); n != 2 {
			t.Fatalf("backlog after enabling: %d messages, want T-2 and T-3", n)
		}
	})
}

// TestBacklogFlush: an endpoint down for an hour (simulated) gets its whole backlog, in
// order, at its first successful answer rather than at each delivery's next retry.
func TestBacklogFlush(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{})
		r.setAnswer(func(int) (int, http.Header) { return 502, nil })
		for i, n := range []string{"F-1", "F-2", "F-3", "F-4"} {
			e.recordCustomer(t, n, grant("marketing_email"))
			e.step(t)
			e.clock.Add(time.Duration(i+1) * 10 * time.Minute)
			e.step(t)
		}
		e.recordCustomer(t, "F-1", withdraw("marketing_email"))
		e.step(t)
		r.setAnswer(nil)
		e.clock.Add(10 * time.Second)
		e.recordCustomer(t, "F-5", grant("marketing_email")) // a fresh delivery succeeds first
		e.step(t)
		e.step(t)
		ms := r.messages()
		if len(ms) != 5 {
			t.Fatalf("%d messages delivered after recovery, want 5", len(ms))
		}
		if n := e.count(t, "deliveries", "tenant_id = ? AND status = 'pending'", e.tenant()); n != 0 {
			t.Fatalf("%d still pending", n)
		}
		f1 := 0
		for _, m := range ms {
			if m.Updated.Decision == consent.Withdrawn {
				f1++
			}
		}
		if f1 != 1 {
			t.Fatal("F-1's withdrawal missing")
		}
		// In order: per subject and purpose, sequence numbers only go up.
		last := map[string]int64{}
		for _, m := range ms {
			k := m.Updated.Subject + "/" + m.Updated.Purpose
			if m.Updated.Sequence <= last[k] {
				t.Fatalf("%s: sequence %d after %d", k, m.Updated.Sequence, last[k])
			}
			last[k] = m.Updated.Sequence
		}
	})
}

// TestSSRFRefused: without LUPA_ALLOW_PRIVATE_WEBHOOKS a loopback endpoint is refused at
// dial time; the attempt is logged and retried later, nothing is sent.
func TestSSRFRefused(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		strict := webhook.New(e.db, e.keys, e.svc, e.clock.Now, webhook.Options{Client: safehttp.New(safehttp.Options{}), InCallRetries: -1})
		e.engine = integrations.New(e.db, e.svc, strict, strict, e.clock.Now, integrations.Options{})
		ep, _ := e.endpoint(t, r.srv.URL, webhook.Input{})
		e.recordCustomer(t, "X-1", grant("marketing_email"))
		e.step(t)
		if r.callCount() != 0 {
			t.Fatal("a loopback endpoint was reached")
		}
		list, err := e.engine.Deliveries(context.Background(), e.tenant(), ep.ID, integrations.DeliveryFilter{})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("%+v %v", list, err)
		}
		d := list.Items[0]
		if d.Status != integrations.StatusPending || d.Attempts != 1 || !strings.Contains(d.LastError, "internal") {
			t.Fatalf("%+v", d)
		}
	})
}

// TestMergeAndErasure: a device linked to a customer makes subject.merged (and a
// consent.updated with reason merge for each carried decision); subject.erasure_approved
// reaches a processor, and a third party only when it holds the subject.
func TestMergeAndErasure(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		proc, tp := newReceiver(t), newReceiver(t)
		_, proc.secret = e.endpoint(t, proc.srv.URL, webhook.Input{})
		_, tp.secret = e.endpoint(t, tp.srv.URL, webhook.Input{RecipientKind: webhook.ThirdParty,
			RecipientID: e.demo.Recipients["Demo Pankki Oyj"].ID})
		out := e.recordDevice(t, "", consent.MethodBannerCustom, grant("analytics"))
		e.recordCustomer(t, "M-1", grant("partner_sharing"))
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, identity.Identifier{Kind: identity.IDDevice, Value: out.DeviceID},
			identity.Identifier{Kind: identity.IDCustomerNumber, Value: "M-1"}, consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		e.step(t)
		var merged, mergeUpdate bool
		for _, m := range proc.messages() {
			if m.Env.Type == integrations.TypeSubjectMerged {
				merged = true
			}
			if m.Updated.Reason == integrations.ReasonMerge && m.Updated.Purpose == "analytics" {
				mergeUpdate = true
			}
		}
		if !merged || !mergeUpdate {
			t.Fatalf("processor: merged %v, merge update %v", merged, mergeUpdate)
		}
		// Erasure approved for the customer (the DSR work emits it; here the test does).
		var subj struct {
			SubjectID string
			Seq       int64
			Pseudonym string
		}
		if err := e.db.Write.Raw(`SELECT d.subject_id, d.subject_seq AS seq, s.pseudonym FROM domain_events d JOIN subjects s
			ON s.tenant_id = d.tenant_id AND s.id = d.subject_id WHERE d.tenant_id = ? AND d.type = 'subject.merged'`, e.tenant()).
			Scan(&subj).Error; err != nil {
			t.Fatal(err)
		}
		other := e.recordDevice(t, "", consent.MethodBannerCustom, grant("analytics"))
		_ = other
		now := e.clock.Now().UnixMilli()
		for i, sid := range []string{subj.SubjectID} {
			if err := e.db.Write.Exec(`INSERT INTO domain_events (tenant_id, id, type, schema_version, subject_id, subject_seq, payload, created_at)
				VALUES (?, ?, 'subject.erasure_approved', 1, ?, ?, ?, ?)`, e.tenant(), identity.NewID(), sid, subj.Seq+1+int64(i),
				`{"subject":"`+subj.Pseudonym+`","subject_id":"`+sid+`","at":"2026-11-26T10:00:00Z","request_id":"dsr-1"}`, now).Error; err != nil {
				t.Fatal(err)
			}
		}
		e.step(t)
		count := func(ms []message, typ string) int {
			n := 0
			for _, m := range ms {
				if m.Env.Type == typ {
					n++
				}
			}
			return n
		}
		if count(proc.messages(), integrations.TypeSubjectErasureApproved) != 1 {
			t.Fatal("the processor did not hear of the erasure")
		}
		if count(tp.messages(), integrations.TypeSubjectErasureApproved) != 1 {
			t.Fatal("the third party holding the subject did not hear of the erasure")
		}
		if count(tp.messages(), integrations.TypeSubjectMerged) != 1 || len(updates(tp.messages(), "analytics")) != 0 {
			t.Fatalf("third party: %d messages", len(tp.messages()))
		}
	})
}

// TestTwoEnginesDeliverOnce: two engines on one PostgreSQL share the work; every event is
// delivered exactly once, and per (subject, purpose) in order.
func TestTwoEnginesDeliverOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Dialect != sqldb.Postgres {
			t.Skip("SQLite has one process")
		}
		r := newReceiver(t)
		_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{})
		engines := []*integrations.Engine{e.engine, e.newEngine()}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, en := range engines {
			wg.Add(1)
			go func() { defer wg.Done(); en.Run(ctx) }()
		}
		const customers = 40
		var rec sync.WaitGroup
		for i := range customers {
			rec.Add(1)
			go func() {
				defer rec.Done()
				n := "P-" + string(rune('A'+i%26)) + string(rune('a'+i/26))
				e.recordCustomer(t, n, grant("marketing_email"))
				e.recordCustomer(t, n, withdraw("marketing_email"))
				for _, en := range engines {
					en.Wake()
				}
			}()
		}
		rec.Wait()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if e.count(t, "deliveries", "tenant_id = ? AND status = 'pending'", e.tenant()) == 0 &&
				e.count(t, "delivery_outbox", "tenant_id = ?", e.tenant()) == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		seen := map[string]int{}
		last := map[string]int64{}
		for _, m := range r.messages() {
			seen[m.ID]++
			if seen[m.ID] > 1 {
				t.Fatalf("webhook %s delivered twice", m.ID)
			}
			if m.Updated.Sequence <= last[m.Updated.Subject] {
				t.Fatalf("sequence went backwards for a subject")
			}
			last[m.Updated.Subject] = m.Updated.Sequence
		}
		if len(last) != customers {
			t.Fatalf("%d subjects heard of, want %d", len(last), customers)
		}
		if n := e.count(t, "deliveries", "tenant_id = ? AND status = 'pending'", e.tenant()); n != 0 {
			t.Fatalf("%d still pending", n)
		}
	})
}

// TestInCallRetry: a 502 is retried within the attempt (go-retryablehttp), signed anew,
// so one attempt delivers it.
func TestInCallRetry(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		ep, secret := e.endpoint(t, r.srv.URL, webhook.Input{})
		r.secret = secret
		r.setAnswer(func(n int) (int, http.Header) {
			if n == 1 {
				return 502, nil
			}
			return 204, nil
		})
		e.hooks = webhook.New(e.db, e.keys, e.svc, e.clock.Now, webhook.Options{
			Client: safehttp.New(safehttp.Options{AllowPrivate: true}), InCallRetries: 2, InCallWait: 50 * time.Millisecond})
		e.engine = e.newEngine()
		e.recordCustomer(t, "I-1", grant("marketing_email"))
		e.step(t)
		if r.callCount() != 2 || len(r.messages()) != 1 {
			t.Fatalf("%d calls, %d accepted", r.callCount(), len(r.messages()))
		}
		list, err := e.engine.Deliveries(context.Background(), e.tenant(), ep.ID, integrations.DeliveryFilter{})
		if err != nil || len(list.Items) != 1 || list.Items[0].Attempts != 1 || list.Items[0].Status != integrations.StatusDelivered {
			t.Fatalf("%+v %v", list, err)
		}
	})
}

// TestNotifyWakes: on PostgreSQL an engine that polls only once an hour still delivers at
// once, woken by the NOTIFY the outbox trigger sends at commit (another instance's commit).
func TestNotifyWakes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Dialect != sqldb.Postgres {
			t.Skip("SQLite has no NOTIFY; one process wakes itself")
		}
		r := newReceiver(t)
		_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{})
		en := integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{Poll: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { en.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		time.Sleep(200 * time.Millisecond) // the first look finds nothing; LISTEN is set up
		e.recordCustomer(t, "N-1", grant("marketing_email"))
		deadline := time.Now().Add(5 * time.Second)
		for len(r.messages()) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("not woken by NOTIFY")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestReasons: a Global Privacy Control signal says gpc; the expiry sweep says expiry, with
// decision expired; the withdrawals of a deleted account (a CIAM's user.deleted, an account
// deleted in Lupa) say account_deleted, not decision: the person chose nothing about the
// purpose. A person's own withdrawal still says decision.
func TestReasons(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"analytics", "social_advertising", "marketing_email", "personalisation"}})
		e.recordDevice(t, "", consent.MethodBannerCustom, grant("analytics"))
		e.recordDevice(t, "", consent.MethodGPCSignal, deny("social_advertising"))
		ctx := context.Background()
		for _, c := range []struct{ number, reason string }{{"D-1", consent.WithdrawUserDeleted}, {"D-2", consent.WithdrawAccountDeleted}} {
			e.recordCustomer(t, c.number, grant("marketing_email"))
			if _, err := e.svc.WithdrawAll(ctx, e.tenant(), identity.Identifier{Kind: identity.IDCustomerNumber, Value: c.number},
				consent.MethodSystem, c.reason); err != nil {
				t.Fatal(err)
			}
		}
		e.recordCustomer(t, "D-3", grant("personalisation"))
		e.recordCustomer(t, "D-3", withdraw("personalisation"))
		e.step(t)
		// Supersession leaves the newest change of each subject: the withdrawals.
		deleted := updates(r.messages(), "marketing_email")
		if len(deleted) != 2 {
			t.Fatalf("marketing_email: %+v, want the two withdrawals", deleted)
		}
		for _, u := range deleted {
			if u.Decision != consent.Withdrawn || u.Reason != integrations.ReasonAccountDeleted || u.Channel != "system" {
				t.Errorf("a deleted account's withdrawal: %+v, want reason %s", u, integrations.ReasonAccountDeleted)
			}
		}
		if own := updates(r.messages(), "personalisation"); len(own) != 1 || own[0].Decision != consent.Withdrawn || own[0].Reason != integrations.ReasonDecision {
			t.Fatalf("the person's own withdrawal: %+v", own)
		}
		e.clock.Add(13 * 31 * 24 * time.Hour)
		if _, err := e.svc.SweepExpiry(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.step(t)
		gpc := updates(r.messages(), "social_advertising")
		if len(gpc) == 0 || gpc[0].Reason != integrations.ReasonGPC || gpc[0].Decision != consent.Denied {
			t.Fatalf("gpc: %+v", gpc)
		}
		an := updates(r.messages(), "analytics")
		if len(an) < 2 || an[len(an)-1].Reason != integrations.ReasonExpiry || an[len(an)-1].Decision != consent.StateExpired ||
			prev(an[len(an)-1]) != consent.Granted || an[len(an)-1].Channel != "system" {
			t.Fatalf("expiry: %+v", an)
		}
	})
}

// TestIdleEngineLeavesSQLiteWriterAlone: SQLite has one write connection, which the consent
// writer needs for every batch, and the engine is woken after each commit. With nothing to
// fan out or send, a look for work must not wait for that connection; once there is work,
// it does, and delivers.
func TestIdleEngineLeavesSQLiteWriterAlone(t *testing.T) {
	e := newEnv(t, sqldbtest.Open(t, sqldb.SQLite))
	r := newReceiver(t)
	_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{})
	e.recordCustomer(t, "I-1", grant("marketing_email"))
	e.step(t)
	if len(r.messages()) != 1 {
		t.Fatalf("first delivery: %d messages", len(r.messages()))
	}

	// Hold the write connection, as the consent writer does during a batch.
	conn, err := e.db.SQL().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err = e.engine.Step(ctx)
	waited := time.Since(start)
	conn.Close()
	if err != nil || waited > time.Second {
		t.Fatalf("an idle look for work waited %v for the write connection: %v", waited, err)
	}

	e.recordCustomer(t, "I-1", withdraw("marketing_email"))
	e.step(t)
	if got := r.messages(); len(got) != 2 || got[1].Updated.Decision != consent.Withdrawn {
		t.Fatalf("after the idle look: %d messages", len(got))
	}
}

// marketingReceiverOnPostgres skips, on SQLite, a test of what only PostgreSQL's
// concurrency brings (why says so), and gives it a receiver of marketing_email's changes.
func marketingReceiverOnPostgres(t *testing.T, e *env, why string) *receiver {
	t.Helper()
	if e.db.Dialect != sqldb.Postgres {
		t.Skip(why)
	}
	r := newReceiver(t)
	_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
	return r
}

// TestFanOutWaitsForADeadBatch: an instance died in the middle of a fan-out batch, and
// PostgreSQL has freed the loop's lock (its connection was idle) but not yet the batch's
// transaction, which holds the grant's outbox row. The next instance must not pass that row
// by and send the withdrawal that came after it: it waits, and once the dead transaction
// ends it hands out both, in order.
func TestFanOutWaitsForADeadBatch(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := marketingReceiverOnPostgres(t, e, "SQLite has one process and one writer")
		e.recordCustomer(t, "D-1", grant("marketing_email"))
		e.recordCustomer(t, "D-1", withdraw("marketing_email"))
		// The dead instance's batch: the fan-out's transaction lock, and the grant's row.
		dead := e.db.Write.Begin()
		defer dead.Rollback()
		if got, err := e.db.TryXactLock(dead, "lupa.integrations.fanout.batch"); err != nil || !got {
			t.Fatalf("take the batch's lock: %v %v", got, err)
		}
		var held []int64
		if err := dead.Raw(`SELECT subject_seq FROM delivery_outbox WHERE tenant_id = ?
			ORDER BY subject_seq LIMIT 1 FOR UPDATE`, e.tenant()).Scan(&held).Error; err != nil || len(held) != 1 {
			t.Fatalf("hold the grant's row: %v %v", held, err)
		}
		next := integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{
			Jitter: func(d time.Duration) time.Duration { return d }, Batch: 1})
		if n, err := next.FanOut(context.Background()); err != nil || n != 0 {
			t.Fatalf("fanned out %d events (%v) past a batch still held", n, err)
		}
		if err := next.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := r.messages(); len(got) != 0 {
			t.Fatalf("sent %d messages while the dead batch held the grant", len(got))
		}
		if err := dead.Rollback().Error; err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := next.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		got := updates(r.messages(), "marketing_email")
		if len(got) == 0 || got[len(got)-1].Decision != consent.Withdrawn {
			t.Fatalf("sent %+v, want the withdrawal last", got)
		}
		var statuses []string
		if err := e.db.Write.Raw("SELECT status FROM deliveries WHERE tenant_id = ? ORDER BY seq", e.tenant()).
			Scan(&statuses).Error; err != nil || len(statuses) != 2 || statuses[1] != integrations.StatusDelivered {
			t.Fatalf("messages %v (%v), want one per change and the withdrawal delivered", statuses, err)
		}
	})
}

// TestRecordSurvivesADeadlock: PostgreSQL ends the transaction that records what a sent
// message got, as the victim of a deadlock (with another instance's fan-out, say). The
// record is made again: the message counts as delivered at once, and is not sent a second
// time when its lease runs out.
func TestRecordSurvivesADeadlock(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := marketingReceiverOnPostgres(t, e, "SQLite has one writer: nothing deadlocks")
		e.recordCustomer(t, "V-1", grant("marketing_email"))
		if n, err := e.engine.FanOut(context.Background()); err != nil || n != 1 {
			t.Fatalf("fan-out: %d %v", n, err)
		}
		// From now on, the first change of a delivery key fails as a deadlock's victim does.
		// A sequence, because it is not rolled back with the failed transaction.
		for _, q := range []string{`CREATE SEQUENCE deadlock_once`,
			`CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
				IF nextval('deadlock_once') = 1 THEN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END IF;
				RETURN NULL; END $$`,
			`CREATE TRIGGER deadlock_once BEFORE UPDATE ON delivery_keys FOR EACH STATEMENT EXECUTE FUNCTION deadlock_once()`} {
			if err := e.db.Write.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		if n, err := e.engine.DeliverDue(context.Background()); err != nil || n != 1 {
			t.Fatalf("deliver: %d %v", n, err)
		}
		var status string
		var fired int64
		if err := e.db.Write.Raw("SELECT status FROM deliveries WHERE tenant_id = ?", e.tenant()).Scan(&status).Error; err != nil ||
			status != integrations.StatusDelivered {
			t.Fatalf("the message is %q (%v), want delivered", status, err)
		}
		if err := e.db.Write.Raw("SELECT last_value FROM deadlock_once").Scan(&fired).Error; err != nil || fired < 2 {
			t.Fatalf("the record was not refused once and made again: %d %v", fired, err)
		}
		e.clock.Add(2 * time.Minute) // the lease would have run out
		e.step(t)
		if got := r.messages(); len(got) != 1 {
			t.Fatalf("the receiver got %d messages, want 1", len(got))
		}
	})
}

// TestOlderChangeFannedOutLate: an older change of a key reaches the fan-out after a newer
// one (when a clock stepped back between instances). The newer change stands and is sent;
// the older one is logged as superseded, never sent — it has a message, so no acknowledged
// event is left without one.
func TestOlderChangeFannedOutLate(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := newReceiver(t)
		_, r.secret = e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
		e.recordCustomer(t, "L-1", grant("marketing_email"))
		e.recordCustomer(t, "L-1", withdraw("marketing_email"))
		// The grant's outbox row comes after the withdrawal's, and one row at a time.
		var seqs []int64
		if err := e.db.Write.Raw("SELECT subject_seq FROM delivery_outbox WHERE tenant_id = ? ORDER BY subject_seq", e.tenant()).
			Scan(&seqs).Error; err != nil || len(seqs) != 2 {
			t.Fatalf("outbox: %v %v", seqs, err)
		}
		if err := e.db.Write.Exec("UPDATE delivery_outbox SET created_at = created_at + 60000 WHERE tenant_id = ? AND subject_seq = ?",
			e.tenant(), seqs[0]).Error; err != nil {
			t.Fatal(err)
		}
		one := integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{
			Jitter: func(d time.Duration) time.Duration { return d }, Batch: 1})
		if err := one.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := updates(r.messages(), "marketing_email")
		if len(got) != 1 || got[0].Decision != consent.Withdrawn {
			t.Fatalf("sent %+v, want only the withdrawal", got)
		}
		type row struct {
			Seq    int64
			Status string
		}
		var rows []row
		if err := e.db.Write.Raw("SELECT seq, status FROM deliveries WHERE tenant_id = ? ORDER BY seq", e.tenant()).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Status != integrations.StatusSuperseded || rows[1].Status != integrations.StatusDelivered {
			t.Fatalf("messages %+v, want the grant superseded and the withdrawal delivered", rows)
		}
	})
}

// TestReplayNeverGoesBackToAFailedNewer: a grant and the withdrawal that followed both
// failed for good. Replaying the grant alone would leave the receiver believing the person
// grants: it is superseded instead, and replaying everything sends the withdrawal only.
func TestReplayNeverGoesBackToAFailedNewer(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		r := newReceiver(t)
		ep, secret := e.endpoint(t, r.srv.URL, webhook.Input{Purposes: []string{"marketing_email"}})
		r.secret = secret
		r.setAnswer(func(int) (int, http.Header) { return 400, nil }) // final: failed
		e.recordCustomer(t, "F-1", grant("marketing_email"))
		e.step(t)
		e.recordCustomer(t, "F-1", withdraw("marketing_email"))
		e.step(t)
		failed, err := e.engine.Deliveries(ctx, e.tenant(), ep.ID, integrations.DeliveryFilter{DeadLetters: true})
		if err != nil || len(failed.Items) != 2 || failed.Items[0].Status != integrations.StatusFailed {
			t.Fatalf("dead letters %+v, %v", failed.Items, err)
		}
		older := failed.Items[1] // newest first
		if older.Sequence >= failed.Items[0].Sequence {
			t.Fatalf("not newest first: %+v", failed.Items)
		}
		r.setAnswer(nil)
		if n, err := e.engine.Replay(ctx, e.tenant(), ep.ID, older.ID, "test"); err != nil || n != 0 {
			t.Fatalf("replaying the older message queued %d, %v", n, err)
		}
		e.step(t)
		if len(r.messages()) != 0 {
			t.Fatalf("the older state was sent after a newer one: %+v", r.messages()[0].Updated)
		}
		if d, err := e.engine.Delivery(ctx, e.tenant(), ep.ID, older.ID); err != nil || d.Status != integrations.StatusSuperseded {
			t.Fatalf("the older message is %+v, %v", d, err)
		}
		if n, err := e.engine.Replay(ctx, e.tenant(), ep.ID, "", "test"); err != nil || n != 1 {
			t.Fatalf("replay all: %d, %v", n, err)
		}
		e.step(t)
		if got := r.messages(); len(got) != 1 || got[0].Updated.Decision != consent.Withdrawn {
			t.Fatalf("after replaying all, the receiver got %d messages: %+v", len(got), got)
		}
	})
}
