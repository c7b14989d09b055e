package login

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestGraphErrorKeepsSecrets: when the Graph API cannot be reached, the error — which the
// pages log as the reason a provider is unavailable — names neither the app secret nor the
// code. Facebook takes both in the query of the token exchange's GET, and Go's *url.Error
// quotes the whole URL: an outage at Facebook wrote the app secret to the log.
func TestGraphErrorKeepsSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	graph := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there: every call fails to connect
	s := New(nil, nil, nil, nil, time.Now, Options{Client: &http.Client{Timeout: 5 * time.Second}, FacebookGraphURL: graph})
	const secret, code = "app-secret-0123456789abcdef", "code-from-the-dialog-0123456789"
	_, err = s.facebookIdentity(context.Background(), &providerRow{ClientID: "1234567890", Scopes: `["email"]`}, secret, code,
		"https://lupa.example/t/kauppa/login/lp_1/callback", flowData{Verifier: "verifier-0123456789"})
	if err == nil {
		t.Fatal("a Graph API that cannot be reached answered")
	}
	for _, leaked := range []string{secret, code, "verifier-0123456789"} {
		if strings.Contains(err.Error(), leaked) {
			t.Fatalf("the error names %q: %v", leaked, err)
		}
	}
	if !strings.Contains(err.Error(), "/oauth/access_token") {
		t.Fatalf("the error no longer says which call failed: %v", err)
	}
}
