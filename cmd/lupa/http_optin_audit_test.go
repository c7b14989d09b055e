package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
)

// TestHTTPOptInAuditPage: the link's page says who asks and for what, in the email's
// language, with one button and a way out; opening it (as mail scanners do, any number of
// times) confirms nothing. A broken link says so at once, without a button; a link already
// used says there is nothing left to confirm; the confirmation tells how to withdraw.
func TestHTTPOptInAuditPage(t *testing.T) {
	optInServers(t, func(t *testing.T, s *testServer, smtp *mailtest.Server) {
		writeKey, email, to, r := s.pendingOptIn(t, "audit", "sv")
		if r.Status != http.StatusCreated {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		m := smtp.WaitFor(t, to, 5*time.Second)
		link := optInLink(m.Text)
		if m.Subject != "Bekräfta din prenumeration" || link == "" {
			t.Fatalf("mail %q %q", m.Subject, m.Text)
		}
		u, _ := url.Parse(link)
		token := u.Query().Get("t")
		for range 3 { // a mail scanner, a link preview, the person
			page := s.request(http.MethodGet, link, nil)
			body := string(page.Body)
			if page.Status != http.StatusOK || !strings.Contains(body, "Bekräfta med knappen att Demo Retail Oy får skicka dig:") ||
				!strings.Contains(body, "<li>") || !strings.Contains(body, "Bekräfta</button>") ||
				!strings.Contains(body, "Om du inte beställde något") {
				t.Fatalf("the link's page: %d %s", page.Status, body)
			}
			if page.Header.Get("Cache-Control") != "no-store" || page.Header.Get("Referrer-Policy") != "no-referrer" ||
				!strings.Contains(page.Header.Get("Content-Security-Policy"), "form-action 'self'") {
				t.Fatalf("headers %v", page.Header)
			}
		}
		if st := s.optInState(t, writeKey, email); st != "pending_confirmation" {
			t.Fatalf("opening the link changed the state: %s", st)
		}
		// Without lang=, the page is in the email's language.
		if page := s.request(http.MethodGet, "/optin?t="+url.QueryEscape(token), nil); !strings.Contains(string(page.Body), `lang="sv"`) {
			t.Fatalf("page language: %s", page.Body)
		}
		for _, bad := range []string{"/optin?lang=fi&t=nonsense", "/optin?lang=fi&t=" + url.QueryEscape(token[:len(token)-4]+"AAAA"), "/optin?lang=fi"} {
			page := s.request(http.MethodGet, bad, nil)
			if page.Status != http.StatusUnprocessableEntity || !strings.Contains(string(page.Body), "Linkki ei kelpaa") ||
				strings.Contains(string(page.Body), "<button") {
				t.Fatalf("GET %s: %d %s", bad, page.Status, page.Body)
			}
		}
		form := url.Values{"t": {token}, "lang": {"sv"}}.Encode()
		done := s.request(http.MethodPost, "/optin", form, "Content-Type", "application/x-www-form-urlencoded")
		if done.Status != http.StatusOK || !strings.Contains(string(done.Body), "Din prenumeration är bekräftad") ||
			!strings.Contains(string(done.Body), "Du kan återkalla ditt samtycke när som helst") || s.optInState(t, writeKey, email) != "granted" {
			t.Fatalf("confirm: %d %s %s", done.Status, s.optInState(t, writeKey, email), done.Body)
		}
		again := s.request(http.MethodGet, link, nil)
		if again.Status != http.StatusOK || !strings.Contains(string(again.Body), "redan bekräftad") || strings.Contains(string(again.Body), "<button") {
			t.Fatalf("the link after use: %d %s", again.Status, again.Body)
		}
	})
}
