package main

import (
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// registrationForm opens the registration widget's form for the web shop in lang and returns
// the fields every POST of it carries.
func (v *customer) registrationForm(lang string) url.Values {
	v.t.Helper()
	pk := v.s.demo.WebShop.PublicKey
	page := string(v.get("/register?property=" + pk + "&lang=" + lang + "&origin=" + url.QueryEscape(v.s.Origin)).Body)
	ui := uiRe.FindStringSubmatch(page)
	if ui == nil {
		v.t.Fatalf("no form:\n%s", page)
	}
	return form("property", pk, "origin", v.s.Origin, "lang", lang, "ui", ui[1], "page", v.s.Origin+"/join")
}

// withForm returns a copy of f with the pairs kv set.
func withForm(f url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range f {
		out[k] = vs
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

// wantFramedPage checks that an answer of the registration widget shows inside its iframe on
// the site: the site's origin may frame it, and nothing forbids all framing.
func wantFramedPage(t *testing.T, r *response, origin string) {
	t.Helper()
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors "+origin) || r.Header.Get("X-Frame-Options") != "" {
		t.Fatalf("the site may not frame the answer: CSP %q, X-Frame-Options %q", csp, r.Header.Get("X-Frame-Options"))
	}
}

// TestRegistrationWidgetThrottledInItsFrame: a client over the form's limits (the emails
// it may make Lupa send, the sign-ins it may start) gets the form again, in the site's
// iframe, saying so in the form's language and keeping what was typed. The limits' own
// pages may not be framed, and the frame went blank.
func TestRegistrationWidgetThrottledInItsFrame(t *testing.T) {
	env := map[string]string{"LUPA_ALLOW_PRIVATE_WEBHOOKS": "true", "LUPA_TRUSTED_PROXIES": "127.0.0.1"}
	eachAccountServer(t, env, func(t *testing.T, s *accountServer) {
		_, provider := s.kauppaID(t)
		for _, c := range []struct {
			name, path, lang, address, text string
		}{
			{"mail", "/register", "fi", "198.51.100.40", "Liian monta yritystä tästä verkosta."},
			{"sign-in", "/register/login/" + provider, "sv", "198.51.100.41", "För många försök från ditt nätverk."},
		} {
			t.Run(c.name, func(t *testing.T) {
				v := s.customer(t, "X-Forwarded-For", c.address)
				f := withForm(v.registrationForm(c.lang), "email", "kiire@esimerkki.fi", "password", "short", "purpose_personalisation", "on")
				for i := 0; i < 60; i++ {
					r := v.post(c.path, f)
					if r.Status != http.StatusTooManyRequests {
						continue
					}
					page := html.UnescapeString(string(r.Body))
					if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || time.Duration(secs)*time.Second > time.Minute {
						t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
					}
					wantFramedPage(t, r, s.Origin)
					if !strings.Contains(page, c.text) || !strings.Contains(page, `value="kiire@esimerkki.fi"`) ||
						!strings.Contains(page, `name="purpose_personalisation" value="on" checked`) {
						t.Fatalf("the 429 is not the form with its message and entries:\n%s", page)
					}
					return
				}
				t.Fatal("60 posts from one address in a moment were never limited")
			})
		}
		if n := s.countAccounts(t); n != 0 {
			t.Fatalf("%d accounts after refused forms", n)
		}
	})
}

// TestRegistrationWidgetSpeaksItsLanguage: what the form says of a refused field is in the
// form's language (the services' messages are English, for the API).
func TestRegistrationWidgetSpeaksItsLanguage(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		s.admin(http.MethodPatch, "/v1/admin/tenant", map[string]any{"age_of_consent": 13})
		v := s.customer(t)
		child := strconv.Itoa(time.Now().Year() - 12)
		for _, c := range []struct {
			lang string
			kv   []string
			want string
		}{
			{"fi", []string{"email", "lapsi@esimerkki.fi", "password", "a fine long password", "birth_year", child, "purpose_marketing_email", "on"},
				"Tätä ei tarjota ikäisellesi."},
			{"sv", []string{"email", "barn@esimerkki.fi", "password", "a fine long password", "birth_year", "nittonhundra"},
				"Skriv födelseåret med fyra siffror."},
			{"fi", []string{"email", "lapsi@esimerkki.fi", "password", "aaaaaaaaaaaaaa", "birth_year", "1990"},
				"Salasana ei voi olla yhtä merkkiä toistettuna."},
			{"en", []string{"email", "child@esimerkki.fi", "password", "short", "birth_year", "1990"},
				"The password must be at least 12 characters long."},
		} {
			r := v.post("/register", withForm(v.registrationForm(c.lang), c.kv...))
			page := html.UnescapeString(string(r.Body))
			if r.Status != http.StatusUnprocessableEntity || !strings.Contains(page, c.want) {
				t.Fatalf("%s %v: %d, want %q in\n%s", c.lang, c.kv, r.Status, c.want, page)
			}
			wantFramedPage(t, r, s.Origin)
		}
		if n := s.countAccounts(t); n != 0 {
			t.Fatalf("%d accounts after refused forms", n)
		}
	})
}
