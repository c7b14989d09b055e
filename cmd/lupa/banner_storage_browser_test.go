package main

import (
	"net/http"
	"slices"
	"testing"
)

// TestBrowserWithdrawSessionStorage: a purpose's sessionStorage items are listed in the
// settings layer under their kind's name in the visitor's language, and withdrawing the
// purpose deletes them as it deletes the purpose's cookies: exact names, and names ending
// in "*" by prefix. What the inventory does not list stays, also a localStorage key that
// shares a listed sessionStorage item's name.
func TestBrowserWithdrawSessionStorage(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		// The demo's analytics inventory (a PUT replaces it whole), plus two sessionStorage items.
		r := s.admin(http.MethodPut, "/v1/admin/purposes/analytics/inventory", map[string]any{
			"vendors": []map[string]any{{"name": "Demo Analytics", "legal_name": "Demo Analytics Oy", "country": "FI",
				"privacy_policy_url": "https://demo-analytics.example/privacy"}},
			"storage": []map[string]any{
				{"name": "_demo_analytics", "kind": "cookie", "max_age_days": 395},
				{"name": "_demo_session", "kind": "session_storage"},
				{"name": "_demo_hit_*", "kind": "session_storage"},
			}})
		if r.Status != http.StatusOK {
			t.Fatalf("PUT inventory: %d %s", r.Status, r.Body)
		}

		v := newVisitor(t, shop)
		// The item's line is "name – kind, duration"; a session item lasts the session.
		for _, c := range []struct{ lang, kind, session string }{
			{"fi", "selaimen istuntokohtainen tallennustila", "istunto"},
			{"sv", "webbläsarens sessionslagring", "session"},
			{"en", "session storage", "session"},
		} {
			v.firstVisit(shop.shop("/"+c.lang, c.lang))
			v.settings()
			items := evalJS[[]string](v.browser, `Array.from(document.querySelectorAll("#lupa-settings li"), li => li.textContent)`)
			for _, name := range []string{"_demo_session", "_demo_hit_*"} {
				if want := name + " – " + c.kind + ", " + c.session; !slices.Contains(items, want) {
					t.Fatalf("%s: the settings layer lacks %q: %q", c.lang, want, items)
				}
			}
		}

		// Still on the English page's settings layer: grant everything, then let analytics
		// store its items (and the page some of its own).
		v.click(`#lupa-settings [data-lupa-action="accept"]`)
		v.waitJS(`(window.ran || []).length >= 4`)
		s.waitDecisions(t, 2)
		evalJS[bool](v.browser, `(function () {
			sessionStorage.setItem("_demo_session", "1");
			sessionStorage.setItem("_demo_hit_1", "1");
			sessionStorage.setItem("_demo_hit_2", "1");
			sessionStorage.setItem("_demo_hits", "kept: no prefix match");
			sessionStorage.setItem("basket_draft", "kept: not listed");
			localStorage.setItem("_demo_session", "kept: not sessionStorage");
			return true; })()`)

		v.click(`#lupa-open`)
		v.waitJS(`document.querySelector("#lupa-settings")`)
		evalJS[bool](v.browser, `window.__old = true`)
		v.click(`#lupa-settings input[data-lupa-purpose-switch="analytics"]`)
		v.click(`#lupa-settings [data-lupa-action="save"]`)
		v.waitJS(`!window.__old && window.__ready === true`) // the page reloaded; sessionStorage lives on in the tab

		got := evalJS[map[string]bool](v.browser, `(function () { var o = {};
			["_demo_session", "_demo_hit_1", "_demo_hit_2", "_demo_hits", "basket_draft"].forEach(function (k) { o[k] = sessionStorage.getItem(k) !== null; });
			o["localStorage._demo_session"] = localStorage.getItem("_demo_session") !== null;
			return o; })()`)
		want := map[string]bool{"_demo_session": false, "_demo_hit_1": false, "_demo_hit_2": false,
			"_demo_hits": true, "basket_draft": true, "localStorage._demo_session": true}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("after withdrawing analytics, %s present = %v, want %v", k, got[k], w)
			}
		}
		if d := s.waitDecisions(t, 4); byPurpose(d[len(d)-2:])["analytics"].Decision != "withdrawn" {
			t.Fatalf("recorded %+v", d)
		}
	})
}
