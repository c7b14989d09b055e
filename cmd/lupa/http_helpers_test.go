package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// Helpers shared by the http_*_test.go files. They add to server_test.go's harness without
// changing it.

// roomy lifts the per-IP rate limit so that tests sending many requests from 127.0.0.1
// measure what they mean to, not the limiter.
var roomy = map[string]string{"LUPA_RATE_LIMIT": "100000", "LUPA_RATE_BURST": "100000"}

// problem is an RFC 9457 problem body as Lupa writes it.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// field returns the message for the field f, and whether there is one. A nested field
// matches by its last elements, as the JSON decoder and the validator spell the prefix
// differently ("texts.title", "texts[fi].title").
func (p *problem) field(f string) (string, bool) {
	for _, e := range p.Errors {
		if e.Field == f || strings.HasSuffix(e.Field, "."+f) {
			return e.Message, true
		}
	}
	return "", false
}

// wantProblem fails the test unless r is an application/problem+json answer with the
// status, a type, a title and a status member that agrees, and a non-empty message for each
// field named.
func wantProblem(t testing.TB, r *response, status int, fields ...string) *problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %.500s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want application/problem+json: %s", ct, r.Body)
	}
	var p problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("problem body is not JSON (%v): %s", err, r.Body)
	}
	if p.Status != status || !strings.HasPrefix(p.Type, "urn:lupa:problem:") || p.Title == "" {
		t.Fatalf("problem lacks type, title or the right status: %s", r.Body)
	}
	for _, f := range fields {
		msg, ok := p.field(f)
		if !ok || msg == "" {
			t.Fatalf("problem does not name field %q: %.500s", f, r.Body)
		}
	}
	return &p
}

// try is request without the test: safe from other goroutines, it returns the error.
func (s *testServer) try(method, path string, body any, headers ...string) (*response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := s.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: data}, nil
}

// withKey sends a request with an API key.
func (s *testServer) withKey(key, method, path string, body any, headers ...string) *response {
	s.t.Helper()
	return s.request(method, path, body, append([]string{"Authorization", "Bearer " + key}, headers...)...)
}

// newKey creates an API key with the scopes through the admin API and returns its id and
// secret.
func (s *testServer) newKey(t testing.TB, adminKey string, scopes ...string) (id, secret string) {
	t.Helper()
	r := s.withKey(adminKey, http.MethodPost, "/v1/admin/api-keys", map[string]any{"name": "test " + strings.Join(scopes, " "), "scopes": scopes})
	if r.Status != http.StatusCreated {
		t.Fatalf("create API key: %d %s", r.Status, r.Body)
	}
	var k struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	r.JSON(t, &k)
	if k.ID == "" || !strings.HasPrefix(k.Secret, "sk_") {
		t.Fatalf("created key has no id or secret: %s", r.Body)
	}
	return k.ID, k.Secret
}

// ledgerCounts is what the admin ledger check reports.
type ledgerCounts struct {
	OK     bool  `json:"ok"`
	Chains int64 `json:"chains"`
	Events int64 `json:"events"`
}

// ledger runs the admin ledger check with key and requires it to pass.
func (s *testServer) ledger(t testing.TB, key string) ledgerCounts {
	t.Helper()
	r := s.withKey(key, http.MethodPost, "/v1/admin/ledger/verify", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("ledger verify: %d %s", r.Status, r.Body)
	}
	var c ledgerCounts
	r.JSON(t, &c)
	if !c.OK {
		t.Fatalf("ledger does not verify: %s", r.Body)
	}
	return c
}

// decision builds one decision of a request body.
func decision(purpose string, version int, d string) map[string]any {
	return map[string]any{"purpose": purpose, "version": version, "decision": d}
}

// banner builds a public interaction body.
func banner(decisions ...map[string]any) map[string]any {
	return map[string]any{"method": "banner_custom", "language": "fi", "decisions": decisions}
}

// grantAnalytics is the plainest valid public body.
func grantAnalytics() map[string]any { return banner(decision("analytics", 1, "granted")) }

// outcome is the part of POST /v1/consents's answer the tests read.
type outcome struct {
	InteractionID string `json:"interaction_id"`
	DeviceID      string `json:"device_id"`
	Subject       string `json:"subject"`
	Receipt       string `json:"receipt"`
	Events        []struct {
		ID       string `json:"id"`
		Purpose  string `json:"purpose"`
		Decision string `json:"decision"`
		Hash     string `json:"hash"`
	} `json:"events"`
	State []stateEntry `json:"state"`
}

type stateEntry struct {
	Purpose string `json:"purpose"`
	State   string `json:"state"`
	Version int    `json:"version"`
	MayUse  bool   `json:"may_use"`
}

// recorded requires r to be a 201 with an outcome and returns it.
func recorded(t testing.TB, r *response) outcome {
	t.Helper()
	if r.Status != http.StatusCreated {
		t.Fatalf("status %d, want 201: %s", r.Status, r.Body)
	}
	var o outcome
	r.JSON(t, &o)
	if o.InteractionID == "" || o.Receipt == "" || len(o.Events) == 0 {
		t.Fatalf("outcome lacks interaction, receipt or events: %s", r.Body)
	}
	return o
}

// newDevice records a public interaction for a new device of the web shop and returns its
// device id.
func (s *testServer) newDevice(t testing.TB, body any) string {
	t.Helper()
	o := recorded(t, s.collect(body))
	if !identity.ValidDeviceID(o.DeviceID) {
		t.Fatalf("no device id issued: %+v", o)
	}
	return o.DeviceID
}

// deviceState reads a device's state through the web shop.
func (s *testServer) deviceState(device string) *response {
	s.t.Helper()
	return s.request(http.MethodGet, "/v1/consents?property="+s.demo.WebShop.PublicKey, nil,
		"Origin", s.Origin, "Lupa-Device-Id", device)
}

// stateOf returns a device's state per purpose, failing unless the device is found.
func (s *testServer) stateOf(t testing.TB, device string) map[string]string {
	t.Helper()
	r := s.deviceState(device)
	if r.Status != http.StatusOK {
		t.Fatalf("device state: %d %s", r.Status, r.Body)
	}
	var v struct {
		State []stateEntry `json:"state"`
	}
	r.JSON(t, &v)
	out := map[string]string{}
	for _, e := range v.State {
		out[e.Purpose] = e.State
	}
	return out
}

// configPaths are the admin reads that together show a tenant's configuration.
var configPaths = []string{"/v1/admin/tenant", "/v1/admin/brands", "/v1/admin/properties", "/v1/admin/purposes",
	"/v1/admin/recipients", "/v1/admin/api-keys", "/v1/admin/audit?limit=500", "/v1/admin/ledger/roots/latest",
	"/v1/admin/ciam-issuers", "/v1/admin/login-providers", "/v1/admin/data-map"}

var requestIDRe = regexp.MustCompile(`"request_id":"[^"]*"`)

// configSnapshot reads everything the admin API shows about a tenant, purpose versions
// included, so a test can prove that nothing changed.
func (s *testServer) configSnapshot(t testing.TB, key string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range configPaths {
		r := s.withKey(key, http.MethodGet, p, nil)
		if r.Status != http.StatusOK && r.Status != http.StatusNotFound {
			t.Fatalf("GET %s: %d %s", p, r.Status, r.Body)
		}
		out[p] = fmt.Sprintf("%d %s", r.Status, requestIDRe.ReplaceAll(r.Body, nil))
	}
	r := s.withKey(key, http.MethodGet, "/v1/admin/purposes", nil)
	var ps struct {
		Items []struct {
			Key string `json:"key"`
		} `json:"items"`
	}
	r.JSON(t, &ps)
	for _, p := range ps.Items {
		path := "/v1/admin/purposes/" + p.Key + "/versions"
		out[path] = string(s.withKey(key, http.MethodGet, path, nil).Body)
	}
	return out
}

// envOf is the environment that points a command at the test server's database.
func envOf(s *testServer, extra ...string) func(string) string {
	vars := map[string]string{
		"LUPA_DATABASE_URL": s.app.cfg.DatabaseURL,
		"LUPA_DATA_DIR":     s.app.cfg.DataDir,
		"LUPA_MASTER_KEY":   s.app.cfg.MasterKey,
		"LUPA_LOG_LEVEL":    "warn",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	return func(k string) string { return vars[k] }
}

// reopen starts a second Lupa on the test server's database (as a restarted or second
// instance would), without seeding anything.
func reopen(t *testing.T, s *testServer) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := open(context.Background(), s.app.cfg, log, false)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	w := a.consent.StartWriter(consent.WriterOptions{Metrics: m})
	router, err := a.routes(m)
	if err != nil {
		t.Fatal(err)
	}
	s2 := &testServer{Server: httptest.NewServer(router), t: t, app: a, demo: s.demo, writer: w, Origin: s.Origin}
	t.Cleanup(func() {
		s2.Close()
		w.Close()
		a.db.Close()
	})
	return s2
}

// runCmd runs the lupa command line with getenv and returns its exit code and output.
func runCmd(ctx context.Context, getenv func(string) string, args ...string) (int, string, string) {
	var out, errb syncBuffer
	code := run(ctx, args, getenv, &out, &errb)
	return code, out.String(), errb.String()
}

// syncBuffer is a bytes.Buffer that a running server may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// eventually polls cond every few milliseconds until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// served is a `lupa serve` running in this process, as an operator would start it.
type served struct {
	t       *testing.T
	Addr    string // API listener
	Metrics string // metrics listener
	URL     string
	Stdout  *syncBuffer
	Stderr  *syncBuffer
	cancel  context.CancelFunc
	done    chan int
	code    int
	exited  bool
	client  *http.Client

	AdminKey, WebShopKey, AppKey string
}

var (
	adminKeyRe   = regexp.MustCompile(`(?i)admin API key \(shown once\): (sk_\S+)`)
	webShopKeyRe = regexp.MustCompile(`Web shop property key:\s+(pk_\S+)`)
	appKeyRe     = regexp.MustCompile(`App property key:\s+(pk_\S+)`)
)

// startServe runs `lupa serve` with env (plus free LUPA_ADDR and LUPA_METRICS_ADDR) and
// waits until /healthz answers. The ports are picked before serve binds them, so another
// connection can take one in between; serve then stops at once, before it touches the
// database, and the start is tried again on other ports.
func startServe(t *testing.T, env map[string]string) *served {
	t.Helper()
	for try := 1; ; try++ {
		if s := tryServe(t, env, try == 3); s != nil {
			return s
		}
	}
}

// tryServe is one start of startServe. It returns nil when an address was taken meanwhile,
// unless last.
func tryServe(t *testing.T, env map[string]string, last bool) *served {
	t.Helper()
	s := &served{t: t, Addr: freeAddr(t), Metrics: freeAddr(t), Stdout: &syncBuffer{}, Stderr: &syncBuffer{},
		done: make(chan int, 1), client: &http.Client{Timeout: 30 * time.Second}}
	s.URL = "http://" + s.Addr
	vars := map[string]string{"LUPA_ADDR": s.Addr, "LUPA_METRICS_ADDR": s.Metrics, "LUPA_LOG_LEVEL": "debug"}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		s.done <- run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, s.Stdout, s.Stderr)
	}()
	t.Cleanup(func() { s.stop() })
	// A short timeout per look: whatever else holds the port must not keep us waiting.
	poll := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case code := <-s.done:
			s.exited, s.code = true, code
			if !last && strings.Contains(s.Stderr.String(), "address already in use") {
				return nil
			}
			t.Fatalf("lupa serve exited with %d before it was healthy:\n%s\n%s", code, s.Stdout, s.Stderr)
		default:
		}
		if res, err := poll.Get(s.URL + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lupa serve did not become healthy:\n%s", s.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := s.Stdout.String()
	if m := adminKeyRe.FindStringSubmatch(out); m != nil {
		s.AdminKey = m[1]
	}
	if m := webShopKeyRe.FindStringSubmatch(out); m != nil {
		s.WebShopKey = m[1]
	}
	if m := appKeyRe.FindStringSubmatch(out); m != nil {
		s.AppKey = m[1]
	}
	return s
}

// stop cancels serve's context, as SIGTERM does, and returns its exit code.
func (s *served) stop() int {
	s.cancel()
	if !s.exited {
		select {
		case s.code = <-s.done:
			s.exited = true
		case <-time.After(60 * time.Second):
			s.t.Errorf("lupa serve did not stop within 60 s")
		}
	}
	return s.code
}

// do sends a request to the served instance.
func (s *served) do(method, path string, body any, headers ...string) *response {
	s.t.Helper()
	return send(s.t, s.client, newTestRequest(s.t, method, s.URL+path, bodyReader(encodeBody(s.t, body), body != nil), headers...))
}

// fileMode returns a file's permission bits.
func fileMode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
