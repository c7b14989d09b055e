package main

// The banner in real Chromium: a web shop on its own origin embeds the widget from the
// real Lupa, and the tests act as visitors do (clicks, keys, reloads) and check what the
// page ran, what the browser keeps and what the server recorded.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam/ciamtest"
	"github.com/lupa-cmp/lupa/static"
)

// shopPage is a web shop page with the Consent Mode stub, the widget and blocked elements:
// three analytics scripts (one external, served slowly, so order matters), an advertising
// script and iframe, and a fallback that runs when advertising is refused.
const shopPage = `<!DOCTYPE html>
<html lang="{{lang}}"><head><meta charset="utf-8"><title>Shop</title>
<script>{{stub}}</script>
<script>
document.addEventListener("lupa:ready", function (e) { window.__ready = true; window.__readyDetail = e.detail; });
document.addEventListener("lupa:change", function () { window.__changes = (window.__changes || 0) + 1; });
</script>
<script src="{{lupa}}/v1/widget.js" data-property="{{pk}}" async></script>
</head><body>
<h1>Demo Market</h1><a href="#top" id="first-link">Offers</a>
<script type="text/plain" data-lupa-purpose="analytics">(window.ran = window.ran || []).push("a1"); document.cookie = "_demo_analytics=1; path=/; max-age=3600";</script>
<script type="text/plain" data-lupa-purpose="analytics" src="/js/a2.js"></script>
<script type="text/plain" data-lupa-purpose="analytics">(window.ran = window.ran || []).push("a3");</script>
<script type="text/plain" data-lupa-purpose="social_advertising">(window.ran = window.ran || []).push("ads"); document.cookie = "_fbp=fb.1; path=/; max-age=3600";</script>
<script type="text/plain" data-lupa-purpose="!social_advertising">(window.ran = window.ran || []).push("no-ads");</script>
<iframe id="adframe" data-lupa-purpose="social_advertising" data-src="/frame.html" title="ad"></iframe>
</body></html>`

func (s *site) shop(path, lang string) string {
	html := strings.ReplaceAll(shopPage, "{{lang}}", lang)
	html = strings.ReplaceAll(html, "{{stub}}", static.StubJS)
	return s.page(path, html)
}

// visitor is a browser on the shop.
type visitor struct {
	*browser
	site *site
}

func newVisitor(t *testing.T, s *site) *visitor { return &visitor{browser: newBrowser(t), site: s} }

// open loads url and waits for the widget's ready event.
func (v *visitor) open(url string) {
	v.t.Helper()
	v.do(chromedp.Navigate(url))
	v.waitJS(`window.__ready === true`)
}

// firstVisit opens url and waits for the first layer.
func (v *visitor) firstVisit(url string) {
	v.t.Helper()
	v.open(url)
	v.waitBanner()
}

// settings opens the settings layer from the first layer.
func (v *visitor) settings() {
	v.t.Helper()
	v.click(`#lupa-banner [data-lupa-action="settings"]`)
	v.waitJS(`document.querySelector("#lupa-settings")`)
}

// emulateMedia sets a CSS media feature, such as prefers-color-scheme.
func (v *visitor) emulateMedia(name, value string) {
	v.t.Helper()
	v.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: name, Value: value}}})
		return err
	}))
}

func (v *visitor) click(sel string) {
	v.t.Helper()
	v.do(chromedp.Click(chromedp.CSS(sel)))
}

func (v *visitor) has(sel string) bool {
	v.t.Helper()
	return evalJS[bool](v.browser, `!!document.querySelector(`+jsString(sel)+`)`)
}

// waitBanner waits until the first layer is shown (after the widget's stylesheet loads).
func (v *visitor) waitBanner() {
	v.t.Helper()
	v.waitJS(`document.querySelector("#lupa-banner") && document.querySelector("#lupa-banner").offsetHeight > 0`)
}

func (v *visitor) ran() []string {
	v.t.Helper()
	return evalJS[[]string](v.browser, `window.ran || []`)
}

func (v *visitor) cookie() string {
	v.t.Helper()
	return evalJS[string](v.browser, `document.cookie`)
}

// consentUpdate is the newest gtag('consent', 'update', …) in the dataLayer.
func (v *visitor) consentUpdate() map[string]string {
	v.t.Helper()
	return evalJS[map[string]string](v.browser, `(function () {
		var u = Array.prototype.filter.call(window.dataLayer || [], function (a) { return a[0] === "consent" && a[1] === "update"; });
		return u.length ? u[u.length - 1][2] : {};
	})()`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ledgerDecision is a decision as the server's ledger holds it.
type ledgerDecision struct {
	Purpose, Decision, Method, UIHash string
}

func (s *testServer) decisions(t *testing.T) []ledgerDecision {
	t.Helper()
	var rows []struct {
		PurposeKey, Decision, Method, UIHash string
	}
	err := s.app.db.Read.Raw(`SELECT purpose_key, decision, method, ui_hash FROM consent_events
		WHERE tenant_id = ? AND kind = 'decision' ORDER BY server_time, subject_id, seq`, s.demo.Tenant.ID).Scan(&rows).Error
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ledgerDecision, len(rows))
	for i, r := range rows {
		out[i] = ledgerDecision{r.PurposeKey, r.Decision, r.Method, r.UIHash}
	}
	return out
}

// waitDecisions waits until the ledger holds n decisions and returns them.
func (s *testServer) waitDecisions(t *testing.T, n int) []ledgerDecision {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := s.decisions(t)
		if len(d) >= n {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d decisions, want %d: %+v", len(d), n, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func byPurpose(d []ledgerDecision) map[string]ledgerDecision {
	out := map[string]ledgerDecision{}
	for _, r := range d {
		out[r.Purpose] = r
	}
	return out
}

// eachShop runs fn with a Lupa on each database and a shop on its own origin.
func eachShop(t *testing.T, fn func(t *testing.T, s *testServer, shop *site)) {
	chromium(t)
	eachServer(t, nil, func(t *testing.T, s *testServer) { fn(t, s, newSite(t, s)) })
}

// TestBrowserFirstVisitRejectAll: the first layer names the controller, says consent can be
// withdrawn, and offers three equal buttons; Reject all runs no blocked script, is recorded
// with the interface shown, is kept in the cookie, and the banner stays away after.
func TestBrowserFirstVisitRejectAll(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		url := shop.shop("/", "en")
		v := newVisitor(t, shop)
		v.firstVisit(url)
		if got := evalJS[string](v.browser, `document.querySelector("#lupa-t").textContent`); got != "Demo Retail Oy" {
			t.Fatalf("title %q, want the controller", got)
		}
		text := evalJS[string](v.browser, `document.querySelector("#lupa-banner").textContent`)
		if !strings.Contains(text, "at any time") || !strings.Contains(text, "Privacy policy") {
			t.Fatalf("first layer: %q", text)
		}
		// Three buttons of equal size and weight, on the first layer.
		buttons := evalJS[[]string](v.browser, `Array.prototype.map.call(document.querySelectorAll("#lupa-banner button[data-lupa-action]"), function (b) {
			var s = getComputedStyle(b), r = b.getBoundingClientRect();
			return [b.dataset.lupaAction, Math.round(r.width), Math.round(r.height), s.fontWeight, s.fontSize, s.backgroundColor, s.color, s.borderColor].join("|");
		})`)
		if len(buttons) != 3 {
			t.Fatalf("buttons %v", buttons)
		}
		for _, b := range buttons[1:] {
			if b[strings.Index(b, "|"):] != buttons[0][strings.Index(buttons[0], "|"):] {
				t.Fatalf("buttons differ: %v", buttons)
			}
		}
		if ran := v.ran(); len(ran) != 0 {
			t.Fatalf("before any decision the page ran %v", ran)
		}
		if u := v.consentUpdate(); u["analytics_storage"] != "denied" || u["ad_storage"] != "denied" || u["security_storage"] != "granted" {
			t.Fatalf("Consent Mode before a decision: %v", u)
		}

		v.click(`#lupa-banner [data-lupa-action="reject"]`)
		v.waitJS(`!document.querySelector("#lupa-banner")`)
		if ran := v.ran(); !slices.Equal(ran, []string{"no-ads"}) {
			t.Fatalf("after Reject all the page ran %v", ran)
		}
		if !strings.Contains(v.cookie(), "lupa_consent=") {
			t.Fatalf("no consent cookie: %q", v.cookie())
		}
		got := s.waitDecisions(t, 2)
		cfg := s.config("en", "Origin", shop.Origin).Map(t)
		for _, d := range got {
			if d.Decision != "denied" || d.Method != "banner_reject_all" || d.UIHash != cfg["ui_hash"] {
				t.Fatalf("recorded %+v, want refusals with ui_hash %s", d, cfg["ui_hash"])
			}
		}
		if r := s.admin(http.MethodGet, "/v1/admin/interfaces/"+got[0].UIHash, nil); r.Status != http.StatusOK {
			t.Fatalf("the interface shown is not kept: %d %s", r.Status, r.Body)
		}
		v.waitJS(`!localStorage.lupa_queue && (localStorage.lupa_receipt || "").split(".").length === 3`)

		v.open(url)
		time.Sleep(300 * time.Millisecond) // the stylesheet: the banner would show by now
		if v.has("#lupa-banner") || !v.has("#lupa-open") {
			t.Fatal("the banner came back after a decision, or the privacy settings button is missing")
		}
		if ran := v.ran(); !slices.Equal(ran, []string{"no-ads"}) {
			t.Fatalf("on the next page view the page ran %v", ran)
		}
	})
}

// TestBrowserAcceptAll: blocked scripts run in document order, the iframe loads, Consent
// Mode is updated to granted, and the decisions are recorded.
func TestBrowserAcceptAll(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "en"))
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		v.waitJS(`(window.ran || []).length >= 4`)
		time.Sleep(200 * time.Millisecond) // nothing more should run
		if ran := v.ran(); !slices.Equal(ran, []string{"a1", "a2", "a3", "ads"}) {
			t.Fatalf("ran %v, want the analytics scripts in document order, then advertising", ran)
		}
		if src := evalJS[string](v.browser, `document.getElementById("adframe").src`); !strings.HasSuffix(src, "/frame.html") {
			t.Fatalf("iframe src %q", src)
		}
		u := v.consentUpdate()
		for _, k := range []string{"analytics_storage", "ad_storage", "ad_user_data", "ad_personalization", "security_storage"} {
			if u[k] != "granted" {
				t.Fatalf("Consent Mode update %v: %s is not granted", u, k)
			}
		}
		if evalJS[bool](v.browser, `lupa.get("analytics") === true && lupa.decisions().social_advertising === "granted" && window.__changes === 1`) != true {
			t.Fatal("the JavaScript API or the change event does not tell the decision")
		}
		for _, d := range s.waitDecisions(t, 2) {
			if d.Decision != "granted" || d.Method != "banner_accept_all" {
				t.Fatalf("recorded %+v", d)
			}
		}
	})
}

// TestBrowserSettingsOnePurpose: the settings layer starts with every switch off, lists
// strictly necessary storage without a switch, and saving one purpose runs only its
// scripts.
func TestBrowserSettingsOnePurpose(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "en"))
		v.settings()
		switches := evalJS[map[string]bool](v.browser, `(function () { var o = {};
			document.querySelectorAll("#lupa-settings input[data-lupa-purpose-switch]").forEach(function (i) { o[i.dataset.lupaPurposeSwitch] = i.checked; });
			return o; })()`)
		if len(switches) != 2 || switches["analytics"] || switches["social_advertising"] {
			t.Fatalf("switches %v: one per asked purpose, none pre-ticked", switches)
		}
		dialog := evalJS[string](v.browser, `document.querySelector("#lupa-settings").textContent`)
		for _, want := range []string{"Strictly necessary", "Always active", "_demo_analytics", "13 months", "Meta Platforms Ireland Ltd"} {
			if !strings.Contains(dialog, want) {
				t.Fatalf("the settings layer lacks %q: %s", want, dialog)
			}
		}
		v.click(`#lupa-settings input[data-lupa-purpose-switch="analytics"]`)
		v.click(`#lupa-settings [data-lupa-action="save"]`)
		v.waitJS(`(window.ran || []).length >= 4`)
		time.Sleep(200 * time.Millisecond)
		if ran := v.ran(); !slices.Equal(ran, []string{"a1", "a2", "a3", "no-ads"}) {
			t.Fatalf("ran %v", ran)
		}
		got := byPurpose(s.waitDecisions(t, 2))
		if got["analytics"].Decision != "granted" || got["social_advertising"].Decision != "denied" || got["analytics"].Method != "banner_custom" {
			t.Fatalf("recorded %+v", got)
		}
	})
}

// TestBrowserWithdraw: withdrawing from the persistent control records it, deletes the
// purpose's cookies, updates Consent Mode and reloads so running scripts stop.
func TestBrowserWithdraw(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "en"))
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		v.waitJS(`(window.ran || []).length >= 4`)
		s.waitDecisions(t, 2)
		if !strings.Contains(v.cookie(), "_demo_analytics=1") {
			t.Fatalf("the analytics script set no cookie: %q", v.cookie())
		}
		v.click(`#lupa-open`)
		v.waitJS(`document.querySelector("#lupa-settings")`)
		if !evalJS[bool](v.browser, `document.querySelector('#lupa-settings input[data-lupa-purpose-switch="analytics"]').checked`) {
			t.Fatal("the settings layer does not show the current grant")
		}
		evalJS[bool](v.browser, `window.__old = true`)
		v.click(`#lupa-settings input[data-lupa-purpose-switch="analytics"]`)
		v.click(`#lupa-settings [data-lupa-action="save"]`)
		v.waitJS(`!window.__old && window.__ready === true`) // the page reloaded
		if c := v.cookie(); strings.Contains(c, "_demo_analytics") || !strings.Contains(c, "_fbp") {
			t.Fatalf("cookies after withdrawing analytics: %q", c)
		}
		if ran := v.ran(); !slices.Equal(ran, []string{"ads"}) {
			t.Fatalf("after the reload the page ran %v", ran)
		}
		if u := v.consentUpdate(); u["analytics_storage"] != "denied" || u["ad_storage"] != "granted" {
			t.Fatalf("Consent Mode after withdrawal: %v", u)
		}
		got := s.waitDecisions(t, 4)
		if last := got[len(got)-2:]; byPurpose(last)["analytics"].Decision != "withdrawn" {
			t.Fatalf("recorded %+v", got)
		}
	})
}

// TestBrowserMaterialVersion: a material version brings the banner back to those who
// granted, not to those who refused; a non-material one brings it back to nobody.
func TestBrowserMaterialVersion(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		url := shop.shop("/", "en")
		granted, refused := newVisitor(t, shop), newVisitor(t, shop)
		for _, c := range []struct {
			v      *visitor
			action string
		}{{granted, "accept"}, {refused, "reject"}} {
			c.v.firstVisit(url)
			c.v.click(`#lupa-banner [data-lupa-action="` + c.action + `"]`)
			c.v.waitJS(`!document.querySelector("#lupa-banner")`)
		}
		s.waitDecisions(t, 4)
		banner := func(v *visitor) bool {
			v.open(url)
			time.Sleep(300 * time.Millisecond)
			return v.has("#lupa-banner")
		}
		// A typo fixed: the same facts as version 1, so not material.
		typo := s.admin(http.MethodPost, "/v1/admin/purposes/analytics/versions", map[string]any{"material": false,
			"texts": versionTexts("Analytics (typo fixed)"), "details": map[string]any{
				"data_categories": []string{"pages visited", "device type"}, "retention": "14 months."}})
		if typo.Status != http.StatusCreated {
			t.Fatalf("draft: %d %s", typo.Status, typo.Body)
		}
		s.publishVersion(t, "analytics", 2)
		if banner(granted) || banner(refused) {
			t.Fatal("a non-material version brought the banner back")
		}
		s.publishVersion(t, "analytics", s.draftVersion(t, "analytics", true, "Analytics and heatmaps"))
		if !banner(granted) {
			t.Fatal("a material version did not bring the banner back to a visitor who granted")
		}
		if banner(refused) {
			t.Fatal("a material version brought the banner back to a visitor who refused")
		}
	})
}

// TestBrowserGlobalPrivacyControl: with GPC on, the marked purposes are refused before the
// page hears anything, recorded as gpc_signal; the banner says so, and Accept all asks for
// one more confirmation naming them.
func TestBrowserGlobalPrivacyControl(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		v := newVisitor(t, shop)
		v.gpc()
		v.open(shop.shop("/", "en"))
		if d := evalJS[map[string]string](v.browser, `window.__readyDetail`); d["social_advertising"] != "denied" {
			t.Fatalf("the ready event saw %v before the signal was applied", d)
		}
		got := s.waitDecisions(t, 1)
		if len(got) != 1 || got[0] != (ledgerDecision{"social_advertising", "denied", "gpc_signal", got[0].UIHash}) {
			t.Fatalf("recorded %+v", got)
		}
		v.waitBanner()
		if note := evalJS[string](v.browser, `document.querySelector("#lupa-banner").textContent`); !strings.Contains(note, "Global Privacy Control") {
			t.Fatalf("the banner does not say the signal was honoured: %q", note)
		}
		if ran := v.ran(); !slices.Equal(ran, []string{"no-ads"}) {
			t.Fatalf("ran %v", ran)
		}
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		v.waitJS(`document.querySelector('[data-lupa-action="confirm"]')`)
		ask := evalJS[string](v.browser, `document.querySelector('[data-lupa-action="confirm"]').parentNode.parentNode.textContent`)
		if !strings.Contains(ask, "Advertising on social media") {
			t.Fatalf("the confirmation does not name the purpose: %q", ask)
		}
		time.Sleep(200 * time.Millisecond)
		if n := len(s.decisions(t)); n != 1 {
			t.Fatalf("Accept all decided before the confirmation: %d decisions", n)
		}
		v.click(`[data-lupa-action="confirm"]`)
		got = s.waitDecisions(t, 3)
		last := byPurpose(got[1:])
		if last["social_advertising"].Decision != "granted" || last["analytics"].Decision != "granted" || last["analytics"].Method != "banner_accept_all" {
			t.Fatalf("recorded %+v", got)
		}
	})
}

// TestBrowserKeyboard: Tab reaches the three buttons in order with a visible focus ring,
// Enter opens the settings layer, focus stays inside it, Escape closes it without deciding
// and returns focus; a refusal by keyboard is recorded.
func TestBrowserKeyboard(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "en"))
		focused := func() string {
			return evalJS[string](v.browser, `(function (e) { return e ? (e.dataset && e.dataset.lupaAction) || e.id || e.tagName : ""; })(document.activeElement)`)
		}
		var seen []string
		for i := 0; i < 8 && focused() != "accept"; i++ {
			v.do(chromedp.KeyEvent(kb.Tab))
			seen = append(seen, focused())
		}
		if focused() != "accept" {
			t.Fatalf("Tab never reached Accept all: %v", seen)
		}
		if ring := evalJS[string](v.browser, `getComputedStyle(document.activeElement).outlineStyle`); ring == "none" || ring == "" {
			t.Fatal("no visible focus ring")
		}
		v.do(chromedp.KeyEvent(kb.Tab))
		reject := focused()
		v.do(chromedp.KeyEvent(kb.Tab))
		if reject != "reject" || focused() != "settings" {
			t.Fatalf("tab order: accept, %s, %s", reject, focused())
		}
		v.do(chromedp.KeyEvent(kb.Enter))
		v.waitJS(`document.querySelector("#lupa-settings")`)
		for i := 0; i < 12; i++ {
			if !evalJS[bool](v.browser, `document.querySelector("#lupa-settings").contains(document.activeElement)`) {
				t.Fatalf("focus left the settings layer after %d Tabs", i)
			}
			v.do(chromedp.KeyEvent(kb.Tab))
		}
		v.do(chromedp.KeyEvent(kb.Escape))
		v.waitJS(`!document.querySelector("#lupa-settings")`)
		if focused() != "settings" || !v.has("#lupa-banner") {
			t.Fatalf("after Escape focus is on %q", focused())
		}
		time.Sleep(200 * time.Millisecond)
		if n := len(s.decisions(t)); n != 0 {
			t.Fatalf("Escape decided: %d decisions", n)
		}
		v.do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
		v.do(chromedp.KeyEvent(kb.Enter))
		for _, d := range s.waitDecisions(t, 2) {
			if d.Method != "banner_reject_all" {
				t.Fatalf("recorded %+v", d)
			}
		}
	})
}

// TestBrowserLanguages: pages in Finnish and Swedish get the banner in their language.
func TestBrowserLanguages(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		// A language the tenant adds with its own interface strings.
		s.admin(http.MethodPut, "/v1/admin/properties/"+s.demo.WebShop.ID+"/banner", map[string]any{
			"languages": []string{"fi", "sv", "en", "de"}, "strings": map[string]any{"de": map[string]string{"accept": "Alle akzeptieren"}}})
		v := newVisitor(t, shop)
		for _, c := range []struct{ lang, accept, purpose string }{
			{"fi", "Hyväksy kaikki", "Analytiikka"}, {"sv", "Godkänn alla", "Analys"}, {"de", "Alle akzeptieren", "Analytiikka"},
		} {
			v.firstVisit(shop.shop("/"+c.lang, c.lang))
			v.settings()
			got := evalJS[[]string](v.browser, `[document.querySelector('#lupa-banner [data-lupa-action="accept"]').textContent,
				document.querySelector("#lupa-settings").textContent, document.getElementById("lupa").lang]`)
			if got[0] != c.accept || !strings.Contains(got[1], c.purpose) || got[2] != c.lang {
				t.Fatalf("%s page: %q", c.lang, got)
			}
		}
	})
}

// TestBrowserServerDown: a decision made while Lupa cannot be reached applies at once and
// reaches the server on a later page view.
func TestBrowserServerDown(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		url := shop.shop("/", "en")
		v := newVisitor(t, shop)
		v.firstVisit(url)
		shop.down.Store(true)
		v.click(`#lupa-banner [data-lupa-action="reject"]`)
		v.waitJS(`!document.querySelector("#lupa-banner")`)
		if ran := v.ran(); !slices.Equal(ran, []string{"no-ads"}) || !strings.Contains(v.cookie(), "lupa_consent=") {
			t.Fatalf("the choice did not apply at once: ran %v, cookie %q", ran, v.cookie())
		}
		v.waitJS(`!!localStorage.lupa_queue`)
		time.Sleep(200 * time.Millisecond)
		if n := len(s.decisions(t)); n != 0 {
			t.Fatalf("%d decisions reached a server that was down", n)
		}
		shop.down.Store(false)
		v.open(url)
		for _, d := range s.waitDecisions(t, 2) {
			if d.Method != "banner_reject_all" || d.Decision != "denied" {
				t.Fatalf("recorded %+v", d)
			}
		}
		v.waitJS(`!localStorage.lupa_queue`)
	})
}

// TestBrowserUnknownPropertyOrOrigin: the widget shows nothing and warns in the console;
// the server answers problem+json.
func TestBrowserUnknownPropertyOrOrigin(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		unknown := shop.page("/unknown", strings.ReplaceAll(strings.ReplaceAll(shopPage, "{{pk}}", "pk_no_such_property"), "{{stub}}", ""))
		v := newVisitor(t, shop)
		for _, c := range []struct{ url, warning string }{
			{unknown, "is unknown (404)"},
			// The shop's page on another origin (127.0.0.1 rather than localhost): not allowed.
			{strings.Replace(shop.shop("/", "en"), shop.Origin, shop.URL, 1), "does not allow this origin"},
		} {
			v.do(chromedp.Navigate(c.url))
			deadline := time.Now().Add(10 * time.Second)
			for !slices.ContainsFunc(v.consoleLines(), func(l string) bool { return strings.Contains(l, c.warning) }) {
				if time.Now().After(deadline) {
					t.Fatalf("no console warning %q: %v", c.warning, v.consoleLines())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if v.has("#lupa") || len(v.ran()) != 0 {
				t.Fatal("the widget showed something or ran scripts")
			}
		}
		wantProblem(t, s.request(http.MethodGet, "/v1/properties/pk_no_such_property/config", nil, "Origin", shop.Origin), http.StatusNotFound)
		wantProblem(t, s.request(http.MethodGet, "/v1/properties/"+s.demo.WebShop.PublicKey+"/config", nil, "Origin", shop.URL), http.StatusForbidden)
	})
}

// TestBrowserAccessibility: the settings layer is a labelled modal dialog; text keeps a
// contrast of 4.5:1 in the light and the dark theme; the banner fits 320 px.
func TestBrowserAccessibility(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		v := newVisitor(t, shop)
		url := shop.shop("/", "en")
		for _, scheme := range []string{"light", "dark"} {
			v.emulateMedia("prefers-color-scheme", scheme)
			v.firstVisit(url)
			v.settings()
			if low := evalJS[[]string](v.browser, contrastJS); len(low) > 0 {
				t.Fatalf("%s theme: text below 4.5:1: %v", scheme, low)
			}
			attrs := evalJS[[]string](v.browser, `(function (d) { return [d.getAttribute("role"), d.getAttribute("aria-modal"),
				document.getElementById(d.getAttribute("aria-labelledby")).textContent]; })(document.querySelector("#lupa-settings"))`)
			if attrs[0] != "dialog" || attrs[1] != "true" || attrs[2] == "" {
				t.Fatalf("settings layer: %v", attrs)
			}
		}
		// Reduced motion: the banner appears without its animation.
		v.emulateMedia("prefers-reduced-motion", "reduce")
		v.firstVisit(url)
		if anim := evalJS[string](v.browser, `getComputedStyle(document.querySelector("#lupa-banner")).animationName`); anim != "none" {
			t.Fatalf("with reduced motion the banner still animates: %s", anim)
		}
		v.do(chromedp.EmulateViewport(320, 640))
		v.firstVisit(url)
		fits := evalJS[bool](v.browser, `document.documentElement.scrollWidth <= 320 &&
			Array.prototype.every.call(document.querySelectorAll("#lupa-banner button"), function (b) {
				var r = b.getBoundingClientRect(); return r.left >= 0 && r.right <= 320 && r.width > 0; })`)
		if !fits {
			t.Fatal("the banner does not fit 320 px")
		}
	})
}

// contrastJS lists the banner's and the settings layer's text elements whose contrast with
// the background behind them is below 4.5:1 (WCAG 2.2, 1.4.3).
const contrastJS = `(function () {
	function rgb(c) { var m = c.match(/[\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; }
	function lum(c) { return [c.r, c.g, c.b].map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
		.reduce(function (s, v, i) { return s + v * [0.2126, 0.7152, 0.0722][i]; }, 0); }
	function bg(e) { for (; e; e = e.parentElement) { var c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0.5) return c; } return {r: 255, g: 255, b: 255}; }
	var low = [];
	document.querySelectorAll("#lupa-banner *, #lupa-settings *").forEach(function (e) {
		var own = Array.prototype.some.call(e.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
		if (!own || !e.offsetParent) return;
		var a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
		var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
		if (ratio < 4.5) low.push(e.tagName + " " + e.textContent.trim().slice(0, 30) + " " + ratio.toFixed(2));
	});
	return low;
})()`

// TestBrowserDemoShop: the demo page Lupa serves shows the banner in Finnish under its own
// strict Content-Security-Policy, and its sample scripts run once allowed.
func TestBrowserDemoShop(t *testing.T) {
	chromium(t)
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		origins := append(s.demo.WebShop.AllowedOrigins, s.URL)
		if _, err := s.app.ids.UpdateProperty(context.Background(), s.demo.Tenant.ID, s.demo.WebShop.ID,
			identity.PropertyPatch{AllowedOrigins: &origins}, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		b := newBrowser(t)
		if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `document.addEventListener("securitypolicyviolation", function (e) {
				(window.__csp = window.__csp || []).push(e.violatedDirective + " " + e.blockedURI); });`}); err != nil {
			t.Fatal(err)
		}
		b.do(chromedp.Navigate(s.URL + "/demo/fi"))
		b.waitJS(`document.querySelector("#lupa-banner") && document.querySelector("#lupa-banner").offsetHeight > 0`)
		if got := evalJS[string](b, `document.querySelector('#lupa-banner [data-lupa-action="accept"]').textContent`); got != "Hyväksy kaikki" {
			t.Fatalf("accept button %q", got)
		}
		if on := evalJS[string](b, `document.getElementById("analytics-status").className`); on != "status" {
			t.Fatalf("analytics ran before consent: %q", on)
		}
		b.do(chromedp.Click(chromedp.CSS(`#lupa-banner [data-lupa-action="accept"]`)))
		b.waitJS(`document.getElementById("analytics-status").className === "status on" && document.getElementById("ads-status").className === "status on"`)
		s.waitDecisions(t, 2)
		if v := evalJS[[]string](b, `window.__csp || []`); len(v) > 0 {
			t.Fatalf("the demo breaks its own Content-Security-Policy: %v", v)
		}
		for _, l := range b.consoleLines() {
			if strings.Contains(l, "Lupa:") {
				t.Fatalf("console: %s", l)
			}
		}
	})
}

// TestBrowserOwnLink: with the control hidden, the site's own link opens the settings with
// lupa.open(), and a change there is recorded like any other.
func TestBrowserOwnLink(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		s.admin(http.MethodPut, "/v1/admin/properties/"+s.demo.WebShop.ID+"/banner", map[string]any{"control": "hidden"})
		url := shop.page("/own", strings.Replace(strings.ReplaceAll(strings.ReplaceAll(shopPage, "{{lang}}", "en"), "{{stub}}", ""),
			`<h1>Demo Market</h1>`, `<h1>Demo Market</h1><button id="own-link" type="button">Cookie settings</button>
<script>document.getElementById("own-link").addEventListener("click", function () { lupa.open(); });</script>`, 1))
		v := newVisitor(t, shop)
		v.firstVisit(url)
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		s.waitDecisions(t, 2)
		v.open(url)
		time.Sleep(300 * time.Millisecond)
		if v.has("#lupa-open") || v.has("#lupa-banner") {
			t.Fatal("a hidden control is shown, or the banner came back")
		}
		v.click("#own-link")
		v.waitJS(`document.querySelector("#lupa-settings")`)
		v.click(`#lupa-settings [data-lupa-action="reject"]`)
		got := s.waitDecisions(t, 4)
		if last := byPurpose(got[2:]); last["analytics"].Decision != "withdrawn" || last["analytics"].Method != "banner_reject_all" {
			t.Fatalf("recorded %+v", got)
		}
	})
}

// TestBrowserForget: after lupa.forget() (the person signed out on the site) the banner asks
// again, and the next decision makes a new anonymous device.
func TestBrowserForget(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		v := newVisitor(t, shop)
		url := shop.shop("/", "en")
		v.firstVisit(url)
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		s.waitDecisions(t, 2)
		first := v.deviceID()
		evalJS[bool](v.browser, `window.__old = true`)
		evalJS[any](v.browser, `lupa.forget()`)
		v.waitJS(`!window.__old && window.__ready === true`)
		v.waitBanner()
		v.click(`#lupa-banner [data-lupa-action="reject"]`)
		s.waitDecisions(t, 4)
		if second := v.deviceID(); second == "" || second == first {
			t.Fatalf("the device after forget: %q (before %q)", second, first)
		}
	})
}

// deviceID waits until the consent cookie names the browser's device, and returns it.
func (v *visitor) deviceID() string {
	v.t.Helper()
	const id = `JSON.parse(decodeURIComponent(document.cookie.match(/lupa_consent=([^;]*)/)[1])).id`
	v.waitJS(id)
	return evalJS[string](v.browser, id)
}

// ciamShop is the web shop with a mock CIAM configured as one of the tenant's issuers, whose
// tokens the shop's pages hand the widget (identifyPage).
func ciamShop(t *testing.T, s *testServer) (*site, *ciamtest.Provider) {
	t.Helper()
	shop := newSite(t, s)
	p := ciamtest.New(t)
	s.newIssuer(t, s.demo.AdminKey, p, nil)
	return shop, p
}

// identifyPage is the shop's page in English that hands the widget a customer's CIAM token
// once it is ready (lupa.identify), and sets window.__identified when the widget has the
// person's state.
func identifyPage(token string) string {
	return strings.Replace(strings.ReplaceAll(strings.ReplaceAll(shopPage, "{{lang}}", "en"), "{{stub}}", ""),
		`</body>`, `<script>document.addEventListener("lupa:ready", function () { lupa.identify("`+token+
			`").then(function () { window.__identified = true; }); });</script></body>`, 1)
}

// TestBrowserSignedInPerson: a site that signs its customer in hands the widget the CIAM
// token (lupa.identify): the anonymous device joins the person, and the banner asks the
// person-level purposes the person has not decided; the answers are the person's.
func TestBrowserSignedInPerson(t *testing.T) {
	chromium(t)
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		shop, p := ciamShop(t, s)
		v := newVisitor(t, shop)
		v.firstVisit(shop.shop("/", "en"))
		v.click(`#lupa-banner [data-lupa-action="accept"]`)
		s.waitDecisions(t, 2)
		device := v.deviceID()

		// Signed in on the site: the page identifies the customer.
		page := identifyPage(p.Token("cust-1", "lupa"))
		// Count the widget's reads of the person's state: identify in the ready handler asks
		// once; a second read would re-render the banner under the visitor's pointer.
		page = strings.Replace(page, `<head>`, `<head><script>(function (f) { window.__personReads = 0; window.fetch = function (u, o) {
			if (String(u).indexOf("/v1/consents?") >= 0 && o && o.headers && o.headers.Authorization) window.__personReads++;
			return f.apply(this, arguments); }; })(window.fetch);</script>`, 1)
		v.open(shop.page("/signed-in", page))
		// identify re-renders the banner when the person's state arrives: wait for that, so
		// that the clicks below do not land on the banner it replaces.
		v.waitJS(`window.__identified === true`)
		v.waitBanner()
		v.waitJS(`document.querySelector("#lupa-banner") && document.querySelector("#lupa-banner").textContent.length > 0`)
		v.settings()
		switches := evalJS[[]string](v.browser, `Array.prototype.map.call(document.querySelectorAll("#lupa-settings input[data-lupa-purpose-switch]"), function (i) { return i.dataset.lupaPurposeSwitch; })`)
		if !slices.Contains(switches, "marketing_email") || !slices.Contains(switches, "analytics") {
			t.Fatalf("the signed-in banner asks %v, want the person-level purposes too", switches)
		}
		// By the time the banner is shown the widget has made every read it was going to.
		if n := evalJS[int](v.browser, `window.__personReads`); n != 1 {
			t.Fatalf("the widget read the signed-in person's state %d times, want once", n)
		}
		v.click(`#lupa-settings [data-lupa-action="reject"]`)
		ctx := context.Background()
		person := identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: "cust-1"}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := s.app.consent.SubjectState(ctx, s.demo.Tenant.ID, person, nil)
			if err == nil && stateOf(st.State, "marketing_email") == "denied" {
				if stateOf(st.State, "analytics") != "withdrawn" {
					t.Fatalf("the device's grant did not join the person, or the refusal missed it: %+v", st.State)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the person's refusal never arrived: %+v %v", st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		ds, _ := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: identity.IDDevice, Value: device})
		ps, _ := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, person)
		if ds == nil || ps == nil || ds.ID != ps.ID {
			t.Fatal("the device did not join the signed-in person")
		}
	})
}

func stateOf(states []consent.PurposeState, purpose string) string {
	for _, st := range states {
		if st.Purpose == purpose {
			return st.State
		}
	}
	return ""
}
