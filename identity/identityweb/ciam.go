package identityweb

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam"
)

// CIAM serves the company's identity provider: the admin routes of its issuers, the
// bearer-token authentication of the collection API, and the inbound identity events.
type CIAM struct {
	svc *ciam.Service
	api *API
}

// NewCIAM returns the CIAM handlers.
func NewCIAM(svc *ciam.Service, api *API) *CIAM { return &CIAM{svc: svc, api: api} }

const contextPerson = "lupa.person"

// PersonOf returns the person a verified bearer token named, or nil.
func PersonOf(c *gin.Context) *ciam.Person {
	p, _ := c.Get(contextPerson)
	person, _ := p.(*ciam.Person)
	return person
}

// bearerKinds are the property kinds that take a customer's access token: apps, and web
// sites whose pages hold one (single-page apps signed in through the CIAM). Stores, call
// centres and kiosks are staff-operated or shared devices: a customer's token has no place
// there.
var bearerKinds = []string{identity.PropertyApp, identity.PropertyWeb}

// Bearer authenticates a collection request by the customer's access token
// (Authorization: Bearer <JWT>), after Property has authenticated the property. Without
// the header the request stays an anonymous device's. A token that does not verify is 401
// with a generic detail and WWW-Authenticate error="invalid_token"; the token never appears
// in an answer or a log.
func (h *CIAM) Bearer() gin.HandlerFunc {
	return func(c *gin.Context) {
		header := c.GetHeader("Authorization")
		if header == "" {
			c.Next()
			return
		}
		p := PropertyOf(c)
		scheme, token, ok := strings.Cut(header, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			invalidToken(c)
			return
		}
		if p == nil || !slices.Contains(bearerKinds, p.Kind) {
			WriteProblem(c, http.StatusForbidden, identity.EForbidden, "Forbidden",
				"customer tokens are taken on app and web properties only", nil)
			return
		}
		person, err := h.svc.VerifyToken(c.Request.Context(), p.TenantID, token)
		if identity.IsCode(err, identity.EUnauthorized) {
			h.api.Log.DebugContext(c.Request.Context(), "bearer token refused", "err", err)
			invalidToken(c)
			return
		}
		if err != nil {
			h.api.Fail(c, err)
			return
		}
		c.Set(contextPerson, person)
		c.Next()
	}
}

func invalidToken(c *gin.Context) {
	c.Header("WWW-Authenticate", `Bearer realm="lupa", error="invalid_token"`)
	WriteProblem(c, http.StatusUnauthorized, identity.EUnauthorized, "Unauthorized",
		"the bearer token is not valid: check its issuer, audience, lifetime and signature", nil)
}

// ---- admin ----

type issuerIn struct {
	Name             string   `json:"name" validate:"required,max=200"`
	Issuer           string   `json:"issuer" validate:"required,max=255"`
	Audiences        []string `json:"audiences" validate:"required,min=1,max=10,dive,max=255"`
	JWKSURL          string   `json:"jwks_url" validate:"max=255"`
	Algorithms       []string `json:"algorithms" validate:"max=10,dive,oneof=RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA"`
	ClockSkewSeconds *int     `json:"clock_skew_seconds" validate:"omitempty,gte=0,lte=300"`
	TrustedForEmail  bool     `json:"trusted_for_email"`
}

type issuerPatch struct {
	Name                *string   `json:"name" validate:"omitempty,max=200"`
	Issuer              *string   `json:"issuer" validate:"omitempty,max=255"`
	Audiences           *[]string `json:"audiences" validate:"omitempty,min=1,max=10,dive,max=255"`
	JWKSURL             *string   `json:"jwks_url" validate:"omitempty,max=255"`
	Algorithms          *[]string `json:"algorithms" validate:"omitempty,min=1,max=10,dive,oneof=RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA"`
	ClockSkewSeconds    *int      `json:"clock_skew_seconds" validate:"omitempty,gte=0,lte=300"`
	TrustedForEmail     *bool     `json:"trusted_for_email"`
	RotateWebhookSecret bool      `json:"rotate_webhook_secret"`
}

func (in *issuerIn) input() ciam.IssuerInput {
	return ciam.IssuerInput{Name: in.Name, Issuer: in.Issuer, Audiences: in.Audiences, JWKSURL: in.JWKSURL,
		Algorithms: in.Algorithms, ClockSkewSeconds: in.ClockSkewSeconds, TrustedForEmail: in.TrustedForEmail}
}

// DomainCheck checks the issuer by its rules (see DomainChecker).
func (in *issuerIn) DomainCheck() error { return in.input().Validate() }

func (in *issuerPatch) patch() ciam.IssuerPatch {
	return ciam.IssuerPatch{Name: in.Name, Issuer: in.Issuer, Audiences: in.Audiences, JWKSURL: in.JWKSURL,
		Algorithms: in.Algorithms, ClockSkewSeconds: in.ClockSkewSeconds, TrustedForEmail: in.TrustedForEmail,
		RotateWebhookSecret: in.RotateWebhookSecret}
}

// DomainCheck checks the fields sent by the issuer's rules (see DomainChecker).
func (in *issuerPatch) DomainCheck() error {
	var i ciam.Issuer
	in.patch().Apply(&i)
	return SentOnly(in, i.Validate())
}

// issuerWithSecret shows an issuer with its new webhook secret, the only time it is shown.
type issuerWithSecret struct {
	*ciam.Issuer
	WebhookSecret string `json:"webhook_secret"`
}

// ListIssuers lists the tenant's CIAM issuers.
func (h *CIAM) ListIssuers(c *gin.Context) {
	list, err := h.svc.List(c.Request.Context(), TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": list})
}

// CreateIssuer adds an issuer and shows its webhook secret once.
func (h *CIAM) CreateIssuer(c *gin.Context) {
	var in issuerIn
	if !h.api.BindBody(c, PublicBodyLimit, &in) {
		return
	}
	i, secret, err := h.svc.Create(c.Request.Context(), TenantOf(c), in.input(), ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, issuerWithSecret{Issuer: i, WebhookSecret: secret})
}

// GetIssuer returns one issuer (never its secret).
func (h *CIAM) GetIssuer(c *gin.Context) {
	i, err := h.svc.Get(c.Request.Context(), TenantOf(c), c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, i)
}

// PatchIssuer changes an issuer; with rotate_webhook_secret it shows the new secret once.
func (h *CIAM) PatchIssuer(c *gin.Context) {
	var in issuerPatch
	if !h.api.Bind(c, PublicBodyLimit, &in) {
		return
	}
	i, secret, err := h.svc.Update(c.Request.Context(), TenantOf(c), c.Param("id"), in.patch(), ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	if secret != "" {
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, issuerWithSecret{Issuer: i, WebhookSecret: secret})
		return
	}
	c.JSON(http.StatusOK, i)
}

// DeleteIssuer removes an issuer: its tokens and events are refused from then on.
func (h *CIAM) DeleteIssuer(c *gin.Context) {
	if err := h.svc.Delete(c.Request.Context(), TenantOf(c), c.Param("id"), ActorOf(c)); err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- identity events ----

// IdentityEvent receives an identity event from the CIAM, authenticated by its Standard
// Webhooks signature with the issuer's secret (the issuer is named in the path; its tenant
// follows from it). The same webhook-id again gets the first answer, with
// Idempotent-Replayed: true.
func (h *CIAM) IdentityEvent(c *gin.Context) {
	body, ok := h.api.ReadBody(c, PublicBodyLimit)
	if !ok {
		return
	}
	res, err := h.svc.HandleEvent(c.Request.Context(), c.Param("issuerId"), ciam.WebhookRequest{
		ID: c.GetHeader("webhook-id"), Timestamp: c.GetHeader("webhook-timestamp"),
		Signature: c.GetHeader("webhook-signature"), Body: body})
	if err != nil {
		switch identity.ErrorCode(err) {
		case identity.EUnauthorized:
			c.Header("WWW-Authenticate", `Webhook realm="lupa"`) // Standard Webhooks signature
		case identity.EConflict:
			c.Header("Retry-After", "5")
		}
		h.api.Fail(c, err)
		return
	}
	if res.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Cache-Control", "no-store")
	c.Data(res.Status, "application/json; charset=utf-8", res.Body)
}
