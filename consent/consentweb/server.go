package consentweb

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// serverRecordIn is a decision recorded by a back-office system: a store's till, the call
// centre, an import.
type serverRecordIn struct {
	Identifier identifierIn `json:"identifier" validate:"required"`
	PropertyID string       `json:"property_id" validate:"omitempty,max=64"`
	Method     string       `json:"method" validate:"required,max=40"`
	Agent      string       `json:"agent" validate:"max=100"`
	Language   string       `json:"language" validate:"omitempty,max=12"`
	UIHash     string       `json:"ui_hash" validate:"omitempty,len=64"`
	ClientTime *time.Time   `json:"client_time"`
	Decisions  []decisionIn `json:"decisions" validate:"required,min=1,max=50,dive"`
}

func (h *Handlers) property(c *gin.Context, id string) (*identity.Property, bool) {
	if id == "" {
		return nil, true
	}
	p, err := h.ids.Property(c.Request.Context(), identityweb.TenantOf(c), id)
	if identity.IsCode(err, identity.ENotFound) {
		h.api.Fail(c, identity.Unprocessable("property_id", "no such property"))
		return nil, false
	}
	if err != nil {
		h.api.Fail(c, err)
		return nil, false
	}
	return p, true
}

// RecordSubject records decisions for a subject named by an identifier.
func (h *Handlers) RecordSubject(c *gin.Context) {
	key, ok := identityweb.IdempotencyKey(c)
	if !ok {
		return
	}
	body, ok := h.api.ReadBody(c, identityweb.PublicBodyLimit)
	if !ok {
		return
	}
	var in serverRecordIn
	if !h.api.Decode(c, body, &in) {
		return
	}
	p, ok := h.property(c, in.PropertyID)
	if !ok {
		return
	}
	req := &consent.RecordRequest{TenantID: identityweb.TenantOf(c), Property: p, Identifier: in.Identifier.domain(),
		Method: in.Method, Agent: in.Agent, Language: in.Language, UIHash: in.UIHash, ClientTime: clientTime(in.ClientTime),
		Actor: identityweb.ActorOf(c), Decisions: decisions(in.Decisions)}
	if key != "" {
		req.Idempotency = &consent.IdempotencyKey{Route: c.FullPath(), Key: key, RequestHash: identityweb.RequestHash(body)}
	}
	h.record(c, req)
}

type stateIn struct {
	Identifier identifierIn `json:"identifier" validate:"required"`
	PropertyID string       `json:"property_id" validate:"omitempty,max=64"`
}

// SubjectState returns a subject's current state.
func (h *Handlers) SubjectState(c *gin.Context) {
	var in stateIn
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	p, ok := h.property(c, in.PropertyID)
	if !ok {
		return
	}
	v, err := h.svc.SubjectState(c.Request.Context(), identityweb.TenantOf(c), *in.Identifier.domain(), p)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, v)
}

type historyIn struct {
	Identifier identifierIn  `json:"identifier" validate:"required"`
	Purpose    string        `json:"purpose" validate:"max=63"`
	Kind       string        `json:"kind" validate:"omitempty,oneof=decision objection expiry outdated merge erasure"`
	From       *time.Time    `json:"from"`
	To         *time.Time    `json:"to"`
	After      historyCursor `json:"after"`
	Limit      int           `json:"limit" validate:"gte=0,lte=500"`
}

// historyCursor is history's `after`: the `next` of the page before, sent back as it came (a
// string of digits). A plain integer is still taken: clients had to convert `next` before.
type historyCursor int64

// UnmarshalJSON takes the cursor as a string of digits or as a non-negative integer.
func (h *historyCursor) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return errors.New("not a history cursor")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return err
	}
	*h = historyCursor(n)
	return nil
}

// JSONKind names, for a problem's field message, what `after` takes.
func (historyCursor) JSONKind() string { return "the next of a history page" }

// SubjectHistory returns a page of a subject's ledger entries, oldest first.
func (h *Handlers) SubjectHistory(c *gin.Context) {
	var in historyIn
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	hist, err := h.svc.History(c.Request.Context(), identityweb.TenantOf(c), *in.Identifier.domain(), consent.HistoryFilter{
		Purpose: in.Purpose, Kind: in.Kind, From: clientTime(in.From), To: clientTime(in.To), After: int64(in.After), Limit: in.Limit})
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, hist)
}

// checkIn's identifiers are validated one by one by the service (identity.Identifier's
// rules, field by field); a validator dive would walk the 10,000 a second time.
type checkIn struct {
	Purpose     string                `json:"purpose" validate:"required,max=63"`
	Identifiers []identity.Identifier `json:"identifiers" validate:"required,min=1,max=10000"`
}

// DomainCheck checks the purpose and every identifier as the service does (see
// identityweb.DomainChecker), so a check without a purpose also hears of its bad
// identifiers.
func (in *checkIn) DomainCheck() error {
	ids := make([]identity.Identifier, len(in.Identifiers))
	for i, id := range in.Identifiers {
		ids[i] = id.Normalized()
	}
	return consent.ValidateCheck(in.Purpose, ids)
}

// Check answers, for up to 10,000 identifiers and one purpose, which may be used now.
func (h *Handlers) Check(c *gin.Context) {
	var in checkIn
	if !h.api.Bind(c, identityweb.CheckBodyLimit, &in) {
		return
	}
	for i := range in.Identifiers {
		in.Identifiers[i] = in.Identifiers[i].Normalized()
	}
	res, err := h.svc.Check(c.Request.Context(), identityweb.TenantOf(c), in.Purpose, in.Identifiers)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	body, err := appendCheckAnswer(make([]byte, 0, 64+len(res)*checkResultSize), in.Purpose, res)
	if err != nil { // only for a string that is not UTF-8, which Bind has refused
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

// checkResultSize is about what one result of a check takes in JSON.
const checkResultSize = 128
