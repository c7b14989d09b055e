package main

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestHTTPHistoryCursorRoundTrip: a history page's `next`, sent back as `after` exactly as
// it came (no conversion), gives the following page, until every entry has been seen once.
func TestHTTPHistoryCursorRoundTrip(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		id := map[string]any{"kind": "customer_number", "value": "PAGE-1"}
		for _, d := range []string{"granted", "denied", "granted", "denied", "granted"} {
			recorded(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": id,
				"method": "verbal", "agent": "agent-7", "decisions": []map[string]any{decision("marketing_email", 1, d)}}))
		}
		seen := map[int64]bool{}
		req := map[string]any{"identifier": id, "limit": 2}
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("paging does not end: %v", seen)
			}
			r := s.withKey(write, http.MethodPost, "/v1/subjects/history", req)
			if r.Status != http.StatusOK {
				t.Fatalf("page %d with %s: %d %s", pages, mustJSON(req), r.Status, r.Body)
			}
			var page struct {
				Events []struct {
					Seq int64 `json:"seq"`
				} `json:"events"`
				Next json.RawMessage `json:"next"`
			}
			r.JSON(t, &page)
			for _, e := range page.Events {
				if seen[e.Seq] {
					t.Fatalf("entry %d on two pages", e.Seq)
				}
				seen[e.Seq] = true
			}
			if page.Next == nil {
				break
			}
			req["after"] = page.Next // verbatim, whatever JSON type it is
		}
		if n := s.historyLen(t, write, id); len(seen) != n || n < 5 {
			t.Fatalf("paging saw %d entries of %d", len(seen), n)
		}
	})
}
