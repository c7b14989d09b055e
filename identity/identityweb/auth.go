package identityweb

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
)

const (
	contextAPIKey   = "lupa.api_key"
	contextProperty = "lupa.property"
)

// Auth authenticates requests: API keys for server and admin routes, property keys with
// the Origin allow-list for the public collection routes.
type Auth struct {
	ids *identity.Service
	api *API
}

// NewAuth returns the authentication middleware factory.
func NewAuth(ids *identity.Service, api *API) *Auth { return &Auth{ids: ids, api: api} }

// APIKey requires an API key (Authorization: Bearer sk_…) that grants scope.
func (a *Auth) APIKey(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		// The scheme is case-insensitive (RFC 9110, section 11.1): "bearer sk_…" is fine too.
		scheme, secret, ok := strings.Cut(c.GetHeader("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			WriteProblem(c, http.StatusUnauthorized, identity.EUnauthorized, "Unauthorized",
				"send an API key: Authorization: Bearer sk_…", nil)
			return
		}
		key, err := a.ids.Authenticate(c.Request.Context(), strings.TrimSpace(secret))
		if err != nil {
			a.api.Fail(c, err)
			return
		}
		if !key.Allows(scope) {
			WriteProblem(c, http.StatusForbidden, identity.EForbidden, "Forbidden",
				"this API key lacks the scope "+scope, nil)
			return
		}
		c.Set(contextAPIKey, key)
		c.Next()
	}
}

// APIKeyOf returns the authenticated API key.
func APIKeyOf(c *gin.Context) *identity.APIKey {
	k, _ := c.Get(contextAPIKey)
	key, _ := k.(*identity.APIKey)
	return key
}

// TenantOf returns the tenant of the authenticated key or property.
func TenantOf(c *gin.Context) string {
	if k := APIKeyOf(c); k != nil {
		return k.TenantID
	}
	if p := PropertyOf(c); p != nil {
		return p.TenantID
	}
	return ""
}

// ActorOf names who is acting: the API key, or the device on public routes.
func ActorOf(c *gin.Context) identity.Actor {
	if k := APIKeyOf(c); k != nil {
		return identity.ActorAPIKey(k.ID)
	}
	return "device"
}

// requestOrigin is the browser's Origin. Browsers leave it out of same-origin GET
// requests, which then say so in Sec-Fetch-Site: a page served by Lupa itself (the demo)
// is then checked as Lupa's own origin.
func requestOrigin(c *gin.Context) string {
	if o := c.GetHeader("Origin"); o != "" {
		return o
	}
	if c.GetHeader("Sec-Fetch-Site") != "same-origin" {
		return ""
	}
	scheme := "http"
	if HTTPS(c) {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

// HTTPS reports whether the browser reached Lupa over https: directly, or through a
// trusted load balancer (LUPA_TRUSTED_PROXIES) that says so in X-Forwarded-Proto.
func HTTPS(c *gin.Context) bool {
	return c.Request.TLS != nil || (c.GetHeader("X-Forwarded-Proto") == "https" && fromTrustedProxy(c))
}

// PropertyOf returns the property of a public request.
func PropertyOf(c *gin.Context) *identity.Property {
	p, _ := c.Get(contextProperty)
	prop, _ := p.(*identity.Property)
	return prop
}

// CORS headers of the public routes.
const (
	corsMethods = "GET, POST, OPTIONS"
	corsHeaders = "Authorization, Content-Type, Idempotency-Key, Lupa-Device-Id"
	corsExpose  = "Retry-After, X-Request-Id, Idempotent-Replayed"
	corsMaxAge  = "600"
)

// allowCORS lets the page at origin read the answer, whatever it is: a success, or a
// problem with its Retry-After. The widget sends decisions with credentials, so that Lupa
// served on the site's own domain can set the banner's cookie itself, and a browser shows
// a credentialed request nothing of an answer without Allow-Credentials.
func allowCORS(c *gin.Context, origin string) {
	c.Header("Access-Control-Allow-Origin", origin)
	c.Header("Access-Control-Expose-Headers", corsExpose)
	c.Header("Access-Control-Allow-Credentials", "true")
}

// publicKinds are the property kinds whose public key the public routes take (the
// collection API and the banner's configuration): each is a device people use themselves
// — a web site, an app, a store's own device, a self-service kiosk — so its key lives on
// that device, in public. A call centre has no device and no banner: its agents record
// what callers say through the server API with an API key (consent:write), naming the
// channel and the agent, and its property key is not meant to be public. A kind added
// later is refused until it is listed here.
var publicKinds = []string{identity.PropertyWeb, identity.PropertyApp, identity.PropertyStore, identity.PropertyKiosk}

// Property authenticates a public request by the property key in the path
// (/properties/{pk}/…) or the query (?property=pk_…) and, for web properties, the
// browser's Origin against the property's allow-list. It answers CORS pre-flight requests
// itself. Apps, stores and kiosks send no Origin. A call centre's key is refused with 403
// (the key is known, but not for these routes), before any pre-flight is answered.
func (a *Auth) Property() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Vary", "Origin")
		origin := requestOrigin(c)
		if origin != "" && c.Request.Method != http.MethodOptions {
			// Let the page read our problem answers too (a missing or unknown key), so the
			// widget can say what is wrong; they hold nothing that depends on who asks. A
			// pre-flight of a refused origin gets no such header and the browser stops there.
			allowCORS(c, origin)
		}
		pk := c.Param("pk")
		if pk == "" {
			pk = c.Query("property")
		}
		if pk == "" || !strings.HasPrefix(pk, "pk_") || len(pk) > 64 {
			WriteProblem(c, http.StatusUnauthorized, identity.EUnauthorized, "Unauthorized",
				"name the property: ?property=pk_…", []identity.FieldError{{Field: "property", Message: "is required: the property's public key"}})
			return
		}
		p, err := a.ids.PropertyByKey(c.Request.Context(), pk)
		if err != nil {
			a.api.Fail(c, err)
			return
		}
		if !slices.Contains(publicKinds, p.Kind) {
			// Such a property allows no origin either: like a refused origin's, the answer
			// goes without the visitor's credentials.
			c.Writer.Header().Del("Access-Control-Allow-Credentials")
			WriteProblem(c, http.StatusForbidden, identity.EForbidden, "Forbidden",
				"the public API takes the keys of web, app, store and kiosk properties: a call centre records "+
					"its callers' decisions through the server API (POST /v1/subjects/consents) with an API key of scope consent:write",
				[]identity.FieldError{{Field: "property", Message: "is the key of a " + p.Kind + " property"}})
			return
		}
		switch {
		case origin != "" && !p.AllowsOrigin(origin):
			// The refused page may read why, but never with the visitor's credentials.
			c.Writer.Header().Del("Access-Control-Allow-Credentials")
			WriteProblem(c, http.StatusForbidden, identity.EForbidden, "Forbidden",
				"this origin is not allowed for the property", nil)
			return
		case origin == "" && p.Kind == identity.PropertyWeb:
			WriteProblem(c, http.StatusForbidden, identity.EForbidden, "Forbidden",
				"a web property is used from the browser: the request needs its Origin", nil)
			return
		case origin != "":
			allowCORS(c, origin)
		}
		if c.Request.Method == http.MethodOptions {
			c.Header("Access-Control-Allow-Methods", corsMethods)
			c.Header("Access-Control-Allow-Headers", corsHeaders)
			c.Header("Access-Control-Max-Age", corsMaxAge)
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Set(contextProperty, p)
		c.Next()
	}
}
