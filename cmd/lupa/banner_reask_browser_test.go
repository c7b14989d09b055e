package main

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestBrowserReaskInterval: the banner asks again when the server's state would: a refusal
// of a consent purpose not before the purpose's re-ask interval (12 months) has passed, and
// after it; a legitimate-interest purpose neither after any time nor after a material
// version, since the server keeps objections (and the absence of one) until the person
// changes them. Time passes in the visitor's cookie, whose decision times are moved back.
func TestBrowserReaskInterval(t *testing.T) {
	eachShop(t, func(t *testing.T, s *testServer, shop *site) {
		if r := s.admin(http.MethodPost, "/v1/admin/purposes", map[string]any{"key": "site_improvement", "level": "device",
			"legal_basis": "legitimate_interest"}); r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		s.publishVersion(t, "site_improvement", s.draftVersion(t, "site_improvement", true, "Site improvement"))
		url := shop.shop("/", "en")
		refused, accepted := newVisitor(t, shop), newVisitor(t, shop)
		for _, c := range []struct {
			v      *visitor
			action string
		}{{refused, "reject"}, {accepted, "accept"}} {
			c.v.firstVisit(url)
			c.v.click(`#lupa-banner [data-lupa-action="` + c.action + `"]`)
			c.v.waitJS(`!document.querySelector("#lupa-banner")`)
		}
		s.waitDecisions(t, 5) // and the objection, recorded with the refusals (kind objection)

		// banner opens the page again and says whether the first layer is shown. The
		// persistent button comes in the same render, so once it is there the layer would be.
		banner := func(v *visitor) bool {
			t.Helper()
			v.open(url)
			v.waitJS(`document.querySelector("#lupa-open")`)
			return v.has("#lupa-banner")
		}
		// age moves each decision in the cookie back by the months and days given for its
		// purpose (calendar months in UTC, as the server counts them), the others to now.
		age := func(v *visitor, ages map[string][2]int) {
			t.Helper()
			raw, _ := json.Marshal(ages)
			evalJS[bool](v.browser, `(function (ages) {
				var m = document.cookie.match(/(^|; )lupa_consent=([^;]*)/), c = JSON.parse(decodeURIComponent(m[2]));
				Object.keys(c.p).forEach(function (k) {
					var a = ages[k] || [0, 0], d = new Date();
					d.setUTCMonth(d.getUTCMonth() - a[0]);
					d.setUTCDate(d.getUTCDate() - a[1]);
					c.p[k][2] = Math.floor(d / 1e3);
				});
				document.cookie = "lupa_consent=" + encodeURIComponent(JSON.stringify(c)) + "; Path=/; Max-Age=31536000; SameSite=Lax";
				return true;
			})(`+string(raw)+`)`)
		}

		age(refused, map[string][2]int{"analytics": {11, 29}, "social_advertising": {11, 29}, "site_improvement": {11, 29}})
		if banner(refused) {
			t.Fatal("refusals were asked again a day before the re-ask interval passed")
		}
		age(refused, map[string][2]int{"site_improvement": {120, 0}})
		if banner(refused) {
			t.Fatal("an objection to a legitimate interest was asked again after ten years")
		}
		age(refused, map[string][2]int{"analytics": {12, 1}})
		if !banner(refused) {
			t.Fatal("a refusal was not asked again after the re-ask interval passed")
		}

		// A material version of the legitimate interest: the server outdates nothing, so the
		// widget asks nothing.
		s.publishVersion(t, "site_improvement", s.draftVersion(t, "site_improvement", true, "Site improvement and A/B tests"))
		if banner(accepted) {
			t.Fatal("a material version of a legitimate interest brought the banner back")
		}
	})
}
