package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
)

// webhooks covers the webhook endpoints' admin routes: endpoints, secret rotation,
// disable and enable, the delivery log, dead letters and replays. The delivery engine is
// stepped by hand; a local receiver refuses the first delivery (400, final) and takes the
// rest.
func (c *contractRun) webhooks() {
	recv := refuseFirstReceiver(c.t)
	step := func() {
		if err := c.s.app.deliveries.Step(context.Background()); err != nil {
			c.t.Fatal(err)
		}
	}

	const path = "/v1/admin/webhooks"
	body := map[string]any{"url": recv.URL + "/hooks", "description": "CRM", "event_types": []string{"consent.updated"},
		"purposes": []string{"analytics"}, "recipient_kind": "processor"}
	created := c.adm(201, post, path, body, "Idempotency-Key", "webhook-1").Map(c.t)
	id, _ := created["id"].(string)
	if s, _ := created["secret"].(string); !strings.HasPrefix(s, "whsec_") || id == "" {
		c.t.Errorf("created webhook: %v", created)
	}
	if r := c.adm(201, post, path, body, "Idempotency-Key", "webhook-1"); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("replayed webhook creation: %v", r.Header)
	}
	c.adm(422, post, path, with(body, "description", "other"), "Idempotency-Key", "webhook-1")
	c.adm(422, post, path, with(with(body, "recipient_kind", "third_party"), "recipient_id", identity.NewID()))
	c.adm(201, post, path, with(with(body, "recipient_kind", "third_party"), "recipient_id", c.recipientID))
	c.reject(400, post, path, with(body, "recipient_kind", "partner"), c.admin...)
	c.reject(400, post, path, with(body, "event_types", []string{"consent.recorded"}), c.admin...)
	c.reject(400, post, path, map[string]any{"url": recv.URL}, c.admin...)
	c.call(400, post, path, with(body, "url", "ftp://example.com/x"), c.admin...)
	c.call(400, post, path, with(body, "recipient_kind", "third_party"), c.admin...)
	c.pendingConflict(path, path, jsonBytes(c.t, body), c.admin...)
	c.adminErrors(post, path, body)
	list := c.adm(200, get, path, nil).Map(c.t)
	if items, _ := list["items"].([]any); len(items) != 2 {
		c.t.Errorf("webhooks: %v", list)
	}
	c.adminErrors(get, path, nil)

	one := path + "/" + id
	if got := c.adm(200, get, one, nil).Map(c.t); got["secret"] != nil {
		c.t.Errorf("the secret was shown again: %v", got)
	}
	c.adm(404, get, path+"/"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"description": "CRM (prod)"})
	c.reject(400, patch, one, map[string]any{"event_types": []string{}}, c.admin...)
	c.adm(404, patch, path+"/"+identity.NewID(), map[string]any{"description": "x"})
	c.adm(422, patch, one, map[string]any{"recipient_kind": "third_party", "recipient_id": "nope"})
	c.adminErrors(patch, one, map[string]any{"description": "CRM"})

	rotate := one + "/rotate-secret"
	rotated := c.adm(200, post, rotate, map[string]any{"overlap_seconds": 3600}, "Idempotency-Key", "rotate-1").Map(c.t)
	c.adm(422, post, rotate, map[string]any{"overlap_seconds": 60}, "Idempotency-Key", "rotate-1")
	c.pendingConflict(path+"/:id/rotate-secret", rotate, jsonBytes(c.t, map[string]any{"overlap_seconds": 3600}), c.admin...)
	if s, _ := rotated["secret"].(string); !strings.HasPrefix(s, "whsec_") || rotated["previous_secret_expires_at"] == nil {
		c.t.Errorf("rotated: %v", rotated)
	}
	// Every field is optional: no body at all rotates with the defaults.
	if r := c.adm(200, post, rotate, nil).Map(c.t); r["secret"] == rotated["secret"] {
		c.t.Errorf("a bodyless rotation made no new secret: %v", r)
	}
	c.reject(400, post, rotate, map[string]any{"overlap_seconds": -1}, c.admin...)
	c.adm(404, post, path+"/"+identity.NewID()+"/rotate-secret", map[string]any{})
	c.adminErrors(post, rotate, map[string]any{})

	for _, action := range []string{"/disable", "/enable"} {
		c.keyed(200, path+"/:id"+action, one+action, "webhook"+action)
		c.adm(404, post, path+"/"+identity.NewID()+action, nil)
		c.adminErrors(post, one+action, nil)
	}

	// Two changes: the first is refused with 400 (a dead letter), the second delivered.
	c.s.newDevice(c.t, grantAnalytics())
	step()
	c.s.newDevice(c.t, grantAnalytics())
	step()
	deliveries := one + "/deliveries"
	page := c.adm(200, get, deliveries+"?limit=1", nil).Map(c.t)
	items, _ := page["items"].([]any)
	next, _ := page["next"].(string)
	if len(items) != 1 || next == "" {
		c.t.Fatalf("first page: %v", page)
	}
	c.adm(200, get, deliveries+"?limit=1&cursor="+next, nil)
	c.adm(200, get, deliveries+"?status=delivered", nil)
	c.reject(400, get, deliveries+"?status=lost", nil, c.admin...)
	c.reject(400, get, deliveries+"?limit=0", nil, c.admin...)
	c.call(400, get, deliveries+"?cursor=nope", nil, c.admin...)
	c.adm(404, get, path+"/"+identity.NewID()+"/deliveries", nil)
	c.adminErrors(get, deliveries, nil)

	dead := one + "/dead-letters"
	dl := c.adm(200, get, dead, nil).Map(c.t)
	deadItems, _ := dl["items"].([]any)
	if len(deadItems) != 1 {
		c.t.Fatalf("dead letters: %v", dl)
	}
	deadID := deadItems[0].(map[string]any)["id"].(string)
	c.reject(400, get, dead+"?limit=500", nil, c.admin...)
	c.adm(404, get, path+"/"+identity.NewID()+"/dead-letters", nil)
	c.adminErrors(get, dead, nil)

	d := c.adm(200, get, deliveries+"/"+deadID, nil).Map(c.t)
	if log, _ := d["attempt_log"].([]any); len(log) != 1 || d["status"] != "failed" || d["data"] == nil {
		c.t.Errorf("dead letter: %v", d)
	}
	c.adm(404, get, deliveries+"/msg_nope", nil)
	c.adminErrors(get, deliveries+"/"+deadID, nil)

	var delivered string
	for _, it := range items {
		if m := it.(map[string]any); m["status"] == "delivered" {
			delivered = m["id"].(string)
		}
	}
	if delivered == "" {
		delivered = c.adm(200, get, deliveries+"?status=delivered", nil).Map(c.t)["items"].([]any)[0].(map[string]any)["id"].(string)
	}
	replayOne := deliveries + "/" + deadID + "/replay"
	if r := c.keyed(200, path+"/:id/deliveries/:delivery/replay", replayOne, "replay-1").Map(c.t); r["queued"] != float64(1) {
		c.t.Errorf("replay: %v", r)
	}
	c.adm(409, post, deliveries+"/"+delivered+"/replay", nil)
	c.adm(404, post, deliveries+"/msg_nope/replay", nil)
	c.adminErrors(post, replayOne, nil)
	step()
	replayAll := dead + "/replay"
	c.keyed(200, path+"/:id/dead-letters/replay", replayAll, "replay-all")
	c.adm(404, post, path+"/"+identity.NewID()+"/dead-letters/replay", nil)
	c.adminErrors(post, replayAll, nil)

	doomed := path + "/" + id
	c.call(401, del, doomed, nil)
	c.call(403, del, doomed, nil, c.read...)
	c.call(400, del, doomed+"?x=%01", nil, c.admin...)
	c.adm(204, del, doomed, nil)
	c.adm(404, del, doomed, nil)
}

// refuseFirstReceiver is a webhook receiver that refuses the first delivery with a final
// 400 (a dead letter) and takes the rest.
func refuseFirstReceiver(t *testing.T) *httptest.Server {
	var calls atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	return recv
}
