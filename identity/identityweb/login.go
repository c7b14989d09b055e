package identityweb

// Sign-in through the tenant's identity providers (OpenID Connect, Facebook): the
// "Continue with …" buttons of the sign-in and registration pages, the start of a flow,
// the provider's callback, and the connection of an identity to an account that the
// linking rule would not let the identity enter on its own (identity/login,
// accounts.SignInExternal).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/login"
	"github.com/lupa-cmp/lupa/templates"
)

// Sign-ins begun with identity providers per client address: a burst of loginLimitBurst,
// then one a second. Each writes a flow row and sends the browser to the provider.
const (
	loginLimitRate  = 1
	loginLimitBurst = 30
)

func setLoginCookie(c *gin.Context, value string, maxAge time.Duration) {
	http.SetCookie(c.Writer, &http.Cookie{Name: login.CookieName, Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func clearLoginCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: login.CookieName, Value: "", Path: "/", MaxAge: -1,
		Expires: time.Unix(0, 0), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func loginCookie(c *gin.Context) string {
	ck, err := c.Request.Cookie(login.CookieName)
	if err != nil {
		return ""
	}
	return ck.Value
}

// providerButtons adds the tenant's "Continue with …" buttons to a page, and lets the
// page's forms end up at the providers (CSP form-action). A failure costs the buttons, not
// the page.
func (p *Pages) providerButtons(c *gin.Context, t *identity.Tenant, v *templates.AccountView) {
	if p.login == nil {
		return
	}
	buttons, origins, err := p.login.Buttons(c.Request.Context(), t, v.Lang)
	if err != nil {
		p.log.WarnContext(c.Request.Context(), "list login providers", "err", err)
		return
	}
	for _, b := range buttons {
		v.Providers = append(v.Providers, templates.ProviderButton{Action: tenantPath(t, "login/"+url.PathEscape(b.ProviderID)),
			Label: templates.WithProvider(v.T.ContinueWith, b.Label)})
	}
	if len(origins) > 0 {
		c.Header("Content-Security-Policy", pageCSP(v.Nonce, origins...))
	}
}

// LoginLimit limits the sign-ins begun with identity providers per client address.
func (p *Pages) LoginLimit() gin.HandlerFunc {
	return func(c *gin.Context) {
		if ok, wait := p.LoginAllowed(c); !ok {
			RetryAfter(c, wait.Seconds())
			v := p.view(c, pageTenant(c), p.lang(c, tenantLang(pageTenant(c))))
			p.message(c, http.StatusTooManyRequests, v, v.T.Throttled, v.T.ThrottledText)
			return
		}
		c.Next()
	}
}

// LoginAllowed is LoginLimit's check, for a page that answers a refusal its own way.
func (p *Pages) LoginAllowed(c *gin.Context) (bool, time.Duration) { return p.loginLim.AllowClient(c) }

// loginFailed is the one page every refused sign-in shows: it says nothing of why. The
// reason goes to the log, without personal data.
func (p *Pages) loginFailed(c *gin.Context, v templates.AccountView, ref *login.Refusal, back string) {
	p.log.InfoContext(c.Request.Context(), "sign-in with an identity provider refused", "route", c.FullPath(),
		"provider", c.Param("provider"), "reason", ref.Reason)
	p.message(c, http.StatusBadRequest, v, v.T.LoginFailed, v.T.LoginFailedText, templates.PageLink{Href: back, Label: v.T.BackToSignIn})
}

// loginUnavailable says the provider cannot be reached now (503).
func (p *Pages) loginUnavailable(c *gin.Context, v templates.AccountView, err error) {
	p.log.WarnContext(c.Request.Context(), "identity provider unavailable", "route", c.FullPath(), "provider", c.Param("provider"), "err", err)
	c.Header("Retry-After", "30")
	links := []templates.PageLink{}
	if v.Slug != "" {
		links = append(links, templates.PageLink{Href: "/t/" + url.PathEscape(v.Slug) + "/signin?lang=" + v.Lang, Label: v.T.BackToSignIn})
	}
	p.message(c, http.StatusServiceUnavailable, v, v.T.LoginUnavailable, v.T.LoginUnavailableText, links...)
}

// BeginLogin is POST /t/{slug}/login/{provider}: a new flow, bound to this browser by the
// __Host-lupa_oidc cookie, and a redirect to the provider.
func (p *Pages) BeginLogin(c *gin.Context) {
	t := pageTenant(c)
	p.StartLogin(c, t, c.Param("provider"), p.lang(c, t.DefaultLanguage), nil)
}

// LoginCallback is GET /t/{slug}/login/{provider}/callback, where the provider sends the
// browser back. The person is signed in (303 to /account), or — when the identity's
// address belongs to an account it may not enter — told to sign in to that account and
// connect the provider there.
func (p *Pages) LoginCallback(c *gin.Context) {
	t := pageTenant(c)
	binding := loginCookie(c)
	out, err := p.login.Callback(c.Request.Context(), t, c.Param("provider"), login.CallbackInput{Binding: binding,
		State: c.Query("state"), Code: c.Query("code"), Error: c.Query("error")})
	lang := p.lang(c, t.DefaultLanguage)
	if out != nil && supportedLang(out.Lang) && c.Query("lang") == "" {
		lang = out.Lang // the language the person began in
	}
	v := p.view(c, t, lang)
	var ref *login.Refusal
	switch {
	case errors.As(err, &ref):
		p.loginFailed(c, v, ref, withLang(tenantPath(t, "signin"), v.Lang))
		return
	case identity.IsCode(err, identity.EUnavailable):
		p.loginUnavailable(c, v, err)
		return
	case err != nil:
		p.fail(c, v, err)
		return
	}
	if out.Pending != nil {
		setLoginCookie(c, binding, login.PendingTTL)
		label := out.Pending.LabelIn(v.Lang)
		p.message(c, http.StatusOK, v, v.T.AccountExists, templates.WithProvider(v.T.AccountExistsText, label),
			templates.PageLink{Href: tenantPath(t, "signin") + "?connect=1&lang=" + v.Lang, Label: v.T.SignIn},
			templates.PageLink{Href: withLang(tenantPath(t, "signin-link"), v.Lang), Label: v.T.SignInLink},
			templates.PageLink{Href: withLang(tenantPath(t, "reset"), v.Lang), Label: v.T.Forgot})
		return
	}
	clearLoginCookie(c)
	if out.Extra != nil && p.widget != nil {
		// Begun in the registration widget: its boxes are recorded for the person, and the
		// browser goes back to the site's page.
		back, err := p.widget.FinishLogin(c.Request.Context(), t, out)
		if err != nil {
			p.fail(c, v, err)
			return
		}
		p.startSession(c, out.Session)
		c.Redirect(http.StatusSeeOther, back)
		return
	}
	p.signedIn(c, out.Session)
}

// WidgetLogin finishes sign-ins begun in the registration widget (consent/consentweb): the
// identity package knows nothing of consent, so the widget's part comes in through this.
type WidgetLogin interface {
	// FinishLogin records what the widget's form carried (out.Extra) for the person signed
	// in, and returns the URL of the site's page that the browser goes back to.
	FinishLogin(ctx context.Context, t *identity.Tenant, out *login.Outcome) (string, error)
}

// SetWidgetLogin plugs the registration widget's part of provider sign-ins in.
func (p *Pages) SetWidgetLogin(w WidgetLogin) { p.widget = w }

// StartLogin begins a sign-in with one of the tenant's providers for another page (the
// registration widget): the flow carries extra, and the browser goes to the provider. It
// answers the request either way.
func (p *Pages) StartLogin(c *gin.Context, t *identity.Tenant, providerID, lang string, extra []byte) {
	v := p.view(c, t, lang)
	start, err := p.login.Begin(c.Request.Context(), t, providerID, v.Lang, extra)
	switch {
	case identity.IsCode(err, identity.ENotFound):
		p.message(c, http.StatusNotFound, v, v.T.NotFound, v.T.NotFoundText)
		return
	case identity.IsCode(err, identity.EUnavailable):
		p.loginUnavailable(c, v, err)
		return
	case err != nil:
		p.fail(c, v, err)
		return
	}
	setLoginCookie(c, start.Binding, start.MaxAge)
	c.Redirect(http.StatusSeeOther, start.URL)
}

// Buttons returns a tenant's "Continue with …" buttons in a language (their form actions
// are relative to the tenant) and the providers' origins, for a page's CSP form-action.
func (p *Pages) Buttons(ctx context.Context, t *identity.Tenant, lang string) ([]login.Button, []string, error) {
	if p.login == nil {
		return nil, nil, nil
	}
	return p.login.Buttons(ctx, t, lang)
}

// ConnectProvider is POST /account/connect/{provider}: the identity waiting in this
// browser joins the signed-in person's account — the account its address named, in a
// session begun after the identity was offered.
func (p *Pages) ConnectProvider(c *gin.Context) {
	sess, t, ok := p.signedInTenant(c)
	if !ok {
		return
	}
	v := p.view(c, t, p.lang(c, t.DefaultLanguage))
	prov, err := p.login.Connect(c.Request.Context(), t, sess, c.Param("provider"), loginCookie(c))
	var ref *login.Refusal
	switch {
	case errors.Is(err, accounts.ErrSignInAgain):
		p.message(c, http.StatusUnauthorized, v, v.T.SignInFirst, v.T.SignInFirstText,
			templates.PageLink{Href: tenantPath(t, "signin") + "?connect=1&lang=" + v.Lang, Label: v.T.SignIn})
		return
	case errors.As(err, &ref):
		p.loginFailed(c, v, ref, "/account?lang="+v.Lang)
		return
	case err != nil:
		p.fail(c, v, err)
		return
	}
	clearLoginCookie(c)
	c.Redirect(http.StatusSeeOther, "/account?done=connected&provider="+url.QueryEscape(prov.ID))
}

// DisconnectProvider is POST /account/disconnect/{provider}: the person's identity from
// that provider no longer signs in to this account.
func (p *Pages) DisconnectProvider(c *gin.Context) {
	sess, t, ok := p.signedInTenant(c)
	if !ok {
		return
	}
	v := p.view(c, t, p.lang(c, t.DefaultLanguage))
	prov, err := p.login.Disconnect(c.Request.Context(), t, sess, c.Param("provider"))
	back := templates.PageLink{Href: "/account?lang=" + v.Lang, Label: v.T.BackToAccount}
	switch {
	case errors.Is(err, accounts.ErrLastWayIn):
		p.message(c, http.StatusConflict, v, v.T.LastWayIn, v.T.LastWayInText, back)
		return
	case errors.Is(err, accounts.ErrCompanyIdentity):
		p.message(c, http.StatusConflict, v, v.T.CompanyIdentity, v.T.CompanyIdentityText, back)
		return
	case identity.IsCode(err, identity.ENotFound):
		p.message(c, http.StatusNotFound, v, v.T.NotFound, v.T.NotFoundText, back)
		return
	case err != nil:
		p.fail(c, v, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/account?done=disconnected&provider="+url.QueryEscape(prov.ID)+"&lang="+v.Lang)
}

// loginAccountView adds to the account page the providers the person signs in with, and
// an identity waiting in this browser to be connected.
func (p *Pages) loginAccountView(c *gin.Context, sess *accounts.Session, t *identity.Tenant, v *templates.AccountView) error {
	if p.login == nil {
		return nil
	}
	ctx := c.Request.Context()
	connected, err := p.login.Connected(ctx, t, sess.SubjectID, v.Lang)
	if err != nil {
		return err
	}
	for _, cp := range connected {
		v.Account.Connected = append(v.Account.Connected, templates.ConnectedService{Label: cp.Label,
			DisconnectAction: "/account/disconnect/" + url.PathEscape(cp.ID)})
	}
	offer, err := p.login.PendingFor(ctx, t, sess, loginCookie(c))
	if err != nil || offer == nil {
		return err
	}
	label := offer.Provider.LabelIn(v.Lang)
	o := &templates.ConnectOffer{Action: "/account/connect/" + url.PathEscape(offer.Provider.ID),
		Button: templates.WithProvider(v.T.ConnectButton, label), Text: templates.WithProvider(v.T.ConnectText, label)}
	if offer.SignInAgain {
		o.SignInAgain, o.Text = true, templates.WithProvider(v.T.ConnectAgain, label)
		o.SignInHref = tenantPath(t, "signin") + "?connect=1&lang=" + v.Lang
	}
	v.Offer = o
	return nil
}

// connectedNotice is the account page's notice after a connection.
func (p *Pages) connectedNotice(c *gin.Context, t *identity.Tenant, v templates.AccountView, text string) string {
	if p.login == nil {
		return ""
	}
	prov, err := p.login.Get(c.Request.Context(), t, c.Query("provider"))
	if err != nil {
		return ""
	}
	return templates.WithProvider(text, prov.LabelIn(v.Lang))
}
