package main

// The contract between routes.go and openapi.yaml: the served document is a valid OpenAPI
// 3.1 document, the router's routes and the document's operations are the same set, and
// every operation, exercised with real requests on both databases, answers only what the
// document says (status, headers, content type and body).
//
// kin-openapi loads and validates the document, finds each request's operation and checks
// statuses, content types, headers and parameters. Bodies are checked by
// santhosh-tekuri/jsonschema as JSON Schema 2020-12 (the dialect of OpenAPI 3.1) against
// the served document itself: kin-openapi uses its 2020-12 validator only for schemas with
// 2020-only keywords and its own OpenAPI 3.0 validator for the rest.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"
	"github.com/gin-gonic/gin"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lupa-cmp/lupa/consent/consentweb"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// routerWithoutDatabase is the real router of an app that has no database: enough to serve
// the document and to list the routes.
func routerWithoutDatabase(t testing.TB) *gin.Engine {
	t.Helper()
	a := &app{log: slog.New(slog.DiscardHandler), now: time.Now}
	r, err := a.routes(newMetrics())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// loadOpenAPI fetches /v1/openapi.json from h and loads it, failing unless it is a valid
// OpenAPI 3.1 document.
func loadOpenAPI(t testing.TB, h http.Handler) *openapi3.T {
	t.Helper()
	doc, _ := loadOpenAPIRaw(t, h)
	return doc
}

func loadOpenAPIRaw(t testing.TB, h http.Handler) (*openapi3.T, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("load the served document: %v", err)
	}
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(doc.OpenAPI) || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi is %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the served document is not a valid OpenAPI 3.1 document: %v", err)
	}
	return doc, rec.Body.Bytes()
}

// ginToOpenAPI turns gin's /a/:id/*rest into OpenAPI's /a/{id}/{rest}.
func ginToOpenAPI(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

func documentedOperations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

// pagePrefixes are the routes of HTML pages for people — the customer account pages and
// the development mailbox — which are not part of the JSON API and so not in
// openapi.yaml (its description says so). docs/accounts.md describes them, and
// http_accounts_test.go tests them. /demo is a page too but stays documented, as it was
// before this list existed.
var pagePrefixes = []string{
	"/t/",       // a tenant's registration, sign-in and link request pages
	"/account",  // the account, and the pages emailed links open
	"/dev/",     // the development mailbox
	"/optin",    // the double opt-in confirmation page
	"/register", // the registration widget's form (in an iframe)
}

func isPage(path string) bool {
	for _, p := range pagePrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func TestOpenAPIDocument(t *testing.T) {
	h := routerWithoutDatabase(t)
	doc := loadOpenAPI(t, h)
	ops := documentedOperations(doc)

	// The router's routes and the document's operations, both ways; pages for people
	// excepted (pagePrefixes).
	routed := map[string]bool{}
	for _, r := range h.Routes() {
		if isPage(r.Path) {
			continue
		}
		routed[r.Method+" "+ginToOpenAPI(r.Path)] = true
	}
	for key := range ops {
		if _, path, _ := strings.Cut(key, " "); isPage(path) {
			t.Errorf("openapi.yaml documents %s, but pages for people are not part of the API", key)
		}
	}
	for key := range routed {
		if ops[key] == nil {
			t.Errorf("route %s is not in openapi.yaml", key)
		}
	}
	for key := range ops {
		if !routed[key] {
			t.Errorf("openapi.yaml documents %s, which routes.go does not route", key)
		}
	}

	// House rules of the document, so that it stays useful as it grows.
	ids := map[string]string{}
	for key, op := range ops {
		if op.OperationID == "" || op.Summary == "" || op.Description == "" || len(op.Tags) == 0 {
			t.Errorf("%s: needs operationId, summary, description and tags", key)
		}
		if prev, ok := ids[op.OperationID]; ok {
			t.Errorf("%s and %s share operationId %s", key, prev, op.OperationID)
		}
		ids[op.OperationID] = key
		if op.Security == nil {
			t.Errorf("%s: say its security explicitly (security: [] when public)", key)
		}
		statuses := map[int]bool{}
		success := false
		for code, ref := range op.Responses.Map() {
			var status int
			if _, err := fmt.Sscanf(code, "%d", &status); err != nil {
				t.Errorf("%s: response %q: name a status, not a range or default", key, code)
				continue
			}
			statuses[status] = true
			success = success || status < 400 // a redirect or 304 answers too
			resp := ref.Value
			if resp.Headers["X-Request-Id"] == nil {
				t.Errorf("%s %d: document the X-Request-Id header", key, status)
			}
			// A HEAD answer has no body; readiness answers plain JSON for load balancers.
			head := strings.HasPrefix(key, "HEAD ")
			readyz := strings.HasSuffix(key, " /readyz")
			if status >= 400 && !readyz && !head {
				if len(resp.Content) != 1 || resp.Content.Get("application/problem+json") == nil {
					t.Errorf("%s %d: errors are application/problem+json", key, status)
				}
			}
			if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable && !readyz {
				if h := resp.Headers["Retry-After"]; h == nil || !h.Value.Required {
					t.Errorf("%s %d: document the required Retry-After header", key, status)
				}
			}
		}
		if !success {
			t.Errorf("%s: documents no success response", key)
		}
		if !statuses[http.StatusBadRequest] {
			t.Errorf("%s: every route refuses URLs with control characters, so it must document 400", key)
		}
		need := func(why string, codes ...int) {
			for _, c := range codes {
				if !statuses[c] {
					t.Errorf("%s: %s, so it must document %d", key, why, c)
				}
			}
		}
		for _, req := range *op.Security {
			for scheme, scopes := range req {
				switch scheme {
				case "apiKey":
					need("it takes an API key", 401, 500)
					if len(scopes) != 1 || !slices.Contains(identity.Scopes, scopes[0]) {
						t.Errorf("%s: name the one scope it needs, not %v", key, scopes)
					} else if scopes[0] != identity.ScopeConsentRead {
						need("its scope is not one every key has", 403)
					}
				case "propertyKey":
					need("it takes a property key", 401, 403, 404, 429, 500)
				case "ciamToken":
					need("it takes a customer's token, which may not verify or whose keys may not be fetched", 401, 503)
				case "webhookSignature":
					need("it takes a signed webhook", 400, 401, 413, 415, 500)
				default:
					t.Errorf("%s: unknown security scheme %s", key, scheme)
				}
			}
		}
		method, path, _ := strings.Cut(key, " ")
		if method == http.MethodPost && strings.HasPrefix(path, "/v1/admin/") && !takesIdempotencyKey(op) {
			t.Errorf("%s: every admin POST passes the idempotency middleware, so it must take the IdempotencyKey parameter", key)
		}
		if takesIdempotencyKey(op) {
			// The middleware answers before the handler: it reads any body sent with a key,
			// makes a retry wait while the first request runs, and refuses the key with another
			// request.
			need("it takes an Idempotency-Key", 409, 413, 415, 422)
		}
		if rb := op.RequestBody; rb != nil && slices.Contains(op.Tags, "Vendor webhooks") {
			// Mailchimp and HubSpot send their own formats (form-encoded, a JSON array with
			// their fields); the handlers take what the vendor sends, within a size limit.
			need("it takes a vendor's body", 400, 413)
		} else if rb != nil {
			need("it takes a body", 400, 413, 415)
			mt := rb.Value.Content.Get("application/json")
			if len(rb.Value.Content) != 1 || mt == nil {
				t.Errorf("%s: a request body is application/json", key)
				continue
			}
			s := mt.Schema.Value
			if !s.Type.Is("object") || s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
				t.Errorf("%s: the request body refuses unknown fields: say additionalProperties: false", key)
			}
		}
	}
}

// takesIdempotencyKey says whether an operation takes the Idempotency-Key header.
func takesIdempotencyKey(op *openapi3.Operation) bool {
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == openapi3.ParameterInHeader && p.Value.Name == identityweb.HeaderIdempotencyKey {
			return true
		}
	}
	return false
}

// TestOpenAPIValidationCanFail makes sure the contract's validation does fail when a real
// answer differs from the document, so that a green contract test means something.
func TestOpenAPIValidationCanFail(t *testing.T) {
	h := routerWithoutDatabase(t)
	_, raw := loadOpenAPIRaw(t, h)
	obj := func(v any, path ...string) map[string]any {
		for _, k := range path {
			v = v.(map[string]any)[k]
		}
		return v.(map[string]any)
	}
	for _, tc := range []struct {
		name   string
		mutate func(doc map[string]any)
	}{
		{"unchanged", nil},
		{"a value outside the schema", func(d map[string]any) {
			obj(d, "components", "schemas", "Status", "properties")["status"] = map[string]any{"enum": []any{"not what the server says"}}
		}},
		{"a missing required field", func(d map[string]any) {
			obj(d, "components", "schemas", "Status")["required"] = []any{"status", "uptime"}
		}},
		{"an undocumented field", func(d map[string]any) {
			obj(d, "components", "schemas", "Status")["properties"] = map[string]any{"state": map[string]any{"type": "string"}}
		}},
		{"an undocumented status", func(d map[string]any) {
			r := obj(d, "paths", "/healthz", "get", "responses")
			r["201"] = r["200"]
			delete(r, "200")
		}},
		{"another content type", func(d map[string]any) {
			c := obj(d, "paths", "/healthz", "get", "responses", "200", "content")
			c["text/plain"] = c["application/json"]
			delete(c, "application/json")
		}},
		{"a missing required header", func(d map[string]any) {
			obj(d, "paths", "/healthz", "get", "responses", "200", "headers")["X-Uptime"] = map[string]any{
				"required": true, "schema": map[string]any{"type": "integer"}}
		}},
	} {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if tc.mutate != nil {
			tc.mutate(d)
		}
		v := newValidator(t, jsonBytes(t, d))
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		err := v.response(req, rec.Code, rec.Header(), rec.Body.Bytes())
		if tc.mutate == nil && err != nil {
			t.Fatalf("GET /healthz does not match the document: %v", err)
		}
		if tc.mutate != nil && err == nil {
			t.Errorf("%s passed validation", tc.name)
		}
	}
}

// validator checks real exchanges against one document.
type validator struct {
	doc    *openapi3.T
	router routers.Router
	bodies *jsonschema.Compiler
	cache  map[string]*jsonschema.Schema
}

const docURL = "https://lupa.invalid/v1/openapi.json"

func newValidator(t testing.TB, raw []byte) *validator {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	router, err := legacyrouter.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, inst); err != nil {
		t.Fatal(err)
	}
	return &validator{doc: doc, router: router, bodies: c, cache: map[string]*jsonschema.Schema{}}
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// body validates a JSON body against the schema at a JSON pointer of the document.
func (v *validator) body(pointer string, body []byte) error {
	sch := v.cache[pointer]
	if sch == nil {
		var err error
		if sch, err = v.bodies.Compile(docURL + "#" + pointer); err != nil {
			return fmt.Errorf("compile %s: %w", pointer, err)
		}
		v.cache[pointer] = sch
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the body is not JSON: %w", err)
	}
	return sch.Validate(inst)
}

// mediaTypeKey returns the key of content that a Content-Type header selects.
func mediaTypeKey(content openapi3.Content, contentType string) (string, bool) {
	mt := content.Get(contentType)
	for k, m := range content {
		if m == mt && mt != nil {
			return k, true
		}
	}
	return "", false
}

func (v *validator) options() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status fails
		ExcludeResponseBody:   true, // bodies are checked as JSON Schema 2020-12 below
		ExcludeRequestBody:    true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
}

// response checks a real answer to req: its status is documented for the operation, and
// its headers, content type and body match.
func (v *validator) response(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("not in the document: %w", err)
	}
	opts := v.options()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Options: opts})
	if err != nil {
		return err
	}
	code := fmt.Sprint(status)
	ref := route.Operation.Responses.Value(code)
	if len(ref.Value.Content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("the document says %d has no body, but it has one", status)
		}
		return nil
	}
	key, ok := mediaTypeKey(ref.Value.Content, header.Get("Content-Type"))
	if !ok {
		return fmt.Errorf("content type %q is not documented for %d", header.Get("Content-Type"), status)
	}
	if !strings.Contains(key, "json") {
		if len(body) == 0 {
			return fmt.Errorf("an empty %s body", key)
		}
		return nil // scripts, stylesheets and pages: the content type is what the document says
	}
	pointer := "/paths/" + pointerEscape(route.Path) + "/" + strings.ToLower(route.Method) + "/responses/" + code
	if ref.Ref != "" {
		pointer = strings.TrimPrefix(ref.Ref, "#")
	}
	return v.body(pointer+"/content/"+pointerEscape(key)+"/schema", body)
}

// request checks a request against the document: parameters, headers and body.
func (v *validator) request(req *http.Request, body []byte) error {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("not in the document: %w", err)
	}
	err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route, Options: v.options()})
	if err != nil {
		return err
	}
	rb := route.Operation.RequestBody
	// A request without a body, type or length, matches a body the document makes optional.
	if rb == nil || (!rb.Value.Required && len(body) == 0 && req.Header.Get("Content-Type") == "") {
		return nil
	}
	key, ok := mediaTypeKey(rb.Value.Content, req.Header.Get("Content-Type"))
	if !ok {
		return fmt.Errorf("content type %q is not documented", req.Header.Get("Content-Type"))
	}
	pointer := "/paths/" + pointerEscape(route.Path) + "/" + strings.ToLower(route.Method) + "/requestBody"
	if rb.Ref != "" {
		pointer = strings.TrimPrefix(rb.Ref, "#")
	}
	return v.body(pointer+"/content/"+pointerEscape(key)+"/schema", body)
}

// contract exercises a test server and validates every exchange against the document.
type contract struct {
	*validator
	t *testing.T
	s *testServer
	// seen records, per documented operation, the statuses whose answers were validated.
	seen map[string]map[int]bool
}

func newContract(t *testing.T, s *testServer) *contract {
	_, raw := loadOpenAPIRaw(t, s.Config.Handler)
	// Redirects are answers the document describes, not something to follow.
	s.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &contract{validator: newValidator(t, raw), t: t, s: s, seen: map[string]map[int]bool{}}
}

const (
	requestMatches        = iota // a success: the document must accept the request too
	requestBreaksDocument        // a refusal the document predicts: it must refuse the request too
	requestAny                   // a refusal for reasons beyond the request's schema
)

// call sends a request (body: nil, []byte, string or a value encoded as JSON; headers as
// name, value pairs), expects status want, and validates the answer against the document.
// For a success it also validates the request: the server took it, so the document must.
func (k *contract) call(want int, method, path string, body any, headers ...string) *response {
	k.t.Helper()
	mode := requestAny
	if want < 300 {
		mode = requestMatches
	}
	return k.exchange(mode, want, method, path, body, headers...)
}

// reject is call for a request that is refused because it breaks the document's own
// description of the request, which must therefore refuse it too.
func (k *contract) reject(want int, method, path string, body any, headers ...string) *response {
	k.t.Helper()
	return k.exchange(requestBreaksDocument, want, method, path, body, headers...)
}

func (k *contract) exchange(mode, want int, method, path string, body any, headers ...string) *response {
	k.t.Helper()
	raw := encodeBody(k.t, body)
	newRequest := func() *http.Request {
		return newTestRequest(k.t, method, k.s.URL+path, bodyReader(raw, body != nil), headers...)
	}
	r := send(k.t, k.s.Client(), newRequest())
	data := r.Body
	what := method + " " + strings.SplitN(path, "?", 2)[0]
	if r.Status != want {
		k.t.Errorf("%s: status %d, want %d: %s", what, r.Status, want, data)
	}
	req := newRequest()
	if err := k.response(req, r.Status, r.Header, r.Body); err != nil {
		k.t.Errorf("%s: the %d answer does not match openapi.yaml: %v\nbody: %s", what, r.Status, err, truncateBody(data))
		return r
	}
	route, _, _ := k.router.FindRoute(req)
	op := route.Method + " " + route.Path
	if k.seen[op] == nil {
		k.seen[op] = map[int]bool{}
	}
	k.seen[op][r.Status] = true
	if mode != requestAny && r.Status == want {
		err := k.request(newRequest(), raw)
		switch {
		case mode == requestMatches && err != nil:
			k.t.Errorf("%s: the server took a request that openapi.yaml refuses: %v\nrequest: %s", what, err, truncateBody(raw))
		case mode == requestBreaksDocument && err == nil:
			k.t.Errorf("%s: the server refused (%d) a request that openapi.yaml accepts: %s\nrequest: %s", what, r.Status, data, truncateBody(raw))
		}
	}
	return r
}

func truncateBody(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// pendingConflict claims an Idempotency-Key as a request in flight would, and checks that
// a request with the same key and body is told to retry (409, Retry-After).
func (k *contract) pendingConflict(route, path string, body []byte, headers ...string) {
	k.t.Helper()
	ctx := context.Background()
	tenant, key := k.s.demo.Tenant.ID, "in-flight-"+identity.NewID()
	hash := identityweb.RequestHash([]byte(http.MethodPost+" "+path), body)
	claim, stored, err := k.s.app.ids.ClaimIdempotency(ctx, tenant, route, key, hash)
	if err != nil || stored != nil {
		k.t.Fatalf("claim: %v %v", stored, err)
	}
	r := k.call(http.StatusConflict, http.MethodPost, path, body, append(slices.Clone(headers), "Idempotency-Key", key)...)
	if r.Header.Get("Retry-After") == "" {
		k.t.Errorf("POST %s in flight: no Retry-After", path)
	}
	if err := k.s.app.ids.ReleaseIdempotency(ctx, claim); err != nil {
		k.t.Fatal(err)
	}
}

// coverage fails for every documented status of every operation that no exchange showed.
func (k *contract) coverage(exempt map[string][]int) {
	k.t.Helper()
	var missing []string
	for key, op := range documentedOperations(k.doc) {
		for code := range op.Responses.Map() {
			var status int
			fmt.Sscanf(code, "%d", &status)
			if status == http.StatusInternalServerError && !k.seen[key][status] {
				continue // only reachable through failures the test cannot cause on every route
			}
			if !k.seen[key][status] && !slices.Contains(exempt[key], status) {
				missing = append(missing, fmt.Sprintf("%s %d", key, status))
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		k.t.Errorf("documented but never exercised: %s", m)
	}
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// tooLarge is a JSON body one object larger than limit bytes.
func tooLarge(limit int) []byte {
	return []byte(`{"x":"` + strings.Repeat("a", limit) + `"}`)
}

func jsonBytes(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenAPIContract(t *testing.T) {
	// The rate limit is low so that one address can be run over it; everyone else here
	// stays well within the default burst.
	env := map[string]string{"LUPA_TRUSTED_PROXIES": "127.0.0.1", "LUPA_RATE_LIMIT": "0.1", "LUPA_ALLOW_PRIVATE_WEBHOOKS": "true"}
	eachServer(t, env, func(t *testing.T, s *testServer) {
		k := newContract(t, s)
		c := &contractRun{contract: k, admin: bearer(s.demo.AdminKey)}
		c.operations()
		c.apiKeys()
		c.tenant()
		c.brandsAndProperties()
		c.recipients()
		c.purposes()
		c.collection()
		c.banner()
		c.receipts()
		c.server()
		c.ciam()
		c.loginProviders()
		c.dataMap()
		c.webhooks()
		c.connectors()
		c.vendorHooks()
		c.support()
		c.ledger()
		c.audit()
		c.rateLimits()
		c.failures()
		k.coverage(map[string][]int{
			// Only when another instance signs the first root at the same moment.
			"POST /v1/admin/ledger/roots": {http.StatusNotFound},
			// Only without the demo tenant (LUPA_DEMO=false); /demo/{lang} shows the 404.
			"GET /demo": {http.StatusNotFound},
			// Only when the database fails within 5 s of the connector being read (it is cached).
			"GET /hooks/mailchimp/{tenant}/{connector}": {http.StatusServiceUnavailable},
		})
	})
}

// contractRun is one pass over every operation, with the objects it made along the way.
type contractRun struct {
	*contract
	admin, read, write []string // Authorization headers

	brandID, propertyID, recipientID string
	device, receipt                  string
	ciamRun                          *ciamContract
	vendor                           vendorRun
}

const (
	get, post, put, patch, del, options = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions
	badIdemKey                          = "has a space"
)

func (c *contractRun) adm(want int, method, path string, body any, headers ...string) *response {
	c.t.Helper()
	return c.call(want, method, path, body, append(slices.Clone(c.admin), headers...)...)
}

// authErrors checks 401 (no key, unknown key), 403 (a key without the scope, unless
// forbidden is nil) and, on admin routes, 400 for a malformed Idempotency-Key on POST and
// for a malformed URL on other methods.
func (c *contractRun) authErrors(method, path string, body any, forbidden []string, adminRoute bool) {
	c.t.Helper()
	c.call(http.StatusUnauthorized, method, path, body)
	c.call(http.StatusUnauthorized, method, path, body, bearer("sk_not-a-key")...)
	if forbidden != nil {
		c.call(http.StatusForbidden, method, path, body, forbidden...)
	}
	switch {
	case adminRoute && method == http.MethodPost:
		c.call(http.StatusBadRequest, method, path, body, append(slices.Clone(c.admin), "Idempotency-Key", badIdemKey)...)
	case adminRoute:
		// Only POSTs read an Idempotency-Key; other methods ignore it, so 400 comes from a
		// URL with a control character.
		c.call(http.StatusOK, method, path, body, append(slices.Clone(c.admin), "Idempotency-Key", badIdemKey)...)
		c.call(http.StatusBadRequest, method, path+"?x=%01", body, c.admin...)
	}
}

// bodyErrors checks 413 and 415 of a route that takes a body.
func (c *contractRun) bodyErrors(method, path string, body any, limit int, auth []string) {
	c.t.Helper()
	c.call(http.StatusRequestEntityTooLarge, method, path, tooLarge(limit), auth...)
	c.call(http.StatusUnsupportedMediaType, method, path, body, append(slices.Clone(auth), "Content-Type", "text/plain")...)
}

// keyed covers a POST that takes no body with an Idempotency-Key: the first request
// succeeds (want) and its retry is replayed; the key with a body is 422; a body too large or
// not JSON is refused before the handler runs (413, 415); a retry while the first request
// runs is 409. route is the path's route template, which keys are scoped by.
func (c *contractRun) keyed(want int, route, path, key string) *response {
	c.t.Helper()
	r := c.adm(want, post, path, []byte{}, "Idempotency-Key", key)
	if again := c.adm(want, post, path, []byte{}, "Idempotency-Key", key); again.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("POST %s retried: %v %s", path, again.Header, again.Body)
	}
	c.adm(422, post, path, "{}", "Idempotency-Key", key)
	c.adm(413, post, path, tooLarge(identityweb.PublicBodyLimit), "Idempotency-Key", key+"-large")
	c.adm(415, post, path, "x", "Idempotency-Key", key+"-text", "Content-Type", "text/plain")
	c.pendingConflict(route, path, []byte{}, c.admin...)
	return r
}

func (c *contractRun) adminErrors(method, path string, body any) {
	c.t.Helper()
	c.authErrors(method, path, body, c.read, true)
	if body != nil {
		c.bodyErrors(method, path, body, identityweb.PublicBodyLimit, c.admin)
	}
}

func (c *contractRun) operations() {
	for _, path := range []string{"/healthz", "/readyz", "/v1/openapi.json", "/.well-known/jwks.json"} {
		c.call(200, get, path, nil)
		c.call(400, get, path+"?x=%01", nil)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := c.call(200, http.MethodHead, path, nil); len(r.Body) != 0 {
			c.t.Errorf("HEAD %s answered a body: %q", path, r.Body)
		}
		c.call(400, http.MethodHead, path+"?x=%01", nil)
	}
	c.call(400, options, "/v1/consents?property=pk_%00", nil, "Origin", c.s.Origin)
}

func (c *contractRun) apiKeys() {
	const path = "/v1/admin/api-keys"
	var reader, writer map[string]any
	c.adm(201, post, path, map[string]any{"name": "contract reader", "scopes": []string{"consent:read"}}).JSON(c.t, &reader)
	c.read = bearer(reader["secret"].(string))
	body := map[string]any{"name": "contract writer", "scopes": []string{"consent:write"}}
	c.adm(201, post, path, body, "Idempotency-Key", "writer").JSON(c.t, &writer)
	c.write = bearer(writer["secret"].(string))
	again := c.adm(201, post, path, body, "Idempotency-Key", "writer")
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Map(c.t)["secret"] != writer["secret"] {
		c.t.Errorf("replayed key creation: %v %s", again.Header, again.Body)
	}
	c.adm(422, post, path, map[string]any{"name": "another", "scopes": []string{"admin"}}, "Idempotency-Key", "writer")
	c.reject(400, post, path, map[string]any{"name": "x", "scopes": []string{"root"}}, c.admin...)
	c.reject(400, post, path, map[string]any{"name": "x", "scopes": []string{"admin"}, "expires": "never"}, c.admin...)
	c.reject(400, post, path, map[string]any{"scopes": []string{"admin"}}, c.admin...)
	c.pendingConflict(path, path, jsonBytes(c.t, body), c.admin...)
	c.adminErrors(post, path, body)

	c.adm(200, get, path, nil)
	c.adminErrors(get, path, nil)

	var doomed map[string]any
	c.adm(201, post, path, map[string]any{"name": "doomed", "scopes": []string{"admin"}}).JSON(c.t, &doomed)
	id := doomed["id"].(string)
	c.adm(200, del, path+"/"+id, nil)
	c.adm(200, del, path+"/"+id, nil) // revoking a revoked key changes nothing
	c.call(401, get, path, nil, bearer(doomed["secret"].(string))...)
	c.adm(404, del, path+"/"+identity.NewID(), nil)
	c.adminErrors(del, path+"/"+id, nil)
}

func (c *contractRun) tenant() {
	const path = "/v1/admin/tenant"
	c.adm(200, get, path, nil)
	c.adminErrors(get, path, nil)
	body := map[string]any{"phone": "+358 9 765 4321", "evidence_years": 3, "keep_client_context": false,
		"website": "https://demo-retail.example"}
	c.adm(200, patch, path, body)
	c.reject(400, patch, path, map[string]any{"jurisdiction": "fi"}, c.admin...)
	c.reject(400, patch, path, map[string]any{"evidence_years": 31}, c.admin...)
	c.reject(400, patch, path, map[string]any{"slug": "renamed"}, c.admin...)
	c.call(400, patch, path, `{"phone": "+358"`, c.admin...)
	c.adminErrors(patch, path, body)
}

func (c *contractRun) brandsAndProperties() {
	const brands, properties = "/v1/admin/brands", "/v1/admin/properties"
	c.adm(200, get, brands, nil)
	c.adminErrors(get, brands, nil)
	body := map[string]any{"name": "Contract Brand", "legal_name": "Contract Brand Oy", "business_id": "9876543-2",
		"contact_email": "privacy@brand.example", "address": "Testikatu 2, Helsinki", "website": "https://brand.example"}
	b := c.adm(201, post, brands, body, "Idempotency-Key", "brand")
	c.brandID = b.Map(c.t)["id"].(string)
	if r := c.adm(201, post, brands, body, "Idempotency-Key", "brand"); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("brand replay: %v", r.Header)
	}
	c.adm(422, post, brands, map[string]any{"name": "Other", "legal_name": "Other Oy"}, "Idempotency-Key", "brand")
	c.adm(409, post, brands, map[string]any{"name": "Demo Market", "legal_name": "Demo Market Oy"})
	c.reject(400, post, brands, map[string]any{"name": "No legal name"}, c.admin...)
	c.call(400, post, brands, map[string]any{"name": "Bad mail", "legal_name": "Bad Mail Oy", "contact_email": "nope"}, c.admin...)
	c.adminErrors(post, brands, body)

	one := brands + "/" + c.brandID
	c.adm(200, get, one, nil)
	c.adm(404, get, brands+"/"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"address": "Testikatu 3, Helsinki"})
	c.reject(400, patch, one, map[string]any{"name": ""}, c.admin...)
	c.adm(404, patch, brands+"/"+identity.NewID(), map[string]any{"address": "x"})
	c.adm(409, patch, one, map[string]any{"name": "Demo Style"})
	c.adminErrors(patch, one, map[string]any{"address": "x"})

	c.adm(200, get, properties, nil)
	c.adminErrors(get, properties, nil)
	prop := map[string]any{"name": "Contract kiosk", "brand_id": c.brandID, "kind": "kiosk", "default_language": "sv"}
	c.propertyID = c.adm(201, post, properties, prop).Map(c.t)["id"].(string)
	c.adm(201, post, properties, map[string]any{"name": "Contract site", "brand_id": c.brandID, "kind": "web",
		"allowed_origins": []string{"https://contract.example", "http://localhost:3000"}})
	c.reject(400, post, properties, map[string]any{"name": "TV", "brand_id": c.brandID, "kind": "tv"}, c.admin...)
	c.call(400, post, properties, map[string]any{"name": "Web without origins", "brand_id": c.brandID, "kind": "web"}, c.admin...)
	c.adm(422, post, properties, map[string]any{"name": "Orphan", "brand_id": "no-such-brand", "kind": "store"})
	c.pendingConflict(properties, properties, jsonBytes(c.t, prop), c.admin...)
	c.adminErrors(post, properties, prop)

	one = properties + "/" + c.propertyID
	c.adm(200, get, one, nil)
	c.adm(404, get, properties+"/"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"name": "Contract kiosk 2", "status": "active"})
	c.reject(400, patch, one, map[string]any{"status": "deleted"}, c.admin...)
	c.adm(404, patch, properties+"/"+identity.NewID(), map[string]any{"name": "x"})
	c.adm(422, patch, one, map[string]any{"brand_id": "no-such-brand"})
	c.adminErrors(patch, one, map[string]any{"name": "x"})
}

func (c *contractRun) recipients() {
	const path = "/v1/admin/recipients"
	c.adm(200, get, path, nil)
	c.adminErrors(get, path, nil)
	body := map[string]any{"name": "Contract Partner", "legal_name": "Contract Partner AB", "kind": "partner",
		"country": "SE", "privacy_policy_url": "https://partner.example/privacy"}
	c.recipientID = c.adm(201, post, path, body).Map(c.t)["id"].(string)
	c.adm(201, post, path, map[string]any{"name": "Contract Brand", "legal_name": "Contract Brand Oy", "kind": "brand",
		"brand_id": c.brandID})
	c.reject(400, post, path, map[string]any{"name": "F", "legal_name": "F Oy", "kind": "friend"}, c.admin...)
	c.call(400, post, path, map[string]any{"name": "B", "legal_name": "B Oy", "kind": "brand"}, c.admin...)
	c.adm(422, post, path, map[string]any{"name": "B", "legal_name": "B Oy", "kind": "brand", "brand_id": "nope"})
	c.pendingConflict(path, path, jsonBytes(c.t, body), c.admin...)
	c.adminErrors(post, path, body)

	one := path + "/" + c.recipientID
	c.adm(200, get, one, nil)
	c.adm(404, get, path+"/"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"privacy_policy_url": "https://partner.example/privacy-2"})
	c.reject(400, patch, one, map[string]any{"country": "se"}, c.admin...)
	c.adm(404, patch, path+"/"+identity.NewID(), map[string]any{"name": "x"})
	c.adm(422, patch, one, map[string]any{"brand_id": "nope"})
	c.adminErrors(patch, one, map[string]any{"name": "x"})
}

func (c *contractRun) purposes() {
	const path = "/v1/admin/purposes"
	c.adm(200, get, path, nil)
	c.adminErrors(get, path, nil)
	body := map[string]any{"key": "contract_signals", "level": "device", "legal_basis": "consent",
		"dpv_purpose": "https://w3id.org/dpv#ServiceOptimisation", "recipient_ids": []string{c.recipientID},
		"reask_months": 6, "gpc_opt_out": true}
	c.adm(201, post, path, body, "Idempotency-Key", "purpose")
	c.adm(201, post, path, body, "Idempotency-Key", "purpose")
	c.adm(422, post, path, map[string]any{"key": "other_key", "level": "device", "legal_basis": "consent"},
		"Idempotency-Key", "purpose")
	// Nothing optional: the answer still has every list, empty.
	c.adm(201, post, path, map[string]any{"key": "contract_interest", "level": "person", "legal_basis": "legitimate_interest"})
	c.adm(409, post, path, map[string]any{"key": "analytics", "level": "device", "legal_basis": "consent"})
	c.reject(400, post, path, map[string]any{"key": "Bad Key", "level": "device", "legal_basis": "consent"}, c.admin...)
	c.reject(400, post, path, map[string]any{"key": "k2", "level": "household", "legal_basis": "consent"}, c.admin...)
	c.call(400, post, path, map[string]any{"key": "cookie_analytics", "level": "device", "legal_basis": "necessary"}, c.admin...)
	c.call(400, post, path, map[string]any{"key": "advertising_cookies", "level": "device", "legal_basis": "necessary"}, c.admin...)
	c.call(400, post, path, map[string]any{"key": "personalised_content", "level": "device", "legal_basis": "necessary"}, c.admin...)
	c.adm(422, post, path, map[string]any{"key": "k3", "level": "device", "legal_basis": "consent", "recipient_ids": []string{"nope"}})
	c.adminErrors(post, path, body)

	one := path + "/contract_signals"
	c.adm(200, get, one, nil)
	c.adm(404, get, path+"/no_such_purpose", nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"reask_months": 12, "scope_brand_ids": []string{}})
	c.reject(400, patch, one, map[string]any{"reask_months": 0}, c.admin...)
	c.reject(400, patch, one, map[string]any{"key": "renamed"}, c.admin...)
	c.adm(404, patch, path+"/no_such_purpose", map[string]any{"reask_months": 6})
	c.adm(422, patch, one, map[string]any{"scope_property_ids": []string{"nope"}})
	c.adminErrors(patch, one, map[string]any{"reask_months": 6})

	versions := one + "/versions"
	c.adm(200, get, versions, nil)
	c.adm(404, get, path+"/no_such_purpose/versions", nil)
	c.adminErrors(get, versions, nil)
	texts := map[string]any{
		"en": map[string]any{"title": "Service signals", "description": "We measure load times to tune the service.",
			"policy_url": "https://demo-retail.example/privacy"},
		"fi": map[string]any{"title": "Palvelun signaalit", "description": "Mittaamme latausaikoja palvelun parantamiseksi."},
	}
	draft := map[string]any{"texts": texts, "details": map[string]any{"data_categories": []string{"load times"},
		"retention": "6 months.", "transfers": "None."}}
	c.adm(201, post, versions, draft, "Idempotency-Key", "draft")
	c.adm(201, post, versions, draft, "Idempotency-Key", "draft")
	c.adm(422, post, versions, map[string]any{"texts": texts}, "Idempotency-Key", "draft")
	c.adm(409, post, versions, draft)
	c.adm(404, post, path+"/no_such_purpose/versions", draft)
	c.reject(400, post, versions, map[string]any{"texts": map[string]any{}}, c.admin...)
	c.reject(400, post, versions, map[string]any{"texts": map[string]any{"en": map[string]any{"title": "No description"}}}, c.admin...)
	c.reject(400, post, versions, map[string]any{"texts": texts, "details": map[string]any{"cookies": 3}}, c.admin...)
	c.adminErrors(post, versions, draft)

	v1 := versions + "/1"
	c.adm(200, get, v1, nil)
	c.adm(404, get, versions+"/9", nil)
	c.adm(404, get, versions+"/first", nil)
	c.adminErrors(get, v1, nil)
	c.adm(200, patch, v1, map[string]any{"material": true, "texts": texts})
	c.reject(400, patch, v1, map[string]any{"texts": map[string]any{"en": map[string]any{"title": "", "description": "x"}}}, c.admin...)
	c.adm(404, patch, versions+"/9", map[string]any{"material": true})
	c.adminErrors(patch, v1, map[string]any{"material": true})

	publish := v1 + "/publish"
	c.adm(200, post, publish, []byte{}, "Idempotency-Key", "publish-1")
	if r := c.adm(200, post, publish, []byte{}, "Idempotency-Key", "publish-1"); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("publish replay: %v", r.Header)
	}
	c.adm(422, post, publish, "{}", "Idempotency-Key", "publish-1")
	c.adm(415, post, publish, "x", "Idempotency-Key", "publish-2", "Content-Type", "text/plain")
	c.adm(413, post, publish, tooLarge(identityweb.PublicBodyLimit), "Idempotency-Key", "publish-3")
	c.adm(409, post, publish, nil)
	c.adm(404, post, versions+"/9/publish", nil)
	c.authErrors(post, publish, nil, c.read, true)
	c.adm(409, patch, v1, map[string]any{"material": false})
	c.adm(409, patch, one, map[string]any{"level": "person"})

	// A non-material version must not change the facts; once material it publishes, and
	// grants of version 1 stop counting.
	c.adm(201, post, versions, map[string]any{"material": false, "texts": texts,
		"details": map[string]any{"data_categories": []string{"load times"}, "retention": "12 months.", "transfers": "None."}})
	c.adm(422, post, versions+"/2/publish", nil)
	c.adm(200, patch, versions+"/2", map[string]any{"material": true})
	c.adm(200, post, versions+"/2/publish", nil)
}

// textHash returns a published version's text hash in a language.
func (c *contractRun) textHash(purpose string, version int, lang string) string {
	c.t.Helper()
	var v struct {
		TextHashes map[string]string `json:"text_hashes"`
	}
	c.adm(200, get, fmt.Sprintf("/v1/admin/purposes/%s/versions/%d", purpose, version), nil).JSON(c.t, &v)
	return v.TextHashes[lang]
}

func (c *contractRun) collection() {
	web := "/v1/consents?property=" + c.s.demo.WebShop.PublicKey
	app := "/v1/consents?property=" + c.s.demo.App.PublicKey
	origin := []string{"Origin", c.s.Origin}

	// Pre-flight.
	pre := c.call(204, options, web, nil, "Origin", c.s.Origin, "Access-Control-Request-Method", "POST")
	if pre.Header.Get("Access-Control-Allow-Origin") != c.s.Origin || pre.Header.Get("Access-Control-Allow-Methods") == "" {
		c.t.Errorf("pre-flight: %v", pre.Header)
	}
	c.call(204, options, app, nil)
	c.call(401, options, "/v1/consents", nil, origin...)
	c.call(401, options, "/v1/consents?property=sk_wrong", nil, origin...)
	c.call(403, options, web, nil, "Origin", "https://evil.example")
	c.call(403, options, web, nil)
	c.call(404, options, "/v1/consents?property=pk_no_such_property", nil, origin...)

	// Record.
	body := map[string]any{"method": "banner_custom", "language": "en", "ui_hash": strings.Repeat("ab", 32),
		"client_time": time.Now().UTC().Format(time.RFC3339Nano),
		"decisions": []map[string]any{
			{"purpose": "analytics", "version": 1, "decision": "granted", "text_hash": c.textHash("analytics", 1, "en")},
			{"purpose": "social_advertising", "decision": "denied"},
		}}
	first := c.call(201, post, web, body, append(slices.Clone(origin), "Idempotency-Key", "banner-interaction-1")...)
	out := first.Map(c.t)
	c.device, _ = out["device_id"].(string)
	c.receipt, _ = out["receipt"].(string)
	again := c.call(201, post, web, body, append(slices.Clone(origin), "Idempotency-Key", "banner-interaction-1")...)
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Map(c.t)["receipt"] != c.receipt {
		c.t.Errorf("replayed interaction: %v %s", again.Header, again.Body)
	}
	c.call(422, post, web, map[string]any{"method": "banner_reject_all", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}, append(slices.Clone(origin), "Idempotency-Key", "banner-interaction-1")...)
	known := map[string]any{"identifier": map[string]any{"kind": "device", "value": c.device}, "method": "banner_reject_all",
		"decisions": []map[string]any{{"purpose": "analytics", "decision": "denied"}}}
	c.call(201, post, web, known, origin...)
	c.call(201, post, app, map[string]any{"method": "checkbox", "decisions": []map[string]any{
		{"purpose": "analytics", "version": 1, "decision": "granted"}}})
	c.reject(400, post, web, map[string]any{"method": "banner_custom", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "maybe"}}}, origin...)
	c.reject(400, post, web, map[string]any{"method": "banner_custom", "decisions": []map[string]any{}}, origin...)
	c.reject(400, post, web, map[string]any{"method": "banner_custom", "cookie": "x", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}, origin...)
	c.reject(400, post, web, map[string]any{"method": "import", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}, origin...)
	c.call(400, post, web, `{"method": `, origin...)
	c.call(400, post, web, known, append(slices.Clone(origin), "Idempotency-Key", badIdemKey)...)
	c.call(401, post, "/v1/consents", known, origin...)
	c.call(403, post, web, known)
	c.call(403, post, web, known, "Origin", "https://evil.example")
	c.call(404, post, "/v1/consents?property=pk_no_such_property", known, origin...)
	c.call(409, post, web, map[string]any{"method": "banner_custom", "decisions": []map[string]any{
		{"purpose": "contract_signals", "version": 1, "decision": "granted"}}}, origin...)
	c.call(413, post, web, tooLarge(identityweb.PublicBodyLimit), origin...)
	c.call(415, post, web, known, append(slices.Clone(origin), "Content-Type", "text/plain")...)
	for _, d := range []map[string]any{
		{"purpose": "necessary", "version": 1, "decision": "granted"},
		{"purpose": "marketing_email", "version": 1, "decision": "granted"},
		{"purpose": "no_such_purpose", "version": 1, "decision": "granted"},
		{"purpose": "analytics", "version": 7, "decision": "granted"},
		{"purpose": "analytics", "version": 1, "decision": "granted", "text_hash": strings.Repeat("0", 64)},
	} {
		c.call(422, post, web, map[string]any{"method": "banner_custom", "decisions": []map[string]any{d}}, origin...)
	}
	c.call(422, post, web, map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-1"},
		"method": "banner_custom", "decisions": []map[string]any{{"purpose": "analytics", "decision": "denied"}}}, origin...)

	// Read.
	st := c.call(200, get, web, nil, append(slices.Clone(origin), "Lupa-Device-Id", c.device)...)
	if st.Map(c.t)["device_id"] != c.device {
		c.t.Errorf("device state: %s", st.Body)
	}
	c.call(400, get, web, nil, origin...) // the header is optional in the document: a customer's token replaces it
	c.reject(400, get, web, nil, append(slices.Clone(origin), "Lupa-Device-Id", "not-a-device")...)
	c.call(401, get, "/v1/consents?property=", nil, append(slices.Clone(origin), "Lupa-Device-Id", c.device)...)
	c.call(403, get, web, nil, "Origin", "https://evil.example", "Lupa-Device-Id", c.device)
	c.call(404, get, web, nil, append(slices.Clone(origin), "Lupa-Device-Id", identity.NewDeviceID())...)
	c.call(404, get, "/v1/consents?property=pk_no_such_property", nil, append(slices.Clone(origin), "Lupa-Device-Id", c.device)...)
}

func (c *contractRun) receipts() {
	c.call(200, get, "/.well-known/jwks.json", nil)
	const path = "/v1/receipts/verify"
	ok := c.call(200, post, path, map[string]any{"receipt": c.receipt}).Map(c.t)
	if ok["valid"] != true || ok["ledger_match"] != true {
		c.t.Errorf("a fresh receipt does not verify: %v", ok)
	}
	// One byte of the signature changed (in the middle: the last character holds padding bits).
	i := strings.LastIndexByte(c.receipt, '.') + 20
	flip := map[bool]string{true: "B", false: "A"}[c.receipt[i] == 'A']
	tampered := c.receipt[:i] + flip + c.receipt[i+1:]
	if bad := c.call(200, post, path, map[string]any{"receipt": tampered}).Map(c.t); bad["valid"] != false {
		c.t.Errorf("a tampered receipt verifies: %v", bad)
	}
	c.call(200, post, path, map[string]any{"receipt": "not a receipt"})
	c.reject(400, post, path, map[string]any{})
	c.reject(400, post, path, map[string]any{"receipt": c.receipt, "strict": true})
	c.call(400, post, path, `["not", "an", "object"]`)
	c.bodyErrors(post, path, map[string]any{"receipt": c.receipt}, consentweb.ReceiptBodyLimit, nil)
}

func (c *contractRun) server() {
	const record, state, history, check = "/v1/subjects/consents", "/v1/subjects/state", "/v1/subjects/history", "/v1/consents/check"
	customer := map[string]any{"kind": "customer_number", "value": "C-1001"}
	body := map[string]any{"identifier": customer, "property_id": c.s.demo.App.ID, "method": "verbal", "agent": "agent-7",
		"language": "fi", "client_time": time.Now().UTC().Format(time.RFC3339),
		"decisions": []map[string]any{
			{"purpose": "marketing_email", "version": 1, "decision": "granted", "text_hash": c.textHash("marketing_email", 1, "fi")},
			{"purpose": "analytics", "version": 1, "decision": "granted"},
		}}
	first := c.call(201, post, record, body, append(slices.Clone(c.write), "Idempotency-Key", "till-1")...)
	again := c.call(201, post, record, body, append(slices.Clone(c.write), "Idempotency-Key", "till-1")...)
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Map(c.t)["receipt"] != first.Map(c.t)["receipt"] {
		c.t.Errorf("replayed server record: %v %s", again.Header, again.Body)
	}
	c.call(422, post, record, map[string]any{"identifier": customer, "method": "api", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}, append(slices.Clone(c.write), "Idempotency-Key", "till-1")...)
	withdraw := map[string]any{"identifier": customer, "method": "dashboard",
		"decisions": []map[string]any{{"purpose": "marketing_email", "decision": "withdrawn"}}}
	c.call(201, post, record, withdraw, c.admin...) // admin implies consent:write
	c.reject(400, post, record, map[string]any{"identifier": customer, "method": "fax", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}, c.write...)
	c.reject(400, post, record, map[string]any{"method": "api", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}, c.write...)
	c.call(400, post, record, map[string]any{"identifier": customer, "method": "verbal", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}, c.write...)
	c.call(400, post, record, withdraw, append(slices.Clone(c.write), "Idempotency-Key", badIdemKey)...)
	c.call(401, post, record, withdraw)
	c.call(401, post, record, withdraw, bearer("sk_not-a-key")...)
	c.call(403, post, record, withdraw, c.read...)
	c.call(404, post, record, map[string]any{"identifier": map[string]any{"kind": "device", "value": identity.NewDeviceID()},
		"method": "api", "decisions": []map[string]any{{"purpose": "analytics", "decision": "denied"}}}, c.write...)
	c.call(409, post, record, map[string]any{"identifier": customer, "method": "api", "decisions": []map[string]any{
		{"purpose": "contract_signals", "version": 1, "decision": "granted"}}}, c.write...)
	c.call(422, post, record, map[string]any{"identifier": customer, "property_id": "nope", "method": "api",
		"decisions": []map[string]any{{"purpose": "analytics", "decision": "denied"}}}, c.write...)
	c.call(422, post, record, map[string]any{"identifier": customer, "method": "import", "decisions": []map[string]any{
		{"purpose": "necessary", "version": 1, "decision": "granted"}}}, c.write...)
	// An import older than the withdrawal above records nothing: no event, no receipt.
	older := c.call(201, post, record, map[string]any{"identifier": customer, "method": "import", "client_time": "2020-01-01T00:00:00Z",
		"decisions": []map[string]any{{"purpose": "marketing_email", "version": 1, "decision": "granted"}}}, c.write...)
	if strings.Contains(string(older.Body), `"receipt"`) || !strings.Contains(string(older.Body), `"events":[]`) {
		c.t.Fatalf("an import older than what Lupa has: %s", older.Body)
	}
	c.call(422, post, record, map[string]any{"identifier": customer, "method": "import", "client_time": "2099-01-01T00:00:00Z",
		"decisions": []map[string]any{{"purpose": "marketing_email", "version": 1, "decision": "granted"}}}, c.write...)
	c.bodyErrors(post, record, withdraw, identityweb.PublicBodyLimit, c.write)

	c.call(200, post, state, map[string]any{"identifier": customer}, c.read...)
	c.call(200, post, state, map[string]any{"identifier": customer, "property_id": c.s.demo.WebShop.ID}, c.read...)
	c.call(200, post, state, map[string]any{"identifier": map[string]any{"kind": "device", "value": c.device}}, c.read...)
	c.reject(400, post, state, map[string]any{"identifier": map[string]any{"kind": "phone", "value": "+358401234567"}}, c.read...)
	c.call(400, post, state, map[string]any{"identifier": map[string]any{"kind": "device", "value": "short"}}, c.read...)
	c.authErrors(post, state, map[string]any{"identifier": customer}, nil, false)
	c.call(404, post, state, map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-404"}}, c.read...)
	c.call(422, post, state, map[string]any{"identifier": customer, "property_id": "nope"}, c.read...)
	c.bodyErrors(post, state, map[string]any{"identifier": customer}, identityweb.PublicBodyLimit, c.read)

	page := c.call(200, post, history, map[string]any{"identifier": customer, "limit": 1}, c.read...).Map(c.t)
	next, _ := page["next"].(string)
	if next == "" {
		c.t.Errorf("history page without next: %v", page)
	}
	c.call(200, post, history, map[string]any{"identifier": customer, "after": next, "purpose": "marketing_email",
		"kind": "decision", "from": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"to": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, c.read...)
	c.call(200, post, history, map[string]any{"identifier": customer, "after": 1}, c.read...) // as clients once had to
	c.reject(400, post, history, map[string]any{"identifier": customer, "after": "garbage"}, c.read...)
	c.reject(400, post, history, map[string]any{"identifier": customer, "limit": 501}, c.read...)
	c.reject(400, post, history, map[string]any{"identifier": customer, "kind": "rumour"}, c.read...)
	c.authErrors(post, history, map[string]any{"identifier": customer}, nil, false)
	c.call(404, post, history, map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-404"}}, c.read...)
	c.bodyErrors(post, history, map[string]any{"identifier": customer}, identityweb.PublicBodyLimit, c.read)

	ids := []map[string]any{customer, {"kind": "customer_number", "value": "C-404"}, {"kind": "device", "value": c.device}}
	res := c.call(200, post, check, map[string]any{"purpose": "analytics", "identifiers": ids}, c.read...).Map(c.t)
	if rs, _ := res["results"].([]any); len(rs) != len(ids) {
		c.t.Errorf("check: %v", res)
	}
	c.call(200, post, check, map[string]any{"purpose": "necessary", "identifiers": ids}, c.read...)
	c.call(200, post, check, map[string]any{"purpose": "contract_interest", "identifiers": ids}, c.read...)
	c.reject(400, post, check, map[string]any{"purpose": "analytics", "identifiers": []any{}}, c.read...)
	c.reject(400, post, check, map[string]any{"identifiers": ids}, c.read...)
	c.authErrors(post, check, map[string]any{"purpose": "analytics", "identifiers": ids}, nil, false)
	c.call(422, post, check, map[string]any{"purpose": "no_such_purpose", "identifiers": ids}, c.read...)
	c.bodyErrors(post, check, map[string]any{"purpose": "analytics", "identifiers": ids}, identityweb.CheckBodyLimit, c.read)
}

func (c *contractRun) ledger() {
	const latest, roots, verify = "/v1/admin/ledger/roots/latest", "/v1/admin/ledger/roots", "/v1/admin/ledger/verify"
	c.adm(404, get, latest, nil)
	c.adm(201, post, roots, nil)
	c.adm(200, post, roots, []byte{}, "Idempotency-Key", "root-1")
	if r := c.adm(200, post, roots, []byte{}, "Idempotency-Key", "root-1"); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("root replay: %v", r.Header)
	}
	c.adm(422, post, roots, "{}", "Idempotency-Key", "root-1")
	c.pendingConflict(roots, roots, []byte{}, c.admin...)
	c.authErrors(post, roots, nil, c.read, true)
	c.adm(413, post, roots, tooLarge(identityweb.PublicBodyLimit), "Idempotency-Key", "root-2")
	c.adm(415, post, roots, "x", "Idempotency-Key", "root-3", "Content-Type", "text/plain")
	c.adm(200, get, latest, nil)
	c.adminErrors(get, latest, nil)

	rep := c.adm(200, post, verify, nil).Map(c.t)
	if rep["ok"] != true {
		c.t.Errorf("ledger verify: %v", rep)
	}
	c.adm(200, post, verify, []byte{}, "Idempotency-Key", "verify-1")
	c.adm(200, post, verify, []byte{}, "Idempotency-Key", "verify-1")
	c.adm(422, post, verify, "{}", "Idempotency-Key", "verify-1")
	c.pendingConflict(verify, verify, []byte{}, c.admin...)
	c.authErrors(post, verify, nil, c.read, true)
	c.adm(413, post, verify, tooLarge(identityweb.PublicBodyLimit), "Idempotency-Key", "verify-2")
	c.adm(415, post, verify, "x", "Idempotency-Key", "verify-3", "Content-Type", "text/plain")
	// A body sent without a key is checked too, and must hold nothing.
	c.adm(400, post, verify, "{not json")
	c.adm(200, post, verify, "{}")
	c.adm(415, post, verify, "x", "Content-Type", "text/plain")
}

func (c *contractRun) audit() {
	const path = "/v1/admin/audit"
	page := c.adm(200, get, path+"?limit=2", nil).Map(c.t)
	next, _ := page["next"].(string)
	if next == "" {
		c.t.Errorf("audit page without next: %v", page)
	}
	c.adm(200, get, path+"?before="+next+"&object_type=brand&action=brand.create", nil)
	c.adm(200, get, path+"?object_id="+c.brandID, nil)
	c.reject(400, get, path+"?limit=0", nil, c.admin...)
	c.reject(400, get, path+"?limit=many", nil, c.admin...)
	wantProblem(c.t, c.reject(400, get, path+"?before=garbage", nil, c.admin...), 400, "before")
	c.adminErrors(get, path, nil)
}

// rateLimits runs one client address over its limit; its requests are then refused on
// every rate-limited operation.
func (c *contractRun) rateLimits() {
	flood := []string{"X-Forwarded-For", "203.0.113.9"}
	limited := false
	for i := 0; i < 1000 && !limited; i++ {
		req, _ := http.NewRequest(http.MethodOptions, c.s.URL+"/v1/consents", nil)
		req.Header.Set(flood[0], flood[1])
		res, err := c.s.Client().Do(req)
		if err != nil {
			c.t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		limited = res.StatusCode == http.StatusTooManyRequests
	}
	if !limited {
		c.t.Fatal("no 429 after 1000 requests from one address")
	}
	web := "/v1/consents?property=" + c.s.demo.WebShop.PublicKey
	h := append(slices.Clone(flood), "Origin", c.s.Origin)
	for _, r := range []*response{
		c.call(429, options, web, nil, h...),
		c.call(429, post, web, map[string]any{"method": "banner_accept_all", "decisions": []map[string]any{
			{"purpose": "analytics", "version": 1, "decision": "granted"}}}, h...),
		c.call(429, get, web, nil, append(slices.Clone(h), "Lupa-Device-Id", c.device)...),
		c.call(429, post, "/v1/receipts/verify", map[string]any{"receipt": c.receipt}, flood...),
	} {
		if r.Header.Get("Retry-After") == "" {
			c.t.Errorf("429 without Retry-After: %v", r.Header)
		}
	}
}

// failures runs last: it stops the writer (recording answers 503) and closes the database
// (readiness answers 503, everything else 500).
func (c *contractRun) failures() {
	c.s.writer.Close()
	c.ciamFailures()
	c.vendorFailures()
	web := "/v1/consents?property=" + c.s.demo.WebShop.PublicKey
	c.call(503, post, web, map[string]any{"method": "banner_accept_all", "decisions": []map[string]any{
		{"purpose": "analytics", "version": 1, "decision": "granted"}}}, "Origin", c.s.Origin)
	c.call(503, post, "/v1/subjects/consents", map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-1001"},
		"method": "api", "decisions": []map[string]any{{"purpose": "analytics", "decision": "denied"}}}, c.write...)
	c.s.app.db.Close()
	c.call(503, get, "/readyz", nil)
	c.call(503, http.MethodHead, "/readyz", nil)
	c.adm(500, get, "/v1/admin/brands", nil)
}

// banner covers the widget's files, its configuration, the demo shop, and the admin
// routes of banner settings, inventories and the evidence of what was shown.
func (c *contractRun) banner() {
	loader := c.call(302, get, "/v1/widget.js", nil)
	js := loader.Header.Get("Location")
	c.call(400, get, "/v1/widget.js?x=%01", nil)
	c.call(200, get, js, nil)
	c.call(404, get, "/v1/static/widget.00000000.js", nil)
	c.call(400, get, js+"?x=%01", nil)

	cfgPath := "/v1/properties/" + c.s.demo.WebShop.PublicKey + "/config"
	origin := []string{"Origin", c.s.Origin}
	cfg := c.call(200, get, cfgPath+"?lang=sv", nil, origin...)
	uiHash, _ := cfg.Map(c.t)["ui_hash"].(string)
	c.call(304, get, cfgPath+"?lang=sv", nil, append(slices.Clone(origin), "If-None-Match", cfg.Header.Get("ETag"))...)
	c.call(400, get, cfgPath+"?build=ffffffffffffffff", nil, origin...)
	c.call(400, get, cfgPath+"?lang=%3Cb%3E", nil, origin...)
	c.call(401, get, "/v1/properties/not-a-key/config", nil, origin...)
	c.call(403, get, cfgPath, nil, "Origin", "https://evil.example")
	c.call(403, get, cfgPath, nil)
	c.call(404, get, "/v1/properties/pk_no_such_property/config", nil, origin...)

	c.call(200, get, "/.well-known/gpc.json", nil)
	c.call(400, get, "/.well-known/gpc.json?x=%01", nil)
	c.call(200, get, "/demo", nil)
	c.call(400, get, "/demo?x=%01", nil)
	c.call(200, get, "/demo/sv", nil)
	c.call(404, get, "/demo/de", nil)
	c.call(400, get, "/demo/fi?x=%01", nil)

	banner := "/v1/admin/properties/" + c.s.demo.WebShop.ID + "/banner"
	c.adm(200, get, banner, nil)
	c.adm(404, get, "/v1/admin/properties/"+identity.NewID()+"/banner", nil)
	c.adminErrors(get, banner, nil)
	body := map[string]any{"position": "dialog", "control": "right", "theme": map[string]string{"--lupa-accent": "#0b57d0"},
		"languages": []string{"fi", "sv", "en"}, "consent_mode": map[string][]string{"analytics": {"analytics_storage"},
			"necessary": {"security_storage"}}, "cookie_domain": ".shop.example"}
	c.adm(200, put, banner, body)
	c.reject(400, put, banner, map[string]any{"position": "top"}, c.admin...)
	c.call(400, put, banner, map[string]any{"cookie_domain": "shop example"}, c.admin...)
	c.adm(422, put, banner, map[string]any{"consent_mode": map[string][]string{"necessary": {"ad_storage"}}})
	c.reject(422, put, banner, map[string]any{"reask_months": 6}, c.admin...) // the purpose's, not the banner's
	c.adm(404, put, "/v1/admin/properties/"+identity.NewID()+"/banner", body)
	c.adminErrors(put, banner, body)

	inventory := "/v1/admin/purposes/analytics/inventory"
	c.adm(200, get, inventory, nil)
	c.adm(404, get, "/v1/admin/purposes/no_such_purpose/inventory", nil)
	c.adminErrors(get, inventory, nil)
	inv := map[string]any{"vendors": []map[string]any{{"name": "Stats", "legal_name": "Stats Oy", "country": "FI",
		"privacy_policy_url": "https://stats.example/privacy"}},
		"storage": []map[string]any{{"name": "_stats", "kind": "cookie", "max_age_days": 390}}}
	c.adm(200, put, inventory, inv)
	c.reject(400, put, inventory, map[string]any{"storage": []map[string]any{{"name": "x", "kind": "flash"}}}, c.admin...)
	c.adm(422, put, "/v1/admin/purposes/marketing_email/inventory", inv)
	c.adm(404, put, "/v1/admin/purposes/no_such_purpose/inventory", inv)
	c.adminErrors(put, inventory, inv)

	shown := "/v1/admin/interfaces/" + uiHash
	got := c.adm(200, get, shown, nil).Map(c.t)
	c.adm(404, get, "/v1/admin/interfaces/"+strings.Repeat("0", 64), nil)
	c.adminErrors(get, shown, nil)
	build := "/v1/admin/widget-builds/" + got["widget_build"].(string)
	c.adm(200, get, build, nil)
	c.adm(404, get, "/v1/admin/widget-builds/ffffffffffffffff", nil)
	c.adminErrors(get, build, nil)
}

// support covers the subject lookup for support and its access log.
func (c *contractRun) support() {
	email := map[string]any{"kind": "email", "value": "Support.Case@Example.FI"}
	c.call(201, post, "/v1/subjects/consents", map[string]any{"identifier": email, "method": "api",
		"decisions": []map[string]any{{"purpose": "marketing_email", "version": 1, "decision": "granted"}}}, c.write...)
	const path = "/v1/admin/subjects/lookup"
	body := map[string]any{"identifier": email, "reason": "ticket 4711: the customer asked what we hold"}
	got := c.adm(200, post, path, body, "Idempotency-Key", "lookup-1").Map(c.t)
	c.adm(422, post, path, with(body, "reason", "ticket 4712"), "Idempotency-Key", "lookup-1")
	c.pendingConflict(path, path, jsonBytes(c.t, body), c.admin...)
	if ids, _ := got["identifiers"].([]any); len(ids) != 1 || ids[0].(map[string]any)["value"] != "support.case@example.fi" {
		c.t.Errorf("lookup: %v", got)
	}
	c.adm(404, post, path, map[string]any{"identifier": map[string]any{"kind": "email", "value": "nobody@example.fi"}, "reason": "ticket 4712"})
	c.reject(400, post, path, map[string]any{"identifier": email}, c.admin...)
	c.call(400, post, path, map[string]any{"identifier": email, "reason": "x"}, c.admin...)
	c.adminErrors(post, path, body)

	const logPath = "/v1/admin/access-log"
	subject, _ := got["subject"].(string)
	log := c.adm(200, get, logPath+"?subject="+url.QueryEscape(subject), nil).Map(c.t)
	if items, _ := log["items"].([]any); len(items) != 1 || items[0].(map[string]any)["reason"] != body["reason"] {
		c.t.Errorf("access log: %v", log)
	}
	c.reject(400, get, logPath+"?limit=0", nil, c.admin...)
	wantProblem(c.t, c.reject(400, get, logPath+"?before=garbage", nil, c.admin...), 400, "before")
	c.adminErrors(get, logPath, nil)
}
