package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// TestHTTPHealth: /healthz and /readyz answer; unknown routes and methods get problems.
func TestHTTPHealth(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		for path, want := range map[string]string{"/healthz": `"status":"ok"`, "/readyz": `"status":"ready"`} {
			r := s.request(http.MethodGet, path, nil)
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), want) {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
		}
		wantProblem(t, s.request(http.MethodGet, "/v1/nothing-here", nil), http.StatusNotFound)
		wantProblem(t, s.request(http.MethodDelete, "/v1/consents/check", nil), http.StatusMethodNotAllowed)
		r := s.request(http.MethodGet, "/healthz", nil)
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Request-Id") == "" {
			t.Fatalf("operations answers lack the standard headers: %v", r.Header)
		}
	})
}

// newMasterKey returns a fresh LUPA_MASTER_KEY value.
func newMasterKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// TestServeEndToEnd runs `lupa serve` as an operator would on the embedded default (no
// database URL, no master key): it creates its master key once, serves, exports metrics,
// finishes a request that is in flight when it is told to stop, and after a restart has
// kept everything it acknowledged.
func TestServeEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"LUPA_DATA_DIR": dataDir}
	srv := startServe(t, env)
	if srv.AdminKey == "" || srv.WebShopKey == "" || srv.AppKey == "" {
		t.Fatalf("serve did not print the demo tenant's keys:\n%s", srv.Stdout)
	}
	keyFile := filepath.Join(dataDir, "master.key")
	if m := fileMode(t, keyFile); m != 0o600 {
		t.Fatalf("master.key has mode %o, want 600", m)
	}
	master, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	origin := srv.URL // the demo web shop allows the server's own address
	if r := srv.do(http.MethodGet, "/readyz", nil); r.Status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.Status, r.Body)
	}
	// The demo tenant comes with its data map: accounting, tills, loyalty, the email platform.
	if r := srv.do(http.MethodGet, "/v1/admin/data-map", nil, "Authorization", "Bearer "+srv.AdminKey); r.Status != http.StatusOK ||
		strings.Count(string(r.Body), `"dsr":`) != 4 || !strings.Contains(string(r.Body), `"preset":"fi_accounting_vouchers"`) {
		t.Fatalf("the demo data map: %d %.500s", r.Status, r.Body)
	}
	first := srv.do(http.MethodPost, "/v1/consents?property="+srv.WebShopKey, grantAnalytics(), "Origin", origin)
	recorded(t, first)

	// Metrics on their own listener.
	res, err := http.Get("http://" + srv.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`lupa_http_requests_total{method="POST",route="/v1/consents",status="201"} 1`,
		"lupa_consent_events_written_total 1", "lupa_writer_batch_size_count 1", "lupa_writer_batch_wait_seconds_count 1",
		"lupa_writer_commit_seconds_count 1", "lupa_http_request_duration_seconds_bucket"} {
		if !bytes.Contains(metricsText, []byte(want)) {
			t.Fatalf("metrics lack %q:\n%s", want, metricsText)
		}
	}
	if bytes.Contains(metricsText, []byte(srv.WebShopKey)) {
		t.Fatal("metrics labels hold a property key")
	}

	// A request in flight when serve is told to stop (SIGTERM cancels its context) is
	// finished and committed. Expect: 100-continue proves the handler is reading the body
	// before we stop the server; the body follows once the listener is closed.
	body := mustJSON(grantAnalytics())
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/consents?property="+srv.WebShopKey, pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", origin)
	req.Header.Set("Expect", "100-continue")
	reading := make(chan struct{})
	var once sync.Once
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got100Continue: func() { once.Do(func() { close(reading) }) }}))
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	type answer struct {
		r   *response
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := client.Do(req)
		if err != nil {
			done <- answer{nil, err}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		done <- answer{&response{Status: res.StatusCode, Header: res.Header, Body: b}, nil}
	}()
	select {
	case <-reading:
	case a := <-done:
		t.Fatalf("request ended before the server read it: %+v", a)
	case <-time.After(30 * time.Second):
		t.Fatal("the server never asked for the body")
	}
	srv.cancel()
	eventually(t, 30*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", srv.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if _, err := pw.Write(body); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	a := <-done
	if a.err != nil {
		t.Fatalf("in-flight request failed during shutdown: %v", a.err)
	}
	inflight := recorded(t, a.r)
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, srv.Stderr)
	}

	// Restart on the same data directory: the same master key, no second demo tenant, and
	// everything acknowledged is there.
	srv2 := startServe(t, env)
	if strings.Contains(srv2.Stdout.String(), "Created the demo tenant") {
		t.Fatalf("restart created the demo tenant again:\n%s", srv2.Stdout)
	}
	if again, _ := os.ReadFile(keyFile); !bytes.Equal(again, master) {
		t.Fatal("restart replaced master.key")
	}
	g := srv2.do(http.MethodGet, "/v1/consents?property="+srv.WebShopKey, nil, "Origin", origin, "Lupa-Device-Id", inflight.DeviceID)
	if g.Status != http.StatusOK || !strings.Contains(string(g.Body), `"purpose":"analytics","state":"granted"`) {
		t.Fatalf("state of the in-flight device after restart: %d %s", g.Status, g.Body)
	}
	v := srv2.do(http.MethodPost, "/v1/receipts/verify", map[string]any{"receipt": inflight.Receipt})
	if v.Status != http.StatusOK || !strings.Contains(string(v.Body), `"valid":true`) || !strings.Contains(string(v.Body), `"ledger_match":true`) {
		t.Fatalf("in-flight receipt after restart: %d %s", v.Status, v.Body)
	}
	lv := srv2.do(http.MethodPost, "/v1/admin/ledger/verify", nil, "Authorization", "Bearer "+srv.AdminKey)
	var counts ledgerCounts
	lv.JSON(t, &counts)
	if !counts.OK || counts.Events != 2 || counts.Chains != 2 {
		t.Fatalf("ledger after restart: %s", lv.Body)
	}
	if code := srv2.stop(); code != 0 {
		t.Fatalf("second serve exited with %d:\n%s", code, srv2.Stderr)
	}
}

// TestHTTPReadiness: /readyz answers 503 with the reason while the schema is behind this
// binary's migrations and when the database cannot be reached; /healthz stays 200 (the
// process is alive: a load balancer takes it out, an orchestrator does not restart it).
func TestHTTPReadiness(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		ready := func(status int, want string) {
			t.Helper()
			r := s.request(http.MethodGet, "/readyz", nil)
			if r.Status != status || r.Map(t)["status"] != want || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("readyz: %d %s, want %d %q", r.Status, r.Body, status, want)
			}
			if h := s.request(http.MethodGet, "/healthz", nil); h.Status != http.StatusOK {
				t.Fatalf("healthz: %d %s", h.Status, h.Body)
			}
		}
		ready(http.StatusOK, "ready")
		// The newest migration forgotten: the schema is older than the binary.
		db := s.app.db.SQL()
		var newest int64
		if err := db.QueryRow("SELECT max(version_id) FROM goose_db_version").Scan(&newest); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("DELETE FROM goose_db_version WHERE version_id = $1", newest); err != nil {
			t.Fatal(err)
		}
		ready(http.StatusServiceUnavailable, "database schema is not current: run lupa migrate")
		if _, err := db.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, $2)", newest, true); err != nil {
			t.Fatal(err)
		}
		ready(http.StatusOK, "ready")
		s.app.db.Close()
		ready(http.StatusServiceUnavailable, "database unreachable")
	})
}

// TestServeAutoMigrateOff: with LUPA_AUTO_MIGRATE=false serve leaves the schema as it is;
// an instance started on an older schema serves but is not ready until lupa migrate runs.
func TestServeAutoMigrateOff(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"LUPA_DATA_DIR": dataDir}
	ctx := context.Background()
	if code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s", code, stderr)
	}
	// The newest migration forgotten, as on a database that an older Lupa set up.
	db, err := sqldb.Open(ctx, "", dataDir, sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Write.Exec("DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)").Error; err != nil {
		t.Fatal(err)
	}
	rows := gooseRows(t, db.SQL())
	db.Close()

	env["LUPA_AUTO_MIGRATE"] = "false"
	srv := startServe(t, env)
	r := srv.do(http.MethodGet, "/readyz", nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "database schema is not current") {
		t.Fatalf("readyz on an older schema: %d %s", r.Status, r.Body)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, srv.Stderr)
	}
	if strings.Contains(srv.Stderr.String(), "applied migrations") {
		t.Fatalf("serve migrated with LUPA_AUTO_MIGRATE=false:\n%s", srv.Stderr)
	}
	db, err = sqldb.Open(ctx, "", dataDir, sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := gooseRows(t, db.SQL()); got != rows {
		t.Fatalf("serve with LUPA_AUTO_MIGRATE=false: %d version rows, was %d", got, rows)
	}
}

// TestServeDemoOff: LUPA_DEMO=false starts on an empty database without a tenant.
func TestServeDemoOff(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"LUPA_DATA_DIR": dataDir, "LUPA_DEMO": "false"}
	srv := startServe(t, env)
	if strings.Contains(srv.Stdout.String(), "Created the demo tenant") || srv.AdminKey != "" {
		t.Fatalf("LUPA_DEMO=false printed a demo tenant:\n%s", srv.Stdout)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, srv.Stderr)
	}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.db.Close()
	if n, err := a.ids.CountTenants(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d tenants (%v) with LUPA_DEMO=false", n, err)
	}
}

// TestServeMasterKeyRules: PostgreSQL needs a master key from the operator; a wrong or
// malformed one stops Lupa with a message instead of garbage.
func TestServeMasterKeyRules(t *testing.T) {
	pg := sqldbtest.URL(t, sqldb.Postgres)
	dataDir := t.TempDir()
	env := map[string]string{"LUPA_DATABASE_URL": pg, "LUPA_DATA_DIR": dataDir, "LUPA_ADDR": freeAddr(t), "LUPA_METRICS_ADDR": "off"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, "serve")
	if code == 0 || !strings.Contains(stderr, "LUPA_MASTER_KEY is required") {
		t.Fatalf("serve on PostgreSQL without a master key: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "master.key")); !os.IsNotExist(err) {
		t.Fatalf("a master.key was generated for PostgreSQL: %v", err)
	}
	env["LUPA_MASTER_KEY"] = "too-short"
	code, _, stderr = runCmd(ctx, func(k string) string { return env[k] }, "migrate")
	if code == 0 || !strings.Contains(stderr, "master key must be 32 random bytes") {
		t.Fatalf("malformed master key: exit %d, %s", code, stderr)
	}
	// Set the database up with one key, then start with another.
	env["LUPA_MASTER_KEY"] = newMasterKey()
	if code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s", code, stderr)
	}
	env["LUPA_MASTER_KEY"] = newMasterKey()
	code, _, stderr = runCmd(ctx, func(k string) string { return env[k] }, "serve")
	if code == 0 || !strings.Contains(stderr, "start Lupa with the master key it was set up with") {
		t.Fatalf("serve with the wrong master key: exit %d, %s", code, stderr)
	}
}

// TestConfigErrors: bad settings stop every command with exit code 2 and a message naming
// the setting.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, value string }{
		{"LUPA_RATE_LIMIT", "fast"},
		{"LUPA_RATE_LIMIT", "0"},
		{"LUPA_RATE_LIMIT", "-5"},
		{"LUPA_RATE_BURST", "1.5"},
		{"LUPA_TRUSTED_PROXIES", "not-an-address"},
		{"LUPA_TRUSTED_PROXIES", "10.0.0.0/8, 10.0.0.0/33"},
		{"LUPA_DEMO", "perhaps"},
		{"LUPA_SHUTDOWN_TIMEOUT", "soon"},
		{"LUPA_PUBLIC_URL", "ftp://example.com"},
		{"LUPA_CONNECTOR_INSTANCES", "0"},
		{"LUPA_CONNECTOR_INSTANCES", "1.5"},
		{"LUPA_RECONCILE_INTERVAL", "hourly"},
		{"LUPA_DELIVERY_LOG_RETENTION", "30d"},
	} {
		for _, cmd := range []string{"serve", "migrate"} {
			dataDir := t.TempDir()
			env := map[string]string{c.name: c.value, "LUPA_DATA_DIR": dataDir, "LUPA_ADDR": freeAddr(t), "LUPA_METRICS_ADDR": "off"}
			code, _, stderr := runCmd(context.Background(), func(k string) string { return env[k] }, cmd)
			if code != 2 || !strings.Contains(stderr, c.name) {
				t.Errorf("%s %s=%q: exit %d, stderr %q", cmd, c.name, c.value, code, stderr)
			}
			if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
				t.Errorf("%s %s=%q touched the data directory before refusing", cmd, c.name, c.value)
			}
		}
	}
	if code, _, _ := runCmd(context.Background(), func(string) string { return "" }, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// TestServeOnABusyAddress: a listen address that is taken stops lupa serve at once, with
// the address in the error, before it creates or touches any database.
func TestServeOnABusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct{ addr, metrics, want string }{
		{busy.Addr().String(), "off", busy.Addr().String()},
		{"127.0.0.1:0", busy.Addr().String(), "metrics listener"},
	} {
		dataDir := t.TempDir()
		env := map[string]string{"LUPA_DATA_DIR": dataDir, "LUPA_ADDR": c.addr, "LUPA_METRICS_ADDR": c.metrics}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, "serve")
		cancel()
		if code == 0 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "address already in use") {
			t.Errorf("LUPA_ADDR=%s LUPA_METRICS_ADDR=%s: exit %d, stderr %q", c.addr, c.metrics, code, stderr)
		}
		if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
			t.Errorf("LUPA_ADDR=%s LUPA_METRICS_ADDR=%s: the data directory was touched: %v", c.addr, c.metrics, entries)
		}
	}
}

// TestCommands: the operator's commands work against the database a server runs on.
func TestCommands(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		before := recorded(t, s.collect(grantAnalytics()))
		cust := map[string]any{"kind": "customer_number", "value": "ROTATE-1"}
		recorded(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": cust, "method": "api",
			"decisions": []map[string]any{decision("marketing_email", 1, "granted")}}))

		// lupa tenant create NAME prints an admin key that works.
		code, out, stderr := runCmd(ctx, envOf(s), "tenant", "create", "Acme", "Nordic", "Oy")
		if code != 0 {
			t.Fatalf("tenant create: %d %s", code, stderr)
		}
		m := adminKeyRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("tenant create printed no key: %s", out)
		}
		r := s.withKey(m[1], http.MethodGet, "/v1/admin/tenant", nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"name":"Acme Nordic Oy"`) || strings.Contains(string(r.Body), s.demo.Tenant.ID) {
			t.Fatalf("the new tenant's key: %d %s", r.Status, r.Body)
		}
		if code, _, stderr := runCmd(ctx, envOf(s), "tenant", "create", "Acme", "Nordic", "Oy"); code == 0 || !strings.Contains(stderr, "exists") {
			t.Fatalf("second tenant of the same name: exit %d, %s", code, stderr)
		}
		if code, _, _ := runCmd(ctx, envOf(s), "tenant"); code == 0 {
			t.Fatal("tenant without a name succeeded")
		}

		// lupa ledger verify on a clean ledger.
		code, out, stderr = runCmd(ctx, envOf(s), "ledger", "verify")
		if code != 0 || strings.Count(out, `"ok": true`) != 2 || strings.Contains(out, `"ok": false`) {
			t.Fatalf("ledger verify: exit %d\n%s\n%s", code, out, stderr)
		}

		// lupa keys rotate: a restarted instance signs with the new key; receipts of the
		// old key still verify, and known devices and customers are still found.
		jwks := func(s *testServer) []string {
			var set struct {
				Keys []struct {
					Kid string `json:"kid"`
				} `json:"keys"`
			}
			s.request(http.MethodGet, "/.well-known/jwks.json", nil).JSON(t, &set)
			var kids []string
			for _, k := range set.Keys {
				kids = append(kids, k.Kid)
			}
			return kids
		}
		kidsBefore := jwks(s)
		code, out, stderr = runCmd(ctx, envOf(s), "keys", "rotate")
		if code != 0 || !strings.Contains(out, "new keys:") {
			t.Fatalf("keys rotate: exit %d\n%s\n%s", code, out, stderr)
		}
		// The server that was running all along, its keys not yet reloaded, still finds the
		// customer, and their next decision joins the same person (not a second one).
		if r := s.withKey(write, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": cust}); r.Status != http.StatusOK {
			t.Fatalf("the running server after the rotation: %d %s", r.Status, r.Body)
		}
		recorded(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": cust, "method": "api",
			"decisions": []map[string]any{decision("marketing_email", 1, "denied")}}))
		var people int64
		if err := s.app.db.Read.Raw("SELECT COUNT(*) FROM identifiers WHERE kind = 'customer_number'").Scan(&people).Error; err != nil || people != 1 {
			t.Fatalf("%d identifiers of customers after the rotation (%v), want 1", people, err)
		}
		s2 := reopen(t, s)
		kidsAfter := jwks(s2)
		if len(kidsAfter) != len(kidsBefore)+1 {
			t.Fatalf("JWKS after rotation %v, before %v", kidsAfter, kidsBefore)
		}
		after := recorded(t, s2.collect(grantAnalytics()))
		verify := func(receipt string) string {
			r := s2.request(http.MethodPost, "/v1/receipts/verify", map[string]any{"receipt": receipt})
			var v struct {
				Valid  bool   `json:"valid"`
				Ledger bool   `json:"ledger_match"`
				Kid    string `json:"kid"`
			}
			r.JSON(t, &v)
			if r.Status != http.StatusOK || !v.Valid || !v.Ledger {
				t.Fatalf("receipt does not verify after rotation: %s", r.Body)
			}
			return v.Kid
		}
		// The new signing key is published at once but signs only after
		// keyring.SigningKeyDelay, so that key sets others fetched and cached hold it.
		if k1, k2 := verify(before.Receipt), verify(after.Receipt); k1 != k2 || !contains(kidsBefore, k1) {
			t.Fatalf("receipt keys before and straight after rotation: %s, %s (old set %v)", k1, k2, kidsBefore)
		}
		if err := s2.app.db.Write.Exec("UPDATE data_keys SET created_at = created_at - ? WHERE kind = 'signing' AND status = 'active'",
			keyring.SigningKeyDelay.Milliseconds()).Error; err != nil {
			t.Fatal(err)
		}
		if err := s2.app.keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		later := recorded(t, s2.collect(grantAnalytics()))
		if k1, k3 := verify(before.Receipt), verify(later.Receipt); k1 == k3 || contains(kidsBefore, k3) || !contains(kidsAfter, k3) {
			t.Fatalf("receipt keys before and after the signing delay: %s, %s (old set %v, new %v)", k1, k3, kidsBefore, kidsAfter)
		}
		if st := s2.stateOf(t, before.DeviceID); st["analytics"] != "granted" {
			t.Fatalf("a device recorded before the rotation: %v", st)
		}
		if r := s2.withKey(write, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": cust}); r.Status != http.StatusOK ||
			!strings.Contains(string(r.Body), `"withdrawn"`) {
			t.Fatalf("a customer recorded before the rotation, who withdrew after it: %d %s", r.Status, r.Body)
		}
		if code, out, _ := runCmd(ctx, envOf(s), "ledger", "verify"); code != 0 {
			t.Fatalf("ledger verify after rotation: %d %s", code, out)
		}

		// lupa migrate on a current database changes nothing.
		n := gooseRows(t, s.app.db.SQL())
		for range 2 {
			code, out, stderr := runCmd(ctx, envOf(s, "LUPA_LOG_LEVEL", "info"), "migrate")
			if code != 0 || !strings.Contains(out, "current: true") || strings.Contains(stderr, "applied migrations") {
				t.Fatalf("migrate: exit %d\n%s\n%s", code, out, stderr)
			}
		}
		if got := gooseRows(t, s.app.db.SQL()); got != n {
			t.Fatalf("migrate on a current database: %d version rows, was %d", got, n)
		}

		// lupa ledger verify on a ledger edited behind Lupa's back: exit 1, the first broken
		// link on standard error, and the admin API's report names it too.
		tenant := s.demo.Tenant.ID
		if r := s.admin(http.MethodPost, "/v1/admin/ledger/roots", nil); r.Status != http.StatusCreated {
			t.Fatalf("sign a root: %d %s", r.Status, r.Body)
		}
		bypassAppendOnly(t, s.app.db)
		// A root's own problem belongs to no subject: the line names the root.
		tamper(t, s.app.db, "UPDATE ledger_roots SET root = ? WHERE tenant_id = ? AND number = 1", strings.Repeat("0", 64), tenant)
		code, out, stderr = runCmd(ctx, envOf(s), "ledger", "verify")
		if want := "tenant " + tenant + ": first broken link: root_signature: "; code != 1 || !strings.Contains(stderr, want) ||
			!strings.Contains(stderr, "(root 1)") || strings.Count(out, `"ok": false`) != 1 {
			t.Fatalf("ledger verify of a changed root: exit %d, want 1 and %q … (root 1)\n%s\n%s", code, want, out, stderr)
		}
		// An event changed: the first chain in subject order, at seq 1, comes before the root.
		var subject string
		if err := s.app.db.Read.Raw("SELECT subject_id FROM consent_events WHERE tenant_id = ? ORDER BY subject_id, seq LIMIT 1",
			tenant).Scan(&subject).Error; err != nil || subject == "" {
			t.Fatalf("first chain: %q %v", subject, err)
		}
		tamper(t, s.app.db, "UPDATE consent_events SET decision = 'withdrawn' WHERE tenant_id = ? AND subject_id = ? AND seq = 1", tenant, subject)
		code, _, stderr = runCmd(ctx, envOf(s), "ledger", "verify")
		if want := "first broken link: hash_mismatch: the event's content does not match its hash: it was changed (subject " +
			subject + ", seq 1)"; code != 1 || !strings.Contains(stderr, want) {
			t.Fatalf("ledger verify of a changed event: exit %d, want 1 and %q\n%s", code, want, stderr)
		}
		var rep struct {
			OK          bool `json:"ok"`
			FirstBroken *struct {
				Kind      string `json:"kind"`
				SubjectID string `json:"subject_id"`
				Seq       int64  `json:"seq"`
			} `json:"first_broken"`
			Problems []struct {
				Kind string `json:"kind"`
				Root int64  `json:"root"`
			} `json:"problems"`
		}
		r = s.admin(http.MethodPost, "/v1/admin/ledger/verify", nil)
		r.JSON(t, &rep)
		rootFound := false
		for _, p := range rep.Problems {
			rootFound = rootFound || p.Kind == "root_signature" && p.Root == 1
		}
		if r.Status != http.StatusOK || rep.OK || rep.FirstBroken == nil || rep.FirstBroken.Kind != "hash_mismatch" ||
			rep.FirstBroken.SubjectID != subject || rep.FirstBroken.Seq != 1 || !rootFound {
			t.Fatalf("the admin API's report of the changed ledger: %d %s", r.Status, r.Body)
		}
	})
}

// bypassAppendOnly turns the ledger's append-only triggers off, as the owner of its tables
// can (consent/tamper_test.go plays the same attacker).
func bypassAppendOnly(t *testing.T, db *sqldb.DB) {
	t.Helper()
	for _, tbl := range []string{"consent_events", "ledger_roots", "ledger_root_leaves"} {
		q := []string{"ALTER TABLE " + tbl + " DISABLE TRIGGER USER"}
		if db.Dialect == sqldb.SQLite {
			q = []string{"DROP TRIGGER " + tbl + "_no_update", "DROP TRIGGER " + tbl + "_no_delete"}
		}
		for _, s := range q {
			tamper(t, db, s)
		}
	}
}

// tamper changes exactly what q says, behind Lupa's back.
func tamper(t *testing.T, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if err := db.Write.Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func gooseRows(t testing.TB, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM goose_db_version").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func migrationFiles(t testing.TB, dialect string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("..", "..", "migrations", dialect))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			n++
		}
	}
	return n
}

// TestMigrateFresh: on the embedded default, the first migrate applies everything, the
// second nothing.
func TestMigrateFresh(t *testing.T) {
	dataDir := t.TempDir()
	env := func(k string) string {
		return map[string]string{"LUPA_DATA_DIR": dataDir, "LUPA_LOG_LEVEL": "info"}[k]
	}
	ctx := context.Background()
	code, out, stderr := runCmd(ctx, env, "migrate")
	if code != 0 || !strings.Contains(stderr, "applied migrations") || !strings.Contains(out, "current: true") {
		t.Fatalf("first migrate: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runCmd(ctx, env, "migrate")
	if code != 0 || strings.Contains(stderr, "applied migrations") || !strings.Contains(out, "current: true") {
		t.Fatalf("second migrate: exit %d\n%s\n%s", code, out, stderr)
	}
	db, err := sqldb.Open(ctx, "", dataDir, sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, want := gooseRows(t, db.SQL()), migrationFiles(t, sqldb.SQLite)+1; n != want {
		t.Fatalf("%d version rows, want %d", n, want)
	}
}

// TestMigrateConcurrentPostgres: two instances migrating one fresh PostgreSQL database at
// the same moment both succeed, and every migration is applied once.
func TestMigrateConcurrentPostgres(t *testing.T) {
	url := sqldbtest.EmptyPostgresURL(t)
	master := newMasterKey()
	env := func(k string) string {
		return map[string]string{"LUPA_DATABASE_URL": url, "LUPA_MASTER_KEY": master, "LUPA_DATA_DIR": t.TempDir(), "LUPA_LOG_LEVEL": "info"}[k]
	}
	type result struct {
		code        int
		out, stderr string
	}
	results := make(chan result, 2)
	start := make(chan struct{})
	for range 2 {
		go func() {
			<-start
			code, out, stderr := runCmd(context.Background(), env, "migrate")
			results <- result{code, out, stderr}
		}()
	}
	close(start)
	applied := 0
	for range 2 {
		r := <-results
		if r.code != 0 || !strings.Contains(r.out, "current: true") {
			t.Fatalf("concurrent migrate: exit %d\n%s\n%s", r.code, r.out, r.stderr)
		}
		if strings.Contains(r.stderr, "applied migrations") {
			applied++
		}
	}
	if applied != 1 {
		t.Fatalf("%d of the two instances applied migrations, want exactly 1", applied)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, want := gooseRows(t, db), migrationFiles(t, sqldb.Postgres)+1; n != want {
		t.Fatalf("%d version rows, want %d", n, want)
	}
	var active int
	if err := db.QueryRow("SELECT count(*) FROM data_keys WHERE status = 'active'").Scan(&active); err != nil {
		t.Fatal(err)
	}
	var kinds int
	if err := db.QueryRow("SELECT count(DISTINCT kind) FROM data_keys").Scan(&kinds); err != nil || active != kinds {
		t.Fatalf("%d active data keys for %d kinds (%v)", active, kinds, err)
	}
}

// TestLogsHoldNoPersonalData records consents with customer numbers and device ids from a
// client behind a proxy, and checks that serve's JSON log holds none of it: no identifier,
// no IP address, no user agent, no secret.
func TestLogsHoldNoPersonalData(t *testing.T) {
	srv := startServe(t, map[string]string{"LUPA_DATA_DIR": t.TempDir(), "LUPA_TRUSTED_PROXIES": "127.0.0.1/32", "LUPA_LOG_LEVEL": "debug"})
	origin := srv.URL
	const ua = "LupaPIIAgent/9.9 (marker-ua-31337)"
	ips := []string{"203.0.113.77", "2001:db8::77"}
	var secrets []string
	secrets = append(secrets, srv.AdminKey)
	admin := []string{"Authorization", "Bearer " + srv.AdminKey}
	if r := srv.do(http.MethodPatch, "/v1/admin/tenant", map[string]any{"keep_client_context": true}, admin...); r.Status != http.StatusOK {
		t.Fatalf("turn on client context: %d %s", r.Status, r.Body)
	}
	r := srv.do(http.MethodPost, "/v1/admin/api-keys", map[string]any{"name": "till", "scopes": []string{"consent:write"}}, admin...)
	var key struct {
		Secret string `json:"secret"`
	}
	r.JSON(t, &key)
	secrets = append(secrets, key.Secret)
	server := []string{"Authorization", "Bearer " + key.Secret, "User-Agent", ua}

	var personal []string
	for i, ip := range ips {
		h := []string{"Origin", origin, "X-Forwarded-For", ip, "User-Agent", ua}
		o := recorded(t, srv.do(http.MethodPost, "/v1/consents?property="+srv.WebShopKey, grantAnalytics(), h...))
		personal = append(personal, o.DeviceID, o.Subject)
		srv.do(http.MethodGet, "/v1/consents?property="+srv.WebShopKey, nil, append(h, "Lupa-Device-Id", o.DeviceID)...)
		body := banner(decision("analytics", 0, "withdrawn"))
		body["identifier"] = map[string]any{"kind": "device", "value": o.DeviceID}
		recorded(t, srv.do(http.MethodPost, "/v1/consents?property="+srv.WebShopKey, body, append(h, "Idempotency-Key", "log-test-request-"+string(rune('a'+i)))...))
		// Failures with personal data in them.
		body["identifier"] = map[string]any{"kind": "customer_number", "value": "CUST-PII-0000" + string(rune('a'+i))}
		srv.do(http.MethodPost, "/v1/consents?property="+srv.WebShopKey, body, h...)
		srv.do(http.MethodGet, "/v1/consents?property="+srv.WebShopKey, nil, append(h, "Lupa-Device-Id", "UNKNOWNDEVICEPII000000")...)
		personal = append(personal, "CUST-PII-0000"+string(rune('a'+i)), "UNKNOWNDEVICEPII000000")
	}
	for _, cust := range []string{"CUST-PII-4242", "CUST-PII-5151"} {
		id := map[string]any{"kind": "customer_number", "value": cust}
		o := recorded(t, srv.do(http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": id, "method": "verbal", "agent": "agent-pii-99",
			"decisions": []map[string]any{decision("marketing_email", 1, "granted")}}, server...))
		personal = append(personal, cust, o.Subject)
		srv.do(http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": id}, server...)
		srv.do(http.MethodPost, "/v1/subjects/history", map[string]any{"identifier": id}, server...)
		srv.do(http.MethodPost, "/v1/consents/check", map[string]any{"purpose": "marketing_email", "identifiers": []any{id}}, server...)
		srv.do(http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": id, "method": "api", "bogus": cust}, server...)
		srv.do(http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": id, "method": "api",
			"decisions": []map[string]any{decision("no_"+strings.ToLower(strings.ReplaceAll(cust, "-", "_")), 1, "granted")}}, server...)
		srv.do(http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": cust + "-unknown"}}, server...)
	}
	personal = append(personal, "agent-pii-99")
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}

	logs := srv.Stderr.String()
	if !strings.Contains(logs, `"msg":"request"`) || !strings.Contains(logs, `"route":"/v1/subjects/consents"`) {
		t.Fatalf("the access log was not captured:\n%s", logs)
	}
	ipRe := regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b|[0-9a-fA-F]{1,4}::[0-9a-fA-F]{0,4}`)
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["msg"] == "lupa is serving" {
			delete(entry, "addr") // the listen addresses are the server's own, not a person's
			delete(entry, "metrics")
		}
		text, _ := json.Marshal(entry)
		for _, bad := range append(append(append(personal, ips...), ua, "marker-ua-31337", "203.0.113"), secrets...) {
			if bad != "" && strings.Contains(string(text), bad) {
				t.Errorf("log holds %q: %s", bad, line)
			}
		}
		if ip := ipRe.Find(text); ip != nil {
			t.Errorf("log holds an IP address %q: %s", ip, line)
		}
	}
}
