// Package mailchimptest is a strict local stand-in for the Mailchimp Marketing API 3.0
// members endpoints Lupa uses, for tests in any package. It checks what Mailchimp
// documents — method, path, HTTP Basic key, JSON content type, required fields, enum
// values, the subscriber hash — and answers 400 with Mailchimp's problem+json body when a
// request is wrong. It keeps audiences and members that tests can read, refuses to
// resubscribe a member who unsubscribed themselves ("Member In Compliance State"), can be
// told to fail (429, 5xx, 400, a hanging connection) and sends Mailchimp's form-encoded
// webhooks to a URL.
//
// It is stricter than Mailchimp in one way: request fields outside the set Lupa sends
// (and a few common ones) are refused, so a typo in a field name fails a test instead of
// being ignored.
package mailchimptest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
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

// ComplianceState makes the next matching write answer 400 "Member In Compliance State".
func ComplianceState() Fault { return Fault{Status: http.StatusBadRequest, Special: "compliance"} }

// Operations, for Fault.Op and Count.
const (
	OpUpsert          = "upsert"
	OpPatch           = "patch"
	OpGet             = "get"
	OpDeletePermanent = "delete-permanent"
	OpList            = "list"
)

// Member is the fake's record of one audience member.
type Member struct {
	ListID       string
	EmailAddress string
	Status       string
	Permissions  map[string]bool
	LastChanged  time.Time
	// SelfUnsubscribed: the person unsubscribed in Mailchimp (webhook simulation); a later
	// API subscribe is refused with "Member In Compliance State".
	SelfUnsubscribed bool
}

type audience struct {
	perms      map[string]bool
	members    map[string]*Member // by subscriber hash
	tombstones map[string]bool    // permanently deleted hashes
}

// Options configure the fake.
type Options struct {
	// APIKey is the key clients must present (Basic auth password). Default "test-key-us1".
	APIKey string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Server is the fake.
type Server struct {
	*vendortest.Base
	key string
	now func() time.Time

	mu     sync.Mutex
	lists  map[string]*audience
	onList func(n int)
	listed int // list requests answered, for onList
}

// DefaultKey is the API key the fake accepts unless told otherwise.
const DefaultKey = "0123456789abcdef0123456789abcdef-us1"

// New starts a fake; it closes when tb's test ends.
func New(tb testing.TB, opt Options) *Server {
	s := &Server{key: opt.APIKey, now: opt.Now, lists: map[string]*audience{}}
	if s.key == "" {
		s.key = DefaultKey
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.Base = vendortest.NewBase()
	mux := http.NewServeMux()
	s.route(mux, "PUT /3.0/lists/{list}/members/{hash}", OpUpsert, s.upsert)
	s.route(mux, "PATCH /3.0/lists/{list}/members/{hash}", OpPatch, s.patch)
	s.route(mux, "GET /3.0/lists/{list}/members/{hash}", OpGet, s.get)
	s.route(mux, "POST /3.0/lists/{list}/members/{hash}/actions/delete-permanent", OpDeletePermanent, s.deletePermanent)
	s.route(mux, "GET /3.0/lists/{list}/members", OpList, s.list)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.Record("unknown", r, http.StatusNotFound, time.Now())
		problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.", nil)
	})
	s.Start(tb, mux)
	return s
}

// BaseURL is what a client's Options.BaseURL should be.
func (s *Server) BaseURL() string { return s.URL() + "/3.0" }

// Key is the API key the fake accepts.
func (s *Server) Key() string { return s.key }

// AddList creates an audience with the given marketing permission ids.
func (s *Server) AddList(id string, permissionIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &audience{perms: map[string]bool{}, members: map[string]*Member{}, tombstones: map[string]bool{}}
	for _, p := range permissionIDs {
		a.perms[p] = true
	}
	s.lists[id] = a
}

// Member returns a copy of the member with this address, if any.
func (s *Server) Member(listID, email string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lists[listID]
	if a == nil {
		return Member{}, false
	}
	m := a.members[hash(email)]
	if m == nil {
		return Member{}, false
	}
	return copyMember(m), true
}

// Members returns copies of the audience's members, by address.
func (s *Server) Members(listID string) []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Member
	if a := s.lists[listID]; a != nil {
		for _, m := range a.members {
			out = append(out, copyMember(m))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EmailAddress < out[j].EmailAddress })
	return out
}

// Deleted reports whether the address was permanently deleted from the audience.
func (s *Server) Deleted(listID, email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lists[listID]
	return a != nil && a.tombstones[hash(email)]
}

// PutMember sets a member directly (test setup), bypassing the API.
func (s *Server) PutMember(listID, email, status string, lastChanged time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lists[listID]
	if a == nil {
		panic("mailchimptest: unknown list " + listID)
	}
	a.members[hash(email)] = &Member{ListID: listID, EmailAddress: email, Status: status, Permissions: map[string]bool{}, LastChanged: lastChanged}
}

// PersonUnsubscribes is the person clicking "unsubscribe" in a Mailchimp email.
func (s *Server) PersonUnsubscribes(listID, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.lists[listID]; a != nil {
		if m := a.members[hash(email)]; m != nil {
			m.Status = "unsubscribed"
			m.SelfUnsubscribed = true
			m.LastChanged = s.now().UTC()
		}
	}
}

// OnList makes fn run before the fake answers each members list request, with the number
// of list requests it answered before (0 for the first). Tests use it to change members
// between two pages of a walk, as people do while Lupa reads. fn may call the fake.
func (s *Server) OnList(fn func(n int)) {
	s.mu.Lock()
	s.onList = fn
	s.mu.Unlock()
}

func copyMember(m *Member) Member {
	c := *m
	c.Permissions = map[string]bool{}
	for k, v := range m.Permissions {
		c.Permissions[k] = v
	}
	return c
}

// --- HTTP ---

func (s *Server) route(mux *http.ServeMux, pattern, op string, fn http.HandlerFunc) {
	s.Handle(mux, pattern, op, s.gate, s.fault, fn)
}

func (s *Server) gate(w http.ResponseWriter, r *http.Request) bool {
	if !s.authorized(r) {
		problem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.", nil)
		return false
	}
	return true
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return false
	}
	_, pass, ok := strings.Cut(string(b), ":")
	return ok && pass == s.key
}

func (s *Server) fault(w http.ResponseWriter, r *http.Request, f Fault) {
	title, detail := f.Code, f.Detail
	switch {
	case f.Special == "compliance":
		email := "the address"
		var b struct {
			EmailAddress string `json:"email_address"`
		}
		if data, _ := io.ReadAll(r.Body); json.Unmarshal(data, &b) == nil && b.EmailAddress != "" {
			email = b.EmailAddress
		}
		title = "Member In Compliance State"
		detail = email + " is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."
	case title == "" && f.Status == http.StatusTooManyRequests:
		title, detail = "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."
	case title == "" && f.Status >= 500:
		title, detail = http.StatusText(f.Status), "An unexpected internal error has occurred."
	case title == "":
		title, detail = "Invalid Resource", "The resource submitted could not be validated."
	}
	problem(w, f.Status, title, detail, nil)
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func problem(w http.ResponseWriter, status int, title, detail string, errs []fieldError) {
	body := map[string]any{
		"type":     "https://mailchimp.com/developer/marketing/docs/errors/",
		"title":    title,
		"status":   status,
		"detail":   detail,
		"instance": fmt.Sprintf("%08x-fake", time.Now().UnixNano()&0xffffffff),
	}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func invalid(w http.ResponseWriter, field, msg string) {
	problem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
		[]fieldError{{Field: field, Message: msg}})
}

func notFound(w http.ResponseWriter) {
	problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.", nil)
}

var hashRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

var statuses = []string{"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}

// memberFields are the body fields the fake accepts on PUT and PATCH.
var memberFields = []string{"email_address", "status_if_new", "status", "marketing_permissions", "merge_fields", "language", "email_type"}

// lookup resolves the list and hash of the path; it answers the error itself.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*audience, string, bool) {
	a := s.lists[r.PathValue("list")]
	if a == nil {
		notFound(w)
		return nil, "", false
	}
	h := r.PathValue("hash")
	if !hashRe.MatchString(h) {
		problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.", nil)
		return nil, "", false
	}
	return a, h, true
}

type memberBody struct {
	EmailAddress *string
	StatusIfNew  *string
	Status       *string
	Permissions  []struct {
		ID      string
		Enabled bool
	}
	hasPerms bool
	keys     int
}

// decode reads and checks a member body strictly; it answers the error itself.
func decode(w http.ResponseWriter, r *http.Request, a *audience) (*memberBody, bool) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		problem(w, http.StatusBadRequest, "Invalid Resource", "Content-Type must be application/json.", nil)
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		problem(w, http.StatusBadRequest, "JSON Parse Error", "We encountered an unspecified JSON parsing error.", nil)
		return nil, false
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		problem(w, http.StatusBadRequest, "JSON Parse Error", "We encountered an unspecified JSON parsing error.", nil)
		return nil, false
	}
	b := &memberBody{keys: len(raw)}
	for k, v := range raw {
		if !slices.Contains(memberFields, k) {
			invalid(w, k, "Unknown field.")
			return nil, false
		}
		switch k {
		case "email_address", "status_if_new", "status":
			var sv string
			if json.Unmarshal(v, &sv) != nil {
				invalid(w, k, "Schema describes string, "+jsonKind(v)+" found instead")
				return nil, false
			}
			switch k {
			case "email_address":
				if a, err := mail.ParseAddress(sv); err != nil || a.Address != sv {
					invalid(w, k, "Please provide a valid email address.")
					return nil, false
				}
				b.EmailAddress = &sv
			case "status_if_new":
				b.StatusIfNew = &sv
			case "status":
				b.Status = &sv
			}
			if k != "email_address" && !slices.Contains(statuses, sv) {
				invalid(w, k, "Value is not one of enum values")
				return nil, false
			}
		case "marketing_permissions":
			var items []map[string]json.RawMessage
			if json.Unmarshal(v, &items) != nil {
				invalid(w, k, "Schema describes array")
				return nil, false
			}
			b.hasPerms = true
			for _, it := range items {
				var p struct {
					ID      string
					Enabled bool
				}
				idRaw, okID := it["marketing_permission_id"]
				enRaw, okEn := it["enabled"]
				if !okID || !okEn || len(it) != 2 || json.Unmarshal(idRaw, &p.ID) != nil || json.Unmarshal(enRaw, &p.Enabled) != nil {
					invalid(w, k, "Each marketing permission needs exactly marketing_permission_id (string) and enabled (boolean).")
					return nil, false
				}
				if !a.perms[p.ID] {
					invalid(w, k, "Invalid marketing_permission_id.")
					return nil, false
				}
				b.Permissions = append(b.Permissions, p)
			}
		}
	}
	return b, true
}

func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func (s *Server) upsert(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, h, ok := s.lookup(w, r)
	if !ok {
		return
	}
	b, ok := decode(w, r, a)
	if !ok {
		return
	}
	if b.EmailAddress == nil {
		invalid(w, "email_address", "This value should not be blank.")
		return
	}
	if b.StatusIfNew == nil {
		invalid(w, "status_if_new", "This value should not be blank.")
		return
	}
	if hash(*b.EmailAddress) != h {
		invalid(w, "email_address", "The subscriber hash in the URL does not match the email address.")
		return
	}
	now := s.now().UTC()
	m := a.members[h]
	if m == nil {
		st := *b.StatusIfNew
		if st == "subscribed" && a.tombstones[h] {
			compliance(w, *b.EmailAddress)
			return
		}
		m = &Member{ListID: r.PathValue("list"), EmailAddress: *b.EmailAddress, Status: st, Permissions: map[string]bool{}, LastChanged: now}
		applyPerms(m, b)
		a.members[h] = m
		delete(a.tombstones, h)
		writeMember(w, m)
		return
	}
	if !s.apply(w, m, b, now) {
		return
	}
	writeMember(w, m)
}

// apply updates an existing member's status and permissions; it answers errors itself.
func (s *Server) apply(w http.ResponseWriter, m *Member, b *memberBody, now time.Time) bool {
	changed := false
	if b.Status != nil && *b.Status != m.Status {
		if *b.Status == "subscribed" && (m.SelfUnsubscribed || m.Status == "cleaned") {
			compliance(w, m.EmailAddress)
			return false
		}
		m.Status = *b.Status
		if m.Status == "subscribed" {
			m.SelfUnsubscribed = false
		}
		changed = true
	}
	if applyPerms(m, b) {
		changed = true
	}
	if changed {
		m.LastChanged = now
	}
	return true
}

func applyPerms(m *Member, b *memberBody) bool {
	changed := false
	for _, p := range b.Permissions {
		if old, ok := m.Permissions[p.ID]; !ok || old != p.Enabled {
			m.Permissions[p.ID] = p.Enabled
			changed = true
		}
	}
	return changed
}

func compliance(w http.ResponseWriter, email string) {
	problem(w, http.StatusBadRequest, "Member In Compliance State",
		email+" is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.", nil)
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, h, ok := s.lookup(w, r)
	if !ok {
		return
	}
	m := a.members[h]
	if m == nil {
		notFound(w)
		return
	}
	b, ok := decode(w, r, a)
	if !ok {
		return
	}
	if b.keys == 0 {
		invalid(w, "", "The request body is empty.")
		return
	}
	if b.StatusIfNew != nil {
		invalid(w, "status_if_new", "status_if_new is only for PUT.")
		return
	}
	now := s.now().UTC()
	if b.EmailAddress != nil && hash(*b.EmailAddress) != h {
		nh := hash(*b.EmailAddress)
		if a.members[nh] != nil {
			problem(w, http.StatusBadRequest, "Member Exists", *b.EmailAddress+" is already a list member. Use PUT to insert or update list members.", nil)
			return
		}
		delete(a.members, h)
		m.EmailAddress = *b.EmailAddress
		m.LastChanged = now
		a.members[nh] = m
	}
	if !s.apply(w, m, b, now) {
		return
	}
	writeMember(w, m)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, h, ok := s.lookup(w, r)
	if !ok {
		return
	}
	m := a.members[h]
	if m == nil {
		notFound(w)
		return
	}
	writeMember(w, m)
}

func (s *Server) deletePermanent(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, h, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10)); len(bytes.TrimSpace(data)) > 0 && string(bytes.TrimSpace(data)) != "{}" {
		problem(w, http.StatusBadRequest, "Invalid Resource", "This endpoint takes no request body.", nil)
		return
	}
	if a.members[h] == nil {
		notFound(w)
		return
	}
	delete(a.members, h)
	a.tombstones[h] = true
	w.WriteHeader(http.StatusNoContent)
}

var listParams = []string{"status", "since_last_changed", "count", "offset", "sort_field", "sort_dir", "fields", "exclude_fields"}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hook, n := s.onList, s.listed
	s.listed++
	s.mu.Unlock()
	if hook != nil {
		hook(n) // outside the lock: it changes members through the fake
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.lists[r.PathValue("list")]
	if a == nil {
		notFound(w)
		return
	}
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(listParams, k) {
			invalid(w, k, "Unknown query parameter.")
			return
		}
	}
	status := q.Get("status")
	if status != "" && !slices.Contains(statuses, status) {
		invalid(w, "status", "Value is not one of enum values")
		return
	}
	var since time.Time
	if v := q.Get("since_last_changed"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			invalid(w, "since_last_changed", "Must be an ISO 8601 time.")
			return
		}
		since = t
	}
	count, offset := 10, 0
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			invalid(w, "count", "count must be between 1 and 1000.")
			return
		}
		count = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			invalid(w, "offset", "offset must be a non-negative integer.")
			return
		}
		offset = n
	}
	if v := q.Get("sort_field"); v != "" && !slices.Contains([]string{"timestamp_opt", "timestamp_signup", "last_changed"}, v) {
		invalid(w, "sort_field", "Value is not one of enum values")
		return
	}
	if v := q.Get("sort_dir"); v != "" && v != "ASC" && v != "DESC" {
		invalid(w, "sort_dir", "Value is not one of enum values")
		return
	}
	var all []*Member
	for _, m := range a.members {
		if status != "" && m.Status != status {
			continue
		}
		if !since.IsZero() && m.LastChanged.Before(since) {
			continue
		}
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].LastChanged.Equal(all[j].LastChanged) {
			return all[i].LastChanged.Before(all[j].LastChanged)
		}
		return all[i].EmailAddress < all[j].EmailAddress
	})
	if q.Get("sort_dir") == "DESC" {
		slices.Reverse(all)
	}
	page := []map[string]any{}
	for i := offset; i < len(all) && i < offset+count; i++ {
		page = append(page, memberJSON(all[i]))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"members": page, "list_id": r.PathValue("list"), "total_items": len(all)})
}

func memberJSON(m *Member) map[string]any {
	perms := []map[string]any{}
	keys := make([]string, 0, len(m.Permissions))
	for k := range m.Permissions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		perms = append(perms, map[string]any{"marketing_permission_id": k, "enabled": m.Permissions[k]})
	}
	return map[string]any{
		"id":                    hash(m.EmailAddress),
		"email_address":         m.EmailAddress,
		"status":                m.Status,
		"list_id":               m.ListID,
		"last_changed":          m.LastChanged.UTC().Format(time.RFC3339),
		"marketing_permissions": perms,
	}
}

func writeMember(w http.ResponseWriter, m *Member) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(memberJSON(m))
}

func hash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// --- webhooks Mailchimp sends ---

// Ping is the GET Mailchimp sends to check a webhook URL when it is saved.
func (s *Server) Ping(ctx context.Context, target string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "MailChimp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// SendWebhook posts a form-encoded webhook body to target and returns the status.
func (s *Server) SendWebhook(ctx context.Context, target string, form url.Values) (int, error) {
	return vendortest.Post(ctx, target, "application/x-www-form-urlencoded", []byte(form.Encode()),
		http.Header{"User-Agent": {"MailChimp"}})
}

// UnsubscribeForm is the body of Mailchimp's unsubscribe webhook.
func (s *Server) UnsubscribeForm(listID, email, reason string) url.Values {
	if reason == "" {
		reason = "manual"
	}
	return url.Values{
		"type":                {"unsubscribe"},
		"fired_at":            {s.now().UTC().Format(time.DateTime)},
		"data[action]":        {"unsub"},
		"data[reason]":        {reason},
		"data[id]":            {hash(email)[:10]},
		"data[email]":         {email},
		"data[email_type]":    {"html"},
		"data[list_id]":       {listID},
		"data[ip_opt]":        {"198.51.100.7"},
		"data[web_id]":        {"3375995"},
		"data[campaign_id]":   {"cb398d21d2"},
		"data[merges][EMAIL]": {email},
	}
}

// SendUnsubscribe has the person unsubscribe in Mailchimp and posts the webhook.
func (s *Server) SendUnsubscribe(ctx context.Context, target, listID, email string) (int, error) {
	s.PersonUnsubscribes(listID, email)
	return s.SendWebhook(ctx, target, s.UnsubscribeForm(listID, email, "manual"))
}

// SendCleaned marks the member cleaned (reason "hard" or "abuse") and posts the webhook.
func (s *Server) SendCleaned(ctx context.Context, target, listID, email, reason string) (int, error) {
	s.mu.Lock()
	if a := s.lists[listID]; a != nil {
		if m := a.members[hash(email)]; m != nil {
			m.Status = "cleaned"
			m.LastChanged = s.now().UTC()
		}
	}
	s.mu.Unlock()
	return s.SendWebhook(ctx, target, url.Values{
		"type":              {"cleaned"},
		"fired_at":          {s.now().UTC().Format(time.DateTime)},
		"data[list_id]":     {listID},
		"data[campaign_id]": {"4fjk2ma9xd"},
		"data[reason]":      {reason},
		"data[email]":       {email},
	})
}

// SendUpemail posts the webhook for an address changed in Mailchimp (state is moved too).
func (s *Server) SendUpemail(ctx context.Context, target, listID, oldEmail, newEmail string) (int, error) {
	s.mu.Lock()
	if a := s.lists[listID]; a != nil {
		if m := a.members[hash(oldEmail)]; m != nil {
			delete(a.members, hash(oldEmail))
			m.EmailAddress = newEmail
			m.LastChanged = s.now().UTC()
			a.members[hash(newEmail)] = m
		}
	}
	s.mu.Unlock()
	return s.SendWebhook(ctx, target, url.Values{
		"type":            {"upemail"},
		"fired_at":        {s.now().UTC().Format(time.DateTime)},
		"data[list_id]":   {listID},
		"data[new_id]":    {hash(newEmail)[:10]},
		"data[new_email]": {newEmail},
		"data[old_email]": {oldEmail},
	})
}
