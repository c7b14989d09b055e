package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// versionTexts are the texts of a new purpose version in the three demo languages.
func versionTexts(title string) map[string]any {
	t := map[string]any{}
	for _, lang := range []string{"fi", "sv", "en"} {
		t[lang] = map[string]any{"title": title + " " + lang, "description": "What we do, in " + lang + "."}
	}
	return t
}

// draftVersion creates a draft version of a purpose through the admin API and returns its
// number.
func (s *testServer) draftVersion(t testing.TB, purpose string, material bool, title string) int {
	t.Helper()
	r := s.admin(http.MethodPost, "/v1/admin/purposes/"+purpose+"/versions", map[string]any{"material": material, "texts": versionTexts(title)})
	if r.Status != http.StatusCreated {
		t.Fatalf("create version of %s: %d %s", purpose, r.Status, r.Body)
	}
	var v struct {
		Number int    `json:"number"`
		Status string `json:"status"`
	}
	r.JSON(t, &v)
	if v.Status != "draft" || v.Number < 1 {
		t.Fatalf("new version is not a draft: %s", r.Body)
	}
	return v.Number
}

// publishVersion publishes a draft through the admin API.
func (s *testServer) publishVersion(t testing.TB, purpose string, n int) {
	t.Helper()
	r := s.admin(http.MethodPost, "/v1/admin/purposes/"+purpose+"/versions/"+strconv.Itoa(n)+"/publish", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("publish %s v%d: %d %s", purpose, n, r.Status, r.Body)
	}
}

// textHashes returns a published or draft version's text hash per language.
func (s *testServer) textHashes(t testing.TB, purpose string, n int) map[string]string {
	t.Helper()
	r := s.admin(http.MethodGet, "/v1/admin/purposes/"+purpose+"/versions/"+strconv.Itoa(n), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("get version: %d %s", r.Status, r.Body)
	}
	var v struct {
		TextHashes map[string]string `json:"text_hashes"`
	}
	r.JSON(t, &v)
	return v.TextHashes
}

// TestHTTPDecisionRules: decisions the law or the catalog forbids are refused with 422 (409
// for a grant of a replaced version), name the decision at fault, and write nothing.
func TestHTTPDecisionRules(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		device := s.newDevice(t, grantAnalytics())
		onDevice := func(ds ...map[string]any) map[string]any {
			b := banner(ds...)
			b["identifier"] = map[string]any{"kind": "device", "value": device}
			return b
		}
		cust := map[string]any{"kind": "customer_number", "value": "C-77"}
		server := func(method string, ds ...map[string]any) *response {
			t.Helper()
			body := map[string]any{"identifier": cust, "method": method, "decisions": ds}
			if method == "verbal" {
				body["agent"] = "agent-17"
			}
			return s.withKey(write, http.MethodPost, "/v1/subjects/consents", body)
		}
		hashes := s.textHashes(t, "analytics", 1)
		if len(hashes["fi"]) != 64 || hashes["fi"] == hashes["en"] {
			t.Fatalf("version 1 text hashes: %v", hashes)
		}
		draft := s.draftVersion(t, "analytics", true, "Analytics, now with more")
		before := s.ledger(t, s.demo.AdminKey)

		other := sha256.Sum256([]byte("some other text"))
		withHash := func(h string) map[string]any {
			d := decision("analytics", 1, "granted")
			d["text_hash"] = h
			return d
		}
		for _, c := range []struct {
			name  string
			r     func() *response
			field string
		}{
			{"unknown purpose", func() *response { return s.collect(onDevice(decision("no_such_purpose", 1, "granted"))) }, "decisions[0].purpose"},
			{"unpublished version", func() *response { return s.collect(onDevice(decision("analytics", draft, "granted"))) }, "decisions[0].version"},
			{"version that does not exist", func() *response { return s.collect(onDevice(decision("analytics", 99, "granted"))) }, "decisions[0].version"},
			{"grant naming no version", func() *response { return s.collect(onDevice(decision("analytics", 0, "granted"))) }, "decisions[0].version"},
			{"grant of strictly necessary", func() *response { return s.collect(onDevice(decision("necessary", 1, "granted"))) }, "decisions[0].purpose"},
			{"refusal of strictly necessary", func() *response { return s.collect(onDevice(decision("necessary", 1, "denied"))) }, "decisions[0].purpose"},
			{"text hash of another text", func() *response { return s.collect(onDevice(withHash(hex.EncodeToString(other[:])))) }, "decisions[0].text_hash"},
			{"text hash of another language", func() *response { return s.collect(onDevice(withHash(hashes["en"]))) }, "decisions[0].text_hash"},
			{"person-level purpose on the web shop", func() *response { return s.collect(onDevice(decision("marketing_email", 1, "granted"))) }, "decisions[0].purpose"},
			{"person-level purpose from an app", func() *response {
				return s.request(http.MethodPost, "/v1/consents?property="+s.demo.App.PublicKey, banner(decision("personalisation", 1, "granted")))
			}, "decisions[0].purpose"},
			{"objection to a consent purpose", func() *response { return s.collect(onDevice(decision("analytics", 1, "objected"))) }, "decisions[0].decision"},
			{"one bad decision among good ones", func() *response {
				return s.collect(onDevice(decision("social_advertising", 1, "granted"), decision("necessary", 1, "granted")))
			}, "decisions[1].purpose"},
			{"server: import of a draft", func() *response {
				return server("import", decision("marketing_email", 1, "granted"), decision("analytics", draft, "granted"))
			}, "decisions[1].version"},
			{"server: import decided in the future", func() *response {
				return s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": cust,
					"method": "import", "client_time": "2099-01-01T00:00:00Z", "decisions": []any{decision("marketing_email", 1, "granted")}})
			}, "client_time"},
			{"server: verbal grant of an unknown version", func() *response { return server("verbal", decision("marketing_email", 7, "granted")) }, "decisions[0].version"},
			{"server: grant of strictly necessary", func() *response { return server("api", decision("necessary", 1, "granted")) }, "decisions[0].purpose"},
			{"server: objection to a consent purpose", func() *response { return server("api", decision("marketing_email", 1, "objected")) }, "decisions[0].decision"},
		} {
			t.Run(c.name, func(t *testing.T) {
				p := wantProblem(t, c.r(), http.StatusUnprocessableEntity, c.field)
				if !strings.HasSuffix(p.Type, ":unprocessable") {
					t.Fatalf("problem type %q", p.Type)
				}
			})
		}
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused decisions were written: %+v → %+v", before, after)
		}
		if st := s.stateOf(t, device); st["analytics"] != "granted" || st["social_advertising"] != "not_asked" {
			t.Fatalf("refused decisions changed the device's state: %v", st)
		}
		missing := s.withKey(write, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": cust})
		wantProblem(t, missing, http.StatusNotFound)

		// The right text hash is accepted.
		recorded(t, s.collect(onDevice(withHash(hashes["fi"]))))

		// A material version replaces version 1: granting version 1 now conflicts, the old
		// grant is outdated, version 2 can be granted.
		recorded(t, server("api", decision("analytics", 1, "granted")))
		s.publishVersion(t, "analytics", draft)
		if st := s.stateOf(t, device); st["analytics"] != "outdated" {
			t.Fatalf("grant of version 1 after a material version 2: %q, want outdated", st["analytics"])
		}
		before = s.ledger(t, s.demo.AdminKey)
		p := wantProblem(t, s.collect(onDevice(decision("analytics", 1, "granted"))), http.StatusConflict, "decisions[0].version")
		if !strings.HasSuffix(p.Type, ":conflict") {
			t.Fatalf("problem type %q", p.Type)
		}
		wantProblem(t, server("import", decision("analytics", 1, "granted")), http.StatusConflict, "decisions[0].version")
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("conflicting grants were written: %+v → %+v", before, after)
		}
		recorded(t, s.collect(onDevice(decision("analytics", draft, "granted"))))
		if st := s.stateOf(t, device); st["analytics"] != "granted" {
			t.Fatalf("after granting version %d: %v", draft, st)
		}

		// A non-material version (same facts, reworded) keeps the grant of version 2, and
		// version 2 may still be granted.
		typo := s.draftVersion(t, "analytics", false, "Analytics, now with more (typo fixed)")
		s.publishVersion(t, "analytics", typo)
		if st := s.stateOf(t, device); st["analytics"] != "granted" {
			t.Fatalf("a non-material version outdated the grant: %v", st)
		}
		recorded(t, s.collect(banner(decision("analytics", draft, "granted"))))
	})
}

// TestHTTPLegitimateInterest: people can object to a legitimate-interest purpose; the
// objection is recorded and the purpose may no longer be used for them.
func TestHTTPLegitimateInterest(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		r := s.admin(http.MethodPost, "/v1/admin/purposes", map[string]any{"key": "fraud_signals", "level": "device",
			"legal_basis": "legitimate_interest", "reask_months": 12})
		if r.Status != http.StatusCreated {
			t.Fatalf("create purpose: %d %s", r.Status, r.Body)
		}
		s.publishVersion(t, "fraud_signals", s.draftVersion(t, "fraud_signals", true, "Fraud signals"))
		o := recorded(t, s.collect(banner(decision("fraud_signals", 1, "objected"))))
		if st := s.stateOf(t, o.DeviceID); st["fraud_signals"] != "objected" {
			t.Fatalf("state after objection: %v", st)
		}
	})
}
