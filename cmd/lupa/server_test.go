package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// testServer is the whole of Lupa — real router, real database, real writer — behind an
// httptest server, with the demo tenant seeded.
type testServer struct {
	*httptest.Server
	t      testing.TB
	app    *app
	demo   *consent.Demo
	writer *consent.Writer
	// Origin is an allowed origin of the demo web shop.
	Origin string
}

const testOrigin = "https://shop.example"

// newTestServer starts Lupa on a fresh database of the dialect. env overrides LUPA_*
// settings.
func newTestServer(t testing.TB, dialect string, env map[string]string) *testServer {
	t.Helper()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	vars := map[string]string{
		"LUPA_DATABASE_URL": sqldbtest.URL(t, dialect),
		"LUPA_DATA_DIR":     t.TempDir(),
		"LUPA_MASTER_KEY":   base64.StdEncoding.EncodeToString(master),
		"LUPA_DB_MAX_CONNS": "8",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := loadConfig(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	a, err := open(ctx, cfg, log, true)
	if err != nil {
		t.Fatal(err)
	}
	demo, err := a.consent.SeedDemo(ctx, []string{testOrigin})
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	w := a.consent.StartWriter(consent.WriterOptions{Metrics: m})
	router, err := a.routes(m)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{Server: httptest.NewServer(router), t: t, app: a, demo: demo, writer: w, Origin: testOrigin}
	t.Cleanup(func() {
		s.Close()
		// Links mailed after their answers finish before the database closes.
		wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a.accounts.Wait(wait)
		cancel()
		w.Close()
		a.db.Close()
	})
	return s
}

// eachServer runs fn against a test server on each dialect.
func eachServer(t *testing.T, env map[string]string, fn func(t *testing.T, s *testServer)) {
	for _, d := range sqldbtest.Dialects {
		t.Run(d, func(t *testing.T) { fn(t, newTestServer(t, d, env)) })
	}
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r *response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r.Body)
	}
}

// Map decodes the body as a JSON object.
func (r *response) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// request sends method path with body (nil, []byte, string, or a value encoded as JSON)
// and headers given as name, value pairs.
func (s *testServer) request(method, path string, body any, headers ...string) *response {
	s.t.Helper()
	return send(s.t, s.Client(), newTestRequest(s.t, method, s.URL+path, bodyReader(encodeBody(s.t, body), body != nil), headers...))
}

// encodeBody turns a test body (nil, []byte, string, or a value encoded as JSON) into bytes.
func encodeBody(t testing.TB, body any) []byte {
	t.Helper()
	switch b := body.(type) {
	case nil:
		return nil
	case []byte:
		return b
	case string:
		return []byte(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
}

// bodyReader reads raw, or is nil when there is no body at all.
func bodyReader(raw []byte, present bool) io.Reader {
	if !present {
		return nil
	}
	return bytes.NewReader(raw)
}

// newTestRequest builds a request with headers given as name, value pairs; a request with
// a body says it is JSON.
func newTestRequest(t testing.TB, method, url string, body io.Reader, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// send does req and reads the whole answer.
func send(t testing.TB, c *http.Client, req *http.Request) *response {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: data}
}

// admin sends a request with the demo tenant's admin key.
func (s *testServer) admin(method, path string, body any, headers ...string) *response {
	s.t.Helper()
	return s.request(method, path, body, append([]string{"Authorization", "Bearer " + s.demo.AdminKey}, headers...)...)
}

// collect posts one banner interaction from the demo web shop.
func (s *testServer) collect(body any, headers ...string) *response {
	s.t.Helper()
	return s.request(http.MethodPost, "/v1/consents?property="+s.demo.WebShop.PublicKey, body,
		append([]string{"Origin", s.Origin}, headers...)...)
}
