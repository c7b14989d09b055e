package accounts_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/clocktest"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

type clock = clocktest.Clock

type env struct {
	svc    *accounts.Service
	ids    *identity.Service
	db     *sqldb.DB
	smtp   *mailtest.Server
	clock  *clock
	tenant *identity.Tenant
}

// cheap are argon2id parameters small enough for tests; production uses password.OWASP.
var cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newEnv(t *testing.T, db *sqldb.DB) *env {
	t.Helper()
	ctx := context.Background()
	clk := clocktest.New(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keys, err := keyring.Open(ctx, db, master, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ids := identity.New(db, keys, clk.Now)
	tenant, _, err := ids.CreateTenant(ctx, identity.TenantInput{Slug: "kauppa", Name: "Kauppa", LegalName: "Kauppa Oy",
		ContactEmail: "tietosuoja@kauppa.example", Jurisdiction: "FI", DefaultLanguage: "fi"}, identity.ActorSystem)
	if err != nil {
		t.Fatal(err)
	}
	srv := mailtest.NewServer(t)
	host, port, _ := net.SplitHostPort(srv.Addr())
	p, _ := strconv.Atoi(port)
	sender, err := mail.NewSMTP(mail.SMTPConfig{Host: host, Port: p, From: "Kauppa <noreply@kauppa.example>", TLS: mail.NoTLS})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := accounts.New(db, ids, password.NewHasher(cheap, 2, 8), sender, clk.Now, log, accounts.Options{LinkBase: "https://lupa.example"})
	return &env{svc: svc, ids: ids, db: db, smtp: srv, clock: clk, tenant: tenant}
}

func each(t *testing.T, fn func(t *testing.T, e *env)) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) { fn(t, newEnv(t, db)) })
}

var linkRe = regexp.MustCompile(`https://lupa\.example(/\S+)`)

// link returns the newest link mailed to the address.
func (e *env) link(t *testing.T, to, subject string) (path, token string) {
	t.Helper()
	m := e.smtp.WaitFor(t, to, 5*time.Second)
	if m.Subject != subject {
		t.Fatalf("mail to %s: %q, want %q", to, m.Subject, subject)
	}
	found := linkRe.FindStringSubmatch(m.Text)
	if found == nil {
		t.Fatalf("no link in %q", m.Text)
	}
	u, err := url.Parse(found[1])
	if err != nil {
		t.Fatal(err)
	}
	return u.Path, u.Query().Get("t")
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if !identity.IsCode(err, code) {
		t.Fatalf("want %s, got %v", code, err)
	}
}

const pw = "oikein hyvä salasana"

// register registers and verifies an account, returning the session verification gave.
func (e *env) register(t *testing.T, email string) *accounts.Session {
	t.Helper()
	ctx := context.Background()
	a, err := e.svc.Register(ctx, e.tenant.ID, e.tenant.Slug, accounts.Registration{Email: email, Password: pw, Language: "fi"})
	if err != nil || a == nil {
		t.Fatalf("register: %v %v", a, err)
	}
	path, token := e.link(t, identity.NormalizeEmail(email), "Vahvista sähköpostiosoitteesi")
	if path != "/account/verify" {
		t.Fatalf("verification link %s", path)
	}
	sess, err := e.svc.Verify(ctx, token)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return sess
}

func TestRegisterVerifySignIn(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, err := e.svc.Register(ctx, e.tenant.ID, e.tenant.Slug, accounts.Registration{Email: " Anna.Virtanen@Esimerkki.FI ", Password: pw, Language: "fi"})
		if err != nil || a == nil {
			t.Fatalf("register: %v", err)
		}
		// Not before the address is verified: otherwise anyone could take any address.
		_, err = e.svc.SignIn(ctx, e.tenant.ID, "anna.virtanen@esimerkki.fi", pw, "10.0.0.1")
		wantCode(t, err, identity.EUnauthorized)
		_, token := e.link(t, "anna.virtanen@esimerkki.fi", "Vahvista sähköpostiosoitteesi")
		sess, err := e.svc.Verify(ctx, token)
		if err != nil || sess.Token == "" {
			t.Fatalf("verify: %v", err)
		}
		if _, err := e.svc.Verify(ctx, token); err != accounts.ErrLink {
			t.Fatalf("a verification link works twice: %v", err)
		}
		got, err := e.svc.Session(ctx, sess.Token)
		if err != nil || got.AccountID != a.ID {
			t.Fatalf("session: %v", err)
		}
		acc, err := e.svc.Get(ctx, e.tenant.ID, a.ID)
		if err != nil || acc.Email != "anna.virtanen@esimerkki.fi" || !acc.EmailVerified {
			t.Fatalf("account %+v %v", acc, err)
		}
		// Sign in with the address written differently: it is one address.
		s2, err := e.svc.SignIn(ctx, e.tenant.ID, "ANNA.virtanen@esimerkki.fi", pw, "10.0.0.1")
		if err != nil || s2.Token == sess.Token {
			t.Fatalf("sign-in: %v (a sign-in must start a new session)", err)
		}
		// The email is the subject's identifier: the consent APIs find the same person.
		subj, err := e.ids.FindSubject(ctx, e.tenant.ID, identity.Identifier{Kind: "email", Value: "anna.virtanen@esimerkki.fi"})
		if err != nil || subj.ID != s2.SubjectID || subj.Kind != identity.SubjectPerson {
			t.Fatalf("subject %+v %v", subj, err)
		}
	})
}

// TestRegisterRevealsNothing: registering an address that has an account answers the same
// and mails the owner instead; a second account is never made.
func TestRegisterRevealsNothing(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.register(t, "matti@esimerkki.fi")
		a, err := e.svc.Register(ctx, e.tenant.ID, e.tenant.Slug, accounts.Registration{Email: "matti@esimerkki.fi", Password: "joku toinen salasana", Language: "en"})
		if err != nil || a != nil {
			t.Fatalf("second registration: %+v %v", a, err)
		}
		m := e.smtp.WaitFor(t, "matti@esimerkki.fi", 5*time.Second)
		if m.Subject != "You already have an account" || !strings.Contains(m.Text, "/t/kauppa/signin") {
			t.Fatalf("mail %q", m.Text)
		}
		var n int64
		e.db.Read.Raw("SELECT count(*) FROM accounts WHERE tenant_id = ?", e.tenant.ID).Scan(&n)
		if n != 1 {
			t.Fatalf("%d accounts", n)
		}
	})
}

func TestRegistrationValidation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		_, err := e.svc.Register(context.Background(), e.tenant.ID, e.tenant.Slug, accounts.Registration{Email: "ei osoite", Password: "lyhyt", BirthYear: 1850})
		ie, ok := err.(*identity.Error)
		if !ok || len(ie.Fields) != 3 {
			t.Fatalf("want three field errors, got %v", err)
		}
		for i, f := range []string{"email", "password", "birth_year"} {
			if ie.Fields[i].Field != f {
				t.Fatalf("fields %+v", ie.Fields)
			}
		}
	})
}

// TestSignInFailuresLookAlike: an unknown address, an unverified account and a wrong
// password give the same error; repeated failures lock the account, and a sign-in link still
// works then.
func TestSignInFailuresLookAlike(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.register(t, "liisa@esimerkki.fi")
		_, _ = e.svc.Register(ctx, e.tenant.ID, e.tenant.Slug, accounts.Registration{Email: "unverified@esimerkki.fi", Password: pw})
		for i, c := range []struct{ email, pw string }{
			{"nobody@esimerkki.fi", pw}, {"unverified@esimerkki.fi", pw}, {"liisa@esimerkki.fi", "väärä salasana tässä"},
		} {
			_, err := e.svc.SignIn(ctx, e.tenant.ID, c.email, c.pw, "10.0.1."+strconv.Itoa(i))
			if err != accounts.ErrSignIn {
				t.Fatalf("%s: %v, want the one sign-in error", c.email, err)
			}
		}
		for i := 0; i < 5; i++ {
			_, _ = e.svc.SignIn(ctx, e.tenant.ID, "liisa@esimerkki.fi", "väärä salasana tässä", "10.0.2."+strconv.Itoa(i))
		}
		if _, err := e.svc.SignIn(ctx, e.tenant.ID, "liisa@esimerkki.fi", pw, "10.0.3.1"); err != accounts.ErrSignIn {
			t.Fatalf("a locked account took its password: %v", err)
		}
		if err := e.svc.RequestSignInLink(ctx, e.tenant.ID, "liisa@esimerkki.fi", "fi"); err != nil {
			t.Fatal(err)
		}
		_, token := e.link(t, "liisa@esimerkki.fi", "Kirjautumislinkki")
		if _, err := e.svc.SignInWithLink(ctx, token); err != nil {
			t.Fatalf("sign-in link: %v", err)
		}
		if _, err := e.svc.SignIn(ctx, e.tenant.ID, "liisa@esimerkki.fi", pw, "10.0.3.2"); err != nil {
			t.Fatalf("after the link the password works again: %v", err)
		}
		// Per address: a burst of attempts from one client is stopped.
		var throttled bool
		for i := 0; i < 20 && !throttled; i++ {
			_, err := e.svc.SignIn(ctx, e.tenant.ID, "nobody@esimerkki.fi", pw, "10.9.9.9")
			throttled = err == accounts.ErrThrottled
		}
		if !throttled {
			t.Fatal("no throttling per client address")
		}
	})
}

func TestResetPasswordEndsSessions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		old := e.register(t, "pekka@esimerkki.fi")
		if err := e.svc.RequestReset(ctx, e.tenant.ID, "pekka@esimerkki.fi", "sv"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RequestReset(ctx, e.tenant.ID, "nobody@esimerkki.fi", "sv"); err != nil {
			t.Fatalf("a reset for an unknown address must answer the same: %v", err)
		}
		path, token := e.link(t, "pekka@esimerkki.fi", "Byt ditt lösenord")
		if path != "/account/reset" {
			t.Fatalf("reset link %s", path)
		}
		if _, err := e.svc.Reset(ctx, token, "lyhyt"); !identity.IsCode(err, identity.EInvalid) {
			t.Fatalf("a short password: %v", err)
		}
		sess, err := e.svc.Reset(ctx, token, "uusi pitkä salasana")
		if err != nil {
			t.Fatalf("reset: %v", err)
		}
		if _, err := e.svc.Session(ctx, old.Token); err == nil {
			t.Fatal("the session from before the reset still works")
		}
		if _, err := e.svc.Session(ctx, sess.Token); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SignIn(ctx, e.tenant.ID, "pekka@esimerkki.fi", pw, "10.0.0.9"); err != accounts.ErrSignIn {
			t.Fatalf("the old password still works: %v", err)
		}
		if _, err := e.svc.Reset(ctx, token, "vielä yksi salasana"); err != accounts.ErrLink {
			t.Fatalf("a reset link works twice: %v", err)
		}
	})
}

func TestLinksExpireAndOnlyTheNewestWorks(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.register(t, "sanna@esimerkki.fi")
		_ = e.svc.RequestSignInLink(ctx, e.tenant.ID, "sanna@esimerkki.fi", "en")
		_, first := e.link(t, "sanna@esimerkki.fi", "Your sign-in link")
		_ = e.svc.RequestSignInLink(ctx, e.tenant.ID, "sanna@esimerkki.fi", "en")
		_, second := e.link(t, "sanna@esimerkki.fi", "Your sign-in link")
		if _, err := e.svc.SignInWithLink(ctx, first); err != accounts.ErrLink {
			t.Fatalf("an older link still works: %v", err)
		}
		e.clock.Add(21 * time.Minute)
		if _, err := e.svc.SignInWithLink(ctx, second); err != accounts.ErrLink {
			t.Fatalf("an expired link works: %v", err)
		}
		for _, bad := range []string{"", "x", e.tenant.ID + ".short", "other-tenant." + strings.Repeat("A", 43)} {
			if _, err := e.svc.SignInWithLink(ctx, bad); err != accounts.ErrLink {
				t.Fatalf("link %q: %v", bad, err)
			}
		}
	})
}

func TestSessionTimeoutsAndSignOut(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.register(t, "olli@esimerkki.fi")
		b, err := e.svc.SignIn(ctx, e.tenant.ID, "olli@esimerkki.fi", pw, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		// Idle: 31 minutes without use ends a session; use keeps the other alive.
		for i := 0; i < 4; i++ {
			e.clock.Add(10 * time.Minute)
			if _, err := e.svc.Session(ctx, b.Token); err != nil {
				t.Fatalf("an active session ended: %v", err)
			}
		}
		if _, err := e.svc.Session(ctx, a.Token); err == nil {
			t.Fatal("an idle session still works")
		}
		// Absolute: 12 hours at most, used or not.
		for i := 0; i < 12*6; i++ {
			e.clock.Add(10 * time.Minute)
			if _, err := e.svc.Session(ctx, b.Token); err != nil {
				break
			}
		}
		if _, err := e.svc.Session(ctx, b.Token); err == nil {
			t.Fatal("a session outlived its absolute lifetime")
		}
		c, _ := e.svc.SignIn(ctx, e.tenant.ID, "olli@esimerkki.fi", pw, "10.0.0.2")
		d, _ := e.svc.SignIn(ctx, e.tenant.ID, "olli@esimerkki.fi", pw, "10.0.0.3")
		got, _ := e.svc.Session(ctx, c.Token)
		if err := e.svc.SignOutEverywhere(ctx, got); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*accounts.Session{c, d} {
			if _, err := e.svc.Session(ctx, s.Token); err == nil {
				t.Fatal("sign out everywhere left a session")
			}
		}
	})
}

// TestCheckLinkDoesNotUseIt: asking whether a link works leaves it working, and a used,
// expired or foreign link answers ErrLink.
func TestCheckLinkDoesNotUseIt(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.register(t, "kaisa@esimerkki.fi")
		if err := e.svc.RequestSignInLink(ctx, e.tenant.ID, "kaisa@esimerkki.fi", "en"); err != nil {
			t.Fatal(err)
		}
		_, token := e.link(t, "kaisa@esimerkki.fi", "Your sign-in link")
		for i := 0; i < 3; i++ {
			if err := e.svc.CheckLink(ctx, token, accounts.LinkSignIn); err != nil {
				t.Fatalf("check %d: %v", i, err)
			}
		}
		if err := e.svc.CheckLink(ctx, token, accounts.LinkReset); err != accounts.ErrLink {
			t.Fatalf("a sign-in link checks as a reset link: %v", err)
		}
		if _, err := e.svc.SignInWithLink(ctx, token); err != nil {
			t.Fatalf("the link stopped working after checks: %v", err)
		}
		if err := e.svc.CheckLink(ctx, token, accounts.LinkSignIn); err != accounts.ErrLink {
			t.Fatalf("a used link checks as working: %v", err)
		}
		_ = e.svc.RequestSignInLink(ctx, e.tenant.ID, "kaisa@esimerkki.fi", "en")
		_, second := e.link(t, "kaisa@esimerkki.fi", "Your sign-in link")
		e.clock.Add(21 * time.Minute)
		if err := e.svc.CheckLink(ctx, second, accounts.LinkSignIn); err != accounts.ErrLink {
			t.Fatalf("an expired link checks as working: %v", err)
		}
		for _, bad := range []string{"", "x", "other-tenant." + strings.Repeat("A", 43)} {
			if err := e.svc.CheckLink(ctx, bad, accounts.LinkSignIn); err != accounts.ErrLink {
				t.Fatalf("link %q: %v", bad, err)
			}
		}
	})
}

// TestMailsToOneRecipientAreLimited: however the requests come (many client addresses get
// past the pages' per-address limits), one mailbox gets a burst of five emails, then one
// per ten minutes; the answers stay the same.
func TestMailsToOneRecipientAreLimited(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.register(t, "tulva@esimerkki.fi") // the verification email: one of five
		count := func() int {
			n := 0
			for _, m := range e.smtp.Messages() {
				if strings.EqualFold(m.To, "tulva@esimerkki.fi") {
					n++
				}
			}
			return n
		}
		// to waits for want emails to have arrived (delivery ends after Send returns), and a
		// moment more for any that should not.
		to := func(want int) int {
			for deadline := time.Now().Add(5 * time.Second); count() < want && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			return count()
		}
		for i := 0; i < 10; i++ {
			if err := e.svc.RequestReset(ctx, e.tenant.ID, "tulva@esimerkki.fi", "fi"); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		if n := to(5); n != 5 {
			t.Fatalf("%d emails to one address, want 5", n)
		}
		// Another address is not held back by this one.
		e.register(t, "toinen@esimerkki.fi")
		e.clock.Add(10 * time.Minute)
		_ = e.svc.RequestReset(ctx, e.tenant.ID, "tulva@esimerkki.fi", "fi")
		_ = e.svc.RequestReset(ctx, e.tenant.ID, "tulva@esimerkki.fi", "fi")
		if n := to(6); n != 6 {
			t.Fatalf("%d emails after ten minutes, want 6", n)
		}
	})
}
