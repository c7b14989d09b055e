package connector_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/connector"
	"github.com/lupa-cmp/lupa/integrations/hubspot/hubspottest"
	"github.com/lupa-cmp/lupa/integrations/klaviyo/klaviyotest"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

func mailchimpConnector(t *testing.T, e *env, mc *mailchimptest.Server) *connector.Created {
	mc.AddList("aud1", "perm-email")
	return e.connector(t, connector.Input{Vendor: connector.Mailchimp, BaseURL: mc.BaseURL(),
		Credentials: connector.Credentials{APIKey: mc.Key()},
		Mappings:    []connector.Mapping{{Purpose: "marketing_email", ListID: "aud1", MarketingPermissions: []string{"perm-email"}}}})
}

// statuses are the connector's deliveries' statuses of one event type, oldest first.
func statuses(ds []*integrations.Delivery, typ string) []string {
	var out []string
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].EventType == typ {
			out = append(out, ds[i].Status)
		}
	}
	return out
}

func lastOf(t *testing.T, ds []*integrations.Delivery) *integrations.Delivery {
	t.Helper()
	if len(ds) == 0 {
		t.Fatal("no deliveries")
	}
	return ds[0]
}

// TestMailchimpSync: a grant subscribes the person to the mapped audience with its
// marketing permission, a withdrawal unsubscribes them; a refusal of someone who is not in
// the audience and a person without an address are skipped with the reason, not failed.
func TestMailchimpSync(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		c := mailchimpConnector(t, e, mc)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		m, ok := mc.Member("aud1", "anna@example.com")
		if !ok || m.Status != "subscribed" || !m.Permissions["perm-email"] {
			t.Fatalf("after the grant: %+v %v", m, ok)
		}
		e.record(t, "anna@example.com", withdraw("marketing_email"))
		e.step(t)
		if m, _ := mc.Member("aud1", "anna@example.com"); m.Status != "unsubscribed" {
			t.Fatalf("after the withdrawal: %s", m.Status)
		}
		if got := statuses(e.deliveries(t, c.ID), integrations.TypeConsentUpdated); strings.Join(got, ",") != "delivered,delivered" {
			t.Fatalf("statuses %v", got)
		}

		e.record(t, "bert@example.com", deny("marketing_email"))
		e.recordCustomer(t, "C-1", grant("marketing_email"))
		e.step(t)
		ds := e.deliveries(t, c.ID)
		reasons := map[string]bool{}
		for _, d := range ds[:2] {
			if d.Status != integrations.StatusSkipped {
				t.Fatalf("%s: %s, want skipped", d.ID, d.Status)
			}
			reasons[d.LastError] = true
		}
		if !reasons["not a member of audience aud1: nothing to unsubscribe"] || !reasons["the person has no email address in Lupa"] {
			t.Fatalf("reasons %v", reasons)
		}
		if len(mc.Members("aud1")) != 1 {
			t.Fatal("a refusal or an address-less person made a member")
		}
	})
}

// TestComplianceState: Mailchimp refuses to resubscribe someone who unsubscribed through
// its own link. Lupa never forces it: it records the person's withdrawal with Mailchimp as
// the channel.
func TestComplianceState(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		c := mailchimpConnector(t, e, mc)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		mc.PersonUnsubscribes("aud1", "anna@example.com") // the webhook never came
		e.clock.Add(time.Minute)
		e.record(t, "anna@example.com", grant("marketing_email")) // the shop's sync says "granted" again
		e.step(t)
		if m, _ := mc.Member("aud1", "anna@example.com"); m.Status != "unsubscribed" {
			t.Fatalf("forced back to %s", m.Status)
		}
		if st := e.state(t, "anna@example.com", "marketing_email"); st != consent.StateWithdrawn {
			t.Fatalf("Lupa's state %s, want withdrawn", st)
		}
		var channel string
		if err := e.db.Write.Raw(`SELECT channel FROM consent_events WHERE tenant_id = ? AND purpose_key = 'marketing_email'
			ORDER BY seq DESC LIMIT 1`, e.tenant()).Scan(&channel).Error; err != nil {
			t.Fatal(err)
		}
		if channel != connector.Mailchimp {
			t.Fatalf("withdrawal recorded with channel %q", channel)
		}
		d := lastOf(t, e.deliveries(t, c.ID))
		e.step(t) // the withdrawal comes back to the connector: it came from Mailchimp itself
		d = lastOf(t, e.deliveries(t, c.ID))
		if d.Status != integrations.StatusSkipped || !strings.Contains(d.LastError, "came from mailchimp") {
			t.Fatalf("withdrawal echoed back: %s %q", d.Status, d.LastError)
		}
	})
}

// TestVendorFailures: a 429 waits for its Retry-After, a 5xx and a hanging connection are
// retried on the schedule, a 400 with an error body is a final failure with the vendor's
// error code — and nothing is lost in between.
func TestVendorFailures(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		c := mailchimpConnector(t, e, mc)
		pending := func() *integrations.Delivery {
			t.Helper()
			d := lastOf(t, e.deliveries(t, c.ID))
			if d.Status != integrations.StatusPending {
				t.Fatalf("status %s (%s), want pending", d.Status, d.LastError)
			}
			return d
		}

		mc.FailNext(mailchimptest.RateLimited(""))
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		if d := pending(); d.NextAttemptAt.Sub(e.clock.Now()) != 5*time.Second || d.LastStatus != 429 {
			t.Fatalf("429 without Retry-After: next in %s, want the schedule's 5 s", d.NextAttemptAt.Sub(e.clock.Now()))
		}
		mc.FailNext(mailchimptest.ServerError(503))
		e.clock.Add(5 * time.Second)
		e.step(t)
		if d := pending(); d.LastStatus != 503 || d.NextAttemptAt.Sub(e.clock.Now()) != 5*time.Minute {
			t.Fatalf("503: %+v", d)
		}
		mc.FailNext(mailchimptest.Hang())
		e.clock.Add(5 * time.Minute)
		e.step(t)
		if d := pending(); d.LastStatus != 0 || d.LastError == "" {
			t.Fatalf("hang: status %d error %q", d.LastStatus, d.LastError)
		}
		e.clock.Add(30 * time.Minute)
		e.step(t)
		if m, _ := mc.Member("aud1", "anna@example.com"); m.Status != "subscribed" {
			t.Fatalf("after the outage: %q", m.Status)
		}
		if d := lastOf(t, e.deliveries(t, c.ID)); d.Status != integrations.StatusDelivered || d.Attempts != 4 {
			t.Fatalf("finally %s after %d attempts", d.Status, d.Attempts)
		}

		mc.FailNext(mailchimptest.BadRequest("Invalid Resource", "The resource submitted could not be validated."))
		e.record(t, "bert@example.com", grant("marketing_email"))
		e.step(t)
		d := lastOf(t, e.deliveries(t, c.ID))
		if d.Status != integrations.StatusFailed || !strings.Contains(d.LastError, "Invalid Resource") || d.LastStatus != 400 {
			t.Fatalf("400: %s %d %q", d.Status, d.LastStatus, d.LastError)
		}
		if strings.Contains(d.LastError, "bert@") {
			t.Fatal("the error log holds the address")
		}

		// A 429 with Retry-After: the delivery waits that long, and meanwhile the vendor is
		// not called at all (the client pauses every call to the account).
		mc2 := mailchimptest.New(t, mailchimptest.Options{})
		mc2.AddList("aud2")
		c2 := e.connector(t, connector.Input{Vendor: connector.Mailchimp, Name: "second", BaseURL: mc2.BaseURL(),
			Credentials: connector.Credentials{APIKey: mc2.Key()}, Mappings: []connector.Mapping{{Purpose: "personalisation", ListID: "aud2"}}})
		mc2.FailNext(mailchimptest.RateLimited("120"))
		e.record(t, "anna@example.com", grant("personalisation"))
		e.step(t)
		d = lastOf(t, e.deliveries(t, c2.ID))
		if wait := d.NextAttemptAt.Sub(e.clock.Now()); d.Status != integrations.StatusPending || wait != 120*time.Second || d.LastStatus != 429 {
			t.Fatalf("429 with Retry-After: %s, next attempt in %s, status %d", d.Status, wait, d.LastStatus)
		}
		e.clock.Add(120 * time.Second)
		e.step(t)
		if n := len(mc2.Requests()); n != 1 {
			t.Fatalf("the vendor was called %d times during its Retry-After pause", n)
		}
	})
}

// TestStaleSubscribeNeverSent: while Mailchimp is down a person grants and then withdraws;
// only the withdrawal reaches Mailchimp, and replaying the failed grant afterwards sends
// nothing.
func TestStaleSubscribeNeverSent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		c := mailchimpConnector(t, e, mc)
		mc.PutMember("aud1", "anna@example.com", "subscribed", e.clock.Now())
		mc.FailNext(mailchimptest.BadRequest("Invalid Resource", "rejected"))
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		e.record(t, "anna@example.com", withdraw("marketing_email"))
		e.step(t)
		if m, _ := mc.Member("aud1", "anna@example.com"); m.Status != "unsubscribed" {
			t.Fatalf("status %s", m.Status)
		}
		n, err := e.engine.Replay(context.Background(), e.tenant(), c.ID, "", "test")
		if err != nil || n != 0 {
			t.Fatalf("replay queued %d (%v), want 0: a newer withdrawal was delivered", n, err)
		}
		e.step(t)
		if m, _ := mc.Member("aud1", "anna@example.com"); m.Status != "unsubscribed" || mc.Count(mailchimptest.OpUpsert) != 1 {
			t.Fatalf("stale subscribe sent: %s, %d upserts", m.Status, mc.Count(mailchimptest.OpUpsert))
		}
	})
}

// TestHubSpotSync: subscription statuses with the legal basis mapped from the purpose.
func TestHubSpotSync(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		hs := hubspottest.New(t, hubspottest.Options{})
		hs.AddSubscription(7001, "Newsletter")
		e.connector(t, connector.Input{Vendor: connector.HubSpot, BaseURL: hs.URL(),
			Credentials: connector.Credentials{AccessToken: hs.Token(), ClientSecret: hs.ClientSecret()},
			Mappings:    []connector.Mapping{{Purpose: "marketing_email", SubscriptionID: 7001}}})
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		ct, ok := hs.Contact("anna@example.com")
		st := ct.Statuses[7001]
		if !ok || st.State != "SUBSCRIBED" || st.LegalBasis != "CONSENT_WITH_NOTICE" || !strings.Contains(st.LegalBasisExplanation, "marketing_email") {
			t.Fatalf("after the grant: %+v", st)
		}
		e.record(t, "anna@example.com", withdraw("marketing_email"))
		e.step(t)
		if ct, _ := hs.Contact("anna@example.com"); ct.Statuses[7001].State != "UNSUBSCRIBED" {
			t.Fatalf("after the withdrawal: %+v", ct.Statuses[7001])
		}
	})
}

// TestKlaviyoSync: bulk subscribe and unsubscribe jobs, one profile each.
func TestKlaviyoSync(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		kv := klaviyotest.New(t, klaviyotest.Options{})
		kv.AddList("L1")
		e.connector(t, connector.Input{Vendor: connector.Klaviyo, BaseURL: kv.URL(),
			Credentials: connector.Credentials{APIKey: kv.Key()},
			Mappings:    []connector.Mapping{{Purpose: "marketing_email", ListID: "L1"}}})
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		if p, ok := kv.Profile("anna@example.com"); !ok || p.Consent != "SUBSCRIBED" || !p.Lists["L1"] {
			t.Fatalf("after the grant: %+v", p)
		}
		e.record(t, "anna@example.com", withdraw("marketing_email"))
		e.step(t)
		if p, _ := kv.Profile("anna@example.com"); p.Consent != "UNSUBSCRIBED" {
			t.Fatalf("after the withdrawal: %+v", p)
		}
	})
}

// changeEmail replaces the person's address the way the account's address change does,
// with its domain event.
func (e *env) changeEmail(t *testing.T, from, to string) {
	t.Helper()
	ctx := context.Background()
	sid := e.subject(t, from)
	subj, err := e.ids.SubjectByID(ctx, e.db.Write, e.tenant(), sid)
	if err != nil {
		t.Fatal(err)
	}
	hashes := e.ids.LookupHashes(e.tenant(), identity.Identifier{Kind: identity.IDEmail, Value: from})
	if err := e.db.Write.Exec("DELETE FROM identifiers WHERE tenant_id = ? AND kind = 'email' AND value_hash IN ?", e.tenant(), hashes).Error; err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.ids.AttachIdentifier(ctx, e.db.Write, subj, identity.Identifier{Kind: identity.IDEmail, Value: to}); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if err := e.db.Write.Exec(`INSERT INTO domain_events (tenant_id, id, type, schema_version, subject_id, subject_seq, payload, created_at)
		VALUES (?, ?, 'subject.email_changed', 1, ?, ?, ?, ?)`, e.tenant(), identity.NewID(), sid, now.UnixMilli(),
		`{"subject":"`+subj.Pseudonym+`","subject_id":"`+sid+`","channel":"account","at":"`+now.Format(time.RFC3339)+`"}`, now.UnixMilli()).Error; err != nil {
		t.Fatal(err)
	}
}

// TestEmailChangeMovesRecords: when the person's address changes, each vendor's record is
// moved to the new address (Mailchimp's member id is the hash of the old one), not
// duplicated, and later changes go to the new address.
func TestEmailChangeMovesRecords(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mailchimpConnector(t, e, mc)
		hs := hubspottest.New(t, hubspottest.Options{})
		hs.AddSubscription(7001, "Newsletter")
		e.connector(t, connector.Input{Vendor: connector.HubSpot, BaseURL: hs.URL(),
			Credentials: connector.Credentials{AccessToken: hs.Token()},
			Mappings:    []connector.Mapping{{Purpose: "marketing_email", SubscriptionID: 7001}}})
		kv := klaviyotest.New(t, klaviyotest.Options{})
		kv.AddList("L1")
		e.connector(t, connector.Input{Vendor: connector.Klaviyo, BaseURL: kv.URL(), Credentials: connector.Credentials{APIKey: kv.Key()},
			Mappings: []connector.Mapping{{Purpose: "marketing_email", ListID: "L1"}}})

		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		e.changeEmail(t, "anna@example.com", "anna.k@example.org")
		e.step(t)
		if ms := mc.Members("aud1"); len(ms) != 1 || ms[0].EmailAddress != "anna.k@example.org" || ms[0].Status != "subscribed" {
			t.Fatalf("Mailchimp members after the change: %+v", ms)
		}
		if _, old := hs.Contact("anna@example.com"); old || hs.ContactCount() != 1 {
			t.Fatalf("HubSpot: old contact still there or duplicated (%d contacts)", hs.ContactCount())
		}
		if p, ok := kv.Profile("anna.k@example.org"); !ok || kv.ProfileCount() != 1 || p.Consent != "SUBSCRIBED" {
			t.Fatalf("Klaviyo: %+v, %d profiles", p, kv.ProfileCount())
		}
		e.record(t, "anna.k@example.org", withdraw("marketing_email"))
		e.step(t)
		if ms := mc.Members("aud1"); len(ms) != 1 || ms[0].Status != "unsubscribed" {
			t.Fatalf("after the withdrawal: %+v", ms)
		}
		if ct, _ := hs.Contact("anna.k@example.org"); ct.Statuses[7001].State != "UNSUBSCRIBED" {
			t.Fatalf("HubSpot after the withdrawal: %+v", ct.Statuses)
		}
	})
}

// TestErasureAtVendors: an approved erasure deletes the person at every vendor and the
// connector forgets the address it held.
func TestErasureAtVendors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mcc := mailchimpConnector(t, e, mc)
		hs := hubspottest.New(t, hubspottest.Options{})
		hs.AddSubscription(7001, "Newsletter")
		e.connector(t, connector.Input{Vendor: connector.HubSpot, BaseURL: hs.URL(),
			Credentials: connector.Credentials{AccessToken: hs.Token()},
			Mappings:    []connector.Mapping{{Purpose: "marketing_email", SubscriptionID: 7001}}})
		kv := klaviyotest.New(t, klaviyotest.Options{})
		kv.AddList("L1")
		e.connector(t, connector.Input{Vendor: connector.Klaviyo, BaseURL: kv.URL(), Credentials: connector.Credentials{APIKey: kv.Key()},
			Mappings: []connector.Mapping{{Purpose: "marketing_email", ListID: "L1"}}})
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		sid := e.subject(t, "anna@example.com")
		if n := e.count(t, "connector_members", "tenant_id = ? AND subject_id = ?", e.tenant(), sid); n != 3 {
			t.Fatalf("%d connector members, want 3", n)
		}
		e.approveErasure(t, sid)
		e.step(t)
		if !mc.Deleted("aud1", "anna@example.com") || !hs.Deleted("anna@example.com") || !kv.Deleted("anna@example.com") {
			t.Fatalf("erased: mailchimp %v hubspot %v klaviyo %v", mc.Deleted("aud1", "anna@example.com"),
				hs.Deleted("anna@example.com"), kv.Deleted("anna@example.com"))
		}
		if n := e.count(t, "connector_members", "tenant_id = ? AND subject_id = ?", e.tenant(), sid); n != 0 {
			t.Fatalf("%d connector members left", n)
		}
		if got := statuses(e.deliveries(t, mcc.ID), integrations.TypeSubjectErasureApproved); len(got) != 1 || got[0] != integrations.StatusDelivered {
			t.Fatalf("erasure delivery %v", got)
		}
	})
}

// approveErasure writes the event the request queue writes when it approves the erasure
// of the subject.
func (e *env) approveErasure(t *testing.T, sid string) {
	t.Helper()
	var pseudonym string
	var seq int64
	if err := e.db.Write.Raw("SELECT COALESCE(pseudonym, '') FROM subjects WHERE tenant_id = ? AND id = ?", e.tenant(), sid).Scan(&pseudonym).Error; err != nil {
		t.Fatal(err)
	}
	if err := e.db.Write.Raw("SELECT max(subject_seq) FROM domain_events WHERE tenant_id = ? AND subject_id = ?", e.tenant(), sid).Scan(&seq).Error; err != nil {
		t.Fatal(err)
	}
	if err := e.db.Write.Exec(`INSERT INTO domain_events (tenant_id, id, type, schema_version, subject_id, subject_seq, payload, created_at)
		VALUES (?, ?, 'subject.erasure_approved', 1, ?, ?, ?, ?)`, e.tenant(), identity.NewID(), sid, seq+1,
		`{"subject":"`+pseudonym+`","subject_id":"`+sid+`","at":"2026-11-26T10:00:00Z","request_id":"dsr-1"}`, e.clock.Now().UnixMilli()).Error; err != nil {
		t.Fatal(err)
	}
}

// TestErasureReachesMergedPersons: a CIAM merged Anna's account into Bob's after the
// connector had written each under their own subject. The erasure of the survivor is the
// erasure of both: it deletes both records at the vendor, and the connector forgets the
// address it wrote under the merged subject too, before its acknowledgement confirms the
// erasure.
func TestErasureReachesMergedPersons(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mcc := mailchimpConnector(t, e, mc)
		e.record(t, "bob@example.com", grant("marketing_email"))
		e.step(t)
		e.clock.Add(time.Second)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		anna, bob := e.subject(t, "anna@example.com"), e.subject(t, "bob@example.com")
		if _, err := e.svc.MergePersons(context.Background(), e.tenant(), identity.Identifier{Kind: identity.IDEmail, Value: "anna@example.com"},
			identity.Identifier{Kind: identity.IDEmail, Value: "bob@example.com"}); err != nil {
			t.Fatal(err)
		}
		e.step(t)
		if n := e.count(t, "connector_members", "tenant_id = ? AND subject_id = ?", e.tenant(), anna); n != 1 {
			t.Fatalf("%d addresses under the merged subject before the erasure, want 1", n)
		}

		e.approveErasure(t, bob)
		e.step(t)
		for _, a := range []string{"anna@example.com", "bob@example.com"} {
			if !mc.Deleted("aud1", a) {
				t.Errorf("%s is still at mailchimp after the erasure was acknowledged", a)
			}
		}
		if n := e.count(t, "connector_members", "tenant_id = ? AND subject_id IN ?", e.tenant(), []string{anna, bob}); n != 0 {
			t.Errorf("%d addresses kept after the erasure", n)
		}
		if got := statuses(e.deliveries(t, mcc.ID), integrations.TypeSubjectErasureApproved); len(got) != 1 || got[0] != integrations.StatusDelivered {
			t.Fatalf("erasure delivery %v", got)
		}
	})
}

// TestErasureAfterLupaErased: the person was erased in Lupa (the evidence sweep, say)
// before the approved erasure reached the connector, taking the addresses with it. The
// connector cannot erase at the vendor, and must not acknowledge as if it had: the
// acknowledgement would be the data map's confirmation that the vendor holds nothing.
func TestErasureAfterLupaErased(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mcc := mailchimpConnector(t, e, mc)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		sid := e.subject(t, "anna@example.com")
		e.approveErasure(t, sid)
		if err := e.svc.EraseSubject(context.Background(), e.tenant(), sid, "evidence_ended", identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		e.step(t)
		if mc.Deleted("aud1", "anna@example.com") {
			t.Fatal("deleted without an address?")
		}
		got := statuses(e.deliveries(t, mcc.ID), integrations.TypeSubjectErasureApproved)
		if len(got) != 1 || got[0] != integrations.StatusFailed {
			t.Fatalf("erasure delivery %v, want failed: the vendor was never told", got)
		}

		// A person Lupa never had an address for was never written there: skipped.
		e.recordCustomer(t, "C-9", grant("marketing_email"))
		e.step(t)
		var nobody string
		if err := e.db.Write.Raw(`SELECT subject_id FROM identifiers WHERE tenant_id = ? AND kind = ?`, e.tenant(),
			identity.IDCustomerNumber).Scan(&nobody).Error; err != nil || nobody == "" {
			t.Fatalf("the customer: %q %v", nobody, err)
		}
		e.approveErasure(t, nobody)
		e.step(t)
		if got := statuses(e.deliveries(t, mcc.ID), integrations.TypeSubjectErasureApproved); len(got) != 2 || got[1] != integrations.StatusSkipped {
			t.Fatalf("erasure deliveries %v, want the second skipped", got)
		}
	})
}

// TestConnectorAdmin: credentials are sealed at rest and never returned; bad input is
// refused field by field and changes nothing; a disabled connector collects its changes
// and sends them when enabled again; another tenant cannot see it.
func TestConnectorAdmin(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		c := mailchimpConnector(t, e, mc)
		if !strings.HasPrefix(c.InboundPath, "/hooks/mailchimp/"+e.tenant()+"/"+c.ID+"?secret=") {
			t.Fatalf("inbound path %q", c.InboundPath)
		}
		var raw [][]byte
		if err := e.db.Write.Raw("SELECT credentials FROM connectors WHERE tenant_id = ?", e.tenant()).Scan(&raw).Error; err != nil {
			t.Fatal(err)
		}
		if len(raw) != 1 || bytes.Contains(raw[0], []byte(mc.Key())) || bytes.Contains(raw[0], []byte("api_key")) {
			t.Fatal("credentials are not sealed at rest")
		}

		_, err := e.connectors.Create(context.Background(), e.tenant(), connector.Input{Vendor: "sendgrid", Name: "",
			RecipientKind: "partner", Mappings: []connector.Mapping{{Purpose: "Marketing Email"}}}, "test")
		fields := map[string]bool{}
		var ie *identity.Error
		if !asIdentityError(err, &ie) {
			t.Fatalf("bad input: %v", err)
		}
		for _, f := range ie.Fields {
			fields[f.Field] = true
		}
		for _, f := range []string{"vendor", "name", "recipient_kind", "mappings[0].purpose"} {
			if !fields[f] {
				t.Errorf("no error for %s: %v", f, ie.Fields)
			}
		}
		_, err = e.connectors.Create(context.Background(), e.tenant(), connector.Input{Vendor: connector.HubSpot, Name: "x",
			RecipientKind: "processor", Mappings: []connector.Mapping{{Purpose: "marketing_email", SubscriptionID: 1}}}, "test")
		if !asIdentityError(err, &ie) || ie.Fields[0].Field != "credentials.access_token" {
			t.Fatalf("missing token: %v", err)
		}
		if list, _ := e.connectors.List(context.Background(), e.tenant()); len(list) != 1 {
			t.Fatalf("%d connectors after refused input", len(list))
		}

		if _, err := e.connectors.SetStatus(context.Background(), e.tenant(), c.ID, connector.StatusDisabled, "paused", "test"); err != nil {
			t.Fatal(err)
		}
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		if len(mc.Members("aud1")) != 0 {
			t.Fatal("a disabled connector sent")
		}
		if _, err := e.connectors.SetStatus(context.Background(), e.tenant(), c.ID, connector.StatusEnabled, "", "test"); err != nil {
			t.Fatal(err)
		}
		e.step(t)
		if m, _ := mc.Member("aud1", "anna@example.com"); m.Status != "subscribed" {
			t.Fatal("the backlog was not sent after enabling")
		}

		other, _, err := e.ids.CreateTenant(context.Background(), identity.TenantInput{Name: "Other Oy", LegalName: "Other Oy",
			ContactEmail: "dpo@other.example"}, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.connectors.Get(context.Background(), other.ID, c.ID); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("another tenant reads the connector: %v", err)
		}
	})
}

func asIdentityError(err error, target **identity.Error) bool { return errors.As(err, target) }

// TestKlaviyoOwnUnsubscribeStands: a Klaviyo subscribe would lift the person's own
// unsubscribe. When they unsubscribed at Klaviyo after the grant being sent, the subscribe
// is not sent and the withdrawal is recorded in Lupa; a grant made after the unsubscribe
// (the person chose again) is sent.
func TestKlaviyoOwnUnsubscribeStands(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		kv := klaviyotest.New(t, klaviyotest.Options{Now: e.clock.Now})
		kv.AddList("L1")
		c := e.connector(t, connector.Input{Vendor: connector.Klaviyo, BaseURL: kv.URL(), Credentials: connector.Credentials{APIKey: kv.Key()},
			Mappings: []connector.Mapping{{Purpose: "marketing_email", ListID: "L1"}}})
		if _, err := e.connectors.SetStatus(context.Background(), e.tenant(), c.ID, connector.StatusDisabled, "paused", "test"); err != nil {
			t.Fatal(err)
		}
		e.record(t, "anna@example.com", grant("marketing_email")) // queued while the connector is paused
		e.clock.Add(time.Minute)
		kv.PersonUnsubscribes("anna@example.com") // she unsubscribes from an older newsletter
		if _, err := e.connectors.SetStatus(context.Background(), e.tenant(), c.ID, connector.StatusEnabled, "", "test"); err != nil {
			t.Fatal(err)
		}
		e.step(t)
		if p, _ := kv.Profile("anna@example.com"); p.Consent != "UNSUBSCRIBED" {
			t.Fatalf("her unsubscribe was lifted: %+v", p)
		}
		if st := e.state(t, "anna@example.com", "marketing_email"); st != consent.StateWithdrawn {
			t.Fatalf("Lupa's state %s, want withdrawn", st)
		}
		e.clock.Add(time.Minute)
		e.record(t, "anna@example.com", grant("marketing_email")) // she subscribes again in the shop
		e.step(t)
		e.step(t)
		if p, _ := kv.Profile("anna@example.com"); p.Consent != "SUBSCRIBED" {
			t.Fatalf("her newer grant was not sent: %+v", p)
		}
	})
}

// TestMoveOntoExistingRecord: the new address already has a Mailchimp member of its own; the
// old member is unsubscribed rather than left subscribed beside it, and the person's current
// state is written to the new one.
func TestMoveOntoExistingRecord(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mailchimpConnector(t, e, mc)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		mc.PutMember("aud1", "anna.k@example.org", "unsubscribed", e.clock.Now())
		e.changeEmail(t, "anna@example.com", "anna.k@example.org")
		e.step(t)
		old, _ := mc.Member("aud1", "anna@example.com")
		cur, _ := mc.Member("aud1", "anna.k@example.org")
		if old.Status != "unsubscribed" || cur.Status != "subscribed" {
			t.Fatalf("old %q, new %q; want unsubscribed and subscribed", old.Status, cur.Status)
		}
	})
}

// TestInstancesShareVendorLimits: with LUPA_CONNECTOR_INSTANCES at 5, one instance keeps to
// a fifth of Mailchimp's 10 connections, however many changes wait.
func TestInstancesShareVendorLimits(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.connectors = connector.New(e.db, e.keys, e.svc, e.ids, e.clock.Now, connector.Options{HTTPClient: http.DefaultClient,
			AllowBaseURL: true, NoRetries: true, Instances: 5})
		router := integrations.Router{Webhooks: e.hooks, Connectors: e.connectors}
		e.engine = integrations.New(e.db, e.svc, router, router, e.clock.Now, integrations.Options{Batch: 50})
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mc.SetLatency(20 * time.Millisecond)
		mailchimpConnector(t, e, mc)
		for i := range 30 {
			e.record(t, fmt.Sprintf("p%d@example.com", i), grant("marketing_email"))
		}
		e.step(t)
		if n := len(mc.Members("aud1")); n != 30 {
			t.Fatalf("%d members, want 30", n)
		}
		if m := mc.MaxInFlight(); m > 2 || m < 1 {
			t.Fatalf("%d calls at once to Mailchimp, want at most 2 (10 / 5 instances)", m)
		}
	})
}
