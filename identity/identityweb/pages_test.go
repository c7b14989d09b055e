package identityweb

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/templates"
)

// TestPageFailures: the errors a person cannot fix become pages with the right status:
// an overloaded hasher 503 and a throttle 429, both with Retry-After; a dead link 422.
// (cmd/lupa's http_accounts_test.go drives the same pages through the real router; an
// overload there depends on the machine's cores, so it is pinned down here.)
func TestPageFailures(t *testing.T) {
	p := &Pages{log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct {
		err        error
		status     int
		retryAfter bool
		text       string
	}{
		{accounts.ErrBusy, http.StatusServiceUnavailable, true, "Palvelu on ruuhkautunut"},
		{fmt.Errorf("sign in: %w", password.ErrBusy), http.StatusServiceUnavailable, true, "Palvelu on ruuhkautunut"},
		{accounts.ErrThrottled, http.StatusTooManyRequests, true, "Liian monta yritystä"},
		{accounts.ErrLink, http.StatusUnprocessableEntity, false, "Linkki ei toimi"},
		{fmt.Errorf("boom"), http.StatusInternalServerError, false, "Jokin meni vikaan"},
	} {
		rec := httptest.NewRecorder()
		ctx, _ := gin.CreateTestContext(rec)
		ctx.Request = httptest.NewRequest(http.MethodPost, "/t/kauppa/signin", nil)
		p.fail(ctx, p.view(ctx, nil, "fi"), c.err)
		if rec.Code != c.status || (rec.Header().Get("Retry-After") != "") != c.retryAfter ||
			!strings.Contains(rec.Body.String(), c.text) || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%v: %d Retry-After %q: %.300s", c.err, rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
		}
	}
}

func TestAcceptLanguage(t *testing.T) {
	for h, want := range map[string]string{
		"":                                 "",
		"fi":                               "fi",
		"fi-FI,fi;q=0.9,en-US;q=0.8":       "fi",
		"en-GB,en;q=0.9,sv;q=0.8":          "en",
		"de-DE,de;q=0.9,sv;q=0.4,en;q=0.3": "sv",
		"sv;q=0,en":                        "en",
		"nb-NO,nb;q=0.9,en;q=0.5":          "sv",
		"de,fr":                            "",
		"*":                                "",
		"fi;q=abc,en;q=0.1":                "en",
		"SV-fi":                            "sv",
	} {
		if got := acceptLanguage(h); got != want {
			t.Errorf("acceptLanguage(%q) = %q, want %q", h, got, want)
		}
	}
}

func TestMailParts(t *testing.T) {
	text := "Hei,\n\nkirjaudu: https://lupa.example/account/signin-link?t=a.b_c-d.\n(http://x.example/y) loppu"
	got := mailParts(text)
	want := []templates.MailPart{
		{Text: "Hei,\n\nkirjaudu: "},
		{Text: "https://lupa.example/account/signin-link?t=a.b_c-d", Href: "https://lupa.example/account/signin-link?t=a.b_c-d"},
		{Text: ".\n("},
		{Text: "http://x.example/y", Href: "http://x.example/y"},
		{Text: ") loppu"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mailParts:\n%q\nwant\n%q", got, want)
	}
	var joined strings.Builder
	for _, p := range got {
		joined.WriteString(p.Text)
	}
	if joined.String() != text {
		t.Fatal("the parts do not add up to the text")
	}
}

func TestCleanForm(t *testing.T) {
	for raw, want := range map[string]bool{
		"email=a%40b.fi&password=pitk%C3%A4+salasana": true,
		"email=a%00b":              false,
		"email=a%09b":              false,
		"email=a%0Db":              false,
		"email=a%7Fb":              false,
		"email=a%C2%9Bb":           false,
		"email=a%FFb":              false,
		"e%01mail=a":               false,
		"email=%C3%A4%F0%9F%98%80": true,
	} {
		f, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := cleanForm(f); got != want {
			t.Errorf("cleanForm(%s) = %v", raw, got)
		}
	}
}
