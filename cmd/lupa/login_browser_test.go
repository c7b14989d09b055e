package main

// Sign-in with an identity provider in real Chromium: the button's POST is answered with a
// redirect to the provider, which browsers hold to the page's CSP form-action; the provider
// sends the browser back (a cross-site top-level GET, which the SameSite=Lax flow cookie
// survives); the account opens.

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/lupa-cmp/lupa/identity"
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
		if shown := evalJS[string](b, `[...document.querySelectorAll("dd")].map(e => e.querySelector("span") ? e.querySelector("span").textContent : e.textContent).join("|")`); shown != "Kauppa ID" {
			t.Fatalf("account page shows %q", shown)
		}
		if readable := evalJS[string](b, `document.cookie`); readable != "" {
			t.Fatalf("a script can read cookies: %q", readable)
		}
	})
}

// TestBrowserRegistrationWidgetLogin: "Continue with …" inside the registration widget's
// iframe on a shop's page. The button leaves the shop for the provider in the top window
// (an iframe cannot show the provider, and the flow's cookie must be Lupa's first-party
// one), and the browser comes back to the shop's page, where the widget says so and the
// page hears lupa:registered; the box ticked became the person's decision.
func TestBrowserRegistrationWidgetLogin(t *testing.T) {
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
		m.QueueUser(&mockoidc.MockUser{Subject: "widget-browser", Email: "selain@esimerkki.fi"})

		shop := newSite(t, s.testServer)
		shop.lupaURL = s.TLS.URL
		v := &visitor{browser: newBrowser(t, chromedp.Flag("ignore-certificate-errors", true)), site: shop}
		v.do(chromedp.Navigate(shop.page("/join", registerPage) + "?campaign=autumn"))
		v.waitJS(`document.querySelector("#reg iframe") && /^\d+px$/.test(document.querySelector("#reg iframe").style.height)`)
		frame := v.registrationFrame()
		if err := chromedp.Do(frame,
			chromedp.WaitVisible(chromedp.CSS(`button.provider`)),
			chromedp.SendKeys(chromedp.CSS(`#password`), "ei tämän pidä lähteä mihinkään"),
			chromedp.Click(chromedp.CSS(`#p-personalisation`)),
			chromedp.Click(chromedp.CSS(`button.provider`))); err != nil {
			t.Fatalf("press the provider's button: %v", err)
		}
		v.waitJS(`location.pathname === "/join" && location.search === "?campaign=autumn" && location.hash === "" && window.__registered === true`)
		if got := evalJS[string](v.browser, `document.querySelector("#reg iframe").src`); !strings.Contains(got, "done=signin") {
			t.Fatalf("the widget did not show the registration: %s", got)
		}
		person := identity.Identifier{Kind: identity.IDIdP, Namespace: m.Issuer(), Value: "widget-browser"}
		st, err := s.app.consent.SubjectState(context.Background(), s.demo.Tenant.ID, person, nil)
		if err != nil || stateOf(st.State, "personalisation") != "granted" || stateOf(st.State, "partner_sharing") != "denied" {
			t.Fatalf("the boxes did not become the person's decisions: %+v %v", st, err)
		}
	})
}
