package identityweb

// Changing the account's email address (accounts/email.go): the account page's form asks
// for the new address and the current password, a link goes to the new address, and the
// link's page confirms the change with a button.

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/templates"
)

var emailLink = linkKind{accounts.LinkEmailChange, "", "/account/email/confirm"}

// RequestEmailChange is POST /account/email: the new address gets a one-time link and the
// old one a notice. The answer is the same "check your email" page whether or not the new
// address is someone else's.
func (p *Pages) RequestEmailChange(c *gin.Context) {
	sess, t, ok := p.signedInTenant(c)
	if !ok {
		return
	}
	v, err := p.accountView(c, sess, t)
	if err != nil {
		p.fail(c, v, err)
		return
	}
	newEmail := formValue(c, "new_email")
	err = p.acc.RequestEmailChange(c.Request.Context(), sess, t.Slug, newEmail, formValue(c, "email_password"), v.Lang)
	if errors.Is(err, accounts.ErrSignInRecently) {
		p.message(c, http.StatusUnauthorized, v, v.T.SignInAgain, v.T.SignInAgainText,
			templates.PageLink{Href: tenantPath(t, "signin") + "?again=1&lang=" + v.Lang, Label: v.T.SignIn},
			templates.PageLink{Href: "/account?lang=" + v.Lang, Label: v.T.BackToAccount})
		return
	}
	if fields, ok := pageFieldErrors(v, err); ok {
		// The account page has two password fields; this form's is email_password.
		if m, ok := fields["current_password"]; ok {
			delete(fields, "current_password")
			fields["email_password"] = m
		}
		v.Fields, v.Email = fields, newEmail
		p.render(c, http.StatusUnprocessableEntity, templates.AccountPage(v))
		return
	}
	if err != nil {
		p.fail(c, v, err)
		return
	}
	v.Text = v.T.EmailChangeSent
	if v.Account != nil && v.Account.Email != "" {
		v.Text += " " + v.T.EmailChangeSentOld
	}
	v.Links = []templates.PageLink{{Href: "/account?lang=" + v.Lang, Label: v.T.BackToAccount}}
	p.render(c, http.StatusOK, templates.CheckEmailPage(v))
}

// EmailChangeForm is GET /account/email/confirm?t=…: a button, nothing used.
func (p *Pages) EmailChangeForm(c *gin.Context) { p.confirmForm(c, emailLink) }

// ConfirmEmailChange is POST /account/email/confirm: the address of the link becomes the
// account's, and every other session of the account ends. A browser signed in to the
// account stays signed in; the link signs nobody in (it proves the new mailbox, not the
// account), so any other browser is asked to sign in with the new address.
func (p *Pages) ConfirmEmailChange(c *gin.Context) {
	token := formValue(c, "t")
	v, err := p.linkView(c, token)
	if err != nil {
		p.fail(c, v, err)
		return
	}
	current, _, err := p.session(c)
	if err != nil {
		p.fail(c, v, err)
		return
	}
	res, err := p.acc.ConfirmEmailChange(c.Request.Context(), token, current)
	back := templates.PageLink{Href: "/account?lang=" + v.Lang, Label: v.T.BackToAccount}
	switch {
	case errors.Is(err, accounts.ErrLink):
		p.badLink(c, v, emailLink.purpose)
		return
	case errors.Is(err, accounts.ErrEmailTaken):
		p.message(c, http.StatusConflict, v, v.T.EmailTaken, v.T.EmailTakenText, back)
		return
	case err != nil:
		p.fail(c, v, err)
		return
	}
	if res.KeptSession {
		c.Redirect(http.StatusSeeOther, "/account?done=email&lang="+v.Lang)
		return
	}
	var links []templates.PageLink
	if v.Slug != "" {
		links = append(links, templates.PageLink{Href: withLang("/t/"+url.PathEscape(v.Slug)+"/signin", v.Lang), Label: v.T.SignIn})
	}
	p.message(c, http.StatusOK, v, v.T.EmailChangedTitle, v.T.EmailChangedText, links...)
}
