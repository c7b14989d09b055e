package consentweb

// "Continue with …" in the registration widget. The form's provider buttons post the form
// (without the password: the form's script empties it, and it is ignored here) to
// /register/login/{provider} with target _top: a sign-in leaves the site's page for the
// provider's, which will not be framed, and its cookie must be Lupa's first-party cookie.
// The boxes ticked, the site's page and the device travel sealed in the sign-in flow
// (identity/login); when the provider sends the browser back, FinishLogin records the boxes
// for the person and sends the browser back to the page, with #lupa-registered, which the
// registration loader turns into the lupa:registered event.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/identity/login"
	"github.com/lupa-cmp/lupa/templates"
)

// RegisteredFragment is what the browser's return to the site's page carries when a
// registration through a provider recorded the form.
const RegisteredFragment = "#lupa-registered"

// widgetFlow is the form carried through a provider sign-in.
type widgetFlow struct {
	Property  string   `json:"property"`
	Origin    string   `json:"origin"`
	Page      string   `json:"page"`
	Lang      string   `json:"lang"`
	UI        string   `json:"ui"`
	Granted   []string `json:"granted"`
	BirthYear int      `json:"birth_year,omitempty"`
	Device    string   `json:"device,omitempty"`
}

// SetPages lets the form show the tenant's provider buttons and begin their sign-ins.
func (r *Registration) SetPages(p *identityweb.Pages) { r.pages = p }

// BeginLogin is POST /register/login/{provider}: the form goes along to a provider.
func (r *Registration) BeginLogin(c *gin.Context) {
	if !r.readForm(c) {
		return
	}
	v, p, status := r.view(c, c.PostForm("property"), c.PostForm("origin"), c.PostForm("lang"))
	if p == nil {
		r.render(c, status, v, nil)
		return
	}
	if r.pages == nil {
		r.render(c, http.StatusNotFound, v, p)
		return
	}
	ctx := c.Request.Context()
	v.BirthYear = strings.TrimSpace(c.PostForm("birth_year"))
	birthYear, _ := strconv.Atoi(v.BirthYear)
	flow := widgetFlow{Property: p.PublicKey, Origin: v.Origin, Page: returnPage(c.PostForm("page"), v.Origin), Lang: v.Lang,
		UI: v.UIHash, BirthYear: birthYear}
	if d := c.PostForm("device"); identity.ValidDeviceID(d) {
		flow.Device = d
	}
	var boxes []consent.DecisionInput
	for i := range v.Purposes {
		v.Purposes[i].Checked = c.PostForm("purpose_"+v.Purposes[i].Key) == "on"
		d := consent.DecisionInput{Purpose: v.Purposes[i].Key, Decision: consent.Denied}
		if v.Purposes[i].Checked {
			d.Decision = consent.Granted
			flow.Granted = append(flow.Granted, v.Purposes[i].Key)
		}
		boxes = append(boxes, d)
	}
	if c.PostForm("ui") != v.UIHash {
		v.Error = v.T.FormChanged
		r.render(c, http.StatusConflict, v, p)
		return
	}
	// The age rule is told on the form, before the person leaves for the provider.
	if r.formError(c, &v, p, r.h.svc.CheckRegistration(ctx, p.TenantID, birthYear, boxes)) {
		return
	}
	t, err := r.h.ids.Tenant(ctx, p.TenantID)
	if err != nil {
		r.h.api.Fail(c, err)
		return
	}
	extra, err := json.Marshal(flow)
	if err != nil {
		r.h.api.Fail(c, err)
		return
	}
	r.pages.StartLogin(c, t, c.Param("provider"), v.Lang, extra)
}

// providerButtons adds the tenant's "Continue with …" buttons to the form. A failure costs
// the buttons, not the form.
func (r *Registration) providerButtons(c *gin.Context, p *identity.Property, v *templates.RegisterView) {
	if r.pages == nil {
		return
	}
	ctx := c.Request.Context()
	t, err := r.h.ids.Tenant(ctx, p.TenantID)
	if err != nil {
		r.h.api.Log.WarnContext(ctx, "registration form: tenant", "err", err)
		return
	}
	buttons, origins, err := r.pages.Buttons(ctx, t, v.Lang)
	if err != nil {
		r.h.api.Log.WarnContext(ctx, "registration form: login providers", "err", err)
		return
	}
	for _, b := range buttons {
		v.Providers = append(v.Providers, templates.ProviderButton{Action: "/register/login/" + url.PathEscape(b.ProviderID),
			Label: templates.WithProvider(v.T.ContinueWith, b.Label)})
	}
	// Browsers hold the whole redirect chain of a form's POST to form-action: a provider
	// that signs a known person in at once sends the browser straight back through Lupa to
	// the site's page, so the site's origin is named too.
	if len(origins) > 0 {
		v.FormOrigins = append(origins, v.Origin)
	}
}

// returnPage is where the browser goes back to: the site's page the form was on, when it
// is on the origin the form was framed by (checked against the property), else that
// origin's front page. Never anywhere else: no open redirect.
func returnPage(page, origin string) string {
	u, err := url.Parse(page)
	if err != nil || len(page) > 2048 || u.Scheme+"://"+u.Host != origin || u.User != nil {
		return origin + "/"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// FinishLogin records the form's boxes for the person the provider signed in (in the form's
// words: the form as shown must still be the form of today) and joins the device.
func (r *Registration) FinishLogin(ctx context.Context, t *identity.Tenant, out *login.Outcome) (string, error) {
	var flow widgetFlow
	if err := json.Unmarshal(out.Extra, &flow); err != nil {
		return "", err
	}
	p, err := r.h.ids.PropertyByKey(ctx, flow.Property)
	if err != nil || p.TenantID != t.ID || !p.AllowsOrigin(flow.Origin) {
		// The property changed meanwhile: the person is signed in, the form is not kept.
		return "/account", nil
	}
	back := returnPage(flow.Page, flow.Origin)
	form, err := r.h.svc.RegistrationForm(ctx, p, flow.Lang)
	if err != nil {
		return "", err
	}
	if form.UIHash != flow.UI {
		return back, nil // the texts changed during the sign-in: the form shows again
	}
	var boxes []consent.DecisionInput
	for _, fp := range form.Purposes {
		d := consent.DecisionInput{Purpose: fp.Key, Version: fp.Version, Decision: consent.Denied, TextHash: fp.TextHash}
		for _, k := range flow.Granted {
			if k == fp.Key {
				d.Decision = consent.Granted
			}
		}
		boxes = append(boxes, d)
	}
	if _, err := r.h.svc.RegisterSignedIn(ctx, consent.SignedInRegistration{Property: p, Person: out.Identity, Language: flow.Lang,
		UIHash: form.UIHash, Boxes: boxes, BirthYear: flow.BirthYear}); err != nil {
		var ie *identity.Error
		if errors.As(err, &ie) && len(ie.Fields) > 0 {
			return back, nil // the age rule changed during the sign-in: the form shows again
		}
		return "", err
	}
	// A provider that signed in a person Lupa knew already did not register anyone: the
	// ledger says so, as the person would.
	reason := consent.MergeRegistration
	if !out.Created {
		reason = consent.MergeSignIn
	}
	r.joinDevice(ctx, p, flow.Device, out.Identity, reason)
	return back + RegisteredFragment, nil
}

// readForm checks a POST of the form (same origin, at most 16 KiB, a form) and answers the
// request when it fails.
func (r *Registration) readForm(c *gin.Context) bool {
	if err := http.NewCrossOriginProtection().Check(c.Request); err != nil {
		r.render(c, http.StatusForbidden, templates.RegisterView{Lang: "en", T: templates.RegisterTexts["en"], Error: "cross-site request refused"}, nil)
		return false
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 16<<10)
	if err := c.Request.ParseForm(); err != nil {
		status := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		r.render(c, status, templates.RegisterView{Lang: "en", T: templates.RegisterTexts["en"], Error: "the form could not be read"}, nil)
		return false
	}
	return true
}
