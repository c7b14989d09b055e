package main

// Findings of a security review of the customer account pages, each a test that failed
// before its fix: what an attacker could do, and that they no longer can.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

func emailID(email string) identity.Identifier {
	return identity.Identifier{Kind: identity.IDEmail, Value: email}
}

// stolenSession registers an account for email and returns its owner's browser and a
// thief's browser holding a copy of the owner's session cookie.
func (s *accountServer) stolenSession(t *testing.T, email string) (owner, thief *customer) {
	t.Helper()
	owner = s.customer(t)
	owner.register(demoSlug, email)
	thief = s.customer(t)
	thief.setCookie(owner.cookie())
	return owner, thief
}

// TestSecurityPasswordChangeRotatesSession: a copy of the session cookie (stolen, or left
// in another browser) does not outlive the owner's password change. The change ended every
// other session but kept the changing browser's token, so a thief holding that same token
// stayed signed in after the owner changed the password to get rid of them.
func TestSecurityPasswordChangeRotatesSession(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "varastettu@esimerkki.fi"
		owner, thief := s.stolenSession(t, email)
		if thief.signedInAs() != email {
			t.Fatal("the copied cookie does not sign in")
		}
		before := owner.cookie()
		r := owner.post("/account/password", form("current_password", goodPW, "new_password", "omistajan uusi salasana"))
		wantRedirect(t, r, "/account?done=password")
		if c := wantSessionCookie(t, r); c.Value == before {
			t.Fatal("the password change kept the session token")
		}
		if thief.signedInAs() != "" {
			t.Fatal("a copy of the session cookie outlived the password change")
		}
		if owner.signedInAs() != email {
			t.Fatal("the browser that changed the password is not signed in")
		}
	})
}

// TestSecurityPendingEmailChangeEnds: an intruder who knows the password signs in and asks
// to move the account to their own address. The owner, told by the notice, changes the
// password (or signs out everywhere) on the account page: the intruder's change link must
// stop working then, as it does at a reset. It did not, so the intruder confirmed it from
// their own mailbox, made their address the account's, and reset the password from there.
func TestSecurityPendingEmailChangeEnds(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		for _, c := range []struct {
			name   string
			remedy func(owner *customer)
		}{
			{"password change", func(owner *customer) {
				wantRedirect(t, owner.post("/account/password", form("current_password", goodPW, "new_password", "omistajan uusi salasana")),
					"/account?done=password")
			}},
			{"sign out everywhere", func(owner *customer) {
				wantRedirect(t, owner.post("/account/signout-all", form("lang", "en")),
					"/t/"+demoSlug+"/signin?done=signout-all&lang=en")
			}},
		} {
			email := "omistaja." + strings.ReplaceAll(c.name, " ", "-") + "@esimerkki.fi"
			evil := "tunkeilija." + strings.ReplaceAll(c.name, " ", "-") + "@esimerkki.fi"
			owner := s.customer(t)
			owner.register(demoSlug, email)
			intruder := s.customer(t)
			intruder.signIn(demoSlug, email)
			wantPage(t, intruder.post("/account/email", form("new_email", evil, "email_password", goodPW, "lang", "en")), http.StatusOK)
			path, token := s.mailLink(t, evil, "Confirm your new email address")
			if m := s.SMTP.WaitFor(t, email, 10*time.Second); m.Subject != "Your email address is being changed" {
				t.Fatalf("%s: notice %q", c.name, m.Subject)
			}
			c.remedy(owner)
			page := wantPage(t, intruder.post(path, form("t", token, "lang", "en")), http.StatusUnprocessableEntity)
			if !strings.Contains(page, "This link does not work") {
				t.Fatalf("%s: the intruder's link:\n%s", c.name, page)
			}
			if s.person(t, emailID(evil)) != "" || s.person(t, emailID(email)) == "" {
				t.Fatalf("%s: the account's address moved to the intruder's", c.name)
			}
		}
	})
}

// TestSecurityIPv6SignInThrottle: password guesses from one IPv6 subscriber are throttled
// like those from one IPv4 address. The sign-in throttle keyed each IPv6 address on its own,
// and a subscriber holds a whole /64 (2^64 addresses): one new address per guess got past
// it. The other limits of the pages count a /64 as one client.
func TestSecurityIPv6SignInThrottle(t *testing.T) {
	eachAccountServer(t, map[string]string{"LUPA_TRUSTED_PROXIES": "127.0.0.1"}, func(t *testing.T, s *accountServer) {
		throttled := false
		for i := 0; i < 20 && !throttled; i++ {
			v := s.customer(t, "X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1))
			r := v.post("/t/"+demoSlug+"/signin", form("email", fmt.Sprintf("arvaus%d@esimerkki.fi", i), "password", "väärä salasana"))
			switch r.Status {
			case http.StatusUnprocessableEntity:
			case http.StatusTooManyRequests:
				throttled = true
				if i < 10 {
					t.Fatalf("throttled after %d attempts; the burst is 10", i)
				}
			default:
				t.Fatalf("sign-in %d: %d %s", i, r.Status, mainOf(r))
			}
		}
		if !throttled {
			t.Fatal("20 sign-ins from 20 addresses of one /64 were never throttled")
		}
		// Another subscriber's /64 is not held back by the first.
		wantPage(t, s.customer(t, "X-Forwarded-For", "2001:db8:1:3::1").post("/t/"+demoSlug+"/signin",
			form("email", "arvaus@esimerkki.fi", "password", "väärä salasana")), http.StatusUnprocessableEntity)
	})
}

// mailGate stands between Lupa and the test's SMTP server: while it is shut, connections
// wait (as at a slow or distant mail server) until it opens.
type mailGate struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	open   chan struct{}
}

func newMailGate(t *testing.T) *mailGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &mailGate{ln: ln, open: make(chan struct{})}
	close(g.open)
	t.Cleanup(func() { _ = ln.Close(); g.Open() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.relay(c)
		}
	}()
	return g
}

func (g *mailGate) relay(c net.Conn) {
	defer c.Close()
	g.mu.Lock()
	open, target := g.open, g.target
	g.mu.Unlock()
	<-open
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(s, c); _ = s.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(c, s)
}

func (g *mailGate) Shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *mailGate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *mailGate) URL() string { return "smtp://" + g.ln.Addr().String() + "?tls=none" }

// TestSecurityLinkRequestTiming: asking for a reset or sign-in link answers as fast for an
// address with an account as for one without. The answer waited for the mail server only
// when there was an account to mail, so the time it took told whether the address had one
// (a form that answers the same words in different times enumerates accounts all the same).
func TestSecurityLinkRequestTiming(t *testing.T) {
	gate := newMailGate(t)
	eachAccountServer(t, map[string]string{"LUPA_SMTP_URL": gate.URL()}, func(t *testing.T, s *accountServer) {
		gate.mu.Lock()
		gate.target = s.SMTP.Addr()
		gate.mu.Unlock()
		const email = "ajoitus@esimerkki.fi"
		v := s.customer(t)
		v.register(demoSlug, email)

		for _, c := range []struct{ page, subject string }{{"reset", "Reset your password"}, {"signin-link", "Your sign-in link"}} {
			gate.Shut()
			for _, addr := range []string{"nobody@esimerkki.fi", email} {
				answered := make(chan *response, 1)
				go func() {
					r, err := s.try(http.MethodPost, "/t/"+demoSlug+"/"+c.page, form("email", addr, "lang", "en").Encode(),
						"Content-Type", "application/x-www-form-urlencoded")
					if err != nil {
						r = &response{Status: -1, Body: []byte(err.Error())}
					}
					answered <- r
				}()
				select {
				case r := <-answered:
					if r.Status != http.StatusOK {
						t.Fatalf("%s for %s: %d %s", c.page, addr, r.Status, r.Body)
					}
				case <-time.After(5 * time.Second):
					gate.Open()
					<-answered
					t.Fatalf("%s for %s waited for the mail server: its timing tells that the address has an account", c.page, addr)
				}
			}
			// The link still goes out once the mail server answers.
			gate.Open()
			if m := s.SMTP.WaitFor(t, email, 15*time.Second); m.Subject != c.subject {
				t.Fatalf("%s: mailed %q", c.page, m.Subject)
			}
		}
	})
}

// TestSecurityCurrentPasswordGuesses: the current password asked by the account page (to
// change the password or the address) cannot be guessed without limit by whoever holds a
// session. It was checked without the failed sign-in lock, so a stolen cookie allowed as
// many guesses as the server could hash; a guessed password then changed the address and
// the password, and the owner was out.
func TestSecurityCurrentPasswordGuesses(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "arvattava@esimerkki.fi"
		owner, thief := s.stolenSession(t, email)
		for i := 0; i < 5; i++ {
			path, f := "/account/password", form("current_password", fmt.Sprintf("arvaus numero %d", i), "new_password", "varkaan salasana tässä")
			if i%2 == 1 {
				path, f = "/account/email", form("new_email", "varas@esimerkki.fi", "email_password", fmt.Sprintf("arvaus numero %d", i))
			}
			wantPage(t, thief.post(path, f), http.StatusUnprocessableEntity)
		}
		// The sixth guess is right, and refused like a sign-in after five failures.
		page := wantPage(t, thief.post("/account/password", form("current_password", goodPW, "new_password", "varkaan salasana tässä")),
			http.StatusUnprocessableEntity)
		if !strings.Contains(page, `id="current_password"`) {
			t.Fatalf("the locked check:\n%s", page)
		}
		wantPage(t, thief.post("/account/email", form("new_email", "varas@esimerkki.fi", "email_password", goodPW)),
			http.StatusUnprocessableEntity)
		// The password is the owner's still, and a sign-in link lets the owner in.
		wantPage(t, s.customer(t).post("/t/"+demoSlug+"/signin", form("email", email, "password", "varkaan salasana tässä")),
			http.StatusUnprocessableEntity)
		wantPage(t, owner.post("/t/"+demoSlug+"/signin-link", form("email", email, "lang", "en")), http.StatusOK)
		path, token := s.mailLink(t, email, "Your sign-in link")
		fresh := s.customer(t)
		wantRedirect(t, fresh.post(path, form("t", token)), "/account")
		// After the link (it proves the mailbox) the password works again.
		wantRedirect(t, fresh.post("/account/password", form("current_password", goodPW, "new_password", "omistajan uusi salasana")),
			"/account?done=password")
	})
}

// TestSecurityWidgetRegistrationMailLimit: the registration widget's form sends a
// verification email to whatever address it is given, like the registration page; it is
// limited per client address like the pages' forms that send email. It had only the public
// API's limit (30 a second), so one client could have Lupa mail thousands of strangers.
func TestSecurityWidgetRegistrationMailLimit(t *testing.T) {
	eachAccountServer(t, map[string]string{"LUPA_TRUSTED_PROXIES": "127.0.0.1"}, func(t *testing.T, s *accountServer) {
		pk := s.demo.WebShop.PublicKey
		page := s.request(http.MethodGet, "/register?property="+pk+"&lang=en&origin="+url.QueryEscape(s.Origin), nil)
		ui := regexp.MustCompile(`name="ui" value="([0-9a-f]{64})"`).FindStringSubmatch(string(page.Body))
		if ui == nil {
			t.Fatalf("no ui hash in the form: %d", page.Status)
		}
		limited := false
		for i := 0; i < 40 && !limited; i++ {
			f := url.Values{"property": {pk}, "origin": {s.Origin}, "lang": {"en"}, "ui": {ui[1]},
				"email": {fmt.Sprintf("vieras%d@esimerkki.fi", i)}, "password": {goodPW}}
			r := s.request(http.MethodPost, "/register", f.Encode(), "Content-Type", "application/x-www-form-urlencoded",
				"X-Forwarded-For", "198.51.100.20")
			switch r.Status {
			case http.StatusOK:
			case http.StatusTooManyRequests:
				limited = true
				if i < 20 || r.Header.Get("Retry-After") == "" {
					t.Fatalf("limited after %d registrations (the burst is 20), Retry-After %q", i, r.Header.Get("Retry-After"))
				}
			default:
				t.Fatalf("registration %d: %d %.300s", i, r.Status, r.Body)
			}
		}
		if !limited {
			t.Fatal("40 registrations from one address, each mailing a stranger, were never limited")
		}
	})
}
