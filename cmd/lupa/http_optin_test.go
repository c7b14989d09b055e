package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
)

// TestHTTPDoubleOptIn: a grant of a double opt-in purpose is pending until the link of the
// confirmation email is followed: its GET only shows a button (mail scanners open links),
// the button's POST confirms, a cross-site POST is refused, and a bad link says so.
func TestHTTPDoubleOptIn(t *testing.T) {
	optInServers(t, func(t *testing.T, s *testServer, smtp *mailtest.Server) {
		writeKey, email, to, r := s.pendingOptIn(t, "optin", "fi")
		if r.Status != http.StatusCreated || !strings.Contains(string(r.Body), `"state":"pending_confirmation"`) {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		m := smtp.WaitFor(t, to, 5*time.Second)
		link := optInLink(m.Text)
		if m.Subject != "Vahvista tilauksesi" || link == "" {
			t.Fatalf("mail %q %q", m.Subject, m.Text)
		}
		page := s.request(http.MethodGet, link, nil)
		if page.Status != http.StatusOK || !strings.Contains(string(page.Body), "Vahvista</button>") || s.optInState(t, writeKey, email) != "pending_confirmation" {
			t.Fatalf("GET confirmed or failed: %d %s", page.Status, s.optInState(t, writeKey, email))
		}
		u, _ := url.Parse(link)
		form := url.Values{"t": {u.Query().Get("t")}, "lang": {"fi"}}.Encode()
		post := func(headers ...string) *response {
			return s.request(http.MethodPost, "/optin", form, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
		}
		if r := post("Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); r.Status != http.StatusForbidden || s.optInState(t, writeKey, email) != "pending_confirmation" {
			t.Fatalf("a cross-site POST: %d %s", r.Status, s.optInState(t, writeKey, email))
		}
		if r := post(); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Tilauksesi on vahvistettu") || s.optInState(t, writeKey, email) != "granted" {
			t.Fatalf("confirm: %d %s %s", r.Status, s.optInState(t, writeKey, email), r.Body)
		}
		if r := post(); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "jo vahvistettu") {
			t.Fatalf("again: %d %s", r.Status, r.Body)
		}
		bad := s.request(http.MethodPost, "/optin", "t=nonsense&lang=sv", "Content-Type", "application/x-www-form-urlencoded")
		if bad.Status != http.StatusUnprocessableEntity || !strings.Contains(string(bad.Body), "Länken är ogiltig") {
			t.Fatalf("a bad link: %d %s", bad.Status, bad.Body)
		}
	})
}

// optInServers runs fn on each server with a local SMTP server for the confirmation mail.
func optInServers(t *testing.T, fn func(t *testing.T, s *testServer, smtp *mailtest.Server)) {
	smtp := mailtest.NewServer(t)
	env := map[string]string{"LUPA_SMTP_URL": "smtp://" + smtp.Addr() + "?tls=none", "LUPA_PUBLIC_URL": "https://lupa.example"}
	eachServer(t, env, func(t *testing.T, s *testServer) { fn(t, s, smtp) })
}

// optInLinkRe finds the confirmation link in an opt-in email: the group is its path and query.
var optInLinkRe = regexp.MustCompile(`https://lupa\.example(/optin\?\S+)`)

// optInLink returns the path and query of the confirmation link in an opt-in email's text,
// or "" when it has none.
func optInLink(text string) string {
	if found := optInLinkRe.FindStringSubmatch(text); found != nil {
		return found[1]
	}
	return ""
}

// optInState returns the current state of marketing_email for the email identifier (as
// pendingOptIn returns them), read with the consent:write key; "" when it has none.
func (s *testServer) optInState(t *testing.T, writeKey string, email map[string]any) string {
	t.Helper()
	r := s.withKey(writeKey, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": email})
	for _, p := range r.Map(t)["state"].([]any) {
		if p.(map[string]any)["purpose"] == "marketing_email" {
			return p.(map[string]any)["state"].(string)
		}
	}
	return ""
}

// pendingOptIn makes marketing_email a double opt-in purpose and grants it, in lang, for a
// new address named after prefix and the test. It returns a consent:write key, the email
// identifier, the address and the recording's answer.
func (s *testServer) pendingOptIn(t *testing.T, prefix, lang string) (writeKey string, email map[string]any, to string, r *response) {
	t.Helper()
	if r := s.admin(http.MethodPatch, "/v1/admin/purposes/marketing_email", map[string]any{"double_opt_in": true}); r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	_, writeKey = s.newKey(t, s.demo.AdminKey, "consent:write")
	to = prefix + "-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:]) + "@esimerkki.fi"
	email = map[string]any{"kind": "email", "value": to}
	r = s.withKey(writeKey, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": email, "method": "checkbox",
		"language": lang, "decisions": []map[string]any{{"purpose": "marketing_email", "version": 1, "decision": "granted"}}})
	return writeKey, email, to, r
}
