package integrationsweb

// The webhook endpoints' admin API: endpoints, their secrets, delivery logs, dead letters
// and replays.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// Webhooks serves the webhook endpoints' admin routes.
type Webhooks struct {
	hooks  *webhook.Service
	engine *integrations.Engine
	api    *identityweb.API
}

// NewWebhooks returns the handlers.
func NewWebhooks(hooks *webhook.Service, engine *integrations.Engine, api *identityweb.API) *Webhooks {
	return &Webhooks{hooks: hooks, engine: engine, api: api}
}

type endpointIn struct {
	URL           string   `json:"url" validate:"required,max=2048"`
	Description   string   `json:"description" validate:"max=500"`
	EventTypes    []string `json:"event_types" validate:"required,min=1,max=3,dive,oneof=consent.updated subject.merged subject.erasure_approved"`
	Purposes      []string `json:"purposes" validate:"omitempty,max=100,dive,required,max=63"`
	RecipientKind string   `json:"recipient_kind" validate:"required,oneof=processor third_party"`
	RecipientID   string   `json:"recipient_id" validate:"max=64"`
}

func (in *endpointIn) input() webhook.Input {
	return webhook.Input{URL: in.URL, Description: in.Description, EventTypes: in.EventTypes, Purposes: in.Purposes,
		RecipientKind: in.RecipientKind, RecipientID: in.RecipientID}
}

// DomainCheck checks the endpoint by its rules (see identityweb.DomainChecker).
func (in *endpointIn) DomainCheck() error { return in.input().Validate() }

type endpointPatch struct {
	URL           *string   `json:"url" validate:"omitempty,max=2048"`
	Description   *string   `json:"description" validate:"omitempty,max=500"`
	EventTypes    *[]string `json:"event_types" validate:"omitempty,min=1,max=3,dive,oneof=consent.updated subject.merged subject.erasure_approved"`
	Purposes      *[]string `json:"purposes" validate:"omitempty,max=100,dive,required,max=63"`
	RecipientKind *string   `json:"recipient_kind" validate:"omitempty,oneof=processor third_party"`
	RecipientID   *string   `json:"recipient_id" validate:"omitempty,max=64"`
}

func (in *endpointPatch) patch() webhook.Patch {
	return webhook.Patch{URL: in.URL, Description: in.Description, EventTypes: in.EventTypes, Purposes: in.Purposes,
		RecipientKind: in.RecipientKind, RecipientID: in.RecipientID}
}

// DomainCheck checks the fields sent by the endpoint's rules (see
// identityweb.DomainChecker). A recipient id sent alone is checked against the stored
// recipient kind, and a third party's against the catalog, by the service.
func (in *endpointPatch) DomainCheck() error {
	var e webhook.Endpoint
	in.patch().Apply(&e)
	return identityweb.SentOnly(in, e.Validate())
}

type rotateIn struct {
	OverlapSeconds *int64 `json:"overlap_seconds" validate:"omitempty,min=0,max=604800"`
}

// endpointOut is an endpoint as the API shows it; secret only on create and rotate.
type endpointOut struct {
	ID                      string     `json:"id"`
	URL                     string     `json:"url"`
	Description             string     `json:"description"`
	EventTypes              []string   `json:"event_types"`
	Purposes                []string   `json:"purposes"`
	RecipientKind           string     `json:"recipient_kind"`
	RecipientID             *string    `json:"recipient_id"`
	Status                  string     `json:"status"`
	DisabledReason          *string    `json:"disabled_reason"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
	Secret                  string     `json:"secret,omitempty"`
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func endpointJSON(e *webhook.Endpoint, secret string) endpointOut {
	return endpointOut{ID: e.ID, URL: e.URL, Description: e.Description, EventTypes: e.EventTypes, Purposes: e.Purposes,
		RecipientKind: e.RecipientKind, RecipientID: nilIfEmpty(e.RecipientID), Status: e.Status,
		DisabledReason: nilIfEmpty(e.DisabledReason), PreviousSecretExpiresAt: e.PreviousSecretExpiresAt,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Secret: secret}
}

type attemptOut struct {
	Number    int       `json:"number"`
	Status    *int      `json:"status"`
	Outcome   string    `json:"outcome"`
	LatencyMS int64     `json:"latency_ms"`
	Response  string    `json:"response"`
	At        time.Time `json:"at"`
}

type deliveryOut struct {
	ID            string           `json:"id"`
	EndpointID    string           `json:"endpoint_id"`
	EventType     string           `json:"event_type"`
	Purpose       *string          `json:"purpose"`
	Sequence      int64            `json:"sequence"`
	Status        string           `json:"status"`
	Attempts      int              `json:"attempts"`
	NextAttemptAt *time.Time       `json:"next_attempt_at"`
	LastStatus    *int             `json:"last_status"`
	LastError     *string          `json:"last_error"`
	CreatedAt     time.Time        `json:"created_at"`
	UpdatedAt     time.Time        `json:"updated_at"`
	DeliveredAt   *time.Time       `json:"delivered_at"`
	Data          *json.RawMessage `json:"data,omitempty"`
	AttemptLog    []attemptOut     `json:"attempt_log,omitempty"`
}

func nilIfZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func deliveryJSON(d *integrations.Delivery) deliveryOut {
	o := deliveryOut{ID: d.ID, EndpointID: d.EndpointID, EventType: d.EventType, Purpose: nilIfEmpty(d.Purpose), Sequence: d.Sequence,
		Status: d.Status, Attempts: d.Attempts, NextAttemptAt: d.NextAttemptAt, LastStatus: nilIfZero(d.LastStatus),
		LastError: nilIfEmpty(d.LastError), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, DeliveredAt: d.DeliveredAt}
	if d.Data != nil {
		o.Data = &d.Data
		o.AttemptLog = make([]attemptOut, len(d.AttemptLog))
		for i, a := range d.AttemptLog {
			o.AttemptLog[i] = attemptOut{Number: a.Number, Status: nilIfZero(a.Status), Outcome: a.Outcome, LatencyMS: a.LatencyMS,
				Response: a.Response, At: a.At}
		}
	}
	return o
}

// ListWebhooks lists the tenant's webhook endpoints.
func (h *Webhooks) ListWebhooks(c *gin.Context) {
	list, err := h.hooks.List(c.Request.Context(), identityweb.TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	items := make([]endpointOut, len(list))
	for i, e := range list {
		items[i] = endpointJSON(e, "")
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// CreateWebhook adds an endpoint; the answer holds its secret, shown this once.
func (h *Webhooks) CreateWebhook(c *gin.Context) {
	var in endpointIn
	if !h.api.BindBody(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	e, secret, err := h.hooks.Create(c.Request.Context(), identityweb.TenantOf(c), in.input(), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, endpointJSON(e, secret))
}

// GetWebhook returns one endpoint (never its secret).
func (h *Webhooks) GetWebhook(c *gin.Context) {
	e, err := h.hooks.Get(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, endpointJSON(e, ""))
}

// PatchWebhook changes the fields sent.
func (h *Webhooks) PatchWebhook(c *gin.Context) {
	var in endpointPatch
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	e, err := h.hooks.Update(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), in.patch(), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, endpointJSON(e, ""))
}

// DeleteWebhook removes an endpoint with its deliveries and their log.
func (h *Webhooks) DeleteWebhook(c *gin.Context) {
	if err := h.hooks.Delete(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), identityweb.ActorOf(c)); err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// RotateSecret makes a new secret (shown this once); the old one keeps signing beside it
// for overlap_seconds (default one day). Every field is optional, so no body means {}.
func (h *Webhooks) RotateSecret(c *gin.Context) {
	var in rotateIn
	if !h.api.BindOptional(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	overlap := webhook.DefaultOverlap
	if in.OverlapSeconds != nil {
		overlap = time.Duration(*in.OverlapSeconds) * time.Second
	}
	e, secret, err := h.hooks.RotateSecret(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), overlap, identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, endpointJSON(e, secret))
}

func (h *Webhooks) setStatus(c *gin.Context, status string) {
	e, err := h.hooks.SetStatus(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), status, "disabled by an admin", identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	if status == webhook.StatusEnabled {
		h.engine.Wake() // its backlog goes now
	}
	c.JSON(http.StatusOK, endpointJSON(e, ""))
}

// DisableWebhook stops sending to an endpoint; its deliveries wait.
func (h *Webhooks) DisableWebhook(c *gin.Context) { h.setStatus(c, webhook.StatusDisabled) }

// EnableWebhook sends to an endpoint again, its backlog first.
func (h *Webhooks) EnableWebhook(c *gin.Context) { h.setStatus(c, webhook.StatusEnabled) }

// endpoint checks that the path's endpoint is the tenant's.
func (h *Webhooks) endpoint(c *gin.Context) (string, string, bool) {
	tenant := identityweb.TenantOf(c)
	if _, err := h.hooks.Get(c.Request.Context(), tenant, c.Param("id")); err != nil {
		h.api.Fail(c, err)
		return "", "", false
	}
	return tenant, c.Param("id"), true
}

func (h *Webhooks) page(c *gin.Context, dead bool) {
	deliveryPage(c, h.api, h.engine, h.endpoint, dead, func(d *integrations.Delivery) any { return deliveryJSON(d) })
}

// deliveryPage answers a page of a target's deliveries (?status=, ?cursor=, ?limit=);
// owner checks that the path's target is the tenant's.
func deliveryPage(c *gin.Context, api *identityweb.API, engine *integrations.Engine, owner func(*gin.Context) (string, string, bool),
	dead bool, out func(*integrations.Delivery) any) {
	f := integrations.DeliveryFilter{DeadLetters: dead, Cursor: c.Query("cursor")}
	var fields []identity.FieldError
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 200 {
			fields = append(fields, identity.FieldError{Field: "limit", Message: "must be an integer from 1 to 200"})
		}
		f.Limit = n
	}
	if s := c.Query("status"); s != "" && !dead {
		if !slices.Contains(integrations.Statuses, s) {
			fields = append(fields, identity.FieldError{Field: "status", Message: "must be pending, delivered, superseded, skipped, failed or dead"})
		}
		f.Status = s
	}
	if len(fields) > 0 {
		identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed", fields)
		return
	}
	tenant, id, ok := owner(c)
	if !ok {
		return
	}
	p, err := engine.Deliveries(c.Request.Context(), tenant, id, f)
	if err != nil {
		api.Fail(c, err)
		return
	}
	items := make([]any, len(p.Items))
	for i, d := range p.Items {
		items[i] = out(d)
	}
	c.JSON(http.StatusOK, gin.H{"items": items, "next": nilIfEmpty(p.NextCursor)})
}

// ListDeliveries is an endpoint's delivery log, newest first (?status=, ?cursor=, ?limit=).
func (h *Webhooks) ListDeliveries(c *gin.Context) { h.page(c, false) }

// ListDeadLetters lists an endpoint's failed and dead deliveries.
func (h *Webhooks) ListDeadLetters(c *gin.Context) { h.page(c, true) }

// GetDelivery returns one delivery with its data and every attempt.
func (h *Webhooks) GetDelivery(c *gin.Context) {
	getDelivery(c, h.api, h.engine, h.endpoint, func(d *integrations.Delivery) any { return deliveryJSON(d) })
}

// ReplayDelivery sends a failed or dead delivery again.
func (h *Webhooks) ReplayDelivery(c *gin.Context) {
	replay(c, h.api, h.engine, h.endpoint, c.Param("delivery"))
}

// ReplayDeadLetters sends every failed and dead delivery of the endpoint again.
func (h *Webhooks) ReplayDeadLetters(c *gin.Context) { replay(c, h.api, h.engine, h.endpoint, "") }

// getDelivery answers one delivery of the path's target (owner checks it is the tenant's).
func getDelivery(c *gin.Context, api *identityweb.API, engine *integrations.Engine, owner func(*gin.Context) (string, string, bool),
	out func(*integrations.Delivery) any) {
	tenant, id, ok := owner(c)
	if !ok {
		return
	}
	d, err := engine.Delivery(c.Request.Context(), tenant, id, c.Param("delivery"))
	if err != nil {
		api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out(d))
}

// replay queues one failed or dead delivery of the path's target again (all of them when
// delivery is "").
func replay(c *gin.Context, api *identityweb.API, engine *integrations.Engine, owner func(*gin.Context) (string, string, bool), delivery string) {
	tenant, id, ok := owner(c)
	if !ok {
		return
	}
	n, err := engine.Replay(c.Request.Context(), tenant, id, delivery, identityweb.ActorOf(c))
	if err != nil {
		api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"queued": n})
}
