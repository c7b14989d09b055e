// Package klaviyotest is a strict local stand-in for the Klaviyo endpoints Lupa uses —
// bulk subscribe and unsubscribe jobs, data-privacy deletion jobs and the profiles list
// with its suppression filter — for tests in any package. It checks the
// "Klaviyo-API-Key" authorization, the revision header, the JSON:API content type, the
// resource types, consent enums, batch caps (1000 to subscribe, 100 to unsubscribe) and
// "exactly one identifier" for deletions, answering Klaviyo's {"errors":[…]} body when a
// request is wrong. It keeps profiles (consent, lists, suppressions, deleted), can be told
// to fail (429 with or without Retry-After, 5xx, 400, a hanging connection), and lets
// tests play the person unsubscribing in Klaviyo for the reconcile.
//
// Modelled behaviour (from Klaviyo's reference): subscribing lifts UNSUBSCRIBE,
// SPAM_COMPLAINT and USER_SUPPRESSED suppressions; an unknown address is created by
// either job. Assumed: an API unsubscribe records an UNSUBSCRIBE suppression. Unlike
// Klaviyo, unknown request fields are refused.
package klaviyotest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/integrations/internal/vendortest"
)

// Fault is a scripted failure; see vendortest.Fault. Op is one of the Op* constants.
type Fault = vendortest.Fault

// Fault constructors.
var (
	RateLimited = vendortest.RateLimited
	ServerError = vendortest.ServerError
	BadRequest  = vendortest.BadRequest
	Hang        = vendortest.Hang
)

// Operations, for Fault.Op and Count.
const (
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpDelete      = "delete"
	OpProfiles    = "profiles"
	// OpUpdateProfile is PATCH /api/profiles/{id}; the fake accepts only an email change.
	OpUpdateProfile = "update-profile"
)

// Defaults.
const (
	DefaultKey      = "pk_test_0000000000000000"
	DefaultRevision = "2026-07-15"
)

// Suppression is a global email marketing suppression.
type Suppression struct {
	Reason    string
	Timestamp time.Time
}

// Profile is the fake's record of a profile.
type Profile struct {
	ID           string
	Email        string
	Consent      string
	Lists        map[string]bool
	Suppressions []Suppression
	Updated      time.Time
}

// Options configure the fake.
type Options struct {
	Key      string
	Revision string
	Now      func() time.Time
}

// Server is the fake.
type Server struct {
	*vendortest.Base
	key, revision string
	now           func() time.Time

	mu       sync.Mutex
	lists    map[string]bool
	profiles map[string]*Profile
	deleted  map[string]bool
	nextID   int
}

// New starts a fake; it closes when tb's test ends.
func New(tb testing.TB, opt Options) *Server {
	s := &Server{key: opt.Key, revision: opt.Revision, now: opt.Now,
		lists: map[string]bool{}, profiles: map[string]*Profile{}, deleted: map[string]bool{}}
	if s.key == "" {
		s.key = DefaultKey
	}
	if s.revision == "" {
		s.revision = DefaultRevision
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.Base = vendortest.NewBase()
	mux := http.NewServeMux()
	s.route(mux, "POST /api/profile-subscription-bulk-create-jobs", OpSubscribe, s.subscribe)
	s.route(mux, "POST /api/profile-subscription-bulk-delete-jobs", OpUnsubscribe, s.unsubscribe)
	s.route(mux, "POST /api/data-privacy-deletion-jobs", OpDelete, s.deletion)
	s.route(mux, "GET /api/profiles", OpProfiles, s.list)
	s.route(mux, "PATCH /api/profiles/{id}", OpUpdateProfile, s.updateProfile)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.Record("unknown", r, http.StatusNotFound, time.Now())
		kError(w, http.StatusNotFound, "not_found", "Not found.", "The requested resource does not exist.", "")
	})
	s.Start(tb, mux)
	return s
}

// Key is the private API key the fake accepts.
func (s *Server) Key() string { return s.key }

// AddList creates a list id.
func (s *Server) AddList(id string) {
	s.mu.Lock()
	s.lists[id] = true
	s.mu.Unlock()
}

// Profile returns a copy of the profile with this address, if any.
func (s *Server) Profile(email string) (Profile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.profiles[strings.ToLower(email)]
	if p == nil {
		return Profile{}, false
	}
	return copyProfile(p), true
}

// ProfileCount is how many profiles exist.
func (s *Server) ProfileCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.profiles)
}

// Deleted reports whether a deletion job removed the address.
func (s *Server) Deleted(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[strings.ToLower(email)]
}

// PersonUnsubscribes is the person using the unsubscribe link of a Klaviyo email.
func (s *Server) PersonUnsubscribes(email string) { s.Suppress(email, "UNSUBSCRIBE") }

// Suppress records a global suppression with the fake's clock (creating the profile).
func (s *Server) Suppress(email, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.profile(email)
	now := s.now().UTC()
	if reason == "UNSUBSCRIBE" || reason == "SPAM_COMPLAINT" {
		p.Consent = "UNSUBSCRIBED"
	}
	p.Suppressions = append(p.Suppressions, Suppression{Reason: reason, Timestamp: now})
	p.Updated = now
}

func copyProfile(p *Profile) Profile {
	c := *p
	c.Lists = map[string]bool{}
	for k, v := range p.Lists {
		c.Lists[k] = v
	}
	c.Suppressions = append([]Suppression(nil), p.Suppressions...)
	return c
}

// profile returns (creating) the profile; s.mu held.
func (s *Server) profile(email string) *Profile {
	k := strings.ToLower(email)
	p := s.profiles[k]
	if p == nil {
		s.nextID++
		p = &Profile{ID: fmt.Sprintf("01FAKEPROFILE%06d", s.nextID), Email: email, Consent: "NEVER_SUBSCRIBED",
			Lists: map[string]bool{}, Updated: s.now().UTC()}
		s.profiles[k] = p
		delete(s.deleted, k)
	}
	return p
}

// --- HTTP ---

var revisionRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[a-z0-9]+)?$`)

func (s *Server) route(mux *http.ServeMux, pattern, op string, fn http.HandlerFunc) {
	s.Handle(mux, pattern, op, s.gate, s.fault, fn)
}

func (s *Server) gate(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Klaviyo-API-Key "+s.key {
		kError(w, http.StatusUnauthorized, "not_authenticated", "Authentication credentials were not provided.", "Missing or invalid private key.", "")
		return false
	}
	rev := r.Header.Get("revision")
	if rev == "" || !revisionRe.MatchString(rev) {
		kError(w, http.StatusBadRequest, "invalid", "Invalid input.", "A valid revision header is required.", "")
		return false
	}
	if rev != s.revision {
		kError(w, http.StatusBadRequest, "invalid", "Invalid input.", "This fake serves revision "+s.revision+".", "")
		return false
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/vnd.api+json" {
			kError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Unsupported media type.", "Content-Type must be application/vnd.api+json.", "")
			return false
		}
	}
	return true
}

func (s *Server) fault(w http.ResponseWriter, _ *http.Request, f Fault) {
	code, title, detail := f.Code, f.Detail, f.Detail
	switch {
	case code != "":
		title = "Invalid input."
	case f.Status == http.StatusTooManyRequests:
		code, title, detail = "throttled", "Request was throttled.", "Request was throttled. Expected available in "+orDefault(f.RetryAfter, "1")+" second."
	case f.Status >= 500:
		code, title, detail = "error", "A server error occurred.", "A server error occurred."
	default:
		code, title, detail = "invalid", "Invalid input.", "Invalid input."
	}
	kError(w, f.Status, code, title, detail, "")
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func kError(w http.ResponseWriter, status int, code, title, detail, pointer string) {
	e := map[string]any{"id": fmt.Sprintf("%08x-fake", time.Now().UnixNano()&0xffffffff), "status": status,
		"code": code, "title": title, "detail": detail}
	if pointer != "" {
		e["source"] = map[string]string{"pointer": pointer}
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{e}})
}

// bad is a 400 "invalid" pointing at the offending member.
type bad struct{ pointer, detail string }

func invalid(w http.ResponseWriter, b *bad) {
	kError(w, http.StatusBadRequest, "invalid", "Invalid input.", b.detail, b.pointer)
}

// object decodes v as a JSON object whose keys are among allowed and include required.
func object(v json.RawMessage, ptr string, allowed, required []string) (map[string]json.RawMessage, *bad) {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil || m == nil {
		return nil, &bad{ptr, "must be an object"}
	}
	for k := range m {
		if !slices.Contains(allowed, k) {
			return nil, &bad{ptr + "/" + k, "'" + k + "' is not a valid field for the resource"}
		}
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return nil, &bad{ptr + "/" + k, "'" + k + "' is a required field"}
		}
	}
	return m, nil
}

func str(v json.RawMessage, ptr string, want ...string) (string, *bad) {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", &bad{ptr, "must be a string"}
	}
	if len(want) > 0 && !slices.Contains(want, s) {
		return "", &bad{ptr, "'" + s + "' is not a valid choice: " + strings.Join(want, ", ")}
	}
	return s, nil
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

func readBody(r *http.Request) json.RawMessage {
	data, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	return data
}

// job parses a bulk subscription job; it returns the emails and the list id.
func (s *Server) job(body json.RawMessage, typ, consent string, maxProfiles int, listRequired bool) ([]string, string, *bad) {
	top, b := object(body, "", []string{"data"}, []string{"data"})
	if b != nil {
		return nil, "", b
	}
	data, b := object(top["data"], "/data", []string{"type", "attributes", "relationships"}, []string{"type", "attributes"})
	if b != nil {
		return nil, "", b
	}
	if _, b := str(data["type"], "/data/type", typ); b != nil {
		return nil, "", b
	}
	attrs, b := object(data["attributes"], "/data/attributes", []string{"profiles", "custom_source", "historical_import"}, []string{"profiles"})
	if b != nil {
		return nil, "", b
	}
	if v, ok := attrs["historical_import"]; ok && string(v) == "true" {
		return nil, "", &bad{"/data/attributes/historical_import", "Lupa never sends historical imports"}
	}
	pr, b := object(attrs["profiles"], "/data/attributes/profiles", []string{"data"}, []string{"data"})
	if b != nil {
		return nil, "", b
	}
	var items []json.RawMessage
	if json.Unmarshal(pr["data"], &items) != nil || len(items) == 0 {
		return nil, "", &bad{"/data/attributes/profiles/data", "must be a non-empty array"}
	}
	if len(items) > maxProfiles {
		return nil, "", &bad{"/data/attributes/profiles/data", "at most " + strconv.Itoa(maxProfiles) + " profiles per job"}
	}
	var emails []string
	for i, it := range items {
		p := "/data/attributes/profiles/data/" + strconv.Itoa(i)
		res, b := object(it, p, []string{"type", "attributes"}, []string{"type", "attributes"})
		if b != nil {
			return nil, "", b
		}
		if _, b := str(res["type"], p+"/type", "profile"); b != nil {
			return nil, "", b
		}
		a, b := object(res["attributes"], p+"/attributes", []string{"email", "subscriptions"}, []string{"email", "subscriptions"})
		if b != nil {
			return nil, "", b
		}
		email, b := str(a["email"], p+"/attributes/email")
		if b != nil {
			return nil, "", b
		}
		if !validEmail(email) {
			return nil, "", &bad{p + "/attributes/email", "Invalid email address"}
		}
		subs, b := object(a["subscriptions"], p+"/attributes/subscriptions", []string{"email"}, []string{"email"})
		if b != nil {
			return nil, "", b
		}
		em, b := object(subs["email"], p+"/attributes/subscriptions/email", []string{"marketing"}, []string{"marketing"})
		if b != nil {
			return nil, "", b
		}
		mk, b := object(em["marketing"], p+"/attributes/subscriptions/email/marketing", []string{"consent"}, []string{"consent"})
		if b != nil {
			return nil, "", b
		}
		if _, b := str(mk["consent"], p+"/attributes/subscriptions/email/marketing/consent", consent); b != nil {
			return nil, "", b
		}
		emails = append(emails, email)
	}
	listID := ""
	if rel, ok := data["relationships"]; ok {
		rm, b := object(rel, "/data/relationships", []string{"list"}, []string{"list"})
		if b != nil {
			return nil, "", b
		}
		l, b := object(rm["list"], "/data/relationships/list", []string{"data"}, []string{"data"})
		if b != nil {
			return nil, "", b
		}
		ld, b := object(l["data"], "/data/relationships/list/data", []string{"type", "id"}, []string{"type", "id"})
		if b != nil {
			return nil, "", b
		}
		if _, b := str(ld["type"], "/data/relationships/list/data/type", "list"); b != nil {
			return nil, "", b
		}
		if listID, b = str(ld["id"], "/data/relationships/list/data/id"); b != nil {
			return nil, "", b
		}
		if !s.lists[listID] {
			return nil, "", &bad{"/data/relationships/list/data/id", "List does not exist."}
		}
	} else if listRequired {
		return nil, "", &bad{"/data/relationships/list", "a list is required"}
	}
	return emails, listID, nil
}

var lifted = []string{"UNSUBSCRIBE", "SPAM_COMPLAINT", "USER_SUPPRESSED"}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	emails, listID, b := s.job(readBody(r), "profile-subscription-bulk-create-job", "SUBSCRIBED", 1000, true)
	if b != nil {
		invalid(w, b)
		return
	}
	now := s.now().UTC()
	for _, e := range emails {
		p := s.profile(e)
		if p.Consent != "SUBSCRIBED" || !p.Lists[listID] {
			p.Updated = now
		}
		p.Consent = "SUBSCRIBED"
		p.Lists[listID] = true
		p.Suppressions = slices.DeleteFunc(p.Suppressions, func(x Suppression) bool { return slices.Contains(lifted, x.Reason) })
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	emails, listID, b := s.job(readBody(r), "profile-subscription-bulk-delete-job", "UNSUBSCRIBED", 100, false)
	if b != nil {
		invalid(w, b)
		return
	}
	now := s.now().UTC()
	for _, e := range emails {
		p := s.profile(e)
		if listID != "" {
			delete(p.Lists, listID)
		}
		if p.Consent == "UNSUBSCRIBED" {
			continue
		}
		p.Consent = "UNSUBSCRIBED"
		p.Updated = now
		p.Suppressions = append(p.Suppressions, Suppression{Reason: "UNSUBSCRIBE", Timestamp: now})
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) deletion(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(b *bad) { invalid(w, b) }
	top, b := object(readBody(r), "", []string{"data"}, []string{"data"})
	if b != nil {
		fail(b)
		return
	}
	data, b := object(top["data"], "/data", []string{"type", "attributes"}, []string{"type", "attributes"})
	if b != nil {
		fail(b)
		return
	}
	if _, b := str(data["type"], "/data/type", "data-privacy-deletion-job"); b != nil {
		fail(b)
		return
	}
	attrs, b := object(data["attributes"], "/data/attributes", []string{"profile"}, []string{"profile"})
	if b != nil {
		fail(b)
		return
	}
	pw, b := object(attrs["profile"], "/data/attributes/profile", []string{"data"}, []string{"data"})
	if b != nil {
		fail(b)
		return
	}
	pd, b := object(pw["data"], "/data/attributes/profile/data", []string{"type", "id", "attributes"}, []string{"type", "attributes"})
	if b != nil {
		fail(b)
		return
	}
	if _, b := str(pd["type"], "/data/attributes/profile/data/type", "profile"); b != nil {
		fail(b)
		return
	}
	pa, b := object(pd["attributes"], "/data/attributes/profile/data/attributes", []string{"email", "phone_number"}, nil)
	if b != nil {
		fail(b)
		return
	}
	n := len(pa)
	if _, ok := pd["id"]; ok {
		n++
	}
	if n != 1 {
		fail(&bad{"/data/attributes/profile/data", "exactly one of email, phone_number or id is required"})
		return
	}
	if v, ok := pa["email"]; ok {
		email, b := str(v, "/data/attributes/profile/data/attributes/email")
		if b != nil || !validEmail(email) {
			fail(&bad{"/data/attributes/profile/data/attributes/email", "Invalid email address"})
			return
		}
		k := strings.ToLower(email)
		if s.profiles[k] != nil {
			delete(s.profiles, k)
			s.deleted[k] = true
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) updateProfile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	top, b := object(readBody(r), "", []string{"data"}, []string{"data"})
	if b != nil {
		invalid(w, b)
		return
	}
	data, b := object(top["data"], "/data", []string{"type", "id", "attributes"}, []string{"type", "id", "attributes"})
	if b != nil {
		invalid(w, b)
		return
	}
	if _, b := str(data["type"], "/data/type", "profile"); b != nil {
		invalid(w, b)
		return
	}
	if id, b := str(data["id"], "/data/id", r.PathValue("id")); b != nil || id == "" {
		invalid(w, &bad{"/data/id", "the id in the body must match the path"})
		return
	}
	attrs, b := object(data["attributes"], "/data/attributes", []string{"email"}, []string{"email"})
	if b != nil {
		invalid(w, b)
		return
	}
	email, b := str(attrs["email"], "/data/attributes/email")
	if b != nil || !validEmail(email) {
		invalid(w, &bad{"/data/attributes/email", "Invalid email address"})
		return
	}
	var key string
	var p *Profile
	for k, x := range s.profiles {
		if x.ID == r.PathValue("id") {
			key, p = k, x
		}
	}
	if p == nil {
		kError(w, http.StatusNotFound, "not_found", "Not found.", "A profile with this id does not exist.", "")
		return
	}
	if other := s.profiles[strings.ToLower(email)]; other != nil && other != p {
		kError(w, http.StatusConflict, "duplicate_profile", "Conflict.", "A profile already exists with one of these identifiers.", "/data/attributes/email")
		return
	}
	delete(s.profiles, key)
	p.Email = email
	p.Updated = s.now().UTC()
	s.profiles[strings.ToLower(email)] = p
	w.Header().Set("Content-Type", "application/vnd.api+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": s.profileJSON(p, false)})
}

var (
	condRe    = regexp.MustCompile(`^(equals|greater-than|greater-or-equal|less-than|less-or-equal)\(([a-z_.]+),(.+)\)$`)
	listQuery = []string{"filter", "page[size]", "page[cursor]", "additional-fields[profile]", "sort", "fields[profile]"}
)

type cond struct {
	op, field, value string
	t                time.Time
}

// parseFilter understands the filters Lupa uses: conditions joined by commas, or and(…).
func parseFilter(f string) ([]cond, string) {
	f = strings.TrimSpace(f)
	if inner, ok := strings.CutPrefix(f, "and("); ok && strings.HasSuffix(inner, ")") {
		f = strings.TrimSuffix(inner, ")")
	}
	var out []cond
	for _, part := range splitTop(f) {
		m := condRe.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			return nil, "malformed filter expression"
		}
		c := cond{op: m[1], field: m[2], value: m[3]}
		switch c.field {
		case "email", "subscriptions.email.marketing.suppression.reason":
			if c.op != "equals" || len(c.value) < 2 || c.value[0] != '"' || c.value[len(c.value)-1] != '"' {
				return nil, "'" + c.field + "' supports equals with a quoted string"
			}
			c.value = c.value[1 : len(c.value)-1]
		case "updated", "subscriptions.email.marketing.suppression.timestamp":
			if c.op == "equals" || (c.field == "updated" && (c.op == "greater-or-equal" || c.op == "less-or-equal")) {
				return nil, "operator " + c.op + " is not allowed on '" + c.field + "'"
			}
			t, err := time.Parse(time.RFC3339, c.value)
			if err != nil {
				return nil, "'" + c.value + "' is not a valid datetime"
			}
			c.t = t
		default:
			return nil, "'" + c.field + "' is not a valid filter field"
		}
		out = append(out, c)
	}
	return out, ""
}

func splitTop(s string) []string {
	var parts []string
	depth, start, inQ := 0, 0, false
	for i, r := range s {
		switch {
		case r == '"':
			inQ = !inQ
		case inQ:
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func (c cond) match(p *Profile) bool {
	cmpT := func(t time.Time) bool {
		switch c.op {
		case "greater-than":
			return t.After(c.t)
		case "greater-or-equal":
			return !t.Before(c.t)
		case "less-than":
			return t.Before(c.t)
		case "less-or-equal":
			return !t.After(c.t)
		}
		return false
	}
	switch c.field {
	case "email":
		return strings.EqualFold(p.Email, c.value)
	case "updated":
		return cmpT(p.Updated)
	case "subscriptions.email.marketing.suppression.reason":
		return slices.ContainsFunc(p.Suppressions, func(x Suppression) bool { return x.Reason == c.value })
	case "subscriptions.email.marketing.suppression.timestamp":
		return slices.ContainsFunc(p.Suppressions, func(x Suppression) bool { return cmpT(x.Timestamp) })
	}
	return false
}

func lastSuppression(p *Profile) time.Time {
	var t time.Time
	for _, x := range p.Suppressions {
		if x.Timestamp.After(t) {
			t = x.Timestamp
		}
	}
	return t
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(listQuery, k) {
			kError(w, http.StatusBadRequest, "invalid", "Invalid input.", "'"+k+"' is not a valid query parameter", "")
			return
		}
	}
	conds, msg := parseFilter(q.Get("filter"))
	if q.Get("filter") == "" {
		conds, msg = nil, ""
	}
	if msg != "" {
		kError(w, http.StatusBadRequest, "invalid", "Invalid input.", msg, "")
		return
	}
	size := 20
	if v := q.Get("page[size]"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			kError(w, http.StatusBadRequest, "invalid", "Invalid input.", "page[size] must be between 1 and 100", "")
			return
		}
		size = n
	}
	offset := 0
	if v := q.Get("page[cursor]"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || n < 0 {
			kError(w, http.StatusBadRequest, "invalid", "Invalid input.", "invalid page cursor", "")
			return
		}
		offset = n
	}
	sortKey := q.Get("sort")
	if sortKey != "" && !slices.Contains([]string{"id", "-id", "updated", "-updated", "subscriptions.email.marketing.suppression.timestamp",
		"-subscriptions.email.marketing.suppression.timestamp", "email", "-email", "created", "-created"}, sortKey) {
		kError(w, http.StatusBadRequest, "invalid", "Invalid input.", "'"+sortKey+"' is not a valid sort field", "")
		return
	}
	withSubs := slices.Contains(strings.Split(q.Get("additional-fields[profile]"), ","), "subscriptions")
	if v := q.Get("additional-fields[profile]"); v != "" && !withSubs && v != "predictive_analytics" {
		kError(w, http.StatusBadRequest, "invalid", "Invalid input.", "invalid additional-fields", "")
		return
	}

	s.mu.Lock()
	var all []*Profile
	for _, p := range s.profiles {
		ok := true
		for _, c := range conds {
			ok = ok && c.match(p)
		}
		if ok {
			all = append(all, p)
		}
	}
	key := strings.TrimPrefix(sortKey, "-")
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		switch key {
		case "updated":
			if !a.Updated.Equal(b.Updated) {
				return a.Updated.Before(b.Updated)
			}
		case "subscriptions.email.marketing.suppression.timestamp":
			if ta, tb := lastSuppression(a), lastSuppression(b); !ta.Equal(tb) {
				return ta.Before(tb)
			}
		case "email":
			return a.Email < b.Email
		}
		return a.ID < b.ID
	})
	if strings.HasPrefix(sortKey, "-") {
		slices.Reverse(all)
	}
	data := []any{}
	for i := offset; i < len(all) && i < offset+size; i++ {
		data = append(data, s.profileJSON(all[i], withSubs))
	}
	total := len(all)
	s.mu.Unlock()

	self := s.URL() + r.URL.RequestURI()
	links := map[string]any{"self": self, "next": nil, "prev": nil}
	if offset+size < total {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("page[cursor]", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(offset+size))))
		links["next"] = s.URL() + "/api/profiles?" + nq.Encode()
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "links": links})
}

func (s *Server) profileJSON(p *Profile, withSubs bool) map[string]any {
	attrs := map[string]any{"email": p.Email, "updated": p.Updated.Format(time.RFC3339)}
	if withSubs {
		sup := []any{}
		for _, x := range p.Suppressions {
			sup = append(sup, map[string]any{"reason": x.Reason, "timestamp": x.Timestamp.Format(time.RFC3339)})
		}
		attrs["subscriptions"] = map[string]any{"email": map[string]any{"marketing": map[string]any{
			"can_receive_email_marketing": p.Consent == "SUBSCRIBED" && len(p.Suppressions) == 0,
			"consent":                     p.Consent,
			"suppression":                 sup,
			"list_suppressions":           []any{},
		}}}
	}
	return map[string]any{"type": "profile", "id": p.ID, "attributes": attrs,
		"links": map[string]string{"self": s.URL() + "/api/profiles/" + p.ID}}
}
