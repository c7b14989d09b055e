package consent_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
)

// optInAudit is a double opt-in set-up: marketing_email asks for confirmation, and grant
// records decisions for one email address through the server API and mails its link as
// the handlers do.
type optInAudit struct {
	e     *env
	srv   *mailtest.Server
	email identity.Identifier
}

func newOptInAudit(t *testing.T, e *env, address string) *optInAudit {
	return &optInAudit{e: e, srv: e.doubleOptIn(t), email: identity.Identifier{Kind: identity.IDEmail, Value: address}}
}

// record records the decisions in lang and sends the confirmation email, if any is due.
func (a *optInAudit) record(t *testing.T, lang string, d ...consent.DecisionInput) *consent.Outcome {
	t.Helper()
	ctx := context.Background()
	req := a.e.customerRequest("", consent.MethodCheckbox, "", d...)
	req.Identifier, req.Language = &a.email, lang
	out, err := a.e.svc.Record(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	a.e.svc.SendOptInConfirmation(ctx, req, out)
	return out
}

// link records the decisions and returns the link of the email that follows.
func (a *optInAudit) link(t *testing.T, d ...consent.DecisionInput) string {
	t.Helper()
	a.record(t, "fi", d...)
	return a.next(t)
}

// next returns the token of the next email to the address.
func (a *optInAudit) next(t *testing.T) string {
	t.Helper()
	m := a.srv.WaitFor(t, a.email.Value, 5*time.Second)
	found := optInLinkRe.FindStringSubmatch(m.Text)
	if found == nil {
		t.Fatalf("no link in %q", m.Text)
	}
	token, _ := url.QueryUnescape(found[1])
	return token
}

// mails counts the emails the address has received.
func (a *optInAudit) mails() int {
	n := 0
	for _, m := range a.srv.Messages() {
		if strings.EqualFold(m.To, a.email.Value) {
			n++
		}
	}
	return n
}

func (a *optInAudit) state(t *testing.T) consent.CheckResult {
	t.Helper()
	res, err := a.e.svc.Check(context.Background(), a.e.tenant(), "marketing_email", []identity.Identifier{a.email})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func (a *optInAudit) confirm(t *testing.T, token string) *consent.OptInResult {
	t.Helper()
	res, err := a.e.svc.ConfirmOptIn(context.Background(), token)
	if err != nil {
		t.Fatalf("confirm: %v", err)
	}
	return res
}

// payloadOf returns the payload of a compact JWS, unverified.
func payloadOf(t *testing.T, compact string) []byte {
	t.Helper()
	parts := strings.Split(compact, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOptInAuditLinkTypePinned: a confirmation link is a JWS of its own type. The same
// payload signed by the same key as another type (a receipt, a ledger root) is no link,
// and a link is neither a receipt nor a root.
func TestOptInAuditLinkTypePinned(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := newOptInAudit(t, e, "typ@esimerkki.fi")
		token := a.link(t, grant("marketing_email", 1))
		payload := payloadOf(t, token)
		for _, typ := range []string{consent.ReceiptType, consent.RootType, "JWT"} {
			_, forged, err := e.keys.Sign(typ, payload)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.CheckOptIn(ctx, forged); err != consent.ErrOptInLink {
				t.Fatalf("a %s with a link's payload passes the check: %v", typ, err)
			}
			if res, err := e.svc.ConfirmOptIn(ctx, forged); err != consent.ErrOptInLink {
				t.Fatalf("a %s with a link's payload confirms: %+v %v", typ, res, err)
			}
		}
		if st := a.state(t); st.State != consent.StatePending {
			t.Fatalf("state after the forged links: %+v", st)
		}
		if chk, err := e.svc.VerifyReceipt(ctx, token); err != nil || chk.Valid {
			t.Fatalf("a link passes as a receipt: %+v %v", chk, err)
		}
		if res := a.confirm(t, token); len(res.Confirmed) != 1 {
			t.Fatalf("the genuine link: %+v", res)
		}
	})
}

// TestOptInAuditLinkForItsTenantOnly: a link names its tenant and person; signed for
// another tenant (or one that does not exist) it confirms nothing there, and a person
// erased since makes it invalid.
func TestOptInAuditLinkForItsTenantOnly(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := newOptInAudit(t, e, "tenant@esimerkki.fi")
		token := a.link(t, grant("marketing_email", 1))
		var tok map[string]any
		if err := json.Unmarshal(payloadOf(t, token), &tok); err != nil {
			t.Fatal(err)
		}
		tok["tenant"] = "no-such-tenant"
		b, _ := json.Marshal(tok)
		_, other, err := e.keys.Sign(consent.OptInType, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ConfirmOptIn(ctx, other); err != consent.ErrOptInLink {
			t.Fatalf("a link for another tenant: %v", err)
		}
		if err := e.svc.EraseSubject(ctx, e.tenant(), e.subjectID(t, a.email), "dsr:optin-audit", actor); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ConfirmOptIn(ctx, token); err != consent.ErrOptInLink {
			t.Fatalf("a link of an erased person: %v", err)
		}
		if n := e.count(t, "consent_events", "method = 'double_opt_in'"); n != 0 {
			t.Fatalf("%d confirmations", n)
		}
	})
}

// TestOptInAuditOldLinkNewerRequest: a link confirms the request it was sent for while that
// request stands. Withdrawn and asked for again, or asked for again under a newer
// (non-material) version, the pending grant is a newer request: the old link confirms
// nothing (and says a newer email was sent), the newer link confirms it.
func TestOptInAuditOldLinkNewerRequest(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := newOptInAudit(t, e, "newer@esimerkki.fi")
		old := a.link(t, grant("marketing_email", 1))
		a.record(t, "fi", deny("marketing_email"))
		fresh := a.link(t, grant("marketing_email", 1))
		if res := a.confirm(t, old); len(res.Confirmed) != 0 || len(res.Superseded) != 1 {
			t.Fatalf("a link withdrawn before it was used confirmed the newer request: %+v", res)
		}
		if st := a.state(t); st.State != consent.StatePending || st.MayUse {
			t.Fatalf("after the old link: %+v", st)
		}
		if res := a.confirm(t, fresh); len(res.Confirmed) != 1 {
			t.Fatalf("the newer link: %+v", res)
		}

		// A newer, non-material version: the old link does not confirm the new request.
		b := &optInAudit{e: e, srv: a.srv, email: identity.Identifier{Kind: identity.IDEmail, Value: "version@esimerkki.fi"}}
		v1 := b.link(t, grant("marketing_email", 1))
		c, err := e.svc.Catalog(ctx, e.tenant())
		if err != nil {
			t.Fatal(err)
		}
		cp, _ := c.Purpose("marketing_email")
		details := cp.Versions[1].Details
		e.draft(t, "marketing_email", false, "Newsletter, reworded", &details)
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "marketing_email", 2, actor); err != nil {
			t.Fatal(err)
		}
		v2 := b.link(t, grant("marketing_email", 2))
		if res := b.confirm(t, v1); len(res.Confirmed) != 0 || len(res.Superseded) != 1 {
			t.Fatalf("the version 1 link confirmed the version 2 request: %+v", res)
		}
		if n := e.count(t, "consent_state", "subject_id = ? AND state = 'pending_confirmation' AND version = 2", e.subjectID(t, b.email)); n != 1 {
			t.Fatal("the old link changed the pending grant of version 2")
		}
		if res := b.confirm(t, v2); len(res.Confirmed) != 1 {
			t.Fatalf("the version 2 link: %+v", res)
		}
		if st := b.state(t); !st.MayUse {
			t.Fatalf("after the version 2 link: %+v", st)
		}
		if n := e.count(t, "consent_state", "subject_id = ? AND state = 'granted' AND version = 2", e.subjectID(t, b.email)); n != 1 {
			t.Fatal("the confirmed grant is not of version 2")
		}
		e.mustVerifyOK(t)
	})
}

// TestOptInAuditRepeatedGrantWhilePending: asked for again while still pending (a form sent
// twice, an app that re-sends its grants), the request stays one: the first link still
// confirms it, and a new email goes out at most once per ten minutes and three times a
// day, so no client can flood the person's mailbox.
func TestOptInAuditRepeatedGrantWhilePending(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := newOptInAudit(t, e, "again@esimerkki.fi")
		first := a.link(t, grant("marketing_email", 1))
		for range 3 {
			a.record(t, "fi", grant("marketing_email", 1))
		}
		if n := a.mails(); n != 1 {
			t.Fatalf("%d emails for one request repeated at once, want 1", n)
		}
		// Every 15 minutes for a day: three emails in any 24 hours (at 0, 15 and 30
		// minutes), and the fourth when the first is a day old.
		for range 4 * 24 {
			e.clock.Add(15 * time.Minute)
			a.record(t, "fi", grant("marketing_email", 1))
		}
		if n := a.mails(); n != 4 {
			t.Fatalf("%d emails in a day of repeated requests", n)
		}
		if res := a.confirm(t, a.lastLink(t)); len(res.Confirmed) != 1 {
			t.Fatalf("the newest link: %+v", res)
		}
		if res := a.confirm(t, first); len(res.Confirmed) != 0 {
			t.Fatalf("the first link after the confirmation: %+v", res)
		}
	})
}

// lastLink is the token of the newest email to the address.
func (a *optInAudit) lastLink(t *testing.T) string {
	t.Helper()
	msgs := a.srv.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.EqualFold(msgs[i].To, a.email.Value) {
			token, _ := url.QueryUnescape(optInLinkRe.FindStringSubmatch(msgs[i].Text)[1])
			return token
		}
	}
	t.Fatal("no email")
	return ""
}

// TestOptInAuditFirstLinkAfterRepeat: the first link confirms a request repeated before it
// was followed (the run of pending grants is one request).
func TestOptInAuditFirstLinkAfterRepeat(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := newOptInAudit(t, e, "repeat@esimerkki.fi")
		first := a.link(t, grant("marketing_email", 1))
		e.clock.Add(time.Minute)
		a.record(t, "fi", grant("marketing_email", 1))
		if res := a.confirm(t, first); len(res.Confirmed) != 1 {
			t.Fatalf("the first link of a repeated request: %+v", res)
		}
		if st := a.state(t); !st.MayUse {
			t.Fatalf("after confirming: %+v", st)
		}
	})
}

// TestOptInAuditGrantWhileGranted: a confirmed grant asked for again (a checkout's ticked
// box) stays a grant: not pending again, no new email, still usable, and downstream
// hears a grant, never pending_confirmation after granted.
func TestOptInAuditGrantWhileGranted(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := newOptInAudit(t, e, "granted@esimerkki.fi")
		a.confirm(t, a.link(t, grant("marketing_email", 1)))
		out := a.record(t, "fi", grant("marketing_email", 1))
		if st := stateOf(out.State, "marketing_email"); st.State != consent.StateGranted || !st.MayUse {
			t.Fatalf("a confirmed grant granted again: %+v", st)
		}
		if st := a.state(t); !st.MayUse {
			t.Fatalf("check: %+v", st)
		}
		if n := a.mails(); n != 1 {
			t.Fatalf("%d emails", n)
		}
		if n := e.count(t, "consent_events", "decision = 'pending_confirmation'"); n != 1 {
			t.Fatalf("%d pending grants recorded, want the first only", n)
		}
	})
}

// TestOptInAuditPendingPastReask: a grant left pending past the purpose's re-ask interval
// reads expired, as the banner sees it (it asks again then), and the expiry sweep writes
// its event.
func TestOptInAuditPendingPastReask(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := newOptInAudit(t, e, "reask@esimerkki.fi")
		a.link(t, grant("marketing_email", 1))
		e.clock.Add(366 * 24 * time.Hour) // marketing_email asks again after 12 months
		if st := a.state(t); st.State != consent.StateExpired || st.MayUse {
			t.Fatalf("pending past the re-ask interval: %+v", st)
		}
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 1 {
			t.Fatalf("expiry sweep: %d %v", n, err)
		}
		if n := e.count(t, "consent_state", "state = 'expired'"); n != 1 {
			t.Fatalf("stored state not expired")
		}
		e.mustVerifyOK(t)
	})
}

// TestOptInAuditAccountDeletionEndsPending: deleting the account (or the CIAM deleting
// the user) ends a grant still waiting for its confirmation, so the link in the mailbox
// confirms nothing afterwards.
func TestOptInAuditAccountDeletionEndsPending(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := newOptInAudit(t, e, "deleted@esimerkki.fi")
		token := a.link(t, grant("marketing_email", 1))
		if _, err := e.svc.WithdrawAll(ctx, e.tenant(), a.email, "dashboard", consent.WithdrawAccountDeleted); err != nil {
			t.Fatal(err)
		}
		if res := a.confirm(t, token); len(res.Confirmed) != 0 {
			t.Fatalf("a deleted account's link confirmed: %+v", res)
		}
		if st := a.state(t); st.MayUse || st.State == consent.StatePending {
			t.Fatalf("after the deletion: %+v", st)
		}
		if n := e.count(t, "consent_events", "reason = ?", consent.WithdrawAccountDeleted); n != 1 {
			t.Fatalf("%d events with the account_deleted reason", n)
		}
	})
}

// TestOptInAuditMailLanguage: a grant recorded without a language is mailed in the
// language its text was recorded in (the tenant's default), not English; the page and the
// confirmation follow it.
func TestOptInAuditMailLanguage(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := newOptInAudit(t, e, "kieli@esimerkki.fi")
		a.record(t, "", grant("marketing_email", 1))
		m := a.srv.WaitFor(t, a.email.Value, 5*time.Second)
		if m.Subject != "Vahvista tilauksesi" || !strings.Contains(m.Text, "/optin?lang=fi&") {
			t.Fatalf("mail %q %q", m.Subject, m.Text)
		}
	})
}

// TestOptInAuditLinkAfterMerge: the company's CIAM merges the person whose grant is pending
// into another. A merge carries decisions, not pending grants (merge.go), so the link,
// followed to the survivor, finds nothing of its request there: it confirms nothing, writes
// nothing to the merged chain, and the ledger still verifies.
func TestOptInAuditLinkAfterMerge(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := newOptInAudit(t, e, "merged@esimerkki.fi")
		token := a.link(t, grant("marketing_email", 1))
		e.clock.Add(time.Minute)
		e.recordCustomer(t, "M-1", grant("personalisation", 1))
		if _, err := e.svc.MergePersons(ctx, e.tenant(), a.email, *customer("M-1")); err != nil {
			t.Fatal(err)
		}
		before := e.count(t, "consent_events", "1 = 1")
		if res := a.confirm(t, token); len(res.Confirmed) != 0 {
			t.Fatalf("the link after the merge: %+v", res)
		}
		if st := e.customerState(t, "M-1", "marketing_email"); st.MayUse {
			t.Fatalf("the survivor's state: %+v", st)
		}
		if n := e.count(t, "consent_events", "1 = 1"); n != before {
			t.Fatalf("the link wrote %d events", n-before)
		}
		e.mustVerifyOK(t)
	})
}

// TestOptInAuditNewerRequestWhileConfirming: the link is checked, and before its
// confirmation reaches the writer the person refuses and asks again (a newer request,
// with its own email). The old link confirms nothing: the writer records a confirmation only
// while the state is still the one the check saw.
func TestOptInAuditNewerRequestWhileConfirming(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := newOptInAudit(t, e, "between@esimerkki.fi")
		old := a.link(t, grant("marketing_email", 1))
		var fresh string
		res, err := e.svc.ConfirmOptInThen(context.Background(), old, func() {
			a.record(t, "fi", deny("marketing_email"))
			fresh = a.link(t, grant("marketing_email", 1))
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Confirmed) != 0 {
			t.Fatalf("the old link confirmed the request made while it was being followed: %+v", res)
		}
		if st := a.state(t); st.State != consent.StatePending || st.MayUse {
			t.Fatalf("after the old link: %+v", st)
		}
		if n := e.count(t, "consent_events", "method = 'double_opt_in'"); n != 0 {
			t.Fatalf("%d confirmations recorded", n)
		}
		if res := a.confirm(t, fresh); len(res.Confirmed) != 1 {
			t.Fatalf("the newer link: %+v", res)
		}
		e.mustVerifyOK(t)
	})
}

// TestOptInAuditLinkAfterMergeSurvivorPending: the person whose grant is pending is merged
// into one with a pending grant of the same purpose of their own (mailed to that person's
// address, or not at all). The merged person's link confirms nothing there: the survivor's
// request is not the one the link was sent for.
func TestOptInAuditLinkAfterMergeSurvivorPending(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := newOptInAudit(t, e, "merged-pending@esimerkki.fi")
		e.recordCustomer(t, "M-2", grant("marketing_email", 1)) // the survivor's own request
		e.clock.Add(time.Minute)
		token := a.link(t, grant("marketing_email", 1))
		e.clock.Add(time.Minute)
		if _, err := e.svc.MergePersons(ctx, e.tenant(), a.email, *customer("M-2")); err != nil {
			t.Fatal(err)
		}
		res := a.confirm(t, token)
		if len(res.Confirmed) != 0 || len(res.Superseded) != 1 {
			t.Fatalf("the merged person's link on the survivor's own request: %+v", res)
		}
		if st := e.customerState(t, "M-2", "marketing_email"); st.MayUse || st.State != consent.StatePending {
			t.Fatalf("the survivor's state: %+v", st)
		}
		if n := e.count(t, "consent_events", "method = 'double_opt_in'"); n != 0 {
			t.Fatalf("%d confirmations recorded", n)
		}
		e.mustVerifyOK(t)
	})
}
