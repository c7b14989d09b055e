package consentweb

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/templates"
)

// Registration serves the registration widget's form: a page that sites show in an iframe
// (the registration loader in static/ makes it), so that their own scripts cannot read the
// email address or the password. Submitting it creates the account and records each box as
// a decision, in one transaction.
type Registration struct {
	h     *Handlers
	acc   *accounts.Service
	pages *identityweb.Pages // provider sign-ins (register_login.go), or nil
}

// NewRegistration returns the registration form's handlers.
func NewRegistration(h *Handlers, acc *accounts.Service) *Registration {
	return &Registration{h: h, acc: acc}
}

// Form shows the form (GET /register?property=pk_…&lang=fi&origin=https://shop.example).
// With done=signin it says that the person who came back from a provider is registered
// (the loader asks for it when the page's URL ends in #lupa-registered).
func (r *Registration) Form(c *gin.Context) {
	v, p, status := r.view(c, c.Query("property"), c.Query("origin"), c.Query("lang"))
	if p == nil {
		r.render(c, status, v, nil)
		return
	}
	if c.Query("done") == "signin" {
		v.Done, v.SignedIn = true, true
	}
	r.render(c, http.StatusOK, v, p)
}

// Submit creates the account with the form's decisions (POST /register).
func (r *Registration) Submit(c *gin.Context) {
	if !r.readForm(c) {
		return
	}
	v, p, status := r.view(c, c.PostForm("property"), c.PostForm("origin"), c.PostForm("lang"))
	if p == nil {
		r.render(c, status, v, nil)
		return
	}
	ctx := c.Request.Context()
	checked := keep(c, &v)
	birthYear, _ := strconv.Atoi(v.BirthYear)
	form, err := r.h.svc.RegistrationForm(ctx, p, v.Lang)
	if err != nil {
		r.h.api.Fail(c, err)
		return
	}
	if c.PostForm("ui") != form.UIHash {
		// The texts changed while the form was open: show the new ones and ask again.
		v.Error = v.T.FormChanged
		r.render(c, http.StatusConflict, v, p)
		return
	}
	t, err := r.h.ids.Tenant(ctx, p.TenantID)
	if err != nil {
		r.h.api.Fail(c, err)
		return
	}
	prep, err := r.acc.PrepareRegistration(ctx, p.TenantID, t.Slug, accounts.Registration{Email: v.Email,
		Password: c.PostForm("password"), Language: v.Lang, BirthYear: birthYear})
	if r.formError(c, &v, p, err) {
		return
	}
	if prep != nil {
		var boxes []consent.DecisionInput
		for _, fp := range form.Purposes {
			d := consent.DecisionInput{Purpose: fp.Key, Version: fp.Version, Decision: consent.Denied, TextHash: fp.TextHash}
			if checked[fp.Key] {
				d.Decision = consent.Granted
			}
			boxes = append(boxes, d)
		}
		_, err := r.h.svc.Register(ctx, consent.Registration{Property: p, Email: prep.Email(), Language: v.Lang,
			UIHash: form.UIHash, Boxes: boxes, Account: prep.Statements, BirthYear: birthYear})
		if identity.IsCode(err, identity.EConflict) {
			err = nil // registered at the same moment by another request: the same answer
		}
		if r.formError(c, &v, p, err) {
			return
		}
		if prep.Account != nil {
			prep.Done(ctx)
			r.joinDevice(ctx, p, c.PostForm("device"), identity.Identifier{Kind: identity.IDEmail, Value: prep.Email()},
				consent.MergeRegistration)
		}
	}
	// The same page whether or not the address had an account: the form reveals nothing.
	v.Done = true
	r.render(c, http.StatusOK, v, p)
}

// keep puts back into the form what the person entered, the password aside, and returns the
// boxes ticked by purpose.
func keep(c *gin.Context, v *templates.RegisterView) map[string]bool {
	v.Email = strings.TrimSpace(c.PostForm("email"))
	v.BirthYear = strings.TrimSpace(c.PostForm("birth_year"))
	checked := map[string]bool{}
	for i := range v.Purposes {
		v.Purposes[i].Checked = c.PostForm("purpose_"+v.Purposes[i].Key) == "on"
		checked[v.Purposes[i].Key] = v.Purposes[i].Checked
	}
	return checked
}

// Limit refuses a client over any of limits with the form itself, saying so in the form's
// language and keeping what was entered. The limits' own 429 pages would not show: the
// form is in an iframe, and they may not be framed (X-Frame-Options), so the person would
// see the frame go blank.
func (r *Registration) Limit(limits ...func(*gin.Context) (bool, time.Duration)) gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, allow := range limits {
			if ok, wait := allow(c); !ok {
				c.Abort()
				r.throttled(c, wait)
				return
			}
		}
		c.Next()
	}
}

// throttled answers 429 with the form, framed as it is everywhere else.
func (r *Registration) throttled(c *gin.Context, wait time.Duration) {
	if !r.readForm(c) {
		return
	}
	identityweb.RetryAfter(c, wait.Seconds())
	v, p, status := r.view(c, c.PostForm("property"), c.PostForm("origin"), c.PostForm("lang"))
	if p == nil {
		r.render(c, status, v, nil)
		return
	}
	keep(c, &v)
	v.Error = v.T.Throttled
	r.render(c, http.StatusTooManyRequests, v, p)
}

// formError shows a form error and says whether there was one.
func (r *Registration) formError(c *gin.Context, v *templates.RegisterView, p *identity.Property, err error) bool {
	if err == nil {
		return false
	}
	var ie *identity.Error
	if errors.As(err, &ie) && (ie.Code == identity.EInvalid || ie.Code == identity.EUnprocessable) && len(ie.Fields) > 0 {
		v.Fields = map[string]string{}
		for _, f := range ie.Fields {
			v.Fields[f.Field] = fieldText(v.T, f)
		}
		r.render(c, http.StatusUnprocessableEntity, *v, p)
		return true
	}
	if identity.IsCode(err, identity.EUnavailable) {
		c.Header("Retry-After", "2")
		v.Error = v.T.Busy
		r.render(c, http.StatusServiceUnavailable, *v, p)
		return true
	}
	r.h.api.Fail(c, err)
	return true
}

// fieldText is what the form says of a refused field, in the form's language: the services'
// own messages are English, for the API.
func fieldText(t templates.RegisterText, f identity.FieldError) string {
	if strings.HasPrefix(f.Field, "purpose_") {
		return t.TooYoung // the age rule is the one rule on a box
	}
	return identityweb.FieldText(t.FieldTexts, f)
}

// view builds the form for a property and an embedding origin; p is nil (with the status
// to answer) when the property is unknown or the origin is not one of its own.
func (r *Registration) view(c *gin.Context, pk, origin, lang string) (templates.RegisterView, *identity.Property, int) {
	if _, ok := templates.RegisterTexts[lang]; !ok {
		lang = "en"
	}
	v := templates.RegisterView{Lang: lang, T: templates.RegisterTexts[lang], Property: pk}
	if !strings.HasPrefix(pk, "pk_") || len(pk) > 64 {
		v.Error = v.T.UnknownProperty
		return v, nil, http.StatusNotFound
	}
	p, err := r.h.ids.PropertyByKey(c.Request.Context(), pk)
	if err != nil {
		v.Error = v.T.UnknownProperty
		return v, nil, http.StatusNotFound
	}
	if p.Kind != identity.PropertyWeb || !p.AllowsOrigin(origin) {
		v.Error = v.T.NotAllowed
		return v, nil, http.StatusForbidden
	}
	form, err := r.h.svc.RegistrationForm(c.Request.Context(), p, lang)
	if err != nil {
		v.Error = v.T.FormUnavailable
		return v, nil, http.StatusInternalServerError
	}
	v.Origin, v.Controller, v.PolicyURL, v.UIHash = identity.NormalizeOrigin(origin), form.Controller, form.PolicyURL, form.UIHash
	v.AskBirthYear = form.AskBirthYear
	r.providerButtons(c, p, &v)
	for _, fp := range form.Purposes {
		v.Purposes = append(v.Purposes, templates.RegisterPurpose{Key: fp.Key, Title: fp.Title, Description: fp.Description,
			Lang: fp.Lang, PolicyURL: fp.PolicyURL, Recipients: fp.Recipients, DoubleOptIn: fp.DoubleOptIn})
	}
	return v, p, http.StatusOK
}

// render writes the page. Only the property's own origins may frame it.
func (r *Registration) render(c *gin.Context, status int, v templates.RegisterView, p *identity.Property) {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	v.Nonce = base64.StdEncoding.EncodeToString(nonce)
	ancestors := "'none'"
	if p != nil && len(p.AllowedOrigins) > 0 {
		ancestors = strings.Join(p.AllowedOrigins, " ")
		c.Writer.Header().Del("X-Frame-Options") // frame-ancestors says who may frame it
	}
	// form-action names the providers too: browsers hold the redirect that answers a
	// provider button's POST to it.
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+v.Nonce+"'; script-src 'nonce-"+v.Nonce+
		"'; form-action "+strings.Join(append([]string{"'self'"}, v.FormOrigins...), " ")+"; frame-ancestors "+ancestors+"; base-uri 'none'")
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := templates.Register(v).Render(c.Request.Context(), c.Writer); err != nil {
		r.h.api.Log.Error("render registration form", "err", err)
	}
}

// joinDevice joins the anonymous history of the browser's device (its id came with the
// form, from the consent cookie of the site) to the person who registered or, through a
// provider that knew them already, signed in (reason says which). A device that is unknown
// or already someone's is left as it is: the registration stands either way.
func (r *Registration) joinDevice(ctx context.Context, p *identity.Property, device string, person identity.Identifier, reason string) {
	if !identity.ValidDeviceID(device) {
		return
	}
	_, err := r.h.svc.LinkDevice(ctx, p, identity.Identifier{Kind: identity.IDDevice, Value: device}, person,
		reason, "subject")
	if err != nil && !identity.IsCode(err, identity.ENotFound) && !identity.IsCode(err, identity.EConflict) {
		r.h.api.Log.Warn("link the registering device", "err", err)
	}
}
