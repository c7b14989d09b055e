package main

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/identity/keyring"
)

// historyLen counts a subject's ledger entries through the server API.
func (s *testServer) historyLen(t testing.TB, key string, id map[string]any) int {
	t.Helper()
	r := s.withKey(key, http.MethodPost, "/v1/subjects/history", map[string]any{"identifier": id, "limit": 500})
	if r.Status != http.StatusOK {
		t.Fatalf("history: %d %s", r.Status, r.Body)
	}
	var h struct {
		Events []struct {
			Seq int64 `json:"seq"`
		} `json:"events"`
	}
	r.JSON(t, &h)
	return len(h.Events)
}

// wantIdempotencyProblem fails the test unless r refuses a key reused with another request
// as every route does: 422, type …:idempotency, naming the header.
func wantIdempotencyProblem(t testing.TB, r *response) {
	t.Helper()
	if p := wantProblem(t, r, http.StatusUnprocessableEntity, "Idempotency-Key"); p.Type != "urn:lupa:problem:idempotency" {
		t.Fatalf("a reused Idempotency-Key is refused with type %q, want urn:lupa:problem:idempotency", p.Type)
	}
}

// TestHTTPIdempotency: a retried POST with the same Idempotency-Key gets the same answer and
// writes nothing twice; the key with another body is refused.
func TestHTTPIdempotency(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		l0 := s.ledger(t, s.demo.AdminKey)
		body := banner(decision("analytics", 1, "granted"), decision("social_advertising", 0, "denied"))

		r1 := s.collect(body, "Idempotency-Key", "banner-interaction-1")
		o1 := recorded(t, r1)
		if r1.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("first answer says it is replayed")
		}
		r2 := s.collect(body, "Idempotency-Key", "banner-interaction-1")
		o2 := recorded(t, r2)
		if r2.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry is not marked Idempotent-Replayed: %v", r2.Header)
		}
		if !bytes.Equal(r1.Body, r2.Body) || o1.Receipt != o2.Receipt || o1.InteractionID != o2.InteractionID || o1.DeviceID != o2.DeviceID {
			t.Fatalf("retry answered differently:\n%s\n%s", r1.Body, r2.Body)
		}
		device := map[string]any{"kind": "device", "value": o1.DeviceID}
		if n := s.historyLen(t, write, device); n != 2 {
			t.Fatalf("device has %d events after a retried interaction of 2 decisions", n)
		}
		if l := s.ledger(t, s.demo.AdminKey); l.Chains != l0.Chains+1 || l.Events != l0.Events+2 {
			t.Fatalf("ledger %+v after one retried interaction, was %+v", l, l0)
		}

		// The same key with another body, or from another property, is refused.
		l1 := s.ledger(t, s.demo.AdminKey)
		other := banner(decision("analytics", 1, "denied"))
		wantIdempotencyProblem(t, s.collect(other, "Idempotency-Key", "banner-interaction-1"))
		wantIdempotencyProblem(t, s.request(http.MethodPost, "/v1/consents?property="+s.demo.App.PublicKey, body, "Idempotency-Key", "banner-interaction-1"))
		if l := s.ledger(t, s.demo.AdminKey); l != l1 {
			t.Fatalf("refused retries wrote: %+v → %+v", l1, l)
		}
		// A request that failed did not use its key up: the corrected request goes through.
		wantProblem(t, s.collect(banner(decision("nope", 1, "granted")), "Idempotency-Key", "banner-interaction-2"), http.StatusUnprocessableEntity)
		recorded(t, s.collect(body, "Idempotency-Key", "banner-interaction-2"))

		// The server API.
		cust := map[string]any{"kind": "customer_number", "value": "IDEM-1"}
		rec := map[string]any{"identifier": cust, "method": "verbal", "agent": "agent-7",
			"decisions": []map[string]any{decision("marketing_email", 1, "granted")}}
		a := s.withKey(write, http.MethodPost, "/v1/subjects/consents", rec, "Idempotency-Key", "till-42")
		recorded(t, a)
		b := s.withKey(write, http.MethodPost, "/v1/subjects/consents", rec, "Idempotency-Key", "till-42")
		if b.Status != http.StatusCreated || !bytes.Equal(a.Body, b.Body) || b.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("server retry: %d %s", b.Status, b.Body)
		}
		if n := s.historyLen(t, write, cust); n != 1 {
			t.Fatalf("customer has %d events after a retried request", n)
		}
		rec["agent"] = "agent-8"
		wantIdempotencyProblem(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", rec, "Idempotency-Key", "till-42"))

		// Admin POSTs.
		brands := func() int {
			return strings.Count(string(s.admin(http.MethodGet, "/v1/admin/brands", nil).Body), `"id":`)
		}
		n0 := brands()
		brand := map[string]any{"name": "Retry", "legal_name": "Retry Oy"}
		c1 := s.admin(http.MethodPost, "/v1/admin/brands", brand, "Idempotency-Key", "brand-1")
		c2 := s.admin(http.MethodPost, "/v1/admin/brands", brand, "Idempotency-Key", "brand-1")
		if c1.Status != http.StatusCreated || c2.Status != http.StatusCreated || !bytes.Equal(c1.Body, c2.Body) ||
			c2.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("admin retry:\n%d %s\n%d %s %v", c1.Status, c1.Body, c2.Status, c2.Body, c2.Header)
		}
		if n := brands(); n != n0+1 {
			t.Fatalf("%d brands after a retried create, was %d", n, n0)
		}
		if a := s.admin(http.MethodGet, "/v1/admin/audit?action=brand.create&object_id="+c1.Map(t)["id"].(string), nil); strings.Count(string(a.Body), `"action":"brand.create"`) != 1 {
			t.Fatalf("audit of a retried create: %s", a.Body)
		}
		wantIdempotencyProblem(t, s.admin(http.MethodPost, "/v1/admin/brands", map[string]any{"name": "Other", "legal_name": "Other Oy"}, "Idempotency-Key", "brand-1"))
		// Keys are per route: the same key on another route is a new request.
		if r := s.admin(http.MethodPost, "/v1/admin/recipients", map[string]any{"name": "R", "legal_name": "R Oy", "kind": "processor"},
			"Idempotency-Key", "brand-1"); r.Status != http.StatusCreated {
			t.Fatalf("same key on another route: %d %s", r.Status, r.Body)
		}
		// A failed admin request does not use its key up either.
		wantProblem(t, s.admin(http.MethodPost, "/v1/admin/brands", map[string]any{"name": "Retry", "legal_name": "Dup Oy"}, "Idempotency-Key", "brand-2"), http.StatusConflict)
		if r := s.admin(http.MethodPost, "/v1/admin/brands", map[string]any{"name": "Retry 2", "legal_name": "Retry 2 Oy"}, "Idempotency-Key", "brand-2"); r.Status != http.StatusCreated {
			t.Fatalf("retry after a failure: %d %s", r.Status, r.Body)
		}
		// POSTs without a body take a key too: a retried publish answers as the first did.
		n := s.draftVersion(t, "personalisation", true, "Personalisation v2")
		path := "/v1/admin/purposes/personalisation/versions/" + strconv.Itoa(n) + "/publish"
		p1 := s.admin(http.MethodPost, path, nil, "Idempotency-Key", "publish-1")
		p2 := s.admin(http.MethodPost, path, nil, "Idempotency-Key", "publish-1")
		if p1.Status != http.StatusOK || p2.Status != http.StatusOK || !bytes.Equal(p1.Body, p2.Body) {
			t.Fatalf("retried publish:\n%d %s\n%d %s", p1.Status, p1.Body, p2.Status, p2.Body)
		}
		wantProblem(t, s.admin(http.MethodPost, path, nil), http.StatusConflict)

		// Malformed keys.
		for _, key := range []string{"has space", strings.Repeat("k", 256), "tab\there", "ä-key"} {
			wantProblem(t, s.collect(body, "Idempotency-Key", key), http.StatusBadRequest, "Idempotency-Key")
			wantProblem(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", rec, "Idempotency-Key", key), http.StatusBadRequest, "Idempotency-Key")
			wantProblem(t, s.admin(http.MethodPost, "/v1/admin/brands", map[string]any{"name": "K", "legal_name": "K Oy"}, "Idempotency-Key", key),
				http.StatusBadRequest, "Idempotency-Key")
		}
		recorded(t, s.collect(body, "Idempotency-Key", strings.Repeat("k", 255)))
		if n := brands(); n != n0+2 {
			t.Fatalf("malformed keys created brands: %d, was %d", n, n0)
		}
	})
}

// TestHTTPIdempotencyConcurrent: many identical requests with one key at the same moment
// write once, and every one that succeeds gets the same answer.
func TestHTTPIdempotencyConcurrent(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		const n = 16
		l0 := s.ledger(t, s.demo.AdminKey)
		fire := func(send func() (*response, error)) []*response {
			var wg sync.WaitGroup
			out := make([]*response, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					out[i], errs[i] = send()
				}()
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			return out
		}
		check := func(what string, rs []*response, okStatus int) []byte {
			t.Helper()
			var first []byte
			for _, r := range rs {
				switch r.Status {
				case okStatus:
					if first == nil {
						first = r.Body
					} else if !bytes.Equal(first, r.Body) {
						t.Fatalf("%s: two different answers for one key:\n%s\n%s", what, first, r.Body)
					}
				case http.StatusConflict:
					wantProblem(t, r, http.StatusConflict)
					if r.Header.Get("Retry-After") == "" {
						t.Fatalf("%s: 409 in progress without Retry-After", what)
					}
				default:
					t.Fatalf("%s: status %d: %s", what, r.Status, r.Body)
				}
			}
			if first == nil {
				t.Fatalf("%s: no request succeeded", what)
			}
			return first
		}

		body := grantAnalytics()
		rs := fire(func() (*response, error) {
			return s.try(http.MethodPost, "/v1/consents?property="+s.demo.WebShop.PublicKey, body, "Origin", s.Origin, "Idempotency-Key", "collect-same-moment")
		})
		check("collection", rs, http.StatusCreated)
		if l := s.ledger(t, s.demo.AdminKey); l.Chains != l0.Chains+1 || l.Events != l0.Events+1 {
			t.Fatalf("%d identical requests wrote %+v, was %+v", n, l, l0)
		}

		before := strings.Count(string(s.admin(http.MethodGet, "/v1/admin/brands", nil).Body), `"id":`)
		rs = fire(func() (*response, error) {
			return s.try(http.MethodPost, "/v1/admin/brands", map[string]any{"name": "Once", "legal_name": "Once Oy"},
				"Authorization", "Bearer "+s.demo.AdminKey, "Idempotency-Key", "brand-same-moment")
		})
		check("admin", rs, http.StatusCreated)
		if after := strings.Count(string(s.admin(http.MethodGet, "/v1/admin/brands", nil).Body), `"id":`); after != before+1 {
			t.Fatalf("%d identical creates made %d brands", n, after-before)
		}
	})
}

// TestHTTPIdempotencyKeyOnAnotherObject: keys are scoped by route, but the same key and
// body on the same route for another object is another request, refused with 422; it
// is not answered with the first object's answer, and the second object gets nothing.
func TestHTTPIdempotencyKeyOnAnotherObject(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		versions := func(purpose string) string {
			r := s.admin(http.MethodGet, "/v1/admin/purposes/"+purpose+"/versions", nil)
			if r.Status != http.StatusOK {
				t.Fatalf("versions of %s: %d %s", purpose, r.Status, r.Body)
			}
			return string(r.Body)
		}
		body := map[string]any{"material": true, "texts": versionTexts("Same body")}
		before := versions("personalisation")
		a := s.admin(http.MethodPost, "/v1/admin/purposes/analytics/versions", body, "Idempotency-Key", "version-1")
		if a.Status != http.StatusCreated {
			t.Fatalf("first object: %d %s", a.Status, a.Body)
		}
		b := s.admin(http.MethodPost, "/v1/admin/purposes/personalisation/versions", body, "Idempotency-Key", "version-1")
		wantProblem(t, b, http.StatusUnprocessableEntity, "Idempotency-Key")
		if b.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("another object's answer was replayed: %v", b.Header)
		}
		if after := versions("personalisation"); after != before {
			t.Fatalf("the refused request wrote a version:\n%s\n%s", before, after)
		}
		// The true retry is still answered as the first time.
		if r := s.admin(http.MethodPost, "/v1/admin/purposes/analytics/versions", body, "Idempotency-Key", "version-1"); r.Status != http.StatusCreated ||
			!bytes.Equal(r.Body, a.Body) || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry on the first object: %d %s", r.Status, r.Body)
		}
	})
}

// TestHTTPIdempotencySecretEncryptedAtRest: the stored answer of a key creation does not
// hold its secret in the clear; a retry gets the same secret, uncacheable, also after the
// data keys were rotated.
func TestHTTPIdempotencySecretEncryptedAtRest(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		body := map[string]any{"name": "crm", "scopes": []string{"consent:read"}}
		first := s.admin(http.MethodPost, "/v1/admin/api-keys", body, "Idempotency-Key", "key-1")
		secret, _ := first.Map(t)["secret"].(string)
		if first.Status != http.StatusCreated || !strings.HasPrefix(secret, "sk_") {
			t.Fatalf("create key: %d %s", first.Status, first.Body)
		}
		var rows []struct {
			Response    []byte
			ResponseKID *string `gorm:"column:response_kid"`
		}
		if err := s.app.db.Write.Raw("SELECT response, response_kid FROM idempotency_keys WHERE tenant_id = ? AND key = ?",
			s.demo.Tenant.ID, "key-1").Scan(&rows).Error; err != nil || len(rows) != 1 {
			t.Fatalf("stored answer: %v %v", rows, err)
		}
		if raw := rows[0].Response; bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(`"secret"`)) {
			t.Fatalf("the stored answer shows the secret: %q", raw)
		}
		if rows[0].ResponseKID == nil || *rows[0].ResponseKID != s.app.keys.ActiveID(keyring.Encryption) {
			t.Fatalf("stored answer not under the active encryption key: %v", rows[0].ResponseKID)
		}
		replayed := func(when string) {
			t.Helper()
			r := s.admin(http.MethodPost, "/v1/admin/api-keys", body, "Idempotency-Key", "key-1")
			if r.Status != http.StatusCreated || !bytes.Equal(r.Body, first.Body) || r.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("%s: retry %d %s %v", when, r.Status, r.Body, r.Header)
			}
			if cc := r.Header.Get("Cache-Control"); cc != first.Header.Get("Cache-Control") || cc != "no-store" {
				t.Fatalf("%s: retry Cache-Control %q, first %q", when, cc, first.Header.Get("Cache-Control"))
			}
			if ct := r.Header.Get("Content-Type"); ct != first.Header.Get("Content-Type") {
				t.Fatalf("%s: retry Content-Type %q, first %q", when, ct, first.Header.Get("Content-Type"))
			}
		}
		// The consent writer's answers name the device id, kept otherwise only hashed and
		// encrypted.
		consentBody := banner(decision("analytics", 1, "granted"))
		c1 := s.collect(consentBody, "Idempotency-Key", "banner-device-secret")
		device := recorded(t, c1).DeviceID
		var raw []byte
		if err := s.app.db.Write.Raw("SELECT response FROM idempotency_keys WHERE tenant_id = ? AND key = ?",
			s.demo.Tenant.ID, "banner-device-secret").Row().Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if device == "" || bytes.Contains(raw, []byte(device)) {
			t.Fatalf("the stored consent answer shows the device id %q: %q", device, raw)
		}

		replayed("before rotation")
		if _, err := s.app.keys.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		replayed("after lupa keys rotate")
		if c2 := s.collect(consentBody, "Idempotency-Key", "banner-device-secret"); !bytes.Equal(c2.Body, c1.Body) || c2.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("consent retry after rotation: %d %s", c2.Status, c2.Body)
		}
	})
}

// TestHTTPIdempotencyAbandonedClaim: a claim left pending by a request that died (its
// instance crashed) blocks its key only for identity.IdempotencyAbandoned, not for a day.
func TestHTTPIdempotencyAbandonedClaim(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		const route = "/v1/admin/brands"
		brand := map[string]any{"name": "Crashed", "legal_name": "Crashed Oy"}
		hash := identityweb.RequestHash([]byte(http.MethodPost+" "+route), encodeBody(t, brand))
		if _, stored, err := s.app.ids.ClaimIdempotency(ctx, s.demo.Tenant.ID, route, "crashed-1", hash); err != nil || stored != nil {
			t.Fatalf("claim: %v %v", stored, err)
		}
		// Still fresh: a request in flight.
		r := s.admin(http.MethodPost, route, brand, "Idempotency-Key", "crashed-1")
		wantProblem(t, r, http.StatusConflict)
		// Its instance died long ago.
		old := time.Now().Add(-identity.IdempotencyAbandoned - time.Second).UnixMilli()
		if err := s.app.db.Write.Exec("UPDATE idempotency_keys SET created_at = ? WHERE tenant_id = ? AND key = ?",
			old, s.demo.Tenant.ID, "crashed-1").Error; err != nil {
			t.Fatal(err)
		}
		first := s.admin(http.MethodPost, route, brand, "Idempotency-Key", "crashed-1")
		if first.Status != http.StatusCreated || first.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("retry of an abandoned claim: %d %s", first.Status, first.Body)
		}
		if again := s.admin(http.MethodPost, route, brand, "Idempotency-Key", "crashed-1"); again.Status != http.StatusCreated ||
			!bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry after the takeover: %d %s", again.Status, again.Body)
		}
	})
}
