package identityweb

// The customer account pages: HTML for people in a browser, not the JSON API. They speak
// Finnish, Swedish and English, need no JavaScript, and answer every failure with a page in
// the person's language instead of problem+json.
//
// Security, in the order a request meets it (routes.go shows the middleware):
//   - PageHeaders: a CSP without 'unsafe-inline' (the one inline stylesheet carries a fresh
//     nonce), no framing, no Referer (one-time links carry tokens in their URLs), no caching.
//   - CrossOrigin: Go's http.CrossOriginProtection refuses cross-site POSTs (403), which is
//     the CSRF defence of every form here together with the SameSite=Lax cookie.
//   - Form: only application/x-www-form-urlencoded (415), at most FormLimit bytes (413),
//     valid UTF-8 without control characters (400).
//   - PageTenant: /t/{slug}/… names the tenant; an unknown slug is a 404 page.
//   - MailLimit: POSTs that send email are rate limited per client address.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/a-h/templ"
	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/login"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/templates"
)

// FormLimit is the most a page's form body may hold.
const FormLimit = 16 << 10

// Email-sending POSTs (registration, sign-in and reset links) per client address: a
// burst of mailLimitBurst, then one every 1/mailLimitRate seconds. Sign-in attempts have
// their own, stricter throttle in the accounts service.
const (
	mailLimitRate  = 0.2
	mailLimitBurst = 20
)

// Context keys of the pages' middleware.
const (
	ctxNonce  = "lupa.page.nonce"
	ctxForm   = "lupa.page.form"
	ctxTenant = "lupa.page.tenant"
)

// Pages serves the account pages and, in development, the mailbox page.
type Pages struct {
	acc *accounts.Service
	// withdraw withdraws a person's consents when the account is deleted (consent's writer,
	// filled in by cmd/lupa: identity does not import consent).
	withdraw Withdrawer
	ids      *identity.Service
	login    *login.Service // identity providers: "Continue with …" (login.go)
	widget   WidgetLogin    // the registration widget's part of provider sign-ins, or nil
	log      *slog.Logger
	mailbox  *mail.Mailbox
	cop      *http.CrossOriginProtection
	mailLim  *RateLimiter
	// loginLim limits the sign-ins begun with identity providers per client address.
	loginLim *RateLimiter
	now      func() time.Time
}

// NewPages returns the account pages. logins are the tenants' identity providers.
// publicURL (Lupa's own origin) is trusted by the cross-origin check even when a proxy in
// front rewrites the Host header; mailbox is the development mailbox whose page
// MailboxPage serves, or nil.
func NewPages(acc *accounts.Service, ids *identity.Service, logins *login.Service, log *slog.Logger, mailbox *mail.Mailbox,
	publicURL string, now func() time.Time) (*Pages, error) {
	cop := http.NewCrossOriginProtection()
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil {
			return nil, err
		}
		if err := cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, err
		}
	}
	p := &Pages{acc: acc, ids: ids, login: logins, log: log, mailbox: mailbox, cop: cop, now: now,
		mailLim:  NewRateLimiter(mailLimitRate, mailLimitBurst, now),
		loginLim: NewRateLimiter(loginLimitRate, loginLimitBurst, now)}
	return p, nil
}

// PageHeaders sets the pages' security headers and makes the CSP nonce of the request.
func (p *Pages) PageHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		nonce := base64.StdEncoding.EncodeToString(b)
		c.Set(ctxNonce, nonce)
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", pageCSP(nonce))
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		c.Next()
	}
}

// pageCSP is the pages' Content-Security-Policy. formAction are origins beyond Lupa's own
// that the page's forms may end up at: browsers hold the redirect that answers a form's
// POST to form-action, and a provider's button is answered with a redirect to the provider.
func pageCSP(nonce string, formAction ...string) string {
	fa := "'self'"
	for _, o := range formAction {
		fa += " " + o
	}
	return "default-src 'none'; style-src 'nonce-" + nonce + "'; img-src 'self'; form-action " + fa + "; " +
		"frame-ancestors 'none'; base-uri 'none'"
}

// CrossOrigin refuses cross-site POSTs with Go's http.CrossOriginProtection: the browser's
// Sec-Fetch-Site, or for older browsers Origin against Host.
func (p *Pages) CrossOrigin() gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := p.cop.Check(c.Request); err != nil {
			v := p.view(c, nil, p.lang(c))
			p.message(c, http.StatusForbidden, v, v.T.CrossSite, v.T.CrossSiteText)
			return
		}
		c.Next()
	}
}

// Form reads a POST's form body: application/x-www-form-urlencoded only, at most
// FormLimit bytes, UTF-8 without control characters.
func (p *Pages) Form() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Method != http.MethodPost {
			c.Next()
			return
		}
		v := p.view(c, nil, p.lang(c))
		mt, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" ||
			(params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
			p.message(c, http.StatusUnsupportedMediaType, v, v.T.BadForm, v.T.FormType)
			return
		}
		if c.Request.ContentLength > FormLimit {
			p.message(c, http.StatusRequestEntityTooLarge, v, v.T.BadForm, v.T.FormTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, FormLimit))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			p.message(c, http.StatusRequestEntityTooLarge, v, v.T.BadForm, v.T.FormTooLarge)
			return
		}
		var form url.Values
		if err == nil {
			form, err = url.ParseQuery(string(body))
		}
		if err != nil || !cleanForm(form) {
			p.message(c, http.StatusBadRequest, v, v.T.BadForm, v.T.BadFormText)
			return
		}
		c.Set(ctxForm, form)
		c.Next()
	}
}

// cleanForm reports whether every name and value is UTF-8 without control characters:
// every field of these forms is one line of text.
func cleanForm(form url.Values) bool {
	clean := func(s string) bool {
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
	for k, vs := range form {
		if !clean(k) {
			return false
		}
		for _, v := range vs {
			if !clean(v) {
				return false
			}
		}
	}
	return true
}

// PageTenant finds the tenant of /t/{slug}/…; an unknown slug is a 404 page.
func (p *Pages) PageTenant() gin.HandlerFunc {
	return func(c *gin.Context) {
		slug := c.Param("slug")
		var t *identity.Tenant
		var err error = identity.NotFound("tenant")
		if len(slug) <= 63 {
			t, err = p.ids.TenantBySlug(c.Request.Context(), slug)
		}
		if identity.IsCode(err, identity.ENotFound) {
			v := p.view(c, nil, p.lang(c))
			p.message(c, http.StatusNotFound, v, v.T.NotFound, v.T.NotFoundText)
			return
		}
		if err != nil {
			p.fail(c, p.view(c, nil, p.lang(c)), err)
			return
		}
		c.Set(ctxTenant, t)
		c.Next()
	}
}

// MailLimit limits the POSTs that send email, per client address: otherwise the forms
// would let anyone fill a stranger's mailbox.
func (p *Pages) MailLimit() gin.HandlerFunc {
	return func(c *gin.Context) {
		if ok, wait := p.MailAllowed(c); !ok {
			RetryAfter(c, wait.Seconds())
			v := p.view(c, pageTenant(c), p.lang(c, tenantLang(pageTenant(c))))
			p.message(c, http.StatusTooManyRequests, v, v.T.Throttled, v.T.ThrottledText)
			return
		}
		c.Next()
	}
}

// MailAllowed is MailLimit's check, for a page that answers a refusal its own way.
func (p *Pages) MailAllowed(c *gin.Context) (bool, time.Duration) { return p.mailLim.AllowClient(c) }

func pageTenant(c *gin.Context) *identity.Tenant {
	t, _ := c.Get(ctxTenant)
	tenant, _ := t.(*identity.Tenant)
	return tenant
}

func tenantLang(t *identity.Tenant) string {
	if t == nil {
		return ""
	}
	return t.DefaultLanguage
}

// formValue is a field of the POST's form ("" on other methods).
func formValue(c *gin.Context, name string) string {
	f, _ := c.Get(ctxForm)
	form, _ := f.(url.Values)
	return form.Get(name)
}

// Languages of the pages, in the switcher's order.
var pageLanguages = []struct{ code, label string }{{"fi", "Suomi"}, {"sv", "Svenska"}, {"en", "English"}}

func supportedLang(l string) bool { return l == "fi" || l == "sv" || l == "en" }

// lang is the page's language: the form's or the URL's lang, else the browser's
// Accept-Language, else the fallbacks (the account's, the tenant's default), else English.
func (p *Pages) lang(c *gin.Context, fallbacks ...string) string {
	if l := formValue(c, "lang"); supportedLang(l) {
		return l
	}
	if l := c.Query("lang"); supportedLang(l) {
		return l
	}
	if l := acceptLanguage(c.GetHeader("Accept-Language")); l != "" {
		return l
	}
	for _, l := range fallbacks {
		if supportedLang(l) {
			return l
		}
	}
	return "en"
}

// acceptLanguage picks the preferred of fi, sv and en from an Accept-Language header by
// its q-values (RFC 9110 §12.5.4), or "".
func acceptLanguage(h string) string {
	best, bestQ := "", 0.0
	for i, part := range strings.Split(h, ",") {
		if i >= 32 {
			break
		}
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		if primary == "nb" || primary == "nn" || primary == "no" || primary == "da" {
			// Scandinavian readers are better served in Swedish than in English.
			primary, q = "sv", q*0.9
		}
		if supportedLang(primary) && q > bestQ {
			best, bestQ = primary, q
		}
	}
	return best
}

// view is the start of every page's view: language, words, nonce, tenant, switcher.
func (p *Pages) view(c *gin.Context, t *identity.Tenant, lang string) templates.AccountView {
	v := templates.AccountView{Lang: lang, T: templates.AccountTexts[lang], Nonce: c.GetString(ctxNonce)}
	if t != nil {
		v.Controller, v.Slug = t.LegalName, t.Slug
		if v.Controller == "" {
			v.Controller = t.Name
		}
	}
	// The switcher links to this page in each language; a POST's answer links to the
	// page the form is on.
	q := url.Values{}
	if c.Request.Method == http.MethodGet {
		q = c.Request.URL.Query()
	}
	for _, l := range pageLanguages {
		q.Set("lang", l.code)
		v.Languages = append(v.Languages, templates.LanguageLink{Lang: l.code, Label: l.label,
			Href: c.Request.URL.Path + "?" + q.Encode(), Current: l.code == lang})
	}
	return v
}

// render writes an HTML page with the status and ends the request.
func (p *Pages) render(c *gin.Context, status int, comp templ.Component) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := comp.Render(c.Request.Context(), c.Writer); err != nil {
		p.log.ErrorContext(c.Request.Context(), "render page", "route", c.FullPath(), "err", err)
	}
	c.Abort()
}

// message renders a page that says what happened, with links onwards.
func (p *Pages) message(c *gin.Context, status int, v templates.AccountView, heading, text string, links ...templates.PageLink) {
	v.Heading, v.Text, v.Links = heading, text, links
	p.render(c, status, templates.MessagePage(v))
}

// fail answers an error that is not the person's to fix: too many attempts (429), an
// overload (503), a dead link (422), or a fault (500, logged).
func (p *Pages) fail(c *gin.Context, v templates.AccountView, err error) {
	switch {
	case identity.IsCode(err, identity.ERateLimited):
		c.Header("Retry-After", "2") // the sign-in throttle refills a token every 2 s
		p.message(c, http.StatusTooManyRequests, v, v.T.Throttled, v.T.ThrottledText)
	case identity.IsCode(err, identity.EUnavailable) || errors.Is(err, password.ErrBusy):
		c.Header("Retry-After", "2")
		p.message(c, http.StatusServiceUnavailable, v, v.T.Busy, v.T.BusyText)
	case errors.Is(err, accounts.ErrLink):
		p.badLink(c, v, "")
	case sqldb.IsInfrastructure(err):
		p.log.ErrorContext(c.Request.Context(), "page failed", "route", c.FullPath(), "err", err)
		c.Header("Retry-After", "2")
		p.message(c, http.StatusServiceUnavailable, v, v.T.ServerError, v.T.ServerErrorText)
	default:
		p.log.ErrorContext(c.Request.Context(), "page failed", "route", c.FullPath(), "err", err)
		p.message(c, http.StatusInternalServerError, v, v.T.ServerError, v.T.ServerErrorText)
	}
}

// badLink says a one-time link does not work (422) and links to asking for a new one.
func (p *Pages) badLink(c *gin.Context, v templates.AccountView, purpose string) {
	var links []templates.PageLink
	if purpose == accounts.LinkEmailChange {
		// A new link comes from the account page's form.
		links = append(links, templates.PageLink{Href: "/account?lang=" + v.Lang, Label: v.T.BackToAccount})
	} else if v.Slug != "" {
		base := "/t/" + url.PathEscape(v.Slug)
		langQ := "?lang=" + v.Lang
		if purpose == accounts.LinkSignIn {
			links = append(links, templates.PageLink{Href: base + "/signin-link" + langQ, Label: v.T.NewSignInLink})
		}
		// A new password by the reset link also confirms the address, so it is the way on
		// from a dead verification link as well.
		links = append(links, templates.PageLink{Href: base + "/reset" + langQ, Label: v.T.NewResetLink},
			templates.PageLink{Href: base + "/signin" + langQ, Label: v.T.SignIn})
	}
	p.message(c, http.StatusUnprocessableEntity, v, v.T.BadLink, v.T.BadLinkText, links...)
}

// pageFieldErrors turns a validation error into the fields' messages in the page's language;
// ok is false when err is not a validation error.
func pageFieldErrors(v templates.AccountView, err error) (map[string]string, bool) {
	var e *identity.Error
	if !errors.As(err, &e) || e.Code != identity.EInvalid || len(e.Fields) == 0 {
		return nil, false
	}
	out := map[string]string{}
	for _, f := range e.Fields {
		switch {
		case f.Field == "new_email" && f.Message == accounts.SameEmailMessage:
			out[f.Field] = v.T.SameEmail
		case f.Field == "current_password":
			out[f.Field] = v.T.CurrentWrong
		default:
			out[f.Field] = FieldText(v.T.FieldTexts, f)
		}
	}
	return out, true
}

// FieldText is what the account forms say of a field the accounts service refused, in the
// language of texts. The service's own messages are English, for the API.
func FieldText(texts templates.FieldTexts, f identity.FieldError) string {
	switch f.Field {
	case "email", "new_email":
		return texts.BadEmail
	case "birth_year":
		return texts.BadBirthYear
	case "password", "new_password":
		switch f.Message {
		case password.ErrTooShort.Error():
			return texts.PasswordShort
		case password.ErrTooLong.Error():
			return texts.PasswordLong
		case password.ErrRepeated.Error():
			return texts.PasswordRepeated
		case password.ErrInvalidText.Error():
			return texts.PasswordInvalid
		}
	}
	return texts.BadPassword
}

// Links between the tenant's pages.
func tenantPath(t *identity.Tenant, page string) string {
	return "/t/" + url.PathEscape(t.Slug) + "/" + page
}

func withLang(path, lang string) string { return path + "?lang=" + lang }

// --- Sessions and the cookie ---

// session returns the live session the request's cookie names, or nil. raw is the cookie's
// value, "" without one. err is only for failures of the database.
func (p *Pages) session(c *gin.Context) (sess *accounts.Session, raw string, err error) {
	ck, cerr := c.Request.Cookie(accounts.CookieName)
	if cerr != nil || ck.Value == "" {
		return nil, "", nil
	}
	sess, err = p.acc.Session(c.Request.Context(), ck.Value)
	if identity.IsCode(err, identity.EUnauthorized) {
		return nil, ck.Value, nil
	}
	return sess, ck.Value, err
}

// signedIn starts using a new session: the cookie gets the new session's token, and a
// session the browser held before (of this tenant or another) ends, so that no older
// cookie value, planted or not, outlives a sign-in.
func (p *Pages) signedIn(c *gin.Context, sess *accounts.Session) {
	p.startSession(c, sess)
	c.Redirect(http.StatusSeeOther, "/account")
	c.Abort()
}

// startSession ends the browser's previous session, if any, and sets the new one's cookie.
func (p *Pages) startSession(c *gin.Context, sess *accounts.Session) {
	if old, _, err := p.session(c); err == nil && old != nil {
		if err := p.acc.SignOut(c.Request.Context(), old); err != nil {
			p.log.WarnContext(c.Request.Context(), "end the previous session", "err", err)
		}
	}
	maxAge := int(sess.ExpiresAt.Sub(p.now()).Seconds())
	http.SetCookie(c.Writer, &http.Cookie{Name: accounts.CookieName, Value: sess.Token, Path: "/",
		Expires: sess.ExpiresAt.UTC(), MaxAge: max(maxAge, 1), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// clearCookie tells the browser to forget the session cookie.
func clearCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: accounts.CookieName, Value: "", Path: "/", MaxAge: -1,
		Expires: time.Unix(0, 0), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// signedInTenant returns the session and its tenant, or answers for a person who is not
// signed in: 303 to the tenant's sign-in page when the cookie still names a tenant, else a
// 401 page.
func (p *Pages) signedInTenant(c *gin.Context) (*accounts.Session, *identity.Tenant, bool) {
	ctx := c.Request.Context()
	sess, raw, err := p.session(c)
	if err != nil {
		p.fail(c, p.view(c, nil, p.lang(c)), err)
		return nil, nil, false
	}
	if sess != nil {
		t, err := p.ids.Tenant(ctx, sess.TenantID)
		if err != nil {
			p.fail(c, p.view(c, nil, p.lang(c)), err)
			return nil, nil, false
		}
		return sess, t, true
	}
	if raw != "" {
		clearCookie(c) // it names no live session
		if tenantID, _, ok := accounts.SplitToken(raw); ok {
			if t, err := p.ids.Tenant(ctx, tenantID); err == nil {
				c.Redirect(http.StatusSeeOther, withLang(tenantPath(t, "signin"), p.lang(c, t.DefaultLanguage)))
				c.Abort()
				return nil, nil, false
			}
		}
	}
	v := p.view(c, nil, p.lang(c))
	p.message(c, http.StatusUnauthorized, v, v.T.SignInFirst, v.T.SignInFirstText)
	return nil, nil, false
}

// --- Registration ---

func (p *Pages) registerView(c *gin.Context, t *identity.Tenant) templates.AccountView {
	v := p.view(c, t, p.lang(c, t.DefaultLanguage))
	v.Action = tenantPath(t, "register")
	v.AskBirthYear = t.AgeOfConsent > 0
	v.Links = []templates.PageLink{{Href: withLang(tenantPath(t, "signin"), v.Lang), Label: v.T.SignIn}}
	p.providerButtons(c, t, &v)
	return v
}

// RegisterForm is GET /t/{slug}/register.
func (p *Pages) RegisterForm(c *gin.Context) {
	p.render(c, http.StatusOK, templates.RegisterPage(p.registerView(c, pageTenant(c))))
}

// Register is POST /t/{slug}/register. Whether or not the address has an account, the
// answer is the same "check your email" page; the owner of an existing account is told
// by email instead.
func (p *Pages) Register(c *gin.Context) {
	t := pageTenant(c)
	v := p.registerView(c, t)
	v.Email = formValue(c, "email")
	v.BirthYear = formValue(c, "birth_year")
	birthYear, _ := strconv.Atoi(v.BirthYear)
	if v.AskBirthYear && birthYear == 0 {
		// The tenant's minimum age rule: registration asks the year of birth.
		v.Fields = map[string]string{"birth_year": v.T.BadBirthYear}
		p.render(c, http.StatusUnprocessableEntity, templates.RegisterPage(v))
		return
	}
	_, err := p.acc.Register(c.Request.Context(), t.ID, t.Slug, accounts.Registration{
		Email: v.Email, Password: formValue(c, "password"), Language: v.Lang, BirthYear: birthYear})
	if fields, ok := pageFieldErrors(v, err); ok {
		v.Fields = fields
		p.render(c, http.StatusUnprocessableEntity, templates.RegisterPage(v))
		return
	}
	if err != nil {
		p.fail(c, v, err)
		return
	}
	v.Text = v.T.RegisterSent
	v.Links = []templates.PageLink{{Href: withLang(tenantPath(t, "signin"), v.Lang), Label: v.T.SignIn}}
	p.render(c, http.StatusOK, templates.CheckEmailPage(v))
}

// --- Sign-in ---

func (p *Pages) signInView(c *gin.Context, t *identity.Tenant) templates.AccountView {
	v := p.view(c, t, p.lang(c, t.DefaultLanguage))
	v.Action = tenantPath(t, "signin")
	v.Links = []templates.PageLink{
		{Href: withLang(tenantPath(t, "reset"), v.Lang), Label: v.T.Forgot},
		{Href: withLang(tenantPath(t, "signin-link"), v.Lang), Label: v.T.SignInLink},
		{Href: withLang(tenantPath(t, "register"), v.Lang), Label: v.T.NoAccount + " " + v.T.Register},
	}
	p.providerButtons(c, t, &v)
	return v
}

// SignInForm is GET /t/{slug}/signin. Someone already signed in to this tenant goes on to
// the account; a session of another tenant counts for nothing here. With ?connect (or
// ?again) the form shows even so: connecting an identity provider, and changing the email
// address of an account without a password, need a fresh sign-in.
func (p *Pages) SignInForm(c *gin.Context) {
	t := pageTenant(c)
	sess, _, err := p.session(c)
	if err != nil {
		p.fail(c, p.view(c, t, p.lang(c, t.DefaultLanguage)), err)
		return
	}
	if sess != nil && sess.TenantID == t.ID && c.Query("connect") == "" && c.Query("again") == "" {
		c.Redirect(http.StatusSeeOther, "/account")
		return
	}
	v := p.signInView(c, t)
	switch c.Query("done") {
	case "signout":
		v.Notice = v.T.SignedOut
	case "signout-all":
		v.Notice = v.T.SignedOutAll
	}
	p.render(c, http.StatusOK, templates.SignInPage(v))
}

// SignIn is POST /t/{slug}/signin. Every failure shows the one message, whether the
// address has no account, is not verified, or the password is wrong.
func (p *Pages) SignIn(c *gin.Context) {
	t := pageTenant(c)
	v := p.signInView(c, t)
	v.Email = formValue(c, "email")
	// Counted per clientKey, as the other limits are: one IPv6 subscriber holds a whole /64.
	sess, err := p.acc.SignIn(c.Request.Context(), t.ID, v.Email, formValue(c, "password"), clientKey(ClientIP(c)))
	if errors.Is(err, accounts.ErrSignIn) {
		v.Error = v.T.SignInFailed
		p.render(c, http.StatusUnprocessableEntity, templates.SignInPage(v))
		return
	}
	if err != nil {
		p.fail(c, v, err)
		return
	}
	p.signedIn(c, sess)
}

// --- Requests for one-time links ---

// linkKind describes one kind of one-time link: how it is asked for and used.
type linkKind struct {
	purpose string // accounts.LinkVerify, LinkSignIn, LinkReset
	request string // the tenant page that asks for one ("" for verification)
	path    string // the page the email links to
}

var (
	verifyLink = linkKind{accounts.LinkVerify, "", "/account/verify"}
	signInLink = linkKind{accounts.LinkSignIn, "signin-link", "/account/signin-link"}
	resetLink  = linkKind{accounts.LinkReset, "reset", "/account/reset"}
)

func (p *Pages) requestView(c *gin.Context, t *identity.Tenant, k linkKind) templates.AccountView {
	v := p.view(c, t, p.lang(c, t.DefaultLanguage))
	v.Action = tenantPath(t, k.request)
	v.Heading = v.T.SignInLink
	if k.purpose == accounts.LinkReset {
		v.Heading = v.T.Reset
	}
	v.Links = []templates.PageLink{{Href: withLang(tenantPath(t, "signin"), v.Lang), Label: v.T.BackToSignIn}}
	return v
}

// SignInLinkForm is GET /t/{slug}/signin-link.
func (p *Pages) SignInLinkForm(c *gin.Context) { p.requestForm(c, signInLink) }

// RequestSignInLink is POST /t/{slug}/signin-link.
func (p *Pages) RequestSignInLink(c *gin.Context) { p.requestLink(c, signInLink) }

// ResetForm is GET /t/{slug}/reset.
func (p *Pages) ResetForm(c *gin.Context) { p.requestForm(c, resetLink) }

// RequestReset is POST /t/{slug}/reset.
func (p *Pages) RequestReset(c *gin.Context) { p.requestLink(c, resetLink) }

func (p *Pages) requestForm(c *gin.Context, k linkKind) {
	p.render(c, http.StatusOK, templates.RequestLinkPage(p.requestView(c, pageTenant(c), k)))
}

// requestLink sends a link when the address may have one, and says "check your email"
// either way.
func (p *Pages) requestLink(c *gin.Context, k linkKind) {
	t := pageTenant(c)
	v := p.requestView(c, t, k)
	v.Email = formValue(c, "email")
	request := p.acc.RequestSignInLink
	if k.purpose == accounts.LinkReset {
		request = p.acc.RequestReset
	}
	err := request(c.Request.Context(), t.ID, v.Email, v.Lang)
	if fields, ok := pageFieldErrors(v, err); ok {
		v.Fields = fields
		p.render(c, http.StatusUnprocessableEntity, templates.RequestLinkPage(v))
		return
	}
	if err != nil {
		p.fail(c, v, err)
		return
	}
	v.Text = v.T.CheckEmailText
	p.render(c, http.StatusOK, templates.CheckEmailPage(v))
}

// --- Using one-time links ---

// linkView is the view of a page reached by an emailed link: the tenant and language come
// from the link's token.
func (p *Pages) linkView(c *gin.Context, token string) (templates.AccountView, error) {
	var t *identity.Tenant
	if tenantID, _, ok := accounts.SplitToken(token); ok {
		var err error
		t, err = p.ids.Tenant(c.Request.Context(), tenantID)
		if identity.IsCode(err, identity.ENotFound) {
			t = nil
		} else if err != nil {
			return p.view(c, nil, p.lang(c)), err
		}
	}
	return p.view(c, t, p.lang(c, tenantLang(t))), nil
}

// confirmForm shows the button that uses a link; the GET itself uses nothing, since mail
// scanners fetch links. A link that would not work says so at once.
func (p *Pages) confirmForm(c *gin.Context, k linkKind) {
	token := c.Query("t")
	v, err := p.linkView(c, token)
	if err == nil {
		err = p.acc.CheckLink(c.Request.Context(), token, k.purpose)
	}
	if errors.Is(err, accounts.ErrLink) {
		p.badLink(c, v, k.purpose)
		return
	}
	if err != nil {
		p.fail(c, v, err)
		return
	}
	v.Token, v.Action = token, k.path
	switch k.purpose {
	case accounts.LinkVerify:
		v.Heading, v.Text, v.Button = v.T.Verify, v.T.VerifyIntro, v.T.VerifyButton
	case accounts.LinkSignIn:
		v.Heading, v.Text, v.Button = v.T.SignIn, v.T.LinkIntro, v.T.LinkButton
	case accounts.LinkEmailChange:
		v.Heading, v.Text, v.Button = v.T.ConfirmEmail, v.T.ConfirmEmailIntro, v.T.ConfirmEmailButton
	case accounts.LinkReset:
		p.render(c, http.StatusOK, templates.ResetPage(v))
		return
	}
	p.render(c, http.StatusOK, templates.ConfirmLinkPage(v))
}

// VerifyForm is GET /account/verify?t=….
func (p *Pages) VerifyForm(c *gin.Context) { p.confirmForm(c, verifyLink) }

// SignInLinkConfirm is GET /account/signin-link?t=….
func (p *Pages) SignInLinkConfirm(c *gin.Context) { p.confirmForm(c, signInLink) }

// NewPasswordForm is GET /account/reset?t=….
func (p *Pages) NewPasswordForm(c *gin.Context) { p.confirmForm(c, resetLink) }

// useLink uses the form's link and signs the person in.
func (p *Pages) useLink(c *gin.Context, k linkKind, use func(ctx context.Context, token string) (*accounts.Session, error)) {
	token := formValue(c, "t")
	v, err := p.linkView(c, token)
	if err != nil {
		p.fail(c, v, err)
		return
	}
	sess, err := use(c.Request.Context(), token)
	if errors.Is(err, accounts.ErrLink) {
		p.badLink(c, v, k.purpose)
		return
	}
	if fields, ok := pageFieldErrors(v, err); ok {
		v.Fields, v.Token, v.Action = fields, token, k.path
		p.render(c, http.StatusUnprocessableEntity, templates.ResetPage(v))
		return
	}
	if err != nil {
		p.fail(c, v, err)
		return
	}
	p.signedIn(c, sess)
}

// Verify is POST /account/verify: the address is confirmed and the person signed in.
func (p *Pages) Verify(c *gin.Context) { p.useLink(c, verifyLink, p.acc.Verify) }

// SignInWithLink is POST /account/signin-link.
func (p *Pages) SignInWithLink(c *gin.Context) { p.useLink(c, signInLink, p.acc.SignInWithLink) }

// NewPassword is POST /account/reset: the new password is set, every other session ends,
// and the person is signed in.
func (p *Pages) NewPassword(c *gin.Context) {
	pw := formValue(c, "password")
	p.useLink(c, resetLink, func(ctx context.Context, token string) (*accounts.Session, error) {
		return p.acc.Reset(ctx, token, pw)
	})
}

// --- The account ---

func (p *Pages) accountView(c *gin.Context, sess *accounts.Session, t *identity.Tenant) (templates.AccountView, error) {
	a, err := p.acc.Get(c.Request.Context(), sess.TenantID, sess.AccountID)
	if err != nil {
		return p.view(c, t, p.lang(c, t.DefaultLanguage)), err
	}
	v := p.view(c, t, p.lang(c, a.Language, t.DefaultLanguage))
	v.Account = &templates.AccountInfo{Email: a.Email, Verified: a.EmailVerified, Name: a.Name, HasPassword: a.HasPassword}
	if err := p.loginAccountView(c, sess, t, &v); err != nil {
		return v, err
	}
	return v, nil
}

// Account is GET /account.
func (p *Pages) Account(c *gin.Context) {
	sess, t, ok := p.signedInTenant(c)
	if !ok {
		return
	}
	v, err := p.accountView(c, sess, t)
	if err != nil {
		p.fail(c, v, err)
		return
	}
	switch c.Query("done") {
	case "password":
		v.Notice = v.T.PasswordChanged
	case "email":
		v.Notice = v.T.EmailChanged
	case "connected":
		v.Notice = p.connectedNotice(c, t, v, v.T.Connected)
	case "disconnected":
		v.Notice = p.connectedNotice(c, t, v, v.T.Disconnected)
	}
	p.render(c, http.StatusOK, templates.AccountPage(v))
}

// ChangePassword is POST /account/password: every session of the account ends, and this
// browser goes on in a new one (a copy of its old cookie is worth nothing).
func (p *Pages) ChangePassword(c *gin.Context) {
	sess, t, ok := p.signedInTenant(c)
	if !ok {
		return
	}
	fresh, err := p.acc.ChangePassword(c.Request.Context(), sess, formValue(c, "current_password"), formValue(c, "new_password"))
	if err == nil {
		p.startSession(c, fresh)
		c.Redirect(http.StatusSeeOther, "/account?done=password")
		return
	}
	v, verr := p.accountView(c, sess, t)
	if verr != nil {
		p.fail(c, v, verr)
		return
	}
	if fields, ok := pageFieldErrors(v, err); ok {
		v.Fields = fields
		p.render(c, http.StatusUnprocessableEntity, templates.AccountPage(v))
		return
	}
	p.fail(c, v, err)
}

// Withdrawer withdraws every consent of a person, through the ledger.
type Withdrawer interface {
	WithdrawAll(ctx context.Context, tenantID string, id identity.Identifier, method, reason string) (int, error)
}

// SetWithdrawer lets account deletion withdraw the person's consents.
func (p *Pages) SetWithdrawer(w Withdrawer) { p.withdraw = w }

// DeleteAccount is POST /account/delete: the account stops working, the person's consents
// are withdrawn at once (and so delivered downstream), and an erasure request is opened. The
// form asks for a ticked confirmation, so that no stray press deletes anything.
func (p *Pages) DeleteAccount(c *gin.Context) {
	sess, t, ok := p.signedInTenant(c)
	if !ok {
		return
	}
	lang := p.lang(c, t.DefaultLanguage)
	if formValue(c, "confirm") != "yes" {
		c.Redirect(http.StatusSeeOther, "/account?lang="+lang)
		return
	}
	ctx := c.Request.Context()
	// The consents are withdrawn before the account goes: a withdrawal that fails leaves
	// the account as it was, so the person, still signed in, can try again; the other way
	// round they would be signed out of an account that no longer exists, with their
	// consents still given.
	a, err := p.acc.Get(ctx, sess.TenantID, sess.AccountID)
	if err == nil && p.withdraw != nil {
		var person *identity.Identifier
		if person, err = p.personIdentifier(ctx, t, sess.SubjectID, a.Email); err == nil && person != nil {
			_, err = p.withdraw.WithdrawAll(ctx, t.ID, *person, "dashboard", "account_deleted")
		}
	}
	if err == nil {
		_, err = p.acc.Delete(ctx, sess)
	}
	if err != nil {
		p.fail(c, p.view(c, t, lang), err)
		return
	}
	clearCookie(c)
	v := p.view(c, t, lang)
	p.message(c, http.StatusOK, v, v.T.Deleted, v.T.DeletedText)
}

// personIdentifier names the person of an account for the ledger: the address, or — for an
// account an identity provider made without one — the provider's identity.
func (p *Pages) personIdentifier(ctx context.Context, t *identity.Tenant, subjectID, email string) (*identity.Identifier, error) {
	if email != "" {
		return &identity.Identifier{Kind: identity.IDEmail, Value: email}, nil
	}
	ids, err := p.ids.IdentifierValues(ctx, t.ID, subjectID, identity.IDIdP)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	return &ids[0], nil
}

// SignOut is POST /account/signout.
func (p *Pages) SignOut(c *gin.Context) { p.signOut(c, false) }

// SignOutEverywhere is POST /account/signout-all: every session of the account ends.
func (p *Pages) SignOutEverywhere(c *gin.Context) { p.signOut(c, true) }

func (p *Pages) signOut(c *gin.Context, everywhere bool) {
	sess, t, ok := p.signedInTenant(c)
	if !ok {
		return
	}
	end, done := p.acc.SignOut, "signout"
	if everywhere {
		end, done = p.acc.SignOutEverywhere, "signout-all"
	}
	if err := end(c.Request.Context(), sess); err != nil {
		p.fail(c, p.view(c, t, p.lang(c, t.DefaultLanguage)), err)
		return
	}
	clearCookie(c)
	c.Redirect(http.StatusSeeOther, tenantPath(t, "signin")+"?done="+done+"&lang="+p.lang(c, t.DefaultLanguage))
}

// --- The development mailbox ---

var mailLinkRe = regexp.MustCompile(`https?://[^\s<>"]+`)

// mailParts cuts a message's text into plain text and links.
func mailParts(text string) []templates.MailPart {
	var parts []templates.MailPart
	last := 0
	for _, m := range mailLinkRe.FindAllStringIndex(text, -1) {
		end := m[1]
		for end > m[0] && strings.ContainsRune(".,;:)!?", rune(text[end-1])) {
			end--
		}
		if m[0] > last {
			parts = append(parts, templates.MailPart{Text: text[last:m[0]]})
		}
		parts = append(parts, templates.MailPart{Text: text[m[0]:end], Href: text[m[0]:end]})
		last = end
	}
	if last < len(text) {
		parts = append(parts, templates.MailPart{Text: text[last:]})
	}
	return parts
}

// Mailbox is GET /dev/mailbox: the development mailbox, newest first. It shows sign-in
// links to anyone who can reach it, so routes.go serves it only when configured to.
func (p *Pages) Mailbox(c *gin.Context) {
	v := p.view(c, nil, p.lang(c))
	if p.mailbox != nil {
		for _, m := range p.mailbox.List() {
			v.Mailbox = append(v.Mailbox, templates.MailboxItem{ID: m.ID, To: m.To, Subject: m.Subject, Text: m.Text,
				At: m.Time.UTC().Format(time.RFC3339), Parts: mailParts(m.Text)})
		}
	}
	p.render(c, http.StatusOK, templates.MailboxPage(v))
}
