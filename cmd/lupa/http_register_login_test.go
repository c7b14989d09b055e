package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/login/logintest"
)

var (
	uiRe      = regexp.MustCompile(`name="ui" value="([0-9a-f]{64})"`)
	boxRe     = regexp.MustCompile(`name="purpose_([a-z0-9_]+)"`)
	formActRe = regexp.MustCompile(`formaction="(/register/login/[^"]+)" formtarget="_top"`)
)

// TestRegistrationWidgetWithProvider: "Continue with …" in the registration widget. The
// button takes the form (its boxes, the site's page, the device) to the provider and back;
// the boxes become the person's decisions in the registration channel, the device's history
// joins the person, and the browser returns to the site's page with #lupa-registered. A
// returning customer's unticked box refuses nothing they granted; the way back never
// leaves the property's origins; deleting the account withdraws the provider person's
// consents although it has no address.
func TestRegistrationWidgetWithProvider(t *testing.T) {
	g := logintest.NewGraph(t)
	eachAccountServer(t, loginEnv(g), func(t *testing.T, s *accountServer) {
		ctx := context.Background()
		m, id := s.kauppaID(t)
		pk := s.demo.WebShop.PublicKey
		device := s.newDevice(t, grantAnalytics())

		v := s.customer(t)
		r := v.get("/register?property=" + pk + "&lang=en&origin=" + url.QueryEscape(s.Origin))
		page := string(r.Body)
		act := formActRe.FindStringSubmatch(page)
		mockURL, _ := url.Parse(m.Issuer())
		if r.Status != http.StatusOK || act == nil || act[1] != "/register/login/"+id || !strings.Contains(page, "Continue with Kauppa ID") {
			t.Fatalf("no provider button in the widget's form: %d\n%s", r.Status, page)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://"+mockURL.Host+" "+s.Origin+";") {
			t.Fatalf("the form's CSP does not let the button reach the provider and come back: %s", csp)
		}
		ui := uiRe.FindStringSubmatch(page)[1]
		var keys []string
		for _, b := range boxRe.FindAllStringSubmatch(page, -1) {
			keys = append(keys, b[1])
		}
		if len(keys) < 2 || !strings.Contains(strings.Join(keys, ","), "personalisation") {
			t.Fatalf("boxes %v", keys)
		}
		widgetForm := func(kv ...string) url.Values {
			f := form("property", pk, "origin", s.Origin, "lang", "en", "ui", ui, "device", device,
				"page", s.Origin+"/join?campaign=autumn", "email", "ignored@esimerkki.fi")
			for i := 0; i+1 < len(kv); i += 2 {
				f.Set(kv[i], kv[i+1])
			}
			return f
		}

		// Refused before anything starts: another origin, a changed form, a cross-site POST.
		for _, tc := range []struct {
			name string
			f    url.Values
			h    []string
			want int
		}{
			{"another origin", widgetForm("origin", "https://evil.example"), nil, http.StatusForbidden},
			{"a changed form", widgetForm("ui", strings.Repeat("0", 64)), nil, http.StatusConflict},
			{"cross-site", widgetForm(), []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, http.StatusForbidden},
		} {
			if r := v.post(act[1], tc.f, tc.h...); r.Status != tc.want || r.Header.Get("Location") != "" {
				t.Fatalf("%s: %d %q", tc.name, r.Status, r.Header.Get("Location"))
			}
		}

		m.QueueUser(&mockoidc.MockUser{Subject: "widget-1", Email: "widget@esimerkki.fi"})
		begin := v.post(act[1], widgetForm("purpose_personalisation", "on"))
		to, err := url.Parse(begin.Header.Get("Location"))
		if begin.Status != http.StatusSeeOther || err != nil || to.Host != mockURL.Host || v.flowCookie() == "" {
			t.Fatalf("begin: %d %q", begin.Status, begin.Header.Get("Location"))
		}
		back := v.get(v.authorize(to))
		wantRedirect(t, back, s.Origin+"/join?campaign=autumn#lupa-registered")
		wantSessionCookie(t, back)

		person := identity.Identifier{Kind: identity.IDIdP, Namespace: m.Issuer(), Value: "widget-1"}
		st, err := s.app.consent.SubjectState(ctx, s.demo.Tenant.ID, person, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			want := "denied"
			if k == "personalisation" {
				want = "granted"
			}
			if got := stateOf(st.State, k); got != want {
				t.Errorf("%s: %s, want %s", k, got, want)
			}
		}
		var n int64
		s.app.db.Read.Raw(`SELECT count(*) FROM consent_events WHERE tenant_id = ? AND channel = 'registration' AND method = 'checkbox'
			AND text_hash <> ''`, s.demo.Tenant.ID).Scan(&n)
		if n != int64(len(keys)) {
			t.Fatalf("%d registration events, want one per box (%d)", n, len(keys))
		}
		ds, err := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: identity.IDDevice, Value: device})
		if err != nil || ds.ID != s.person(t, person) {
			t.Fatalf("the device's history did not join the person: %v", err)
		}
		// The widget on the page it came back to says so.
		if done := v.get("/register?property=" + pk + "&lang=en&done=signin&origin=" + url.QueryEscape(s.Origin)); !strings.Contains(string(done.Body), "<h1>Welcome</h1>") ||
			!strings.Contains(string(done.Body), "data-done") {
			t.Fatalf("the form after a provider registration:\n%s", done.Body)
		}

		// The same customer again from another browser, nothing ticked, and a page elsewhere:
		// the grant stands, and the way back is the property's origin.
		m.QueueUser(&mockoidc.MockUser{Subject: "widget-1", Email: "widget@esimerkki.fi"})
		w := s.customer(t)
		second := s.newDevice(t, grantAnalytics())
		again := w.get(w.authorize(mustLocation(t, w.post(act[1], widgetForm("page", "https://evil.example/phish", "device", second)))))
		wantRedirect(t, again, s.Origin+"/#lupa-registered")
		st, _ = s.app.consent.SubjectState(ctx, s.demo.Tenant.ID, person, nil)
		if got := stateOf(st.State, "personalisation"); got != "granted" {
			t.Fatalf("an unticked box of a returning customer refused their grant: %s", got)
		}
		// The ledger says how each device joined: the first with a registration, the second
		// with a sign-in of a person the provider had already brought.
		var reasons []string
		s.app.db.Read.Raw(`SELECT reason FROM consent_events WHERE tenant_id = ? AND subject_id = ? AND kind = 'merge' AND reason IN (?, ?) ORDER BY seq`,
			s.demo.Tenant.ID, s.person(t, person), consent.MergeRegistration, consent.MergeSignIn).Scan(&reasons)
		if want := []string{consent.MergeRegistration, consent.MergeSignIn}; !slices.Equal(reasons, want) {
			t.Errorf("the person's merges say %q, want %q", reasons, want)
		}

		// Deleting the account withdraws the person's consents: the person has no address,
		// only the provider's identity.
		if page := wantPage(t, v.post("/account/delete", form("confirm", "yes", "lang", "en")), http.StatusOK); page == "" {
			t.Fatal("no page after deletion")
		}
		st, _ = s.app.consent.SubjectState(ctx, s.demo.Tenant.ID, person, nil)
		if got := stateOf(st.State, "personalisation"); got != "withdrawn" {
			t.Fatalf("after deletion personalisation is %s, want withdrawn", got)
		}
	})
}

// kauppaID starts a mock OpenID Connect provider and adds it as the tenant's "Kauppa ID"
// login provider; it returns the provider and the login provider's id.
func (s *accountServer) kauppaID(t *testing.T) (*mockoidc.MockOIDC, string) {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m, s.addProvider(t, map[string]any{"kind": "oidc", "label": "Kauppa ID", "issuer": m.Issuer(), "client_id": m.ClientID,
		"client_secret": m.ClientSecret, "token_auth_method": "client_secret_post"})
}

func mustLocation(t *testing.T, r *response) *url.URL {
	t.Helper()
	u, err := url.Parse(r.Header.Get("Location"))
	if r.Status != http.StatusSeeOther || err != nil {
		t.Fatalf("want a redirect: %d %q", r.Status, r.Header.Get("Location"))
	}
	return u
}

// TestRegistrationWidgetLoginLimit: each press of a "Continue with …" button in the
// registration widget starts a sign-in flow (state kept, a provider's discovery fetched), as
// the sign-in page's buttons do, so one client address may start as many as there: a burst of
// 30, then one a second, answered 429 with Retry-After beyond that. It had only the public
// API's limit (120, then 30 a second).
func TestRegistrationWidgetLoginLimit(t *testing.T) {
	env := map[string]string{"LUPA_ALLOW_PRIVATE_WEBHOOKS": "true", "LUPA_TRUSTED_PROXIES": "127.0.0.1"}
	eachAccountServer(t, env, func(t *testing.T, s *accountServer) {
		_, id := s.kauppaID(t)
		pk := s.demo.WebShop.PublicKey
		v := s.customer(t, "X-Forwarded-For", "198.51.100.30")
		page := string(v.get("/register?property=" + pk + "&lang=en&origin=" + url.QueryEscape(s.Origin)).Body)
		ui := uiRe.FindStringSubmatch(page)
		if ui == nil {
			t.Fatalf("no form:\n%s", page)
		}
		f := form("property", pk, "origin", s.Origin, "lang", "en", "ui", ui[1], "page", s.Origin+"/join")
		for i := 0; i < 40; i++ {
			r := v.post("/register/login/"+id, f)
			switch r.Status {
			case http.StatusSeeOther:
			case http.StatusTooManyRequests:
				if i < 30 || r.Header.Get("Retry-After") == "" {
					t.Fatalf("limited after %d starts (the burst is 30), Retry-After %q", i, r.Header.Get("Retry-After"))
				}
				return
			default:
				t.Fatalf("start %d: %d %.300s", i, r.Status, r.Body)
			}
		}
		t.Fatal("40 sign-ins started from one address in a moment were never limited")
	})
}
