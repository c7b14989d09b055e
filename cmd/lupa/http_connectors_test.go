package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

// TestServeSyncsConnectors: `lupa serve` with a Mailchimp connector subscribes a person who
// grants within seconds of the commit, and the person's unsubscribe in Mailchimp's email
// comes back through the inbound webhook as a withdrawal in Lupa, which is not echoed back
// to Mailchimp; the metrics count the syncs.
func TestServeSyncsConnectors(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			// Mailchimp's clock runs ahead: its times have whole seconds, and the unsubscribe
			// must be later than the grant made here just before.
			mc := mailchimptest.New(t, mailchimptest.Options{Now: func() time.Time { return time.Now().Add(2 * time.Second) }})
			mc.AddList("aud1")
			s := startServe(t, map[string]string{"LUPA_DATABASE_URL": sqldbtest.URL(t, dialect), "LUPA_DATA_DIR": t.TempDir(),
				"LUPA_MASTER_KEY": newMasterKey(), "LUPA_ALLOW_PRIVATE_WEBHOOKS": "true"})
			admin := []string{"Authorization", "Bearer " + s.AdminKey}
			r := s.do(http.MethodPost, "/v1/admin/connectors", map[string]any{"vendor": "mailchimp", "name": "Newsletter",
				"recipient_kind": "processor", "base_url": mc.BaseURL(), "credentials": map[string]any{"api_key": mc.Key()},
				"mappings": []map[string]any{{"purpose": "marketing_email", "list_id": "aud1"}}}, admin...)
			if r.Status != http.StatusCreated {
				t.Fatalf("create connector: %d %s", r.Status, r.Body)
			}
			inbound, _ := r.Map(t)["inbound_url"].(string)
			r = s.do(http.MethodPost, "/v1/admin/api-keys", map[string]any{"name": "shop", "scopes": []string{"consent:write"}}, admin...)
			write := []string{"Authorization", "Bearer " + r.Map(t)["secret"].(string)}

			person := map[string]any{"kind": "email", "value": "anna@example.com"}
			if r := s.do(http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": person, "method": "api",
				"decisions": []map[string]any{{"purpose": "marketing_email", "version": 1, "decision": "granted"}}}, write...); r.Status != http.StatusCreated {
				t.Fatalf("record: %d %s", r.Status, r.Body)
			}
			eventually(t, 5*time.Second, "the subscribe", func() bool {
				m, ok := mc.Member("aud1", "anna@example.com")
				return ok && m.Status == "subscribed"
			})

			if status, err := mc.SendUnsubscribe(context.Background(), inbound, "aud1", "anna@example.com"); err != nil || status != http.StatusOK {
				t.Fatalf("Mailchimp's webhook: %d %v", status, err)
			}
			r = s.do(http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": person}, admin...)
			if !strings.Contains(string(r.Body), `"purpose":"marketing_email","state":"withdrawn"`) {
				t.Fatalf("state after Mailchimp's unsubscribe: %d %s", r.Status, r.Body)
			}
			eventually(t, 5*time.Second, "the metrics", func() bool {
				res, err := http.Get("http://" + s.Metrics + "/metrics")
				if err != nil {
					return false
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				// The grant synced, the withdrawal skipped (it came from Mailchimp).
				return strings.Contains(string(b), `lupa_connector_attempts_total{outcome="delivered"} 2`) &&
					strings.Contains(string(b), "lupa_webhook_backlog 0")
			})
			if n := mc.Count(mailchimptest.OpPatch); n != 0 {
				t.Errorf("the withdrawal was echoed back to Mailchimp (%d PATCHes)", n)
			}
		})
	}
}
