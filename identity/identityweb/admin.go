package identityweb

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
)

// Admin serves the tenant's own configuration: legal details, brands, properties, API keys
// and the audit log. Every route runs behind an API key with the admin scope, and every
// query is scoped to that key's tenant, so another tenant's objects are simply not found.
type Admin struct {
	ids *identity.Service
	api *API
}

// NewAdmin returns the identity admin handlers.
func NewAdmin(ids *identity.Service, api *API) *Admin { return &Admin{ids: ids, api: api} }

type tenantPatch struct {
	Name              *string `json:"name" validate:"omitempty,max=200"`
	LegalName         *string `json:"legal_name" validate:"omitempty,max=200"`
	BusinessID        *string `json:"business_id" validate:"omitempty,max=50"`
	ContactEmail      *string `json:"contact_email" validate:"omitempty,max=254"`
	Phone             *string `json:"phone" validate:"omitempty,max=50"`
	Address           *string `json:"address" validate:"omitempty,max=500"`
	Website           *string `json:"website" validate:"omitempty,max=2048"`
	PrivacyPolicyURL  *string `json:"privacy_policy_url" validate:"omitempty,max=2048"`
	Jurisdiction      *string `json:"jurisdiction" validate:"omitempty,len=2"`
	DefaultLanguage   *string `json:"default_language" validate:"omitempty,max=12"`
	EvidenceYears     *int    `json:"evidence_years" validate:"omitempty,gte=1,lte=30"`
	KeepClientContext *bool   `json:"keep_client_context"`
	AgeOfConsent      *int    `json:"age_of_consent" validate:"omitempty,gte=0,lte=16"`
	MarketingAge      *int    `json:"marketing_age" validate:"omitempty,gte=0,lte=18"`
}

func (in *tenantPatch) patch() identity.TenantPatch {
	return identity.TenantPatch{Name: in.Name, LegalName: in.LegalName, BusinessID: in.BusinessID,
		ContactEmail: in.ContactEmail, Phone: in.Phone, Address: in.Address, Website: in.Website,
		PrivacyPolicyURL: in.PrivacyPolicyURL, Jurisdiction: in.Jurisdiction, DefaultLanguage: in.DefaultLanguage,
		EvidenceYears: in.EvidenceYears, KeepClientContext: in.KeepClientContext, AgeOfConsent: in.AgeOfConsent,
		MarketingAge: in.MarketingAge}
}

// DomainCheck checks the fields sent by the tenant's rules (see DomainChecker).
func (in *tenantPatch) DomainCheck() error {
	var t identity.Tenant
	in.patch().Apply(&t)
	return SentOnly(in, t.Validate())
}

// GetTenant returns the tenant's legal details and settings.
func (a *Admin) GetTenant(c *gin.Context) {
	t, err := a.ids.Tenant(c.Request.Context(), TenantOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

// PatchTenant changes the tenant's legal details and settings.
func (a *Admin) PatchTenant(c *gin.Context) {
	var in tenantPatch
	if !a.api.Bind(c, PublicBodyLimit, &in) {
		return
	}
	t, err := a.ids.UpdateTenant(c.Request.Context(), TenantOf(c), in.patch(), ActorOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

type brandIn struct {
	Name         string `json:"name" validate:"required,max=200"`
	LegalName    string `json:"legal_name" validate:"required,max=200"`
	BusinessID   string `json:"business_id" validate:"max=50"`
	ContactEmail string `json:"contact_email" validate:"max=254"`
	Address      string `json:"address" validate:"max=500"`
	Website      string `json:"website" validate:"max=2048"`
}

type brandPatch struct {
	Name         *string `json:"name" validate:"omitempty,max=200"`
	LegalName    *string `json:"legal_name" validate:"omitempty,max=200"`
	BusinessID   *string `json:"business_id" validate:"omitempty,max=50"`
	ContactEmail *string `json:"contact_email" validate:"omitempty,max=254"`
	Address      *string `json:"address" validate:"omitempty,max=500"`
	Website      *string `json:"website" validate:"omitempty,max=2048"`
}

func (in *brandIn) brand(tenantID string) identity.Brand {
	return identity.Brand{TenantID: tenantID, Name: in.Name, LegalName: in.LegalName, BusinessID: in.BusinessID,
		ContactEmail: in.ContactEmail, Address: in.Address, Website: in.Website}
}

// DomainCheck checks the brand by its rules (see DomainChecker).
func (in *brandIn) DomainCheck() error {
	b := in.brand("")
	return b.Validate()
}

func (in *brandPatch) patch() identity.BrandPatch {
	return identity.BrandPatch{Name: in.Name, LegalName: in.LegalName, BusinessID: in.BusinessID,
		ContactEmail: in.ContactEmail, Address: in.Address, Website: in.Website}
}

// DomainCheck checks the fields sent by the brand's rules (see DomainChecker).
func (in *brandPatch) DomainCheck() error {
	var b identity.Brand
	in.patch().Apply(&b)
	return SentOnly(in, b.Validate())
}

// ListBrands lists the tenant's brands.
func (a *Admin) ListBrands(c *gin.Context) {
	bs, err := a.ids.Brands(c.Request.Context(), TenantOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": bs})
}

// CreateBrand adds a brand.
func (a *Admin) CreateBrand(c *gin.Context) {
	var in brandIn
	if !a.api.BindBody(c, PublicBodyLimit, &in) {
		return
	}
	b, err := a.ids.CreateBrand(c.Request.Context(), in.brand(TenantOf(c)), ActorOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, b)
}

// GetBrand returns one brand.
func (a *Admin) GetBrand(c *gin.Context) {
	b, err := a.ids.Brand(c.Request.Context(), TenantOf(c), c.Param("id"))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

// PatchBrand changes a brand.
func (a *Admin) PatchBrand(c *gin.Context) {
	var in brandPatch
	if !a.api.Bind(c, PublicBodyLimit, &in) {
		return
	}
	b, err := a.ids.UpdateBrand(c.Request.Context(), TenantOf(c), c.Param("id"), in.patch(), ActorOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

type propertyIn struct {
	Name            string   `json:"name" validate:"required,max=200"`
	BrandID         string   `json:"brand_id" validate:"required,max=64"`
	Kind            string   `json:"kind" validate:"required,oneof=web app store call_centre kiosk"`
	AllowedOrigins  []string `json:"allowed_origins" validate:"max=50,dive,max=300"`
	DefaultLanguage string   `json:"default_language" validate:"max=12"`
}

type propertyPatch struct {
	Name            *string   `json:"name" validate:"omitempty,max=200"`
	BrandID         *string   `json:"brand_id" validate:"omitempty,max=64"`
	AllowedOrigins  *[]string `json:"allowed_origins" validate:"omitempty,max=50,dive,max=300"`
	DefaultLanguage *string   `json:"default_language" validate:"omitempty,max=12"`
	Status          *string   `json:"status" validate:"omitempty,oneof=active archived"`
}

func (in *propertyIn) property(tenantID string) identity.Property {
	p := identity.Property{TenantID: tenantID, Name: in.Name, BrandID: in.BrandID, Kind: in.Kind,
		AllowedOrigins: in.AllowedOrigins, DefaultLanguage: in.DefaultLanguage}
	if p.DefaultLanguage == "" {
		p.DefaultLanguage = "fi"
	}
	return p
}

// DomainCheck checks the property by its rules (see DomainChecker).
func (in *propertyIn) DomainCheck() error {
	p := in.property("")
	return p.ValidateNew()
}

func (in *propertyPatch) patch() identity.PropertyPatch {
	return identity.PropertyPatch{Name: in.Name, BrandID: in.BrandID, AllowedOrigins: in.AllowedOrigins,
		DefaultLanguage: in.DefaultLanguage, Status: in.Status}
}

// DomainCheck checks the fields sent by the property's rules (see DomainChecker). Whether
// the origins suit the kind, and whether the brand exists, wait for the stored property.
func (in *propertyPatch) DomainCheck() error {
	var p identity.Property
	in.patch().Apply(&p)
	return SentOnly(in, p.Validate())
}

// ListProperties lists the tenant's properties.
func (a *Admin) ListProperties(c *gin.Context) {
	ps, err := a.ids.Properties(c.Request.Context(), TenantOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": ps})
}

// CreateProperty adds a property and issues its public key.
func (a *Admin) CreateProperty(c *gin.Context) {
	var in propertyIn
	if !a.api.BindBody(c, PublicBodyLimit, &in) {
		return
	}
	p, err := a.ids.CreateProperty(c.Request.Context(), in.property(TenantOf(c)), ActorOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

// GetProperty returns one property.
func (a *Admin) GetProperty(c *gin.Context) {
	p, err := a.ids.Property(c.Request.Context(), TenantOf(c), c.Param("id"))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// PatchProperty changes a property.
func (a *Admin) PatchProperty(c *gin.Context) {
	var in propertyPatch
	if !a.api.Bind(c, PublicBodyLimit, &in) {
		return
	}
	p, err := a.ids.UpdateProperty(c.Request.Context(), TenantOf(c), c.Param("id"), in.patch(), ActorOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

type apiKeyIn struct {
	Name   string   `json:"name" validate:"required,max=100"`
	Scopes []string `json:"scopes" validate:"required,min=1,max=3,dive,oneof=admin consent:read consent:write"`
}

// DomainCheck checks the key's name and scopes as the service does (see DomainChecker).
func (in *apiKeyIn) DomainCheck() error { return identity.ValidateAPIKey(in.Name, in.Scopes) }

// createdKey shows a new key with its secret, the only time the secret is shown.
type createdKey struct {
	*identity.APIKey
	Secret string `json:"secret"`
}

// ListAPIKeys lists the tenant's keys (never their secrets).
func (a *Admin) ListAPIKeys(c *gin.Context) {
	ks, err := a.ids.APIKeys(c.Request.Context(), TenantOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": ks})
}

// CreateAPIKey issues a key and shows its secret once.
func (a *Admin) CreateAPIKey(c *gin.Context) {
	var in apiKeyIn
	if !a.api.BindBody(c, PublicBodyLimit, &in) {
		return
	}
	k, secret, err := a.ids.CreateAPIKey(c.Request.Context(), TenantOf(c), in.Name, in.Scopes, ActorOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, createdKey{APIKey: k, Secret: secret})
}

// RevokeAPIKey revokes a key at once on this instance, within seconds on the others.
func (a *Admin) RevokeAPIKey(c *gin.Context) {
	k, err := a.ids.RevokeAPIKey(c.Request.Context(), TenantOf(c), c.Param("id"), ActorOf(c))
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, k)
}

// Audit lists the audit log, newest first: ?object_type, ?object_id, ?action, ?before, ?limit.
func (a *Admin) Audit(c *gin.Context) {
	before, ok := QueryID(c, "before")
	if !ok {
		return
	}
	f := identity.AuditFilter{ObjectType: c.Query("object_type"), ObjectID: c.Query("object_id"),
		Action: c.Query("action"), Before: before}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed",
				[]identity.FieldError{{Field: "limit", Message: "must be an integer from 1 to 500"}})
			return
		}
		f.Limit = n
	}
	entries, next, err := a.ids.Audit(c.Request.Context(), TenantOf(c), f)
	if err != nil {
		a.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": entries, "next": next})
}
