package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAccountEmailLinksKeepTheLanguage: a link in an email opens its page in the language
// the email was written in, even in a browser that states no language preference (a mail
// app's own browser) or prefers another; the tenant's default (Finnish) would be wrong.
func TestAccountEmailLinksKeepTheLanguage(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "stina@esimerkki.fi"
		v := s.customer(t)
		wantPage(t, v.post("/t/"+demoSlug+"/register", form("email", email, "password", goodPW, "lang", "sv")), http.StatusOK)
		m := s.SMTP.WaitFor(t, email, 10*time.Second)
		u, err := url.Parse(mailLinkRe.FindString(m.Text))
		if err != nil || m.Subject != "Bekräfta din e-postadress" {
			t.Fatalf("the Swedish email: %q %v", m.Subject, err)
		}
		for _, pref := range []string{"", "fi-FI,fi;q=0.9"} {
			var h []string
			if pref != "" {
				h = []string{"Accept-Language", pref}
			}
			page := wantPage(t, s.customer(t).get(u.RequestURI(), h...), http.StatusOK)
			if !strings.Contains(page, "<h1>Bekräfta e-postadressen</h1>") {
				t.Fatalf("the link opened with Accept-Language %q is not in Swedish:\n%s", pref, page)
			}
		}
	})
}
