package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// TestBrowserRefuseLapsedGrant: a grant that a material version has outdated no longer runs
// the purpose's scripts, but what they stored is still on the device. Refusing the purpose
// when asked again deletes it, without a reload (nothing of the purpose ran on this page),
// and leaves the storage of a purpose still granted alone.
func TestBrowserRefuseLapsedGrant(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		url := shop.shop("/", "en")
		v := newVisitor(t, shop)
		v.firstVisit(url)
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		v.waitJS(`(window.ran || []).length >= 4`)
		s.waitDecisions(t, 2)
		s.publishVersion(t, "analytics", s.draftVersion(t, "analytics", true, "Analytics and heatmaps"))

		v.firstVisit(url)
		if c := v.cookie(); !strings.Contains(c, "_demo_analytics=1") || !strings.Contains(c, "_fbp") {
			t.Fatalf("cookies before the new question: %q", c)
		}
		evalJS[bool](v.browser, `window.__old = true`)
		v.settings()
		if evalJS[bool](v.browser, `document.querySelector('#lupa-settings input[data-lupa-purpose-switch="analytics"]').checked`) {
			t.Fatal("the outdated grant is shown as a standing one")
		}
		v.click(`#lupa-settings [data-lupa-action="save"]`)
		got := byPurpose(s.waitDecisions(t, 4)[2:])
		if got["analytics"].Decision != "denied" || got["social_advertising"].Decision != "granted" {
			t.Fatalf("recorded %+v", got)
		}
		v.waitJS(`!/(^|; )_demo_analytics=/.test(document.cookie)`)
		if c := v.cookie(); !strings.Contains(c, "_fbp") {
			t.Fatalf("the refusal deleted a granted purpose's cookie: %q", c)
		}
		if !evalJS[bool](v.browser, `window.__old === true`) {
			t.Fatal("the page reloaded, though no script of the refused purpose ran on it")
		}
	})
}

// TestBrowserGPCSignedInPerson: on a browser with Global Privacy Control, the person-level
// opt-out purposes (here sharing with partners, a sale under CCPA) that a signed-in person
// has not decided are refused by the signal once the site identifies the person, as the
// device-level ones were: recorded as the person's, with the method gpc_signal.
func TestBrowserGPCSignedInPerson(t *testing.T) {
	chromium(t)
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		shop, p := ciamShop(t, s)
		v := newVisitor(t, shop)
		v.gpc()
		page := identifyPage(p.Token("cust-gpc", "lupa"))
		v.open(shop.page("/signed-in", page))
		v.waitJS(`window.__identified === true`)

		person := identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: "cust-gpc"}
		var st *consent.StateView
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			st, err = s.app.consent.SubjectState(context.Background(), s.demo.Tenant.ID, person, nil)
			if err == nil && stateOf(st.State, "partner_sharing") == "denied" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the signal did not refuse sharing with partners for the person: %+v %v", st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, ps := range st.State {
			if ps.Purpose == "partner_sharing" && ps.Method != consent.MethodGPCSignal {
				t.Fatalf("recorded with method %q", ps.Method)
			}
			if ps.Purpose == "marketing_email" && ps.State != consent.StateNotAsked {
				t.Fatalf("the signal decided marketing email, which it does not cover: %+v", ps)
			}
		}
		v.waitBanner()
		v.waitJS(`document.querySelector("#lupa-banner").textContent.indexOf("Sharing with partners") >= 0`)
		if evalJS[bool](v.browser, `lupa.decisions().partner_sharing === "denied" && !document.querySelector('#lupa-banner [data-lupa-action="confirm"]')`) != true {
			t.Fatal("the page does not see the signal's refusal")
		}
	})
}

// TestBrowserForgetQueued: decisions still waiting to be sent when the site calls
// lupa.forget() (the person signed out) go first, as the leaving visitor's; they never make
// the device of whoever uses the browser next.
func TestBrowserForgetQueued(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		url := shop.shop("/", "en")
		v := newVisitor(t, shop)
		v.firstVisit(url)
		shop.down.Store(true)
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		v.waitJS(`!!localStorage.lupa_queue`)
		shop.down.Store(false)
		evalJS[bool](v.browser, `window.__old = true`)
		evalJS[any](v.browser, `lupa.forget()`)
		v.waitJS(`!window.__old && window.__ready === true`)
		v.waitBanner()
		v.click(`#lupa-banner [data-lupa-action="reject"]`)
		s.waitDecisions(t, 4)
		var rows []struct{ SubjectID, Decision string }
		if err := s.app.db.Read.Raw(`SELECT subject_id, decision FROM consent_events WHERE tenant_id = ? AND kind = 'decision'`,
			s.demo.Tenant.ID).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		subjects := map[string]map[string]bool{}
		for _, r := range rows {
			if subjects[r.Decision] == nil {
				subjects[r.Decision] = map[string]bool{}
			}
			subjects[r.Decision][r.SubjectID] = true
		}
		if len(subjects["granted"]) != 1 || len(subjects["denied"]) != 1 {
			t.Fatalf("decisions by subject: %v", subjects)
		}
		for id := range subjects["granted"] {
			if subjects["denied"][id] {
				t.Fatal("the leaving visitor's queued grants made the next visitor's device")
			}
		}
	})
}

// TestBrowserSignedInWithdrawnElsewhere: a signed-in person who withdrew a purpose elsewhere
// (another device, the privacy dashboard, customer service) while this browser still holds
// the grant: once the site identifies the person, the widget cleans up here as after a
// withdrawal made here: the purpose's cookies go and the page reloads, so its scripts stop.
func TestBrowserSignedInWithdrawnElsewhere(t *testing.T) {
	chromium(t)
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		shop, p := ciamShop(t, s)
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "en"))
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		v.waitJS(`(window.ran || []).length >= 4`)
		s.waitDecisions(t, 2)
		v.deviceID()

		page := shop.page("/signed-in", identifyPage(p.Token("cust-w", "lupa")))
		v.open(page)
		v.waitJS(`window.__identified === true`)
		if c := v.cookie(); !strings.Contains(c, "_demo_analytics=1") || !strings.Contains(c, "_fbp") {
			t.Fatalf("identifying the person who granted removed cookies: %q", c)
		}

		// The person withdraws analytics on another channel.
		_, writeKey := s.newKey(t, s.demo.AdminKey, "consent:write")
		r := s.withKey(writeKey, http.MethodPost, "/v1/subjects/consents", map[string]any{
			"identifier": map[string]any{"kind": "idp", "namespace": p.Issuer(), "value": "cust-w"}, "method": "dashboard",
			"decisions": []map[string]any{{"purpose": "analytics", "decision": "withdrawn"}}})
		if r.Status != http.StatusCreated {
			t.Fatalf("withdraw: %d %s", r.Status, r.Body)
		}

		// The page's next view: the widget reloads it once it has the person's state.
		v.do(chromedp.Navigate(page))
		v.waitJS(`window.__identified === true && performance.getEntriesByType("navigation")[0].type === "reload"`)
		if c := v.cookie(); strings.Contains(c, "_demo_analytics") || !strings.Contains(c, "_fbp") {
			t.Fatalf("cookies after the withdrawal elsewhere: %q", c)
		}
		if ran := v.ran(); !slices.Equal(ran, []string{"ads"}) {
			t.Fatalf("after the reload the page ran %v", ran)
		}
		if evalJS[bool](v.browser, `lupa.decisions().analytics === "withdrawn"`) != true {
			t.Fatal("the page does not see the withdrawal")
		}
	})
}

// TestBrowserRefusedGrantNotKept: a grant the server refuses is not kept in the browser. Here
// the browser sends Sec-GPC: 1 without telling its scripts (navigator.globalPrivacyControl is
// not set, as with some extensions), so the server refuses Accept all, which grants a
// purpose the signal opts out of without the confirmation. The widget used to keep the
// grants in its cookie and go on running the purposes' scripts on every page, with no
// consent on record; now the purposes are undecided again and the banner asks.
func TestBrowserRefusedGrantNotKept(t *testing.T) {
	chromium(t)
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		shop := newSite(t, s)
		v := newVisitor(t, shop)
		if _, err := chromedp.Call(v.ctx, network.Enable, network.EnableParams{}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(v.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Sec-GPC": "1"}}); err != nil {
			t.Fatal(err)
		}
		url := shop.shop("/", "en")
		v.firstVisit(url)
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		// The answer has come (the queue is empty) and the grants are gone from the page.
		v.waitJS(`!localStorage.getItem("lupa_queue") && Object.values(lupa.decisions()).indexOf("granted") < 0`)
		if d := s.decisions(t); len(d) != 0 {
			t.Fatalf("the server recorded %v", d)
		}
		v.open(url)
		v.waitBanner()
		if ran := v.ran(); len(ran) != 0 {
			t.Fatalf("the next page ran %v without a recorded consent", ran)
		}
		if c := v.cookie(); strings.Contains(c, "analytics_storage") {
			t.Fatalf("the cookie still grants: %q", c)
		}
	})
}

// TestBrowserFallbackTextsSayTheirLanguage: a purpose with no text in the page's language is
// shown in the property's default one, and its title and description say so (lang), in the
// banner's settings and in the registration form, so that a screen reader reads them in
// their own language (WCAG 3.1.2). The interface's own words stay in the page's language.
func TestBrowserFallbackTextsSayTheirLanguage(t *testing.T) {
	chromium(t)
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		for _, p := range []map[string]any{{"key": "store_wifi", "level": "device"}, {"key": "club_news", "level": "person"}} {
			p["legal_basis"] = "consent"
			if r := s.admin(http.MethodPost, "/v1/admin/purposes", p); r.Status != http.StatusCreated {
				t.Fatalf("create %v: %d %s", p["key"], r.Status, r.Body)
			}
			r := s.admin(http.MethodPost, "/v1/admin/purposes/"+p["key"].(string)+"/versions", map[string]any{"material": true,
				"texts": map[string]any{"fi": map[string]any{"title": "Myymälän Wi-Fi", "description": "Vain suomeksi."}}})
			if r.Status != http.StatusCreated {
				t.Fatalf("version: %d %s", r.Status, r.Body)
			}
			s.publishVersion(t, p["key"].(string), 1)
		}
		shop := newSite(t, s)
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "en"))
		v.settings()
		got := evalJS[[]string](v.browser, `Array.prototype.map.call(document.querySelectorAll("#lupa-settings [lang]"), function (e) { return e.getAttribute("lang") + ":" + e.textContent; })`)
		if !slices.Equal(got, []string{"fi:Myymälän Wi-Fi", "fi:Vain suomeksi."}) {
			t.Fatalf("marked in the settings layer: %q", got)
		}
		// The Finnish text shown to an English visitor is what the grant records; the server
		// once looked for an English text and refused every decision of such a banner.
		v.click(`#lupa-settings [data-lupa-action="accept"]`)
		deadline := time.Now().Add(10 * time.Second)
		for byPurpose(s.decisions(t))["store_wifi"].Decision != "granted" {
			if time.Now().After(deadline) {
				t.Fatalf("the grant of the text shown in Finnish was not recorded: %+v", s.decisions(t))
			}
			time.Sleep(20 * time.Millisecond)
		}
		v.do(chromedp.Navigate(shop.page("/join", strings.Replace(registerPage, `<html lang="fi">`, `<html lang="en">`, 1))))
		frame := v.registrationFrame()
		if err := chromedp.Do(frame, chromedp.WaitVisible(chromedp.CSS(`#email`))); err != nil {
			t.Fatal(err)
		}
		marked, err := chromedp.Run(frame, chromedp.Evaluate[[]string](
			`Array.prototype.map.call(document.querySelectorAll("form [lang]"), function (e) { return e.getAttribute("lang") + ":" + e.textContent.trim(); })`))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(marked, []string{"fi:Myymälän Wi-Fi", "fi:Vain suomeksi."}) {
			t.Fatalf("marked in the registration form: %q", marked)
		}
	})
}
