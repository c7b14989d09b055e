package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam/ciamtest"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Fuzz targets for the HTTP API, one per family of routes. Whatever a client sends — a body,
// a query string, a header, a path segment — the answer is a 2xx or an RFC 9457 problem
// (never a 5xx, a panic or a bare error), a 400 or 422 names its fields, and a refused
// request leaves what is stored as it was. Plain `go test` runs the seeds (and the inputs
// the fuzzer once found, under testdata/fuzz/) as regression tests; to fuzz one family:
//
//	go test ./cmd/lupa -run '^$' -fuzz '^FuzzPublicConsents$' -fuzztime 3m
//
// Each fuzz worker starts its own Lupa on SQLite, so the checks compare what that one
// server stored before and after each input.

// fuzzEnv is a test server with the demo tenant, a second tenant, and a little data of
// each, for the targets to aim at.
type fuzzEnv struct {
	*testServer
	write, read string         // the demo tenant's consent:write and consent:read keys
	device      string         // a device of the demo web shop, analytics granted
	lone        string         // another device, that the seeds name only with bad decisions
	customer    map[string]any // a customer of the demo tenant, marketing_email granted
	receipt     string         // the customer's receipt
	draft       int            // a draft version of the demo tenant's analytics purpose
	webhook     string         // a webhook endpoint of the demo tenant
	other       *otherTenant
	otherHook   string             // a webhook endpoint of the other tenant
	ciam        *ciamtest.Provider // the demo tenant's CIAM, when the target takes customer tokens
	tokens      map[string]string  // good customer tokens of the CIAM by "token:SUB"
}

// tokenSubjects are the customers that fuzzEnv.tokens holds tokens of.
var tokenSubjects = []string{"cust-1", "cust-2", "cust-3", "cust-4", strings.Repeat("s", 255), "ä😀"}

// newFuzzEnv starts Lupa on SQLite (each worker of `go test -fuzz` runs it once) and
// creates what the targets aim at; with ciam, the demo tenant trusts a CIAM on loopback
// (which needs LUPA_ALLOW_PRIVATE_WEBHOOKS). The server's own t is f: setup may fail through
// it, the fuzz functions must not (they use fuzzEnv.do).
func newFuzzEnv(f *testing.F, ciam bool) *fuzzEnv {
	f.Helper()
	env := roomy
	if ciam {
		env = ciamEnv
	}
	s := newTestServer(f, sqldb.SQLite, env)
	e := &fuzzEnv{testServer: s, customer: map[string]any{"kind": "customer_number", "value": "FUZZ-1"}}
	_, e.write = s.newKey(f, s.demo.AdminKey, "consent:write")
	_, e.read = s.newKey(f, s.demo.AdminKey, "consent:read")
	e.device = s.newDevice(f, grantAnalytics())
	e.lone = s.newDevice(f, grantAnalytics())
	e.receipt = recorded(f, s.withKey(e.write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": e.customer,
		"method": "api", "decisions": []map[string]any{decision("marketing_email", 1, "granted")}})).Receipt
	e.draft = s.draftVersion(f, "analytics", false, "Analytics draft")
	e.webhook = e.created(f, s.demo.AdminKey, "/v1/admin/webhooks", fuzzWebhook)
	e.other = newOtherTenant(f, s)
	e.otherHook = e.created(f, e.other.AdminKey, "/v1/admin/webhooks", fuzzWebhook)
	if ciam {
		e.ciam = ciamtest.New(f)
		s.newIssuer(f, s.demo.AdminKey, e.ciam, nil)
		// Signed now, for an hour: the provider fails through f, which a fuzz function must
		// not call.
		e.tokens = map[string]string{}
		for _, sub := range tokenSubjects {
			e.tokens["token:"+sub] = "Bearer " + e.ciam.Token(sub, "lupa")
		}
	}
	return e
}

// authorization turns a fuzzed Authorization into the header sent: "token:SUB" is a good
// customer token of the demo tenant's CIAM for SUB (one of tokenSubjects); anything else
// goes as it is.
func (e *fuzzEnv) authorization(auth string) string {
	if tok, ok := e.tokens[auth]; ok {
		return tok
	}
	return auth
}

// authSeeds are Authorization headers for the public API: none, good customer tokens, and
// tokens and schemes it must refuse.
func (e *fuzzEnv) authSeeds() []string {
	claims := e.ciam.Claims("cust-1", "lupa", time.Now())
	return []string{"", "token:cust-1", "token:cust-2", "token:" + strings.Repeat("s", 255), "token:ä😀",
		"Bearer x.y.z", "Bearer " + ciamtest.Unsigned(claims), "Bearer " + ciamtest.HMACWithPublicKey(e.ciam.Current(), claims),
		"Basic Zm9vOmJhcg==", "Bearer", "Bearer " + strings.Repeat("a", 20000)}
}

var fuzzWebhook = map[string]any{"url": "https://hooks.example/lupa", "event_types": []string{"consent.updated"}, "recipient_kind": "processor"}

// created POSTs body with key and returns the new object's id.
func (e *fuzzEnv) created(f *testing.F, key, path string, body any) string {
	f.Helper()
	r := e.withKey(key, http.MethodPost, path, body)
	if r.Status != http.StatusCreated {
		f.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
	}
	id, _ := r.Map(f)["id"].(string)
	return id
}

// do sends a request whose parts come from the fuzzer: query is appended to path as it
// came (bytes that cannot stand in a request line percent-encoded), body is sent when not
// nil, and headers (name, value pairs) whose name or value is empty are left out. An input that Go's
// client cannot send at all is skipped: it never reaches Lupa.
func (e *fuzzEnv) do(t *testing.T, method, path, query string, body []byte, headers ...string) *response {
	t.Helper()
	if q := escapeQuery(query); q != "" {
		if strings.Contains(path, "?") {
			path += "&" + q
		} else {
			path += "?" + q
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Skipf("not a request: %v", err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "" || headers[i+1] == "" {
			continue
		}
		if !sendableHeader(headers[i+1]) {
			t.Skipf("Go's client does not send %s %q", headers[i], headers[i+1])
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %.100s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %.100s: reading the answer: %v", method, path, err)
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: data}
}

// escapeQuery percent-encodes the bytes of a fuzzed query string that cannot stand in a
// request line (controls, spaces, non-ASCII, '#'); everything else, "%00" included, goes
// as it came.
func escapeQuery(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sendableHeader says whether Go's client sends v as a header value (RFC 9110 field
// content: no controls but tab).
func sendableHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// headerName says whether Go's client sends name as a header name (an RFC 9110 token).
func headerName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return name != ""
}

// checkAnswer fails the test unless r is what the API promises whatever it was sent: no
// 5xx; a 4xx is application/problem+json with a type, a title and the right status, and a
// 400 or 422 names each field it lists (or the body as a whole) with a message; a 2xx that
// says it is JSON is JSON. It returns the
// problem of a 4xx, nil otherwise.
func checkAnswer(t *testing.T, r *response) *problem {
	t.Helper()
	t.Logf("answer: %d %.300s", r.Status, r.Body) // shown when a later check fails
	if r.Status >= 500 {
		t.Fatalf("status %d: %.500s", r.Status, r.Body)
	}
	ct := r.Header.Get("Content-Type")
	if r.Status < 400 {
		if strings.Contains(ct, "json") && r.Status != http.StatusNoContent && !json.Valid(r.Body) {
			t.Fatalf("status %d with a body that is not JSON: %.500s", r.Status, r.Body)
		}
		return nil
	}
	if !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("status %d with Content-Type %q: %.500s", r.Status, ct, r.Body)
	}
	var p problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("status %d: the problem is not JSON (%v): %.500s", r.Status, err, r.Body)
	}
	if p.Status != r.Status || !strings.HasPrefix(p.Type, "urn:lupa:problem:") || p.Title == "" {
		t.Fatalf("status %d: the problem lacks a type, a title or the right status: %.500s", r.Status, r.Body)
	}
	if r.Status == http.StatusBadRequest || r.Status == http.StatusUnprocessableEntity {
		for _, fe := range p.Errors {
			// An empty field is the body as a whole (openapi.yaml, FieldError): only the JSON
			// decoder speaks of it, when the body is not JSON or not an object.
			wholeBody := fe.Field == "" && strings.HasSuffix(p.Type, ":malformed_json")
			if (fe.Field == "" && !wholeBody) || fe.Message == "" {
				t.Fatalf("status %d names a field without a name or a message: %.500s", r.Status, r.Body)
			}
		}
	}
	return &p
}

func success(r *response) bool { return r.Status >= 200 && r.Status < 300 }

// storedTables are the tables only requests write (no background work runs in a test
// server): a refused request must not add or remove a row of any.
var storedTables = []string{"subjects", "identifiers", "consent_events", "consent_state", "chain_heads", "receipts",
	"interaction_context", "domain_events", "idempotency_keys", "audit_log", "brands", "properties", "recipients",
	"purposes", "purpose_versions", "api_keys", "webhook_endpoints"}

// counts reads the number of rows of every stored table, in one statement.
func (e *fuzzEnv) counts(t *testing.T) string {
	t.Helper()
	parts := make([]string, len(storedTables))
	for i, tb := range storedTables {
		parts[i] = "(SELECT count(*) FROM " + tb + ")"
	}
	n := make([]int64, len(storedTables))
	dst := make([]any, len(n))
	for i := range n {
		dst[i] = &n[i]
	}
	if err := e.app.db.ReadSQL().QueryRow("SELECT " + strings.Join(parts, ", ")).Scan(dst...); err != nil {
		t.Fatalf("count stored rows: %v", err)
	}
	var b strings.Builder
	for i, tb := range storedTables {
		fmt.Fprintf(&b, "%s=%d ", tb, n[i])
	}
	return b.String()
}

// view reads paths with key through the API, as a test of what a request changed.
func (e *fuzzEnv) view(t *testing.T, key string, method string, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		var body []byte
		if method == http.MethodPost { // the server API's reads: path is "route body"
			route, in, _ := strings.Cut(p, " ")
			p, body = route, []byte(in)
		}
		r := e.do(t, method, p, "", body, "Authorization", "Bearer "+key, "Content-Type", "application/json")
		if r.Status != http.StatusOK {
			t.Fatalf("read %s: %d %.300s", p, r.Status, r.Body)
		}
		fmt.Fprintf(&b, "%s: %s\n", p, r.Body)
	}
	return b.String()
}

// unchanged fails the test when a view of what is stored differs from the one before.
func unchanged(t *testing.T, what, before, after string) {
	t.Helper()
	if before != after {
		t.Fatalf("%s changed:\nbefore: %.2000s\nafter:  %.2000s", what, before, after)
	}
}

// contentTypes the seeds try; "" sends application/json.
var fuzzContentTypes = []string{"", "application/json; charset=utf-8", "application/problem+json", "text/plain",
	"application/json; charset=latin1", "application/json; charset", "multipart/form-data; boundary=x", ";;;", "application/x-www-form-urlencoded"}

func contentType(ct string) string {
	if ct == "" {
		return "application/json"
	}
	return ct
}

// hostileBodies are bodies every JSON endpoint must refuse with a 4xx.
var hostileBodies = []string{
	``, `{`, `[]`, `null`, `"x"`, `1`, `{}`, `{"a":1}`, `{"method":"banner_custom"}{}`,
	"\xff\xfe{}", `{"` + strings.Repeat("a", 300) + `":1}`, strings.Repeat("[", 10000),
	strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000),
}

// FuzzPublicConsents fuzzes POST /v1/consents: the body, the query string after the property
// key, the Idempotency-Key, the Content-Type, the Authorization (a customer token or junk)
// and one more header ("Name: value"), with the keys of the demo web shop (with its Origin),
// the demo app, the other tenant's app, and the web shop without an Origin. The demo tenant
// keeps client context, so the user agent is stored too.
func FuzzPublicConsents(f *testing.F) {
	e := newFuzzEnv(f, true)
	if r := e.admin(http.MethodPatch, "/v1/admin/tenant", map[string]any{"keep_client_context": true}); r.Status != http.StatusOK {
		f.Fatalf("keep client context: %d %s", r.Status, r.Body)
	}
	valid := mustJSON(grantAnalytics())
	mine := mustJSON(with(grantAnalytics(), "identifier", map[string]any{"kind": "device", "value": e.device}))
	deny := mustJSON(with(banner(decision("analytics", 1, "denied"), decision("advertising", 1, "granted")), "identifier",
		map[string]any{"kind": "device", "value": e.device}))
	for key := range uint8(4) {
		f.Add(key, valid, "", "", "", "", "")
		f.Add(key, mine, "", "", "", "", "")
	}
	f.Add(uint8(0), deny, "lang=fi", "idem-1", "", "", "")
	f.Add(uint8(0), valid, "", "idem-2", "application/json; charset=utf-8", "", "")
	f.Add(uint8(2), mine, "", "", "", "", "") // another tenant's property names the demo's device
	for _, ct := range fuzzContentTypes {
		f.Add(uint8(0), valid, "", "", ct, "", "")
	}
	for _, b := range hostileBodies {
		f.Add(uint8(0), []byte(b), "", "", "", "", "")
	}
	for _, b := range []string{
		`{"method":"banner_custom","decisions":[{"purpose":"analytics","version":"one","decision":"granted"}]}`,
		`{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1e400,"decision":"granted"}]}`,
		`{"method":"banner_custom","decisions":[{"purpose":"analytics","version":9223372036854775807,"decision":"granted"}]}`,
		`{"method":"banner_custom","decisions":[{"purpose":"analytics","version":99,"decision":"granted"}]}`,
		`{"method":"banner_custom","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","decisions":[{"purpose":"analytics\u0000","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","language":"fi-😀","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","client_time":"0000-01-01T00:00:00Z","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","client_time":"9999-12-31T23:59:59+14:00","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","ui_hash":"` + strings.Repeat("g", 64) + `","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted","text_hash":"` + strings.Repeat("0", 64) + `"}]}`,
		`{"method":"banner_custom","identifier":{"kind":"device","value":"short"},"decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","identifier":{"kind":"email","value":"a@example.fi"},"decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","identifier":null,"decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","gpc_confirmed":true,"decisions":[{"purpose":"advertising","version":1,"decision":"granted"}]}`,
		`{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted","decision":"denied"}]}`,
		`{"METHOD":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
	} {
		f.Add(uint8(0), []byte(b), "", "", "", "", "")
	}
	f.Add(uint8(0), valid, "property=pk_other", "", "", "", "")
	f.Add(uint8(0), valid, "%zz&a=%00", "", "", "", "")
	f.Add(uint8(0), valid, "", strings.Repeat("k", 256), "", "", "")
	f.Add(uint8(0), valid, "", "key with spaces", "", "", "")

	// A customer's token: the app's device joins the person; bad decisions or a bad
	// token must leave both alone.
	for _, auth := range e.authSeeds() {
		f.Add(uint8(1), valid, "", "", "", auth, "")
		f.Add(uint8(1), mine, "", "", "", auth, "")
		f.Add(uint8(1), mustJSON(banner(decision("marketing_email", 1, "granted"))), "", "", "", auth, "")
	}
	for _, d := range []string{e.device, e.lone} {
		f.Add(uint8(1), mustJSON(with(banner(decision("no_such_purpose", 1, "granted")), "identifier",
			map[string]any{"kind": "device", "value": d})), "", "", "", "token:cust-3", "")
		f.Add(uint8(1), mustJSON(with(banner(decision("marketing_email", 7, "granted")), "identifier",
			map[string]any{"kind": "device", "value": d})), "", "", "", "token:cust-3", "")
	}
	f.Add(uint8(0), mine, "", "idem-3", "", "token:cust-4", "")
	// One key, two devices: the second is another request, refused, and joins no one.
	for range 2 {
		d := e.newDevice(f, grantAnalytics())
		f.Add(uint8(1), mustJSON(with(grantAnalytics(), "identifier", map[string]any{"kind": "device", "value": d})), "", "idem-4", "",
			"token:cust-4", "")
	}
	for _, h := range []string{"Sec-GPC: 1", "Sec-GPC: 0", "User-Agent: Mozilla/5.0 \xff\xfe", "User-Agent: " + strings.Repeat("ä", 400),
		"X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: ::1, junk", "X-Request-Id: " + strings.Repeat("r", 65),
		"Accept-Language: sv", "Content-Encoding: gzip", "Content-Encoding: identity", "Host: evil.example", "Origin: null"} {
		f.Add(uint8(0), valid, "", "", "", "", h)
		f.Add(uint8(0), mustJSON(with(grantAnalytics(), "decisions", []any{decision("advertising", 1, "granted")})), "", "", "", "", h)
	}
	f.Add(uint8(0), mustJSON(with(with(grantAnalytics(), "decisions", []any{decision("advertising", 1, "granted")}), "gpc_confirmed", true)), "", "", "", "", "Sec-GPC: 1")
	keys := []struct {
		pk     string
		origin string
		other  bool
	}{{e.demo.WebShop.PublicKey, e.Origin, false}, {e.demo.App.PublicKey, "", false}, {e.other.AppKey, "", true}, {e.demo.WebShop.PublicKey, "", false}}
	mineState := func(t *testing.T) string {
		t.Helper()
		r := e.do(t, http.MethodGet, "/v1/consents?property="+e.demo.WebShop.PublicKey, "", nil, "Origin", e.Origin, "Lupa-Device-Id", e.device)
		if r.Status != http.StatusOK {
			t.Fatalf("the demo device's state: %d %s", r.Status, r.Body)
		}
		return string(r.Body)
	}
	f.Fuzz(func(t *testing.T, key uint8, body []byte, query, idem, ct, auth, hdr string) {
		k := keys[int(key)%len(keys)]
		before, state := e.counts(t), mineState(t)
		name, value, _ := strings.Cut(hdr, ":")
		name = strings.TrimSpace(name)
		if name != "" && !headerName(name) {
			t.Skipf("not a header name: %q", name)
		}
		r := e.do(t, http.MethodPost, "/v1/consents?property="+k.pk, query, body,
			"Origin", k.origin, "Idempotency-Key", idem, "Content-Type", contentType(ct), "Authorization", e.authorization(auth),
			name, strings.TrimSpace(value))
		checkAnswer(t, r)
		// PostgreSQL stores text in UTF-8 only: what the request left must be, on SQLite too.
		var agent string
		if err := e.app.db.Read.Raw("SELECT user_agent FROM interaction_context ORDER BY interaction_id DESC LIMIT 1").Row().Scan(&agent); err == nil && !utf8.ValidString(agent) {
			t.Fatalf("user agent stored as %q", agent)
		}
		if !success(r) {
			unchanged(t, "stored rows", before, e.counts(t))
		}
		if !success(r) || k.other {
			unchanged(t, "the demo device's state", state, mineState(t))
		}
	})
}

// FuzzPublicState fuzzes GET /v1/consents: the Lupa-Device-Id header, the query string, the
// Origin and the Authorization, with the same property keys as FuzzPublicConsents. A read
// writes nothing — but a customer's token may make the person and link the device, never
// for a request it refuses — and another tenant's property never shows the demo device's
// state.
func FuzzPublicState(f *testing.F) {
	e := newFuzzEnv(f, true)
	for key := range uint8(4) {
		f.Add(key, e.device, "", "", "")
		f.Add(key, e.device, "", e.Origin, "")
	}
	for _, d := range []string{"", "short", strings.Repeat("a", 5000), "ä" + e.device[2:], e.device + " ", strings.ToUpper(e.device),
		identity.NewID(), "../" + e.device, "%00"} {
		f.Add(uint8(0), d, "", e.Origin, "")
	}
	for _, q := range []string{"property=pk_x", "property=", "a=%00", "%zz", "lang=fi&lang=sv", strings.Repeat("a=b&", 500)} {
		f.Add(uint8(0), e.device, q, e.Origin, "")
	}
	for _, o := range []string{"https://evil.example", "null", "https://shöp.example", "https://shop.example:443", "http://shop.example", "*"} {
		f.Add(uint8(0), e.device, "", o, "")
	}
	// A customer's token: the first links the device, the next person's is refused.
	for _, auth := range e.authSeeds() {
		f.Add(uint8(1), e.device, "", "", auth)
		f.Add(uint8(1), "", "", "", auth)
		f.Add(uint8(1), identity.NewDeviceID(), "", "", auth)
	}
	f.Add(uint8(1), e.lone, "", "", "token:cust-2")
	f.Add(uint8(1), e.lone, "", "", "token:cust-3")
	f.Add(uint8(1), "short", "", "", "token:cust-4")
	f.Add(uint8(0), e.device, "", e.Origin, "token:cust-1") // tokens are for app properties
	keys := []string{e.demo.WebShop.PublicKey, e.demo.App.PublicKey, e.other.AppKey, "pk_" + identity.NewID()}
	f.Fuzz(func(t *testing.T, key uint8, device, query, origin, auth string) {
		k := int(key) % len(keys)
		header := e.authorization(auth)
		before := e.counts(t)
		r := e.do(t, http.MethodGet, "/v1/consents?property="+keys[k], query, nil, "Origin", origin, "Lupa-Device-Id", device,
			"Authorization", header)
		checkAnswer(t, r)
		if !success(r) || header == auth { // not a good token: nothing to make or link
			unchanged(t, "stored rows", before, e.counts(t))
		}
		if k == 2 && success(r) && strings.Contains(string(r.Body), `"state":"granted"`) {
			t.Fatalf("another tenant's property shows a granted state: %s", r.Body)
		}
	})
}

// FuzzServerRecord fuzzes POST /v1/subjects/consents, the back-office record route: the
// body, the query string, the Idempotency-Key and the Content-Type, with the demo tenant's
// write key, its read key (which may not write) and the other tenant's write key.
func FuzzServerRecord(f *testing.F) {
	e := newFuzzEnv(f, false)
	rec := func(id map[string]any, method string, ds ...map[string]any) []byte {
		return mustJSON(map[string]any{"identifier": id, "method": method, "decisions": ds})
	}
	valid := rec(map[string]any{"kind": "customer_number", "value": "C-1001"}, "api", decision("marketing_email", 1, "granted"))
	mine := rec(e.customer, "api", decision("marketing_email", 1, "withdrawn"))
	for key := range uint8(3) {
		f.Add(key, valid, "", "", "")
		f.Add(key, mine, "", "", "")
	}
	f.Add(uint8(0), valid, "", "idem-1", "")
	f.Add(uint8(0), mustJSON(with(with(mustMap(mine), "method", "verbal"), "agent", "Agent 7")), "", "", "")
	f.Add(uint8(0), mustJSON(with(mustMap(valid), "property_id", e.demo.App.ID)), "", "", "")
	f.Add(uint8(0), mustJSON(with(mustMap(valid), "property_id", e.other.AppID)), "", "", "") // another tenant's property
	f.Add(uint8(0), mustJSON(with(mustMap(valid), "identifier", map[string]any{"kind": "device", "value": e.device})), "", "", "")
	f.Add(uint8(0), mustJSON(with(mustMap(valid), "identifier", map[string]any{"kind": "email", "value": "Fuzz@Example.FI"})), "", "", "")
	f.Add(uint8(0), mustJSON(with(mustMap(valid), "identifier", map[string]any{"kind": "idp", "namespace": "https://id.example", "value": "sub-1"})), "", "", "")
	f.Add(uint8(0), mustJSON(with(mustMap(valid), "identifier", map[string]any{"kind": "external", "namespace": "crm", "value": "x"})), "", "", "")
	f.Add(uint8(0), mustJSON(with(mustMap(valid), "client_time", "2000-01-01T00:00:00Z")), "", "", "")
	for _, ct := range fuzzContentTypes {
		f.Add(uint8(0), valid, "", "", ct)
	}
	for _, b := range hostileBodies {
		f.Add(uint8(0), []byte(b), "", "", "")
	}
	for _, b := range []string{
		`{"identifier":{"kind":"customer_number","value":1001},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
		`{"identifier":{"kind":"customer_number","value":"C\u00071001"},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
		`{"identifier":{"kind":"phone","value":"+358401234567"},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
		`{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"verbal","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
		`{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"api","decisions":[{"purpose":"marketing_email","version":2,"decision":"granted"}]}`,
		`{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"api","decisions":[{"purpose":"nope","version":1,"decision":"granted"}]}`,
		`{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"objected"}]}`,
		`{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"api","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`,
		`{"identifier":{"kind":"email","value":"not an address"},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
		`{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"api","property_id":"` + strings.Repeat("x", 64) + `","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
	} {
		f.Add(uint8(0), []byte(b), "", "", "")
	}
	keys := []struct {
		key   string
		other bool
	}{{e.write, false}, {e.read, false}, {e.other.WriteKey, true}}
	mineView := func(t *testing.T) string {
		t.Helper()
		id := string(mustJSON(map[string]any{"identifier": e.customer}))
		return e.view(t, e.read, http.MethodPost, "/v1/subjects/state "+id, "/v1/subjects/history "+id)
	}
	f.Fuzz(func(t *testing.T, key uint8, body []byte, query, idem, ct string) {
		k := keys[int(key)%len(keys)]
		before, mine := e.counts(t), mineView(t)
		r := e.do(t, http.MethodPost, "/v1/subjects/consents", query, body,
			"Authorization", "Bearer "+k.key, "Idempotency-Key", idem, "Content-Type", contentType(ct))
		checkAnswer(t, r)
		if !success(r) {
			unchanged(t, "stored rows", before, e.counts(t))
		}
		if !success(r) || k.other {
			unchanged(t, "the demo customer's state and history", mine, mineView(t))
		}
	})
}

// FuzzServerReads fuzzes the server API's reads, POST /v1/subjects/state and
// /v1/subjects/history: the body, the query string and the Content-Type, with the demo
// tenant's read key and the other tenant's key. A read changes no consent, and the other
// tenant never sees the demo customer.
func FuzzServerReads(f *testing.F) {
	e := newFuzzEnv(f, false)
	id := func(v any) []byte { return mustJSON(map[string]any{"identifier": v}) }
	for route := range uint8(2) {
		for key := range uint8(2) {
			f.Add(route, key, id(e.customer), "", "")
		}
		f.Add(route, uint8(0), id(map[string]any{"kind": "device", "value": e.device}), "", "")
		f.Add(route, uint8(0), mustJSON(map[string]any{"identifier": e.customer, "property_id": e.demo.App.ID}), "", "")
		f.Add(route, uint8(0), mustJSON(map[string]any{"identifier": e.customer, "property_id": e.other.AppID}), "", "")
		f.Add(route, uint8(0), id(map[string]any{"kind": "email", "value": "A@Example.fi"}), "", "")
		f.Add(route, uint8(0), id(map[string]any{"kind": "idp", "value": "x"}), "", "")
		f.Add(route, uint8(0), id(e.customer), "limit=1&after=0", "")
		f.Add(route, uint8(0), id(e.customer), "", "text/plain")
		for _, b := range hostileBodies {
			f.Add(route, uint8(0), []byte(b), "", "")
		}
	}
	for _, extra := range []map[string]any{
		{"limit": 1}, {"limit": 500}, {"limit": 501}, {"limit": -1}, {"after": "1"}, {"after": "99999999999999999999"}, {"after": 1e300},
		{"after": "-1"}, {"after": ""}, {"purpose": "marketing_email"}, {"kind": "decision"}, {"kind": "merge"},
		{"from": "2000-01-01T00:00:00Z", "to": "1999-01-01T00:00:00Z"}, {"from": "0001-01-01T00:00:00Z"},
		{"to": "9999-12-31T23:59:59Z"}, {"from": "2000-01-01T00:00:00+99:00"},
	} {
		m := map[string]any{"identifier": e.customer}
		for k, v := range extra {
			m[k] = v
		}
		f.Add(uint8(1), uint8(0), mustJSON(m), "", "")
	}
	routes := []string{"/v1/subjects/state", "/v1/subjects/history"}
	keys := []string{e.read, e.other.WriteKey}
	f.Fuzz(func(t *testing.T, route, key uint8, body []byte, query, ct string) {
		k := int(key) % len(keys)
		before := e.counts(t)
		r := e.do(t, http.MethodPost, routes[int(route)%len(routes)], query, body,
			"Authorization", "Bearer "+keys[k], "Content-Type", contentType(ct))
		checkAnswer(t, r)
		unchanged(t, "stored rows", before, e.counts(t))
		if k == 1 && success(r) && (strings.Contains(string(r.Body), `"state":"granted"`) || strings.Contains(string(r.Body), `"seq":`)) {
			t.Fatalf("another tenant's key reads the demo tenant's consents: %s", r.Body)
		}
	})
}

// FuzzConsentCheck fuzzes POST /v1/consents/check (the bulk check, with its larger body
// limit): the body and the Content-Type, with the demo tenant's read key and the other
// tenant's key.
func FuzzConsentCheck(f *testing.F) {
	e := newFuzzEnv(f, false)
	check := func(purpose string, ids ...any) []byte {
		return mustJSON(map[string]any{"purpose": purpose, "identifiers": ids})
	}
	dev := map[string]any{"kind": "device", "value": e.device}
	for key := range uint8(2) {
		f.Add(key, check("marketing_email", e.customer), "")
		f.Add(key, check("analytics", dev, e.customer), "")
	}
	f.Add(uint8(0), check("nope", e.customer), "")
	f.Add(uint8(0), check("marketing_email", e.customer, e.customer, e.customer), "")
	f.Add(uint8(0), check("marketing_email", map[string]any{"kind": "email", "value": "Ä@Example.FI"}), "")
	f.Add(uint8(0), check("marketing_email", map[string]any{"kind": "idp", "namespace": "https://id.example", "value": "s"}), "")
	f.Add(uint8(0), check("marketing_email", map[string]any{"kind": "device", "value": "short"}, map[string]any{"kind": "phone", "value": "1"}), "")
	f.Add(uint8(0), check("", map[string]any{}), "")
	f.Add(uint8(0), check("marketing_email", nil), "")
	f.Add(uint8(0), []byte(`{"purpose":"marketing_email","identifiers":{"kind":"customer_number","value":"C-1001"}}`), "")
	f.Add(uint8(0), []byte(`{"purpose":"marketing_email","identifiers":[]}`), "")
	f.Add(uint8(0), check("marketing_email", e.customer), "text/plain")
	for _, b := range hostileBodies {
		f.Add(uint8(0), []byte(b), "")
	}
	keys := []string{e.read, e.other.WriteKey}
	f.Fuzz(func(t *testing.T, key uint8, body []byte, ct string) {
		k := int(key) % len(keys)
		before := e.counts(t)
		r := e.do(t, http.MethodPost, "/v1/consents/check", "", body, "Authorization", "Bearer "+keys[k], "Content-Type", contentType(ct))
		checkAnswer(t, r)
		unchanged(t, "stored rows", before, e.counts(t))
		if k == 1 && success(r) && strings.Contains(string(r.Body), `"may_use":true`) {
			t.Fatalf("another tenant's key reads the demo tenant's consents: %s", r.Body)
		}
	})
}

// FuzzReceiptVerify fuzzes POST /v1/receipts/verify, which anyone may call: the body and
// the Content-Type. Verifying writes nothing.
func FuzzReceiptVerify(f *testing.F) {
	e := newFuzzEnv(f, false)
	rc := func(s string) []byte { return mustJSON(map[string]any{"receipt": s}) }
	parts := strings.Split(e.receipt, ".")
	f.Add(rc(e.receipt), "")
	f.Add(rc(e.receipt), "text/plain")
	f.Add(rc(e.receipt+"x"), "")
	f.Add(rc(strings.ToUpper(e.receipt)), "")
	f.Add(rc(""), "")
	f.Add(rc("a.b.c"), "")
	f.Add(rc("..."), "")
	f.Add(rc(strings.Repeat("A", 60000)), "")
	if len(parts) == 3 {
		f.Add(rc(parts[0]+"."+parts[1]+"."), "")
		f.Add(rc(parts[0]+".."+parts[2]), "")
		f.Add(rc("."+parts[1]+"."+parts[2]), "")
		f.Add(rc(parts[0]+"."+parts[1]), "")
		f.Add(rc(parts[0]+"."+parts[0]+"."+parts[2]), "")
		f.Add(rc(parts[1]+"."+parts[1]+"."+parts[2]), "")
		f.Add(rc("eyJhbGciOiJub25lIn0."+parts[1]+"."), "") // alg none
		f.Add(rc("e30."+parts[1]+"."+parts[2]), "")        // {}
		f.Add(rc("bnVsbA."+parts[1]+"."+parts[2]), "")     // null
		f.Add(rc(parts[0]+".e30."+parts[2]), "")
		f.Add(rc(parts[0]+".bnVsbA."+parts[2]), "")
		f.Add(rc(parts[0]+".W10."+parts[2]), "") // []
	}
	for _, b := range hostileBodies {
		f.Add([]byte(b), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		before := e.counts(t)
		r := e.do(t, http.MethodPost, "/v1/receipts/verify", "", body, "Content-Type", contentType(ct))
		checkAnswer(t, r)
		unchanged(t, "stored rows", before, e.counts(t))
	})
}

// adminTarget is one admin route of a fuzz target: path holds "{id}" where the fuzzed path
// segment goes, def is the segment when the fuzzer gives none.
type adminTarget struct {
	method, path, def string
}

// fuzzAdmin runs an admin fuzz target: the route, the path segment, the body, the
// Idempotency-Key and the Content-Type come from the fuzzer, and so does whose admin key
// sends it (the demo tenant's or the other's). A refused request changes nothing (the rows,
// and views, read through the API with the same key); nothing changes the other tenant's
// views.
func fuzzAdmin(f *testing.F, e *fuzzEnv, targets []adminTarget, views func(other bool) []string) {
	keys := []string{e.demo.AdminKey, e.other.AdminKey}
	f.Fuzz(func(t *testing.T, route, key uint8, seg string, body []byte, idem, ct string) {
		tg := targets[int(route)%len(targets)]
		k := int(key) % len(keys)
		if seg == "" {
			seg = tg.def
		}
		path := strings.Replace(tg.path, "{id}", url.PathEscape(seg), 1)
		own, theirs := views(k == 1), views(k == 0)
		before := e.counts(t)
		mine, other := e.view(t, keys[k], http.MethodGet, own...), e.view(t, keys[1-k], http.MethodGet, theirs...)
		r := e.do(t, tg.method, path, "", body, "Authorization", "Bearer "+keys[k], "Idempotency-Key", idem, "Content-Type", contentType(ct))
		checkAnswer(t, r)
		if !success(r) {
			unchanged(t, "stored rows", before, e.counts(t))
			unchanged(t, "the admin API's view", mine, e.view(t, keys[k], http.MethodGet, own...))
		}
		unchanged(t, "the other tenant's view", other, e.view(t, keys[1-k], http.MethodGet, theirs...))
	})
}

// addAdminSeeds adds, for each route, each body with and without another tenant's key and
// a few hostile variants.
func addAdminSeeds(f *testing.F, route uint8, seg string, bodies ...[]byte) {
	for _, b := range bodies {
		f.Add(route, uint8(0), seg, b, "", "")
		f.Add(route, uint8(1), seg, b, "", "")
		f.Add(route, uint8(0), seg, b, "idem-"+seg, "")
	}
	f.Add(route, uint8(0), seg, bodies[0], "", "text/plain")
	f.Add(route, uint8(0), seg, bodies[0], strings.Repeat("k", 256), "")
	for _, b := range hostileBodies {
		f.Add(route, uint8(0), seg, []byte(b), "", "")
	}
}

// FuzzAdminPurposes fuzzes the admin routes that create and change purposes and their
// versions.
func FuzzAdminPurposes(f *testing.F) {
	e := newFuzzEnv(f, false)
	targets := []adminTarget{
		{http.MethodPost, "/v1/admin/purposes", ""},
		{http.MethodPatch, "/v1/admin/purposes/{id}", "analytics"},
		{http.MethodPost, "/v1/admin/purposes/{id}/versions", "analytics"},
		{http.MethodPatch, "/v1/admin/purposes/analytics/versions/{id}", fmt.Sprint(e.draft)},
	}
	texts := map[string]any{"texts": versionTexts("Fuzz")}
	addAdminSeeds(f, 0, "",
		mustJSON(map[string]any{"key": "newsletter", "level": "person", "legal_basis": "consent", "reask_months": 12}),
		mustJSON(map[string]any{"key": "stats", "level": "device", "legal_basis": "necessary", "dpv_purpose": "https://w3id.org/dpv#ServiceUsageAnalytics"}),
		mustJSON(map[string]any{"key": "partners", "level": "person", "legal_basis": "consent", "recipient_ids": []string{e.other.RecipientID}}),
		mustJSON(map[string]any{"key": "scoped", "level": "device", "legal_basis": "consent", "scope_brand_ids": []string{e.other.BrandID},
			"scope_property_ids": []string{e.other.AppID}}),
		mustJSON(map[string]any{"key": "analytics", "level": "device", "legal_basis": "consent"}),
		[]byte(`{"key":"newsletter","level":"person","legal_basis":"consent","reask_months":99999999999999999999}`),
		[]byte(`{"key":"uutiskirje_ä","level":"person","legal_basis":"consent"}`),
		[]byte(`{"key":"x","level":"person","legal_basis":"legitimate_interest","double_opt_in":true}`))
	addAdminSeeds(f, 1, "analytics",
		mustJSON(map[string]any{"reask_months": 6}),
		mustJSON(map[string]any{"gpc_opt_out": true}),
		mustJSON(map[string]any{"level": "person"}),
		mustJSON(map[string]any{"legal_basis": "necessary"}),
		mustJSON(map[string]any{"recipient_ids": []string{e.other.RecipientID}}),
		mustJSON(map[string]any{"scope_brand_ids": []string{e.other.BrandID}}),
		[]byte(`{"reask_months":61,"dpv_purpose":"not an IRI","double_opt_in":true}`))
	for _, seg := range []string{"marketing_email", "nope", "analytics\x00", strings.Repeat("a", 5000), "..", "%00"} {
		f.Add(uint8(1), uint8(0), seg, mustJSON(map[string]any{"reask_months": 6}), "", "")
		f.Add(uint8(2), uint8(0), seg, mustJSON(texts), "", "")
	}
	addAdminSeeds(f, 2, "analytics",
		mustJSON(texts),
		mustJSON(map[string]any{"material": true, "texts": texts["texts"]}),
		[]byte(`{"texts":{"klingon language":{"title":"a","description":"b"}}}`),
		[]byte(`{"texts":{"fi":{"title":"","description":"b","policy_url":"ftp://x"}}}`),
		[]byte(`{"texts":{}}`),
		[]byte(`{"texts":{"fi":null}}`),
		[]byte(`{"texts":{"":{"title":"a","description":"b"}}}`))
	addAdminSeeds(f, 3, fmt.Sprint(e.draft),
		mustJSON(texts),
		mustJSON(map[string]any{"material": true}),
		[]byte(`{"texts":"fi"}`),
		[]byte(`{"texts":{"fi":{"title":"`+strings.Repeat("a", 201)+`","description":"b"}}}`))
	for _, seg := range []string{"1", "0", "-1", "99999999999999999999", "1e3", " 1", "01", "\x001"} {
		f.Add(uint8(3), uint8(0), seg, mustJSON(texts), "", "")
	}
	fuzzAdmin(f, e, targets, func(other bool) []string {
		return []string{"/v1/admin/purposes", "/v1/admin/purposes/analytics/versions"}
	})
}

// FuzzAdminProperties fuzzes the admin routes that create and change properties.
func FuzzAdminProperties(f *testing.F) {
	e := newFuzzEnv(f, false)
	targets := []adminTarget{
		{http.MethodPost, "/v1/admin/properties", ""},
		{http.MethodPatch, "/v1/admin/properties/{id}", e.demo.WebShop.ID},
	}
	brand := e.demo.Brands[0].ID
	addAdminSeeds(f, 0, "",
		mustJSON(map[string]any{"name": "Kiosk", "brand_id": brand, "kind": "kiosk"}),
		mustJSON(map[string]any{"name": "Web", "brand_id": brand, "kind": "web", "allowed_origins": []string{"https://a.example", "https://*.b.example"}}),
		mustJSON(map[string]any{"name": "Stolen", "brand_id": e.other.BrandID, "kind": "app"}),
		mustJSON(map[string]any{"name": "K", "brand_id": brand, "kind": "web", "allowed_origins": []string{"https://a.example\u0000"}}),
		mustJSON(map[string]any{"name": "K", "brand_id": brand, "kind": "web", "allowed_origins": []string{"*", "null", "https://", "https://a.example/path", "https://user@a.example"}}),
		mustJSON(map[string]any{"name": "K", "brand_id": brand, "kind": "call_centre", "default_language": "Finnish!"}),
		[]byte(`{"name":"K","brand_id":"x","kind":"spaceship"}`))
	addAdminSeeds(f, 1, e.demo.WebShop.ID,
		mustJSON(map[string]any{"name": "Shop"}),
		mustJSON(map[string]any{"allowed_origins": []string{"https://ok.example"}}),
		mustJSON(map[string]any{"allowed_origins": []string{}}),
		mustJSON(map[string]any{"brand_id": e.other.BrandID}),
		mustJSON(map[string]any{"status": "archived"}),
		mustJSON(map[string]any{"default_language": "sv"}),
		[]byte(`{"status":"deleted"}`),
		[]byte(`{"allowed_origins":null}`))
	for _, seg := range []string{e.demo.App.ID, e.other.AppID, identity.NewID(), "x", strings.Repeat("x", 5000), "%00", ".."} {
		f.Add(uint8(1), uint8(0), seg, mustJSON(map[string]any{"name": "Hijacked"}), "", "")
	}
	fuzzAdmin(f, e, targets, func(other bool) []string { return []string{"/v1/admin/properties"} })
}

// FuzzAdminWebhooks fuzzes the admin routes that create and change webhook endpoints.
func FuzzAdminWebhooks(f *testing.F) {
	e := newFuzzEnv(f, false)
	targets := []adminTarget{
		{http.MethodPost, "/v1/admin/webhooks", ""},
		{http.MethodPatch, "/v1/admin/webhooks/{id}", e.webhook},
		{http.MethodPost, "/v1/admin/webhooks/{id}/rotate-secret", e.webhook},
	}
	hook := func(extra map[string]any) []byte {
		m := map[string]any{"url": "https://h.example/", "event_types": []string{"consent.updated"}, "recipient_kind": "processor"}
		for k, v := range extra {
			m[k] = v
		}
		return mustJSON(m)
	}
	var recipient string
	for _, r := range e.demo.Recipients {
		if r.Kind == "partner" {
			recipient = r.ID
		}
	}
	addAdminSeeds(f, 0, "",
		mustJSON(fuzzWebhook),
		hook(map[string]any{"purposes": []string{"analytics", "marketing_email"}, "description": "CRM"}),
		hook(map[string]any{"recipient_kind": "third_party", "recipient_id": recipient}),
		hook(map[string]any{"recipient_kind": "third_party", "recipient_id": e.other.RecipientID}),
		hook(map[string]any{"event_types": []string{"consent.updated", "subject.merged", "subject.erasure_approved"}}),
		hook(map[string]any{"url": "https://u:p@h.example/"}),
		hook(map[string]any{"url": "http://[::1]:80/"}),
		hook(map[string]any{"url": "https://h.example/" + strings.Repeat("a", 2100)}),
		hook(map[string]any{"purposes": []string{"Not A Key"}}),
		hook(map[string]any{"event_types": []string{"consent.updated", "consent.updated"}}))
	addAdminSeeds(f, 1, e.webhook,
		mustJSON(map[string]any{"description": "d"}),
		mustJSON(map[string]any{"url": "https://other.example/hook"}),
		mustJSON(map[string]any{"recipient_kind": "third_party"}),
		mustJSON(map[string]any{"recipient_kind": "third_party", "recipient_id": e.other.RecipientID}),
		mustJSON(map[string]any{"purposes": []string{}}),
		[]byte(`{"event_types":[]}`),
		[]byte(`{"secret":"whsec_x"}`))
	addAdminSeeds(f, 2, e.webhook,
		mustJSON(map[string]any{"overlap_seconds": 60}),
		[]byte(`{}`),
		[]byte(`{"overlap_seconds":-1}`),
		[]byte(`{"overlap_seconds":1e400}`))
	for _, seg := range []string{e.otherHook, identity.NewID(), "x", strings.Repeat("x", 5000), "%00"} {
		f.Add(uint8(1), uint8(0), seg, mustJSON(map[string]any{"description": "Hijacked"}), "", "")
		f.Add(uint8(2), uint8(0), seg, []byte(`{}`), "", "")
	}
	fuzzAdmin(f, e, targets, func(other bool) []string { return []string{"/v1/admin/webhooks"} })
}

// mustMap decodes a JSON object made by mustJSON.
func mustMap(b []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// TestHTTPHostileUserAgent: a tenant that keeps client context keeps the user agent a
// browser sends, whatever its bytes. A header value may carry any byte from 0x80 on, which
// is not always UTF-8, and PostgreSQL stores text in UTF-8 only: the interaction is still
// recorded, with what of the user agent is text.
func TestHTTPHostileUserAgent(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		if r := s.admin(http.MethodPatch, "/v1/admin/tenant", map[string]any{"keep_client_context": true}); r.Status != http.StatusOK {
			t.Fatalf("keep client context: %d %s", r.Status, r.Body)
		}
		for _, ua := range []string{"Mozilla/5.0 \xff\xfe(X11)", "\xc3", "Mozilla/5.0 " + strings.Repeat("ä", 300), "Lupa\x80"} {
			recorded(t, s.collect(grantAnalytics(), "User-Agent", ua))
		}
		var agents []string
		if err := s.app.db.Read.Raw("SELECT user_agent FROM interaction_context").Scan(&agents).Error; err != nil {
			t.Fatal(err)
		}
		if len(agents) != 4 {
			t.Fatalf("%d user agents kept, want 4", len(agents))
		}
		for _, a := range agents {
			if !utf8.ValidString(a) || len(a) > 512 {
				t.Errorf("user agent kept as %q", a)
			}
		}
	})
}

// FuzzAPIReads fuzzes every read of the JSON API at once: the method (GET, HEAD, OPTIONS and
// ones Lupa has no route for), the path under /v1/, the query string, and whose credentials
// go with it (none, the demo tenant's admin or read key, the other tenant's admin key, or
// junk). The seeds are the router's own GET routes, their parameters filled with the demo
// tenant's ids. Reads write nothing, and the other tenant's key never reads the demo
// tenant's objects.
func FuzzAPIReads(f *testing.F) {
	e := newFuzzEnv(f, false)
	router, err := e.app.routes(newMetrics())
	if err != nil {
		f.Fatal(err)
	}
	var recipient string
	for _, r := range e.demo.Recipients {
		recipient = r.ID
	}
	params := strings.NewReplacer(":pk", e.demo.WebShop.PublicKey, ":purpose", "analytics", ":number", "1",
		":id", e.demo.WebShop.ID, ":request_id", identity.NewID(), ":delivery", identity.NewID(), ":hash", strings.Repeat("0", 64),
		":build", "b50d86a3", ":issuerId", identity.NewID(), ":file", "widget.js", ":lang", "fi")
	methods := []string{http.MethodGet, http.MethodHead, http.MethodOptions, "TRACE", "PROPFIND", "get"}
	for _, rt := range router.Routes() {
		if rt.Method != http.MethodGet || !strings.HasPrefix(rt.Path, "/v1/") {
			continue
		}
		path := strings.TrimPrefix(params.Replace(rt.Path), "/v1/")
		for key := range uint8(5) {
			f.Add(uint8(0), path, "", key)
		}
		f.Add(uint8(1), path, "", uint8(1))
		f.Add(uint8(2), path, "", uint8(1))
	}
	for _, p := range []string{"admin/brands/" + e.demo.Brands[0].ID, "admin/recipients/" + recipient, "admin/webhooks/" + e.webhook,
		"admin/purposes/analytics/versions/" + fmt.Sprint(e.draft), "admin/properties/" + e.demo.App.ID + "/banner"} {
		f.Add(uint8(0), p, "", uint8(3)) // the other tenant's key on the demo tenant's objects
	}
	for _, q := range []string{"limit=1", "limit=0", "limit=-1", "limit=1e400", "limit=99999999999999999999", "before=" + identity.NewID(),
		"before=x", "before=%00", "object_id=%ff", "action=" + strings.Repeat("a", 5000), "limit=1&limit=2", "date=2025-02-30", "date=99999-01-01"} {
		f.Add(uint8(0), "admin/audit", q, uint8(1))
		f.Add(uint8(0), "admin/data-map/systems", q, uint8(1))
		f.Add(uint8(0), "admin/webhooks/"+e.webhook+"/deliveries", q, uint8(1))
		f.Add(uint8(0), "admin/access-log", q, uint8(1))
	}
	for _, p := range []string{"", "admin", "admin/", "admin//brands", "admin/brands/", "admin/../admin/brands", "admin/brands/%2e%2e",
		"admin/brands/%2F", "ADMIN/BRANDS", "admin/purposes/analytics/versions/01", "admin/purposes/analytics/versions/+1",
		"admin/purposes/analytics/versions/0x1", "consents", "properties//config", "static/..%2f..%2fgo.mod", "static/%00"} {
		f.Add(uint8(0), p, "", uint8(1))
	}
	keys := []string{"", "Bearer " + e.demo.AdminKey, "Bearer " + e.read, "Bearer " + e.other.AdminKey, "Bearer sk_" + strings.Repeat("x", 40)}
	// What only the demo tenant's admin may read: its id and its objects' ids.
	demoIDs := []string{e.demo.Tenant.ID, e.demo.WebShop.ID, e.demo.App.ID, e.demo.Brands[0].ID, e.webhook, recipient}
	f.Fuzz(func(t *testing.T, method uint8, path, query string, key uint8) {
		m, k := methods[int(method)%len(methods)], int(key)%len(keys)
		before := e.counts(t)
		r := e.do(t, m, "/v1/"+escapePath(path), query, nil, "Authorization", keys[k], "Origin", e.Origin)
		if m == http.MethodHead || m == http.MethodOptions && r.Status < 400 {
			// No body to check: HEAD answers none, nor does a pre-flight.
			t.Logf("answer: %d", r.Status)
			if ct := r.Header.Get("Content-Type"); r.Status >= 500 || r.Status >= 400 && !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("%s: status %d, Content-Type %q", m, r.Status, ct)
			}
		} else {
			checkAnswer(t, r)
		}
		unchanged(t, "stored rows", before, e.counts(t))
		if k == 3 && success(r) && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			for _, id := range demoIDs {
				if strings.Contains(string(r.Body), id) {
					t.Fatalf("the other tenant's key reads the demo tenant's %s: %.500s", id, r.Body)
				}
			}
		}
	})
}

// escapePath percent-encodes the bytes of a fuzzed path that cannot stand in a request line
// or would end the path (controls, spaces, non-ASCII, '?', '#'); "%00" and the like go as
// they came.
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' || c == '?' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TestHTTPCIAMRefusedLinksNothing: an app's request with a customer's token and its device
// id that is refused — decisions the service cannot record, or a device another person's
// sign-in linked before — leaves the device anonymous and makes no person: a merge is in the
// ledger for good. (Inputs FuzzPublicConsents found.)
func TestHTTPCIAMRefusedLinksNothing(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		p := ciamtest.New(t)
		s.newIssuer(t, s.demo.AdminKey, p, nil)
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		device := recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox",
			"decisions": []map[string]any{decision("analytics", 1, "granted")}})).DeviceID
		withDevice := func(d map[string]any) map[string]any {
			return map[string]any{"method": "checkbox", "identifier": map[string]any{"kind": "device", "value": device},
				"decisions": []map[string]any{d}}
		}
		person := func(sub string) *response {
			return s.withKey(read, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": idpOf(p, sub)})
		}
		before := s.ledger(t, s.demo.AdminKey)
		wantProblem(t, s.request(http.MethodPost, app, withDevice(decision("no_such_purpose", 1, "granted")),
			bearerTo(p.Token("cust-a", "lupa"))...), http.StatusUnprocessableEntity, "decisions[0].purpose")
		wantProblem(t, s.request(http.MethodPost, app, withDevice(decision("marketing_email", 7, "granted")),
			bearerTo(p.Token("cust-a", "lupa"))...), http.StatusUnprocessableEntity)
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused requests changed the ledger: %+v → %+v", before, after)
		}
		wantProblem(t, person("cust-a"), http.StatusNotFound)

		// The device joins cust-b; cust-c's token with it is a conflict, and makes no cust-c.
		recorded(t, s.request(http.MethodPost, app, withDevice(decision("marketing_email", 1, "granted")), bearerTo(p.Token("cust-b", "lupa"))...))
		wantProblem(t, s.request(http.MethodPost, app, withDevice(decision("marketing_email", 1, "granted")),
			bearerTo(p.Token("cust-c", "lupa"))...), http.StatusConflict)
		wantProblem(t, s.request(http.MethodGet, app, nil, append(bearerTo(p.Token("cust-c", "lupa")), "Lupa-Device-Id", device)...),
			http.StatusConflict)
		wantProblem(t, person("cust-c"), http.StatusNotFound)

		// A key used for one device and then another: the second request is refused, and its
		// device stays anonymous; a retry of the first is answered as before.
		key := []string{"Idempotency-Key", "one-key-two-devices"}
		first := recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox",
			"decisions": []map[string]any{decision("analytics", 1, "denied")}}))
		second := recorded(t, s.request(http.MethodPost, app, map[string]any{"method": "checkbox",
			"decisions": []map[string]any{decision("analytics", 1, "denied")}}))
		body := func(device string) map[string]any {
			return map[string]any{"method": "checkbox", "identifier": map[string]any{"kind": "device", "value": device},
				"decisions": []map[string]any{decision("marketing_email", 1, "granted")}}
		}
		auth := append(bearerTo(p.Token("cust-d", "lupa")), key...)
		recorded(t, s.request(http.MethodPost, app, body(first.DeviceID), auth...))
		before = s.ledger(t, s.demo.AdminKey)
		wantIdempotencyProblem(t, s.request(http.MethodPost, app, body(second.DeviceID), auth...))
		if r := s.request(http.MethodPost, app, body(first.DeviceID), auth...); r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("a refused key and a retry changed the ledger: %+v → %+v", before, after)
		}
	})
}
