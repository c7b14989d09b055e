package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam/ciamtest"
)

// ciamEnv lets Lupa fetch keys from the provider the test runs on loopback.
var ciamEnv = map[string]string{"LUPA_ALLOW_PRIVATE_WEBHOOKS": "true", "LUPA_RATE_LIMIT": "100000", "LUPA_RATE_BURST": "100000"}

// newIssuer configures p as a CIAM issuer of the admin key's tenant (audience "lupa") and
// returns its id and webhook secret.
func (s *testServer) newIssuer(t testing.TB, adminKey string, p *ciamtest.Provider, extra map[string]any) (id, secret string) {
	t.Helper()
	body := map[string]any{"name": "Shop CIAM", "issuer": p.Issuer(), "audiences": []string{"lupa"}}
	for k, v := range extra {
		body[k] = v
	}
	r := s.withKey(adminKey, http.MethodPost, "/v1/admin/ciam-issuers", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create CIAM issuer: %d %s", r.Status, r.Body)
	}
	m := r.Map(t)
	id, _ = m["id"].(string)
	secret, _ = m["webhook_secret"].(string)
	if id == "" || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("issuer without id or secret: %s", r.Body)
	}
	return id, secret
}

func bearerTo(token string) []string { return []string{"Authorization", "Bearer " + token} }

// idpOf is the server API's identifier of a CIAM user.
func idpOf(p *ciamtest.Provider, sub string) map[string]any {
	return map[string]any{"kind": "idp", "namespace": p.Issuer(), "value": sub}
}

// TestHTTPCIAMBearer: an app records person-level consent with the customer's access token;
// the person is (issuer, sub) everywhere; every kind of bad token is a generic 401 that
// records nothing.
func TestHTTPCIAMBearer(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		p := ciamtest.New(t)
		issuerID, _ := s.newIssuer(t, s.demo.AdminKey, p, nil)
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		body := map[string]any{"method": "checkbox", "language": "fi", "decisions": []map[string]any{
			decision("marketing_email", 1, "granted"), decision("analytics", 1, "granted")}}

		o := recorded(t, s.request(http.MethodPost, app, body, bearerTo(p.Token("cust-42", "lupa"))...))
		if o.DeviceID != "" {
			t.Fatalf("a person's interaction got a device id: %+v", o)
		}
		states := map[string]string{}
		for _, e := range o.State {
			states[e.Purpose] = e.State
		}
		if states["marketing_email"] != "granted" || states["analytics"] != "granted" || states["personalisation"] != "not_asked" {
			t.Fatalf("state after the token's interaction: %+v", o.State)
		}
		// The same person reads it back with a new token, and the server API finds them by (issuer, sub).
		g := s.request(http.MethodGet, app, nil, bearerTo(p.Token("cust-42", "lupa"))...)
		if g.Status != http.StatusOK || !strings.Contains(string(g.Body), `"purpose":"marketing_email","state":"granted"`) ||
			strings.Contains(string(g.Body), "device_id") || g.Map(t)["subject"] != o.Subject {
			t.Fatalf("GET with the token: %d %s", g.Status, g.Body)
		}
		st := s.withKey(read, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": idpOf(p, "cust-42")})
		if st.Status != http.StatusOK || st.Map(t)["subject"] != o.Subject ||
			!strings.Contains(string(st.Body), `"purpose":"marketing_email","state":"granted"`) {
			t.Fatalf("server API state of the idp identity: %d %s", st.Status, st.Body)
		}
		h := s.withKey(read, http.MethodPost, "/v1/subjects/history", map[string]any{"identifier": idpOf(p, "cust-42")})
		if !strings.Contains(string(h.Body), `"actor":"ciam:`+issuerID+`"`) || !strings.Contains(string(h.Body), `"channel":"app"`) {
			t.Fatalf("history does not name the issuer as actor and the app as channel: %s", h.Body)
		}
		// A new customer's first GET: known from now on, nothing asked yet.
		first := s.request(http.MethodGet, app, nil, bearerTo(p.Token("cust-new", "lupa"))...)
		if first.Status != http.StatusOK || strings.Contains(string(first.Body), `"state":"granted"`) || first.Map(t)["subject"] == "" {
			t.Fatalf("a new customer's state: %d %s", first.Status, first.Body)
		}

		// The rules stay: without a token the app decides device-level purposes only, and a
		// device id never stands for the person.
		wantProblem(t, s.request(http.MethodPost, app, body), http.StatusUnprocessableEntity, "decisions[0].purpose")
		// An app that signs a customer in sends the token with its device id: the device's
		// anonymous history joins the person (a device Lupa does not know is nothing to join).
		anon := recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox",
			"decisions": []map[string]any{decision("analytics", 1, "denied")}}))
		withDevice := map[string]any{"identifier": map[string]any{"kind": "device", "value": anon.DeviceID},
			"method": "checkbox", "decisions": []map[string]any{decision("marketing_email", 1, "granted")}}
		linked := recorded(t, s.request(http.MethodPost, app, withDevice, bearerTo(p.Token("cust-77", "lupa"))...))
		if linked.DeviceID != "" {
			t.Fatalf("a person's interaction got a device id: %+v", linked)
		}
		devState := s.withKey(read, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": map[string]any{"kind": "device", "value": anon.DeviceID}}).Map(t)
		if devState["subject"] != linked.Subject || !strings.Contains(fmt.Sprint(devState["state"]), "analytics state:denied") {
			t.Fatalf("the device after the token: %v (person %s)", devState, linked.Subject)
		}
		withDevice["identifier"] = map[string]any{"kind": "device", "value": identity.NewDeviceID()}
		recorded(t, s.request(http.MethodPost, app, withDevice, bearerTo(p.Token("cust-42", "lupa"))...))
		// A web page that holds a token may use it (with its Origin); a kiosk may not.
		recorded(t, s.request(http.MethodPost, "/v1/consents?property="+s.demo.WebShop.PublicKey, body,
			append(bearerTo(p.Token("cust-42", "lupa")), "Origin", s.Origin)...))
		kiosk := s.admin(http.MethodPost, "/v1/admin/properties", map[string]any{"name": "Kiosk", "brand_id": s.demo.Brands[0].ID, "kind": "kiosk"})
		kioskKey, _ := kiosk.Map(t)["public_key"].(string)
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+kioskKey, body, bearerTo(p.Token("cust-42", "lupa"))...), http.StatusForbidden)

		// Bad tokens: one generic answer, the token never echoed, nothing recorded.
		before := s.ledger(t, s.demo.AdminKey)
		now := time.Now()
		claims := func(k string, v any) map[string]any {
			c := p.Claims("cust-42", "lupa", now)
			c[k] = v
			return c
		}
		key := p.Current()
		for name, tok := range map[string]string{
			"wrong signature": p.Sign(p.Impostor(key), p.Claims("cust-42", "lupa", now)),
			"unknown kid":     p.Sign(p.NewKey("ES256"), p.Claims("cust-42", "lupa", now)),
			"wrong issuer":    p.Sign(key, claims("iss", "https://idp.evil.example")),
			"wrong audience":  p.Sign(key, claims("aud", "another-api")),
			"expired":         p.Sign(key, claims("exp", now.Add(-time.Hour).Unix())),
			"not yet valid":   p.Sign(key, claims("nbf", now.Add(time.Hour).Unix())),
			"alg none":        ciamtest.Unsigned(p.Claims("cust-42", "lupa", now)),
			"HS256 public":    ciamtest.HMACWithPublicKey(key, p.Claims("cust-42", "lupa", now)),
			"not a JWT":       "sk_this-is-an-api-key",
		} {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				var b any
				if method == http.MethodPost {
					b = body
				}
				r := s.request(method, app, b, bearerTo(tok)...)
				pr := wantProblem(t, r, http.StatusUnauthorized)
				if c := r.Header.Get("WWW-Authenticate"); !strings.Contains(c, `error="invalid_token"`) {
					t.Errorf("%s %s: WWW-Authenticate %q", name, method, c)
				}
				if strings.Contains(string(r.Body), tok) || pr.Detail != "the bearer token is not valid: check its issuer, audience, lifetime and signature" {
					t.Errorf("%s %s: the answer is not the generic one: %s", name, method, r.Body)
				}
			}
		}
		wantProblem(t, s.request(http.MethodPost, app, body, "Authorization", "Basic dXNlcjpwdw=="), http.StatusUnauthorized)
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused tokens changed the ledger: %+v → %+v", before, after)
		}
		// Removing the issuer: its tokens stop working at once on this instance.
		if r := s.admin(http.MethodDelete, "/v1/admin/ciam-issuers/"+issuerID, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete issuer: %d %s", r.Status, r.Body)
		}
		wantProblem(t, s.request(http.MethodPost, app, body, bearerTo(p.Token("cust-42", "lupa"))...), http.StatusUnauthorized)
	})
}

// event is an identity event body.
func event(typ, sub string, data map[string]any) []byte {
	d := map[string]any{"sub": sub}
	for k, v := range data {
		d[k] = v
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "timestamp": time.Now().UTC().Format(time.RFC3339), "data": d})
	return b
}

// postEvent signs body with secret as webhook id and sends it for the issuer.
func (s *testServer) postEvent(issuerID, secret, id string, at time.Time, body []byte) *response {
	s.t.Helper()
	return s.request(http.MethodPost, "/v1/identity/events/"+issuerID, body, ciamtest.WebhookHeaders(secret, id, at, body)...)
}

// TestHTTPIdentityEvents: the CIAM's events create people with their verified addresses;
// a deleted user's consents are withdrawn at once — ledger events, state, domain events —
// and an erasure request is opened; signatures, timestamps and replays are checked; another
// tenant cannot speak for this tenant's issuer.
func TestHTTPIdentityEvents(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		ctx := t.Context()
		p := ciamtest.New(t)
		issuerID, secret := s.newIssuer(t, s.demo.AdminKey, p, nil)
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")

		created := event("user.created", "cust-7", map[string]any{"email": "Asiakas@Example.fi", "email_verified": true, "given_name": "Aino"})
		r := s.postEvent(issuerID, secret, "msg_created", time.Now(), created)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"email":"added"`) || !strings.Contains(string(r.Body), `"person_created":true`) {
			t.Fatalf("user.created: %d %s", r.Status, r.Body)
		}
		byEmail, err := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: identity.IDEmail, Value: "asiakas@example.fi"})
		if err != nil {
			t.Fatalf("the verified address is not an identifier: %v", err)
		}
		again := s.postEvent(issuerID, secret, "msg_created", time.Now(), created)
		if again.Status != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(r.Body) {
			t.Fatalf("replayed webhook-id: %d %v %s", again.Status, again.Header, again.Body)
		}

		// The customer grants through the app with a token; the server API sees it by email too.
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		o := recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox", "decisions": []map[string]any{
			decision("marketing_email", 1, "granted"), decision("personalisation", 1, "granted"), decision("analytics", 1, "granted"),
			decision("partner_sharing", 0, "denied")}}, bearerTo(p.Token("cust-7", "lupa"))...))
		if !strings.Contains(string(s.withKey(read, http.MethodPost, "/v1/subjects/state", map[string]any{
			"identifier": map[string]any{"kind": "email", "value": "asiakas@example.fi"}}).Body), `"subject":"`+o.Subject+`"`) {
			t.Fatal("the email does not lead to the person who granted")
		}

		// Refusals change nothing.
		for name, r := range map[string]*response{
			"bad signature": s.request(http.MethodPost, "/v1/identity/events/"+issuerID, event("user.deleted", "cust-7", nil),
				ciamtest.WebhookHeaders("whsec_"+strings.Repeat("A", 44), "msg_x", time.Now(), event("user.deleted", "cust-7", nil))...),
			"old timestamp":  s.postEvent(issuerID, secret, "msg_old", time.Now().Add(-6*time.Minute), event("user.deleted", "cust-7", nil)),
			"no headers":     s.request(http.MethodPost, "/v1/identity/events/"+issuerID, event("user.deleted", "cust-7", nil)),
			"unknown issuer": s.postEvent(identity.NewID(), secret, "msg_y", time.Now(), event("user.deleted", "cust-7", nil)),
		} {
			wantProblem(t, r, http.StatusUnauthorized)
			if name == "old timestamp" && !strings.Contains(string(r.Body), "5 minutes") {
				t.Errorf("old timestamp: %s", r.Body)
			}
		}
		wantProblem(t, s.postEvent(issuerID, secret, "msg_merged", time.Now(), event("user.merged", "cust-7", nil)), http.StatusBadRequest, "data.merged_sub")

		// Another tenant with the same CIAM cannot post events for this tenant's issuer.
		b := newOtherTenant(t, s)
		otherID, otherSecret := s.newIssuer(t, b.AdminKey, p, nil)
		wantProblem(t, s.postEvent(issuerID, otherSecret, "msg_b", time.Now(), event("user.deleted", "cust-7", nil)), http.StatusUnauthorized)
		wantProblem(t, s.withKey(b.AdminKey, http.MethodGet, "/v1/admin/ciam-issuers/"+issuerID, nil), http.StatusNotFound)
		// B's own deletion of "cust-7" is about B's person (none): A's consents stay.
		if r := s.postEvent(otherID, otherSecret, "msg_b2", time.Now(), event("user.deleted", "cust-7", nil)); r.Status != http.StatusOK ||
			strings.Contains(string(r.Body), "erasure_request") {
			t.Fatalf("tenant B's deletion: %d %s", r.Status, r.Body)
		}
		ledgerBefore := s.ledger(t, s.demo.AdminKey)
		if ledgerBefore.Events == 0 {
			t.Fatal("no events")
		}

		// user.deleted: every grant withdrawn at once.
		del := s.postEvent(issuerID, secret, "msg_deleted", time.Now(), event("user.deleted", "cust-7", nil))
		if del.Status != http.StatusOK {
			t.Fatalf("user.deleted: %d %s", del.Status, del.Body)
		}
		var ans struct {
			Subject        string `json:"subject"`
			Withdrawn      int    `json:"withdrawn"`
			ErasureRequest string `json:"erasure_request"`
		}
		del.JSON(t, &ans)
		if ans.Subject != o.Subject || ans.Withdrawn != 3 || ans.ErasureRequest == "" {
			t.Fatalf("user.deleted answer: %s", del.Body)
		}
		st := s.withKey(read, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": idpOf(p, "cust-7")})
		for _, want := range []string{`"purpose":"marketing_email","state":"withdrawn"`, `"purpose":"personalisation","state":"withdrawn"`,
			`"purpose":"analytics","state":"withdrawn"`, `"purpose":"partner_sharing","state":"denied"`} {
			if !strings.Contains(string(st.Body), want) {
				t.Errorf("state after deletion lacks %s: %s", want, st.Body)
			}
		}
		if strings.Contains(string(st.Body), `"may_use":true`) && strings.Contains(string(st.Body), `"state":"granted"`) {
			t.Errorf("something is still granted: %s", st.Body)
		}
		var hist struct {
			Events []struct {
				Kind, Purpose, Decision, Method, Channel, Actor, Interaction string
			} `json:"events"`
		}
		s.withKey(read, http.MethodPost, "/v1/subjects/history", map[string]any{"identifier": idpOf(p, "cust-7")}).JSON(t, &hist)
		withdrawals := map[string]bool{}
		interactions := map[string]bool{}
		for _, e := range hist.Events {
			if e.Decision == "withdrawn" {
				if e.Method != "system" || e.Channel != "system" || e.Actor != "system" {
					t.Errorf("withdrawal event: %+v", e)
				}
				withdrawals[e.Purpose] = true
				interactions[e.Interaction] = true
			}
		}
		if len(withdrawals) != 3 || len(interactions) != 1 {
			t.Fatalf("withdrawals %v in %d interactions, want 3 in one", withdrawals, len(interactions))
		}
		if l := s.ledger(t, s.demo.AdminKey); l.Events != ledgerBefore.Events+3 {
			t.Fatalf("ledger %+v, want 3 more events than %+v", l, ledgerBefore)
		}
		subj, err := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: "cust-7"})
		if err != nil || subj.ID != byEmail.ID {
			t.Fatalf("subject: %v", err)
		}
		var payloads []string
		if err := s.app.db.Read.Raw(`SELECT payload FROM domain_events WHERE tenant_id = ? AND subject_id = ? ORDER BY subject_seq`,
			s.demo.Tenant.ID, subj.ID).Scan(&payloads).Error; err != nil {
			t.Fatal(err)
		}
		last := payloads[len(payloads)-1]
		if strings.Count(last, `"decision":"withdrawn"`) != 3 || !strings.Contains(last, `"method":"system"`) {
			t.Fatalf("the last domain event is not the withdrawal: %s", last)
		}
		// Each change names its cause, which the integrations tell downstream systems
		// (reason account_deleted): identity/ciam spells it as consent does.
		if strings.Count(last, `"reason":"`+consent.WithdrawUserDeleted+`"`) != 3 {
			t.Fatalf("the withdrawal's changes do not carry the cause %s: %s", consent.WithdrawUserDeleted, last)
		}
		var dsr []struct{ ID, Kind, Status, Source string }
		s.app.db.Read.Raw(`SELECT id, kind, status, source FROM dsr_requests WHERE tenant_id = ? AND subject_id = ?`,
			s.demo.Tenant.ID, subj.ID).Scan(&dsr)
		if len(dsr) != 1 || dsr[0].ID != ans.ErasureRequest || dsr[0].Kind != "erasure" || dsr[0].Status != "open" || dsr[0].Source != "ciam:"+issuerID {
			t.Fatalf("erasure requests: %+v", dsr)
		}
		// The same deletion again (a new webhook-id): nothing more to withdraw, the same request.
		r2 := s.postEvent(issuerID, secret, "msg_deleted_2", time.Now(), event("user.deleted", "cust-7", nil))
		if r2.Status != http.StatusOK || !strings.Contains(string(r2.Body), `"withdrawn":0`) || !strings.Contains(string(r2.Body), ans.ErasureRequest) {
			t.Fatalf("second deletion: %d %s", r2.Status, r2.Body)
		}
		if l := s.ledger(t, s.demo.AdminKey); l.Events != ledgerBefore.Events+3 {
			t.Fatalf("the second deletion wrote events: %+v", l)
		}
	})
}

// TestHTTPIdentityEventMerged: user.merged joins the merged user's person into the remaining
// one: the newer decision per purpose stands and the merged user's token now acts as the
// same person; a merged user Lupa never met leaves nothing to join.
func TestHTTPIdentityEventMerged(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		p := ciamtest.New(t)
		issuerID, secret := s.newIssuer(t, s.demo.AdminKey, p, nil)
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		post := func(sub string, ds ...map[string]any) outcome {
			return recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox", "decisions": ds},
				bearerTo(p.Token(sub, "lupa"))...))
		}
		post("old-account", decision("marketing_email", 1, "granted"))
		survivor := post("kept-account", decision("marketing_email", 1, "denied"), decision("personalisation", 1, "granted"))
		post("old-account", decision("partner_sharing", 1, "granted"))

		r := s.postEvent(issuerID, secret, "msg_merge", time.Now(), event("user.merged", "kept-account", map[string]any{"merged_sub": "old-account"}))
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"merged":"merged"`) || !strings.Contains(string(r.Body), survivor.Subject) {
			t.Fatalf("user.merged: %d %s", r.Status, r.Body)
		}
		stateOf := func(sub string) map[string]string {
			state := s.request(http.MethodGet, app, nil, bearerTo(p.Token(sub, "lupa"))...).Map(t)
			got := map[string]string{}
			for _, st := range state["state"].([]any) {
				got[st.(map[string]any)["purpose"].(string)] = st.(map[string]any)["state"].(string)
			}
			return got
		}
		got := stateOf("kept-account")
		if got["marketing_email"] != "denied" || got["personalisation"] != "granted" || got["partner_sharing"] != "granted" {
			t.Fatalf("state after the merge: %v", got)
		}
		if old := s.request(http.MethodGet, app, nil, bearerTo(p.Token("old-account", "lupa"))...).Map(t); old["subject"] != survivor.Subject {
			t.Fatalf("the merged user's token names %v, want the survivor %s", old["subject"], survivor.Subject)
		}
		// Nothing to join still names the remaining person, as every answer names the person
		// it is about; only when Lupa knows neither user is there no subject.
		none := s.postEvent(issuerID, secret, "msg_merge2", time.Now(), event("user.merged", "kept-account", map[string]any{"merged_sub": "never-seen"}))
		if none.Status != http.StatusOK || !strings.Contains(string(none.Body), `"merged":"none"`) || none.Map(t)["subject"] != survivor.Subject {
			t.Fatalf("an unknown merged user: %d %s, want subject %s", none.Status, none.Body, survivor.Subject)
		}
		neither := s.postEvent(issuerID, secret, "msg_merge3", time.Now(), event("user.merged", "also-unknown", map[string]any{"merged_sub": "never-seen"}))
		if neither.Status != http.StatusOK || !strings.Contains(string(neither.Body), `"merged":"none"`) || strings.Contains(string(neither.Body), `"subject"`) {
			t.Fatalf("two unknown users: %d %s", neither.Status, neither.Body)
		}

		// Many CIAMs delete the merged user next. That ends the alias, not the person who
		// stays: nothing is withdrawn and no erasure is asked for.
		ledgerBefore := s.ledger(t, s.demo.AdminKey)
		del := s.postEvent(issuerID, secret, "msg_delete_old", time.Now(), event("user.deleted", "old-account", nil)).Map(t)
		if del["merged_away"] != true || del["subject"] != survivor.Subject || del["withdrawn"] != float64(0) || del["erasure_request"] != nil {
			t.Fatalf("user.deleted of the merged user: %v", del)
		}
		if l := s.ledger(t, s.demo.AdminKey); l.Events != ledgerBefore.Events {
			t.Fatalf("deleting the merged user wrote %d events", l.Events-ledgerBefore.Events)
		}
		var requests int64
		if err := s.app.db.Read.Raw("SELECT count(*) FROM dsr_requests WHERE tenant_id = ?", s.demo.Tenant.ID).Scan(&requests).Error; err != nil || requests != 0 {
			t.Fatalf("%d erasure requests for the person who stays (%v)", requests, err)
		}
		if got := stateOf("kept-account"); got["personalisation"] != "granted" || got["partner_sharing"] != "granted" {
			t.Fatalf("the remaining person's consents after the merged user's deletion: %v", got)
		}
		// Deleted again, the merged user is unknown; the remaining user's own deletion still
		// withdraws and opens the erasure request.
		if again := s.postEvent(issuerID, secret, "msg_delete_old2", time.Now(), event("user.deleted", "old-account", nil)).Map(t); again["subject"] != nil || again["withdrawn"] != float64(0) {
			t.Fatalf("the merged user deleted again: %v", again)
		}
		kept := s.postEvent(issuerID, secret, "msg_delete_kept", time.Now(), event("user.deleted", "kept-account", nil)).Map(t)
		if kept["merged_away"] != nil || kept["subject"] != survivor.Subject || kept["withdrawn"] != float64(2) || kept["erasure_request"] == nil {
			t.Fatalf("user.deleted of the remaining user: %v", kept)
		}
		s.ledger(t, s.demo.AdminKey) // fails the test unless every chain verifies
	})
}

// TestHTTPCIAMDeviceMergeActor: the merge that an app's GET or POST with a customer's token
// and its device id makes names the issuer as the decisions that follow do, ciam:<issuer id>: one
// request, one actor; the issuer's URL is configuration, not an actor.
func TestHTTPCIAMDeviceMergeActor(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		p := ciamtest.New(t)
		issuerID, _ := s.newIssuer(t, s.demo.AdminKey, p, nil)
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		anon := recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox",
			"decisions": []map[string]any{decision("analytics", 1, "denied")}}))
		g := s.request(http.MethodGet, app, nil, append(bearerTo(p.Token("cust-merge", "lupa")), "Lupa-Device-Id", anon.DeviceID)...)
		if g.Status != http.StatusOK {
			t.Fatalf("GET with the token and the device id: %d %s", g.Status, g.Body)
		}
		// A POST with the token and another device of the person's links that one the same way.
		other := recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox",
			"decisions": []map[string]any{decision("analytics", 1, "granted")}}))
		recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox",
			"identifier": map[string]any{"kind": "device", "value": other.DeviceID},
			"decisions":  []map[string]any{decision("marketing_email", 1, "granted")}}, bearerTo(p.Token("cust-merge", "lupa"))...))
		var hist struct {
			Events []struct{ Kind, Actor string } `json:"events"`
		}
		s.withKey(read, http.MethodPost, "/v1/subjects/history", map[string]any{"identifier": idpOf(p, "cust-merge")}).JSON(t, &hist)
		kinds := map[string]int{}
		for _, e := range hist.Events {
			if e.Actor == "ciam:"+issuerID {
				kinds[e.Kind]++
			} else if e.Kind == "merge" {
				t.Errorf("merge event by %q, want ciam:%s", e.Actor, issuerID)
			}
		}
		if kinds["merge"] < 2 || kinds["decision"] == 0 { // at least one merge event per link
			t.Fatalf("history lacks the merge or the decision by ciam:%s: %+v", issuerID, hist.Events)
		}
	})
}
