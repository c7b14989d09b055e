// Package integrationsweb holds the HTTP side of integrations: the admin handlers of the
// data map (and of webhook endpoints and connectors).
package integrationsweb

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/integrations/datamap"
)

// DataMap serves the tenant's data map: the systems that hold its customers' data. Every
// route runs behind an API key with the admin scope and is scoped to that key's tenant.
type DataMap struct {
	svc *datamap.Service
	api *identityweb.API
}

// NewDataMap returns the data map's admin handlers.
func NewDataMap(svc *datamap.Service, api *identityweb.API) *DataMap {
	return &DataMap{svc: svc, api: api}
}

type connectionIn struct {
	Kind string `json:"kind" validate:"required,max=40"`
	ID   string `json:"id" validate:"required,max=200"`
}

type recipientIn struct {
	Name    string `json:"name" validate:"required,max=200"`
	Role    string `json:"role" validate:"required,max=40"`
	Country string `json:"country" validate:"max=2"`
}

type transferIn struct {
	Country   string `json:"country" validate:"required,max=2"`
	Mechanism string `json:"mechanism" validate:"required,max=40"`
	Recipient string `json:"recipient" validate:"max=200"`
	Notes     string `json:"notes" validate:"max=500"`
}

type retentionIn struct {
	Preset           string `json:"preset" validate:"max=64"`
	Years            int    `json:"years" validate:"gte=0,lte=100"`
	Months           int    `json:"months" validate:"gte=0,lte=1200"`
	Days             int    `json:"days" validate:"gte=0,lte=36500"`
	Anchor           string `json:"anchor" validate:"max=64"`
	FinancialYearEnd string `json:"financial_year_end" validate:"max=5"`
	LegalReference   string `json:"legal_reference" validate:"max=500"`
	Notes            string `json:"notes" validate:"max=1000"`
}

type ownerIn struct {
	Name  string `json:"name" validate:"required,max=200"`
	Email string `json:"email" validate:"required,max=254"`
}

type dsrIn struct {
	Method       string   `json:"method" validate:"required,max=20"`
	Owner        *ownerIn `json:"owner"`
	Instructions string   `json:"instructions" validate:"max=2000"`
}

type systemIn struct {
	Name                string        `json:"name" validate:"required,max=200"`
	Description         string        `json:"description" validate:"max=2000"`
	Connection          *connectionIn `json:"connection"`
	DataCategories      []string      `json:"data_categories" validate:"max=20,dive,max=40"`
	OtherDataCategories []string      `json:"other_data_categories" validate:"max=20,dive,max=200"`
	Purposes            []string      `json:"purposes" validate:"max=50,dive,max=64"`
	OtherPurposes       []string      `json:"other_purposes" validate:"max=20,dive,max=200"`
	LegalBases          []string      `json:"legal_bases" validate:"max=6,dive,max=40"`
	Recipients          []recipientIn `json:"recipients" validate:"max=50,dive"`
	Locations           []string      `json:"locations" validate:"max=50,dive,max=2"`
	Transfers           []transferIn  `json:"transfers" validate:"max=50,dive"`
	Retention           *retentionIn  `json:"retention" validate:"required"`
	DSR                 *dsrIn        `json:"dsr" validate:"required"`
}

type systemPatch struct {
	Name                *string        `json:"name" validate:"omitempty,min=1,max=200"`
	Description         *string        `json:"description" validate:"omitempty,max=2000"`
	Connection          *connectionIn  `json:"connection"` // null removes it
	DataCategories      *[]string      `json:"data_categories" validate:"omitempty,max=20,dive,max=40"`
	OtherDataCategories *[]string      `json:"other_data_categories" validate:"omitempty,max=20,dive,max=200"`
	Purposes            *[]string      `json:"purposes" validate:"omitempty,max=50,dive,max=64"`
	OtherPurposes       *[]string      `json:"other_purposes" validate:"omitempty,max=20,dive,max=200"`
	LegalBases          *[]string      `json:"legal_bases" validate:"omitempty,max=6,dive,max=40"`
	Recipients          *[]recipientIn `json:"recipients" validate:"omitempty,max=50,dive"`
	Locations           *[]string      `json:"locations" validate:"omitempty,max=50,dive,max=2"`
	Transfers           *[]transferIn  `json:"transfers" validate:"omitempty,max=50,dive"`
	Retention           *retentionIn   `json:"retention"`
	DSR                 *dsrIn         `json:"dsr"`
}

func (c *connectionIn) domain() *datamap.Connection {
	if c == nil {
		return nil
	}
	return &datamap.Connection{Kind: c.Kind, ID: c.ID}
}

func recipients(in []recipientIn) []datamap.Recipient {
	out := make([]datamap.Recipient, len(in))
	for i, r := range in {
		out[i] = datamap.Recipient{Name: r.Name, Role: r.Role, Country: r.Country}
	}
	return out
}

func transfers(in []transferIn) []datamap.Transfer {
	out := make([]datamap.Transfer, len(in))
	for i, t := range in {
		out[i] = datamap.Transfer{Country: t.Country, Mechanism: t.Mechanism, Recipient: t.Recipient, Notes: t.Notes}
	}
	return out
}

func (r *retentionIn) domain() datamap.Retention {
	if r == nil { // refused already (required): DomainCheck still reads the rest
		return datamap.Retention{}
	}
	return datamap.Retention{Preset: r.Preset, Years: r.Years, Months: r.Months, Days: r.Days, Anchor: r.Anchor,
		FinancialYearEnd: r.FinancialYearEnd, LegalReference: r.LegalReference, Notes: r.Notes}
}

func (d *dsrIn) domain() datamap.DSRRoute {
	if d == nil { // as retentionIn's
		return datamap.DSRRoute{}
	}
	out := datamap.DSRRoute{Method: d.Method, Instructions: d.Instructions}
	if d.Owner != nil {
		out.Owner = &datamap.Owner{Name: d.Owner.Name, Email: d.Owner.Email}
	}
	return out
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (in *systemIn) system(tenantID string) datamap.System {
	return datamap.System{TenantID: tenantID, Name: in.Name, Description: in.Description, Connection: in.Connection.domain(),
		DataCategories: orEmpty(in.DataCategories), OtherDataCategories: orEmpty(in.OtherDataCategories),
		Purposes: orEmpty(in.Purposes), OtherPurposes: orEmpty(in.OtherPurposes), LegalBases: orEmpty(in.LegalBases),
		Recipients: recipients(in.Recipients), Locations: orEmpty(in.Locations), Transfers: transfers(in.Transfers),
		Retention: in.Retention.domain(), DSR: in.DSR.domain()}
}

// DomainCheck checks the system by its rules (see identityweb.DomainChecker); whether
// the tenant has its purposes waits for the service.
func (in *systemIn) DomainCheck() error {
	s := in.system("")
	return s.Prepare()
}

// patch is the patch in makes; "connection": null is the handler's to read from the body.
func (in *systemPatch) patch() datamap.Patch {
	p := datamap.Patch{Name: in.Name, Description: in.Description, Connection: in.Connection.domain(),
		DataCategories: in.DataCategories, OtherDataCategories: in.OtherDataCategories, Purposes: in.Purposes,
		OtherPurposes: in.OtherPurposes, LegalBases: in.LegalBases, Locations: in.Locations}
	if in.Recipients != nil {
		rs := recipients(*in.Recipients)
		p.Recipients = &rs
	}
	if in.Transfers != nil {
		ts := transfers(*in.Transfers)
		p.Transfers = &ts
	}
	if in.Retention != nil {
		r := in.Retention.domain()
		p.Retention = &r
	}
	if in.DSR != nil {
		d := in.DSR.domain()
		p.DSR = &d
	}
	return p
}

// DomainCheck checks the fields sent by the system's rules that read one field (see
// identityweb.DomainChecker and datamap's PrepareFields).
func (in *systemPatch) DomainCheck() error {
	var s datamap.System
	p := in.patch()
	p.Apply(&s)
	return identityweb.SentOnly(in, s.PrepareFields())
}

// GetMap returns the tenant's whole data map.
func (h *DataMap) GetMap(c *gin.Context) {
	m, err := h.svc.Map(c.Request.Context(), identityweb.TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

// Vocabulary returns the fixed vocabularies of the data map and the retention presets.
func (h *DataMap) Vocabulary(c *gin.Context) {
	type basis struct {
		Key     string `json:"key"`
		Article string `json:"article"`
	}
	bases := make([]basis, len(datamap.LegalBasisKeys))
	for i, k := range datamap.LegalBasisKeys {
		bases[i] = basis{Key: k, Article: datamap.LegalBasisArticle[k]}
	}
	c.Header("Cache-Control", "private, max-age=300")
	c.JSON(http.StatusOK, gin.H{
		"data_categories":     datamap.DataCategories,
		"legal_bases":         bases,
		"recipient_roles":     datamap.RecipientRoles,
		"transfer_mechanisms": datamap.TransferMechanisms,
		"anchors":             datamap.Anchors,
		"retention_presets":   datamap.Presets,
		"connection_kinds":    datamap.ConnectionKinds,
		"dsr_methods":         datamap.DSRMethods,
	})
}

// ListSystems lists the tenant's systems, newest first (?before=<id of the last one
// seen>, ?limit= 1–200, default 50).
func (h *DataMap) ListSystems(c *gin.Context) {
	limit := 0
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > datamap.MaxPageSize {
			identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed",
				[]identity.FieldError{{Field: "limit", Message: "must be an integer from 1 to 200"}})
			return
		}
		limit = n
	}
	before, ok := identityweb.QueryID(c, "before")
	if !ok {
		return
	}
	items, next, err := h.svc.List(c.Request.Context(), identityweb.TenantOf(c), before, limit)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": items, "next": next})
}

// CreateSystem adds a system to the data map.
func (h *DataMap) CreateSystem(c *gin.Context) {
	var in systemIn
	if !h.api.BindBody(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	s, err := h.svc.Create(c.Request.Context(), in.system(identityweb.TenantOf(c)), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, s)
}

// GetSystem returns one system.
func (h *DataMap) GetSystem(c *gin.Context) {
	s, err := h.svc.Get(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

// PatchSystem changes the fields sent; "connection": null removes the connection.
func (h *DataMap) PatchSystem(c *gin.Context) {
	body, ok := h.api.ReadBody(c, identityweb.PublicBodyLimit)
	if !ok {
		return
	}
	var in systemPatch
	if !h.api.Decode(c, body, &in) {
		return
	}
	p := in.patch()
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) == nil {
		if v, sent := raw["connection"]; sent && string(v) == "null" {
			p.ClearConnection = true
		}
	}
	s, err := h.svc.Update(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), p, identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

// DeleteSystem removes a system from the data map.
func (h *DataMap) DeleteSystem(c *gin.Context) {
	if err := h.svc.Delete(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), identityweb.ActorOf(c)); err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// keepUntil is the answer of KeepUntil.
type keepUntil struct {
	SystemID string `json:"system_id"`
	Date     string `json:"date"`
	// FinancialYearEnd is the last day of the financial year the date falls in, for the
	// financial-year anchors; empty for the others.
	FinancialYearEnd string            `json:"financial_year_end"`
	KeepUntil        string            `json:"keep_until"`
	Retention        datamap.Retention `json:"retention"`
}

// KeepUntil answers until when a record of the system must be kept (?date=YYYY-MM-DD: the
// record's date, or the day of the event its rule counts from).
func (h *DataMap) KeepUntil(c *gin.Context) {
	on, err := time.Parse(time.DateOnly, c.Query("date"))
	if err != nil || on.Year() < 1900 || on.Year() > 2999 {
		identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed",
			[]identity.FieldError{{Field: "date", Message: "a date YYYY-MM-DD from 1900 to 2999 is required"}})
		return
	}
	s, err := h.svc.Get(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	until, err := s.Retention.KeepUntil(on)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	out := keepUntil{SystemID: s.ID, Date: on.Format(time.DateOnly), KeepUntil: until.Format(time.DateOnly), Retention: s.Retention}
	if s.Retention.FinancialYearEnd != "" {
		if fy, err := datamap.FinancialYearEnd(on, s.Retention.FinancialYearEnd); err == nil {
			out.FinancialYearEnd = fy.Format(time.DateOnly)
		}
	}
	c.JSON(http.StatusOK, out)
}

// erasureConfirmIn is the optional body of ConfirmErasure.
type erasureConfirmIn struct {
	Note string `json:"note" validate:"max=1000"`
}

// ConfirmErasure records that the system has carried out an erasure request (a manual task
// done, or a connected system erased by other means), with an optional {"note": "…"}, and
// answers the request's progress. When it was the last system to confirm, Lupa has erased
// the person's email addresses in the same transaction.
func (h *DataMap) ConfirmErasure(c *gin.Context) {
	var in erasureConfirmIn
	// The body is optional: only a body that is sent must be JSON.
	if !h.api.BindOptional(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	p, err := h.svc.ConfirmErasure(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), c.Param("request_id"), in.Note,
		identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// ErasureProgress answers where an erasure request stands: every system of the data map,
// confirmed or not, and whether Lupa has erased its copy of the person's email.
func (h *DataMap) ErasureProgress(c *gin.Context) {
	p, err := h.svc.ErasureProgress(c.Request.Context(), identityweb.TenantOf(c), c.Param("request_id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}
