package main

// Sign-in with identity providers, end to end: the real router and database over TLS (the
// session and flow cookies are Secure), a browser with a cookie jar, and real providers
// running in the test — github.com/oauth2-proxy/mockoidc, a provider of our own that signs
// whatever ID token a test asks for (logintest.Provider), and a server that answers like
// Facebook's dialog and Graph API (logintest.Graph).

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/login"
	"github.com/lupa-cmp/lupa/identity/login/logintest"
	"github.com/lupa-cmp/lupa/templates"
)

// loginEnv lets Lupa reach providers on 127.0.0.1 and points Facebook at the test's
// Graph-like server.
func loginEnv(g *logintest.Graph) map[string]string {
	return map[string]string{"LUPA_ALLOW_PRIVATE_WEBHOOKS": "true",
		"LUPA_FACEBOOK_DIALOG_URL": g.DialogURL(), "LUPA_FACEBOOK_GRAPH_URL": g.GraphURL()}
}

// addProvider creates a login provider through the admin API and returns its id.
func (s *accountServer) addProvider(t *testing.T, body map[string]any) string {
	t.Helper()
	r := s.admin(http.MethodPost, "/v1/admin/login-providers", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create login provider: %d %s", r.Status, r.Body)
	}
	p := r.Map(t)
	if p["redirect_uri"] != s.TLS.URL+"/t/"+demoSlug+"/login/"+p["id"].(string)+"/callback" {
		t.Fatalf("redirect_uri %v", p["redirect_uri"])
	}
	return p["id"].(string)
}

func (s *accountServer) patchProvider(t *testing.T, id string, body map[string]any) {
	t.Helper()
	if r := s.admin(http.MethodPatch, "/v1/admin/login-providers/"+id, body); r.Status != http.StatusOK {
		t.Fatalf("patch login provider: %d %s", r.Status, r.Body)
	}
}

// idpClient is the browser's side of the provider's pages: it does not follow redirects,
// so the test sees where the provider sends the browser back.
var idpClient = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// beginLogin presses a provider's button and returns where Lupa sends the browser.
func (v *customer) beginLogin(providerID string) *url.URL {
	v.t.Helper()
	r := v.post("/t/"+demoSlug+"/login/"+providerID, form("lang", "en"))
	if r.Status != http.StatusSeeOther {
		v.t.Fatalf("begin sign-in: %d %s", r.Status, mainOf(r))
	}
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		v.t.Fatal(err)
	}
	return u
}

// authorize has the provider sign the browser in at u and returns the callback (path and
// query on Lupa) it sends the browser back to.
func (v *customer) authorize(u *url.URL) string {
	v.t.Helper()
	res, err := idpClient.Get(u.String())
	if err != nil {
		v.t.Fatal(err)
	}
	res.Body.Close()
	back, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil || back.Scheme+"://"+back.Host != v.s.TLS.URL {
		v.t.Fatalf("the provider answered %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	return back.RequestURI()
}

// login signs in with a provider from start to end and returns the callback's answer.
func (v *customer) login(providerID string) *response {
	v.t.Helper()
	return v.get(v.authorize(v.beginLogin(providerID)))
}

// flowCookie is the browser's __Host-lupa_oidc cookie, or "".
func (v *customer) flowCookie() string {
	u, _ := url.Parse(v.s.TLS.URL)
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == login.CookieName {
			return c.Value
		}
	}
	return ""
}

func (v *customer) setFlowCookie(value string) {
	u, _ := url.Parse(v.s.TLS.URL)
	v.client.Jar.SetCookies(u, []*http.Cookie{{Name: login.CookieName, Value: value, Path: "/", Secure: true, HttpOnly: true}})
}

// wantRefused requires the one generic page of a refused sign-in, and no session.
func wantRefused(t testing.TB, r *response) {
	t.Helper()
	page := wantPage(t, r, http.StatusBadRequest)
	generic := false
	for _, tx := range templates.AccountTexts {
		generic = generic || strings.Contains(page, "<h1>"+tx.LoginFailed+"</h1><p>"+tx.LoginFailedText+"</p>")
	}
	if !generic {
		t.Fatalf("not the generic refusal:\n%s", page)
	}
	if strings.Contains(strings.Join(r.Header["Set-Cookie"], "\n"), accounts.CookieName+"=") {
		t.Fatalf("a refused sign-in set a session cookie: %v", r.Header["Set-Cookie"])
	}
}

// wantSignedIn requires the callback's answer to be a new session and /account.
func wantSignedIn(t testing.TB, r *response) {
	t.Helper()
	wantRedirect(t, r, "/account")
	wantSessionCookie(t, r)
}

// person is the subject an identifier names, or "".
func (s *accountServer) person(t *testing.T, id identity.Identifier) string {
	t.Helper()
	subj, err := s.app.ids.FindSubject(context.Background(), s.demo.Tenant.ID, id.Normalized())
	if identity.IsCode(err, identity.ENotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return subj.ID
}

// sessionSubject is the person of the browser's session.
func (v *customer) sessionSubject() string {
	v.t.Helper()
	sess, err := v.s.app.accounts.Session(context.Background(), v.cookie())
	if err != nil {
		v.t.Fatalf("no session: %v", err)
	}
	return sess.SubjectID
}

func (s *accountServer) countAccounts(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := s.app.db.Read.Raw("SELECT count(*) FROM accounts WHERE tenant_id = ?", s.demo.Tenant.ID).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLoginOIDC: sign-in with an OpenID Connect provider (mockoidc) from the button to the
// account, the same person the second time; and refusal of a wrong state, a state from
// another browser, a replayed callback, a replayed code, a wrong nonce, a provider's
// error, a missing cookie, another tenant's provider and a cross-site POST.
func TestLoginOIDC(t *testing.T) {
	g := logintest.NewGraph(t)
	eachAccountServer(t, loginEnv(g), func(t *testing.T, s *accountServer) {
		m, err := mockoidc.Run()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		id := s.addProvider(t, map[string]any{"kind": "oidc", "label": "Kauppa ID", "labels": map[string]any{"en": "Shop ID"},
			"issuer": m.Issuer(), "client_id": m.ClientID, "client_secret": m.ClientSecret,
			// mockoidc takes the client's credentials in the form only (oauth2.AuthStyleInParams).
			"token_auth_method": "client_secret_post"})

		// The pages show the button as a form, and let it end up at the provider.
		v := s.customer(t)
		for _, page := range []string{"signin", "register"} {
			r := v.get("/t/" + demoSlug + "/" + page)
			main := wantPage(t, r, http.StatusOK)
			if !strings.Contains(main, `<form method="post" action="/t/`+demoSlug+`/login/`+id+`">`) ||
				!strings.Contains(main, "Jatka palvelulla Kauppa ID") {
				t.Fatalf("%s page has no provider button:\n%s", page, main)
			}
			mockURL, _ := url.Parse(m.Issuer())
			if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://"+mockURL.Host+";") {
				t.Fatalf("%s page's CSP does not let the button reach the provider: %s", page, csp)
			}
		}
		if main := wantPage(t, v.get("/t/"+demoSlug+"/signin?lang=en"), http.StatusOK); !strings.Contains(main, "Continue with Shop ID") {
			t.Fatalf("English label:\n%s", main)
		}

		// The flow: PKCE S256, random state and nonce, the cookie that binds it.
		user := &mockoidc.MockUser{Subject: "kauppa-1001", Email: "liisa@esimerkki.fi", EmailVerified: true}
		m.QueueUser(user)
		begin := v.post("/t/"+demoSlug+"/login/"+id, form("lang", "en"))
		if begin.Status != http.StatusSeeOther {
			t.Fatalf("begin: %d %s", begin.Status, mainOf(begin))
		}
		var flowCk *http.Cookie
		for _, c := range (&http.Response{Header: begin.Header}).Cookies() {
			if c.Name == login.CookieName {
				flowCk = c
			}
		}
		if flowCk == nil || !flowCk.Secure || !flowCk.HttpOnly || flowCk.SameSite != http.SameSiteLaxMode || flowCk.Path != "/" ||
			flowCk.MaxAge <= 0 || flowCk.MaxAge > 600 || len(flowCk.Value) != 43 {
			t.Fatalf("flow cookie: %v", begin.Header["Set-Cookie"])
		}
		authURL, _ := url.Parse(begin.Header.Get("Location"))
		q := authURL.Query()
		if !strings.HasPrefix(authURL.String(), m.AuthorizationEndpoint()+"?") || q.Get("code_challenge_method") != "S256" ||
			len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 43 || len(q.Get("nonce")) < 43 || q.Get("client_id") != m.ClientID ||
			q.Get("redirect_uri") != s.TLS.URL+"/t/"+demoSlug+"/login/"+id+"/callback" || q.Get("scope") != "openid email profile" {
			t.Fatalf("authorization URL %s", authURL)
		}
		callback := v.authorize(authURL)
		r := v.get(callback)
		wantSignedIn(t, r)
		if v.flowCookie() != "" {
			t.Fatal("the flow cookie outlived the sign-in")
		}
		account := wantPage(t, v.get("/account"), http.StatusOK)
		if !strings.Contains(account, `<dd class="service"><span>Shop ID</span>`) || strings.Contains(account, "liisa@") ||
			strings.Contains(account, `action="/account/password"`) {
			// Not trusted for email: the address is not taken; no password to change.
			t.Fatalf("account page after the first sign-in:\n%s", account)
		}
		person := s.person(t, identity.Identifier{Kind: identity.IDIdP, Namespace: m.Issuer(), Value: "kauppa-1001"})
		if person == "" || v.sessionSubject() != person {
			t.Fatalf("the session is not the person of (issuer, sub): %q", person)
		}
		if s.person(t, identity.Identifier{Kind: identity.IDEmail, Value: "liisa@esimerkki.fi"}) != "" {
			t.Fatal("an untrusted provider's address became an identifier")
		}
		accountsAfterFirst := s.countAccounts(t)

		// The same identity again, in another browser: the same person and account.
		m.QueueUser(user)
		w := s.customer(t)
		wantSignedIn(t, w.login(id))
		if w.sessionSubject() != person || s.countAccounts(t) != accountsAfterFirst {
			t.Fatal("the second sign-in is not the same person")
		}

		// The callback again, even with the flow's cookie back in place: used up.
		replayer := s.customer(t)
		replayer.setFlowCookie(flowCk.Value)
		wantRefused(t, replayer.get(callback))
		wantRefused(t, v.get(callback))

		// The code again, in a new flow with its own good state: the code was used.
		x := s.customer(t)
		fresh := x.beginLogin(id)
		code, _ := url.Parse(callback)
		wantRefused(t, x.get("/t/"+demoSlug+"/login/"+id+"/callback?"+url.Values{"code": {code.Query().Get("code")},
			"state": {fresh.Query().Get("state")}}.Encode()))

		// A wrong state does not work, and does not spoil the real one.
		y := s.customer(t)
		m.QueueUser(user)
		cb := y.authorize(y.beginLogin(id))
		cbURL, _ := url.Parse(cb)
		bad := cbURL.Query()
		bad.Set("state", strings.Repeat("A", 43))
		wantRefused(t, y.get(cbURL.Path+"?"+bad.Encode()))
		wantSignedIn(t, y.get(cb))

		// Another browser's callback (login CSRF: a victim sent to the attacker's
		// callback) finds no flow of its own.
		m.QueueUser(user)
		attacker := s.customer(t)
		stolen := attacker.authorize(attacker.beginLogin(id))
		victim := s.customer(t)
		victim.beginLogin(id) // even with a flow of its own under way
		wantRefused(t, victim.get(stolen))
		// No cookie at all.
		wantRefused(t, s.customer(t).get(stolen))

		// A wrong nonce: the ID token names another flow's nonce.
		z := s.customer(t)
		m.QueueUser(user)
		au := z.beginLogin(id)
		aq := au.Query()
		aq.Set("nonce", strings.Repeat("N", 43))
		au.RawQuery = aq.Encode()
		wantRefused(t, z.get(z.authorize(au)))

		// The provider says no (the person cancelled).
		c := s.customer(t)
		st := c.beginLogin(id).Query().Get("state")
		wantRefused(t, c.get("/t/"+demoSlug+"/login/"+id+"/callback?error=access_denied&state="+url.QueryEscape(st)))

		// Unknown providers and other tenants' providers are not found; cross-site POSTs
		// are refused before anything is read.
		other := newOtherTenant(t, s.testServer)
		otherTenant, err := s.app.ids.Tenant(context.Background(), other.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantPage(t, v.post("/t/"+otherTenant.Slug+"/login/"+id, form()), http.StatusNotFound)
		wantPage(t, v.post("/t/"+demoSlug+"/login/"+identity.NewID(), form()), http.StatusNotFound)
		wantPage(t, v.do(http.MethodPost, "/t/"+demoSlug+"/login/"+id, "lang=en", "application/x-www-form-urlencoded",
			"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"), http.StatusForbidden)
		if main := wantPage(t, s.customer(t).get("/t/"+otherTenant.Slug+"/signin"), http.StatusOK); strings.Contains(main, "/login/") {
			t.Fatalf("another tenant's sign-in page shows this tenant's provider:\n%s", main)
		}

		// A provider that cannot be reached: a page that says so, 503 with Retry-After.
		down := logintest.NewProvider(t)
		downID := s.addProvider(t, map[string]any{"kind": "oidc", "label": "Down", "issuer": down.Issuer(),
			"client_id": down.ClientID, "client_secret": down.ClientSecret})
		down.Close()
		r = v.post("/t/"+demoSlug+"/login/"+downID, form("lang", "en"))
		if page := wantPage(t, r, http.StatusServiceUnavailable); !strings.Contains(page, "does not answer") || r.Header.Get("Retry-After") == "" {
			t.Fatalf("unreachable provider:\n%s", page)
		}
	})
}

// TestLoginOIDCBadTokens: ID tokens that must not sign anyone in — another audience,
// expired, alg none, HMAC with the client secret, a key the provider does not publish,
// another issuer, no nonce — and a discovery document that names another issuer. A good
// token from the same provider, signed with RS256 or ES256, works.
func TestLoginOIDCBadTokens(t *testing.T) {
	g := logintest.NewGraph(t)
	eachAccountServer(t, loginEnv(g), func(t *testing.T, s *accountServer) {
		p := logintest.NewProvider(t)
		id := s.addProvider(t, map[string]any{"kind": "oidc", "label": "Own", "issuer": p.Issuer(), "client_id": p.ClientID,
			"client_secret": p.ClientSecret, "token_auth_method": "client_secret_basic"})
		for _, tc := range []struct {
			name   string
			sign   string
			tamper func(map[string]any)
		}{
			{"another audience", logintest.SignRS256, func(c map[string]any) { c["aud"] = "someone-else" }},
			{"expired", logintest.SignRS256, func(c map[string]any) {
				c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
			}},
			{"alg none", logintest.SignNone, nil},
			{"HS256 with the client secret", logintest.SignHS256, nil},
			{"a key it does not publish", logintest.SignUnknownKey, nil},
			{"another issuer", logintest.SignRS256, func(c map[string]any) { c["iss"] = "https://evil.example" }},
			{"no nonce", logintest.SignRS256, func(c map[string]any) { delete(c, "nonce") }},
			{"no subject", logintest.SignRS256, func(c map[string]any) { delete(c, "sub") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p.Shape(tc.sign, tc.tamper)
				p.Queue(logintest.User{Sub: "bad-" + tc.name})
				wantRefused(t, s.customer(t).login(id))
				if s.person(t, identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: "bad-" + tc.name}) != "" {
					t.Fatal("a refused token made a person")
				}
			})
		}
		for _, sign := range []string{logintest.SignRS256, logintest.SignES256} {
			p.Shape(sign, nil)
			p.Queue(logintest.User{Sub: "good-" + sign, Name: "Aino Virtanen"})
			v := s.customer(t)
			wantSignedIn(t, v.login(id))
			if main := wantPage(t, v.get("/account"), http.StatusOK); !strings.Contains(main, "<dd>Aino Virtanen</dd>") {
				t.Fatalf("the provider's name is not on the account:\n%s", main)
			}
		}
		if p.Refused.Load() != 0 {
			t.Fatalf("the provider refused %d token requests: Lupa's client authentication or PKCE is wrong", p.Refused.Load())
		}

		// A discovery document that claims another issuer is not used.
		p.ClaimIssuer("https://evil.example")
		s.patchProvider(t, id, map[string]any{"label": "Own again"}) // a change forgets the cached document
		r := s.customer(t).post("/t/"+demoSlug+"/login/"+id, form("lang", "en"))
		wantPage(t, r, http.StatusServiceUnavailable)
	})
}

var offerRe = regexp.MustCompile(`<form method="post" action="(/account/connect/[^"]+)">`)

// TestLoginEmailCollision: the linking rule. An identity whose address belongs to an
// account never signs in to it on its own: the person signs in to the account and then
// connects the identity, in the same browser, in a fresh session, once. Only a provider
// trusted for email with email_verified joins at once — and then an unconfirmed account
// loses the password someone else may have chosen.
func TestLoginEmailCollision(t *testing.T) {
	g := logintest.NewGraph(t)
	eachAccountServer(t, loginEnv(g), func(t *testing.T, s *accountServer) {
		p := logintest.NewProvider(t)
		id := s.addProvider(t, map[string]any{"kind": "oidc", "label": "Own", "issuer": p.Issuer(), "client_id": p.ClientID,
			"client_secret": p.ClientSecret})
		idp := func(sub string) identity.Identifier {
			return identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: sub}
		}
		const alice = "alice@esimerkki.fi"
		owner := s.customer(t)
		owner.register(demoSlug, alice)
		alicePerson := owner.sessionSubject()
		before := s.countAccounts(t)

		// The address is verified at the provider, but the provider is not trusted for email.
		v := s.customer(t)
		p.Queue(logintest.User{Sub: "alice-idp", Email: "Alice@Esimerkki.fi", EmailVerified: true})
		r := v.login(id)
		page := wantPage(t, r, http.StatusOK)
		if !strings.Contains(page, "This address has an account") || !strings.Contains(page, "?connect=1") ||
			strings.Contains(page, alice) || strings.Contains(strings.Join(r.Header["Set-Cookie"], "\n"), accounts.CookieName+"=") {
			t.Fatalf("collision page:\n%s\n%v", page, r.Header["Set-Cookie"])
		}
		if v.cookie() != "" || s.person(t, idp("alice-idp")) != "" || s.countAccounts(t) != before {
			t.Fatal("an identity entered or touched the account of its address")
		}
		pending := v.flowCookie()
		if pending == "" {
			t.Fatal("the identity does not wait in the browser")
		}

		// Connecting needs a session: none yet.
		if r := v.post("/account/connect/"+id, form()); r.Status == http.StatusSeeOther && r.Header.Get("Location") == "/account?done=connected&provider="+id {
			t.Fatal("connected without a session")
		}
		// Another account's session cannot take the identity waiting for Alice.
		bob := s.customer(t)
		bob.register(demoSlug, "bob@esimerkki.fi")
		bob.setFlowCookie(pending)
		if main := wantPage(t, bob.get("/account"), http.StatusOK); offerRe.MatchString(main) {
			t.Fatalf("Bob is offered Alice's identity:\n%s", main)
		}
		wantRefused(t, bob.post("/account/connect/"+id, form()))

		// Alice signs in with her password, in this browser, and connects.
		wantPage(t, v.get("/t/"+demoSlug+"/signin?connect=1&lang=en"), http.StatusOK)
		v.signIn(demoSlug, alice)
		account := wantPage(t, v.get("/account?lang=en"), http.StatusOK)
		m := offerRe.FindStringSubmatch(account)
		if m == nil || m[1] != "/account/connect/"+id || !strings.Contains(account, "Connect Own") {
			t.Fatalf("no offer to connect:\n%s", account)
		}
		wantRedirect(t, v.post(m[1], form()), "/account?done=connected&provider="+id)
		if main := wantPage(t, v.get("/account?done=connected&provider="+id+"&lang=en"), http.StatusOK); !strings.Contains(main, "Own is now connected") ||
			!strings.Contains(main, `<dd class="service"><span>Own</span>`) || offerRe.MatchString(main) {
			t.Fatalf("after connecting:\n%s", main)
		}
		if s.person(t, idp("alice-idp")) != alicePerson {
			t.Fatal("the identity did not join Alice")
		}
		wantRefused(t, v.post(m[1], form())) // once
		// From now on the identity signs in to Alice's account.
		p.Queue(logintest.User{Sub: "alice-idp", Email: alice, EmailVerified: true})
		w := s.customer(t)
		wantSignedIn(t, w.login(id))
		if got := w.signedInAs(); got != alice {
			t.Fatalf("the connected identity signs in as %q", got)
		}

		// A session older than the offer must sign in again before connecting.
		const carol = "carol@esimerkki.fi"
		c := s.customer(t)
		c.register(demoSlug, carol)
		p.Queue(logintest.User{Sub: "carol-idp", Email: carol})
		wantPage(t, c.login(id), http.StatusOK)
		main := wantPage(t, c.get("/account?lang=en"), http.StatusOK)
		if offerRe.MatchString(main) || !strings.Contains(main, "Sign in to your account again to connect Own") {
			t.Fatalf("an older session is offered the connection:\n%s", main)
		}
		wantPage(t, c.post("/account/connect/"+id, form()), http.StatusUnauthorized)
		if s.person(t, idp("carol-idp")) != "" {
			t.Fatal("connected in a session older than the offer")
		}
		// The sign-in page shows its form to a signed-in person who came to connect.
		wantPage(t, c.get("/t/"+demoSlug+"/signin?connect=1"), http.StatusOK)
		time.Sleep(2 * time.Millisecond) // the new session begins after the offer
		c.signIn(demoSlug, carol)
		m = offerRe.FindStringSubmatch(wantPage(t, c.get("/account"), http.StatusOK))
		if m == nil {
			t.Fatal("no offer after signing in again")
		}
		wantRedirect(t, c.post(m[1], form()), "/account?done=connected&provider="+id)
		if s.person(t, idp("carol-idp")) != c.sessionSubject() {
			t.Fatal("Carol's identity did not join her")
		}

		// Trusted for email: a verified address joins its account at once …
		s.patchProvider(t, id, map[string]any{"trusted_for_email": true})
		const dave = "dave@esimerkki.fi"
		d := s.customer(t)
		d.register(demoSlug, dave)
		davePerson := d.sessionSubject()
		p.Queue(logintest.User{Sub: "dave-idp", Email: dave, EmailVerified: true})
		dv := s.customer(t)
		wantSignedIn(t, dv.login(id))
		if dv.sessionSubject() != davePerson || s.person(t, idp("dave-idp")) != davePerson {
			t.Fatal("a trusted, verified address did not join its account")
		}
		// … but not an unverified one, even from a trusted provider.
		const erin = "erin@esimerkki.fi"
		s.customer(t).register(demoSlug, erin)
		p.Queue(logintest.User{Sub: "erin-idp", Email: erin, EmailVerified: false})
		if main := wantPage(t, s.customer(t).login(id), http.StatusOK); !strings.Contains(main, "This address has an account") {
			t.Fatalf("an unverified address from a trusted provider:\n%s", main)
		}
		// A second identity of the same issuer with the same address is not joined either.
		p.Queue(logintest.User{Sub: "dave-idp-2", Email: dave, EmailVerified: true})
		if main := wantPage(t, s.customer(t).login(id), http.StatusOK); !strings.Contains(main, "This address has an account") {
			t.Fatalf("a second identity of one issuer joined by address:\n%s", main)
		}

		// An account registered but never confirmed: someone may have registered the
		// address of another. The owner's verified sign-in takes it over, and the password
		// chosen before the address was proven stops working.
		const frank = "frank@esimerkki.fi"
		wantPage(t, s.customer(t).post("/t/"+demoSlug+"/register", form("email", frank, "password", goodPW)), http.StatusOK)
		s.mailLink(t, frank, "Vahvista sähköpostiosoitteesi")
		p.Queue(logintest.User{Sub: "frank-idp", Email: frank, EmailVerified: true})
		fv := s.customer(t)
		wantSignedIn(t, fv.login(id))
		if got := fv.signedInAs(); got != frank {
			t.Fatalf("signed in as %q", got)
		}
		wantPage(t, s.customer(t).post("/t/"+demoSlug+"/signin", form("email", frank, "password", goodPW)), http.StatusUnprocessableEntity)

		// A new person with a trusted, verified address gets it, confirmed.
		p.Queue(logintest.User{Sub: "gina-idp", Email: "gina@esimerkki.fi", EmailVerified: true})
		gv := s.customer(t)
		wantSignedIn(t, gv.login(id))
		if got := gv.signedInAs(); got != "gina@esimerkki.fi" {
			t.Fatalf("new person with a verified address: %q", got)
		}
		if main := wantPage(t, gv.get("/account?lang=en"), http.StatusOK); !strings.Contains(main, "<dd>confirmed</dd>") {
			t.Fatalf("the address is not confirmed:\n%s", main)
		}
	})
}

// TestLoginFacebook: Facebook Login against a server that answers like the Graph API and
// checks appsecret_proof; only id, name and email are asked for; the address is never
// trusted, so it never enters the account that has it.
func TestLoginFacebook(t *testing.T) {
	g := logintest.NewGraph(t)
	eachAccountServer(t, loginEnv(g), func(t *testing.T, s *accountServer) {
		id := s.addProvider(t, map[string]any{"kind": "facebook", "label": "Facebook", "client_id": g.AppID, "client_secret": g.AppSecret})
		r := s.admin(http.MethodGet, "/v1/admin/login-providers/"+id, nil).Map(t)
		if r["issuer"] != login.FacebookIssuer || r["trusted_for_email"] != false {
			t.Fatalf("Facebook provider: %v", r)
		}
		g.Queue(logintest.FacebookUser{ID: "100200300", Name: "Matti Meikäläinen", Email: "matti@esimerkki.fi"})
		v := s.customer(t)
		dialog := v.beginLogin(id)
		q := dialog.Query()
		if !strings.HasPrefix(dialog.String(), g.DialogURL()+"?") || q.Get("client_id") != g.AppID || len(q.Get("state")) < 43 ||
			q.Get("code_challenge_method") != "S256" || q.Get("scope") != "public_profile,email" ||
			q.Get("redirect_uri") != s.TLS.URL+"/t/"+demoSlug+"/login/"+id+"/callback" {
			t.Fatalf("dialog URL %s", dialog)
		}
		callback := v.authorize(dialog)
		meBefore := g.Me.Load()
		wantSignedIn(t, v.get(callback))
		if g.Me.Load() != meBefore+1 || g.BadProof.Load() != 0 {
			t.Fatalf("/me calls %d, bad proofs %d", g.Me.Load()-meBefore, g.BadProof.Load())
		}
		main := wantPage(t, v.get("/account?lang=en"), http.StatusOK)
		if !strings.Contains(main, "<dd>Matti Meikäläinen</dd>") || !strings.Contains(main, `<dd class="service"><span>Facebook</span>`) || strings.Contains(main, "matti@") {
			t.Fatalf("account after Facebook sign-in:\n%s", main)
		}
		person := v.sessionSubject()
		if s.person(t, identity.Identifier{Kind: identity.IDIdP, Namespace: "https://www.facebook.com", Value: "100200300"}) != person ||
			s.person(t, identity.Identifier{Kind: identity.IDEmail, Value: "matti@esimerkki.fi"}) != "" {
			t.Fatal("the Facebook identity is not (https://www.facebook.com, id), or its address was taken as verified")
		}
		wantRefused(t, v.get(callback)) // used up

		// The same Facebook user again: the same person.
		g.Queue(logintest.FacebookUser{ID: "100200300", Name: "Matti Meikäläinen"})
		w := s.customer(t)
		wantSignedIn(t, w.login(id))
		if w.sessionSubject() != person {
			t.Fatal("the second Facebook sign-in is another person")
		}

		// An address that belongs to an account: never in on its own.
		owner := s.customer(t)
		owner.register(demoSlug, "maija@esimerkki.fi")
		g.Queue(logintest.FacebookUser{ID: "100200400", Name: "Maija", Email: "maija@esimerkki.fi"})
		if page := wantPage(t, s.customer(t).login(id), http.StatusOK); !strings.Contains(page, "This address has an account") {
			t.Fatalf("Facebook collision:\n%s", page)
		}

		// The Graph API refuses a wrong app secret, and so the sign-in.
		s.patchProvider(t, id, map[string]any{"client_secret": "not-the-app-secret"})
		wantRefused(t, s.customer(t).login(id))

		// The test server does check the proof.
		res, err := http.Get(g.GraphURL() + "/me?fields=id&appsecret_proof=00")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("/me without a token or proof: %d", res.StatusCode)
		}
	})
}

var disconnectRe = regexp.MustCompile(`<form method="post" action="(/account/disconnect/[^"]+)" class="inline">`)

// TestLoginDisconnect: a person disconnects a sign-in service from the account page; the
// identity then no longer opens the account. The last way in, and the company's own CIAM
// identity, cannot be disconnected; another person's or an unknown provider is not found.
func TestLoginDisconnect(t *testing.T) {
	g := logintest.NewGraph(t)
	eachAccountServer(t, loginEnv(g), func(t *testing.T, s *accountServer) {
		p := logintest.NewProvider(t)
		id := s.addProvider(t, map[string]any{"kind": "oidc", "label": "Own", "issuer": p.Issuer(), "client_id": p.ClientID,
			"client_secret": p.ClientSecret, "trusted_for_email": true})
		idp := identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: "hanna-idp"}

		// A provider-only account: the service is its only way in.
		only := s.customer(t)
		p.Queue(logintest.User{Sub: "only-idp", Name: "Olli"})
		wantSignedIn(t, only.login(id))
		page := wantPage(t, only.get("/account?lang=en"), http.StatusOK)
		act := disconnectRe.FindStringSubmatch(page)
		if act == nil || act[1] != "/account/disconnect/"+id {
			t.Fatalf("no disconnect form on the account page:\n%s", page)
		}
		if r := wantPage(t, only.post(act[1], form("lang", "en")), http.StatusConflict); !strings.Contains(r, "only way to sign in") {
			t.Fatalf("the last way in was disconnected:\n%s", r)
		}
		p.Queue(logintest.User{Sub: "only-idp"})
		wantSignedIn(t, s.customer(t).login(id))

		// An account with a verified address: the service joined it (trusted, verified).
		const hanna = "hanna@esimerkki.fi"
		h := s.customer(t)
		h.register(demoSlug, hanna)
		person := h.sessionSubject()
		p.Queue(logintest.User{Sub: "hanna-idp", Email: hanna, EmailVerified: true})
		hv := s.customer(t)
		wantSignedIn(t, hv.login(id))
		if s.person(t, idp) != person {
			t.Fatal("the identity did not join the account")
		}
		// Not found: an unknown provider, and a cross-site POST is refused before anything.
		wantPage(t, hv.post("/account/disconnect/nope", form("lang", "en")), http.StatusNotFound)
		wantPage(t, hv.post(act[1], form("lang", "en"), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"), http.StatusForbidden)
		if s.person(t, idp) != person {
			t.Fatal("a refused request disconnected the service")
		}
		r := hv.post(act[1], form("lang", "en"))
		wantRedirect(t, r, "/account?done=disconnected&provider="+url.QueryEscape(id)+"&lang=en")
		if notice := wantPage(t, hv.get(r.Header.Get("Location")), http.StatusOK); !strings.Contains(notice, "Own is disconnected") ||
			disconnectRe.MatchString(notice) {
			t.Fatalf("after disconnecting:\n%s", notice)
		}
		if s.person(t, idp) != "" {
			t.Fatal("the identity still names the person")
		}
		// The password still signs in; the decisions stay the person's.
		again := s.customer(t)
		again.signIn(demoSlug, hanna)
		if again.sessionSubject() != person {
			t.Fatal("the account lost its person")
		}

		// The company's CIAM identity names the person in its apps: not the person's to
		// disconnect.
		if r := s.admin(http.MethodPost, "/v1/admin/ciam-issuers", map[string]any{"name": "Own CIAM", "issuer": p.Issuer(),
			"audiences": []string{"shop-app"}}); r.Status != http.StatusCreated {
			t.Fatalf("CIAM issuer: %d %s", r.Status, r.Body)
		}
		p.Queue(logintest.User{Sub: "hanna-idp", Email: hanna, EmailVerified: true})
		c := s.customer(t)
		wantSignedIn(t, c.login(id))
		if r := wantPage(t, c.post(act[1], form("lang", "en")), http.StatusConflict); !strings.Contains(r, "own sign-in, by which its apps know you") {
			t.Fatalf("the company's identity was disconnected:\n%s", r)
		}
	})
}
