package consentweb

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

type recipientIn struct {
	Name             string `json:"name" validate:"required,max=200"`
	LegalName        string `json:"legal_name" validate:"required,max=200"`
	Kind             string `json:"kind" validate:"required,oneof=partner brand processor"`
	Country          string `json:"country" validate:"omitempty,len=2"`
	PrivacyPolicyURL string `json:"privacy_policy_url" validate:"max=2048"`
	BrandID          string `json:"brand_id" validate:"max=64"`
}

type recipientPatch struct {
	Name             *string `json:"name" validate:"omitempty,max=200"`
	LegalName        *string `json:"legal_name" validate:"omitempty,max=200"`
	Kind             *string `json:"kind" validate:"omitempty,oneof=partner brand processor"`
	Country          *string `json:"country" validate:"omitempty,len=2"`
	PrivacyPolicyURL *string `json:"privacy_policy_url" validate:"omitempty,max=2048"`
	BrandID          *string `json:"brand_id" validate:"omitempty,max=64"`
}

func (in *recipientIn) recipient(tenantID string) consent.Recipient {
	return consent.Recipient{TenantID: tenantID, Name: in.Name, LegalName: in.LegalName, Kind: in.Kind,
		Country: in.Country, PrivacyPolicyURL: in.PrivacyPolicyURL, BrandID: in.BrandID}
}

// DomainCheck checks the recipient by its rules (see identityweb.DomainChecker).
func (in *recipientIn) DomainCheck() error {
	r := in.recipient("")
	return r.Validate()
}

func (in *recipientPatch) patch() consent.RecipientPatch {
	return consent.RecipientPatch{Name: in.Name, LegalName: in.LegalName, Kind: in.Kind, Country: in.Country,
		PrivacyPolicyURL: in.PrivacyPolicyURL, BrandID: in.BrandID}
}

// DomainCheck checks the fields sent by the recipient's rules (see
// identityweb.DomainChecker). Whether the brand exists waits for the service.
func (in *recipientPatch) DomainCheck() error {
	var r consent.Recipient
	in.patch().Apply(&r)
	return identityweb.SentOnly(in, r.Validate())
}

// ListRecipients lists the tenant's recipients.
func (h *Handlers) ListRecipients(c *gin.Context) {
	rs, err := h.svc.Recipients(c.Request.Context(), identityweb.TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": rs})
}

// CreateRecipient adds a recipient.
func (h *Handlers) CreateRecipient(c *gin.Context) {
	var in recipientIn
	if !h.api.BindBody(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	r, err := h.svc.CreateRecipient(c.Request.Context(), in.recipient(identityweb.TenantOf(c)), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, r)
}

// GetRecipient returns one recipient.
func (h *Handlers) GetRecipient(c *gin.Context) {
	r, err := h.svc.Recipient(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// PatchRecipient changes a recipient.
func (h *Handlers) PatchRecipient(c *gin.Context) {
	var in recipientPatch
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	r, err := h.svc.UpdateRecipient(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"), in.patch(), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

type purposeIn struct {
	Key              string   `json:"key" validate:"required,max=63"`
	Level            string   `json:"level" validate:"required,oneof=device person"`
	LegalBasis       string   `json:"legal_basis" validate:"required,oneof=consent legitimate_interest necessary"`
	DPVPurpose       string   `json:"dpv_purpose" validate:"max=300"`
	RecipientIDs     []string `json:"recipient_ids" validate:"max=100,dive,max=64"`
	ReaskMonths      int      `json:"reask_months" validate:"gte=0,lte=60"`
	ScopeBrandIDs    []string `json:"scope_brand_ids" validate:"max=100,dive,max=64"`
	ScopePropertyIDs []string `json:"scope_property_ids" validate:"max=100,dive,max=64"`
	GPCOptOut        bool     `json:"gpc_opt_out"`
	DoubleOptIn      bool     `json:"double_opt_in"`
}

type purposePatch struct {
	Level            *string   `json:"level" validate:"omitempty,oneof=device person"`
	LegalBasis       *string   `json:"legal_basis" validate:"omitempty,oneof=consent legitimate_interest necessary"`
	DPVPurpose       *string   `json:"dpv_purpose" validate:"omitempty,max=300"`
	RecipientIDs     *[]string `json:"recipient_ids" validate:"omitempty,max=100,dive,max=64"`
	ReaskMonths      *int      `json:"reask_months" validate:"omitempty,gte=1,lte=60"`
	ScopeBrandIDs    *[]string `json:"scope_brand_ids" validate:"omitempty,max=100,dive,max=64"`
	ScopePropertyIDs *[]string `json:"scope_property_ids" validate:"omitempty,max=100,dive,max=64"`
	GPCOptOut        *bool     `json:"gpc_opt_out"`
	DoubleOptIn      *bool     `json:"double_opt_in"`
}

func (in *purposeIn) purpose(tenantID string) consent.Purpose {
	return consent.Purpose{TenantID: tenantID, Key: in.Key, Level: in.Level, LegalBasis: in.LegalBasis,
		DPVPurpose: in.DPVPurpose, RecipientIDs: in.RecipientIDs, ReaskMonths: in.ReaskMonths,
		ScopeBrandIDs: in.ScopeBrandIDs, ScopePropertyIDs: in.ScopePropertyIDs, GPCOptOut: in.GPCOptOut,
		DoubleOptIn: in.DoubleOptIn}
}

// DomainCheck checks the purpose by its rules (see identityweb.DomainChecker).
func (in *purposeIn) DomainCheck() error {
	p := in.purpose("")
	return p.ValidateNew()
}

func (in *purposePatch) patch() consent.PurposePatch {
	return consent.PurposePatch{Level: in.Level, LegalBasis: in.LegalBasis, DPVPurpose: in.DPVPurpose,
		RecipientIDs: in.RecipientIDs, ScopeBrandIDs: in.ScopeBrandIDs, ScopePropertyIDs: in.ScopePropertyIDs,
		ReaskMonths: in.ReaskMonths, GPCOptOut: in.GPCOptOut, DoubleOptIn: in.DoubleOptIn}
}

// DomainCheck checks the fields sent by the purpose's rules (see identityweb.DomainChecker).
// A rule between a field sent and one left alone (double opt-in on a stored legitimate
// interest), a level or basis changed after publication, and ids that name nothing wait for
// the service.
func (in *purposePatch) DomainCheck() error {
	var p consent.Purpose
	in.patch().Apply(&p)
	return identityweb.SentOnly(in, p.Validate())
}

// ListPurposes lists the tenant's purposes.
func (h *Handlers) ListPurposes(c *gin.Context) {
	ps, err := h.svc.Purposes(c.Request.Context(), identityweb.TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": ps})
}

// CreatePurpose adds a purpose; it is asked once a version is published.
func (h *Handlers) CreatePurpose(c *gin.Context) {
	var in purposeIn
	if !h.api.BindBody(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	p, err := h.svc.CreatePurpose(c.Request.Context(), in.purpose(identityweb.TenantOf(c)), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

// GetPurpose returns a purpose by id or key.
func (h *Handlers) GetPurpose(c *gin.Context) {
	p, err := h.svc.Purpose(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// PatchPurpose changes a purpose.
func (h *Handlers) PatchPurpose(c *gin.Context) {
	var in purposePatch
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	p, err := h.svc.UpdatePurpose(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"), in.patch(), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

type textIn struct {
	Title       string `json:"title" validate:"required,max=200"`
	Description string `json:"description" validate:"required,max=5000"`
	PolicyURL   string `json:"policy_url" validate:"max=2048"`
}

type detailsIn struct {
	DataCategories []string `json:"data_categories" validate:"max=50,dive,max=200"`
	Retention      string   `json:"retention" validate:"max=1000"`
	Transfers      string   `json:"transfers" validate:"max=1000"`
}

type versionIn struct {
	Material *bool             `json:"material"`
	Texts    map[string]textIn `json:"texts" validate:"required,min=1,max=30,dive,keys,max=12,endkeys"`
	Details  *detailsIn        `json:"details"`
}

type versionPatch struct {
	Material *bool             `json:"material"`
	Texts    map[string]textIn `json:"texts" validate:"omitempty,min=1,max=30,dive,keys,max=12,endkeys"`
	Details  *detailsIn        `json:"details"`
}

func versionInput(material *bool, texts map[string]textIn, d *detailsIn) consent.VersionInput {
	in := consent.VersionInput{Material: material}
	if texts != nil {
		in.Texts = make(map[string]consent.Text, len(texts))
		for lang, t := range texts {
			in.Texts[lang] = consent.Text{Title: t.Title, Description: t.Description, PolicyURL: t.PolicyURL}
		}
	}
	if d != nil {
		in.Details = &consent.VersionDetails{DataCategories: d.DataCategories, Retention: d.Retention, Transfers: d.Transfers}
	}
	return in
}

// DomainCheck checks the draft by the version's rules (see identityweb.DomainChecker).
// Whether the purpose exists, and has no draft already, waits for the service.
func (in *versionIn) DomainCheck() error {
	v := consent.Version{Material: true}
	versionInput(in.Material, in.Texts, in.Details).Apply(&v)
	return v.Validate()
}

// DomainCheck checks the fields sent by the version's rules (see
// identityweb.DomainChecker): texts and details sent replace the draft's whole.
func (in *versionPatch) DomainCheck() error {
	var v consent.Version
	versionInput(in.Material, in.Texts, in.Details).Apply(&v)
	return identityweb.SentOnly(in, v.Validate())
}

// ListVersions lists a purpose's versions, newest first.
func (h *Handlers) ListVersions(c *gin.Context) {
	vs, err := h.svc.Versions(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": vs})
}

// CreateVersion adds a draft version.
func (h *Handlers) CreateVersion(c *gin.Context) {
	var in versionIn
	if !h.api.BindBody(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	v, err := h.svc.CreateVersion(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"),
		versionInput(in.Material, in.Texts, in.Details), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, v)
}

func versionNumber(c *gin.Context) (int, bool) {
	n, err := strconv.Atoi(c.Param("number"))
	if err != nil || n < 1 {
		identityweb.WriteProblem(c, http.StatusNotFound, identity.ENotFound, "Not Found", "purpose version not found", nil)
		return 0, false
	}
	return n, true
}

// GetVersion returns one version.
func (h *Handlers) GetVersion(c *gin.Context) {
	n, ok := versionNumber(c)
	if !ok {
		return
	}
	v, err := h.svc.Version(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"), n)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// PatchVersion changes a draft.
func (h *Handlers) PatchVersion(c *gin.Context) {
	n, ok := versionNumber(c)
	if !ok {
		return
	}
	var in versionPatch
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	v, err := h.svc.UpdateVersion(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"), n,
		versionInput(in.Material, in.Texts, in.Details), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// PublishVersion publishes a draft.
func (h *Handlers) PublishVersion(c *gin.Context) {
	n, ok := versionNumber(c)
	if !ok {
		return
	}
	v, err := h.svc.PublishVersion(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"), n, identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// VerifyLedger checks the tenant's chains and signed roots and names the first broken link.
func (h *Handlers) VerifyLedger(c *gin.Context) {
	rep, err := h.svc.Verify(c.Request.Context(), identityweb.TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

// LatestRoot returns the newest signed root, for publishing outside Lupa.
func (h *Handlers) LatestRoot(c *gin.Context) {
	r, err := h.svc.LatestRoot(c.Request.Context(), identityweb.TenantOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// SignRoot signs a root now, when the chains changed since the last one.
func (h *Handlers) SignRoot(c *gin.Context) {
	r, made, err := h.svc.SignRoot(c.Request.Context(), identityweb.TenantOf(c), identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	status := http.StatusOK
	if made {
		status = http.StatusCreated
	}
	c.JSON(status, r)
}
