package main

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestHTTPBatchesFailAlone fires many valid interactions at once together with requests
// that can only fail inside the writer's batch (one Idempotency-Key sent with two bodies at
// the same moment) and requests that collide there (several creating the same new customer
// at once). Every valid request is acknowledged and recorded; each bad one fails alone.
func TestHTTPBatchesFailAlone(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		l0 := s.ledger(t, s.demo.AdminKey)
		const valid, pairs, sameCustomer = 48, 6, 8
		type result struct {
			kind string
			n    int
			r    *response
			err  error
		}
		var wg sync.WaitGroup
		results := make(chan result, valid+2*pairs+sameCustomer)
		start := make(chan struct{})
		public := "/v1/consents?property=" + s.demo.WebShop.PublicKey
		send := func(kind string, n int, method, path string, body any, headers ...string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := s.try(method, path, body, headers...)
				results <- result{kind, n, r, err}
			}()
		}
		for i := range valid {
			send("valid", i, http.MethodPost, public, banner(decision("analytics", 1, "granted"), decision("social_advertising", 0, "denied")), "Origin", s.Origin)
		}
		for i := range pairs {
			key := fmt.Sprintf("pair-of-requests-%d", i)
			send("pair", i, http.MethodPost, public, banner(decision("analytics", 1, "granted")), "Origin", s.Origin, "Idempotency-Key", key)
			send("pair", i, http.MethodPost, public, banner(decision("analytics", 1, "denied")), "Origin", s.Origin, "Idempotency-Key", key)
		}
		cust := map[string]any{"kind": "customer_number", "value": "BATCH-NEW-1"}
		for i := range sameCustomer {
			send("customer", i, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": cust, "method": "api",
				"decisions": []map[string]any{decision("marketing_email", 1, "granted")}}, "Authorization", "Bearer "+write)
		}
		close(start)
		wg.Wait()
		close(results)

		devices := map[string]bool{}
		pairStatus := map[int][]int{}
		subjects := map[string]bool{}
		for res := range results {
			if res.err != nil {
				t.Fatal(res.err)
			}
			switch res.kind {
			case "valid":
				o := recorded(t, res.r)
				if devices[o.DeviceID] {
					t.Fatalf("device id %s issued twice", o.DeviceID)
				}
				devices[o.DeviceID] = true
			case "pair":
				pairStatus[res.n] = append(pairStatus[res.n], res.r.Status)
				if res.r.Status != http.StatusCreated {
					wantProblem(t, res.r, http.StatusUnprocessableEntity, "Idempotency-Key")
				}
			case "customer":
				subjects[recorded(t, res.r).Subject] = true
			}
		}
		for i, st := range pairStatus {
			if len(st) != 2 || st[0]+st[1] != http.StatusCreated+http.StatusUnprocessableEntity {
				t.Errorf("pair %d: statuses %v, want one 201 and one 422", i, st)
			}
		}
		if len(subjects) != 1 {
			t.Fatalf("%d concurrent requests for one new customer made %d subjects", sameCustomer, len(subjects))
		}
		for d := range devices {
			if st := s.stateOf(t, d); st["analytics"] != "granted" || st["social_advertising"] != "denied" {
				t.Fatalf("device %s: %v", d, st)
			}
		}
		if n := s.historyLen(t, write, cust); n != sameCustomer {
			t.Fatalf("the customer's chain has %d events, want %d", n, sameCustomer)
		}
		l := s.ledger(t, s.demo.AdminKey)
		if want := l0.Events + 2*valid + pairs + sameCustomer; l.Events != want {
			t.Fatalf("ledger has %d events, want %d", l.Events, want)
		}
		if want := l0.Chains + valid + pairs + 1; l.Chains != want {
			t.Fatalf("ledger has %d chains, want %d", l.Chains, want)
		}
	})
}
