package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
)

// The audit of the public collection path (POST and GET /v1/consents) as an attacker on the
// open internet and as a careful API client would use it.

// readAs sends the cheap public request of publicAs, with each header given as name, value
// pairs added as a line of its own (a header may come in several lines).
func (s *testServer) readAs(lines ...string) *response {
	s.t.Helper()
	req := newTestRequest(s.t, http.MethodGet, s.URL+"/v1/consents?property="+s.demo.WebShop.PublicKey, nil,
		"Origin", s.Origin, "Lupa-Device-Id", "AAAAAAAAAAAAAAAAAAAAAA")
	for i := 0; i+1 < len(lines); i += 2 {
		req.Header.Add(lines[i], lines[i+1])
	}
	return send(s.t, s.Client(), req)
}

// TestCollectAuditClientIPBehindProxy: behind a trusted proxy the client is the rightmost
// X-Forwarded-For address that is not a proxy, whatever form the proxy writes it in, and
// nothing else a client sends names it.
func TestCollectAuditClientIPBehindProxy(t *testing.T) {
	eachServer(t, rateEnv("127.0.0.1/32"), func(t *testing.T, s *testServer) {
		// X-Real-IP is not read: a proxy that does not set it passes on the client's own.
		for i := range 3 {
			wantAllowed(t, s.readAs("X-Real-IP", "198.51.100."+strconv.Itoa(i+1)))
		}
		wantLimited(t, s.readAs("X-Real-IP", "198.51.100.99"))
		// Nor is Forwarded (the proxy's address, already limited, stays the client).
		wantLimited(t, s.readAs("Forwarded", "for=198.51.100.98"))
		// Nor X-Real-IP beside an X-Forwarded-For that holds no address.
		wantLimited(t, s.readAs("X-Forwarded-For", "unknown", "X-Real-IP", "198.51.100.97"))

		// A proxy that writes the client's port (Azure's gateways do): each client has
		// its own bucket, whichever port it came from.
		for i := range 3 {
			wantAllowed(t, s.readAs("X-Forwarded-For", "203.0.113.1:"+strconv.Itoa(40000+i)))
		}
		wantLimited(t, s.readAs("X-Forwarded-For", "203.0.113.1:50000"))
		wantLimited(t, s.readAs("X-Forwarded-For", "203.0.113.1"))
		wantAllowed(t, s.readAs("X-Forwarded-For", "203.0.113.2:40000"))
		// An IPv4 client in its IPv4-mapped IPv6 form is the same client.
		wantLimited(t, s.readAs("X-Forwarded-For", "::ffff:203.0.113.1"))
		wantLimited(t, s.readAs("X-Forwarded-For", "[::ffff:203.0.113.1]:443"))
		// IPv6 with a port, in brackets: the /64's bucket.
		for range 3 {
			wantAllowed(t, s.readAs("X-Forwarded-For", "[2001:db8:7::1]:443"))
		}
		wantLimited(t, s.readAs("X-Forwarded-For", "2001:db8:7::2"))

		// A client's own X-Forwarded-For line before the one its proxy adds changes nothing.
		for range 3 {
			wantAllowed(t, s.readAs("X-Forwarded-For", "203.0.113.3"))
		}
		wantLimited(t, s.readAs("X-Forwarded-For", "192.0.2.77", "X-Forwarded-For", "203.0.113.3"))
		wantLimited(t, s.readAs("X-Forwarded-For", "192.0.2.78, garbage", "X-Forwarded-For", "203.0.113.3"))
	})
}

// TestCollectAuditVaryOrigin: every answer of the collection routes that may differ with
// the Origin says so (Vary: Origin), so no cache hands one page's answer to another: the
// refusals, the pre-flights and the rate limit's 429 included, with or without Origin.
func TestCollectAuditVaryOrigin(t *testing.T) {
	eachServer(t, rateEnv(""), func(t *testing.T, s *testServer) {
		web := "/v1/consents?property=" + s.demo.WebShop.PublicKey
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		answers := map[string]*response{
			"created":         s.collect(grantAnalytics()),
			"app, no Origin":  s.request(http.MethodPost, app, grantAnalytics()),
			"refused origin":  s.request(http.MethodPost, web, grantAnalytics(), "Origin", "https://evil.example"),
			"pre-flight":      s.request(http.MethodOptions, web, nil, "Origin", s.Origin, "Access-Control-Request-Method", "POST"),
			"pre-flight, bad": s.request(http.MethodOptions, web, nil, "Origin", "null", "Access-Control-Request-Method", "POST"),
		}
		answers["429, no Origin"] = s.request(http.MethodPost, app, grantAnalytics())
		answers["429"] = s.collect(grantAnalytics())
		for name, r := range answers {
			if !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("%s (%d): Vary %q lacks Origin", name, r.Status, r.Header.Values("Vary"))
			}
		}
		if answers["429, no Origin"].Status != http.StatusTooManyRequests {
			t.Fatalf("the limit did not bite: %d", answers["429, no Origin"].Status)
		}
	})
}

// TestCollectAuditCORS: the Origin allow-list is an exact match of the origin browsers
// send; anything else — null, a path, a trailing slash, another port or scheme, a subdomain
// — is refused, its pre-flight included, and never gets the visitor's credentials. A web
// property's key needs an Origin; an app's key takes none.
func TestCollectAuditCORS(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		web := "/v1/consents?property=" + s.demo.WebShop.PublicKey
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		before := s.ledger(t, s.demo.AdminKey)
		for _, origin := range []string{"null", "https://shop.example/", "https://shop.example/path", "https://shop.example:8443",
			"https://shop.example:443", "http://shop.example", "https://www.shop.example", "https://shop.example.evil.example",
			"https://*.shop.example", "https://shop.example, https://evil.example", "*"} {
			pre := s.request(http.MethodOptions, web, nil, "Origin", origin, "Access-Control-Request-Method", "POST",
				"Access-Control-Request-Headers", "content-type, idempotency-key")
			wantProblem(t, pre, http.StatusForbidden)
			if pre.Header.Get("Access-Control-Allow-Origin") != "" || pre.Header.Get("Access-Control-Allow-Methods") != "" {
				t.Errorf("pre-flight of %q allowed: %v", origin, pre.Header)
			}
			for _, r := range []*response{
				s.request(http.MethodPost, web, grantAnalytics(), "Origin", origin),
				s.request(http.MethodGet, web, nil, "Origin", origin, "Lupa-Device-Id", "AAAAAAAAAAAAAAAAAAAAAA"),
			} {
				wantProblem(t, r, http.StatusForbidden)
				if r.Header.Get("Access-Control-Allow-Credentials") != "" {
					t.Errorf("origin %q got the visitor's credentials: %v", origin, r.Header)
				}
			}
		}
		// The allowed origin: pre-flight with credentials, methods, headers and a max age.
		pre := s.request(http.MethodOptions, web, nil, "Origin", s.Origin, "Access-Control-Request-Method", "POST")
		if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != s.Origin ||
			pre.Header.Get("Access-Control-Allow-Credentials") != "true" || pre.Header.Get("Access-Control-Max-Age") == "" {
			t.Fatalf("pre-flight of the allowed origin: %d %v", pre.Status, pre.Header)
		}
		// A web property's key without Origin is not an app's.
		wantProblem(t, s.request(http.MethodPost, web, grantAnalytics()), http.StatusForbidden)
		wantProblem(t, s.request(http.MethodGet, web, nil, "Lupa-Device-Id", "AAAAAAAAAAAAAAAAAAAAAA"), http.StatusForbidden)
		// An app's key from a web page is refused, pre-flight and all.
		wantProblem(t, s.request(http.MethodPost, app, grantAnalytics(), "Origin", s.Origin), http.StatusForbidden)
		wantProblem(t, s.request(http.MethodOptions, app, nil, "Origin", s.Origin, "Access-Control-Request-Method", "POST"), http.StatusForbidden)
		// An app without a customer token decides device-level purposes only.
		wantProblem(t, s.request(http.MethodPost, app, banner(decision("marketing_email", 1, "granted"))),
			http.StatusUnprocessableEntity, "decisions[0].purpose")
		wantProblem(t, s.request(http.MethodPost, app, banner(decision("analytics", 1, "granted"), decision("marketing_email", 0, "denied"))),
			http.StatusUnprocessableEntity, "decisions[1].purpose")
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused requests wrote: %+v → %+v", before, after)
		}
		recorded(t, s.request(http.MethodPost, app, grantAnalytics()))
	})
}

// TestCollectAuditDeviceIDs: a device id works only in the tenant that issued it and only
// for that device; an id Lupa did not issue — another tenant's, a non-canonical spelling of
// a real one — is unknown, and a request with it gets a device of its own.
func TestCollectAuditDeviceIDs(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		other := newOtherTenant(t, s)
		mine := s.newDevice(t, grantAnalytics())
		mineState := string(s.deviceState(mine).Body)
		named := func(id string) map[string]any {
			b := banner(decision("analytics", 0, "denied"))
			b["identifier"] = map[string]any{"kind": "device", "value": id}
			return b
		}
		// Another tenant's app: the id names nobody there.
		otherApp := "/v1/consents?property=" + other.AppKey
		wantProblem(t, s.request(http.MethodGet, otherApp, nil, "Lupa-Device-Id", mine), http.StatusNotFound)
		o := recorded(t, s.request(http.MethodPost, otherApp, named(mine)))
		if o.DeviceID == mine || !identity.ValidDeviceID(o.DeviceID) {
			t.Fatalf("another tenant took the device id: %s", o.DeviceID)
		}
		// A non-canonical spelling of the id (the same 128 bits: base64's last character
		// carries 2 bits, the other 4 are ignored by lax decoders) names nobody either.
		last := mine[len(mine)-1]
		alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		twin := mine[:len(mine)-1] + string(alphabet[strings.IndexByte(alphabet, last)^1])
		// Lax decoding passes it as a device id, and then it is 404; were the check strict, it
		// would be refused as invalid. Either way it never acts for the device.
		invalid := !identity.ValidDeviceID(twin)
		refused := func(r *response) bool {
			return invalid && (r.Status == http.StatusBadRequest || r.Status == http.StatusUnprocessableEntity)
		}
		if r := s.deviceState(twin); !refused(r) {
			wantProblem(t, r, http.StatusNotFound)
		}
		if r := s.collect(named(twin)); !refused(r) {
			if o := recorded(t, r); o.DeviceID == mine {
				t.Fatal("a non-canonical spelling acted for the device")
			}
		}
		if got := string(s.deviceState(mine).Body); got != mineState {
			t.Fatalf("requests with other ids changed the device:\n%s\n%s", mineState, got)
		}
		// The tenant's own app acts for the device: the tenant's device id is the device's,
		// whichever property of the tenant it uses.
		if o := recorded(t, s.request(http.MethodPost, "/v1/consents?property="+s.demo.App.PublicKey, named(mine))); o.DeviceID != mine {
			t.Fatalf("the tenant's app: device %s, want %s", o.DeviceID, mine)
		}
		if st := s.stateOf(t, mine); st["analytics"] != "withdrawn" {
			t.Fatalf("the device after its refusal through the app: %v", st)
		}
	})
}

// TestCollectAuditIdempotencyKeyIsTheSecret: a first decision (no device id yet) retried
// with its key gets the new device id back, so that key is all that stands between the
// answer and anyone else: a short one — a counter, a clock reading — is refused on the
// collection route, before anything is read or written. The server API, whose callers hold
// an API key, takes any key.
func TestCollectAuditIdempotencyKeyIsTheSecret(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		before := s.ledger(t, s.demo.AdminKey)
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		for _, key := range []string{"1", "42", "1795687200000", "app-install-7"} {
			wantProblem(t, s.collect(grantAnalytics(), "Idempotency-Key", key), http.StatusBadRequest, "Idempotency-Key")
			wantProblem(t, s.request(http.MethodPost, app, grantAnalytics(), "Idempotency-Key", key), http.StatusBadRequest, "Idempotency-Key")
		}
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused keys wrote: %+v → %+v", before, after)
		}
		// Two devices of an app that counts its requests would otherwise share key "1": the
		// second would get the first's device id and act for it from then on.
		key := "5f0c6a6e-4a43-4f3e-9c55-0b0f3d1f6a21"
		first := recorded(t, s.request(http.MethodPost, app, grantAnalytics(), "Idempotency-Key", key))
		retry := s.request(http.MethodPost, app, grantAnalytics(), "Idempotency-Key", key)
		if o := recorded(t, retry); o.DeviceID != first.DeviceID || retry.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("a retry with a good key: %s", retry.Body)
		}
		// A key used for one device, sent for another, is refused, not answered.
		other := s.newDevice(t, grantAnalytics())
		b := grantAnalytics()
		b["identifier"] = map[string]any{"kind": "device", "value": other}
		wantProblem(t, s.request(http.MethodPost, app, b, "Idempotency-Key", key), http.StatusUnprocessableEntity, "Idempotency-Key")
		// The server API keeps its 1–255 characters.
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		if r := s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-77"},
			"method": "api", "decisions": []map[string]any{decision("analytics", 0, "denied")}}, "Idempotency-Key", "1"); r.Status != http.StatusCreated {
			t.Fatalf("server API with a short key: %d %s", r.Status, r.Body)
		}
	})
}

// TestCollectAuditBodies: what a careful client may send and what is refused: client times
// far off (the client's claim, kept as it came; the widget sends decisions queued offline
// days later), trailing data, unknown or duplicate members, too many decisions, one purpose
// twice — each refused whole, before anything is written.
func TestCollectAuditBodies(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		for _, ct := range []string{"9999-12-31T23:59:59.999Z", "0001-01-01T00:00:01Z", "1970-01-01T00:00:00Z", "2026-11-26T10:00:00.123456789+14:00"} {
			b := grantAnalytics()
			b["client_time"] = ct
			recorded(t, s.collect(b))
		}
		s.ledger(t, s.demo.AdminKey) // verifies
		before := s.ledger(t, s.demo.AdminKey)
		valid := `{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`
		fifty := make([]map[string]any, 51)
		for i := range fifty {
			fifty[i] = decision("p"+strconv.Itoa(i), 1, "denied")
		}
		for _, c := range []struct {
			name   string
			body   any
			status int
			field  string
		}{
			{"trailing garbage", valid + " x", http.StatusBadRequest, ""},
			{"a second value", valid + valid, http.StatusBadRequest, ""},
			{"unknown member", strings.Replace(valid, `"method"`, `"admin":true,"method"`, 1), http.StatusBadRequest, ""},
			{"duplicate member", strings.Replace(valid, `"method"`, `"method":"banner_accept_all","method"`, 1), http.StatusBadRequest, ""},
			{"51 decisions", banner(fifty...), http.StatusBadRequest, "decisions"},
			{"one purpose twice", banner(decision("analytics", 1, "granted"), decision("analytics", 0, "denied")), http.StatusBadRequest, "decisions[1].purpose"},
			{"client_time not a time", strings.Replace(valid, `"method"`, `"client_time":"yesterday","method"`, 1), http.StatusBadRequest, ""},
			{"client_time past 9999", strings.Replace(valid, `"method"`, `"client_time":"10000-01-01T00:00:00Z","method"`, 1), http.StatusBadRequest, ""},
			{"over 64 KiB", `{"method":"banner_custom","language":"` + strings.Repeat("x", 64<<10) + `"}`, http.StatusRequestEntityTooLarge, ""},
		} {
			r := s.collect(c.body)
			if c.field != "" {
				wantProblem(t, r, c.status, c.field)
			} else {
				wantProblem(t, r, c.status)
			}
		}
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused bodies wrote: %+v → %+v", before, after)
		}
	})
}

// TestCollectAuditConcurrentSameDevice: identical requests for one device at the same
// moment, without Idempotency-Key, are separate interactions: each is answered after its
// commit and the device's chain takes them one after another.
func TestCollectAuditConcurrentSameDevice(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		dev := s.newDevice(t, grantAnalytics())
		before := s.ledger(t, s.demo.AdminKey)
		b := banner(decision("analytics", 1, "granted"), decision("social_advertising", 0, "denied"))
		b["identifier"] = map[string]any{"kind": "device", "value": dev}
		const n = 16
		var wg sync.WaitGroup
		answers := make([]*response, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				answers[i], errs[i] = s.try(http.MethodPost, "/v1/consents?property="+s.demo.WebShop.PublicKey, b, "Origin", s.Origin)
			})
		}
		wg.Wait()
		seen := map[string]bool{}
		for i, r := range answers {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			o := recorded(t, r)
			if o.DeviceID != dev || seen[o.InteractionID] {
				t.Fatalf("answer %d: device %s, interaction %s", i, o.DeviceID, o.InteractionID)
			}
			seen[o.InteractionID] = true
		}
		if after := s.ledger(t, s.demo.AdminKey); after.Events != before.Events+2*n || after.Chains != before.Chains {
			t.Fatalf("ledger %+v after %d interactions of 2 decisions, was %+v", after, n, before)
		}
		if st := s.stateOf(t, dev); st["analytics"] != "granted" || st["social_advertising"] != "denied" {
			t.Fatalf("state: %v", st)
		}
	})
}

// TestCollectAuditForwardedProto: X-Forwarded-Proto counts when, and only when, the
// connection comes from a trusted proxy — whether or not that proxy also sent
// X-Forwarded-For — so the banner's cookie is Secure behind a TLS-terminating load balancer
// and a client cannot claim https for itself.
func TestCollectAuditForwardedProto(t *testing.T) {
	for _, c := range []struct {
		trusted string
		headers []string
		secure  bool
	}{
		{"127.0.0.1/32", []string{"X-Forwarded-Proto", "https"}, true},
		{"127.0.0.1/32", []string{"X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.4"}, true},
		{"127.0.0.1/32", nil, false},
		{"", []string{"X-Forwarded-Proto", "https"}, false},
		{"10.0.0.0/8", []string{"X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.4"}, false},
	} {
		env := map[string]string{"LUPA_RATE_LIMIT": "100000", "LUPA_RATE_BURST": "100000"}
		if c.trusted != "" {
			env["LUPA_TRUSTED_PROXIES"] = c.trusted
		}
		s := newTestServer(t, "sqlite", env)
		s.admin(http.MethodPut, "/v1/admin/properties/"+s.demo.WebShop.ID+"/banner", map[string]any{"cookie_domain": ".shop.example"})
		req := newTestRequest(t, http.MethodPost, s.URL+"/v1/consents?property="+s.demo.WebShop.PublicKey,
			strings.NewReader(`{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`),
			append([]string{"Origin", s.Origin}, c.headers...)...)
		req.Host = "consent.shop.example"
		r := send(t, s.Client(), req)
		cookies := (&http.Response{Header: r.Header}).Cookies()
		if r.Status != http.StatusCreated || len(cookies) != 1 {
			t.Fatalf("%+v: %d, cookies %v", c, r.Status, cookies)
		}
		if cookies[0].Secure != c.secure {
			t.Errorf("trusted %q, headers %v: Secure %v, want %v", c.trusted, c.headers, cookies[0].Secure, c.secure)
		}
	}
}

// TestHSTSOverHTTPS: an answer to a browser that came over https (here through a trusted
// load balancer) tells it to come back over https only; one that came over plain http, or
// says https without being a trusted proxy, does not (a browser ignores HSTS over http,
// and a header a client made up must not decide it).
func TestHSTSOverHTTPS(t *testing.T) {
	for _, c := range []struct {
		trusted string
		headers []string
		hsts    bool
	}{
		{"127.0.0.1/32", []string{"X-Forwarded-Proto", "https"}, true},
		{"127.0.0.1/32", nil, false},
		{"", []string{"X-Forwarded-Proto", "https"}, false},
	} {
		env := map[string]string{}
		if c.trusted != "" {
			env["LUPA_TRUSTED_PROXIES"] = c.trusted
		}
		s := newTestServer(t, "sqlite", env)
		for _, path := range []string{"/t/" + s.demo.Tenant.Slug + "/signin", "/healthz"} {
			r := send(t, s.Client(), newTestRequest(t, http.MethodGet, s.URL+path, nil, c.headers...))
			if got := r.Header.Get("Strict-Transport-Security"); (got == "max-age=31536000") != c.hsts {
				t.Errorf("trusted %q, headers %v, %s: Strict-Transport-Security %q", c.trusted, c.headers, path, got)
			}
		}
	}
}
