package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
)

// TestHTTPBannerHasNoReaskInterval: the re-ask interval is the purpose's alone. A banner
// settings request naming reask_months is refused with a field error that says where the
// interval is set, and the settings do not show one.
func TestHTTPBannerHasNoReaskInterval(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		path := "/v1/admin/properties/" + s.demo.WebShop.ID + "/banner"
		p := wantProblem(t, s.admin(http.MethodPut, path, map[string]any{"position": "dialog", "reask_months": 3}), http.StatusUnprocessableEntity, "reask_months")
		if msg, _ := p.field("reask_months"); !strings.Contains(msg, "on the purpose") {
			t.Fatalf("the error does not say where the interval is set: %q", msg)
		}
		got := s.admin(http.MethodGet, path, nil)
		if _, ok := got.Map(t)["reask_months"]; ok || got.Map(t)["position"] != "bar" {
			t.Fatalf("settings after the refused request: %s", got.Body)
		}
	})
}

// TestHTTPNecessaryBasisKeepsBannerMapping is the reproduction of a necessary purpose
// granted as personalisation to every visitor: a consent purpose mapped to
// personalization_storage on the web shop's banner cannot become strictly necessary.
func TestHTTPNecessaryBasisKeepsBannerMapping(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		if r := s.admin(http.MethodPost, "/v1/admin/purposes", map[string]any{"key": "pixels", "level": "device", "legal_basis": "consent"}); r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		banner := "/v1/admin/properties/" + s.demo.WebShop.ID + "/banner"
		settings := s.admin(http.MethodGet, banner, nil).Map(t)
		delete(settings, "property_id")
		delete(settings, "updated_at")
		settings["consent_mode"].(map[string]any)["pixels"] = []string{"personalization_storage"}
		if r := s.admin(http.MethodPut, banner, settings); r.Status != http.StatusOK {
			t.Fatalf("banner: %d %s", r.Status, r.Body)
		}
		p := wantProblem(t, s.admin(http.MethodPatch, "/v1/admin/purposes/pixels", map[string]any{"legal_basis": "necessary"}),
			http.StatusUnprocessableEntity, "legal_basis")
		if msg, _ := p.field("legal_basis"); !strings.Contains(msg, "Demo Market web shop") || !strings.Contains(msg, "personalization_storage") {
			t.Fatalf("the error does not name the property and the mapping: %q", msg)
		}
		s.publishVersion(t, "pixels", s.draftVersion(t, "pixels", true, "Pixels"))
		cfg := s.request(http.MethodGet, "/v1/properties/"+s.demo.WebShop.PublicKey+"/config", nil, "Origin", s.Origin).Map(t)
		for _, n := range cfg["necessary"].([]any) {
			if n.(map[string]any)["key"] == "pixels" {
				t.Fatalf("pixels is listed as strictly necessary: %v", n)
			}
		}
	})
}

// TestHTTPDoubleOptInAfterMaterialVersion: following a confirmation link sent before a
// material version tells the person the text changed and to decide again; nothing is
// granted and the pending grant becomes outdated.
func TestHTTPDoubleOptInAfterMaterialVersion(t *testing.T) {
	optInServers(t, func(t *testing.T, s *testServer, smtp *mailtest.Server) {
		writeKey, email, to, r := s.pendingOptIn(t, "changed", "en")
		if r.Status != http.StatusCreated {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		link := optInLink(smtp.WaitFor(t, to, 5*time.Second).Text)
		if link == "" {
			t.Fatal("no link in the email")
		}
		s.publishVersion(t, "marketing_email", s.draftVersion(t, "marketing_email", true, "Newsletter with partner offers"))

		u, _ := url.Parse(link)
		page := s.request(http.MethodPost, "/optin", url.Values{"t": {u.Query().Get("t")}, "lang": {"en"}}.Encode(),
			"Content-Type", "application/x-www-form-urlencoded")
		if page.Status != http.StatusOK || !strings.Contains(string(page.Body), "has changed since this link was sent") {
			t.Fatalf("confirm: %d %s", page.Status, page.Body)
		}
		st := s.withKey(writeKey, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": email}).Map(t)
		seen := false
		for _, p := range st["state"].([]any) {
			m := p.(map[string]any)
			if m["purpose"] != "marketing_email" {
				continue
			}
			seen = true
			if m["state"] != "outdated" || m["may_use"] != false {
				t.Fatalf("after confirming the replaced text: %v", m)
			}
		}
		if !seen {
			t.Fatalf("marketing_email is missing from the subject's state: %v", st)
		}
	})
}
