package integrationsweb

// The connectors' admin API: connectors to Mailchimp, HubSpot and Klaviyo, their per-event
// sync status, dead letters and replays, and a reconcile on demand.

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/connector"
)

// Connectors serves the connectors' admin routes.
type Connectors struct {
	svc       *connector.Service
	engine    *integrations.Engine
	api       *identityweb.API
	publicURL string
}

// NewConnectors returns the handlers. publicURL is Lupa's public URL, the base of the
// inbound webhook URLs the vendors are given.
func NewConnectors(svc *connector.Service, engine *integrations.Engine, api *identityweb.API, publicURL string) *Connectors {
	return &Connectors{svc: svc, engine: engine, api: api, publicURL: publicURL}
}

type mappingIn struct {
	Purpose              string   `json:"purpose" validate:"required,max=63"`
	ListID               string   `json:"list_id" validate:"max=64"`
	MarketingPermissions []string `json:"marketing_permissions" validate:"omitempty,max=10,dive,required,max=64"`
	SubscriptionID       int64    `json:"subscription_id" validate:"min=0"`
}

type credentialsIn struct {
	APIKey       string `json:"api_key" validate:"max=512"`
	AccessToken  string `json:"access_token" validate:"max=512"`
	ClientSecret string `json:"client_secret" validate:"max=512"`
}

type connectorIn struct {
	Vendor        string        `json:"vendor" validate:"required,oneof=mailchimp hubspot klaviyo"`
	Name          string        `json:"name" validate:"required,max=100"`
	Description   string        `json:"description" validate:"max=500"`
	RecipientKind string        `json:"recipient_kind" validate:"required,oneof=processor third_party"`
	RecipientID   string        `json:"recipient_id" validate:"max=64"`
	Mappings      []mappingIn   `json:"mappings" validate:"required,min=1,max=50,dive"`
	Credentials   credentialsIn `json:"credentials"`
	BaseURL       string        `json:"base_url" validate:"max=512"`
	// allowBaseURL is the service's setting, which DomainCheck needs (never JSON).
	allowBaseURL bool
}

type connectorPatch struct {
	Name          *string        `json:"name" validate:"omitempty,max=100"`
	Description   *string        `json:"description" validate:"omitempty,max=500"`
	RecipientKind *string        `json:"recipient_kind" validate:"omitempty,oneof=processor third_party"`
	RecipientID   *string        `json:"recipient_id" validate:"omitempty,max=64"`
	Mappings      *[]mappingIn   `json:"mappings" validate:"omitempty,min=1,max=50,dive"`
	Credentials   *credentialsIn `json:"credentials"`
	BaseURL       *string        `json:"base_url" validate:"omitempty,max=512"`
	allowBaseURL  bool           // as connectorIn's
}

func (in *connectorIn) input() connector.Input {
	return connector.Input{Vendor: in.Vendor, Name: in.Name, Description: in.Description, RecipientKind: in.RecipientKind,
		RecipientID: in.RecipientID, Mappings: mappings(in.Mappings), Credentials: credentials(in.Credentials), BaseURL: in.BaseURL}
}

// DomainCheck checks the connector and its credentials by their rules (see
// identityweb.DomainChecker).
func (in *connectorIn) DomainCheck() error { return in.input().Validate(in.allowBaseURL) }

func (in *connectorPatch) patch() connector.Patch {
	p := connector.Patch{Name: in.Name, Description: in.Description, RecipientKind: in.RecipientKind, RecipientID: in.RecipientID,
		BaseURL: in.BaseURL}
	if in.Mappings != nil {
		m := mappings(*in.Mappings)
		p.Mappings = &m
	}
	if in.Credentials != nil {
		cr := credentials(*in.Credentials)
		p.Credentials = &cr
	}
	return p
}

// DomainCheck checks the fields sent by the connector's rules (see
// identityweb.DomainChecker). The rules of a vendor (a Mailchimp audience, HubSpot's
// access token) wait for the stored connector, as does the catalog's recipient.
func (in *connectorPatch) DomainCheck() error {
	var c connector.Connector
	p := in.patch()
	p.Apply(&c)
	return identityweb.SentOnly(in, p.Validate(&c, in.allowBaseURL))
}

type mappingOut struct {
	Purpose              string   `json:"purpose"`
	ListID               *string  `json:"list_id"`
	MarketingPermissions []string `json:"marketing_permissions"`
	SubscriptionID       *int64   `json:"subscription_id"`
}

type connectorOut struct {
	ID             string       `json:"id"`
	Vendor         string       `json:"vendor"`
	Name           string       `json:"name"`
	Description    string       `json:"description"`
	RecipientKind  string       `json:"recipient_kind"`
	RecipientID    *string      `json:"recipient_id"`
	Mappings       []mappingOut `json:"mappings"`
	BaseURL        *string      `json:"base_url"`
	Status         string       `json:"status"`
	DisabledReason *string      `json:"disabled_reason"`
	ReconciledAt   *time.Time   `json:"reconciled_at"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
	// InboundURL is where the vendor's webhooks go: shown on create (Mailchimp's holds a
	// secret) and always for HubSpot (its calls are signed instead).
	InboundURL *string `json:"inbound_url"`
}

func (h *Connectors) connectorJSON(c *connector.Connector, inboundPath string) connectorOut {
	o := connectorOut{ID: c.ID, Vendor: c.Vendor, Name: c.Name, Description: c.Description, RecipientKind: c.RecipientKind,
		RecipientID: nilIfEmpty(c.RecipientID), BaseURL: nilIfEmpty(c.BaseURL), Status: c.Status,
		DisabledReason: nilIfEmpty(c.DisabledReason), ReconciledAt: c.ReconciledAt, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Mappings: make([]mappingOut, len(c.Mappings))}
	for i, m := range c.Mappings {
		mo := mappingOut{Purpose: m.Purpose, ListID: nilIfEmpty(m.ListID), MarketingPermissions: m.MarketingPermissions}
		if mo.MarketingPermissions == nil {
			mo.MarketingPermissions = []string{}
		}
		if m.SubscriptionID > 0 {
			id := m.SubscriptionID
			mo.SubscriptionID = &id
		}
		o.Mappings[i] = mo
	}
	if inboundPath == "" && c.Vendor == connector.HubSpot {
		inboundPath = connector.InboundPath(c, "")
	}
	if inboundPath != "" {
		u := h.publicURL + inboundPath
		o.InboundURL = &u
	}
	return o
}

func mappings(in []mappingIn) []connector.Mapping {
	out := make([]connector.Mapping, len(in))
	for i, m := range in {
		out[i] = connector.Mapping{Purpose: m.Purpose, ListID: m.ListID, MarketingPermissions: m.MarketingPermissions, SubscriptionID: m.SubscriptionID}
	}
	return out
}

func credentials(in credentialsIn) connector.Credentials {
	return connector.Credentials{APIKey: in.APIKey, AccessToken: in.AccessToken, ClientSecret: in.ClientSecret}
}

// ListConnectors lists the tenant's connectors (never their credentials).
func (h *Connectors) ListConnectors(c *gin.Context) {
	list, err := h.svc.List(c.Request.Context(), identityweb.TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	items := make([]connectorOut, len(list))
	for i, x := range list {
		items[i] = h.connectorJSON(x, "")
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// CreateConnector adds a connector; the answer holds its inbound URL, with Mailchimp's secret, this once.
func (h *Connectors) CreateConnector(c *gin.Context) {
	in := connectorIn{allowBaseURL: h.svc.AllowBaseURL()}
	if !h.api.BindBody(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	x, err := h.svc.Create(c.Request.Context(), identityweb.TenantOf(c), in.input(), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, h.connectorJSON(x.Connector, x.InboundPath))
}

// GetConnector returns one connector.
func (h *Connectors) GetConnector(c *gin.Context) {
	x, err := h.svc.Get(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, h.connectorJSON(x, ""))
}

// PatchConnector changes the fields sent; credentials sent replace the old ones whole.
func (h *Connectors) PatchConnector(c *gin.Context) {
	in := connectorPatch{allowBaseURL: h.svc.AllowBaseURL()}
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	x, err := h.svc.Update(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), in.patch(), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, h.connectorJSON(x, ""))
}

// DeleteConnector removes a connector with its deliveries.
func (h *Connectors) DeleteConnector(c *gin.Context) {
	if err := h.svc.Delete(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), identityweb.ActorOf(c)); err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *Connectors) setStatus(c *gin.Context, status string) {
	x, err := h.svc.SetStatus(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), status, "disabled by an admin", identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	if status == connector.StatusEnabled {
		h.engine.Wake()
	}
	c.JSON(http.StatusOK, h.connectorJSON(x, ""))
}

// DisableConnector stops syncing; the changes wait.
func (h *Connectors) DisableConnector(c *gin.Context) { h.setStatus(c, connector.StatusDisabled) }

// EnableConnector syncs again, the waiting changes first.
func (h *Connectors) EnableConnector(c *gin.Context) { h.setStatus(c, connector.StatusEnabled) }

// RotateInboundSecret gives a Mailchimp connector a new inbound URL (shown this once).
func (h *Connectors) RotateInboundSecret(c *gin.Context) {
	x, err := h.svc.RotateInboundSecret(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, h.connectorJSON(x.Connector, x.InboundPath))
}

// ReconcileConnector reads unsubscribes back from the vendor now; the service audits the run.
func (h *Connectors) ReconcileConnector(c *gin.Context) {
	n, err := h.svc.Reconcile(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"recorded": n})
}

func (h *Connectors) owner(c *gin.Context) (string, string, bool) {
	tenant := identityweb.TenantOf(c)
	if _, err := h.svc.Get(c.Request.Context(), tenant, c.Param("id")); err != nil {
		h.api.Fail(c, err)
		return "", "", false
	}
	return tenant, c.Param("id"), true
}

// syncOut is a delivery with the connector's word for its outcome.
type syncOut struct {
	deliveryOut
	// SyncStatus is synced, superseded, skipped (last_error says why), failed (last_error
	// says what the vendor answered) or pending.
	SyncStatus string `json:"sync_status"`
}

func syncJSON(d *integrations.Delivery) any {
	s := d.Status
	switch d.Status {
	case integrations.StatusDelivered:
		s = "synced"
	case integrations.StatusDead:
		s = "failed"
	}
	return syncOut{deliveryOut: deliveryJSON(d), SyncStatus: s}
}

// ListSyncs is the connector's per-event sync log, newest first (?status=, ?cursor=, ?limit=).
func (h *Connectors) ListSyncs(c *gin.Context) {
	deliveryPage(c, h.api, h.engine, h.owner, false, syncJSON)
}

// ListDeadLetters lists the connector's failed syncs.
func (h *Connectors) ListDeadLetters(c *gin.Context) {
	deliveryPage(c, h.api, h.engine, h.owner, true, syncJSON)
}

// GetSync returns one sync with its data and every attempt.
func (h *Connectors) GetSync(c *gin.Context) { getDelivery(c, h.api, h.engine, h.owner, syncJSON) }

// ReplaySync tries a failed sync again (unless a newer change has been synced since).
func (h *Connectors) ReplaySync(c *gin.Context) {
	replay(c, h.api, h.engine, h.owner, c.Param("delivery"))
}

// ReplayDeadLetters tries every failed sync again.
func (h *Connectors) ReplayDeadLetters(c *gin.Context) { replay(c, h.api, h.engine, h.owner, "") }
