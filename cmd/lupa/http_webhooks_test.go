package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// TestServeDeliversWebhooks: `lupa serve` delivers a recorded consent to a registered
// endpoint within a second of its commit, signed so that the official Standard Webhooks
// library verifies it (timestamp included), and counts it in its metrics.
func TestServeDeliversWebhooks(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			var mu sync.Mutex
			var got []map[string]any
			var secret string
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				wh, err := standardwebhooks.NewWebhook(secret)
				if err == nil {
					err = wh.Verify(body, r.Header)
				}
				if err != nil {
					t.Errorf("signature: %v", err)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				var m map[string]any
				_ = json.Unmarshal(body, &m)
				got = append(got, m)
				w.WriteHeader(http.StatusNoContent)
			}))
			defer recv.Close()
			s := startServe(t, map[string]string{"LUPA_DATABASE_URL": sqldbtest.URL(t, dialect), "LUPA_DATA_DIR": t.TempDir(),
				"LUPA_MASTER_KEY": newMasterKey(), "LUPA_ALLOW_PRIVATE_WEBHOOKS": "true"})
			admin := []string{"Authorization", "Bearer " + s.AdminKey}
			r := s.do(http.MethodPost, "/v1/admin/webhooks", map[string]any{"url": recv.URL, "event_types": []string{"consent.updated"},
				"recipient_kind": "processor"}, admin...)
			if r.Status != http.StatusCreated {
				t.Fatalf("create webhook: %d %s", r.Status, r.Body)
			}
			mu.Lock()
			secret, _ = r.Map(t)["secret"].(string)
			mu.Unlock()
			start := time.Now()
			if r := s.do(http.MethodPost, "/v1/consents?property="+s.AppKey, grantAnalytics()); r.Status != http.StatusCreated {
				t.Fatalf("record: %d %s", r.Status, r.Body)
			}
			eventually(t, 5*time.Second, "the webhook", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) == 1
			})
			if lag := time.Since(start); lag > time.Second {
				t.Errorf("delivered %s after the commit", lag)
			}
			mu.Lock()
			data, _ := got[0]["data"].(map[string]any)
			mu.Unlock()
			if got[0]["type"] != "consent.updated" || data["purpose"] != "analytics" || data["decision"] != "granted" {
				t.Fatalf("message %v", got[0])
			}
			eventually(t, 5*time.Second, "the metrics", func() bool {
				res, err := http.Get("http://" + s.Metrics + "/metrics")
				if err != nil {
					return false
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return strings.Contains(string(b), `lupa_webhook_attempts_total{outcome="delivered"} 1`) &&
					strings.Contains(string(b), "lupa_webhook_backlog 0")
			})
		})
	}
}
