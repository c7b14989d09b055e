package main

// The account pages in real Chromium, used with the keyboard only: registration, the
// verification email's link opened and confirmed in the browser, and the account page.

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserAccountRegister: Tab reaches the fields with a visible focus ring, typing and
// Enter register (no JavaScript on the page: the form posts itself); the emailed link,
// opened in the browser, verifies nothing until its button is pressed, and then signs in
// with an HttpOnly cookie; the pages fit 320 px under their own CSP.
func TestBrowserAccountRegister(t *testing.T) {
	chromium(t)
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "ilona@esimerkki.fi"
		b := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true)) // httptest's certificate
		b.do(chromedp.Navigate(s.TLS.URL + "/t/" + demoSlug + "/register?lang=en"))
		settle(b, `document.querySelector("h1") && document.querySelector("h1").textContent === "Create an account"`)
		if scripts := evalJS[int](b, `document.scripts.length`); scripts != 0 {
			t.Fatalf("the page has %d scripts; it must work without JavaScript", scripts)
		}
		// The inline stylesheet applies under the page's CSP, thanks to its nonce.
		if bg := evalJS[string](b, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(244, 244, 240)" {
			t.Fatalf("the page's stylesheet did not apply (background %s)", bg)
		}

		focused := func() string {
			return evalJS[string](b, `(function (e) { return e ? e.id || e.tagName : ""; })(document.activeElement)`)
		}
		tabTo := func(want string) {
			t.Helper()
			var seen []string
			for i := 0; i < 12 && focused() != want; i++ {
				b.do(chromedp.KeyEvent(kb.Tab))
				seen = append(seen, focused())
			}
			if focused() != want {
				t.Fatalf("Tab never reached %s: %v", want, seen)
			}
			if ring := evalJS[string](b, `getComputedStyle(document.activeElement).outlineStyle`); ring == "none" || ring == "" {
				t.Fatalf("%s has no visible focus ring", want)
			}
		}
		tabTo("email")
		b.do(chromedp.KeyEvent(email))
		tabTo("password")
		if label := evalJS[string](b, `document.activeElement.labels[0].textContent + " | " +
			document.getElementById(document.activeElement.getAttribute("aria-describedby")).textContent`); label !=
			"Password | At least 12 characters. A long sentence makes a good password." {
			t.Fatalf("password field's label and hint: %q", label)
		}
		b.do(chromedp.KeyEvent(goodPW))
		b.do(chromedp.KeyEvent(kb.Enter))
		settle(b, `document.querySelector("h1") && document.querySelector("h1").textContent === "Check your email"`)

		// The email arrives over SMTP; its link is opened as it is.
		path, token := s.mailLink(t, email, "Confirm your email address")
		b.do(chromedp.Navigate(s.TLS.URL + path + "?t=" + url.QueryEscape(token)))
		settle(b, `document.querySelector("h1") && document.querySelector("h1").textContent === "Confirm your email address"`)
		// Opening it verified nothing: the password does not sign in yet.
		wantPage(t, s.customer(t).post("/t/"+demoSlug+"/signin", url.Values{"email": {email}, "password": {goodPW}}),
			http.StatusUnprocessableEntity)
		tabTo("BUTTON")
		b.do(chromedp.KeyEvent(kb.Enter))
		settle(b, `location.pathname === "/account" && document.querySelector("h1").textContent === "Your account"`)
		if shown := evalJS[string](b, `document.querySelector("dd").textContent`); shown != email {
			t.Fatalf("account page shows %q", shown)
		}
		if readable := evalJS[string](b, `document.cookie`); readable != "" {
			t.Fatalf("a script can read cookies: %q (the session cookie must be HttpOnly)", readable)
		}
		// The same session works for the server: the address is now verified.
		s.customer(t).signIn(demoSlug, email)

		// One column at 320 px: nothing wider than the screen.
		b.do(chromedp.EmulateViewport(320, 640))
		for _, p := range []string{"/account", "/t/" + demoSlug + "/register?lang=fi", "/t/" + demoSlug + "/signin?lang=sv"} {
			b.do(chromedp.Navigate(s.TLS.URL + p))
			settle(b, `document.readyState === "complete"`)
			if w := evalJS[int](b, `document.documentElement.scrollWidth`); w > 320 {
				t.Fatalf("%s is %d px wide at 320 px", p, w)
			}
		}
	})
}

// settle waits until expr is true on the page a form submission leads to: while the
// browser is between pages, evaluating fails, and that is no reason to stop waiting.
func settle(b *browser, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("waiting for %s: %v", expr, last)
}
