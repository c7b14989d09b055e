package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestHTTPHeadOnEveryGetRoute: HEAD works wherever GET does (RFC 9110, section 9.3.2): on
// every GET route of the router, HEAD answers GET's status and headers, and no body. A
// path without GET still refuses HEAD (405, or 404 when unknown), and a 405 lists HEAD in
// Allow wherever it lists GET.
func TestHTTPHeadOnEveryGetRoute(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		device := s.newDevice(t, grantAnalytics())
		// Values for the routes' parameters: real ones where the demo has them, so that many
		// answers are 200s, and anything else where a 404 is as good a comparison.
		param := map[string]string{":pk": s.demo.WebShop.PublicKey, ":slug": s.demo.Tenant.Slug, ":lang": "sv",
			":file": "widget.js", ":purpose": "analytics", ":number": "1", ":id": s.demo.WebShop.ID}
		// No redirects followed: the 302 of /v1/widget.js is the answer to compare.
		client := *s.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		do := func(method, path string) *response {
			t.Helper()
			return send(t, &client, newTestRequest(t, method, s.URL+path, nil, "Origin", s.Origin,
				"Authorization", "Bearer "+s.demo.AdminKey, "Lupa-Device-Id", device))
		}
		routes := s.Config.Handler.(*gin.Engine).Routes()
		gets := 0
		for _, r := range routes {
			if r.Method != http.MethodGet {
				continue
			}
			gets++
			parts := strings.Split(r.Path, "/")
			for i, p := range parts {
				if strings.HasPrefix(p, ":") {
					if v, ok := param[p]; ok {
						parts[i] = v
					} else {
						parts[i] = "x"
					}
				}
			}
			path := strings.Join(parts, "/")
			if r.Path == "/v1/consents" {
				path += "?property=" + url.QueryEscape(s.demo.WebShop.PublicKey)
			}
			get, head := do(http.MethodGet, path), do(http.MethodHead, path)
			if head.Status != get.Status {
				t.Errorf("HEAD %s: %d, GET %d", path, head.Status, get.Status)
				continue
			}
			if len(head.Body) != 0 {
				t.Errorf("HEAD %s answered a body: %q", path, head.Body)
			}
			if cl := head.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(get.Body)) {
				t.Errorf("HEAD %s: Content-Length %s, GET's body has %d bytes", path, cl, len(get.Body))
			}
			if d := headerDiff(get.Header, head.Header); d != "" {
				t.Errorf("HEAD %s (%d): headers differ from GET's: %s", path, get.Status, d)
			}
		}
		if gets < 50 {
			t.Fatalf("only %d GET routes: the router's routes were not listed", gets)
		}

		// Nothing is sent after the headers: read the raw answer to the end.
		for _, path := range []string{"/v1/openapi.json", "/.well-known/jwks.json", "/healthz", "/v1/admin/tenant"} {
			if rest := rawHeadBody(t, s.Listener.Addr().String(), path, s.demo.AdminKey); rest != "" {
				t.Errorf("HEAD %s sent %d bytes after the headers: %.80q", path, len(rest), rest)
			}
		}

		// Paths without GET still refuse HEAD; a 405 lists HEAD beside GET.
		r := do(http.MethodHead, "/v1/receipts/verify")
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != http.MethodPost {
			t.Errorf("HEAD of a POST-only route: %d, Allow %q", r.Status, r.Header.Get("Allow"))
		}
		if r := do(http.MethodHead, "/v1/no-such-thing"); r.Status != http.StatusNotFound {
			t.Errorf("HEAD of an unknown path: %d", r.Status)
		}
		for path, want := range map[string][]string{
			"/v1/admin/brands": {"GET", "HEAD", "POST"},
			"/healthz":         {"GET", "HEAD"},
			"/v1/consents":     {"GET", "HEAD", "OPTIONS", "POST"},
		} {
			r := do(http.MethodDelete, path)
			allow := strings.Split(r.Header.Get("Allow"), ", ")
			slices.Sort(allow)
			if r.Status != http.StatusMethodNotAllowed || !slices.Equal(allow, want) {
				t.Errorf("DELETE %s: %d, Allow %q, want %v", path, r.Status, r.Header.Get("Allow"), want)
			}
		}
	})
}

// headerDiff describes how HEAD's headers differ from GET's, leaving out those that differ
// between any two requests (the date, the request id, a page's CSP nonce, fresh cookies'
// values) and the framing, which HEAD may leave out for a body it does not send.
func headerDiff(get, head http.Header) string {
	var d []string
	skip := []string{"Date", "X-Request-Id", "Content-Security-Policy", "Content-Length", "Transfer-Encoding", "Set-Cookie"}
	for _, h := range []http.Header{get, head} {
		for name := range h {
			if slices.Contains(skip, name) {
				continue
			}
			if g, hd := get.Values(name), head.Values(name); !slices.Equal(g, hd) && !slices.Contains(d, name) {
				d = append(d, fmt.Sprintf("%s: GET %q, HEAD %q", name, g, hd))
			}
		}
	}
	cookies := func(h http.Header) []string {
		var names []string
		for _, c := range (&http.Response{Header: h}).Cookies() {
			names = append(names, c.Name)
		}
		slices.Sort(names)
		return names
	}
	if g, hd := cookies(get), cookies(head); !slices.Equal(g, hd) {
		d = append(d, fmt.Sprintf("cookies: GET %v, HEAD %v", g, hd))
	}
	slices.Sort(d)
	return strings.Join(d, "; ")
}

// rawHeadBody sends HEAD path over a connection of its own and returns whatever the server
// sends after the answer's headers before it closes the connection.
func rawHeadBody(t *testing.T, addr, path, adminKey string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "HEAD %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", path, addr, adminKey)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("HEAD %s: reading the headers: %v", path, err)
		}
		if line == "\r\n" {
			break
		}
	}
	rest, _ := io.ReadAll(br)
	return string(rest)
}

// TestMetricsLabelHead: a HEAD answered by a GET route counts as a HEAD in the metrics, on
// the GET's route, once.
func TestMetricsLabelHead(t *testing.T) {
	a := &app{log: slog.New(slog.DiscardHandler), now: time.Now}
	m := newMetrics()
	r, err := a.routes(m)
	if err != nil {
		t.Fatal(err)
	}
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodHead, "/v1/openapi.json", nil))
	series := httpSeries(t, m)
	if !series["lupa_http_requests_total method=HEAD route=/v1/openapi.json status=200"] {
		t.Fatalf("no HEAD series for the GET route: %v", series)
	}
	for s := range series {
		if strings.Contains(s, "method=GET") || strings.Contains(s, "unmatched") {
			t.Errorf("the HEAD was counted as %q too", s)
		}
	}
}
