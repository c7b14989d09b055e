package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/consent/consentweb"
	"github.com/lupa-cmp/lupa/identity"
)

// bodyEndpoint is one route that takes a JSON body, with what the bad-input matrix needs
// to know about it.
type bodyEndpoint struct {
	name         string
	method, path string
	headers      []string       // credentials
	valid        map[string]any // a body the endpoint would accept
	wrongType    string         // a body with one field of the wrong JSON type …
	wrongField   string         // … and the field the answer must name
	required     []string       // fields named when the body is {}
	text         string         // path of a string field for long and hostile strings
	limit        int
	extra        []hostile // endpoint-specific hostile bodies
}

// hostile is a body that must be refused with a 4xx (exactly status when not 0), naming
// field when given.
type hostile struct {
	name   string
	body   string
	status int
	field  string
}

// with returns a deep copy of m with the value at a dotted path replaced.
func with(m map[string]any, path string, v any) map[string]any {
	cp := deepCopy(m).(map[string]any)
	cur := cp
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
	return cp
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// rawWith marshals m with the string field at path holding raw, unescaped JSON text.
func rawWith(m map[string]any, path, raw string) string {
	const mark = "\"@@RAW@@\""
	return strings.Replace(string(mustJSON(with(m, path, "@@RAW@@"))), mark, raw, 1)
}

// leaf is the last element of a dotted path: the name Go's JSON decoder and the validator
// give a nested field differ in their prefix, never in it.
func leaf(path string) string { return path[strings.LastIndexByte(path, '.')+1:] }

// storedView is everything a user could see of the demo tenant's data: a device's and a
// customer's state, the customer's history, the ledger's counts and the whole admin
// configuration.
type storedView map[string]string

func (s *testServer) storedView(t testing.TB, device, readKey string, customer map[string]any) storedView {
	t.Helper()
	v := storedView(s.configSnapshot(t, s.demo.AdminKey))
	v["device state"] = string(s.deviceState(device).Body)
	v["customer state"] = string(s.withKey(readKey, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": customer}).Body)
	v["customer history"] = string(s.withKey(readKey, http.MethodPost, "/v1/subjects/history", map[string]any{"identifier": customer}).Body)
	v["ledger"] = fmt.Sprintf("%+v", s.ledger(t, s.demo.AdminKey))
	return v
}

func (s *testServer) bodyEndpoints(writeKey, receipt string) []bodyEndpoint {
	admin := []string{"Authorization", "Bearer " + s.demo.AdminKey}
	server := []string{"Authorization", "Bearer " + writeKey}
	cust := map[string]any{"kind": "customer_number", "value": "C-1001"}
	var recipient string
	for _, r := range s.demo.Recipients {
		recipient = r.ID
		break
	}
	texts := map[string]any{"fi": map[string]any{"title": "Otsikko", "description": "Kuvaus"}}
	const lim = 64 << 10
	return []bodyEndpoint{
		{name: "public consents", method: "POST", path: "/v1/consents?property=" + s.demo.WebShop.PublicKey,
			headers: []string{"Origin", s.Origin}, valid: grantAnalytics(),
			wrongType:  `{"method":"banner_custom","decisions":[{"purpose":"analytics","version":"one","decision":"granted"}]}`,
			wrongField: "decisions[0].version", required: []string{"method", "decisions"}, text: "method", limit: lim,
			extra: []hostile{
				{"huge version", `{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1e400,"decision":"granted"}]}`, 400, "decisions[0].version"},
				{"negative version", `{"method":"banner_custom","decisions":[{"purpose":"analytics","version":-1,"decision":"granted"}]}`, 400, "decisions[0].version"},
				{"unicode purpose", `{"method":"banner_custom","decisions":[{"purpose":"analytícs😀","version":1,"decision":"granted"}]}`, 422, "decisions[0].purpose"},
				{"control purpose", `{"method":"banner_custom","decisions":[{"purpose":"analytics\u0000","version":1,"decision":"granted"}]}`, 0, ""},
				{"unicode language", `{"method":"banner_custom","language":"fi-😀","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`, 400, "language"},
				{"51 decisions", `{"method":"banner_custom","decisions":[` + strings.TrimSuffix(strings.Repeat(`{"purpose":"analytics","version":1,"decision":"granted"},`, 51), ",") + `]}`, 400, "decisions"},
				{"same purpose twice", `{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted"},{"purpose":"analytics","version":1,"decision":"denied"}]}`, 400, "decisions[1].purpose"},
				{"bad text hash", `{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted","text_hash":"ZZ` + strings.Repeat("0", 62) + `"}]}`, 400, "decisions[0].text_hash"},
				{"agent on public", `{"method":"banner_custom","agent":"x","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`, 400, "agent"},
				{"server method", `{"method":"verbal","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`, 400, "method"},
				{"bad client time", `{"method":"banner_custom","client_time":"yesterday","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}`, 400, ""},
				{"decisions null", `{"method":"banner_custom","decisions":null}`, 400, "decisions"},
				{"member given twice", `{"method":"banner_custom","decisions":[{"purpose":"analytics","version":1,"decision":"granted","decision":"denied"}]}`, 400, "decisions[0].decision"},
			}},
		{name: "server record", method: "POST", path: "/v1/subjects/consents", headers: server,
			valid:      map[string]any{"identifier": cust, "method": "api", "decisions": []map[string]any{decision("marketing_email", 1, "granted")}},
			wrongType:  `{"identifier":{"kind":"customer_number","value":1001},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`,
			wrongField: "identifier.value", required: []string{"method", "decisions"}, text: "agent", limit: lim,
			extra: []hostile{
				{"control identifier", `{"identifier":{"kind":"customer_number","value":"C\u00071001"},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`, 400, ""},
				{"unknown identifier kind", `{"identifier":{"kind":"phone","value":"+358401234567"},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`, 400, "identifier.kind"},
				{"agent by name", `{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"verbal","agent":"Maija Virtanen","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`, 400, "agent"},
				{"verbal without agent", `{"identifier":{"kind":"customer_number","value":"C-1001"},"method":"verbal","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`, 400, "agent"},
				{"nested unknown field", `{"identifier":{"kind":"customer_number","value":"C-1001","namespace":"crm"},"method":"api","decisions":[{"purpose":"marketing_email","version":1,"decision":"granted"}]}`, 400, "namespace"},
			}},
		{name: "subject state", method: "POST", path: "/v1/subjects/state", headers: server,
			valid: map[string]any{"identifier": cust}, wrongType: `{"identifier":"C-1001"}`, wrongField: "identifier",
			required: []string{"identifier"}, text: "identifier.value", limit: lim},
		{name: "subject history", method: "POST", path: "/v1/subjects/history", headers: server,
			valid: map[string]any{"identifier": cust}, wrongType: `{"identifier":{"kind":"customer_number","value":"C-1001"},"limit":"ten"}`,
			wrongField: "limit", required: []string{"identifier"}, text: "purpose", limit: lim,
			extra: []hostile{
				{"huge limit", `{"identifier":{"kind":"customer_number","value":"C-1001"},"limit":99999999999999999999999}`, 400, "limit"},
				{"huge cursor", `{"identifier":{"kind":"customer_number","value":"C-1001"},"after":1e30}`, 400, "after"},
				{"bad time", `{"identifier":{"kind":"customer_number","value":"C-1001"},"from":"last week"}`, 400, ""},
				{"limit too big", `{"identifier":{"kind":"customer_number","value":"C-1001"},"limit":501}`, 400, "limit"},
			}},
		{name: "check", method: "POST", path: "/v1/consents/check", headers: server,
			valid:     map[string]any{"purpose": "marketing_email", "identifiers": []any{cust}},
			wrongType: `{"purpose":"marketing_email","identifiers":{"kind":"customer_number","value":"C-1001"}}`, wrongField: "identifiers",
			required: []string{"purpose", "identifiers"}, text: "purpose", limit: 2 << 20,
			extra: []hostile{
				{"bad identifier in list", `{"purpose":"marketing_email","identifiers":[{"kind":"customer_number","value":"C-1"},{"kind":"device","value":"short"}]}`, 400, "identifiers[1].value"},
			}},
		{name: "receipt verify", method: "POST", path: "/v1/receipts/verify", valid: map[string]any{"receipt": receipt},
			wrongType: `{"receipt":["a"]}`, wrongField: "receipt", required: []string{"receipt"}, text: "receipt", limit: consentweb.ReceiptBodyLimit},
		{name: "patch tenant", method: "PATCH", path: "/v1/admin/tenant", headers: admin,
			valid: map[string]any{"phone": "+358 9 000"}, wrongType: `{"evidence_years":"three"}`, wrongField: "evidence_years",
			text: "name", limit: lim,
			extra: []hostile{
				{"huge years", `{"evidence_years":1e400}`, 400, "evidence_years"},
				{"years out of range", `{"evidence_years":31}`, 400, "evidence_years"},
				{"bad jurisdiction", `{"jurisdiction":"Finland"}`, 400, "jurisdiction"},
			}},
		{name: "create brand", method: "POST", path: "/v1/admin/brands", headers: admin,
			valid: map[string]any{"name": "New", "legal_name": "New Oy"}, wrongType: `{"name":1,"legal_name":"New Oy"}`, wrongField: "name",
			required: []string{"name", "legal_name"}, text: "name", limit: lim,
			extra: []hostile{{"blank name", `{"name":"   ","legal_name":"New Oy"}`, 400, "name"}}},
		{name: "patch brand", method: "PATCH", path: "/v1/admin/brands/" + s.demo.Brands[0].ID, headers: admin,
			valid: map[string]any{"website": "https://x.example"}, wrongType: `{"name":true}`, wrongField: "name", text: "legal_name", limit: lim},
		{name: "create property", method: "POST", path: "/v1/admin/properties", headers: admin,
			valid:     map[string]any{"name": "Kiosk", "brand_id": s.demo.Brands[0].ID, "kind": "kiosk"},
			wrongType: `{"name":"Kiosk","brand_id":"x","kind":"kiosk","allowed_origins":"https://a.example"}`, wrongField: "allowed_origins",
			required: []string{"name", "brand_id", "kind"}, text: "name", limit: lim,
			extra: []hostile{
				{"bad kind", `{"name":"K","brand_id":"x","kind":"spaceship"}`, 400, "kind"},
				{"origin with control", `{"name":"K","brand_id":"` + s.demo.Brands[0].ID + `","kind":"web","allowed_origins":["https://a.example\u0000"]}`, 0, ""},
			}},
		{name: "patch property", method: "PATCH", path: "/v1/admin/properties/" + s.demo.WebShop.ID, headers: admin,
			valid: map[string]any{"name": "Shop"}, wrongType: `{"allowed_origins":5}`, wrongField: "allowed_origins", text: "name", limit: lim,
			extra: []hostile{{"bad status", `{"status":"deleted"}`, 400, "status"}}},
		{name: "create api key", method: "POST", path: "/v1/admin/api-keys", headers: admin,
			valid: map[string]any{"name": "k", "scopes": []string{"consent:read"}}, wrongType: `{"name":"k","scopes":"admin"}`, wrongField: "scopes",
			required: []string{"name", "scopes"}, text: "name", limit: lim,
			extra: []hostile{{"unknown scope", `{"name":"k","scopes":["root"]}`, 400, "scopes[0]"}}},
		{name: "create recipient", method: "POST", path: "/v1/admin/recipients", headers: admin,
			valid:     map[string]any{"name": "P", "legal_name": "P Oy", "kind": "partner"},
			wrongType: `{"name":"P","legal_name":"P Oy","kind":"partner","country":358}`, wrongField: "country",
			required: []string{"name", "legal_name", "kind"}, text: "legal_name", limit: lim},
		{name: "patch recipient", method: "PATCH", path: "/v1/admin/recipients/" + recipient, headers: admin,
			valid: map[string]any{"country": "SE"}, wrongType: `{"kind":["partner"]}`, wrongField: "kind", text: "name", limit: lim},
		{name: "create purpose", method: "POST", path: "/v1/admin/purposes", headers: admin,
			valid:     map[string]any{"key": "newsletter", "level": "person", "legal_basis": "consent", "reask_months": 12},
			wrongType: `{"key":"newsletter","level":"person","legal_basis":"consent","reask_months":"12"}`, wrongField: "reask_months",
			required: []string{"key", "level", "legal_basis"}, text: "dpv_purpose", limit: lim,
			extra: []hostile{
				{"huge months", `{"key":"newsletter","level":"person","legal_basis":"consent","reask_months":99999999999999999999}`, 400, "reask_months"},
				{"unicode key", `{"key":"uutiskirje_ä","level":"person","legal_basis":"consent","reask_months":12}`, 400, "key"},
				{"necessary analytics", `{"key":"stats","level":"device","legal_basis":"necessary","reask_months":12,"dpv_purpose":"https://w3id.org/dpv#ServiceUsageAnalytics"}`, 400, ""},
				{"necessary advertising", `{"key":"pixels","level":"device","legal_basis":"necessary","dpv_purpose":"https://w3id.org/dpv#PersonalisedAdvertising"}`, 400, "legal_basis"},
				{"necessary advertising key", `{"key":"advertising_id","level":"device","legal_basis":"necessary"}`, 400, "legal_basis"},
				{"necessary personalisation", `{"key":"prefs","level":"device","legal_basis":"necessary","dpv_purpose":"https://w3id.org/dpv#Personalisation"}`, 400, "legal_basis"},
				{"necessary personalization", `{"key":"personalization_cookie","level":"device","legal_basis":"necessary"}`, 400, "legal_basis"},
			}},
		{name: "patch purpose", method: "PATCH", path: "/v1/admin/purposes/analytics", headers: admin,
			valid: map[string]any{"reask_months": 6}, wrongType: `{"gpc_opt_out":"yes"}`, wrongField: "gpc_opt_out", text: "dpv_purpose", limit: lim},
		{name: "create version", method: "POST", path: "/v1/admin/purposes/analytics/versions", headers: admin,
			valid: map[string]any{"material": true, "texts": texts}, wrongType: `{"material":"yes","texts":{"fi":{"title":"a","description":"b"}}}`,
			wrongField: "material", required: []string{"texts"}, text: "texts.fi.title", limit: lim,
			extra: []hostile{
				{"texts not an object", `{"texts":["fi"]}`, 400, "texts"},
				{"bad language key", `{"texts":{"klingon language":{"title":"a","description":"b"}}}`, 400, ""},
				{"long description", rawWith(map[string]any{"texts": texts}, "texts.fi.description", `"`+strings.Repeat("ä", 5001)+`"`), 400, ""},
			}},
		{name: "patch version", method: "PATCH", path: "/v1/admin/purposes/analytics/versions/1", headers: admin,
			valid: map[string]any{"material": false, "texts": texts}, wrongType: `{"texts":"fi"}`, wrongField: "texts", text: "texts.fi.title", limit: lim},
		{name: "create CIAM issuer", method: "POST", path: "/v1/admin/ciam-issuers", headers: admin,
			valid:     map[string]any{"name": "CIAM", "issuer": "https://id.example", "audiences": []string{"lupa"}},
			wrongType: `{"name":"CIAM","issuer":"https://id.example","audiences":"lupa"}`, wrongField: "audiences",
			required: []string{"name", "issuer", "audiences"}, text: "name", limit: lim,
			extra: []hostile{
				{"alg none", `{"name":"C","issuer":"https://id.example","audiences":["lupa"],"algorithms":["none"]}`, 400, "algorithms[0]"},
				{"HMAC", `{"name":"C","issuer":"https://id.example","audiences":["lupa"],"algorithms":["HS256"]}`, 400, "algorithms[0]"},
				{"plain http", `{"name":"C","issuer":"http://id.example","audiences":["lupa"]}`, 400, "issuer"},
				{"huge skew", `{"name":"C","issuer":"https://id.example","audiences":["lupa"],"clock_skew_seconds":1e400}`, 400, "clock_skew_seconds"},
				{"no audiences", `{"name":"C","issuer":"https://id.example","audiences":[]}`, 400, "audiences"},
			}},
		{name: "create login provider", method: "POST", path: "/v1/admin/login-providers", headers: admin,
			valid: map[string]any{"kind": "oidc", "label": "Kauppa ID", "issuer": "https://id.example", "client_id": "lupa",
				"client_secret": "s3cret"},
			wrongType:  `{"kind":"oidc","label":"K","issuer":"https://id.example","client_id":"lupa","client_secret":"s","scopes":"openid"}`,
			wrongField: "scopes", required: []string{"kind", "label", "client_id", "client_secret"}, text: "label", limit: lim,
			extra: []hostile{
				{"unknown kind", `{"kind":"saml","label":"K","client_id":"lupa","client_secret":"s"}`, 400, "kind"},
				{"plain http", `{"kind":"oidc","label":"K","issuer":"http://id.example","client_id":"lupa","client_secret":"s"}`, 400, "issuer"},
				{"no issuer", `{"kind":"oidc","label":"K","client_id":"lupa","client_secret":"s"}`, 400, "issuer"},
				{"no openid scope", `{"kind":"oidc","label":"K","issuer":"https://id.example","client_id":"lupa","client_secret":"s","scopes":["email"]}`, 400, "scopes"},
				{"scope with a space", `{"kind":"oidc","label":"K","issuer":"https://id.example","client_id":"lupa","client_secret":"s","scopes":["openid email"]}`, 400, "scopes"},
				{"label language", `{"kind":"oidc","label":"K","labels":{"de":"A"},"issuer":"https://id.example","client_id":"lupa","client_secret":"s"}`, 400, ""},
				{"control in secret", `{"kind":"oidc","label":"K","issuer":"https://id.example","client_id":"lupa","client_secret":"s\u0000"}`, 400, "client_secret"},
				{"trusted Facebook", `{"kind":"facebook","label":"F","client_id":"1","client_secret":"s","trusted_for_email":true}`, 400, "trusted_for_email"},
				{"Facebook issuer", `{"kind":"facebook","label":"F","issuer":"https://evil.example","client_id":"1","client_secret":"s"}`, 400, "issuer"},
				{"auth method", `{"kind":"oidc","label":"K","issuer":"https://id.example","client_id":"lupa","client_secret":"s","token_auth_method":"none"}`, 400, "token_auth_method"},
			}},
		{name: "patch login provider", method: "PATCH", path: "/v1/admin/login-providers/" + identity.NewID(), headers: admin,
			valid: map[string]any{"label": "K"}, wrongType: `{"trusted_for_email":"yes"}`, wrongField: "trusted_for_email",
			text: "label", limit: lim,
			extra: []hostile{
				{"kind", `{"kind":"facebook"}`, 400, "kind"},
				{"empty scopes", `{"scopes":[]}`, 400, "scopes"},
			}},
		{name: "patch CIAM issuer", method: "PATCH", path: "/v1/admin/ciam-issuers/" + identity.NewID(), headers: admin,
			valid: map[string]any{"name": "CIAM"}, wrongType: `{"trusted_for_email":"yes"}`, wrongField: "trusted_for_email",
			text: "name", limit: lim,
			extra: []hostile{{"skew too large", `{"clock_skew_seconds":301}`, 400, "clock_skew_seconds"}}},
		{name: "create data map system", method: "POST", path: "/v1/admin/data-map/systems", headers: admin,
			valid: dataMapSystem("Matrix platform"), wrongType: `{"name":"X","locations":"FI"}`, wrongField: "locations",
			required: []string{"name", "retention", "dsr"}, text: "name", limit: lim,
			extra: []hostile{
				{"unknown category", rawWith(dataMapSystem("M"), "data_categories", `["dna"]`), 400, "data_categories[0]"},
				{"lower-case country", rawWith(dataMapSystem("M"), "locations", `["fi"]`), 400, "locations[0]"},
				{"long country", rawWith(dataMapSystem("M"), "locations", `["FIN"]`), 400, "locations[0]"},
				{"stored abroad without a transfer", rawWith(dataMapSystem("M"), "transfers", `[]`), 400, "locations[0]"},
				{"transfer within the EEA", rawWith(dataMapSystem("M"), "transfers", `[{"country":"DE","mechanism":"sccs"}]`), 400, "transfers[0].country"},
				{"huge years", rawWith(dataMapSystem("M"), "retention", `{"years":1e400,"anchor":"collection"}`), 400, "years"},
				{"negative days", rawWith(dataMapSystem("M"), "retention", `{"days":-1,"anchor":"collection"}`), 400, "retention.days"},
				{"bad financial year end", rawWith(dataMapSystem("M"), "retention", `{"preset":"fi_accounting_books","financial_year_end":"13-45"}`), 400, "retention.financial_year_end"},
				{"unknown preset", rawWith(dataMapSystem("M"), "retention", `{"preset":"forever"}`), 400, "retention.preset"},
				{"owner without an address", rawWith(dataMapSystem("M"), "dsr", `{"method":"manual","owner":{"name":"A","email":"not an address"}}`), 400, "dsr.owner.email"},
				{"connection id with a space", rawWith(dataMapSystem("M"), "connection", `{"kind":"mailchimp","id":"a b"}`), 400, "connection.id"},
				{"connector without a connection", rawWith(dataMapSystem("M"), "connection", `null`), 400, "dsr.method"},
				{"too many categories", rawWith(dataMapSystem("M"), "other_data_categories", `[`+strings.TrimSuffix(strings.Repeat(`"x",`, 21), ",")+`]`), 400, "other_data_categories"},
				{"legal bases not a list", rawWith(dataMapSystem("M"), "legal_bases", `{"consent":true}`), 400, "legal_bases"},
				{"control in a recipient", rawWith(dataMapSystem("M"), "recipients", `[{"name":"A\u001b[2J","role":"processor"}]`), 400, "recipients[0].name"},
				{"unknown purpose", rawWith(dataMapSystem("M"), "purposes", `["no_such_purpose"]`), 422, "purposes[0]"},
			}},
		{name: "patch data map system", method: "PATCH", path: "/v1/admin/data-map/systems/" + identity.NewID(), headers: admin,
			valid: map[string]any{"description": "d"}, wrongType: `{"locations":"FI"}`, wrongField: "locations", text: "description", limit: lim,
			extra: []hostile{
				{"empty name", `{"name":""}`, 400, "name"},
				{"retention not an object", `{"retention":"6 years"}`, 400, "retention"},
				{"huge months", `{"retention":{"months":99999999999999999999,"anchor":"collection"}}`, 400, "months"},
			}},
		{name: "confirm erasure", method: "POST", path: "/v1/admin/data-map/systems/" + identity.NewID() + "/erasures/" + identity.NewID() + "/confirm",
			headers: admin, valid: map[string]any{"note": "done"}, wrongType: `{"note":5}`, wrongField: "note", text: "note", limit: lim},
		{name: "create webhook", method: "POST", path: "/v1/admin/webhooks", headers: admin,
			valid:     map[string]any{"url": "https://hooks.example/lupa", "event_types": []string{"consent.updated"}, "recipient_kind": "processor"},
			wrongType: `{"url":"https://hooks.example/lupa","event_types":"consent.updated","recipient_kind":"processor"}`, wrongField: "event_types",
			required: []string{"url", "event_types", "recipient_kind"}, text: "description", limit: lim,
			extra: []hostile{
				{"unknown event type", `{"url":"https://h.example/","event_types":["consent.recorded"],"recipient_kind":"processor"}`, 400, "event_types[0]"},
				{"no event types", `{"url":"https://h.example/","event_types":[],"recipient_kind":"processor"}`, 400, "event_types"},
				{"unknown recipient kind", `{"url":"https://h.example/","event_types":["consent.updated"],"recipient_kind":"partner"}`, 400, "recipient_kind"},
				{"ftp", `{"url":"ftp://h.example/","event_types":["consent.updated"],"recipient_kind":"processor"}`, 400, "url"},
				{"credentials in the URL", `{"url":"https://u:p@h.example/","event_types":["consent.updated"],"recipient_kind":"processor"}`, 400, "url"},
				{"relative URL", `{"url":"/hooks","event_types":["consent.updated"],"recipient_kind":"processor"}`, 400, "url"},
				{"third party without recipient", `{"url":"https://h.example/","event_types":["consent.updated"],"recipient_kind":"third_party"}`, 400, "recipient_id"},
				{"processor with recipient", `{"url":"https://h.example/","event_types":["consent.updated"],"recipient_kind":"processor","recipient_id":"x"}`, 400, "recipient_id"},
				{"purpose not a key", `{"url":"https://h.example/","event_types":["consent.updated"],"recipient_kind":"processor","purposes":["Not A Key"]}`, 400, "purposes"},
				{"unknown recipient", `{"url":"https://h.example/","event_types":["consent.updated"],"recipient_kind":"third_party","recipient_id":"` + identity.NewID() + `"}`, 422, "recipient_id"},
			}},
		{name: "patch webhook", method: "PATCH", path: "/v1/admin/webhooks/" + identity.NewID(), headers: admin,
			valid: map[string]any{"description": "d"}, wrongType: `{"purposes":"analytics"}`, wrongField: "purposes", text: "description", limit: lim,
			extra: []hostile{
				{"empty event types", `{"event_types":[]}`, 400, "event_types"},
				{"secret", `{"secret":"whsec_x"}`, 400, "secret"},
			}},
		{name: "create connector", method: "POST", path: "/v1/admin/connectors", headers: admin,
			valid: map[string]any{"vendor": "mailchimp", "name": "Newsletter", "recipient_kind": "processor",
				"mappings": []map[string]any{{"purpose": "marketing_email", "list_id": "a1b2c3"}}, "credentials": map[string]any{"api_key": "k-us6"}},
			wrongType:  `{"vendor":"mailchimp","name":"N","recipient_kind":"processor","mappings":{"purpose":"marketing_email"},"credentials":{}}`,
			wrongField: "mappings", required: []string{"vendor", "name", "recipient_kind", "mappings"}, text: "description", limit: lim,
			extra: []hostile{
				{"unknown vendor", `{"vendor":"sendgrid","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email"}],"credentials":{}}`, 400, "vendor"},
				{"no mappings", `{"vendor":"mailchimp","name":"N","recipient_kind":"processor","mappings":[],"credentials":{"api_key":"k-us6"}}`, 400, "mappings"},
				{"audience missing", `{"vendor":"mailchimp","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email"}],"credentials":{"api_key":"k-us6"}}`, 400, "mappings[0].list_id"},
				{"key without data centre", `{"vendor":"mailchimp","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email","list_id":"a"}],"credentials":{"api_key":"nodatacentre"}}`, 400, "credentials.api_key"},
				{"HubSpot without token", `{"vendor":"hubspot","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email","subscription_id":7}],"credentials":{}}`, 400, "credentials.access_token"},
				{"HubSpot without subscription", `{"vendor":"hubspot","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email"}],"credentials":{"access_token":"t"}}`, 400, "mappings[0].subscription_id"},
				{"purpose twice", `{"vendor":"klaviyo","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email","list_id":"L"},{"purpose":"marketing_email","list_id":"M"}],"credentials":{"api_key":"k"}}`, 400, "mappings[1].purpose"},
				{"control characters in the key", `{"vendor":"klaviyo","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email","list_id":"L"}],"credentials":{"api_key":"k\u0000"}}`, 400, "credentials.api_key"},
				{"base URL without LUPA_ALLOW_PRIVATE_WEBHOOKS", `{"vendor":"klaviyo","name":"N","recipient_kind":"processor","mappings":[{"purpose":"marketing_email","list_id":"L"}],"credentials":{"api_key":"k"},"base_url":"http://169.254.169.254/"}`, 400, "base_url"},
				{"unknown recipient", `{"vendor":"klaviyo","name":"N","recipient_kind":"third_party","recipient_id":"` + identity.NewID() + `","mappings":[{"purpose":"marketing_email","list_id":"L"}],"credentials":{"api_key":"k"}}`, 422, "recipient_id"},
			}},
		{name: "patch connector", method: "PATCH", path: "/v1/admin/connectors/con_" + identity.NewID(), headers: admin,
			valid: map[string]any{"description": "d"}, wrongType: `{"mappings":"marketing_email"}`, wrongField: "mappings", text: "description", limit: lim,
			extra: []hostile{
				{"empty mappings", `{"mappings":[]}`, 400, "mappings"},
				{"vendor", `{"vendor":"hubspot"}`, 400, "vendor"},
			}},
		{name: "rotate webhook secret", method: "POST", path: "/v1/admin/webhooks/" + identity.NewID() + "/rotate-secret", headers: admin,
			valid: map[string]any{"overlap_seconds": 60}, wrongType: `{"overlap_seconds":"1h"}`, wrongField: "overlap_seconds", limit: lim,
			extra: []hostile{
				{"negative overlap", `{"overlap_seconds":-1}`, 400, "overlap_seconds"},
				{"overlap past a week", `{"overlap_seconds":604801}`, 400, "overlap_seconds"},
			}},
	}
}

// TestHTTPBadInputMatrix sends every kind of bad body to every endpoint that takes one, and
// checks that each is refused with the right problem and that nothing stored changed.
func TestHTTPBadInputMatrix(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		device := s.newDevice(t, grantAnalytics())
		cust := map[string]any{"kind": "customer_number", "value": "C-1001"}
		o := recorded(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": cust,
			"method": "api", "decisions": []map[string]any{decision("marketing_email", 1, "granted")}}))
		before := s.storedView(t, device, write, cust)

		for _, ep := range s.bodyEndpoints(write, o.Receipt) {
			t.Run(ep.name, func(t *testing.T) {
				send := func(body any, headers ...string) *response {
					t.Helper()
					return s.request(ep.method, ep.path, body, append(append([]string{}, ep.headers...), headers...)...)
				}
				valid := mustJSON(ep.valid)

				r := send(`{"method": `)
				p := wantProblem(t, r, http.StatusBadRequest)
				if !strings.HasSuffix(p.Type, ":malformed_json") {
					t.Errorf("malformed JSON: problem type %q", p.Type)
				}
				wantProblem(t, send(`[]`), http.StatusBadRequest)
				wantProblem(t, send(`"just a string"`), http.StatusBadRequest)
				wantProblem(t, send(``), http.StatusBadRequest)

				wantProblem(t, send(ep.wrongType), http.StatusBadRequest, ep.wrongField)

				wantProblem(t, send(with(ep.valid, "surprise", 1)), http.StatusBadRequest, "surprise")

				if len(ep.required) > 0 {
					wantProblem(t, send(`{}`), http.StatusBadRequest, ep.required...)
				}

				// Bodies over the limit: with a Content-Length, and streamed without one.
				big := fmt.Sprintf(`{"%s":"%s"}`, leaf(ep.text), strings.Repeat("a", ep.limit))
				wantProblem(t, send(big), http.StatusRequestEntityTooLarge)
				wantProblem(t, s.chunked(ep.method, ep.path, big, ep.headers...), http.StatusRequestEntityTooLarge)

				wantProblem(t, send(valid, "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
				wantProblem(t, send(valid, "Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType)
				wantProblem(t, send(valid, "Content-Type", ""), http.StatusUnsupportedMediaType)
				wantProblem(t, send(valid, "Content-Type", "application/json; charset=latin1"), http.StatusUnsupportedMediaType)
				wantProblem(t, send(valid, "Content-Encoding", "gzip"), http.StatusUnsupportedMediaType)

				for _, tail := range []string{"x", " {}", "}", "]", ",", `{"a":1}`, "\x00"} {
					r := send(string(valid) + tail)
					if r.Status != http.StatusBadRequest {
						t.Errorf("trailing %q: status %d, want 400: %.200s", tail, r.Status, r.Body)
						continue
					}
					wantProblem(t, r, http.StatusBadRequest)
				}

				long := strings.Repeat("a", 61000) // over every string limit, under the body limit
				if ep.path == "/v1/receipts/verify" {
					long = strings.Repeat("a", consentweb.ReceiptLimit+1) // a receipt may be long
				}
				cases := []hostile{
					{"long string", string(mustJSON(with(ep.valid, ep.text, long))), 400, leaf(ep.text)},
					{"NUL", string(mustJSON(with(ep.valid, ep.text, "A\x00B"))), 400, leaf(ep.text)},
					{"escape sequence", string(mustJSON(with(ep.valid, ep.text, "A\x1b[2JB"))), 400, leaf(ep.text)},
					{"bell and backspace", string(mustJSON(with(ep.valid, ep.text, "A\a\bB"))), 400, leaf(ep.text)},
					{"invalid UTF-8", rawWith(ep.valid, ep.text, "\"A\xff\xfeB\""), 400, ""},
					{"deep nesting", rawWith(ep.valid, ep.text, strings.Repeat("[", 20000)+strings.Repeat("]", 20000)), 400, ""},
					{"deep objects", rawWith(ep.valid, ep.text, strings.Repeat(`{"a":`, 5000)+"1"+strings.Repeat("}", 5000)), 400, ""},
					{"huge number", rawWith(ep.valid, ep.text, "1e400"), 400, leaf(ep.text)},
					{"long number", rawWith(ep.valid, ep.text, strings.Repeat("9", 30000)), 400, leaf(ep.text)},
				}
				for _, h := range append(cases, ep.extra...) {
					r := send(h.body)
					if r.Status < 400 || r.Status >= 500 || (h.status != 0 && r.Status != h.status) {
						t.Errorf("%s: status %d, want %d (a 4xx): %.300s", h.name, r.Status, h.status, r.Body)
						continue
					}
					if h.field != "" {
						wantProblem(t, r, r.Status, h.field)
					} else {
						wantProblem(t, r, r.Status)
					}
				}
			})
		}

		after := s.storedView(t, device, write, cust)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("bad requests changed %s:\nbefore: %.1000s\nafter:  %.1000s", k, v, after[k])
			}
		}
	})
}

// chunked sends body without a Content-Length, as a stream.
func (s *testServer) chunked(method, path, body string, headers ...string) *response {
	s.t.Helper()
	return send(s.t, s.Client(), newTestRequest(s.t, method, s.URL+path, struct{ io.Reader }{strings.NewReader(body)}, headers...))
}

// TestHTTPCheckBodyLimit: the bulk check takes bodies up to 2 MiB, every other endpoint
// 64 KiB.
func TestHTTPCheckBodyLimit(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		body := func(n, size int) []byte {
			var b bytes.Buffer
			b.WriteString(`{"purpose":"marketing_email","identifiers":[`)
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"kind":"customer_number","value":"C-%060d"}`, i)
			}
			// JSON allows whitespace anywhere between tokens: pad to the size wanted.
			if pad := size - b.Len() - 2; pad > 0 {
				b.WriteString(strings.Repeat(" ", pad))
			}
			b.WriteString("]}")
			return b.Bytes()
		}
		okBody := body(10000, 3<<19) // 1.5 MiB
		r := s.withKey(read, http.MethodPost, "/v1/consents/check", okBody)
		if r.Status != http.StatusOK {
			t.Fatalf("1.5 MiB check: %d %.300s", r.Status, r.Body)
		}
		var res struct {
			Results []struct {
				MayUse bool   `json:"may_use"`
				Reason string `json:"reason"`
			} `json:"results"`
		}
		r.JSON(t, &res)
		if len(res.Results) != 10000 || res.Results[9999].MayUse || res.Results[9999].Reason != "unknown_subject" {
			t.Fatalf("check answered %d results, last %+v", len(res.Results), res.Results[len(res.Results)-1])
		}
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/consents/check", body(10000, 2<<20+1)), http.StatusRequestEntityTooLarge)
		wantProblem(t, s.chunked(http.MethodPost, "/v1/consents/check", string(body(100, 2<<20+1)), "Authorization", "Bearer "+read),
			http.StatusRequestEntityTooLarge)
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/consents/check", body(10001, 0)), http.StatusBadRequest, "identifiers")

		// The same 1.5 MiB is far over the limit of every other endpoint.
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/subjects/state", okBody), http.StatusRequestEntityTooLarge)
	})
}

// TestHTTPHostileURLs: control characters and junk in paths, query strings and headers get
// a 4xx, never a 500.
func TestHTTPHostileURLs(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		device := s.newDevice(t, grantAnalytics())
		before := s.ledger(t, s.demo.AdminKey)
		for _, c := range []struct {
			method, path string
			headers      []string
		}{
			{"GET", "/v1/admin/brands/a%00b", nil},
			{"GET", "/v1/admin/brands/" + strings.Repeat("x", 5000), nil},
			{"GET", "/v1/admin/properties/%1b%5b2J", nil},
			{"GET", "/v1/admin/recipients/%F0%9F%98%80", nil},
			{"GET", "/v1/admin/purposes/analytics%00", nil},
			{"GET", "/v1/admin/purposes/analytics/versions/99999999999999999999999", nil},
			{"GET", "/v1/admin/purposes/analytics/versions/-1", nil},
			{"GET", "/v1/admin/purposes/analytics/versions/1%00", nil},
			{"DELETE", "/v1/admin/api-keys/%00", nil},
			{"GET", "/v1/admin/audit?object_id=%00", nil},
			{"GET", "/v1/admin/audit?before=%00&action=%ff", nil},
			{"GET", "/v1/admin/audit?limit=1e400", nil},
			{"GET", "/v1/admin/data-map/systems/%00", nil},
			{"GET", "/v1/admin/data-map/systems/" + strings.Repeat("x", 5000), nil},
			{"GET", "/v1/admin/data-map/systems?limit=1e400", nil},
			{"GET", "/v1/admin/data-map/systems?before=%00", nil},
			{"GET", "/v1/admin/data-map/systems/x/keep-until?date=99999-01-01", nil},
			{"GET", "/v1/admin/data-map/systems/x/keep-until?date=%F0%9F%98%80", nil},
			{"DELETE", "/v1/admin/data-map/systems/%1b%5b2J", nil},
			{"GET", "/v1/consents?property=pk_%00", []string{"Origin", s.Origin, "Lupa-Device-Id", device}},
			{"GET", "/v1/consents?property=pk_" + strings.Repeat("a", 200), []string{"Origin", s.Origin, "Lupa-Device-Id", device}},
			{"GET", "/v1/consents?property=" + s.demo.WebShop.PublicKey, []string{"Origin", s.Origin, "Lupa-Device-Id", strings.Repeat("a", 5000)}},
			{"GET", "/v1/consents?property=" + s.demo.WebShop.PublicKey, []string{"Origin", s.Origin, "Lupa-Device-Id", "ä" + device[2:]}},
			{"GET", "/v1/consents?property=" + s.demo.WebShop.PublicKey, []string{"Origin", "https://shöp.example", "Lupa-Device-Id", device}},
		} {
			h := append([]string{"Authorization", "Bearer " + s.demo.AdminKey}, c.headers...)
			r := s.request(c.method, c.path, nil, h...)
			if r.Status < 400 || r.Status >= 500 {
				t.Errorf("%s %.80s: status %d, want a 4xx: %.300s", c.method, c.path, r.Status, r.Body)
				continue
			}
			wantProblem(t, r, r.Status)
		}
		// Hostile Authorization headers on the server API.
		for _, key := range []string{"sk_" + strings.Repeat("a", 5000), "Bearer", "sk_ä"} {
			r := s.request(http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C"}},
				"Authorization", "Bearer "+key)
			wantProblem(t, r, http.StatusUnauthorized)
		}
		_ = read
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("ledger changed: %+v → %+v", before, after)
		}
		if st := s.stateOf(t, device); st["analytics"] != "granted" {
			t.Fatalf("device state changed: %v", st)
		}
	})
}

// TestHTTPUnicodeRoundTrip: legitimate non-ASCII text is stored and shown exactly.
func TestHTTPUnicodeRoundTrip(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		name := "Åbo Ääkkönen ja Ödön 😀 Oy — «ﬁ» 中文 עברית"
		r := s.admin(http.MethodPost, "/v1/admin/brands", map[string]any{"name": name, "legal_name": name})
		if r.Status != http.StatusCreated {
			t.Fatalf("create brand: %d %s", r.Status, r.Body)
		}
		var b struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		r.JSON(t, &b)
		g := s.admin(http.MethodGet, "/v1/admin/brands/"+b.ID, nil)
		g.JSON(t, &b)
		if b.Name != name {
			t.Fatalf("name came back as %q, want %q", b.Name, name)
		}
		// A customer number in any script is a customer number.
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		cust := map[string]any{"kind": "customer_number", "value": "Ää-😀-123"}
		recorded(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": cust,
			"method": "api", "decisions": []map[string]any{decision("marketing_email", 1, "granted")}}))
		st := s.withKey(write, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": cust})
		if st.Status != http.StatusOK || !strings.Contains(string(st.Body), `"purpose":"marketing_email","state":"granted"`) {
			t.Fatalf("state of a unicode customer number: %d %s", st.Status, st.Body)
		}
	})
}

// TestHTTPFieldMessages: the message for a field says what is wrong with it in words a
// developer can act on.
func TestHTTPFieldMessages(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		history := func(field string, v any) *response {
			return s.withKey(read, http.MethodPost, "/v1/subjects/history",
				map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-1"}, field: v})
		}
		for _, c := range []struct {
			r           *response
			field, msg  string
			mustNotHave string
		}{
			{s.admin(http.MethodPatch, "/v1/admin/tenant", map[string]any{"jurisdiction": "Finland"}), "jurisdiction", "exactly 2 characters", "hexadecimal"},
			{s.admin(http.MethodPost, "/v1/admin/recipients", map[string]any{"name": "P", "legal_name": "P Oy", "kind": "partner", "country": "FIN"}), "country", "exactly 2 characters", "hexadecimal"},
			{s.collect(with(grantAnalytics(), "ui_hash", "abc")), "ui_hash", "64 characters", ""},
			{s.admin(http.MethodPost, "/v1/admin/brands", map[string]any{"name": strings.Repeat("n", 201), "legal_name": "L"}), "name", "at most 200 characters", ""},
			{s.admin(http.MethodPost, "/v1/admin/brands", map[string]any{"name": "Tab\tOK", "legal_name": "Bell\aOy"}), "legal_name", "control characters", ""},
			{s.collect(with(grantAnalytics(), "method", 7)), "method", "must be a string", ""},
			{s.collect(with(grantAnalytics(), "decisions", "all")), "decisions", "must be an array", ""},
			// A time is a struct in Go; the message must still speak JSON.
			{s.collect(with(grantAnalytics(), "client_time", "2026-13-45")), "client_time", "must be an RFC 3339 date-time", "object"},
			{history("from", "yesterday"), "from", "must be an RFC 3339 date-time", "object"},
			{history("to", 1700000000), "to", "must be an RFC 3339 date-time", "object"},
			{history("after", "garbage"), "after", "the next of a history page", "integer"},
			{history("after", -1), "after", "the next of a history page", "integer"},
		} {
			p := wantProblem(t, c.r, http.StatusBadRequest, c.field)
			msg, _ := p.field(c.field)
			if !strings.Contains(msg, c.msg) || (c.mustNotHave != "" && strings.Contains(msg, c.mustNotHave)) {
				t.Errorf("%s: message %q, want it to say %q", c.field, msg, c.msg)
			}
		}
	})
}

// TestHTTPFieldMessagesAllAtOnce: one answer names every field at fault, those the body's
// own checks find and those the service's rules find, so a client fixing them needs one
// round trip, not one per stage.
func TestHTTPFieldMessagesAllAtOnce(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		_, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		cust := map[string]any{"kind": "customer_number", "value": "C-1001"}
		check := func(body map[string]any) *response {
			return s.withKey(read, http.MethodPost, "/v1/consents/check", body)
		}
		// Objects to patch: the demo's, and one of each kind it has none of.
		create := func(path string, body map[string]any) string {
			t.Helper()
			r := s.admin(http.MethodPost, path, body)
			if r.Status != http.StatusCreated {
				t.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
			}
			return r.Map(t)["id"].(string)
		}
		var recipient string
		for _, r := range s.demo.Recipients {
			recipient = r.ID
			break
		}
		issuer := create("/v1/admin/ciam-issuers", map[string]any{"name": "CIAM", "issuer": "https://id.example", "audiences": []string{"lupa"}})
		provider := create("/v1/admin/login-providers", map[string]any{"kind": "oidc", "label": "Kauppa ID",
			"issuer": "https://id.example", "client_id": "lupa", "client_secret": "s3cret"})
		system := create("/v1/admin/data-map/systems", accountingSystem("All at once"))
		hook := create("/v1/admin/webhooks", map[string]any{"url": "https://hooks.example/lupa",
			"event_types": []string{"consent.updated"}, "recipient_kind": "processor"})
		conn := create("/v1/admin/connectors", map[string]any{"vendor": "mailchimp", "name": "Newsletter", "recipient_kind": "processor",
			"mappings": []map[string]any{{"purpose": "marketing_email", "list_id": "a1b2c3"}}, "credentials": map[string]any{"api_key": "k-us6"}})
		texts := func(title string) map[string]any {
			return map[string]any{"texts": map[string]any{"fi": map[string]any{"title": title, "description": "Kuvaus", "policy_url": "ftp://x"}}}
		}
		badSystem := with(with(with(dataMapSystem("M"), "name", ""), "locations", []string{"fi"}), "retention", map[string]any{"preset": "forever"})
		noRules := with(dataMapSystem("N"), "locations", []string{"fi"})
		delete(noRules, "retention")
		delete(noRules, "dsr")
		// Fields the answer must not name: a patch's rule that reads what the patch leaves
		// alone (that is the stored object's, which the service reads), the parts of what a
		// create lacks or a preset gives.
		notNamed := map[string][]string{
			"patch property":                       {"allowed_origins"},                    // valid origins, whatever the stored kind
			"patch purpose":                        {"double_opt_in"},                      // fine unless the stored basis is a legitimate interest
			"patch login provider":                 {"trusted_for_email", "issuer"},        // Facebook's rules, if the stored kind is facebook
			"patch data map system":                {"locations[1]", "dsr.method"},         // the stored transfers and connection may cover them
			"patch webhook":                        {"recipient_id"},                       // right for a stored third party
			"patch connector":                      {"mappings[0].list_id", "credentials"}, // the stored vendor's rules
			"create data map system":               {"retention.anchor"},                   // the preset's to give
			"create data map system without rules": {"retention.anchor", "dsr.method"},     // said of what is missing
		}
		for _, c := range []struct {
			name   string
			r      *response
			fields []string
		}{
			{"patch tenant", s.admin(http.MethodPatch, "/v1/admin/tenant",
				map[string]any{"contact_email": "notanemail", "website": "ftp://x", "jurisdiction": "ZZZ"}),
				[]string{"contact_email", "website", "jurisdiction"}},
			{"create brand", s.admin(http.MethodPost, "/v1/admin/brands",
				map[string]any{"name": "", "legal_name": "", "contact_email": "x", "website": "y"}),
				[]string{"name", "legal_name", "contact_email", "website"}},
			{"check without purpose", check(map[string]any{"identifiers": []any{cust,
				map[string]any{"kind": "device", "value": "short"}, cust,
				map[string]any{"kind": "email", "value": "not an address"},
				map[string]any{"kind": "phone", "value": "+358401234567"}}}),
				[]string{"purpose", "identifiers[1].value", "identifiers[3].value", "identifiers[4].kind"}},
			{"check", check(map[string]any{"purpose": "marketing_email", "identifiers": []any{
				map[string]any{"kind": "device", "value": "short"}, cust,
				map[string]any{"kind": "email", "value": "not an address"}}}),
				[]string{"identifiers[0].value", "identifiers[2].value"}},
			// The other admin creates, by the same means.
			{"create property", s.admin(http.MethodPost, "/v1/admin/properties", map[string]any{"name": "", "brand_id": "x",
				"kind": "web", "allowed_origins": []string{"ftp://x"}, "default_language": "Finnish!"}),
				[]string{"name", "allowed_origins", "default_language"}},
			{"create api key", s.admin(http.MethodPost, "/v1/admin/api-keys", map[string]any{"name": "   ", "scopes": []string{}}),
				[]string{"name", "scopes"}},
			{"create recipient", s.admin(http.MethodPost, "/v1/admin/recipients", map[string]any{"name": "", "legal_name": "L",
				"kind": "partner", "privacy_policy_url": "ftp://x"}), []string{"name", "privacy_policy_url"}},
			{"create purpose", s.admin(http.MethodPost, "/v1/admin/purposes", map[string]any{"key": "Bad Key", "level": "",
				"legal_basis": "consent", "dpv_purpose": "not an IRI"}), []string{"key", "level", "dpv_purpose"}},
			{"create webhook", s.admin(http.MethodPost, "/v1/admin/webhooks", map[string]any{"url": "ftp://x",
				"event_types": []string{}, "recipient_kind": "processor"}), []string{"url", "event_types"}},
			// Patches, checked on what they send, and the rest of the admin API's bodies. In
			// each, the body's own checks find the first field named (the first two for the
			// system without rules), the service's rules the others.
			{"patch property", s.admin(http.MethodPatch, "/v1/admin/properties/"+s.demo.WebShop.ID, map[string]any{
				"status": "deleted", "default_language": "Finnish!", "allowed_origins": []string{"https://ok.example"}}),
				[]string{"status", "default_language"}},
			{"patch recipient", s.admin(http.MethodPatch, "/v1/admin/recipients/"+recipient, map[string]any{
				"kind": "friend", "privacy_policy_url": "ftp://x"}), []string{"kind", "privacy_policy_url"}},
			{"patch purpose", s.admin(http.MethodPatch, "/v1/admin/purposes/marketing_email", map[string]any{
				"reask_months": 61, "dpv_purpose": "not an IRI", "double_opt_in": true}), []string{"reask_months", "dpv_purpose"}},
			{"create version", s.admin(http.MethodPost, "/v1/admin/purposes/analytics/versions", texts("")),
				[]string{"texts[fi].title", "texts[fi].policy_url"}},
			{"patch version", s.admin(http.MethodPatch, "/v1/admin/purposes/analytics/versions/1", texts(strings.Repeat("a", 201))),
				[]string{"texts[fi].title", "texts[fi].policy_url"}},
			{"create CIAM issuer", s.admin(http.MethodPost, "/v1/admin/ciam-issuers", map[string]any{"name": "",
				"issuer": "http://id.example", "audiences": []string{"lupa"}}), []string{"name", "issuer"}},
			{"patch CIAM issuer", s.admin(http.MethodPatch, "/v1/admin/ciam-issuers/"+issuer, map[string]any{
				"clock_skew_seconds": 301, "jwks_url": "ftp://keys.example"}), []string{"clock_skew_seconds", "jwks_url"}},
			{"create login provider", s.admin(http.MethodPost, "/v1/admin/login-providers", map[string]any{"kind": "oidc",
				"label": "K", "issuer": "http://id.example", "client_id": "", "client_secret": "s"}), []string{"client_id", "issuer"}},
			{"patch login provider", s.admin(http.MethodPatch, "/v1/admin/login-providers/"+provider, map[string]any{
				"token_auth_method": "none", "scopes": []string{"openid email"}, "trusted_for_email": true,
				"issuer": "https://other.example"}), []string{"token_auth_method", "scopes"}},
			{"create data map system", s.admin(http.MethodPost, "/v1/admin/data-map/systems", badSystem),
				[]string{"name", "locations[0]", "retention.preset"}},
			{"create data map system without rules", s.admin(http.MethodPost, "/v1/admin/data-map/systems", noRules),
				[]string{"retention", "dsr", "locations[0]"}},
			{"patch data map system", s.admin(http.MethodPatch, "/v1/admin/data-map/systems/"+system, map[string]any{
				"name": "", "locations": []string{"fi", "US"}, "dsr": map[string]any{"method": "connector"}}),
				[]string{"name", "locations[0]"}},
			{"patch webhook", s.admin(http.MethodPatch, "/v1/admin/webhooks/"+hook, map[string]any{
				"description": strings.Repeat("a", 501), "url": "ftp://x", "recipient_id": "r1"}), []string{"description", "url"}},
			{"create connector", s.admin(http.MethodPost, "/v1/admin/connectors", map[string]any{"vendor": "mailchimp", "name": "",
				"recipient_kind": "processor", "mappings": []map[string]any{{"purpose": "marketing_email"}},
				"credentials": map[string]any{"api_key": "nodatacentre"}}),
				[]string{"name", "mappings[0].list_id", "credentials.api_key"}},
			{"patch connector", s.admin(http.MethodPatch, "/v1/admin/connectors/"+conn, map[string]any{
				"name": strings.Repeat("a", 101), "mappings": []map[string]any{{"purpose": "Not A Key"}},
				"credentials": map[string]any{}}), []string{"name", "mappings[0].purpose"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				p := wantProblem(t, c.r, http.StatusBadRequest)
				for _, f := range c.fields {
					if _, ok := p.field(f); !ok {
						t.Errorf("the answer does not name %s: %s", f, c.r.Body)
					}
				}
				for _, f := range notNamed[c.name] {
					for _, e := range p.Errors {
						if e.Field == f || strings.HasPrefix(e.Field, f+".") {
							t.Errorf("the answer names %s, which the stored object decides: %s", e.Field, c.r.Body)
						}
					}
				}
				// A field is named once, however its stages spell it ("texts[fi]", "texts.fi").
				seen := map[string]bool{}
				for _, e := range p.Errors {
					f := strings.NewReplacer("[", ".", "]", "").Replace(e.Field)
					if seen[f] {
						t.Errorf("the answer names %s twice: %s", e.Field, c.r.Body)
					}
					seen[f] = true
				}
			})
		}

		// A check with thousands of bad identifiers names the first 20 and counts the rest.
		bad := make([]any, 1000)
		for i := range bad {
			bad[i] = map[string]any{"kind": "device", "value": "short"}
		}
		r := check(map[string]any{"identifiers": bad})
		p := wantProblem(t, r, http.StatusBadRequest, "purpose", "identifiers[0].value", "identifiers[19].value")
		if _, ok := p.field("identifiers[20].value"); ok || len(p.Errors) != 22 {
			t.Errorf("%d field errors, want purpose, 20 identifiers and a count of the rest: %.2000s", len(p.Errors), r.Body)
		}
		if msg, _ := p.field("identifiers"); !strings.Contains(msg, "980 more") {
			t.Errorf("the count of the rest says %q, want 980 more", msg)
		}
	})
}
