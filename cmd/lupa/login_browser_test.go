package main

// Sign-in with an identity provider in real Chromium: the button's POST is answered with a
// redirect to the provider, which browsers hold to the page's CSP form-action; the provider
// sends the browser back (a cross-site top-level GET, which the SameSite=Lax flow cookie
// survives); the account opens.

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/lupa-cmp/lupa/identity/login/logintest"
)

func TestBrowserLogin(t *testing.T) {
	chromium(t)
	g := logintest.NewGraph(t)
	eachAccountServer(t, loginEnv(g), func(t *testing.T, s *accountServer) {
		m, err := mockoidc.Run()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		s.addProvider(t, map[string]any{"kind": "oidc", "label": "Kauppa ID", "issuer": m.Issuer(), "client_id": m.ClientID,
			"client_secret": m.ClientSecret, "token_auth_method": "client_secret_post"})
		m.QueueUser(&mockoidc.MockUser{Subject: "browser-1", Email: "selain@esimerkki.fi"})

		b := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true)) // httptest's certificate
		b.do(chromedp.Navigate(s.TLS.URL + "/t/" + demoSlug + "/signin?lang=en"))
		settle(b, `document.querySelector("h1") && document.querySelector("h1").textContent === "Sign in"`)
		if scripts := evalJS[int](b, `document.scripts.length`); scripts != 0 {
			t.Fatalf("the page has %d scripts", scripts)
		}
		// Keyboard only: Tab to the provider's button, Enter.
		for i := 0; i < 20 && evalJS[string](b, `document.activeElement ? document.activeElement.textContent : ""`) != "Continue with Kauppa ID"; i++ {
			b.do(chromedp.KeyEvent(kb.Tab))
		}
		b.do(chromedp.KeyEvent(kb.Enter))
		settle(b, `location.pathname === "/account" && document.querySelector("h1").textContent === "Your account"`)
		if shown := evalJS[string](b, `[...document.querySelectorAll("dd")].map(e => e.textContent).join("|")`); shown != "Kauppa ID" {
			t.Fatalf("account page shows %q", shown)
		}
		if readable := evalJS[string](b, `document.cookie`); readable != "" {
			t.Fatalf("a script can read cookies: %q", readable)
		}
	})
}
