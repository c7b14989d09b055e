package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/integrations/connector"
	"github.com/lupa-cmp/lupa/integrations/hubspot/hubspottest"
	"github.com/lupa-cmp/lupa/integrations/klaviyo/klaviyotest"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

// reconcile runs one reconcile of the connector and checks how many decisions it recorded.
func (e *env) reconcile(t *testing.T, connectorID string, want int) {
	t.Helper()
	n, err := e.connectors.Reconcile(context.Background(), e.tenant(), connectorID, "test")
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if n != want {
		t.Fatalf("reconcile recorded %d, want %d", n, want)
	}
}

// cursor is the connector's stored reconcile cursor.
func (e *env) cursor(t *testing.T, connectorID string) map[string]time.Time {
	t.Helper()
	var s string
	if err := e.db.Write.Raw(`SELECT reconcile_cursor FROM connectors WHERE tenant_id = ? AND id = ?`, e.tenant(), connectorID).
		Scan(&s).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	if s != "" {
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			t.Fatalf("cursor %q: %v", s, err)
		}
	}
	return out
}

func (e *env) reconciledAt(t *testing.T, connectorID string) *time.Time {
	t.Helper()
	c, err := e.connectors.Get(context.Background(), e.tenant(), connectorID)
	if err != nil {
		t.Fatal(err)
	}
	return c.ReconciledAt
}

// TestReconcileMailchimp: unsubscribed members of the mapped audience become withdrawals
// with Mailchimp as channel; a bounce (cleaned), an unknown person and an unsubscribe older
// than the person's grant in Lupa change nothing; the cursor moves to the newest change
// applied, and a second run records nothing.
func TestReconcileMailchimp(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc, c := inboundMailchimp(t, e)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.record(t, "bert@example.com", grant("marketing_email"))
		e.record(t, "carl@example.com", grant("marketing_email"))
		e.step(t)
		if e.reconciledAt(t, c.ID) != nil {
			t.Fatal("reconciled before any run")
		}
		e.reconcile(t, c.ID, 0)
		first := e.reconciledAt(t, c.ID)
		if first == nil {
			t.Fatal("reconciled_at not set")
		}

		e.clock.Add(time.Minute)
		mc.PersonUnsubscribes("aud1", "anna@example.com")
		unsubAt := e.clock.Now()
		mc.PutMember("aud1", "bert@example.com", "cleaned", unsubAt)
		mc.PutMember("aud1", "zoe@example.com", "unsubscribed", unsubAt)
		mc.PutMember("aud1", "carl@example.com", "unsubscribed", unsubAt.Add(-time.Hour)) // before carl's grant
		e.clock.Add(time.Minute)

		e.reconcile(t, c.ID, 1)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateWithdrawn {
			t.Fatalf("anna: %s", s)
		}
		if ev := e.lastEvent(t, "anna@example.com", "marketing_email"); ev.Channel != connector.Mailchimp ||
			ev.Reason != connector.ReasonVendorUnsubscribe || ev.Method != consent.MethodSystem {
			t.Fatalf("ledger %+v", ev)
		}
		for _, p := range []string{"bert@example.com", "carl@example.com"} {
			if s := e.state(t, p, "marketing_email"); s != consent.StateGranted {
				t.Fatalf("%s: %s", p, s)
			}
		}
		if got := e.cursor(t, c.ID)["mailchimp:list:aud1"]; !got.Equal(unsubAt) {
			t.Fatalf("cursor %v, want %v", got, unsubAt)
		}
		if at := e.reconciledAt(t, c.ID); at == nil || !at.After(*first) {
			t.Fatalf("reconciled_at %v", at)
		}

		e.reconcile(t, c.ID, 0) // nothing new

		// Only the members changed since the cursor (less a second) were asked for.
		reqs := mc.Requests()
		want := "since_last_changed=" + url.QueryEscape(unsubAt.Add(-time.Second).UTC().Format(time.RFC3339))
		if last := reqs[len(reqs)-1]; last.Op != mailchimptest.OpList || !strings.Contains(last.Query, want) {
			t.Fatalf("last request %s %s, want %s", last.Op, last.Query, want)
		}

		e.clock.Add(time.Minute)
		mc.PersonUnsubscribes("aud1", "carl@example.com")
		e.reconcile(t, c.ID, 1)
		if got := e.cursor(t, c.ID)["mailchimp:list:aud1"]; !got.Equal(e.clock.Now()) {
			t.Fatalf("cursor %v did not advance", got)
		}
	})
}

// TestReconcileMailchimpMembersChangeDuringWalk: a member already read resubscribes at
// Mailchimp between two pages of the walk. The member then at the page boundary (anna)
// must still be read and recorded, not passed over by the cursor; a second run records
// nothing more.
func TestReconcileMailchimpMembersChangeDuringWalk(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc, c := inboundMailchimp(t, e)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.record(t, "bert@example.com", grant("marketing_email"))
		e.step(t)
		base := e.clock.Now().Add(time.Minute)
		const n = 1200 // more than a page (1000); the others are unknown to Lupa
		for i := range n {
			email := fmt.Sprintf("m%04d@example.com", i)
			switch i {
			case 5:
				email = "bert@example.com" // on the first page
			case 1000:
				email = "anna@example.com" // first of the second page
			}
			mc.PutMember("aud1", email, "unsubscribed", base.Add(time.Duration(i)*time.Second))
		}
		e.clock.Add(time.Hour)
		mc.OnList(func(k int) {
			if k == 1 { // before the second page bert, read already, resubscribes
				mc.PutMember("aud1", "bert@example.com", "subscribed", e.clock.Now())
			}
		})
		e.reconcile(t, c.ID, 2)
		for _, p := range []string{"anna@example.com", "bert@example.com"} {
			if s := e.state(t, p, "marketing_email"); s != consent.StateWithdrawn {
				t.Fatalf("%s: %s", p, s)
			}
		}
		mc.OnList(nil)
		e.reconcile(t, c.ID, 0)
	})
}

// TestReconcileHubSpot: the statuses of the addresses the connector wrote are read back;
// UNSUBSCRIBED on a mapped subscription withdraws that purpose only.
func TestReconcileHubSpot(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.legitimateInterest(t, "loyalty_offers")
		hs, c := inboundHubSpot(t, e, "loyalty_offers")
		li := consent.DecisionInput{Purpose: "loyalty_offers", Version: 1, Decision: consent.Granted}
		e.record(t, "anna@example.com", grant("marketing_email"), li)
		e.record(t, "bert@example.com", grant("marketing_email"), li)
		e.step(t)
		e.reconcile(t, c.ID, 0)

		e.clock.Add(time.Minute)
		hs.PersonOptsOut("anna@example.com", 7001)
		hs.PersonOptsOut("bert@example.com", 0) // all email
		optedOut := e.clock.Now()
		e.clock.Add(time.Minute)
		e.reconcile(t, c.ID, 3)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateWithdrawn {
			t.Fatalf("anna marketing_email: %s", s)
		}
		if s := e.state(t, "anna@example.com", "loyalty_offers"); s != consent.StateGranted {
			t.Fatalf("anna loyalty_offers: %s", s)
		}
		if s := e.state(t, "bert@example.com", "loyalty_offers"); s != consent.StateObjected {
			t.Fatalf("bert loyalty_offers: %s", s)
		}
		if ev := e.lastEvent(t, "bert@example.com", "loyalty_offers"); ev.Channel != connector.HubSpot || ev.Decision != consent.Objected {
			t.Fatalf("ledger %+v", ev)
		}
		if got := e.cursor(t, c.ID)["hubspot:statuses"]; !got.Equal(optedOut) {
			t.Fatalf("cursor %v, want %v", got, optedOut)
		}
		e.reconcile(t, c.ID, 0)
	})
}

// position is where the connector's HubSpot walk goes on at the next run.
func (e *env) position(t *testing.T, connectorID string) string {
	t.Helper()
	var pos string
	if err := e.db.Write.Raw(`SELECT reconcile_position FROM connectors WHERE tenant_id = ? AND id = ?`, e.tenant(), connectorID).
		Scan(&pos).Error; err != nil {
		t.Fatal(err)
	}
	return pos
}

// TestReconcileHubSpotWalksInParts: with room for two members a run, five members who all
// opted out at HubSpot are read two, two and one, in subject order, each run from where the
// last one stopped; a run that fails keeps the position; after the last member the walk
// starts again from the first.
func TestReconcileHubSpotWalksInParts(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		hs, c := inboundHubSpot(t, e, "")
		walker := connector.New(e.db, e.keys, e.svc, e.ids, e.clock.Now, connector.Options{
			HTTPClient:   safehttp.New(safehttp.Options{AllowPrivate: true, Timeout: 2 * time.Second}),
			AllowBaseURL: true, NoRetries: true, ReconcileHubSpotMembers: 2})
		var emails []string
		for i := range 5 {
			email := fmt.Sprintf("member%d@example.com", i)
			e.record(t, email, grant("marketing_email"))
			emails = append(emails, email)
		}
		e.step(t)
		slices.SortFunc(emails, func(a, b string) int { return strings.Compare(e.subject(t, a), e.subject(t, b)) })
		e.clock.Add(time.Minute)
		for _, email := range emails {
			hs.PersonOptsOut(email, 7001)
		}
		e.clock.Add(time.Minute)

		run := func(want int, withdrawn int, position string) {
			t.Helper()
			reads := hs.Count(hubspottest.OpBatchRead)
			n, err := walker.Reconcile(ctx, e.tenant(), c.ID, "test")
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if n != want || hs.Count(hubspottest.OpBatchRead) != reads+1 {
				t.Fatalf("recorded %d in %d calls, want %d in one", n, hs.Count(hubspottest.OpBatchRead)-reads, want)
			}
			for i, email := range emails {
				state := consent.StateGranted
				if i < withdrawn {
					state = consent.StateWithdrawn
				}
				if got := e.state(t, email, "marketing_email"); got != state {
					t.Fatalf("member %d of 5 after the run: %s, want %s", i+1, got, state)
				}
			}
			if got := e.position(t, c.ID); got != position {
				t.Fatalf("position %q, want %q", got, position)
			}
		}
		run(2, 2, e.subject(t, emails[1]))

		hs.FailNext(hubspottest.ServerError(503))
		if _, err := walker.Reconcile(ctx, e.tenant(), c.ID, "test"); err == nil {
			t.Fatal("a 503 from HubSpot was not an error")
		}
		if got := e.position(t, c.ID); got != e.subject(t, emails[1]) {
			t.Fatalf("a failed run moved the position to %q", got)
		}

		run(2, 4, e.subject(t, emails[3]))
		run(1, 5, "")                      // the last member: the walk starts again
		run(0, 5, e.subject(t, emails[1])) // from the first, recording nothing twice
	})
}

// TestReconcileKlaviyo: a global unsubscribe or spam complaint withdraws every mapped
// purpose; a bounce and an unknown person change nothing.
func TestReconcileKlaviyo(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		kv := klaviyotest.New(t, klaviyotest.Options{Now: e.clock.Now})
		kv.AddList("L1")
		c := e.connector(t, connector.Input{Vendor: connector.Klaviyo, BaseURL: kv.URL(),
			Credentials: connector.Credentials{APIKey: kv.Key()},
			Mappings:    []connector.Mapping{{Purpose: "marketing_email", ListID: "L1"}, {Purpose: "personalisation", ListID: "L1"}}})
		e.record(t, "anna@example.com", grant("marketing_email"), grant("personalisation"))
		e.record(t, "bert@example.com", grant("marketing_email"))
		e.record(t, "carl@example.com", grant("marketing_email"))
		e.step(t)

		e.clock.Add(time.Minute)
		kv.PersonUnsubscribes("anna@example.com")
		kv.Suppress("bert@example.com", "HARD_BOUNCE")
		kv.PersonUnsubscribes("zoe@example.com")
		e.clock.Add(time.Minute)
		kv.Suppress("carl@example.com", "SPAM_COMPLAINT")
		complained := e.clock.Now()
		e.clock.Add(time.Minute)

		e.reconcile(t, c.ID, 3)
		for _, p := range []string{"marketing_email", "personalisation"} {
			if s := e.state(t, "anna@example.com", p); s != consent.StateWithdrawn {
				t.Fatalf("anna %s: %s", p, s)
			}
		}
		if s := e.state(t, "bert@example.com", "marketing_email"); s != consent.StateGranted {
			t.Fatalf("bert: %s", s)
		}
		if ev := e.lastEvent(t, "carl@example.com", "marketing_email"); ev.Channel != connector.Klaviyo || ev.Reason != connector.ReasonVendorSpamComplaint {
			t.Fatalf("ledger %+v", ev)
		}
		if got := e.cursor(t, c.ID)["klaviyo:suppressions"]; !got.Equal(complained) {
			t.Fatalf("cursor %v, want %v", got, complained)
		}
		e.reconcile(t, c.ID, 0)

		// A grant made in Lupa after the suppression stands.
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.reconcile(t, c.ID, 0)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateGranted {
			t.Fatalf("anna's new grant: %s", s)
		}
	})
}

// TestReconcileErrors: an unknown connector is not found, a disabled one is not
// reconciled, and a vendor failure leaves the cursor and reconciled_at alone.
func TestReconcileErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.connectors.Reconcile(ctx, e.tenant(), connector.IDPrefix+"nosuch", "test"); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("unknown: %v", err)
		}
		mc, c := inboundMailchimp(t, e)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		e.clock.Add(time.Minute)
		mc.PersonUnsubscribes("aud1", "anna@example.com")
		mc.FailNext(mailchimptest.ServerError(503))
		if _, err := e.connectors.Reconcile(ctx, e.tenant(), c.ID, "test"); err == nil {
			t.Fatal("a 503 from Mailchimp was not an error")
		}
		if len(e.cursor(t, c.ID)) != 0 || e.reconciledAt(t, c.ID) != nil {
			t.Fatal("a failed run moved the cursor")
		}
		e.reconcile(t, c.ID, 1)

		other := e.connector(t, connector.Input{Vendor: connector.Mailchimp, BaseURL: mc.BaseURL(),
			Credentials: connector.Credentials{APIKey: mc.Key()}, Mappings: []connector.Mapping{{Purpose: "personalisation", ListID: "aud1"}}})
		if _, err := e.connectors.SetStatus(ctx, e.tenant(), other.ID, connector.StatusDisabled, "paused", "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.connectors.Reconcile(ctx, e.tenant(), other.ID, "test"); !identity.IsCode(err, identity.EConflict) {
			t.Fatalf("disabled: %v", err)
		}
	})
}

// TestReconcileOneAtATime: while a reconcile of a connector runs (held at the vendor here),
// a second one is refused with a conflict, reads nothing and is not audited; on PostgreSQL
// also while another instance holds the connector's lock. Once the first is over, the next
// one runs.
func TestReconcileOneAtATime(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mc, proxy, entered := heldMailchimp(t, e)
		c := e.connector(t, connector.Input{Vendor: connector.Mailchimp, BaseURL: proxy + "/3.0",
			Credentials: connector.Credentials{APIKey: mc.Key()}, Mappings: []connector.Mapping{{Purpose: "marketing_email", ListID: "aud1"}}})
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		e.clock.Add(time.Minute)
		mc.PersonUnsubscribes("aud1", "anna@example.com")

		hctx, release := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := e.connectors.Reconcile(hctx, e.tenant(), c.ID, "test")
			done <- err
		}()
		<-entered
		_, err := e.connectors.Reconcile(ctx, e.tenant(), c.ID, "test")
		release()
		if !identity.IsCode(err, identity.EConflict) {
			t.Fatalf("a second reconcile while one runs: %v", err)
		}
		if err := <-done; err == nil {
			t.Fatal("the reconcile held at the vendor succeeded")
		}

		if e.db.Dialect == sqldb.Postgres {
			held, free, gone := make(chan struct{}), make(chan struct{}), make(chan struct{})
			go func() {
				defer close(gone)
				_, _ = e.db.TryLock(ctx, "lupa.connector.reconcile."+c.ID, func(context.Context) error {
					close(held)
					<-free
					return nil
				})
			}()
			<-held
			_, err := e.connectors.Reconcile(ctx, e.tenant(), c.ID, "test")
			close(free)
			<-gone
			if !identity.IsCode(err, identity.EConflict) {
				t.Fatalf("a reconcile while another instance holds the lock: %v", err)
			}
		}

		e.reconcile(t, c.ID, 1)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateWithdrawn {
			t.Fatalf("anna: %s", s)
		}
		if n := mc.Count(mailchimptest.OpList); n != 1 {
			t.Fatalf("%d reads of the audience after the held one, want 1", n)
		}
		runs, _, err := e.ids.Audit(ctx, e.tenant(), identity.AuditFilter{ObjectID: c.ID, Action: "connector.reconcile"})
		if err != nil || len(runs) != 2 {
			t.Fatalf("%d reconcile audit rows (%v), want 2: the refused ones ran nothing", len(runs), err)
		}
	})
}

// heldMailchimp is a Mailchimp fake behind a proxy that holds the first read of an
// audience's members until its caller gives up, closing entered when it arrives; every
// other request goes through to the fake.
func heldMailchimp(t *testing.T, e *env) (*mailchimptest.Server, string, <-chan struct{}) {
	mc := mailchimptest.New(t, mailchimptest.Options{Now: e.clock.Now})
	mc.AddList("aud1")
	target, err := url.Parse(mc.URL())
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(target)
	entered := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held := false
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/members") {
			once.Do(func() { held = true })
		}
		if held {
			close(entered)
			<-r.Context().Done()
			return
		}
		fwd.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return mc, srv.URL, entered
}

// TestRunReconcile: the background loop reconciles every enabled connector until its
// context ends.
func TestRunReconcile(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc, c := inboundMailchimp(t, e)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		e.clock.Add(time.Minute)
		mc.PersonUnsubscribes("aud1", "anna@example.com")
		e.clock.Add(time.Minute)

		svc := connector.New(e.db, e.keys, e.svc, e.ids, e.clock.Now, connector.Options{
			HTTPClient:     safehttp.New(safehttp.Options{AllowPrivate: true, Timeout: 2 * time.Second}),
			AllowBaseURL:   true,
			NoRetries:      true,
			ReconcileEvery: 20 * time.Millisecond,
			Log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		ctx, cancel := context.WithCancel(context.Background())
		if e.db.Dialect == sqldb.Postgres {
			// Another instance is reconciling this connector: this one leaves it alone.
			held, release := make(chan struct{}), make(chan struct{})
			go func() {
				_, _ = e.db.TryLock(context.Background(), "lupa.connector.reconcile."+c.ID, func(context.Context) error {
					close(held)
					<-release
					return nil
				})
			}()
			<-held
			lctx, lcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			svc.RunReconcile(lctx)
			lcancel()
			close(release)
			if n := mc.Count(mailchimptest.OpList); n != 0 || e.reconciledAt(t, c.ID) != nil {
				t.Fatalf("reconciled under another instance's lock: %d reads", n)
			}
		}
		done := make(chan struct{})
		go func() {
			svc.RunReconcile(ctx)
			close(done)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for e.reconciledAt(t, c.ID) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("RunReconcile did not return when its context ended")
		}
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateWithdrawn {
			t.Fatalf("anna: %s", s)
		}
		// It was due once: the injected clock did not move, so later ticks left it alone.
		if n := mc.Count(mailchimptest.OpList); n != 1 {
			t.Fatalf("%d reads of the audience, want 1", n)
		}
	})
}
