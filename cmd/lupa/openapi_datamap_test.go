package main

import (
	"net/http"
	"strings"

	"github.com/lupa-cmp/lupa/identity"
)

// dataMapSystem is a valid body for POST /v1/admin/data-map/systems: the web shop's email
// platform, connected through a connector, with its data in the US.
func dataMapSystem(name string) map[string]any {
	return map[string]any{
		"name":            name,
		"description":     "Newsletter of the web shop.",
		"connection":      map[string]any{"kind": "mailchimp", "id": "mc-" + strings.ToLower(strings.ReplaceAll(name, " ", "-"))},
		"data_categories": []string{"contact", "preferences", "behaviour"},
		"purposes":        []string{"marketing_email"},
		"legal_bases":     []string{"consent"},
		"recipients":      []map[string]any{{"name": "The Rocket Science Group LLC", "role": "processor", "country": "US"}},
		"locations":       []string{"US"},
		"transfers":       []map[string]any{{"country": "US", "mechanism": "adequacy", "recipient": "The Rocket Science Group LLC"}},
		"retention":       map[string]any{"days": 30, "anchor": "withdrawal", "legal_reference": "GDPR Art. 17(1)(b)"},
		"dsr":             map[string]any{"method": "connector", "owner": map[string]any{"name": "Marketing", "email": "marketing@demo-retail.example"}},
	}
}

// accountingSystem is an unconnected system with the Accounting Act's voucher rule.
func accountingSystem(name string) map[string]any {
	return map[string]any{
		"name":            name,
		"data_categories": []string{"contact", "accounting"},
		"other_purposes":  []string{"bookkeeping"},
		"legal_bases":     []string{"legal_obligation"},
		"locations":       []string{"FI"},
		"retention":       map[string]any{"preset": "fi_accounting_vouchers", "financial_year_end": "04-30"},
		"dsr": map[string]any{"method": "manual", "owner": map[string]any{"name": "Finance team", "email": "finance@demo-retail.example"},
			"instructions": "Vouchers stay for their retention period (GDPR Art. 17(3)(b))."},
	}
}

// dataMap covers the data map's admin routes.
func (c *contractRun) dataMap() {
	const whole, vocab, path = "/v1/admin/data-map", "/v1/admin/data-map/vocabulary", "/v1/admin/data-map/systems"
	empty := c.adm(200, get, whole, nil).Map(c.t)
	if systems, _ := empty["systems"].([]any); len(systems) != 0 {
		c.t.Errorf("a new tenant's data map: %v", empty)
	}
	c.adminErrors(get, whole, nil)
	v := c.adm(200, get, vocab, nil).Map(c.t)
	if presets, _ := v["retention_presets"].([]any); len(presets) != 2 {
		c.t.Errorf("vocabulary: %v", v)
	}
	c.adminErrors(get, vocab, nil)

	// A connection names an existing connector of the tenant (422 otherwise).
	c.adm(422, post, path, dataMapSystem("Email platform"))
	drop := dataMapConnectorFor(c.t, c.s, c.s.demo.Tenant.ID, "Email platform")
	body := dataMapSystem("Email platform")
	created := c.adm(201, post, path, body, "Idempotency-Key", "dm-1").Map(c.t)
	id, _ := created["id"].(string)
	if r := c.adm(201, post, path, body, "Idempotency-Key", "dm-1"); r.Header.Get("Idempotent-Replayed") != "true" || r.Map(c.t)["id"] != id {
		c.t.Errorf("replayed system creation: %v %s", r.Header, r.Body)
	}
	c.adm(422, post, path, accountingSystem("Other"), "Idempotency-Key", "dm-1")
	acc := c.adm(201, post, path, accountingSystem("Accounting")).Map(c.t)
	if r, _ := acc["retention"].(map[string]any); r["years"] != 6.0 || r["anchor"] != "end_of_calendar_year_after_financial_year_end" ||
		r["financial_year_end"] != "04-30" || !strings.Contains(r["legal_reference"].(string), "1336/1997") {
		c.t.Errorf("the voucher preset: %v", acc["retention"])
	}
	c.adm(409, post, path, with(accountingSystem("Accounting"), "description", "again"))
	c.adm(409, post, path, with(dataMapSystem("Another platform"), "connection", map[string]any{"kind": "mailchimp", "id": "mc-email-platform"}))
	drop()
	c.adm(422, post, path, with(dataMapSystem("Bad purpose"), "purposes", []string{"no_such_purpose"}))
	c.reject(400, post, path, with(dataMapSystem("X"), "data_categories", []string{"dna"}), c.admin...)
	c.reject(400, post, path, with(dataMapSystem("X"), "legal_bases", []string{"necessary"}), c.admin...)
	c.reject(400, post, path, with(dataMapSystem("X"), "locations", []string{"uk"}), c.admin...)
	c.reject(400, post, path, with(dataMapSystem("X"), "retention", map[string]any{"years": 1, "anchor": "forever"}), c.admin...)
	c.reject(400, post, path, with(dataMapSystem("X"), "connection", map[string]any{"kind": "salesforce", "id": "1"}), c.admin...)
	c.reject(400, post, path, with(dataMapSystem("X"), "dsr", map[string]any{"method": "email"}), c.admin...)
	noRetention := dataMapSystem("X")
	delete(noRetention, "retention")
	c.reject(400, post, path, noRetention, c.admin...)
	// Rules across fields, beyond the document's schema.
	c.call(400, post, path, with(dataMapSystem("X"), "transfers", []any{}), c.admin...)
	c.call(400, post, path, with(dataMapSystem("X"), "transfers", []map[string]any{{"country": "SE", "mechanism": "sccs"}}), c.admin...)
	c.call(400, post, path, with(accountingSystem("X"), "dsr", map[string]any{"method": "connector"}), c.admin...)
	c.call(400, post, path, with(accountingSystem("X"), "dsr", map[string]any{"method": "manual"}), c.admin...)
	c.call(400, post, path, with(accountingSystem("X"), "locations", []string{"XX"}), c.admin...)
	c.call(400, post, path, with(accountingSystem("X"), "retention", map[string]any{"preset": "fi_accounting_books", "years": 3}), c.admin...)
	c.pendingConflict(path, path, jsonBytes(c.t, dataMapSystem("Pending")), c.admin...)
	c.adminErrors(post, path, body)

	page := c.adm(200, get, path+"?limit=1", nil).Map(c.t)
	next, _ := page["next"].(string)
	if items, _ := page["items"].([]any); len(items) != 1 || next == "" {
		c.t.Errorf("first page: %v", page)
	}
	rest := c.adm(200, get, path+"?before="+next, nil).Map(c.t)
	if items, _ := rest["items"].([]any); len(items) != 1 || rest["next"] != "" {
		c.t.Errorf("second page: %v", rest)
	}
	c.reject(400, get, path+"?limit=0", nil, c.admin...)
	c.reject(400, get, path+"?limit=201", nil, c.admin...)
	wantProblem(c.t, c.reject(400, get, path+"?before=garbage", nil, c.admin...), 400, "before")
	c.adminErrors(get, path, nil)

	one := path + "/" + id
	c.adm(200, get, one, nil)
	c.adm(404, get, path+"/"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	changed := c.adm(200, patch, one, map[string]any{"description": "The newsletter.", "data_categories": []string{"contact"}}).Map(c.t)
	if changed["description"] != "The newsletter." || changed["name"] != "Email platform" {
		c.t.Errorf("patched: %v", changed)
	}
	c.call(400, patch, one, map[string]any{"connection": nil}, c.admin...) // a connector method needs its connection
	unhooked := c.adm(200, patch, one, map[string]any{"connection": nil, "dsr": map[string]any{"method": "manual",
		"owner": map[string]any{"name": "Marketing", "email": "marketing@demo-retail.example"}}}).Map(c.t)
	if unhooked["connection"] != nil {
		c.t.Errorf("connection: null kept the connection: %v", unhooked)
	}
	c.reject(400, patch, one, map[string]any{"legal_bases": []string{}}, c.admin...)
	c.reject(400, patch, one, map[string]any{"tenant_id": "other"}, c.admin...)
	c.adm(404, patch, path+"/"+identity.NewID(), map[string]any{"description": "x"})
	c.adm(409, patch, one, map[string]any{"name": "Accounting"})
	c.adm(422, patch, one, map[string]any{"purposes": []string{"no_such_purpose"}})
	c.adminErrors(patch, one, map[string]any{"description": "x"})

	m := c.adm(200, get, whole, nil).Map(c.t)
	if systems, _ := m["systems"].([]any); len(systems) != 2 || systems[0].(map[string]any)["name"] != "Accounting" {
		c.t.Errorf("the data map: %v", m)
	}

	// Until when: a June 2025 invoice of a May–April financial year, and a withdrawal.
	keep := path + "/" + acc["id"].(string) + "/keep-until"
	k := c.adm(200, get, keep+"?date=2025-06-01", nil).Map(c.t)
	if k["keep_until"] != "2032-12-31" || k["financial_year_end"] != "2026-04-30" {
		c.t.Errorf("keep a voucher until: %v", k)
	}
	k = c.adm(200, get, path+"/"+id+"/keep-until?date=2026-11-26", nil).Map(c.t)
	if k["keep_until"] != "2026-12-26" || k["financial_year_end"] != "" {
		c.t.Errorf("keep after a withdrawal until: %v", k)
	}
	c.reject(400, get, keep, nil, c.admin...)
	c.call(400, get, keep+"?date=2025-02-30", nil, c.admin...)
	c.call(400, get, keep+"?date=1066-10-14", nil, c.admin...)
	c.adm(404, get, path+"/"+identity.NewID()+"/keep-until?date=2025-06-01", nil)
	c.adminErrors(get, keep+"?date=2025-06-01", nil)

	doomed := path + "/" + acc["id"].(string)
	c.call(401, del, doomed, nil)
	c.call(401, del, doomed, nil, bearer("sk_not-a-key")...)
	c.call(403, del, doomed, nil, c.read...)
	c.call(400, del, doomed+"?x=%01", nil, c.admin...)
	c.adm(204, del, doomed, nil)
	c.adm(404, del, doomed, nil)
	c.adm(404, get, doomed, nil)
	audit := c.adm(200, get, "/v1/admin/audit?object_type=data_map_system&object_id="+acc["id"].(string), nil).Map(c.t)
	if items, _ := audit["items"].([]any); len(items) != 2 || items[0].(map[string]any)["action"] != "data_map_system.delete" {
		c.t.Errorf("audit of a deleted system: %v", audit)
	}
	c.erasures(path + "/" + id)
	_ = http.StatusOK
}

// erasures covers the erasure confirmations of a system and the progress of a request.
func (c *contractRun) erasures(system string) {
	tenant := c.s.demo.Tenant.ID
	_, request := openErasure(c.t, c.s, tenant, "ERASE-1", "erase@example.fi")
	progress := "/v1/admin/erasures/" + request
	p := c.adm(200, get, progress, nil).Map(c.t)
	if p["email_erased"] != false || p["confirmed"] != 0.0 {
		c.t.Errorf("progress of a new request: %v", p)
	}
	c.adm(404, get, "/v1/admin/erasures/"+identity.NewID(), nil)
	c.adminErrors(get, progress, nil)

	confirm := system + "/erasures/" + request + "/confirm"
	note := map[string]any{"note": "Deleted permanently in the vendor's console."}
	first := c.adm(200, post, confirm, note, "Idempotency-Key", "erase-1").Map(c.t)
	if r := c.adm(200, post, confirm, note, "Idempotency-Key", "erase-1"); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("replayed confirmation: %v", r.Header)
	}
	if first["confirmed"] != 1.0 {
		c.t.Errorf("after a confirmation: %v", first)
	}
	c.adm(422, post, confirm, map[string]any{"note": "another"}, "Idempotency-Key", "erase-1")
	// The body is optional; the first confirmation stays.
	c.adm(200, post, confirm, nil)
	c.reject(400, post, confirm, map[string]any{"note": strings.Repeat("x", 1001)}, c.admin...)
	c.reject(400, post, confirm, map[string]any{"by": "someone"}, c.admin...)
	c.adm(404, post, "/v1/admin/data-map/systems/"+identity.NewID()+"/erasures/"+request+"/confirm", nil)
	c.adm(404, post, system+"/erasures/"+identity.NewID()+"/confirm", nil)
	_, decided := openErasure(c.t, c.s, tenant, "ERASE-2", "erase2@example.fi")
	if err := c.s.app.db.Write.Exec(`UPDATE dsr_requests SET status = 'rejected' WHERE tenant_id = ? AND id = ?`, tenant, decided).Error; err != nil {
		c.t.Fatal(err)
	}
	c.adm(409, post, system+"/erasures/"+decided+"/confirm", note)
	c.adminErrors(post, confirm, note)
}
