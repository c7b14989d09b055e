package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
)

// TestHTTPDeviceIDs: a device id authorises changes to that device's decisions only; an id
// Lupa never issued gets a new device; the collection API takes no other identifier.
func TestHTTPDeviceIDs(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		both := banner(decision("analytics", 1, "granted"), decision("social_advertising", 1, "granted"))
		a := s.newDevice(t, both)
		b := s.newDevice(t, both)
		if a == b {
			t.Fatal("two new devices got one id")
		}
		stateB := string(s.deviceState(b).Body)
		historyB := s.historyLen(t, read, map[string]any{"kind": "device", "value": b})

		// Device A withdraws analytics, naming itself: only A changes.
		body := banner(decision("analytics", 0, "withdrawn"))
		body["identifier"] = map[string]any{"kind": "device", "value": a}
		o := recorded(t, s.collect(body))
		if o.DeviceID != a {
			t.Fatalf("answer names device %s, want %s", o.DeviceID, a)
		}
		if st := s.stateOf(t, a); st["analytics"] != "withdrawn" || st["social_advertising"] != "granted" {
			t.Fatalf("device A after withdrawing analytics: %v", st)
		}
		if got := string(s.deviceState(b).Body); got != stateB {
			t.Fatalf("device A's request changed device B:\n%s\n%s", stateB, got)
		}
		if n := s.historyLen(t, read, map[string]any{"kind": "device", "value": b}); n != historyB {
			t.Fatalf("device B's history grew from %d to %d", historyB, n)
		}
		// The same through the app: still only A.
		body["identifier"] = map[string]any{"kind": "device", "value": a}
		body["decisions"] = []map[string]any{decision("social_advertising", 0, "denied")}
		recorded(t, s.request(http.MethodPost, "/v1/consents?property="+s.demo.App.PublicKey, body))
		if st := s.stateOf(t, a); st["social_advertising"] != "withdrawn" {
			t.Fatalf("device A after the app's refusal: %v", st)
		}
		if got := string(s.deviceState(b).Body); got != stateB {
			t.Fatalf("device A's request through the app changed device B")
		}

		// An id of the right form that Lupa never issued does not name anyone: the request
		// gets a new device of its own, and the made-up id stays unknown.
		made := identity.NewDeviceID()
		body = banner(decision("analytics", 1, "granted"))
		body["identifier"] = map[string]any{"kind": "device", "value": made}
		o = recorded(t, s.collect(body))
		if o.DeviceID == made || o.DeviceID == a || o.DeviceID == b || !identity.ValidDeviceID(o.DeviceID) {
			t.Fatalf("a made-up device id got device %q", o.DeviceID)
		}
		wantProblem(t, s.deviceState(made), http.StatusNotFound)
		if st := s.stateOf(t, o.DeviceID); st["analytics"] != "granted" {
			t.Fatalf("the new device's state: %v", st)
		}

		// Other identifiers are refused, and malformed device ids too.
		before := s.ledger(t, s.demo.AdminKey)
		for _, c := range []struct {
			id     map[string]any
			status int
			field  string
		}{
			{map[string]any{"kind": "customer_number", "value": "C-1"}, http.StatusUnprocessableEntity, "identifier.kind"},
			{map[string]any{"kind": "email", "value": "a@example.fi"}, http.StatusUnprocessableEntity, "identifier.kind"},
			{map[string]any{"kind": "phone", "value": "+358401234567"}, http.StatusBadRequest, "identifier.kind"},
			{map[string]any{"kind": "device", "value": "not-a-device-id"}, http.StatusBadRequest, "identifier.value"},
			{map[string]any{"kind": "device", "value": a + "="}, http.StatusBadRequest, "identifier.value"},
			{map[string]any{"kind": "device", "value": strings.ToUpper(a)}, 0, ""},
			{map[string]any{"kind": "device"}, http.StatusBadRequest, "identifier.value"},
		} {
			body := banner(decision("analytics", 1, "denied"))
			body["identifier"] = c.id
			r := s.collect(body)
			if c.status == 0 {
				// Another valid-looking id: treated like any id Lupa never issued.
				if r.Status == http.StatusCreated && recorded(t, r).DeviceID == a {
					t.Fatalf("a changed-case id acted on device A")
				}
				if r.Status == http.StatusCreated {
					before.Chains++
					before.Events++
				}
				continue
			}
			wantProblem(t, r, c.status, c.field)
		}
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused identifiers were written: %+v → %+v", before, after)
		}
		if st := s.stateOf(t, a); st["analytics"] != "withdrawn" {
			t.Fatalf("device A changed: %v", st)
		}

		// Reading state needs the device id in its header, never in the URL.
		wantProblem(t, s.request(http.MethodGet, "/v1/consents?property="+s.demo.WebShop.PublicKey, nil, "Origin", s.Origin), http.StatusBadRequest, "Lupa-Device-Id")
		wantProblem(t, s.deviceState("short"), http.StatusBadRequest)
	})
}
