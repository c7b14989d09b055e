package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent/consentweb"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/integrations/integrationsweb"
	"github.com/lupa-cmp/lupa/migrations"
	"github.com/lupa-cmp/lupa/static"
)

// routes registers every route of Lupa, with its middleware in sight.
func (a *app) routes(m *metrics) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// Client IPs come from X-Forwarded-For only when the connection is from a trusted proxy,
	// read by identityweb.ClientIPs (ports, IPv4-mapped forms, several header lines; never
	// X-Real-IP). gin's own ClientIP is off: it would be the connecting address.
	clientIPs, err := identityweb.NewClientIPs(a.cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	r.ForwardedByClientIP = false
	if err := r.SetTrustedProxies(nil); err != nil {
		return nil, err
	}
	r.Use(clientIPs.Middleware())
	api := identityweb.NewAPI(a.log)
	auth := identityweb.NewAuth(a.ids, api)
	limit := identityweb.NewRateLimiter(a.cfg.RateLimit, a.cfg.RateBurst, a.now)
	idem := identityweb.Idempotent(a.ids, api, identityweb.PublicBodyLimit)
	ident := identityweb.NewAdmin(a.ids, api)
	ciamWeb := identityweb.NewCIAM(a.ciam, api)
	cons := consentweb.New(a.consent, a.ids, api)
	receipts := consentweb.NewReceipts(cons, a.keys)
	logins := identityweb.NewLoginProviders(a.login, a.ids, api)
	dataMap := integrationsweb.NewDataMap(a.dataMap, api)
	hooks := integrationsweb.NewWebhooks(a.webhooks, a.deliveries, api)
	conns := integrationsweb.NewConnectors(a.connectors, a.deliveries, api, a.cfg.PublicURL)
	pages, err := identityweb.NewPages(a.accounts, a.ids, a.login, a.log, a.mailbox, a.cfg.PublicURL, a.now)
	if err != nil {
		return nil, err
	}
	// Deleting an account withdraws the person's consents through consent's writer.
	pages.SetWithdrawer(a.consent)
	doc, err := openAPIJSON()
	if err != nil {
		return nil, err
	}
	widget, err := consentweb.NewWidget(cons, static.Files, static.WidgetJS, static.StubJS)
	if err != nil {
		return nil, err
	}
	// Keep this build's files as evidence before any configuration names it (an app
	// without a database only lists its routes).
	if a.db != nil {
		if err := a.consent.RegisterWidgetBuild(context.Background(), static.Build, widget.Files()); err != nil {
			return nil, err
		}
	}

	// headAsGet first: every GET route answers HEAD too, and the rest runs once, for the GET.
	r.Use(headAsGet(r), requestID(), recovery(api), m.middleware(), accessLog(a), securityHeaders(), cleanURL())
	r.NoRoute(identityweb.NoRoute)
	r.NoMethod(identityweb.NoMethod)

	// Operations.
	alive := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }
	r.GET("/healthz", alive)
	r.GET("/readyz", a.ready)
	// Load balancers' health checks often use HEAD: the same answer without its body. (Every
	// GET route answers HEAD through headAsGet; these two are routed, and documented, as
	// HEAD routes of their own.)
	r.HEAD("/healthz", alive)
	r.HEAD("/readyz", a.ready)

	// Connectors' inbound webhooks: unsubscribes made at Mailchimp (its URL carries a
	// secret) and HubSpot (signed) become withdrawals (docs/connectors.md).
	inbound := gin.WrapH(a.connectors.InboundHandler(a.cfg.PublicURL))
	r.GET("/hooks/mailchimp/:tenant/:connector", inbound)
	r.POST("/hooks/mailchimp/:tenant/:connector", inbound)
	r.POST("/hooks/hubspot/:tenant/:connector", inbound)
	r.GET("/v1/openapi.json", func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=300")
		c.Data(http.StatusOK, "application/json", doc)
	})

	// Receipts: anyone may check one.
	r.GET("/.well-known/jwks.json", receipts.JWKS)
	r.POST("/v1/receipts/verify", limit.Middleware(), receipts.Verify)

	// The banner: its files, its configuration, and the demo shop that shows it. The
	// configuration is served from memory and not rate limited: a campaign's page views
	// all ask for it, and unknown keys and builds are remembered briefly.
	r.GET("/v1/widget.js", widget.Loader)
	r.GET("/v1/static/:file", widget.Static)
	r.GET("/v1/properties/:pk/config", auth.Property(), cons.GetConfig)
	r.GET("/.well-known/gpc.json", widget.GPC)
	r.GET("/demo", widget.Demo)
	r.GET("/demo/:lang", widget.Demo)
	// The registration widget's form, shown in an iframe on the property's own sites.
	reg := consentweb.NewRegistration(cons, a.accounts)
	reg.SetPages(pages)
	pages.SetWidgetLogin(reg)
	r.GET("/register", reg.Form)
	// It mails the address it is given, as the account pages' registration does: the same
	// per-client limit of forms that send email.
	// Over a limit, the form itself says so: the frame would not show another page.
	r.POST("/register", reg.Limit(limit.AllowClient, pages.MailAllowed), reg.Submit)
	// Its "Continue with …" buttons: the form goes along to the provider (target _top), and
	// comes back through the tenant's callback below. Each starts a sign-in flow, as the
	// sign-in page's buttons do, under the same per-client limit.
	r.POST("/register/login/:provider", reg.Limit(limit.AllowClient, pages.LoginAllowed), reg.BeginLogin)
	// Double opt-in: the link of the confirmation email shows a button, the button confirms.
	r.GET("/optin", cons.OptIn)
	r.POST("/optin", cons.ConfirmOptIn)

	// Customer account pages: HTML for people, not the JSON API (openapi_test.go skips
	// them). Security headers and a CSP nonce on every page; every POST passes Go's
	// cross-origin protection, then the form reader (urlencoded, 16 KiB, no control
	// characters). /t/{slug}/… names the tenant; /account/… takes it from the session
	// cookie or the emailed link.
	acct := r.Group("/", pages.PageHeaders(), pages.CrossOrigin(), pages.Form())
	tenant := acct.Group("/t/:slug", pages.PageTenant())
	tenant.GET("/register", pages.RegisterForm)
	tenant.POST("/register", pages.MailLimit(), pages.Register)
	tenant.GET("/signin", pages.SignInForm)
	tenant.POST("/signin", pages.SignIn) // throttled per account and client IP by the accounts service
	tenant.GET("/signin-link", pages.SignInLinkForm)
	tenant.POST("/signin-link", pages.MailLimit(), pages.RequestSignInLink)
	tenant.GET("/reset", pages.ResetForm)
	tenant.POST("/reset", pages.MailLimit(), pages.RequestReset)
	// Sign-in with the tenant's identity providers: the button's POST begins a flow (a
	// __Host-lupa_oidc cookie binds it to the browser) and redirects to the provider, which
	// sends the browser back to the callback (a GET: SameSite=Lax lets the cookie through).
	tenant.POST("/login/:provider", pages.LoginLimit(), pages.BeginLogin)
	tenant.GET("/login/:provider/callback", pages.LoginCallback)
	// One-time links: a GET shows a button and uses nothing (mail scanners fetch links);
	// the POST uses the link.
	acct.GET("/account/verify", pages.VerifyForm)
	acct.POST("/account/verify", pages.Verify)
	acct.GET("/account/signin-link", pages.SignInLinkConfirm)
	acct.POST("/account/signin-link", pages.SignInWithLink)
	acct.GET("/account/reset", pages.NewPasswordForm)
	acct.POST("/account/reset", pages.NewPassword)
	// The signed-in person's account (session cookie).
	acct.GET("/account", pages.Account)
	acct.POST("/account/password", pages.ChangePassword)
	// A change of address: the form mails a link to the new address (and a notice to the
	// old); the link's GET shows a button, its POST makes the change.
	acct.POST("/account/email", pages.MailLimit(), pages.RequestEmailChange)
	acct.GET("/account/email/confirm", pages.EmailChangeForm)
	acct.POST("/account/email/confirm", pages.ConfirmEmailChange)
	acct.POST("/account/signout", pages.SignOut)
	acct.POST("/account/signout-all", pages.SignOutEverywhere)
	// An identity whose address named this account, waiting in this browser to be connected.
	acct.POST("/account/connect/:provider", pages.ConnectProvider)
	acct.POST("/account/disconnect/:provider", pages.DisconnectProvider)
	acct.POST("/account/delete", pages.DeleteAccount)
	// The development mailbox shows sign-in links: only when LUPA_DEV_MAILBOX is on
	// (the default only on the embedded default, and only while mail is not sent).
	if a.cfg.DevMailbox && a.mailbox != nil {
		acct.GET("/dev/mailbox", pages.Mailbox)
	}

	// Collection API for widgets and apps: property key (+ Origin), rate limited per IP; a
	// customer's CIAM access token (Authorization: Bearer) makes the request that person's.
	// A call centre's key is refused here (auth.Property): its agents use the server API below.
	public := r.Group("/v1", limit.Middleware(), auth.Property())
	public.OPTIONS("/consents", func(*gin.Context) {}) // answered by auth.Property
	public.POST("/consents", ciamWeb.Bearer(), cons.PostConsents)
	public.GET("/consents", ciamWeb.Bearer(), cons.GetConsents)

	// Identity events from the company's CIAM: a Standard Webhooks signature with the named
	// issuer's secret, each webhook-id once. Not rate limited: the sender is a server.
	r.POST("/v1/identity/events/:issuerId", ciamWeb.IdentityEvent)

	// Server API for back-office systems.
	// Their answers hold personal data and secrets shown once: no cache keeps them unless a
	// handler says otherwise (noStore).
	read := r.Group("/v1", noStore(), auth.APIKey(identity.ScopeConsentRead))
	read.POST("/consents/check", cons.Check)
	read.POST("/subjects/state", cons.SubjectState)
	read.POST("/subjects/history", cons.SubjectHistory)
	write := r.Group("/v1", noStore(), auth.APIKey(identity.ScopeConsentWrite))
	write.POST("/subjects/consents", cons.RecordSubject)

	// Admin API: the tenant's configuration, keys, audit log and ledger checks.
	admin := r.Group("/v1/admin", noStore(), auth.APIKey(identity.ScopeAdmin), idem)
	// POSTs that take no body refuse one that is not JSON or not empty.
	noBody := identityweb.NoBody(api)
	admin.GET("/tenant", ident.GetTenant)
	admin.PATCH("/tenant", ident.PatchTenant)
	admin.GET("/brands", ident.ListBrands)
	admin.POST("/brands", ident.CreateBrand)
	admin.GET("/brands/:id", ident.GetBrand)
	admin.PATCH("/brands/:id", ident.PatchBrand)
	admin.GET("/properties", ident.ListProperties)
	admin.POST("/properties", ident.CreateProperty)
	admin.GET("/properties/:id", ident.GetProperty)
	admin.PATCH("/properties/:id", ident.PatchProperty)
	admin.GET("/properties/:id/banner", cons.GetBanner)
	admin.PUT("/properties/:id/banner", cons.PutBanner)
	admin.GET("/api-keys", ident.ListAPIKeys)
	admin.POST("/api-keys", ident.CreateAPIKey)
	admin.DELETE("/api-keys/:id", ident.RevokeAPIKey)
	admin.GET("/audit", ident.Audit)
	admin.GET("/ciam-issuers", ciamWeb.ListIssuers)
	admin.POST("/ciam-issuers", ciamWeb.CreateIssuer)
	admin.GET("/ciam-issuers/:id", ciamWeb.GetIssuer)
	admin.PATCH("/ciam-issuers/:id", ciamWeb.PatchIssuer)
	admin.DELETE("/ciam-issuers/:id", ciamWeb.DeleteIssuer)
	admin.GET("/login-providers", logins.ListLoginProviders)
	admin.POST("/login-providers", logins.CreateLoginProvider)
	admin.GET("/login-providers/:id", logins.GetLoginProvider)
	admin.PATCH("/login-providers/:id", logins.PatchLoginProvider)
	admin.DELETE("/login-providers/:id", logins.DeleteLoginProvider)
	admin.POST("/subjects/lookup", cons.LookupSubject)
	admin.GET("/access-log", cons.AccessLog)
	admin.GET("/recipients", cons.ListRecipients)
	admin.POST("/recipients", cons.CreateRecipient)
	admin.GET("/recipients/:id", cons.GetRecipient)
	admin.PATCH("/recipients/:id", cons.PatchRecipient)
	admin.GET("/purposes", cons.ListPurposes)
	admin.POST("/purposes", cons.CreatePurpose)
	admin.GET("/purposes/:purpose", cons.GetPurpose)
	admin.PATCH("/purposes/:purpose", cons.PatchPurpose)
	admin.GET("/purposes/:purpose/versions", cons.ListVersions)
	admin.POST("/purposes/:purpose/versions", cons.CreateVersion)
	admin.GET("/purposes/:purpose/versions/:number", cons.GetVersion)
	admin.PATCH("/purposes/:purpose/versions/:number", cons.PatchVersion)
	admin.POST("/purposes/:purpose/versions/:number/publish", noBody, cons.PublishVersion)
	admin.GET("/purposes/:purpose/inventory", cons.GetInventory)
	admin.PUT("/purposes/:purpose/inventory", cons.PutInventory)
	admin.GET("/interfaces/:hash", cons.GetInterface)
	admin.GET("/widget-builds/:build", cons.GetWidgetBuild)
	admin.POST("/ledger/verify", noBody, cons.VerifyLedger)
	admin.GET("/ledger/roots/latest", cons.LatestRoot)
	admin.POST("/ledger/roots", noBody, cons.SignRoot)
	// The data map: the systems that hold the tenant's customers' data (docs/data-map.md).
	admin.GET("/data-map", dataMap.GetMap)
	admin.GET("/data-map/vocabulary", dataMap.Vocabulary)
	admin.GET("/data-map/systems", dataMap.ListSystems)
	admin.POST("/data-map/systems", dataMap.CreateSystem)
	admin.GET("/data-map/systems/:id", dataMap.GetSystem)
	admin.PATCH("/data-map/systems/:id", dataMap.PatchSystem)
	admin.DELETE("/data-map/systems/:id", dataMap.DeleteSystem)
	admin.GET("/data-map/systems/:id/keep-until", dataMap.KeepUntil)
	// Erasure confirmations: each system of the map confirms an erasure request; Lupa
	// forgets the person's email after the last one (docs/data-map.md).
	admin.POST("/data-map/systems/:id/erasures/:request_id/confirm", dataMap.ConfirmErasure)
	admin.GET("/erasures/:request_id", dataMap.ErasureProgress)
	// Webhook endpoints: signed deliveries of consent changes, their log and dead letters
	// (docs/webhooks.md).
	admin.GET("/webhooks", hooks.ListWebhooks)
	admin.POST("/webhooks", hooks.CreateWebhook)
	admin.GET("/webhooks/:id", hooks.GetWebhook)
	admin.PATCH("/webhooks/:id", hooks.PatchWebhook)
	admin.DELETE("/webhooks/:id", hooks.DeleteWebhook)
	admin.POST("/webhooks/:id/rotate-secret", hooks.RotateSecret)
	admin.POST("/webhooks/:id/disable", noBody, hooks.DisableWebhook)
	admin.POST("/webhooks/:id/enable", noBody, hooks.EnableWebhook)
	admin.GET("/webhooks/:id/deliveries", hooks.ListDeliveries)
	admin.GET("/webhooks/:id/deliveries/:delivery", hooks.GetDelivery)
	admin.POST("/webhooks/:id/deliveries/:delivery/replay", noBody, hooks.ReplayDelivery)
	admin.GET("/webhooks/:id/dead-letters", hooks.ListDeadLetters)
	admin.POST("/webhooks/:id/dead-letters/replay", noBody, hooks.ReplayDeadLetters)
	// Connectors to Mailchimp, HubSpot and Klaviyo: per-event sync status, dead letters,
	// replays and a reconcile on demand (docs/connectors.md).
	admin.GET("/connectors", conns.ListConnectors)
	admin.POST("/connectors", conns.CreateConnector)
	admin.GET("/connectors/:id", conns.GetConnector)
	admin.PATCH("/connectors/:id", conns.PatchConnector)
	admin.DELETE("/connectors/:id", conns.DeleteConnector)
	admin.POST("/connectors/:id/disable", noBody, conns.DisableConnector)
	admin.POST("/connectors/:id/enable", noBody, conns.EnableConnector)
	admin.POST("/connectors/:id/reconcile", noBody, conns.ReconcileConnector)
	admin.POST("/connectors/:id/rotate-inbound-secret", noBody, conns.RotateInboundSecret)
	admin.GET("/connectors/:id/syncs", conns.ListSyncs)
	admin.GET("/connectors/:id/syncs/:delivery", conns.GetSync)
	admin.POST("/connectors/:id/syncs/:delivery/replay", noBody, conns.ReplaySync)
	admin.GET("/connectors/:id/dead-letters", conns.ListDeadLetters)
	admin.POST("/connectors/:id/dead-letters/replay", noBody, conns.ReplayDeadLetters)
	return r, nil
}

// ready says whether this instance can serve: the database answers and its schema is the
// one this binary expects.
func (a *app) ready(c *gin.Context) {
	ctx := c.Request.Context()
	if err := a.db.Ping(ctx); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "database unreachable"})
		return
	}
	current, err := migrations.Current(ctx, a.db.ReadSQL(), a.db.Dialect)
	if err != nil || !current {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "database schema is not current: run lupa migrate"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// headAsGet answers HEAD wherever GET is routed (RFC 9110, section 9.3.2): GET's handlers,
// with their middleware, give the status and headers, and net/http sends no body for a
// HEAD request, as it does for Go's own ServeMux. A path without a HEAD route of its own
// reaches gin's 405 handlers, whose Allow header lists the methods it has: there, when GET
// is one, the request goes through the router again as a GET. It must be the first
// middleware, so that the others run once, for the GET; they see the method as
// requestMethod gives it. A 405 of any other method lists HEAD in Allow beside GET.
func headAsGet(r *gin.Engine) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		allow := h.Get("Allow") // set by gin on its way to a 405 only
		if c.FullPath() != "" || allow == "" || !methodIn(allow, http.MethodGet) {
			c.Next()
			return
		}
		if c.Request.Method != http.MethodHead {
			if !methodIn(allow, http.MethodHead) {
				h.Set("Allow", allow+", "+http.MethodHead)
			}
			c.Next()
			return
		}
		h.Del("Allow")
		c.Writer.WriteHeader(http.StatusOK) // gin had set the 405 it was about to answer
		// A copy: net/http keeps the request it read, a HEAD, and so sends no body.
		get := c.Request.WithContext(context.WithValue(c.Request.Context(), headRequest{}, true))
		get.Method = http.MethodGet
		c.Request = get
		r.HandleContext(c)
		c.Abort()
	}
}

type headRequest struct{}

// requestMethod is the request's method as the client sent it: HEAD for a HEAD that
// headAsGet serves as a GET.
func requestMethod(c *gin.Context) string {
	if c.Request.Context().Value(headRequest{}) != nil {
		return http.MethodHead
	}
	return c.Request.Method
}

// methodIn reports whether an Allow header's list holds method.
func methodIn(allow, method string) bool {
	for _, m := range strings.Split(allow, ",") {
		if strings.TrimSpace(m) == method {
			return true
		}
	}
	return false
}

const ctxRequestID = "lupa.request_id"

// requestID gives every request an id, echoed in X-Request-Id and in problem bodies.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if len(id) == 0 || len(id) > 64 || !printable(id) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		c.Set(ctxRequestID, id)
		c.Header("X-Request-Id", id)
		c.Next()
	}
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// recovery turns a panic into a logged 500 problem.
func recovery(api *identityweb.API) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		api.Log.Error("panic", "route", c.FullPath(), "panic", err)
		identityweb.WriteProblem(c, http.StatusInternalServerError, identity.EInternal, "Internal Server Error",
			"something went wrong on our side", nil)
	})
}

// accessLog logs each request without personal data: no IP, no user agent, no query
// string, the route template instead of the path.
func accessLog(a *app) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		a.log.Debug("request", "method", requestMethod(c), "route", route, "status", c.Writer.Status(),
			"ms", float64(time.Since(start).Microseconds())/1000, "request_id", c.GetString(ctxRequestID))
	}
}

// cleanURL refuses paths and query strings that hold control characters or are not UTF-8:
// no id, key or filter of Lupa's contains them, and PostgreSQL cannot even compare text
// with a NUL in it.
func cleanURL() gin.HandlerFunc {
	return func(c *gin.Context) {
		bad := !cleanText(c.Request.URL.Path)
		if !bad {
			q, _ := url.ParseQuery(c.Request.URL.RawQuery)
			for k, vs := range q {
				bad = bad || !cleanText(k)
				for _, v := range vs {
					bad = bad || !cleanText(v)
				}
			}
		}
		if bad {
			identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request",
				"the URL holds control characters or bytes that are not UTF-8", nil)
			return
		}
		c.Next()
	}
}

func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return false
		}
	}
	return true
}

// noStore makes Cache-Control: no-store the default of a group's answers: the server and
// admin APIs answer with people's identifiers, decisions, audit entries and the secrets
// shown once, which no browser or proxy cache may keep. A handler whose answer may be
// cached (the data map's vocabulary) sets its own.
func noStore() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		c.Next()
	}
}

// securityHeaders are on every answer: no MIME sniffing, no referrer, no framing (the
// registration form's handler allows its property's origins itself), and HSTS once the
// browser came over https.
func securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if identityweb.HTTPS(c) {
			// Reached over https (directly or through a trusted load balancer): browsers come
			// back over https only, so a network on the way cannot strip TLS from the account
			// pages' next visit. Not includeSubDomains: the hosts under Lupa's are not Lupa's
			// to decide.
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		c.Next()
	}
}
