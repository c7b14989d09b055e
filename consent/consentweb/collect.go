// Package consentweb serves consent over HTTP: the public collection API for widgets and
// apps, the server API for back-office systems, receipts, and the purpose configuration and
// ledger checks of the admin API.
package consentweb

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// Handlers serves consent's routes.
type Handlers struct {
	svc *consent.Service
	ids *identity.Service
	api *identityweb.API
}

// New returns consent's handlers.
func New(svc *consent.Service, ids *identity.Service, api *identityweb.API) *Handlers {
	return &Handlers{svc: svc, ids: ids, api: api}
}

type identifierIn struct {
	Kind      string `json:"kind" validate:"required,oneof=device customer_number email idp external"`
	Namespace string `json:"namespace" validate:"max=255"`
	Value     string `json:"value" validate:"required,max=255"`
}

// domain returns the identifier in its normalised form (an email lower-cased and in NFC).
func (i *identifierIn) domain() *identity.Identifier {
	if i == nil {
		return nil
	}
	id := identity.Identifier{Kind: i.Kind, Namespace: i.Namespace, Value: i.Value}.Normalized()
	return &id
}

type decisionIn struct {
	Purpose  string `json:"purpose" validate:"required,max=63"`
	Version  int    `json:"version" validate:"gte=0"`
	Decision string `json:"decision" validate:"required,oneof=granted denied withdrawn objected"`
	TextHash string `json:"text_hash" validate:"omitempty,len=64"`
}

func decisions(in []decisionIn) []consent.DecisionInput {
	out := make([]consent.DecisionInput, len(in))
	for i, d := range in {
		out[i] = consent.DecisionInput{Purpose: d.Purpose, Version: d.Version, Decision: d.Decision, TextHash: d.TextHash}
	}
	return out
}

// collectIn is one interaction of a widget or app.
type collectIn struct {
	Identifier *identifierIn `json:"identifier"`
	Method     string        `json:"method" validate:"required,max=40"`
	Language   string        `json:"language" validate:"omitempty,max=12"`
	UIHash     string        `json:"ui_hash" validate:"omitempty,len=64"`
	ClientTime *time.Time    `json:"client_time"`
	Decisions  []decisionIn  `json:"decisions" validate:"required,min=1,max=50,dive"`
	// GPCConfirmed says the person confirmed, in an extra step, a grant that the browser's
	// Global Privacy Control signal refuses.
	GPCConfirmed bool `json:"gpc_confirmed"`
}

// GPC reports whether the browser sends Global Privacy Control: only the exact value 1
// counts.
func GPC(c *gin.Context) bool { return c.GetHeader("Sec-GPC") == "1" }

func clientTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// MinPublicIdempotencyKey is the shortest Idempotency-Key POST /v1/consents takes. The
// collection API's keys are scoped by tenant, route and key, as every route's, but anyone
// may call it: a retry of a first decision (no device id yet) that sends the same key and
// body gets the first answer back — the new device id, a credential, and its receipt. So the
// key is that answer's only secret, and must be one nobody else can guess or happen to use
// too: a random one (the widget sends 128 random bits). A short key is refused rather than
// shared: a counter or a clock reading would hand one device's id to another.
const MinPublicIdempotencyKey = 16

// PostConsents records one interaction of a widget or app for a device (new or known) and
// answers with the device id, the new state and the signed receipt, after the commit.
func (h *Handlers) PostConsents(c *gin.Context) {
	key, ok := identityweb.IdempotencyKey(c)
	if !ok {
		return
	}
	if key != "" && len(key) < MinPublicIdempotencyKey {
		identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "invalid Idempotency-Key",
			[]identity.FieldError{{Field: identityweb.HeaderIdempotencyKey, Message: "at least " +
				strconv.Itoa(MinPublicIdempotencyKey) + " characters on this route: send a random one, such as a UUID"}})
		return
	}
	body, ok := h.api.ReadBody(c, identityweb.PublicBodyLimit)
	if !ok {
		return
	}
	var in collectIn
	if !h.api.Decode(c, body, &in) {
		return
	}
	p := identityweb.PropertyOf(c)
	req := &consent.RecordRequest{TenantID: p.TenantID, Property: p, Identifier: in.Identifier.domain(), Public: true,
		Method: in.Method, Language: in.Language, UIHash: in.UIHash, ClientTime: clientTime(in.ClientTime),
		Actor: identityweb.ActorOf(c), Decisions: decisions(in.Decisions), ClientIP: identityweb.ClientIP(c),
		UserAgent: c.GetHeader("User-Agent"), GPC: GPC(c), GPCConfirmed: in.GPCConfirmed}
	parts := [][]byte{[]byte(p.ID)}
	if person := identityweb.PersonOf(c); person != nil {
		// A verified customer token: the decisions are that person's, person-level ones too.
		// A device id sent with it is the app's device: its anonymous history joins the
		// person when the decisions are recorded (never for a request refused).
		req.Person = &consent.AuthenticatedPerson{Identifier: person.Identifier, Via: "ciam_token"}
		if id := req.Identifier; id != nil && id.Kind == identity.IDDevice {
			req.Person.Device, req.Identifier = id, nil
		}
		req.Actor = person.Actor()
		// Another person's retry with the same key and body must not get this answer.
		parts = append(parts, []byte(person.Identifier.Namespace+"\x00"+person.Identifier.Value))
	}
	if key != "" {
		req.Idempotency = &consent.IdempotencyKey{Route: c.FullPath(), Key: key,
			RequestHash: identityweb.RequestHash(append(parts, body)...)}
	}
	h.record(c, req)
}

func (h *Handlers) record(c *gin.Context, req *consent.RecordRequest) {
	out, err := h.svc.Record(c.Request.Context(), req)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	h.svc.ConfirmVerbal(c.Request.Context(), req, out)
	h.svc.SendOptInConfirmation(c.Request.Context(), req, out)
	if out.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	if req.Public && req.Person == nil {
		h.setBannerCookie(c, req.Property, out)
	}
	c.Header("Cache-Control", "no-store")
	if out.JSON != nil {
		c.Data(http.StatusCreated, "application/json; charset=utf-8", out.JSON)
		return
	}
	c.JSON(http.StatusCreated, out)
}

// setBannerCookie sets the banner's cookie from the server when Lupa is served on a
// subdomain of the site (the banner's cookie_domain covers Lupa's host): script-set cookies
// are cut to 7 days by Safari, server-set ones are not. The widget reads it, so it is not
// HttpOnly: it holds decisions and the device id, nothing else.
func (h *Handlers) setBannerCookie(c *gin.Context, p *identity.Property, out *consent.Outcome) {
	bc, err := h.svc.BannerCookie(c.Request.Context(), p, c.Request.Host, out)
	if err != nil || bc == nil {
		if err != nil {
			h.api.Log.Warn("banner cookie", "err", err)
		}
		return
	}
	secure := identityweb.HTTPS(c)
	http.SetCookie(c.Writer, &http.Cookie{Name: bc.Name, Value: url.QueryEscape(bc.Value), Domain: bc.Domain, Path: "/",
		MaxAge: bc.MaxAge, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// HeaderDeviceID carries the device id on GET /v1/consents: an id that authorises changes
// to the device's decisions is a credential and stays out of URLs and their logs.
const HeaderDeviceID = "Lupa-Device-Id"

// GetConsents returns a device's current state for the property's device-level purposes,
// or, with a verified customer token, that person's state for every purpose the property
// asks.
func (h *Handlers) GetConsents(c *gin.Context) {
	if person := identityweb.PersonOf(c); person != nil {
		if device := c.GetHeader(HeaderDeviceID); device != "" {
			if !identity.ValidDeviceID(device) {
				identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed",
					[]identity.FieldError{{Field: HeaderDeviceID, Message: "is not a device id Lupa issued"}})
				return
			}
			dev := identity.Identifier{Kind: identity.IDDevice, Value: device}
			if err := h.svc.LinkTokenDevice(c.Request.Context(), identityweb.PropertyOf(c), dev, person.Identifier, person.Actor()); err != nil {
				h.api.Fail(c, err)
				return
			}
		}
		v, err := h.svc.PersonState(c.Request.Context(), identityweb.PropertyOf(c), person.Identifier)
		if err != nil {
			h.api.Fail(c, err)
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, v)
		return
	}
	device := c.GetHeader(HeaderDeviceID)
	if device == "" {
		identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed",
			[]identity.FieldError{{Field: HeaderDeviceID, Message: "send the device id Lupa issued in the Lupa-Device-Id header"}})
		return
	}
	v, err := h.svc.DeviceState(c.Request.Context(), identityweb.PropertyOf(c), device)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, v)
}
