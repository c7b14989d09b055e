package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// TestAccountEmailChange: the account page's form changes the address, end to end over
// SMTP. A wrong password and cross-site posts are refused; a taken address answers exactly
// like a free one; opening the link changes nothing; confirming it in the signed-in browser
// keeps that session and ends the others; the link works once; the old address no longer
// signs in and the new one does; one domain event without addresses is written. Confirmed in
// a browser that is not signed in, every session ends and nobody is signed in.
func TestAccountEmailChange(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const old, next, taken, third = "muuttaja@esimerkki.fi", "uusi.muuttaja@esimerkki.fi", "varattu@esimerkki.fi", "kolmas@esimerkki.fi"
		a := s.customer(t)
		a.register(demoSlug, old)
		b := s.customer(t)
		b.signIn(demoSlug, old)
		s.customer(t).register(demoSlug, taken)

		page := wantPage(t, a.get("/account?lang=en"), http.StatusOK)
		for _, want := range []string{`<h2>Change email address</h2>`, `<form method="post" action="/account/email" novalidate>`,
			`id="new_email" name="new_email" type="email" autocomplete="email"`, `id="email_password" name="email_password" type="password"`} {
			if !strings.Contains(page, want) {
				t.Fatalf("account page lacks %s:\n%s", want, page)
			}
		}
		// A fresh sign-in (asked of accounts without a password) shows the form to a signed-in
		// browser instead of sending it on to the account.
		wantRedirect(t, a.get("/t/"+demoSlug+"/signin"), "/account")
		if p := wantPage(t, a.get("/t/"+demoSlug+"/signin?again=1&lang=en"), http.StatusOK); !strings.Contains(p, `name="password"`) {
			t.Fatalf("sign in again:\n%s", p)
		}
		before := len(s.SMTP.Messages())

		// A wrong password: the form again, with the field in error, and no email.
		page = wantPage(t, a.post("/account/email", form("new_email", next, "email_password", "väärä salasana", "lang", "en")),
			http.StatusUnprocessableEntity)
		if !strings.Contains(page, "The current password is not right.") || !strings.Contains(page, `href="#email_password"`) ||
			!strings.Contains(page, `value="`+next+`"`) {
			t.Fatalf("wrong password page:\n%s", page)
		}
		// Cross-site posts are refused before anything happens.
		for _, h := range [][]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}} {
			r := a.do(http.MethodPost, "/account/email", form("new_email", next, "email_password", goodPW, "lang", "en").Encode(),
				"application/x-www-form-urlencoded", h...)
			if p := wantPage(t, r, http.StatusForbidden); !strings.Contains(p, "The form was refused") {
				t.Fatalf("cross-site change: %s", p)
			}
		}
		time.Sleep(200 * time.Millisecond)
		if n := len(s.SMTP.Messages()); n != before {
			t.Fatalf("refused requests sent %d emails", n-before)
		}

		// A taken address and a free one answer alike.
		takenPage := wantPage(t, a.post("/account/email", form("new_email", taken, "email_password", goodPW, "lang", "en")), http.StatusOK)
		freePage := wantPage(t, a.post("/account/email", form("new_email", strings.ToUpper(next), "email_password", goodPW, "lang", "en")), http.StatusOK)
		if takenPage != freePage || !strings.Contains(freePage, "confirmation link to the new address") {
			t.Fatalf("a taken address answers differently:\n%s\n---\n%s", takenPage, freePage)
		}
		if m := s.SMTP.WaitFor(t, taken, 10*time.Second); m.Subject != "This address is already in use" ||
			strings.Contains(m.Text, "/account/email/confirm") {
			t.Fatalf("the taken address got %q: %s", m.Subject, m.Text)
		}
		for range 2 {
			if m := s.SMTP.WaitFor(t, old, 10*time.Second); m.Subject != "Your email address is being changed" ||
				strings.Contains(m.Text, next) || strings.Contains(m.Text, taken) {
				t.Fatalf("notice to the old address: %q %s", m.Subject, m.Text)
			}
		}
		path, token := s.mailLink(t, next, "Confirm your new email address")
		if path != "/account/email/confirm" {
			t.Fatalf("change link %s", path)
		}

		// Opening the link (as a scanner would, twice) shows a button and changes nothing.
		for range 2 {
			confirm := wantPage(t, a.get(path+"?t="+url.QueryEscape(token)+"&lang=en"), http.StatusOK)
			if !strings.Contains(confirm, `<form method="post" action="/account/email/confirm">`) ||
				!strings.Contains(confirm, `name="t" value="`+token+`"`) || !strings.Contains(confirm, "Confirm the new address") {
				t.Fatalf("confirmation page:\n%s", confirm)
			}
		}
		if a.signedInAs() != old || b.signedInAs() != old {
			t.Fatal("opening the link changed something")
		}
		// A cross-site POST of the link does nothing either.
		r := a.do(http.MethodPost, path, form("t", token).Encode(), "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site")
		wantPage(t, r, http.StatusForbidden)

		wantRedirect(t, a.post(path, form("t", token, "lang", "en")), "/account?done=email&lang=en")
		page = wantPage(t, a.get("/account?done=email&lang=en"), http.StatusOK)
		if !strings.Contains(page, "Your email address was changed.") || a.signedInAs() != next {
			t.Fatalf("after the change:\n%s", page)
		}
		if b.signedInAs() != "" {
			t.Fatal("another browser's session survived the change")
		}
		// The link works once.
		wantPage(t, a.post(path, form("t", token, "lang", "en")), http.StatusUnprocessableEntity)
		// The old address no longer signs in; the new one does.
		c := s.customer(t)
		wantPage(t, c.post("/t/"+demoSlug+"/signin", form("email", old, "password", goodPW)), http.StatusUnprocessableEntity)
		c.signIn(demoSlug, next)

		ctx := context.Background()
		subj, err := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: identity.IDEmail, Value: next})
		if err != nil {
			t.Fatal(err)
		}
		var payloads []string
		s.app.db.Read.Raw("SELECT payload FROM domain_events WHERE tenant_id = ? AND subject_id = ? AND type = 'subject.email_changed'",
			s.demo.Tenant.ID, subj.ID).Scan(&payloads)
		if len(payloads) != 1 || strings.Contains(payloads[0], "@") || !strings.Contains(payloads[0], `"subject":"`+subj.Pseudonym+`"`) {
			t.Fatalf("domain events %v", payloads)
		}

		// Confirmed in a browser that is not signed in: every session ends, nobody is
		// signed in, and the page says to sign in with the new address.
		wantPage(t, a.post("/account/email", form("new_email", third, "email_password", goodPW, "lang", "en")), http.StatusOK)
		path, token = s.mailLink(t, third, "Confirm your new email address")
		d := s.customer(t)
		page = wantPage(t, d.post(path, form("t", token, "lang", "en")), http.StatusOK)
		if !strings.Contains(page, "Email address changed") || !strings.Contains(page, `href="/t/`+demoSlug+`/signin?lang=en"`) {
			t.Fatalf("change confirmed elsewhere:\n%s", page)
		}
		if d.cookie() != "" || a.signedInAs() != "" || c.signedInAs() != "" {
			t.Fatal("a session outlived a change confirmed elsewhere, or the link signed someone in")
		}
		s.customer(t).signIn(demoSlug, third)
	})
}

// TestAccountEmailChangeTakenMeanwhile: an address taken after the link was sent is refused
// with a page that says so, and the account keeps its address.
func TestAccountEmailChangeTakenMeanwhile(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const old, next = "odottaja@esimerkki.fi", "ehtija@esimerkki.fi"
		a := s.customer(t)
		a.register(demoSlug, old)
		wantPage(t, a.post("/account/email", form("new_email", next, "email_password", goodPW, "lang", "en")), http.StatusOK)
		path, token := s.mailLink(t, next, "Confirm your new email address")
		s.customer(t).register(demoSlug, next)
		page := wantPage(t, a.post(path, form("t", token, "lang", "en")), http.StatusConflict)
		if !strings.Contains(page, "This address is in use") {
			t.Fatalf("taken meanwhile:\n%s", page)
		}
		if a.signedInAs() != old {
			t.Fatal("the refused change changed the account")
		}
	})
}
