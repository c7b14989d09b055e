package main

// The customer account pages, end to end: the real router and database, mail through a
// real SMTP server started in the test, and a client that keeps cookies the way a browser
// does. The session cookie is Secure (and __Host-), which Go's cookie jar — like a browser
// — sends only over https, so these tests talk to Lupa over TLS (httptest's certificate)
// rather than handling cookies by hand.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// accountServer is a test server whose mail goes to a real SMTP server, reachable over
// https at its LUPA_PUBLIC_URL, so that the links in its emails work as they are.
type accountServer struct {
	*testServer
	TLS  *httptest.Server
	SMTP *mailtest.Server
}

// newAccountServer starts Lupa on dialect with LUPA_SMTP_URL pointing at an SMTP server of
// the test, and serves its router over TLS at the URL it puts in emails.
func newAccountServer(t *testing.T, dialect string, env map[string]string) *accountServer {
	t.Helper()
	smtp := mailtest.NewServer(t)
	// The listener is held from the start: a port let go and taken again after the server's
	// set-up can be taken meanwhile by another test's connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	addr := ln.Addr().String()
	vars := map[string]string{
		"LUPA_SMTP_URL":   fmt.Sprintf("smtp://%s:%d?tls=none", smtp.Host(), smtp.Port()),
		"LUPA_PUBLIC_URL": "https://" + addr,
	}
	for k, v := range env {
		vars[k] = v
	}
	s := newTestServer(t, dialect, vars)
	ts := httptest.NewUnstartedServer(s.Config.Handler)
	ts.Listener.Close()
	ts.Listener = ln
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &accountServer{testServer: s, TLS: ts, SMTP: smtp}
}

// eachAccountServer runs fn against an account server on each dialect.
func eachAccountServer(t *testing.T, env map[string]string, fn func(t *testing.T, s *accountServer)) {
	for _, d := range sqldbtest.Dialects {
		t.Run(d, func(t *testing.T) { fn(t, newAccountServer(t, d, env)) })
	}
}

// customer is one browser: its own cookie jar, redirects not followed (the tests look at
// each 303).
type customer struct {
	t      *testing.T
	s      *accountServer
	client *http.Client
	header []string // sent with every request
}

func (s *accountServer) customer(t *testing.T, headers ...string) *customer {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *s.TLS.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &customer{t: t, s: s, client: &c, header: headers}
}

func (v *customer) do(method, path string, body string, contentType string, headers ...string) *response {
	v.t.Helper()
	var rd *strings.Reader
	if body != "" || method == http.MethodPost {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequest(method, v.s.TLS.URL+path, rd)
	} else {
		req, err = http.NewRequest(method, v.s.TLS.URL+path, nil)
	}
	if err != nil {
		v.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	all := append(append([]string(nil), v.header...), headers...)
	for i := 0; i+1 < len(all); i += 2 {
		req.Header.Set(all[i], all[i+1])
	}
	return send(v.t, v.client, req)
}

func (v *customer) get(path string, headers ...string) *response {
	v.t.Helper()
	return v.do(http.MethodGet, path, "", "", headers...)
}

// post sends a form as a browser would: urlencoded, from a page of Lupa itself.
func (v *customer) post(path string, form url.Values, headers ...string) *response {
	v.t.Helper()
	return v.do(http.MethodPost, path, form.Encode(), "application/x-www-form-urlencoded",
		append([]string{"Sec-Fetch-Site", "same-origin", "Origin", v.s.TLS.URL}, headers...)...)
}

// cookie is the session cookie the customer's jar holds, or "".
func (v *customer) cookie() string {
	u, _ := url.Parse(v.s.TLS.URL)
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == accounts.CookieName {
			return c.Value
		}
	}
	return ""
}

// setCookie puts a session cookie into the customer's jar, as a planted or stolen one.
func (v *customer) setCookie(value string) {
	u, _ := url.Parse(v.s.TLS.URL)
	v.client.Jar.SetCookies(u, []*http.Cookie{{Name: accounts.CookieName, Value: value, Path: "/", Secure: true, HttpOnly: true}})
}

// signedInAs says whose account /account shows: its email address, or "" when it shows
// none (a redirect or a refusal).
func (v *customer) signedInAs() string {
	v.t.Helper()
	r := v.get("/account")
	if r.Status != http.StatusOK {
		return ""
	}
	m := regexp.MustCompile(`<dd>([^<]*@[^<]*)</dd>`).FindSubmatch(r.Body)
	if m == nil {
		v.t.Fatalf("/account shows no address: %s", mainOf(r))
	}
	return string(m[1])
}

var mainRe = regexp.MustCompile(`(?s)<main>.*</main>`)

// mainOf is the <main> of a page, for comparisons and messages.
func mainOf(r *response) string { return string(mainRe.Find(r.Body)) }

// wantPage requires an HTML page with the status and the security headers of the account
// pages, and returns its <main>.
func wantPage(t testing.TB, r *response, status int) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %.600s", r.Status, status, mainOf(r))
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q, want an HTML page", ct)
	}
	csp := r.Header.Get("Content-Security-Policy")
	nonce := regexp.MustCompile(`'nonce-([A-Za-z0-9+/=]+)'`).FindStringSubmatch(csp)
	if nonce == nil || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if !strings.Contains(string(r.Body), `<style nonce="`+nonce[1]+`">`) {
		t.Fatalf("the inline stylesheet does not carry the CSP's nonce %s", nonce[1])
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
		"X-Content-Type-Options": "nosniff"} {
		if got := r.Header.Get(h); got != want {
			t.Fatalf("%s: %q, want %q", h, got, want)
		}
	}
	if !regexp.MustCompile(`^<!doctype html><html lang="(fi|sv|en)">`).Match(r.Body) {
		t.Fatalf("page does not start with a doctype and a language: %.100s", r.Body)
	}
	return mainOf(r)
}

// wantRedirect requires a 303 to location.
func wantRedirect(t testing.TB, r *response, location string) {
	t.Helper()
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != location {
		t.Fatalf("status %d to %q, want 303 to %q: %.300s", r.Status, r.Header.Get("Location"), location, mainOf(r))
	}
}

var mailLinkRe = regexp.MustCompile(`https?://\S+`)

// mailLink waits for the next email to the address, checks its subject, and returns the
// path and query of its link.
func (s *accountServer) mailLink(t testing.TB, to, subject string) (path, token string) {
	t.Helper()
	m := s.SMTP.WaitFor(t, to, 10*time.Second)
	if m.Subject != subject {
		t.Fatalf("mail to %s: %q, want %q", to, m.Subject, subject)
	}
	link := mailLinkRe.FindString(m.Text)
	if link == "" {
		t.Fatalf("no link in %q", m.Text)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme+"://"+u.Host != s.TLS.URL {
		t.Fatalf("link %s is not on Lupa's public URL %s", link, s.TLS.URL)
	}
	return u.Path, u.Query().Get("t")
}

const (
	demoSlug = consent.DemoSlug
	goodPW   = "kaksi kissaa ja koira"
)

func form(kv ...string) url.Values {
	f := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

// register registers the address on the tenant and verifies it through the emailed link;
// the customer is signed in afterwards.
func (v *customer) register(slug, email string) {
	v.t.Helper()
	wantPage(v.t, v.post("/t/"+slug+"/register", form("email", email, "password", goodPW, "lang", "en")), http.StatusOK)
	path, token := v.s.mailLink(v.t, email, "Confirm your email address")
	wantRedirect(v.t, v.post(path, form("t", token)), "/account")
}

// signIn signs in with the address and goodPW.
func (v *customer) signIn(slug, email string) {
	v.t.Helper()
	wantRedirect(v.t, v.post("/t/"+slug+"/signin", form("email", email, "password", goodPW)), "/account")
}

// TestAccountRegisterAndVerify: registration mails a link through SMTP; opening it (GET)
// verifies nothing; confirming it (POST) verifies the address, signs the person in with a
// cookie of the right attributes, and /account shows the address.
func TestAccountRegisterAndVerify(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		v := s.customer(t)
		page := wantPage(t, v.get("/t/"+demoSlug+"/register"), http.StatusOK)
		for _, want := range []string{`<label for="email">`, `id="email" name="email" type="email" autocomplete="email"`,
			`<label for="password">`, `autocomplete="new-password"`, `aria-describedby="password-hint"`, `<h1>Luo tili</h1>`} {
			if !strings.Contains(page, want) {
				t.Fatalf("register page lacks %s:\n%s", want, page)
			}
		}
		const email = "aino.lahtinen@esimerkki.fi"
		first := wantPage(t, v.post("/t/"+demoSlug+"/register", form("email", "Aino.Lahtinen@Esimerkki.FI", "password", goodPW)), http.StatusOK)
		if !strings.Contains(first, "Tarkista sähköpostisi") {
			t.Fatalf("no check-your-email page:\n%s", first)
		}
		path, token := s.mailLink(t, email, "Vahvista sähköpostiosoitteesi")
		if path != "/account/verify" || token == "" {
			t.Fatalf("verification link %s?t=%s", path, token)
		}
		// Registering the address again answers exactly the same; the owner is mailed.
		again := wantPage(t, v.post("/t/"+demoSlug+"/register", form("email", email, "password", "joku toinen salasana")), http.StatusOK)
		if again != first {
			t.Fatalf("a taken address answers differently:\n%s\n---\n%s", first, again)
		}
		if m := s.SMTP.WaitFor(t, email, 10*time.Second); m.Subject != "Tilisi on jo olemassa" {
			t.Fatalf("second registration mailed %q", m.Subject)
		}

		// Opening the link (as a mail scanner would, twice) shows a button and uses nothing.
		for i := 0; i < 2; i++ {
			confirm := wantPage(t, v.get(path+"?t="+url.QueryEscape(token)), http.StatusOK)
			if !strings.Contains(confirm, `<form method="post" action="/account/verify">`) ||
				!strings.Contains(confirm, `name="t" value="`+token+`"`) || !strings.Contains(confirm, "Vahvista ja kirjaudu") {
				t.Fatalf("confirmation page:\n%s", confirm)
			}
		}
		if v.cookie() != "" {
			t.Fatal("opening the link set a cookie")
		}
		// Still unverified: the password does not sign in yet.
		wantPage(t, v.post("/t/"+demoSlug+"/signin", form("email", email, "password", goodPW)), http.StatusUnprocessableEntity)

		r := v.post(path, form("t", token))
		wantRedirect(t, r, "/account")
		wantSessionCookie(t, r)
		if got := v.signedInAs(); got != email {
			t.Fatalf("/account shows %q, want %s", got, email)
		}
		account := wantPage(t, v.get("/account"), http.StatusOK)
		for _, want := range []string{"<h1>Oma tili</h1>", "vahvistettu", `action="/account/password"`, `autocomplete="current-password"`,
			`action="/account/signout"`, `action="/account/signout-all"`} {
			if !strings.Contains(account, want) {
				t.Fatalf("account page lacks %s:\n%s", want, account)
			}
		}
		// The link worked once.
		wantPage(t, v.post(path, form("t", token)), http.StatusUnprocessableEntity)
		// And the password now signs in, on another browser.
		other := s.customer(t)
		other.signIn(demoSlug, email)
	})
}

// wantSessionCookie checks the Set-Cookie of a sign-in: __Host- name, Path=/, Secure,
// HttpOnly, SameSite=Lax, no Domain, expiring with the session's 12-hour lifetime.
func wantSessionCookie(t testing.TB, r *response) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == accounts.CookieName {
			found = c
		}
	}
	if found == nil {
		t.Fatalf("no session cookie in %v", r.Header["Set-Cookie"])
	}
	raw := strings.Join(r.Header["Set-Cookie"], "\n")
	if found.Path != "/" || !found.Secure || !found.HttpOnly || found.SameSite != http.SameSiteLaxMode || found.Domain != "" ||
		strings.Contains(strings.ToLower(raw), "domain=") {
		t.Fatalf("session cookie attributes: %s", raw)
	}
	lifetime := time.Until(found.Expires)
	if lifetime < 12*time.Hour-time.Minute || lifetime > 12*time.Hour+time.Minute ||
		found.MaxAge < 12*3600-60 || found.MaxAge > 12*3600 {
		t.Fatalf("session cookie expires in %s (Max-Age %d), want the 12-hour absolute lifetime: %s", lifetime, found.MaxAge, raw)
	}
	if _, _, ok := accounts.SplitToken(found.Value); !ok {
		t.Fatalf("cookie value %q is not a session token", found.Value)
	}
	return found
}

// TestAccountSignInGenericFailure: an unknown address, an unverified account and a wrong
// password show the same page; the right password signs in.
func TestAccountSignInGenericFailure(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		v := s.customer(t, "Accept-Language", "en-GB,en;q=0.9")
		v.register(demoSlug, "ville@esimerkki.fi")
		if r := v.post("/account/signout", nil); r.Status != http.StatusSeeOther {
			t.Fatalf("sign out: %d", r.Status)
		}
		// Unverified: registered, link never used.
		wantPage(t, v.post("/t/"+demoSlug+"/register", form("email", "unverified@esimerkki.fi", "password", goodPW)), http.StatusOK)
		s.mailLink(t, "unverified@esimerkki.fi", "Confirm your email address")

		var pages []string
		for _, c := range []struct{ email, pw string }{
			{"nobody@esimerkki.fi", goodPW}, {"ville@esimerkki.fi", "väärä salasana tässä"}, {"unverified@esimerkki.fi", goodPW},
		} {
			r := v.post("/t/"+demoSlug+"/signin", form("email", c.email, "password", c.pw))
			page := wantPage(t, r, http.StatusUnprocessableEntity)
			if !strings.Contains(page, `role="alert"`) || !strings.Contains(page, "The email address or the password is not right.") {
				t.Fatalf("%s: no generic message:\n%s", c.email, page)
			}
			if r.Header.Get("Set-Cookie") != "" {
				t.Fatalf("%s: a failed sign-in set a cookie", c.email)
			}
			pages = append(pages, strings.ReplaceAll(page, c.email, "EMAIL"))
		}
		if pages[0] != pages[1] || pages[1] != pages[2] {
			t.Fatalf("failures differ:\n%s\n---\n%s\n---\n%s", pages[0], pages[1], pages[2])
		}
		r := v.post("/t/"+demoSlug+"/signin", form("email", "Ville@Esimerkki.fi", "password", goodPW))
		wantRedirect(t, r, "/account")
		wantSessionCookie(t, r)
		if got := v.signedInAs(); got != "ville@esimerkki.fi" {
			t.Fatalf("signed in as %q", got)
		}
		// Signed in already: the sign-in page goes on to the account.
		wantRedirect(t, v.get("/t/"+demoSlug+"/signin"), "/account")
	})
}

// TestAccountSessionFixation: a cookie value set before sign-in is never the session
// afterwards, an invented one is not accepted, and the previous session of the browser
// ends at a new sign-in.
func TestAccountSessionFixation(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		owner := s.customer(t)
		owner.register(demoSlug, "sofia@esimerkki.fi")

		// Invented cookies: junk, and well-formed ones naming the real tenant.
		v := s.customer(t)
		invented := s.demo.Tenant.ID + "." + strings.Repeat("A", 43)
		for _, c := range []string{"attacker-chosen", invented, s.demo.Tenant.ID + ".not-a-token"} {
			v.setCookie(c)
			r := v.get("/account")
			if r.Status == http.StatusOK {
				t.Fatalf("cookie %q was accepted", c)
			}
		}
		v.setCookie("attacker-chosen")
		wantPage(t, v.get("/account"), http.StatusUnauthorized)
		v.setCookie(invented)
		wantRedirect(t, v.get("/account"), "/t/"+demoSlug+"/signin?lang=fi")

		// A value planted before sign-in is replaced by a new one.
		v.setCookie(invented)
		r := v.post("/t/"+demoSlug+"/signin", form("email", "sofia@esimerkki.fi", "password", goodPW))
		wantRedirect(t, r, "/account")
		first := wantSessionCookie(t, r).Value
		if first == invented || v.cookie() != first {
			t.Fatalf("planted %q, after sign-in %q (jar %q)", invented, first, v.cookie())
		}
		if v.signedInAs() != "sofia@esimerkki.fi" {
			t.Fatal("not signed in")
		}
		// Signing in again gives a new session and ends the one the browser held.
		r = v.post("/t/"+demoSlug+"/signin", form("email", "sofia@esimerkki.fi", "password", goodPW))
		second := wantSessionCookie(t, r).Value
		if second == first {
			t.Fatal("a second sign-in kept the session id")
		}
		stale := s.customer(t)
		stale.setCookie(first)
		if stale.signedInAs() != "" {
			t.Fatal("the session replaced at sign-in still works")
		}
		// Another browser's session is its own.
		if owner.signedInAs() != "sofia@esimerkki.fi" {
			t.Fatal("another browser's session ended")
		}
	})
}

// TestAccountCrossOrigin: cross-site POSTs are refused (403) before they do anything.
func TestAccountCrossOrigin(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		v := s.customer(t)
		v.register(demoSlug, "eero@esimerkki.fi")
		before := len(s.SMTP.Messages())
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{"/t/" + demoSlug + "/signin", form("email", "eero@esimerkki.fi", "password", goodPW)},
			{"/t/" + demoSlug + "/register", form("email", "uusi@esimerkki.fi", "password", goodPW)},
			{"/t/" + demoSlug + "/reset", form("email", "eero@esimerkki.fi")},
			{"/account/password", form("current_password", goodPW, "new_password", "hyökkääjän salasana")},
			{"/account/signout-all", nil},
			{"/account/signout", nil},
		} {
			for _, h := range [][]string{
				{"Origin", "https://evil.example"},
				{"Sec-Fetch-Site", "cross-site"},
				{"Sec-Fetch-Site", "same-site", "Origin", "https://shop." + "evil.example"},
			} {
				// Sent without post's same-origin headers.
				r := v.do(http.MethodPost, c.path, c.form.Encode(), "application/x-www-form-urlencoded", h...)
				page := wantPage(t, r, http.StatusForbidden)
				if !strings.Contains(page, "The form was refused") || r.Header.Get("Set-Cookie") != "" {
					t.Fatalf("%s %v: %s", c.path, h, page)
				}
			}
		}
		if v.signedInAs() != "eero@esimerkki.fi" {
			t.Fatal("a refused sign-out ended the session")
		}
		time.Sleep(200 * time.Millisecond) // a refused request that mailed would have by now
		if n := len(s.SMTP.Messages()); n != before {
			t.Fatalf("refused requests sent %d emails", n-before)
		}
		// The old password still works: the refused change did nothing.
		s.customer(t).signIn(demoSlug, "eero@esimerkki.fi")
		// A same-origin request passes (Sec-Fetch-Site, or an Origin matching the host).
		wantRedirect(t, v.do(http.MethodPost, "/t/"+demoSlug+"/signin",
			form("email", "eero@esimerkki.fi", "password", goodPW).Encode(), "application/x-www-form-urlencoded", "Origin", s.TLS.URL), "/account")
	})
}

// TestAccountThrottling: a burst of failed sign-ins from one address gets 429 with
// Retry-After; so does a burst of link requests. (An overloaded hasher's 503 is in
// identityweb's pages_test.go: how many hashes make an overload depends on the machine.)
func TestAccountThrottling(t *testing.T) {
	eachAccountServer(t, map[string]string{"LUPA_TRUSTED_PROXIES": "127.0.0.1"}, func(t *testing.T, s *accountServer) {
		v := s.customer(t, "X-Forwarded-For", "198.51.100.7")
		throttled := false
		for i := 0; i < 20 && !throttled; i++ {
			r := v.post("/t/"+demoSlug+"/signin", form("email", "nobody@esimerkki.fi", "password", "väärä salasana "+fmt.Sprint(i)))
			switch r.Status {
			case http.StatusUnprocessableEntity:
			case http.StatusTooManyRequests:
				throttled = true
				page := wantPage(t, r, http.StatusTooManyRequests)
				if r.Header.Get("Retry-After") == "" || !strings.Contains(page, "Liian monta yritystä") {
					t.Fatalf("429 without Retry-After or message: %v\n%s", r.Header, page)
				}
				if i < 10 {
					t.Fatalf("throttled after %d attempts; the burst is 10", i)
				}
			default:
				t.Fatalf("sign-in %d: %d %s", i, r.Status, mainOf(r))
			}
		}
		if !throttled {
			t.Fatal("20 failed sign-ins from one address were never throttled")
		}
		// Another client address is not throttled by the first.
		wantPage(t, s.customer(t, "X-Forwarded-For", "198.51.100.8").post("/t/"+demoSlug+"/signin",
			form("email", "nobody@esimerkki.fi", "password", "väärä salasana")), http.StatusUnprocessableEntity)

		// Requests that send email have their own limit per address.
		w := s.customer(t, "X-Forwarded-For", "198.51.100.9")
		limited := false
		for i := 0; i < 40 && !limited; i++ {
			r := w.post("/t/"+demoSlug+"/signin-link", form("email", fmt.Sprintf("nobody%d@esimerkki.fi", i)))
			limited = r.Status == http.StatusTooManyRequests
			if limited {
				wantPage(t, r, http.StatusTooManyRequests)
				if r.Header.Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
			} else {
				wantPage(t, r, http.StatusOK)
			}
		}
		if !limited {
			t.Fatal("40 link requests from one address were never limited")
		}
	})
}

// TestAccountResetEndsSessions: a reset link opens a new-password form (without using the
// link), a bad password is refused with the link kept, and the new password ends every
// other session and signs this browser in.
func TestAccountResetEndsSessions(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "pirjo@esimerkki.fi"
		a := s.customer(t)
		a.register(demoSlug, email)
		b := s.customer(t)
		b.signIn(demoSlug, email)

		c := s.customer(t)
		wantPage(t, c.get("/t/"+demoSlug+"/reset?lang=sv"), http.StatusOK)
		sent := wantPage(t, c.post("/t/"+demoSlug+"/reset", form("email", email, "lang", "sv")), http.StatusOK)
		unknown := wantPage(t, c.post("/t/"+demoSlug+"/reset", form("email", "nobody@esimerkki.fi", "lang", "sv")), http.StatusOK)
		if sent != unknown || !strings.Contains(sent, "Kolla din e-post") {
			t.Fatalf("reset answers differ for a known and an unknown address:\n%s\n---\n%s", sent, unknown)
		}
		path, token := s.mailLink(t, email, "Byt ditt lösenord")
		if path != "/account/reset" {
			t.Fatalf("reset link %s", path)
		}
		for i := 0; i < 2; i++ {
			page := wantPage(t, c.get(path+"?t="+url.QueryEscape(token)+"&lang=sv"), http.StatusOK)
			if !strings.Contains(page, `autocomplete="new-password"`) || !strings.Contains(page, `value="`+token+`"`) {
				t.Fatalf("new-password form:\n%s", page)
			}
		}
		short := wantPage(t, c.post(path, form("t", token, "password", "lyhyt", "lang", "sv")), http.StatusUnprocessableEntity)
		for _, want := range []string{`aria-invalid="true"`, `aria-describedby="password-hint password-error"`, `id="password-error"`,
			"Lösenordet ska ha minst 12 tecken.", `role="alert"`, `value="` + token + `"`} {
			if !strings.Contains(short, want) {
				t.Fatalf("short password page lacks %s:\n%s", want, short)
			}
		}
		r := c.post(path, form("t", token, "password", "uusi ja pitkä salasana", "lang", "sv"))
		wantRedirect(t, r, "/account")
		wantSessionCookie(t, r)
		if c.signedInAs() != email {
			t.Fatal("the reset did not sign in")
		}
		for name, other := range map[string]*customer{"a": a, "b": b} {
			if other.signedInAs() != "" {
				t.Fatalf("session %s outlived the reset", name)
			}
		}
		wantPage(t, s.customer(t).post("/t/"+demoSlug+"/signin", form("email", email, "password", goodPW)), http.StatusUnprocessableEntity)
		wantRedirect(t, s.customer(t).post("/t/"+demoSlug+"/signin", form("email", email, "password", "uusi ja pitkä salasana")), "/account")
		wantPage(t, c.post(path, form("t", token, "password", "vielä yksi salasana")), http.StatusUnprocessableEntity)
	})
}

// TestAccountSignOut: signing out ends this browser's session and clears its cookie;
// signing out everywhere ends every session; a password change ends the others.
func TestAccountSignOut(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "jussi@esimerkki.fi"
		a := s.customer(t)
		a.register(demoSlug, email)
		b := s.customer(t)
		b.signIn(demoSlug, email)

		r := a.post("/account/signout", form("lang", "en"))
		wantRedirect(t, r, "/t/"+demoSlug+"/signin?done=signout&lang=en")
		cleared := false
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			cleared = cleared || (c.Name == accounts.CookieName && c.Value == "" && c.MaxAge < 0 && c.Secure && c.Path == "/")
		}
		if !cleared || a.cookie() != "" {
			t.Fatalf("sign-out did not clear the cookie: %v", r.Header["Set-Cookie"])
		}
		if !strings.Contains(wantPage(t, a.get("/t/"+demoSlug+"/signin?done=signout&lang=en"), http.StatusOK), "You have signed out.") {
			t.Fatal("no signed-out notice")
		}
		if b.signedInAs() != email {
			t.Fatal("signing out one browser ended another's session")
		}
		// Not signed in: the account routes send the browser to sign in, or say so.
		wantPage(t, a.get("/account"), http.StatusUnauthorized)
		wantPage(t, a.post("/account/signout", nil), http.StatusUnauthorized)

		a.signIn(demoSlug, email)
		wantRedirect(t, a.post("/account/signout-all", nil), "/t/"+demoSlug+"/signin?done=signout-all&lang=fi")
		if a.signedInAs() != "" || b.signedInAs() != "" {
			t.Fatal("sign out everywhere left a session")
		}

		// A password change needs the current password and ends the other sessions.
		a.signIn(demoSlug, email)
		b.signIn(demoSlug, email)
		wrong := wantPage(t, a.post("/account/password", form("current_password", "ei tämä", "new_password", "uusi salasana tälle")),
			http.StatusUnprocessableEntity)
		// The account page speaks the account's language (English, chosen at registration).
		if !strings.Contains(wrong, "The current password is not right.") || !strings.Contains(wrong, `id="current_password"`) {
			t.Fatalf("wrong current password:\n%s", wrong)
		}
		wantRedirect(t, a.post("/account/password", form("current_password", goodPW, "new_password", "uusi salasana tälle")), "/account?done=password")
		if !strings.Contains(wantPage(t, a.get("/account?done=password"), http.StatusOK), "Your password was changed.") {
			t.Fatal("no password-changed notice")
		}
		if a.signedInAs() != email || b.signedInAs() != "" {
			t.Fatal("a password change must keep this session and end the others")
		}
	})
}

// TestAccountLinks: a sign-in link works once from its confirmation page; a used, an
// expired, a superseded and a malformed link each say so (422) and offer a new one.
func TestAccountLinks(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "helmi@esimerkki.fi"
		s.customer(t).register(demoSlug, email)
		v := s.customer(t)
		wantPage(t, v.get("/t/"+demoSlug+"/signin-link"), http.StatusOK)
		before := len(s.SMTP.Messages())
		unknown := wantPage(t, v.post("/t/"+demoSlug+"/signin-link", form("email", "nobody@esimerkki.fi")), http.StatusOK)
		known := wantPage(t, v.post("/t/"+demoSlug+"/signin-link", form("email", email)), http.StatusOK)
		if known != unknown {
			t.Fatalf("link requests answer differently:\n%s\n---\n%s", known, unknown)
		}
		path, token := s.mailLink(t, email, "Kirjautumislinkki")
		if n := len(s.SMTP.Messages()); n != before+1 {
			t.Fatalf("%d emails for one known and one unknown address", n-before)
		}
		bad := wantPage(t, v.post("/t/"+demoSlug+"/signin-link", form("email", "ei osoite")), http.StatusUnprocessableEntity)
		if !strings.Contains(bad, `aria-invalid="true"`) || !strings.Contains(bad, "Kirjoita sähköpostiosoite") {
			t.Fatalf("invalid address:\n%s", bad)
		}
		confirm := wantPage(t, v.get(path+"?t="+url.QueryEscape(token)), http.StatusOK)
		if !strings.Contains(confirm, `action="/account/signin-link"`) {
			t.Fatalf("confirmation page:\n%s", confirm)
		}
		wantRedirect(t, v.post(path, form("t", token)), "/account")
		if v.signedInAs() != email {
			t.Fatal("the sign-in link did not sign in")
		}
		// Used.
		for _, r := range []*response{v.get(path + "?t=" + url.QueryEscape(token)), v.post(path, form("t", token))} {
			page := wantPage(t, r, http.StatusUnprocessableEntity)
			if !strings.Contains(page, "Linkki ei toimi") || !strings.Contains(page, `href="/t/`+demoSlug+`/signin-link?lang=fi"`) {
				t.Fatalf("used link:\n%s", page)
			}
		}
		// Superseded: only the newest link works.
		w := s.customer(t)
		w.post("/t/"+demoSlug+"/signin-link", form("email", email))
		_, older := s.mailLink(t, email, "Kirjautumislinkki")
		w.post("/t/"+demoSlug+"/signin-link", form("email", email))
		_, newer := s.mailLink(t, email, "Kirjautumislinkki")
		wantPage(t, w.post(path, form("t", older)), http.StatusUnprocessableEntity)
		// Expired: the clock of the database says the link ran out.
		if err := s.app.db.Write.Exec("UPDATE email_tokens SET expires_at = ? WHERE tenant_id = ? AND used_at IS NULL",
			time.Now().Add(-time.Second).UnixMilli(), s.demo.Tenant.ID).Error; err != nil {
			t.Fatal(err)
		}
		wantPage(t, w.get(path+"?t="+url.QueryEscape(newer)), http.StatusUnprocessableEntity)
		wantPage(t, w.post(path, form("t", newer)), http.StatusUnprocessableEntity)
		if w.cookie() != "" {
			t.Fatal("a dead link set a cookie")
		}
		// Malformed, or naming no tenant: still the page, without links to a tenant.
		for _, tok := range []string{"", "abc", "nosuchtenant." + strings.Repeat("A", 43)} {
			page := wantPage(t, w.get("/account/verify?t="+url.QueryEscape(tok)), http.StatusUnprocessableEntity)
			if !strings.Contains(page, "Linkki ei toimi") && !strings.Contains(page, "This link does not work") {
				t.Fatalf("malformed link %q:\n%s", tok, page)
			}
			wantPage(t, w.post("/account/verify", form("t", tok)), http.StatusUnprocessableEntity)
		}
	})
}

// TestAccountLanguages: ?lang= first, then Accept-Language, then the tenant's default
// (Finnish for the demo tenant); emails follow the page's language.
func TestAccountLanguages(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		v := s.customer(t)
		for _, c := range []struct {
			path, acceptLanguage, lang, heading string
		}{
			{"/t/" + demoSlug + "/register", "", "fi", "Luo tili"},
			{"/t/" + demoSlug + "/register?lang=sv", "", "sv", "Skapa konto"},
			{"/t/" + demoSlug + "/register?lang=en", "fi", "en", "Create an account"},
			{"/t/" + demoSlug + "/register", "sv-FI,sv;q=0.9,en;q=0.8", "sv", "Skapa konto"},
			{"/t/" + demoSlug + "/register", "de-DE,en;q=0.5,fi;q=0.7", "fi", "Luo tili"},
			{"/t/" + demoSlug + "/register", "en-US", "en", "Create an account"},
			{"/t/" + demoSlug + "/register?lang=de", "de", "fi", "Luo tili"},
			{"/t/" + demoSlug + "/signin?lang=sv", "", "sv", "Logga in"},
			{"/t/" + demoSlug + "/signin-link?lang=sv", "", "sv", "Logga in med en e-postlänk"},
			{"/t/" + demoSlug + "/reset?lang=en", "", "en", "Reset your password"},
		} {
			r := v.get(c.path, "Accept-Language", c.acceptLanguage)
			page := wantPage(t, r, http.StatusOK)
			if !strings.Contains(string(r.Body), `<html lang="`+c.lang+`">`) || !strings.Contains(page, "<h1>"+c.heading+"</h1>") {
				t.Fatalf("%s (Accept-Language %q): want %s %q:\n%s", c.path, c.acceptLanguage, c.lang, c.heading, page)
			}
		}
		// The switcher links to the same page in each language, the current one marked.
		r := v.get("/t/" + demoSlug + "/signin?lang=sv")
		for _, want := range []string{`<nav aria-label="Språk">`, `href="/t/` + demoSlug + `/signin?lang=fi" lang="fi" hreflang="fi">Suomi</a>`,
			`href="/t/` + demoSlug + `/signin?lang=sv" lang="sv" hreflang="sv" aria-current="true">Svenska</a>`} {
			if !strings.Contains(string(r.Body), want) {
				t.Fatalf("language switcher lacks %s:\n%s", want, r.Body)
			}
		}
		// A Swedish form answers in Swedish and mails in Swedish.
		page := wantPage(t, v.post("/t/"+demoSlug+"/register", form("email", "stina@esimerkki.fi", "password", goodPW, "lang", "sv")), http.StatusOK)
		if !strings.Contains(page, "Kolla din e-post") {
			t.Fatalf("Swedish registration answered:\n%s", page)
		}
		path, token := s.mailLink(t, "stina@esimerkki.fi", "Bekräfta din e-postadress")
		confirm := wantPage(t, v.get(path+"?t="+url.QueryEscape(token)+"&lang=sv"), http.StatusOK)
		if !strings.Contains(confirm, "Bekräfta och logga in") {
			t.Fatalf("Swedish confirmation page:\n%s", confirm)
		}
		// Swedish errors, in Swedish.
		bad := wantPage(t, v.post("/t/"+demoSlug+"/register", form("email", "x", "password", "kort", "lang", "sv")), http.StatusUnprocessableEntity)
		for _, want := range []string{"Rätta de markerade fälten", "Skriv e-postadressen", "Lösenordet ska ha minst 12 tecken."} {
			if !strings.Contains(bad, want) {
				t.Fatalf("Swedish errors lack %q:\n%s", want, bad)
			}
		}
	})
}

// TestAccountBadForms: bodies that are too large, not urlencoded, malformed or hold
// control characters are refused with a page, and nothing happens.
func TestAccountBadForms(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		v := s.customer(t)
		const ct = "application/x-www-form-urlencoded"
		path := "/t/" + demoSlug + "/register"
		valid := form("email", "kalle@esimerkki.fi", "password", goodPW).Encode()
		same := []string{"Sec-Fetch-Site", "same-origin"}
		for _, c := range []struct {
			name, body, contentType string
			status                  int
		}{
			{"too large", valid + "&pad=" + strings.Repeat("a", 16<<10), ct, http.StatusRequestEntityTooLarge},
			{"JSON", `{"email":"kalle@esimerkki.fi","password":"` + goodPW + `"}`, "application/json", http.StatusUnsupportedMediaType},
			{"multipart", "--x\r\n\r\n--x--", "multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
			{"text", valid, "text/plain", http.StatusUnsupportedMediaType},
			{"no content type", valid, "", http.StatusUnsupportedMediaType},
			{"Latin-1", valid, ct + "; charset=iso-8859-1", http.StatusUnsupportedMediaType},
			{"bad escape", "email=%zz&password=x", ct, http.StatusBadRequest},
			{"NUL", "email=kalle%00@esimerkki.fi&password=" + url.QueryEscape(goodPW), ct, http.StatusBadRequest},
			{"escape sequence", "email=%1b%5b2J@esimerkki.fi&password=" + url.QueryEscape(goodPW), ct, http.StatusBadRequest},
			{"line feed", "email=kalle@esimerkki.fi&password=" + url.QueryEscape(goodPW+"\n"), ct, http.StatusBadRequest},
			{"C1 control", "email=kalle%C2%85@esimerkki.fi&password=" + url.QueryEscape(goodPW), ct, http.StatusBadRequest},
			{"not UTF-8", "email=kalle%ff@esimerkki.fi&password=" + url.QueryEscape(goodPW), ct, http.StatusBadRequest},
			{"control in a name", "em%00ail=kalle@esimerkki.fi", ct, http.StatusBadRequest},
		} {
			r := v.do(http.MethodPost, path, c.body, c.contentType, same...)
			page := wantPage(t, r, c.status)
			if !strings.Contains(page, "The form could not be read") {
				t.Fatalf("%s: %s", c.name, page)
			}
		}
		// A form exactly at the limit is read.
		pad := 16<<10 - len(valid) - len("&pad=")
		wantPage(t, v.do(http.MethodPost, path, valid+"&pad="+strings.Repeat("a", pad), ct, same...), http.StatusOK)
		s.mailLink(t, "kalle@esimerkki.fi", "Vahvista sähköpostiosoitteesi")
		time.Sleep(200 * time.Millisecond)
		if n := len(s.SMTP.Messages()); n != 1 {
			t.Fatalf("%d emails; only the valid form may send one", n)
		}
		// An unknown tenant is a page too, for GET and POST.
		for _, r := range []*response{v.get("/t/no-such-tenant/register"), v.post("/t/no-such-tenant/signin", form("email", "a@b.fi")),
			v.get("/t/" + strings.Repeat("x", 300) + "/signin")} {
			if page := wantPage(t, r, http.StatusNotFound); !strings.Contains(page, "Page not found") {
				t.Fatalf("unknown tenant: %s", page)
			}
		}
		// The page routes refuse methods they do not take like every route.
		if r := v.do(http.MethodPut, "/account", "", ""); r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("PUT /account: %d", r.Status)
		}
	})
}

// TestAccountPerTenant: a session belongs to one tenant. Another tenant's pages do not
// take it, a cookie re-labelled with another tenant is worthless, and one address has a
// separate account in each tenant.
func TestAccountPerTenant(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		b, _, err := s.app.ids.CreateTenant(context.Background(), identity.TenantInput{Slug: "toinen-kauppa", Name: "Toinen kauppa",
			LegalName: "Toinen Kauppa Ab", DefaultLanguage: "sv"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		const email = "noora@esimerkki.fi"
		v := s.customer(t)
		v.register(demoSlug, email)
		cookieA := v.cookie()

		// Tenant B's sign-in page shows its form to a person signed in to A; A's goes on.
		page := wantPage(t, v.get("/t/toinen-kauppa/signin"), http.StatusOK)
		if !strings.Contains(page, "<h1>Logga in</h1>") || !strings.Contains(string(v.get("/t/toinen-kauppa/signin").Body), "Toinen Kauppa Ab") {
			t.Fatalf("tenant B's sign-in page:\n%s", page)
		}
		wantRedirect(t, v.get("/t/"+demoSlug+"/signin"), "/account")
		// A's password does not open B: the address has no account there.
		wantPage(t, v.post("/t/toinen-kauppa/signin", form("email", email, "password", goodPW)), http.StatusUnprocessableEntity)

		// A's token under B's tenant id is nobody's session.
		_, token, _ := accounts.SplitToken(cookieA)
		forged := s.customer(t)
		forged.setCookie(b.ID + "." + token)
		wantRedirect(t, forged.get("/account"), "/t/toinen-kauppa/signin?lang=sv")
		forged.setCookie(b.ID + "." + token) // the redirect cleared it
		if r := forged.post("/account/signout-all", nil); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/t/toinen-kauppa/signin?lang=sv" {
			t.Fatalf("sign out everywhere with a forged cookie: %d %s", r.Status, r.Header.Get("Location"))
		}
		if v.signedInAs() != email {
			t.Fatal("a forged cookie's request ended the real session")
		}
		if r := v.get("/account"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Demo Retail Oy") {
			t.Fatal("the account page does not name tenant A")
		}

		// The same address registers separately in B; signing in there replaces (and ends)
		// the browser's session of A.
		wantPage(t, v.post("/t/toinen-kauppa/register", form("email", email, "password", "en annan lösenordsfras", "lang", "sv")), http.StatusOK)
		path, tok := s.mailLink(t, email, "Bekräfta din e-postadress")
		wantRedirect(t, v.post(path, form("t", tok)), "/account")
		acc := wantPage(t, v.get("/account"), http.StatusOK)
		if !strings.Contains(string(v.get("/account").Body), "Toinen Kauppa Ab") || !strings.Contains(acc, email) {
			t.Fatalf("account in B:\n%s", acc)
		}
		stale := s.customer(t)
		stale.setCookie(cookieA)
		if stale.signedInAs() != "" {
			t.Fatal("the session of A outlived the sign-in to B in the same browser")
		}
		// Each tenant's password is its own.
		wantPage(t, s.customer(t).post("/t/toinen-kauppa/signin", form("email", email, "password", goodPW)), http.StatusUnprocessableEntity)
		s.customer(t).signIn(demoSlug, email)
	})
}

// TestAccountDevMailbox: on the embedded default the development mailbox shows a
// registration's email with its link clickable; LUPA_DEV_MAILBOX=false removes the page;
// with SMTP configured there is no mailbox page at all.
func TestAccountDevMailbox(t *testing.T) {
	srv := startServe(t, map[string]string{"LUPA_DATA_DIR": t.TempDir()})
	out := srv.Stdout.String()
	for _, want := range []string{"/t/" + demoSlug + "/register", "/dev/mailbox"} {
		if !strings.Contains(out, want) {
			t.Fatalf("start-up text does not mention %s:\n%s", want, out)
		}
	}
	r := srv.do(http.MethodPost, "/t/"+demoSlug+"/register", form("email", "mailbox@esimerkki.fi", "password", goodPW, "lang", "en").Encode(),
		"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin")
	wantPage(t, r, http.StatusOK)
	box := wantPage(t, srv.do(http.MethodGet, "/dev/mailbox", nil), http.StatusOK)
	link := regexp.MustCompile(`<a href="(http://[^"]+/account/verify\?t=[^"]+)">`).FindStringSubmatch(box)
	if link == nil || !strings.Contains(box, "Confirm your email address") || !strings.Contains(box, "mailbox@esimerkki.fi") {
		t.Fatalf("mailbox:\n%s", box)
	}
	u, _ := url.Parse(link[1])
	confirm := wantPage(t, srv.do(http.MethodGet, u.RequestURI(), nil), http.StatusOK)
	if !strings.Contains(confirm, `action="/account/verify"`) {
		t.Fatalf("the mailbox's link does not open the confirmation page:\n%s", confirm)
	}
	srv.stop()

	off := startServe(t, map[string]string{"LUPA_DATA_DIR": t.TempDir(), "LUPA_DEV_MAILBOX": "false"})
	if r := off.do(http.MethodGet, "/dev/mailbox", nil); r.Status != http.StatusNotFound {
		t.Fatalf("LUPA_DEV_MAILBOX=false: /dev/mailbox answers %d", r.Status)
	}
	if strings.Contains(off.Stdout.String(), "/dev/mailbox") {
		t.Fatalf("start-up text names a mailbox that is off:\n%s", off.Stdout)
	}
	off.stop()

	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		if r := s.customer(t).get("/dev/mailbox"); r.Status != http.StatusNotFound {
			t.Fatalf("with SMTP, /dev/mailbox answers %d", r.Status)
		}
	})
}

// TestAccountMailConfig: LUPA_SMTP_URL, LUPA_MAIL_FROM and LUPA_DEV_MAILBOX, and their
// defaults; errors name the variable and never quote the SMTP password.
func TestAccountMailConfig(t *testing.T) {
	load := func(env map[string]string) (config, error) {
		return loadConfig(func(k string) string { return env[k] })
	}
	c, err := load(nil)
	if err != nil || c.SMTP != nil || !c.DevMailbox || c.MailFrom != "Lupa <noreply@localhost>" {
		t.Fatalf("embedded default: %+v %v", c, err)
	}
	c, err = load(map[string]string{"LUPA_DATABASE_URL": "postgres://db/lupa", "LUPA_PUBLIC_URL": "https://suostumus.kauppa.fi"})
	if err != nil || c.DevMailbox || c.MailFrom != "Lupa <noreply@suostumus.kauppa.fi>" {
		t.Fatalf("PostgreSQL: %+v %v", c, err)
	}
	c, err = load(map[string]string{"LUPA_DATABASE_URL": "postgres://db/lupa", "LUPA_DEV_MAILBOX": "true"})
	if err != nil || !c.DevMailbox {
		t.Fatalf("an operator may turn the mailbox on: %v", err)
	}
	for _, ok := range []struct {
		url  string
		host string
		port int
		user string
		pass string
		tls  string
	}{
		{"smtp://mail.example:587", "mail.example", 587, "", "", "starttls"},
		{"smtp://lupa:s%40l4s@mail.example?tls=starttls", "mail.example", 0, "lupa", "s@l4s", "starttls"},
		{"smtp://lupa:pw@mail.example:465?tls=tls", "mail.example", 465, "lupa", "pw", "tls"},
		{"smtp://127.0.0.1:2525?tls=none", "127.0.0.1", 2525, "", "", "none"},
	} {
		c, err := load(map[string]string{"LUPA_SMTP_URL": ok.url, "LUPA_MAIL_FROM": "Kauppa <noreply@kauppa.fi>"})
		if err != nil || c.SMTP == nil || c.DevMailbox {
			t.Fatalf("%s: %+v %v", ok.url, c, err)
		}
		s := c.SMTP
		if s.Host != ok.host || s.Port != ok.port || s.Username != ok.user || s.Password != ok.pass || string(s.TLS) != ok.tls ||
			s.From != "Kauppa <noreply@kauppa.fi>" {
			t.Fatalf("%s: %+v", ok.url, s)
		}
	}
	for _, bad := range []struct{ name, value string }{
		{"LUPA_SMTP_URL", "http://mail.example"},
		{"LUPA_SMTP_URL", "smtp://user:sekret-pw-31337@mail.example?tls=maybe"},
		{"LUPA_SMTP_URL", "smtp://user:sekret-pw-31337@mail.example?tls=none"},
		{"LUPA_SMTP_URL", "smtp://mail.example?tsl=none"},
		{"LUPA_SMTP_URL", "smtp://mail.example:99999"},
		{"LUPA_SMTP_URL", "smtp:///nohost"},
		{"LUPA_SMTP_URL", "smtp://user:sekret-pw-31337@mail.example/path"},
		{"LUPA_MAIL_FROM", "not an address"},
		{"LUPA_DEV_MAILBOX", "sometimes"},
	} {
		_, err := load(map[string]string{bad.name: bad.value})
		if err == nil || !strings.Contains(err.Error(), bad.name) || strings.Contains(err.Error(), "sekret-pw-31337") {
			t.Errorf("%s=%q: %v", bad.name, bad.value, err)
		}
	}
	_, err = load(map[string]string{"LUPA_SMTP_URL": "smtp://mail.example", "LUPA_DEV_MAILBOX": "true"})
	if err == nil || !strings.Contains(err.Error(), "LUPA_DEV_MAILBOX") {
		t.Fatalf("the mailbox page with SMTP: %v", err)
	}
}

// TestAccountMailWarning: PostgreSQL without LUPA_SMTP_URL starts, but warns that account
// emails are not sent, and serves no mailbox page unless told to.
func TestAccountMailWarning(t *testing.T) {
	env := map[string]string{"LUPA_DATABASE_URL": sqldbtest.URL(t, sqldb.Postgres), "LUPA_MASTER_KEY": newMasterKey(),
		"LUPA_DATA_DIR": t.TempDir(), "LUPA_DEMO": "false"}
	srv := startServe(t, env)
	if r := srv.do(http.MethodGet, "/dev/mailbox", nil); r.Status != http.StatusNotFound {
		t.Fatalf("/dev/mailbox on PostgreSQL: %d", r.Status)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}
	if logs := srv.Stderr.String(); !strings.Contains(logs, "LUPA_SMTP_URL is not set") || strings.Contains(logs, "LUPA_DEV_MAILBOX is on") {
		t.Fatalf("no warning about unsent mail:\n%s", logs)
	}
	env["LUPA_DEV_MAILBOX"] = "true"
	on := startServe(t, env)
	wantPage(t, on.do(http.MethodGet, "/dev/mailbox", nil), http.StatusOK)
	on.stop()
	if logs := on.Stderr.String(); !strings.Contains(logs, "LUPA_DEV_MAILBOX is on") {
		t.Fatalf("no warning about the mailbox page:\n%s", logs)
	}
}
