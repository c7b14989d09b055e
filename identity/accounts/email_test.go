package accounts_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
)

// count returns the number of rows of table that match where.
func (e *env) count(t *testing.T, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.db.Read.Raw("SELECT count(*) FROM "+table+" WHERE "+where, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// emailEvents returns the payloads of the subject's subject.email_changed domain events.
func (e *env) emailEvents(t *testing.T, subjectID string) []string {
	t.Helper()
	var payloads []string
	if err := e.db.Read.Raw("SELECT payload FROM domain_events WHERE tenant_id = ? AND subject_id = ? AND type = 'subject.email_changed'",
		e.tenant.ID, subjectID).Scan(&payloads).Error; err != nil {
		t.Fatal(err)
	}
	return payloads
}

// TestChangeEmail: the new address gets a link and the old one a notice with the new
// address masked; nothing changes before the link is used. Using it replaces the address
// (the old one finds nothing, the new one signs in), keeps the confirming session and ends
// the others, kills the links sent to the old address, and writes one domain event without
// any address in it. The link works once.
func TestChangeEmail(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const old, next = "vanha@esimerkki.fi", "uusi.osoite@esimerkki.fi"
		sess := e.register(t, old)
		other, err := e.svc.SignIn(ctx, e.tenant.ID, old, pw, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, " Uusi.Osoite@Esimerkki.FI ", pw, "en"); err != nil {
			t.Fatalf("request: %v", err)
		}
		path, token := e.link(t, next, "Confirm your new email address")
		if path != "/account/email/confirm" {
			t.Fatalf("change link %s", path)
		}
		notice := e.smtp.WaitFor(t, old, 5*time.Second)
		if notice.Subject != "Your email address is being changed" || !strings.Contains(notice.Text, "u***@esimerkki.fi") ||
			strings.Contains(notice.Text, next) || !strings.Contains(notice.Text, "https://lupa.example/t/kauppa/reset") {
			t.Fatalf("notice to the old address: %q\n%s", notice.Subject, notice.Text)
		}
		// The new address is kept encrypted with the link, never in clear.
		if n := e.count(t, "email_tokens", "purpose = ? AND data LIKE ?", accounts.LinkEmailChange, "%esimerkki%"); n != 0 {
			t.Fatal("the new address is stored in clear with the link")
		}
		// A reset link sent to the old address before the change.
		if err := e.svc.RequestReset(ctx, e.tenant.ID, old, "fi"); err != nil {
			t.Fatal(err)
		}
		_, resetToken := e.link(t, old, "Vaihda salasanasi")

		// Nothing changed yet.
		if _, err := e.svc.SignIn(ctx, e.tenant.ID, next, pw, "10.0.0.1"); err != accounts.ErrSignIn {
			t.Fatalf("the new address signs in before the link is used: %v", err)
		}
		if err := e.svc.CheckLink(ctx, token, accounts.LinkEmailChange); err != nil {
			t.Fatalf("check link: %v", err)
		}
		if err := e.svc.CheckLink(ctx, token, accounts.LinkVerify); err != accounts.ErrLink {
			t.Fatalf("the change link works as a verification link: %v", err)
		}

		// The tenant has a connector (as a bare row): the outbox takes its domain events.
		if err := e.db.Write.Exec(`INSERT INTO connectors (tenant_id, id, vendor, name, recipient_kind, credentials, credentials_kid,
			status, created_at, updated_at) VALUES (?, 'con_test', 'mailchimp', 'test', 'processor', ?, 'k', 'disabled', 0, 0)`,
			e.tenant.ID, []byte{0}).Error; err != nil {
			t.Fatal(err)
		}
		res, err := e.svc.ConfirmEmailChange(ctx, token, sess)
		if err != nil || !res.KeptSession || res.SubjectID != sess.SubjectID {
			t.Fatalf("confirm: %+v %v", res, err)
		}
		if _, err := e.svc.Session(ctx, sess.Token); err != nil {
			t.Fatalf("the confirming session ended: %v", err)
		}
		if _, err := e.svc.Session(ctx, other.Token); err == nil {
			t.Fatal("another session survived the change")
		}
		a, err := e.svc.Get(ctx, e.tenant.ID, sess.AccountID)
		if err != nil || a.Email != next || !a.EmailVerified {
			t.Fatalf("account after the change: %+v %v", a, err)
		}
		if _, err := e.svc.SignIn(ctx, e.tenant.ID, old, pw, "10.0.0.2"); err != accounts.ErrSignIn {
			t.Fatalf("the old address still signs in: %v", err)
		}
		if _, err := e.ids.FindSubject(ctx, e.tenant.ID, identity.Identifier{Kind: identity.IDEmail, Value: old}); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("the old address still names someone: %v", err)
		}
		if _, err := e.svc.SignIn(ctx, e.tenant.ID, next, pw, "10.0.0.3"); err != nil {
			t.Fatalf("the new address does not sign in: %v", err)
		}
		if n := e.count(t, "identifiers", "tenant_id = ? AND subject_id = ? AND kind = 'email'", e.tenant.ID, sess.SubjectID); n != 1 {
			t.Fatalf("%d email identifiers after the change", n)
		}
		if _, err := e.svc.Reset(ctx, resetToken, "uusi hyvä salasana"); err != accounts.ErrLink {
			t.Fatalf("a reset link sent to the old address still works: %v", err)
		}
		// The old address asking for links gets nothing.
		_ = e.svc.RequestSignInLink(ctx, e.tenant.ID, old, "fi")

		// One domain event, naming the subject by its pseudonym and id, without addresses.
		events := e.emailEvents(t, sess.SubjectID)
		if len(events) != 1 {
			t.Fatalf("%d subject.email_changed events", len(events))
		}
		if strings.Contains(events[0], "@") || strings.Contains(events[0], "esimerkki") {
			t.Fatalf("the event holds an address: %s", events[0])
		}
		var p map[string]any
		if err := json.Unmarshal([]byte(events[0]), &p); err != nil {
			t.Fatal(err)
		}
		subj, err := e.ids.SubjectByID(ctx, e.db.Read, e.tenant.ID, sess.SubjectID)
		if err != nil {
			t.Fatal(err)
		}
		at, _ := p["at"].(string)
		when, err := time.Parse(time.RFC3339, at)
		if p["subject"] != subj.Pseudonym || p["subject_id"] != sess.SubjectID || p["channel"] != "account" || err != nil ||
			!when.Equal(e.clock.Now()) || len(p) != 4 {
			t.Fatalf("payload %s", events[0])
		}
		var seq, created int64
		e.db.Read.Raw("SELECT subject_seq FROM domain_events WHERE type = 'subject.email_changed'").Scan(&seq)
		e.db.Read.Raw("SELECT created_at FROM domain_events WHERE type = 'subject.email_changed'").Scan(&created)
		if seq != e.clock.Now().UnixMilli() || created != seq {
			t.Fatalf("subject_seq %d, created_at %d", seq, created)
		}
		if n := e.count(t, "delivery_outbox", "subject_id = ?", sess.SubjectID); n != 1 {
			t.Fatalf("%d outbox rows for the event", n)
		}

		// The link worked once.
		if _, err := e.svc.ConfirmEmailChange(ctx, token, sess); err != accounts.ErrLink {
			t.Fatalf("the link worked twice: %v", err)
		}
		if n := len(e.emailEvents(t, sess.SubjectID)); n != 1 {
			t.Fatalf("%d events after a reused link", n)
		}
		// No mail reached the old address after the change (the link request above).
		time.Sleep(200 * time.Millisecond)
		for _, m := range e.smtp.Messages() {
			if strings.EqualFold(m.To, old) && m.Subject == "Kirjautumislinkki" {
				t.Fatal("the old address got a sign-in link after the change")
			}
		}
	})
}

// TestChangeEmailRefusals: a wrong password, a bad address and the account's own address
// are refused before anything is sent.
func TestChangeEmailRefusals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sess := e.register(t, "kieltava@esimerkki.fi")
		fieldIs := func(err error, field, message string) {
			t.Helper()
			var ie *identity.Error
			if !errors.As(err, &ie) || ie.Code != identity.EInvalid || len(ie.Fields) != 1 || ie.Fields[0].Field != field ||
				(message != "" && ie.Fields[0].Message != message) {
				t.Fatalf("want a %s error, got %v", field, err)
			}
		}
		fieldIs(e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "toinen@esimerkki.fi", "väärä salasana", "fi"), "current_password", "")
		fieldIs(e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "toinen@esimerkki.fi", "", "fi"), "current_password", "")
		fieldIs(e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "ei osoite", pw, "fi"), "new_email", "")
		fieldIs(e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "Kieltava@Esimerkki.fi", pw, "fi"), "new_email", accounts.SameEmailMessage)
		time.Sleep(200 * time.Millisecond)
		if n := len(e.smtp.Messages()); n != 1 { // the verification email
			t.Fatalf("refused requests sent %d emails", n-1)
		}
		if n := e.count(t, "email_tokens", "purpose = ?", accounts.LinkEmailChange); n != 0 {
			t.Fatalf("refused requests issued %d links", n)
		}
	})
}

// TestChangeEmailTaken: asking for an address that names someone else answers the same,
// mails that address a note instead of a link, and still tells the old address. An address
// taken between the request and the link refuses the change and changes nothing; the link
// keeps working.
func TestChangeEmailTaken(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sess := e.register(t, "ensimmainen@esimerkki.fi")
		e.register(t, "toinen@esimerkki.fi")
		if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "toinen@esimerkki.fi", pw, "en"); err != nil {
			t.Fatalf("request for a taken address: %v", err)
		}
		if m := e.smtp.WaitFor(t, "toinen@esimerkki.fi", 5*time.Second); m.Subject != "This address is already in use" ||
			strings.Contains(m.Text, "/account/email/confirm") {
			t.Fatalf("the taken address got %q: %s", m.Subject, m.Text)
		}
		if m := e.smtp.WaitFor(t, "ensimmainen@esimerkki.fi", 5*time.Second); m.Subject != "Your email address is being changed" {
			t.Fatalf("the old address got %q", m.Subject)
		}
		if n := e.count(t, "email_tokens", "purpose = ?", accounts.LinkEmailChange); n != 0 {
			t.Fatalf("a taken address got %d links", n)
		}

		// Free when asked, taken when the link is used.
		if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "kolmas@esimerkki.fi", pw, "en"); err != nil {
			t.Fatal(err)
		}
		_, token := e.link(t, "kolmas@esimerkki.fi", "Confirm your new email address")
		e.register(t, "kolmas@esimerkki.fi")
		if _, err := e.svc.ConfirmEmailChange(ctx, token, nil); err != accounts.ErrEmailTaken {
			t.Fatalf("confirming a taken address: %v", err)
		}
		a, err := e.svc.Get(ctx, e.tenant.ID, sess.AccountID)
		if err != nil || a.Email != "ensimmainen@esimerkki.fi" {
			t.Fatalf("the refused change changed the address: %+v %v", a, err)
		}
		if _, err := e.svc.Session(ctx, sess.Token); err != nil {
			t.Fatalf("the refused change ended a session: %v", err)
		}
		if n := len(e.emailEvents(t, sess.SubjectID)); n != 0 {
			t.Fatalf("the refused change wrote %d events", n)
		}
		if err := e.svc.CheckLink(ctx, token, accounts.LinkEmailChange); err != nil {
			t.Fatalf("the refused change used the link: %v", err)
		}
	})
}

// TestChangeEmailWithoutPassword: an account an identity provider made without a password
// changes (here: adds) its address with a recent sign-in; an older session must sign in
// again. Confirmed in a browser without the account's session, every session ends and
// nobody is signed in.
func TestChangeEmailWithoutPassword(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		res, err := e.svc.SignInExternal(ctx, e.tenant.ID, accounts.External{Issuer: "https://id.example", Subject: "ilman-salasanaa", Language: "fi"})
		if err != nil {
			t.Fatal(err)
		}
		sess := res.Session
		e.clock.Add(11 * time.Minute)
		if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "idp@esimerkki.fi", "", "fi"); err != accounts.ErrSignInRecently {
			t.Fatalf("an old session changed the address: %v", err)
		}
		res, err = e.svc.SignInExternal(ctx, e.tenant.ID, accounts.External{Issuer: "https://id.example", Subject: "ilman-salasanaa"})
		if err != nil {
			t.Fatal(err)
		}
		sess = res.Session
		if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "idp@esimerkki.fi", "", "fi"); err != nil {
			t.Fatalf("a recent session: %v", err)
		}
		_, token := e.link(t, "idp@esimerkki.fi", "Vahvista uusi sähköpostiosoitteesi")
		done, err := e.svc.ConfirmEmailChange(ctx, token, nil)
		if err != nil || done.KeptSession {
			t.Fatalf("confirm: %+v %v", done, err)
		}
		if _, err := e.svc.Session(ctx, sess.Token); err == nil {
			t.Fatal("a session survived a change confirmed elsewhere")
		}
		a, err := e.svc.Get(ctx, e.tenant.ID, sess.AccountID)
		if err != nil || a.Email != "idp@esimerkki.fi" || !a.EmailVerified {
			t.Fatalf("account: %+v %v", a, err)
		}
		// The address now signs in by an emailed link.
		if err := e.svc.RequestSignInLink(ctx, e.tenant.ID, "idp@esimerkki.fi", "fi"); err != nil {
			t.Fatal(err)
		}
		if _, token := e.link(t, "idp@esimerkki.fi", "Kirjautumislinkki"); token == "" {
			t.Fatal("no sign-in link")
		}
		if n := len(e.emailEvents(t, sess.SubjectID)); n != 1 {
			t.Fatalf("%d events", n)
		}
	})
}

// TestChangeEmailStoppedByReset: a password reset stops a change waiting for its link (the
// old address's notice says so), and only the newest change link works.
func TestChangeEmailStoppedByReset(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const old = "kaapattu@esimerkki.fi"
		sess := e.register(t, old)
		if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "hyokkaaja@esimerkki.fi", pw, "fi"); err != nil {
			t.Fatal(err)
		}
		_, first := e.link(t, "hyokkaaja@esimerkki.fi", "Vahvista uusi sähköpostiosoitteesi")
		if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "hyokkaaja@esimerkki.fi", pw, "fi"); err != nil {
			t.Fatal(err)
		}
		_, second := e.link(t, "hyokkaaja@esimerkki.fi", "Vahvista uusi sähköpostiosoitteesi")
		if err := e.svc.CheckLink(ctx, first, accounts.LinkEmailChange); err != accounts.ErrLink {
			t.Fatalf("an older change link still works: %v", err)
		}
		if err := e.svc.RequestReset(ctx, e.tenant.ID, old, "fi"); err != nil {
			t.Fatal(err)
		}
		var reset string
		for deadline := time.Now().Add(5 * time.Second); reset == "" && time.Now().Before(deadline); {
			m := e.smtp.WaitFor(t, old, 5*time.Second)
			if m.Subject == "Vaihda salasanasi" {
				reset = linkRe.FindStringSubmatch(m.Text)[1]
			}
		}
		u, err := url.Parse(reset)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Reset(ctx, u.Query().Get("t"), "omistajan uusi salasana"); err != nil {
			t.Fatalf("reset: %v", err)
		}
		if _, err := e.svc.ConfirmEmailChange(ctx, second, nil); err != accounts.ErrLink {
			t.Fatalf("a change survived the reset: %v", err)
		}
		if a, _ := e.svc.Get(ctx, e.tenant.ID, sess.AccountID); a.Email != old {
			t.Fatalf("address %s", a.Email)
		}
	})
}

// TestChangeEmailMailLimit: the emails of changes count against the per-recipient limit
// like every other: five to one address, then none for ten minutes.
func TestChangeEmailMailLimit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sess := e.register(t, "rajoitettu@esimerkki.fi")
		for i := 0; i < 8; i++ {
			if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, "tulvittu@esimerkki.fi", pw, "fi"); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		count := func(to string) int {
			n := 0
			for _, m := range e.smtp.Messages() {
				if strings.EqualFold(m.To, to) {
					n++
				}
			}
			return n
		}
		for deadline := time.Now().Add(5 * time.Second); count("tulvittu@esimerkki.fi") < 5 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		if n := count("tulvittu@esimerkki.fi"); n != 5 {
			t.Fatalf("%d emails to the new address, want 5", n)
		}
		// The old address: the verification email and four notices.
		if n := count("rajoitettu@esimerkki.fi"); n != 5 {
			t.Fatalf("%d emails to the old address, want 5", n)
		}
	})
}

// TestChangeEmailConcurrent: two accounts confirming a change to the same address at once:
// one gets it, the other is refused and keeps its own.
func TestChangeEmailConcurrent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const target = "kiistelty@esimerkki.fi"
		var sessions []*accounts.Session
		var tokens []string
		for _, email := range []string{"eka@esimerkki.fi", "toka@esimerkki.fi"} {
			sess := e.register(t, email)
			if err := e.svc.RequestEmailChange(ctx, sess, e.tenant.Slug, target, pw, "fi"); err != nil {
				t.Fatal(err)
			}
			_, token := e.link(t, target, "Vahvista uusi sähköpostiosoitteesi")
			sessions, tokens = append(sessions, sess), append(tokens, token)
		}
		errs := make([]error, 2)
		start := make(chan struct{})
		done := make(chan int)
		for i := range 2 {
			go func() {
				<-start
				_, errs[i] = e.svc.ConfirmEmailChange(ctx, tokens[i], sessions[i])
				done <- i
			}()
		}
		close(start)
		<-done
		<-done
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatal("both changes went through")
				}
				won = i
			case err != accounts.ErrEmailTaken:
				t.Fatalf("change %d: %v", i, err)
			}
		}
		if won < 0 {
			t.Fatal("neither change went through")
		}
		owner, err := e.ids.FindSubject(ctx, e.tenant.ID, identity.Identifier{Kind: identity.IDEmail, Value: target})
		if err != nil || owner.ID != sessions[won].SubjectID {
			t.Fatalf("the address names %v (%v), want the winner", owner, err)
		}
		lost := 1 - won
		if a, err := e.svc.Get(ctx, e.tenant.ID, sessions[lost].AccountID); err != nil || a.Email == target || a.Email == "" {
			t.Fatalf("the refused account: %+v %v", a, err)
		}
		if n := e.count(t, "domain_events", "type = 'subject.email_changed'"); n != 1 {
			t.Fatalf("%d events", n)
		}
	})
}
