package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lupa-cmp/lupa/identity"

	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
)

// registerPage is a shop page with the widget and a place for the registration form.
const registerPage = `<!DOCTYPE html>
<html lang="fi"><head><meta charset="utf-8"><title>Join</title>
<script>document.addEventListener("load", function (e) { if (e.target.tagName === "IFRAME") window.__formLoaded = true; }, true);</script>
<script src="{{lupa}}/v1/widget.js" data-property="{{pk}}" async></script>
</head><body><h1>Liity</h1>
<div id="reg" data-lupa-register></div>
<script>document.addEventListener("lupa:registered", function () { window.__registered = true; });</script>
</body></html>`

// TestBrowserRegistrationWidget: on a shop's page the registration form runs in Lupa's own
// iframe, which the page's scripts cannot read; it creates the account and records exactly
// the boxes ticked; the page hears of it; the verification email's link verifies.
func TestBrowserRegistrationWidget(t *testing.T) {
	chromium(t)
	smtp := mailtest.NewServer(t)
	env := map[string]string{"LUPA_SMTP_URL": "smtp://" + smtp.Addr() + "?tls=none"}
	eachServer(t, env, func(t *testing.T, s *testServer) {
		shop := newSite(t, s)
		v := newVisitor(t, shop)
		// An anonymous visit first: the device accepts everything on the banner.
		v.firstVisit(shop.shop("/", "fi"))
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		s.waitDecisions(t, 2)
		device := v.deviceID()
		v.do(chromedp.Navigate(shop.page("/join", registerPage)))
		// The form tells its height, and the iframe follows.
		v.waitJS(`document.querySelector("#reg iframe") && /^\d+px$/.test(document.querySelector("#reg iframe").style.height)`)
		if got := evalJS[string](v.browser, `(function () {
			try { var d = document.querySelector("#reg iframe").contentDocument; return d === null ? "null" : (d.querySelector("#password") ? "readable" : "empty"); }
			catch (e) { return "blocked"; } })()`); got != "null" && got != "blocked" {
			t.Fatalf("the page's script reads the form: %s", got)
		}
		frame := v.registrationFrame()
		email := "rekisteri-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:]) + "@esimerkki.fi"
		err := chromedp.Do(frame,
			chromedp.WaitVisible(chromedp.CSS(`#email`)),
			chromedp.SendKeys(chromedp.CSS(`#email`), email),
			chromedp.SendKeys(chromedp.CSS(`#password`), "pitkä ja hyvä salasana"),
			chromedp.Click(chromedp.CSS(`#p-marketing_email`)),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
		if err != nil {
			t.Fatalf("fill the form: %v", err)
		}
		v.waitJS(`window.__registered === true`)
		got := map[string]string{}
		for _, d := range s.waitDecisions(t, 6) {
			if d.Method == "checkbox" {
				got[d.Purpose] = d.Decision + "/" + d.Method
			}
		}
		if got["marketing_email"] != "granted/checkbox" || got["partner_sharing"] != "denied/checkbox" || got["personalisation"] != "denied/checkbox" {
			t.Fatalf("recorded %v, want exactly the box ticked granted", got)
		}
		var channels []string
		s.app.db.Read.Raw("SELECT DISTINCT channel FROM consent_events WHERE tenant_id = ? AND method = 'checkbox'", s.demo.Tenant.ID).Scan(&channels)
		if len(channels) != 1 || channels[0] != "registration" {
			t.Fatalf("channels %v", channels)
		}
		// The device's anonymous history joined the new person.
		ctx := context.Background()
		ds, err := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: "device", Value: device})
		ps, err2 := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: "email", Value: email})
		if err != nil || err2 != nil || ds.ID != ps.ID {
			t.Fatalf("the device was not linked to the person: %v %v", err, err2)
		}

		m := smtp.WaitFor(t, email, 5*time.Second)
		link := regexp.MustCompile(`https?://\S+(/account/verify\?t=\S+)`).FindStringSubmatch(m.Text)
		if link == nil {
			t.Fatalf("no verification link in %q", m.Text)
		}
		v.do(chromedp.Navigate(s.URL+link[1]), chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
		v.waitJS(`location.pathname === "/account"`)
		if body := evalJS[string](v.browser, `document.body.textContent`); !strings.Contains(body, email) {
			t.Fatalf("the account page after verification: %q", body)
		}
	})
}

// TestBrowserRegistrationWidgetNamedCookie: with the consent cookie renamed in the banner's
// settings, the registration form still finds the browser's device and joins its
// anonymous history to the person who registers. (The loader read the default name only.)
func TestBrowserRegistrationWidgetNamedCookie(t *testing.T) {
	chromium(t)
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		if r := s.admin(http.MethodPut, "/v1/admin/properties/"+s.demo.WebShop.ID+"/banner", map[string]any{"cookie_name": "kauppa_valinnat"}); r.Status != http.StatusOK {
			t.Fatalf("banner settings: %d %s", r.Status, r.Body)
		}
		shop := newSite(t, s)
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "fi"))
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		s.waitDecisions(t, 2)
		const id = `JSON.parse(decodeURIComponent(document.cookie.match(/kauppa_valinnat=([^;]*)/)[1])).id`
		v.waitJS(id)
		device := evalJS[string](v.browser, id)
		v.do(chromedp.Navigate(shop.page("/join", registerPage)))
		frame := v.registrationFrame()
		email := "nimetty-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:]) + "@esimerkki.fi"
		err := chromedp.Do(frame,
			chromedp.WaitVisible(chromedp.CSS(`#email`)),
			chromedp.SendKeys(chromedp.CSS(`#email`), email),
			chromedp.SendKeys(chromedp.CSS(`#password`), "pitkä ja hyvä salasana"),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
		if err != nil {
			t.Fatalf("fill the form: %v", err)
		}
		v.waitJS(`window.__registered === true`)
		ctx := context.Background()
		ds, err := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: "device", Value: device})
		ps, err2 := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: "email", Value: email})
		if err != nil || err2 != nil || ds.ID != ps.ID {
			t.Fatalf("the device was not linked to the person: %v %v", err, err2)
		}
	})
}

// registrationFrame attaches to the registration form's iframe: a page of another site,
// which Chromium runs in a process (and a target) of its own.
//
// It attaches only once the form has loaded (registerPage notes the iframe's load event).
// chromedp (v0.23.0) reads the document of a target it attaches to on the caller's
// goroutine, while the target's own goroutine already handles DOM events, and the two do
// not synchronise: a frame whose DOM still changes during the attach is a data race that
// the race detector reports (once in CI, in the middle of the form's parsing). The form
// changes nothing by itself after its load, so nothing reaches the target's goroutine
// before the first query, which does synchronise.
func (v *visitor) registrationFrame() context.Context {
	v.t.Helper()
	v.waitJS(`window.__formLoaded === true`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		infos, err := chromedp.Targets(v.ctx)
		if err != nil {
			v.t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.Contains(info.URL, "/register?") {
				ctx, cancel := chromedp.NewContext(v.ctx, chromedp.WithTargetID(info.TargetID))
				v.t.Cleanup(cancel)
				ctx, cancelT := context.WithTimeout(ctx, 20*time.Second)
				v.t.Cleanup(cancelT)
				return ctx
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.t.Fatal("the registration form's iframe is not a target of its own")
	return nil
}
