package identityweb

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/login"
)

// LoginProviders serves the admin routes of the tenant's login providers: the identity
// providers whose "Continue with …" buttons the sign-in and registration pages show.
type LoginProviders struct {
	svc *login.Service
	ids *identity.Service
	api *API
}

// NewLoginProviders returns the login providers' admin handlers.
func NewLoginProviders(svc *login.Service, ids *identity.Service, api *API) *LoginProviders {
	return &LoginProviders{svc: svc, ids: ids, api: api}
}

type loginProviderIn struct {
	Kind            string            `json:"kind" validate:"required,oneof=oidc facebook"`
	Label           string            `json:"label" validate:"required,max=60"`
	Labels          map[string]string `json:"labels" validate:"omitempty,max=3,dive,keys,oneof=fi sv en,endkeys,required,max=60"`
	Issuer          string            `json:"issuer" validate:"max=255"`
	ClientID        string            `json:"client_id" validate:"required,max=255"`
	ClientSecret    string            `json:"client_secret" validate:"required,max=1024"`
	Scopes          []string          `json:"scopes" validate:"omitempty,max=20,dive,required,max=100"`
	TrustedForEmail bool              `json:"trusted_for_email"`
	TokenAuthMethod string            `json:"token_auth_method" validate:"omitempty,oneof=auto client_secret_basic client_secret_post"`
}

type loginProviderPatch struct {
	Label           *string            `json:"label" validate:"omitempty,max=60"`
	Labels          *map[string]string `json:"labels" validate:"omitempty,max=3,dive,keys,oneof=fi sv en,endkeys,required,max=60"`
	Issuer          *string            `json:"issuer" validate:"omitempty,max=255"`
	ClientID        *string            `json:"client_id" validate:"omitempty,max=255"`
	ClientSecret    *string            `json:"client_secret" validate:"omitempty,max=1024"`
	Scopes          *[]string          `json:"scopes" validate:"omitempty,min=1,max=20,dive,required,max=100"`
	TrustedForEmail *bool              `json:"trusted_for_email"`
	TokenAuthMethod *string            `json:"token_auth_method" validate:"omitempty,oneof=auto client_secret_basic client_secret_post"`
}

func (in *loginProviderIn) input() login.ProviderInput {
	return login.ProviderInput{Kind: in.Kind, Label: in.Label, Labels: in.Labels, Issuer: in.Issuer, ClientID: in.ClientID,
		ClientSecret: in.ClientSecret, Scopes: in.Scopes, TrustedForEmail: in.TrustedForEmail, TokenAuthMethod: in.TokenAuthMethod}
}

// DomainCheck checks the provider and its client secret by their rules (see DomainChecker).
func (in *loginProviderIn) DomainCheck() error { return in.input().Validate() }

func (in *loginProviderPatch) patch() login.ProviderPatch {
	return login.ProviderPatch{Label: in.Label, Labels: in.Labels, Issuer: in.Issuer, ClientID: in.ClientID,
		ClientSecret: in.ClientSecret, Scopes: in.Scopes, TrustedForEmail: in.TrustedForEmail, TokenAuthMethod: in.TokenAuthMethod}
}

// DomainCheck checks the fields sent by the provider's rules (see DomainChecker). The
// rules of a kind (an OpenID Connect issuer, Facebook's fixed one) wait for the stored
// provider.
func (in *loginProviderPatch) DomainCheck() error {
	var p login.Provider
	patch := in.patch()
	patch.Apply(&p)
	return SentOnly(in, patch.Validate(&p))
}

// tenant is the API key's tenant (login providers need its slug for their callback URL).
func (h *LoginProviders) tenant(c *gin.Context) (*identity.Tenant, bool) {
	t, err := h.ids.Tenant(c.Request.Context(), TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return nil, false
	}
	return t, true
}

// ListLoginProviders lists the tenant's login providers, in the order of their buttons.
func (h *LoginProviders) ListLoginProviders(c *gin.Context) {
	t, ok := h.tenant(c)
	if !ok {
		return
	}
	list, err := h.svc.List(c.Request.Context(), t)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": list})
}

// CreateLoginProvider adds a login provider; its client secret is never shown again.
func (h *LoginProviders) CreateLoginProvider(c *gin.Context) {
	var in loginProviderIn
	if !h.api.BindBody(c, PublicBodyLimit, &in) {
		return
	}
	t, ok := h.tenant(c)
	if !ok {
		return
	}
	p, err := h.svc.Create(c.Request.Context(), t, in.input(), ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

// GetLoginProvider returns one login provider.
func (h *LoginProviders) GetLoginProvider(c *gin.Context) {
	t, ok := h.tenant(c)
	if !ok {
		return
	}
	p, err := h.svc.Get(c.Request.Context(), t, c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// PatchLoginProvider changes a login provider; client_secret replaces the secret.
func (h *LoginProviders) PatchLoginProvider(c *gin.Context) {
	var in loginProviderPatch
	if !h.api.Bind(c, PublicBodyLimit, &in) {
		return
	}
	t, ok := h.tenant(c)
	if !ok {
		return
	}
	p, err := h.svc.Update(c.Request.Context(), t, c.Param("id"), in.patch(), ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// DeleteLoginProvider removes a login provider: its button goes at once.
func (h *LoginProviders) DeleteLoginProvider(c *gin.Context) {
	t, ok := h.tenant(c)
	if !ok {
		return
	}
	if err := h.svc.Delete(c.Request.Context(), t, c.Param("id"), ActorOf(c)); err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
