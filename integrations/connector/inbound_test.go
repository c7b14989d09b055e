package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/connector"
	"github.com/lupa-cmp/lupa/integrations/hubspot"
	"github.com/lupa-cmp/lupa/integrations/hubspot/hubspottest"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

// inbound serves the connectors' InboundHandler with its own URL as Lupa's public URL.
func (e *env) inbound(t *testing.T) *httptest.Server {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	h = e.connectors.InboundHandler(srv.URL)
	t.Cleanup(srv.Close)
	return srv
}

// inboundMailchimp is a Mailchimp connector mapping marketing_email to audience aud1, on a
// fake that keeps the test's clock.
func inboundMailchimp(t *testing.T, e *env) (*mailchimptest.Server, *connector.Created) {
	t.Helper()
	mc := mailchimptest.New(t, mailchimptest.Options{Now: e.clock.Now})
	mc.AddList("aud1", "perm-email")
	c := e.connector(t, connector.Input{Vendor: connector.Mailchimp, BaseURL: mc.BaseURL(),
		Credentials: connector.Credentials{APIKey: mc.Key()},
		Mappings:    []connector.Mapping{{Purpose: "marketing_email", ListID: "aud1", MarketingPermissions: []string{"perm-email"}}}})
	return mc, c
}

// inboundHubSpot maps marketing_email to subscription 7001 and, when liPurpose is set,
// that purpose to 7002.
func inboundHubSpot(t *testing.T, e *env, liPurpose string) (*hubspottest.Server, *connector.Created) {
	t.Helper()
	hs := hubspottest.New(t, hubspottest.Options{Now: e.clock.Now})
	hs.AddSubscription(7001, "Newsletter")
	hs.AddSubscription(7002, "Loyalty offers")
	maps := []connector.Mapping{{Purpose: "marketing_email", SubscriptionID: 7001}}
	if liPurpose != "" {
		maps = append(maps, connector.Mapping{Purpose: liPurpose, SubscriptionID: 7002})
	}
	c := e.connector(t, connector.Input{Vendor: connector.HubSpot, BaseURL: hs.URL(),
		Credentials: connector.Credentials{AccessToken: hs.Token(), ClientSecret: hs.ClientSecret()}, Mappings: maps})
	return hs, c
}

// legitimateInterest creates a person-level purpose whose legal basis is legitimate
// interest, with a published first version.
func (e *env) legitimateInterest(t *testing.T, key string) {
	t.Helper()
	ctx := context.Background()
	p, err := e.svc.CreatePurpose(ctx, consent.Purpose{TenantID: e.tenant(), Key: key, Level: consent.LevelPerson,
		LegalBasis: consent.BasisLegitimateInterest}, "test")
	if err != nil {
		t.Fatalf("create purpose: %v", err)
	}
	texts := map[string]consent.Text{
		"fi": {Title: "Kanta-asiakasedut", Description: "Lähetämme etuja ostostesi perusteella."},
		"en": {Title: "Loyalty offers", Description: "We send offers based on your purchases."},
	}
	if _, err := e.svc.CreateVersion(ctx, e.tenant(), p.Key, consent.VersionInput{Texts: texts,
		Details: &consent.VersionDetails{DataCategories: []string{"purchase history"}}}, "test"); err != nil {
		t.Fatalf("create version: %v", err)
	}
	if _, err := e.svc.PublishVersion(ctx, e.tenant(), p.Key, 1, "test"); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// lastEvent is the person's newest ledger event of the purpose.
type ledgerEvent struct {
	Decision, Channel, Reason, Method string
}

func (e *env) lastEvent(t *testing.T, email, purpose string) ledgerEvent {
	t.Helper()
	var out []ledgerEvent
	if err := e.db.Write.Raw(`SELECT decision, channel, reason, method FROM consent_events
		WHERE tenant_id = ? AND subject_id = ? AND purpose_key = ? ORDER BY seq DESC LIMIT 1`,
		e.tenant(), e.subject(t, email), purpose).Scan(&out).Error; err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no events of %s", purpose)
	}
	return out[0]
}

func (e *env) events(t *testing.T) int64 {
	return e.count(t, "consent_events", "tenant_id = ?", e.tenant())
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustStatus(t *testing.T, what string, want int, got int, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s: status %d, want %d", what, got, want)
	}
}

func do(t *testing.T, method, target, contentType string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMailchimpInbound: Mailchimp checks the registered URL with a GET; a person's
// unsubscribe becomes a withdrawal in Lupa with Mailchimp as channel, and the engine then
// skips sending it back; a wrong secret records nothing; subscribe, profile, upemail and a
// hard bounce change nothing; a spam complaint withdraws; an unknown person is ignored.
func TestMailchimpInbound(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv := e.inbound(t)
		mc, c := inboundMailchimp(t, e)
		target := srv.URL + c.InboundPath
		u, _ := url.Parse(target)
		wrong := srv.URL + u.Path + "?secret=" + url.QueryEscape(strings.Repeat("x", 43))

		st, err := mc.Ping(ctx, target)
		mustStatus(t, "URL check", http.StatusOK, st, err)
		mustStatus(t, "HEAD", http.StatusOK, do(t, http.MethodHead, target, "", nil), nil)
		st, err = mc.Ping(ctx, wrong)
		mustStatus(t, "URL check with a wrong secret", http.StatusNotFound, st, err)
		st, err = mc.Ping(ctx, srv.URL+u.Path)
		mustStatus(t, "URL check without a secret", http.StatusNotFound, st, err)

		e.record(t, "anna@example.com", grant("marketing_email"))
		e.record(t, "bert@example.com", grant("marketing_email"))
		e.record(t, "cecilia@example.com", grant("marketing_email"))
		e.step(t)
		e.clock.Add(time.Minute)
		before := e.events(t)

		st, err = mc.SendUnsubscribe(ctx, wrong, "aud1", "anna@example.com")
		mustStatus(t, "wrong secret", http.StatusNotFound, st, err)
		st, err = mc.SendUnsubscribe(ctx, srv.URL+u.Path, "aud1", "anna@example.com")
		mustStatus(t, "no secret", http.StatusNotFound, st, err)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateGranted || e.events(t) != before {
			t.Fatalf("a webhook with a wrong secret recorded something: %s", s)
		}

		// Nothing a person "gives" at Mailchimp is a consent in Lupa.
		sub := mc.UnsubscribeForm("aud1", "dora@example.com", "")
		sub.Set("type", "subscribe")
		sub.Del("data[action]")
		sub.Del("data[reason]")
		st, err = mc.SendWebhook(ctx, target, sub)
		mustStatus(t, "subscribe", http.StatusOK, st, err)
		prof := mc.UnsubscribeForm("aud1", "anna@example.com", "")
		prof.Set("type", "profile")
		st, err = mc.SendWebhook(ctx, target, prof)
		mustStatus(t, "profile", http.StatusOK, st, err)
		st, err = mc.SendUpemail(ctx, target, "aud1", "bert@example.com", "bert@elsewhere.example")
		mustStatus(t, "upemail", http.StatusOK, st, err)
		st, err = mc.SendCleaned(ctx, target, "aud1", "cecilia@example.com", "hard")
		mustStatus(t, "cleaned (hard bounce)", http.StatusOK, st, err)
		if e.events(t) != before {
			t.Fatal("subscribe, profile, upemail or a hard bounce recorded something")
		}

		// The person's own unsubscribe.
		st, err = mc.SendUnsubscribe(ctx, target, "aud1", "Anna@Example.com ")
		mustStatus(t, "unsubscribe", http.StatusOK, st, err)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateWithdrawn {
			t.Fatalf("anna: %s, want withdrawn", s)
		}
		ev := e.lastEvent(t, "anna@example.com", "marketing_email")
		if ev.Channel != connector.Mailchimp || ev.Decision != consent.Withdrawn || ev.Reason != connector.ReasonVendorUnsubscribe ||
			ev.Method != consent.MethodSystem {
			t.Fatalf("ledger event %+v", ev)
		}
		// Again (Mailchimp retries, the reconcile overlaps): nothing more.
		n := e.events(t)
		st, err = mc.SendUnsubscribe(ctx, target, "aud1", "anna@example.com")
		mustStatus(t, "repeated unsubscribe", http.StatusOK, st, err)
		if e.events(t) != n {
			t.Fatal("a repeated unsubscribe recorded again")
		}

		// A spam complaint is the person's refusal too.
		st, err = mc.SendCleaned(ctx, target, "aud1", "bert@example.com", "abuse")
		mustStatus(t, "cleaned (abuse)", http.StatusOK, st, err)
		if ev := e.lastEvent(t, "bert@example.com", "marketing_email"); ev.Decision != consent.Withdrawn ||
			ev.Reason != connector.ReasonVendorSpamComplaint || ev.Channel != connector.Mailchimp {
			t.Fatalf("spam complaint: %+v", ev)
		}

		// Someone Lupa has never heard of: answered, nothing recorded.
		n = e.events(t)
		st, err = mc.SendWebhook(ctx, target, mc.UnsubscribeForm("aud1", "zoe@example.com", ""))
		mustStatus(t, "unknown person", http.StatusOK, st, err)
		if e.events(t) != n {
			t.Fatal("an unknown person's unsubscribe recorded something")
		}

		// The withdrawal comes back to the same connector: it came from Mailchimp itself.
		calls := len(mc.Requests())
		e.step(t)
		ds := e.deliveries(t, c.ID) // newest first: the two withdrawals, then the three grants
		if len(ds) != 5 {
			t.Fatalf("%d deliveries, want 5", len(ds))
		}
		for _, d := range ds[:2] {
			if d.EventType != integrations.TypeConsentUpdated || d.Status != integrations.StatusSkipped ||
				!strings.Contains(d.LastError, "came from mailchimp") {
				t.Fatalf("withdrawal from Mailchimp delivered back: %s %s %q", d.EventType, d.Status, d.LastError)
			}
		}
		if n := len(mc.Requests()) - calls; n != 0 {
			t.Fatalf("%d calls to Mailchimp", n)
		}

		// Malformed, oversized, another audience.
		mustStatus(t, "JSON body", http.StatusBadRequest, do(t, http.MethodPost, target, "application/json", []byte(`{"type":"unsubscribe"}`)), nil)
		mustStatus(t, "unknown type", http.StatusBadRequest, do(t, http.MethodPost, target, "application/x-www-form-urlencoded",
			[]byte("type=nonsense&data[email]=a%40example.com&data[list_id]=aud1")), nil)
		big := "type=unsubscribe&data[list_id]=aud1&data[email]=a%40example.com&pad=" + strings.Repeat("x", 70<<10)
		mustStatus(t, "oversized", http.StatusRequestEntityTooLarge, do(t, http.MethodPost, target, "application/x-www-form-urlencoded", []byte(big)), nil)
		st, err = mc.SendWebhook(ctx, target, mc.UnsubscribeForm("other-audience", "cecilia@example.com", ""))
		mustStatus(t, "another audience", http.StatusBadRequest, st, err)
		if s := e.state(t, "cecilia@example.com", "marketing_email"); s != consent.StateGranted {
			t.Fatalf("cecilia: %s", s)
		}
	})
}

// TestMailchimpInboundStale: an unsubscribe at Mailchimp older than the person's grant in
// Lupa (the webhook came late) leaves the grant standing.
func TestMailchimpInboundStale(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv := e.inbound(t)
		mc, c := inboundMailchimp(t, e)
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		e.clock.Add(time.Minute)
		late := mc.UnsubscribeForm("aud1", "anna@example.com", "") // fired now…
		e.clock.Add(time.Minute)
		e.record(t, "anna@example.com", withdraw("marketing_email"))
		e.clock.Add(time.Minute)
		e.record(t, "anna@example.com", grant("marketing_email")) // …the person granted again since
		st, err := mc.SendWebhook(ctx, srv.URL+c.InboundPath, late)
		mustStatus(t, "late unsubscribe", http.StatusOK, st, err)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateGranted {
			t.Fatalf("a late unsubscribe overrode a newer grant: %s", s)
		}
		if ev := e.lastEvent(t, "anna@example.com", "marketing_email"); ev.Channel == connector.Mailchimp {
			t.Fatalf("recorded %+v", ev)
		}
	})
}

// TestInboundNotFound: only an enabled connector of the vendor, under its own tenant,
// answers; everything else is 404 and records nothing.
func TestInboundNotFound(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv := e.inbound(t)
		mc, c := inboundMailchimp(t, e)
		hs, hc := inboundHubSpot(t, e, "")
		other, _, err := e.ids.CreateTenant(ctx, identity.TenantInput{Slug: "other-oy", Name: "Other", LegalName: "Other Oy",
			BusinessID: "7654321-0", ContactEmail: "privacy@other.example", Address: "Toinen katu 2, 00100 Helsinki",
			Website: "https://other.example", PrivacyPolicyURL: "https://other.example/privacy", Jurisdiction: "FI",
			DefaultLanguage: "fi"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		e.record(t, "anna@example.com", grant("marketing_email"))
		e.step(t)
		e.clock.Add(time.Minute)
		before := e.events(t)
		secret := c.InboundPath[strings.Index(c.InboundPath, "?"):]

		for name, path := range map[string]string{
			"another tenant":     "/hooks/mailchimp/" + other.ID + "/" + c.ID + secret,
			"unknown connector":  "/hooks/mailchimp/" + e.tenant() + "/" + connector.IDPrefix + "nosuch" + secret,
			"not a connector id": "/hooks/mailchimp/" + e.tenant() + "/x" + secret,
			"hubspot's":          "/hooks/mailchimp/" + e.tenant() + "/" + hc.ID + secret,
			"no such vendor":     "/hooks/klaviyo/" + e.tenant() + "/" + c.ID + secret,
		} {
			st, err := mc.SendUnsubscribe(ctx, srv.URL+path, "aud1", "anna@example.com")
			mustStatus(t, name, http.StatusNotFound, st, err)
			st, err = mc.Ping(ctx, srv.URL+path)
			mustStatus(t, name+" (GET)", http.StatusNotFound, st, err)
		}
		st, err := hs.SendOptOut(ctx, srv.URL+"/hooks/hubspot/"+e.tenant()+"/"+c.ID, "anna@example.com", 0)
		mustStatus(t, "a mailchimp connector on hubspot's path", http.StatusNotFound, st, err)
		st, err = hs.SendOptOut(ctx, srv.URL+"/hooks/hubspot/"+other.ID+"/"+hc.ID, "anna@example.com", 0)
		mustStatus(t, "hubspot under another tenant", http.StatusNotFound, st, err)

		// A disabled connector (not loaded before in this process).
		mc2 := mailchimptest.New(t, mailchimptest.Options{Now: e.clock.Now})
		mc2.AddList("aud2")
		c2 := e.connector(t, connector.Input{Vendor: connector.Mailchimp, BaseURL: mc2.BaseURL(),
			Credentials: connector.Credentials{APIKey: mc2.Key()}, Mappings: []connector.Mapping{{Purpose: "marketing_email", ListID: "aud2"}}})
		if _, err := e.connectors.SetStatus(ctx, e.tenant(), c2.ID, connector.StatusDisabled, "paused", "test"); err != nil {
			t.Fatal(err)
		}
		st, err = mc2.SendWebhook(ctx, srv.URL+c2.InboundPath, mc2.UnsubscribeForm("aud2", "anna@example.com", ""))
		mustStatus(t, "disabled connector", http.StatusNotFound, st, err)

		if e.events(t) != before || e.state(t, "anna@example.com", "marketing_email") != consent.StateGranted {
			t.Fatal("something was recorded")
		}
	})
}

// TestHubSpotInbound: HubSpot's signed opt-outs become withdrawals of the purposes mapped
// to the subscription (objections for a legitimate-interest purpose), an opt-out of all
// email touches every mapped purpose; a bad or stale signature is 401 and records nothing;
// opt-ins and unknown people change nothing.
func TestHubSpotInbound(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv := e.inbound(t)
		e.legitimateInterest(t, "loyalty_offers")
		hs, c := inboundHubSpot(t, e, "loyalty_offers")
		target := srv.URL + "/hooks/hubspot/" + e.tenant() + "/" + c.ID
		if !strings.HasSuffix(target, c.InboundPath) {
			t.Fatalf("inbound path %q", c.InboundPath)
		}
		li := consent.DecisionInput{Purpose: "loyalty_offers", Version: 1, Decision: consent.Granted}
		e.record(t, "anna@example.com", grant("marketing_email"), li)
		e.record(t, "bert@example.com", grant("marketing_email"), li)
		e.step(t)
		if ct, ok := hs.Contact("anna@example.com"); !ok || ct.Statuses[7002].State != "SUBSCRIBED" {
			t.Fatalf("not synced: %+v", ct)
		}
		e.clock.Add(time.Minute)
		before := e.events(t)

		// Tampered and stale requests.
		id := hs.PersonOptsOut("anna@example.com", 7001)
		body := []byte(`[` + jsonOf(t, hs.OptOutEvent(id, 7001)) + `]`)
		ts := strconv.FormatInt(e.clock.Now().UnixMilli(), 10)
		good := hubspottest.Sign(hs.ClientSecret(), http.MethodPost, target, body, ts)
		st, err := hs.SendSigned(ctx, target, body, ts, hubspottest.Sign("not-the-secret", http.MethodPost, target, body, ts))
		mustStatus(t, "wrong secret", http.StatusUnauthorized, st, err)
		st, err = hs.SendSigned(ctx, target, bytes.Replace(body, []byte("7001"), []byte("7002"), 1), ts, good)
		mustStatus(t, "tampered body", http.StatusUnauthorized, st, err)
		st, err = hs.SendSigned(ctx, target, body, ts, "")
		mustStatus(t, "no signature", http.StatusUnauthorized, st, err)
		old := strconv.FormatInt(e.clock.Now().Add(-6*time.Minute).UnixMilli(), 10)
		st, err = hs.SendSigned(ctx, target, body, old, hubspottest.Sign(hs.ClientSecret(), http.MethodPost, target, body, old))
		mustStatus(t, "stale", http.StatusUnauthorized, st, err)
		if e.events(t) != before {
			t.Fatal("an unverified webhook recorded something")
		}

		// The genuine one: marketing_email withdrawn, loyalty_offers untouched.
		st, err = hs.SendSigned(ctx, target, body, ts, good)
		mustStatus(t, "opt-out", http.StatusNoContent, st, err)
		if s := e.state(t, "anna@example.com", "marketing_email"); s != consent.StateWithdrawn {
			t.Fatalf("marketing_email: %s", s)
		}
		if s := e.state(t, "anna@example.com", "loyalty_offers"); s != consent.StateGranted {
			t.Fatalf("loyalty_offers: %s", s)
		}
		if ev := e.lastEvent(t, "anna@example.com", "marketing_email"); ev.Channel != connector.HubSpot || ev.Reason != connector.ReasonVendorOptOut {
			t.Fatalf("ledger %+v", ev)
		}

		// Opted out of all email: the legitimate-interest purpose is objected to.
		e.clock.Add(time.Minute)
		st, err = hs.SendOptOut(ctx, target, "anna@example.com", 0)
		mustStatus(t, "opt-out of all", http.StatusNoContent, st, err)
		if s := e.state(t, "anna@example.com", "loyalty_offers"); s != consent.StateObjected {
			t.Fatalf("loyalty_offers: %s, want objected", s)
		}
		if ev := e.lastEvent(t, "anna@example.com", "loyalty_offers"); ev.Decision != consent.Objected || ev.Channel != connector.HubSpot ||
			ev.Reason != connector.ReasonVendorOptOutAll {
			t.Fatalf("ledger %+v", ev)
		}

		// An opt-in in HubSpot, a contact Lupa does not know, an unmapped subscription, an
		// unknown contact id: answered, nothing recorded.
		n := e.events(t)
		hc, err := hubspot.New(hs.Token(), hubspot.Options{BaseURL: hs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hc.SetStatus(ctx, hubspot.StatusUpdate{Email: "zoe@example.com", SubscriptionID: 7001, State: hubspot.Subscribed,
			LegalBasis: hubspot.LegalBasisConsent, LegalBasisExplanation: "form"}); err != nil {
			t.Fatal(err)
		}
		optIn := hs.OptOutEvent(hs.PersonOptsOut("bert@example.com", 7001), 7001)
		optIn["propertyValue"] = "false"
		st, err = hs.SendEvents(ctx, target, optIn,
			hs.OptOutEvent(hs.PersonOptsOut("zoe@example.com", 7001), 7001),
			hs.OptOutEvent(hs.PersonOptsOut("bert@example.com", 0), 9999),
			hs.OptOutEvent(424242, 7001))
		mustStatus(t, "opt-in, unknown person, unmapped subscription, unknown contact", http.StatusNoContent, st, err)
		if e.events(t) != n || e.state(t, "bert@example.com", "marketing_email") != consent.StateGranted {
			t.Fatal("recorded something")
		}

		// Malformed (but signed) and oversized bodies.
		bad := []byte(`{"not":"an array"}`)
		ts = strconv.FormatInt(e.clock.Now().UnixMilli(), 10)
		st, err = hs.SendSigned(ctx, target, bad, ts, hubspottest.Sign(hs.ClientSecret(), http.MethodPost, target, bad, ts))
		mustStatus(t, "malformed", http.StatusBadRequest, st, err)
		huge := bytes.Repeat([]byte(" "), 1<<20+10)
		st, err = hs.SendSigned(ctx, target, huge, ts, hubspottest.Sign(hs.ClientSecret(), http.MethodPost, target, huge, ts))
		mustStatus(t, "oversized", http.StatusRequestEntityTooLarge, st, err)

		// The withdrawal and objection come back to HubSpot's connector as skipped.
		calls := hs.Count(hubspottest.OpSetStatus)
		e.step(t)
		ds := e.deliveries(t, c.ID) // newest first: anna's withdrawal and objection, then four grants
		if len(ds) != 6 {
			t.Fatalf("%d deliveries, want 6", len(ds))
		}
		for _, d := range ds[:2] {
			if d.Status != integrations.StatusSkipped || !strings.Contains(d.LastError, "came from hubspot") {
				t.Fatalf("delivered back to HubSpot: %s %q", d.Status, d.LastError)
			}
		}
		if hs.Count(hubspottest.OpSetStatus) != calls {
			t.Fatal("HubSpot was called back")
		}
	})
}
