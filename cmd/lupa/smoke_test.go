package main

import (
	"net/http"
	"testing"
)

func TestBannerInteractionEndToEnd(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		r := s.collect(map[string]any{"method": "banner_custom", "language": "sv",
			"decisions": []map[string]any{{"purpose": "analytics", "version": 1, "decision": "granted"}}})
		if r.Status != http.StatusCreated {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		out := r.Map(t)
		device, _ := out["device_id"].(string)
		if device == "" || out["receipt"] == "" {
			t.Fatalf("no device id or receipt: %s", r.Body)
		}
		g := s.request(http.MethodGet, "/v1/consents?property="+s.demo.WebShop.PublicKey, nil,
			"Origin", s.Origin, "Lupa-Device-Id", device)
		if g.Status != http.StatusOK {
			t.Fatalf("get state: %d %s", g.Status, g.Body)
		}
		var view struct {
			State []struct {
				Purpose string `json:"purpose"`
				State   string `json:"state"`
			} `json:"state"`
		}
		g.JSON(t, &view)
		if len(view.State) == 0 || view.State[0].Purpose != "analytics" || view.State[0].State != "granted" {
			t.Fatalf("state after grant: %s", g.Body)
		}
	})
}
