// Package hubspottest is a strict local stand-in for the HubSpot endpoints Lupa uses —
// communication preferences v4 statuses (single, batch write, batch read), contact
// gdpr-delete and contact read — for tests in any package. It checks the Bearer token,
// JSON content type, required fields and enum values (channel, statusState, legalBasis,
// known subscription ids) and answers with HubSpot's error body
// {"status":"error","message","correlationId","category"} when a request is wrong. It keeps
// contacts and their statuses, can be told to fail (429, 5xx, 400, a hanging connection),
// and sends HubSpot's signed (v3) contact.propertyChange webhooks to a URL.
//
// Unlike HubSpot it refuses unknown request fields, so a misspelt field fails a test.
// The batch size cap (100 inputs) is Lupa's conservative assumption, not a documented
// HubSpot number.
package hubspottest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"slices"
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
	OpSetStatus  = "set-status"
	OpGetStatus  = "get-status"
	OpBatchWrite = "batch-write"
	OpBatchRead  = "batch-read"
	OpGDPRDelete = "gdpr-delete"
	OpGetContact = "get-contact"
	// OpUpdateContact is PATCH /crm/v3/objects/contacts/{email}?idProperty=email; it moves
	// the contact's statuses with it (an assumption: HubSpot's documentation does not say).
	OpUpdateContact = "update-contact"
)

// MaxBatch is the fake's cap on batch inputs.
const MaxBatch = 100

// SubStatus is one contact's status for one subscription.
type SubStatus struct {
	State                 string
	LegalBasis            string
	LegalBasisExplanation string
	Timestamp             time.Time
	Source                string
}

// Contact is the fake's record of a contact.
type Contact struct {
	ID       int64
	Email    string
	Statuses map[int64]SubStatus
	// OptedOutOfAll: the contact unsubscribed from all email in HubSpot.
	OptedOutOfAll bool
}

// Options configure the fake.
type Options struct {
	// Token is the access token clients must present. Default DefaultToken.
	Token string
	// ClientSecret signs the webhooks the fake sends. Default DefaultClientSecret.
	ClientSecret string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultToken        = "pat-eu1-00000000-test"
	DefaultClientSecret = "hubspot-app-client-secret"
	PortalID            = 62515
	AppID               = 1160452
)

var legalBases = []string{"LEGITIMATE_INTEREST_PQL", "LEGITIMATE_INTEREST_CLIENT", "PERFORMANCE_OF_CONTRACT",
	"CONSENT_WITH_NOTICE", "NON_GDPR", "PROCESS_AND_STORE", "LEGITIMATE_INTEREST_OTHER"}

var states = []string{"SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"}

// Server is the fake.
type Server struct {
	*vendortest.Base
	token, secret string
	now           func() time.Time

	mu       sync.Mutex
	subs     map[int64]string
	contacts map[string]*Contact // by lower-cased email
	deleted  map[string]bool
	nextID   int64
	nextEvt  int64
}

// New starts a fake; it closes when tb's test ends.
func New(tb testing.TB, opt Options) *Server {
	s := &Server{token: opt.Token, secret: opt.ClientSecret, now: opt.Now,
		subs: map[int64]string{}, contacts: map[string]*Contact{}, deleted: map[string]bool{}, nextID: 1001, nextEvt: 1}
	if s.token == "" {
		s.token = DefaultToken
	}
	if s.secret == "" {
		s.secret = DefaultClientSecret
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.Base = vendortest.NewBase()
	mux := http.NewServeMux()
	s.route(mux, "POST /communication-preferences/v4/statuses/batch/write", OpBatchWrite, s.batchWrite)
	s.route(mux, "POST /communication-preferences/v4/statuses/batch/read", OpBatchRead, s.batchRead)
	s.route(mux, "POST /communication-preferences/v4/statuses/{subscriber}", OpSetStatus, s.setStatus)
	s.route(mux, "GET /communication-preferences/v4/statuses/{subscriber}", OpGetStatus, s.getStatus)
	s.route(mux, "POST /crm/v3/objects/contacts/gdpr-delete", OpGDPRDelete, s.gdprDelete)
	s.route(mux, "GET /crm/v3/objects/contacts/{id}", OpGetContact, s.getContact)
	s.route(mux, "PATCH /crm/v3/objects/contacts/{id}", OpUpdateContact, s.updateContact)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.Record("unknown", r, http.StatusNotFound, time.Now())
		hsError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
	})
	s.Start(tb, mux)
	return s
}

// Token is the access token the fake accepts.
func (s *Server) Token() string { return s.token }

// ClientSecret is the app secret the fake signs webhooks with.
func (s *Server) ClientSecret() string { return s.secret }

// AddSubscription defines a communication subscription (subscription type) id.
func (s *Server) AddSubscription(id int64, name string) {
	s.mu.Lock()
	s.subs[id] = name
	s.mu.Unlock()
}

// Contact returns a copy of the contact with this address, if any.
func (s *Server) Contact(email string) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[strings.ToLower(email)]
	if c == nil {
		return Contact{}, false
	}
	cp := *c
	cp.Statuses = map[int64]SubStatus{}
	for k, v := range c.Statuses {
		cp.Statuses[k] = v
	}
	return cp, true
}

// Deleted reports whether the contact was erased through gdpr-delete.
func (s *Server) Deleted(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[strings.ToLower(email)]
}

// ContactCount is how many contacts exist.
func (s *Server) ContactCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.contacts)
}

// contact returns (creating) the contact; s.mu held.
func (s *Server) contact(email string) *Contact {
	k := strings.ToLower(email)
	c := s.contacts[k]
	if c == nil {
		c = &Contact{ID: s.nextID, Email: email, Statuses: map[int64]SubStatus{}}
		s.nextID++
		s.contacts[k] = c
		delete(s.deleted, k)
	}
	return c
}

// --- HTTP ---

func (s *Server) route(mux *http.ServeMux, pattern, op string, fn http.HandlerFunc) {
	s.Handle(mux, pattern, op, s.gate, s.fault, fn)
}

func (s *Server) gate(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		hsError(w, http.StatusUnauthorized, "INVALID_AUTHENTICATION",
			"Authentication credentials not found. This API supports OAuth 2.0 authentication.", nil)
		return false
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			hsError(w, http.StatusUnsupportedMediaType, "VALIDATION_ERROR", "Content-Type must be application/json", nil)
			return false
		}
	}
	return true
}

func (s *Server) fault(w http.ResponseWriter, _ *http.Request, f Fault) {
	if f.Status == http.StatusTooManyRequests && f.Code == "" {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(f.Status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
			"errorType": "RATE_LIMIT", "correlationId": correlation(), "policyName": "TEN_SECONDLY_ROLLING",
		})
		return
	}
	code, msg := f.Code, f.Detail
	if code == "" {
		if f.Status >= 500 {
			code, msg = "INTERNAL_ERROR", "internal error"
		} else {
			code, msg = "VALIDATION_ERROR", "invalid input"
		}
	}
	hsError(w, f.Status, code, msg, nil)
}

type subError struct {
	Message string `json:"message"`
	In      string `json:"in,omitempty"`
}

func hsError(w http.ResponseWriter, status int, category, msg string, errs []subError) {
	body := map[string]any{"status": "error", "message": msg, "correlationId": correlation(), "category": category}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func invalid(w http.ResponseWriter, field, msg string) {
	hsError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+msg, []subError{{Message: msg, In: field}})
}

func correlation() string {
	return fmt.Sprintf("%08x-0000-4000-8000-fake", time.Now().UnixNano()&0xffffffff)
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// readObject decodes a JSON object body into raw fields.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	var raw map[string]json.RawMessage
	if err != nil || json.Unmarshal(data, &raw) != nil {
		invalid(w, "body", "malformed JSON object")
		return nil, false
	}
	return raw, true
}

type statusInput struct {
	subscriber, channel, state, basis, explanation string
	subID                                          int64
}

// parseStatus checks one status input strictly. withSubscriber: batch input form.
func (s *Server) parseStatus(raw map[string]json.RawMessage, withSubscriber bool) (statusInput, string, string) {
	allowed := []string{"channel", "statusState", "subscriptionId", "legalBasis", "legalBasisExplanation"}
	if withSubscriber {
		allowed = append(allowed, "subscriberIdString")
	}
	var in statusInput
	for k, v := range raw {
		if !slices.Contains(allowed, k) {
			return in, k, "unknown field"
		}
		var err error
		switch k {
		case "subscriberIdString":
			err = json.Unmarshal(v, &in.subscriber)
		case "channel":
			err = json.Unmarshal(v, &in.channel)
		case "statusState":
			err = json.Unmarshal(v, &in.state)
		case "legalBasis":
			err = json.Unmarshal(v, &in.basis)
		case "legalBasisExplanation":
			err = json.Unmarshal(v, &in.explanation)
		case "subscriptionId":
			err = json.Unmarshal(v, &in.subID)
		}
		if err != nil {
			return in, k, "wrong type"
		}
	}
	switch {
	case withSubscriber && !validEmail(in.subscriber):
		return in, "subscriberIdString", "a valid email is required"
	case in.channel != "EMAIL":
		return in, "channel", "channel must be EMAIL"
	case !slices.Contains(states, in.state):
		return in, "statusState", "statusState must be one of SUBSCRIBED, UNSUBSCRIBED, NOT_SPECIFIED"
	case in.subID <= 0:
		return in, "subscriptionId", "subscriptionId is required"
	case s.subs[in.subID] == "":
		return in, "subscriptionId", "unknown subscriptionId"
	case in.basis != "" && !slices.Contains(legalBases, in.basis):
		return in, "legalBasis", "legalBasis is not one of the allowed values"
	case in.state == "SUBSCRIBED" && (in.basis == "" || in.explanation == ""):
		return in, "legalBasis", "legalBasis and legalBasisExplanation are required to subscribe"
	}
	return in, "", ""
}

// apply writes one status; s.mu held.
func (s *Server) apply(in statusInput) map[string]any {
	c := s.contact(in.subscriber)
	old, had := c.Statuses[in.subID]
	reason := "NO_STATUS_CHANGE"
	if !had || old.State != in.state || old.LegalBasis != in.basis || old.LegalBasisExplanation != in.explanation {
		reason = "REQUESTED_CHANGE_OCCURRED"
		if in.state == "SUBSCRIBED" && old.State == "UNSUBSCRIBED" {
			reason = "RESUBSCRIBE_OCCURRED"
		}
		c.Statuses[in.subID] = SubStatus{State: in.state, LegalBasis: in.basis, LegalBasisExplanation: in.explanation,
			Timestamp: s.now().UTC(), Source: "Public API"}
	}
	return s.statusJSON(c, in.subID, reason)
}

func (s *Server) statusJSON(c *Contact, subID int64, reason string) map[string]any {
	st := c.Statuses[subID]
	m := map[string]any{
		"channel": "EMAIL", "subscriberIdString": c.Email, "subscriptionId": subID, "status": st.State,
		"source": st.Source, "timestamp": st.Timestamp.Format(time.RFC3339Nano), "subscriptionName": s.subs[subID],
	}
	if st.LegalBasis != "" {
		m["legalBasis"] = st.LegalBasis
		m["legalBasisExplanation"] = st.LegalBasisExplanation
	}
	if reason != "" {
		m["setStatusSuccessReason"] = reason
	}
	return m
}

func (s *Server) envelope(w http.ResponseWriter, results any) {
	now := s.now().UTC().Format(time.RFC3339Nano)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "COMPLETE", "results": results,
		"requestedAt": now, "startedAt": now, "completedAt": now})
}

func (s *Server) setStatus(w http.ResponseWriter, r *http.Request) {
	sub := r.PathValue("subscriber")
	if !validEmail(sub) {
		invalid(w, "subscriberIdString", "a valid email is required in the path")
		return
	}
	raw, ok := readObject(w, r)
	if !ok {
		return
	}
	in, field, msg := s.parseStatus(raw, false)
	if field != "" {
		invalid(w, field, msg)
		return
	}
	in.subscriber = sub
	s.mu.Lock()
	res := s.apply(in)
	s.mu.Unlock()
	s.envelope(w, []any{res})
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("channel") != "EMAIL" {
		invalid(w, "channel", "query parameter channel=EMAIL is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[strings.ToLower(r.PathValue("subscriber"))]
	if c == nil {
		hsError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "contact not found", nil)
		return
	}
	s.envelope(w, s.all(c))
}

// all lists a contact's statuses; s.mu held.
func (s *Server) all(c *Contact) []any {
	ids := make([]int64, 0, len(c.Statuses))
	for id := range c.Statuses {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := []any{}
	for _, id := range ids {
		out = append(out, s.statusJSON(c, id, ""))
	}
	return out
}

func (s *Server) inputs(w http.ResponseWriter, r *http.Request) ([]json.RawMessage, bool) {
	raw, ok := readObject(w, r)
	if !ok {
		return nil, false
	}
	for k := range raw {
		if k != "inputs" {
			invalid(w, k, "unknown field")
			return nil, false
		}
	}
	var in []json.RawMessage
	if json.Unmarshal(raw["inputs"], &in) != nil || len(in) == 0 {
		invalid(w, "inputs", "inputs must be a non-empty array")
		return nil, false
	}
	if len(in) > MaxBatch {
		invalid(w, "inputs", "too many inputs")
		return nil, false
	}
	return in, true
}

func (s *Server) batchWrite(w http.ResponseWriter, r *http.Request) {
	items, ok := s.inputs(w, r)
	if !ok {
		return
	}
	var ins []statusInput
	for _, it := range items {
		var raw map[string]json.RawMessage
		if json.Unmarshal(it, &raw) != nil {
			invalid(w, "inputs", "each input must be an object")
			return
		}
		in, field, msg := s.parseStatus(raw, true)
		if field != "" {
			invalid(w, field, msg)
			return
		}
		ins = append(ins, in)
	}
	s.mu.Lock()
	var res []any
	for _, in := range ins {
		res = append(res, s.apply(in))
	}
	s.mu.Unlock()
	s.envelope(w, res)
}

func (s *Server) batchRead(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("channel") != "EMAIL" {
		invalid(w, "channel", "query parameter channel=EMAIL is required")
		return
	}
	items, ok := s.inputs(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res := []any{}
	for _, it := range items {
		var email string
		if json.Unmarshal(it, &email) != nil || !validEmail(email) {
			invalid(w, "inputs", "each input must be an email string")
			return
		}
		if c := s.contacts[strings.ToLower(email)]; c != nil {
			res = append(res, map[string]any{"subscriberIdString": c.Email, "statuses": s.all(c)})
		}
	}
	s.envelope(w, res)
}

func (s *Server) gdprDelete(w http.ResponseWriter, r *http.Request) {
	raw, ok := readObject(w, r)
	if !ok {
		return
	}
	var objectID, idProperty string
	for k, v := range raw {
		var err error
		switch k {
		case "objectId":
			err = json.Unmarshal(v, &objectID)
		case "idProperty":
			err = json.Unmarshal(v, &idProperty)
		default:
			invalid(w, k, "unknown field")
			return
		}
		if err != nil {
			invalid(w, k, "must be a string")
			return
		}
	}
	if idProperty != "email" || !validEmail(objectID) {
		invalid(w, "objectId", "objectId must be an email with idProperty \"email\"")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(objectID)
	if s.contacts[k] == nil {
		hsError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
		return
	}
	delete(s.contacts, k)
	s.deleted[k] = true
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getContact(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		hsError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.contacts {
		if c.ID == id {
			w.Header().Set("Content-Type", "application/json;charset=utf-8")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id":         strconv.FormatInt(c.ID, 10),
				"properties": map[string]string{"email": c.Email, "hs_object_id": strconv.FormatInt(c.ID, 10)},
				"archived":   false,
			})
			return
		}
	}
	hsError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
}

func (s *Server) updateContact(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("idProperty") != "email" {
		invalid(w, "idProperty", "Lupa addresses contacts by email: idProperty=email is required")
		return
	}
	raw, ok := readObject(w, r)
	if !ok {
		return
	}
	var props map[string]string
	if len(raw) != 1 || json.Unmarshal(raw["properties"], &props) != nil || len(props) != 1 || !validEmail(props["email"]) {
		invalid(w, "properties", "expected {\"properties\":{\"email\":…}}")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	oldKey, newKey := strings.ToLower(r.PathValue("id")), strings.ToLower(props["email"])
	c := s.contacts[oldKey]
	if c == nil {
		hsError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
		return
	}
	if other := s.contacts[newKey]; other != nil && other != c {
		hsError(w, http.StatusConflict, "CONFLICT", "A contact with the email already exists.", nil)
		return
	}
	delete(s.contacts, oldKey)
	c.Email = props["email"]
	s.contacts[newKey] = c
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": strconv.FormatInt(c.ID, 10),
		"properties": map[string]string{"email": c.Email}, "archived": false})
}

// --- webhooks HubSpot sends ---

var uriDecodes = strings.NewReplacer("%3A", ":", "%2F", "/", "%3F", "?", "%40", "@", "%21", "!", "%24", "$",
	"%27", "'", "%28", "(", "%29", ")", "%2A", "*", "%2C", ",", "%3B", ";")

// Sign computes HubSpot's v3 signature the way HubSpot documents it.
func Sign(secret, method, uri string, body []byte, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(method + uriDecodes.Replace(uri)))
	mac.Write(body)
	mac.Write([]byte(timestamp))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// PersonOptsOut is the contact unsubscribing in HubSpot (subscriptionID 0: from all email).
// It returns the contact id (0 if the contact does not exist).
func (s *Server) PersonOptsOut(email string, subscriptionID int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[strings.ToLower(email)]
	if c == nil {
		return 0
	}
	if subscriptionID == 0 {
		c.OptedOutOfAll = true
		for id, st := range c.Statuses {
			st.State, st.Timestamp, st.Source = "UNSUBSCRIBED", s.now().UTC(), "EMAIL"
			c.Statuses[id] = st
		}
		return c.ID
	}
	st := c.Statuses[subscriptionID]
	st.State, st.Timestamp, st.Source = "UNSUBSCRIBED", s.now().UTC(), "EMAIL"
	c.Statuses[subscriptionID] = st
	return c.ID
}

// OptOutEvent is the contact.propertyChange event HubSpot sends for an opt-out.
func (s *Server) OptOutEvent(contactID, subscriptionID int64) map[string]any {
	s.mu.Lock()
	id := s.nextEvt
	s.nextEvt++
	s.mu.Unlock()
	prop := "hs_email_optout"
	if subscriptionID != 0 {
		prop = "hs_email_optout_" + strconv.FormatInt(subscriptionID, 10)
	}
	return map[string]any{
		"eventId": id, "subscriptionId": 4000 + subscriptionID%1000, "portalId": PortalID, "appId": AppID,
		"occurredAt": s.now().UnixMilli(), "subscriptionType": "contact.propertyChange", "attemptNumber": 0,
		"objectId": contactID, "propertyName": prop, "propertyValue": "true", "changeSource": "EMAIL",
		"sourceId": "unsubscribe-link",
	}
}

// SendEvents posts events to target, signed with the client secret at the fake's clock,
// and returns the status.
func (s *Server) SendEvents(ctx context.Context, target string, events ...map[string]any) (int, error) {
	body, _ := json.Marshal(events)
	ts := strconv.FormatInt(s.now().UnixMilli(), 10)
	return s.SendSigned(ctx, target, body, ts, Sign(s.secret, http.MethodPost, target, body, ts))
}

// SendSigned posts body with the given timestamp and signature headers (for tampering tests).
func (s *Server) SendSigned(ctx context.Context, target string, body []byte, timestamp, signature string) (int, error) {
	return vendortest.Post(ctx, target, "application/json", body, http.Header{
		"X-Hubspot-Signature-Version": {"v3"},
		"X-Hubspot-Signature-V3":      {signature},
		"X-Hubspot-Request-Timestamp": {timestamp},
	})
}

// SendOptOut has the contact opt out in HubSpot and sends the signed webhook.
func (s *Server) SendOptOut(ctx context.Context, target, email string, subscriptionID int64) (int, error) {
	id := s.PersonOptsOut(email, subscriptionID)
	return s.SendEvents(ctx, target, s.OptOutEvent(id, subscriptionID))
}
