package consentweb

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// GetConfig serves a property's banner configuration from memory. Browsers revalidate it
// on every page view (no-cache) and get 304 while it is unchanged, so a published change
// reaches the next page view.
func (h *Handlers) GetConfig(c *gin.Context) {
	cfg, err := h.svc.BannerConfig(c.Request.Context(), identityweb.PropertyOf(c), c.Query("lang"), c.Query("build"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	etag := cfg.ETag()
	c.Header("ETag", etag)
	c.Header("Cache-Control", "no-cache")
	if etagMatches(c.GetHeader("If-None-Match"), etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", cfg.Body)
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110, section 13.1.2).
func etagMatches(header, etag string) bool {
	for _, candidate := range strings.Split(header, ",") {
		candidate = strings.TrimPrefix(strings.TrimSpace(candidate), "W/")
		if candidate == etag || candidate == "*" {
			return true
		}
	}
	return false
}

type bannerIn struct {
	Position         string                       `json:"position" validate:"omitempty,oneof=bar dialog"`
	Control          string                       `json:"control" validate:"omitempty,oneof=left right hidden"`
	Theme            map[string]string            `json:"theme" validate:"max=30"`
	LogoURL          string                       `json:"logo_url" validate:"max=2048"`
	PrivacyPolicyURL string                       `json:"privacy_policy_url" validate:"max=2048"`
	Languages        []string                     `json:"languages" validate:"max=30"`
	Purposes         []string                     `json:"purposes" validate:"max=50"`
	ConsentMode      map[string][]string          `json:"consent_mode" validate:"max=50"`
	CookieName       string                       `json:"cookie_name" validate:"max=64"`
	CookieDomain     string                       `json:"cookie_domain" validate:"max=253"`
	CookieDays       int                          `json:"cookie_days" validate:"gte=0"`
	ReaskMonths      any                          `json:"reask_months"` // read only to refuse it
	Strings          map[string]map[string]string `json:"strings" validate:"max=30"`
}

// GetBanner returns a property's banner settings.
func (h *Handlers) GetBanner(c *gin.Context) {
	b, err := h.svc.BannerSettings(c.Request.Context(), identityweb.TenantOf(c), c.Param("id"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

// PutBanner replaces a property's banner settings; omitted fields take their defaults.
func (h *Handlers) PutBanner(c *gin.Context) {
	var in bannerIn
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	// A banner no longer has a re-ask interval of its own: the purpose's is the one the
	// server keeps (expires_at), and the widget follows it. Say so rather than "unknown field".
	if in.ReaskMonths != nil {
		h.api.Fail(c, identity.Unprocessable("reask_months",
			"is not a banner setting: set reask_months on the purpose (PATCH /v1/admin/purposes/{purpose}), which the server and the banner both follow"))
		return
	}
	b, err := h.svc.PutBannerSettings(c.Request.Context(), consent.BannerSettings{TenantID: identityweb.TenantOf(c),
		PropertyID: c.Param("id"), Position: in.Position, Control: in.Control, Theme: in.Theme, LogoURL: in.LogoURL,
		PrivacyPolicyURL: in.PrivacyPolicyURL, Languages: in.Languages, Purposes: in.Purposes, ConsentMode: in.ConsentMode,
		CookieName: in.CookieName, CookieDomain: in.CookieDomain, CookieDays: in.CookieDays, Strings: in.Strings}, identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

type vendorIn struct {
	Name             string `json:"name" validate:"required,max=200"`
	LegalName        string `json:"legal_name" validate:"required,max=200"`
	Country          string `json:"country" validate:"omitempty,len=2"`
	PrivacyPolicyURL string `json:"privacy_policy_url" validate:"required,max=2048"`
}

type storageIn struct {
	Name       string `json:"name" validate:"required,max=200"`
	Kind       string `json:"kind" validate:"required,oneof=cookie local_storage session_storage pixel"`
	MaxAgeDays int    `json:"max_age_days" validate:"gte=0,lte=3650"`
	Domain     string `json:"domain" validate:"max=253"`
}

type inventoryIn struct {
	Vendors []vendorIn  `json:"vendors" validate:"max=100,dive"`
	Storage []storageIn `json:"storage" validate:"max=200,dive"`
}

// GetInventory returns a purpose's vendors and storage items.
func (h *Handlers) GetInventory(c *gin.Context) {
	inv, err := h.svc.Inventory(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, inv)
}

// PutInventory replaces a purpose's vendors and storage items.
func (h *Handlers) PutInventory(c *gin.Context) {
	var in inventoryIn
	if !h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	inv := consent.Inventory{Vendors: make([]consent.Vendor, len(in.Vendors)), Storage: make([]consent.StorageItem, len(in.Storage))}
	for i, v := range in.Vendors {
		inv.Vendors[i] = consent.Vendor{Name: v.Name, LegalName: v.LegalName, Country: v.Country, PrivacyPolicyURL: v.PrivacyPolicyURL}
	}
	for i, s := range in.Storage {
		inv.Storage[i] = consent.StorageItem{Name: s.Name, Kind: s.Kind, MaxAgeDays: s.MaxAgeDays, Domain: s.Domain}
	}
	out, err := h.svc.PutInventory(c.Request.Context(), identityweb.TenantOf(c), c.Param("purpose"), inv, identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// GetInterface returns the evidence behind a ui_hash: the configuration exactly as served,
// the widget build and the language.
func (h *Handlers) GetInterface(c *gin.Context) {
	si, err := h.svc.Interface(c.Request.Context(), identityweb.TenantOf(c), c.Param("hash"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, si)
}

// GetWidgetBuild returns the files of a widget build.
func (h *Handlers) GetWidgetBuild(c *gin.Context) {
	wb, err := h.svc.WidgetBuild(c.Request.Context(), c.Param("build"))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wb)
}
