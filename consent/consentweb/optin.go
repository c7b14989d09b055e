package consentweb

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/templates"
)

// OptIn shows the confirmation page of a double opt-in link: who asks and for what, and a
// button. A GET only reads: mail scanners open the links in emails, and must not confirm
// anything. A link that is broken, too old or names nothing left to confirm says so at once.
func (h *Handlers) OptIn(c *gin.Context) {
	token := c.Query("t")
	if token == "" {
		h.optInPage(c, http.StatusUnprocessableEntity, templates.OptInView{Step: "invalid"}, "")
		return
	}
	res, err := h.svc.CheckOptIn(c.Request.Context(), token)
	switch {
	case errors.Is(err, consent.ErrOptInLink):
		h.optInPage(c, http.StatusUnprocessableEntity, templates.OptInView{Step: "invalid"}, "")
	case err != nil:
		h.api.Fail(c, err)
	case len(res.Confirmed) == 0:
		h.optInPage(c, http.StatusOK, templates.OptInView{Step: "nothing", Changed: len(res.Changed) > 0,
			Superseded: len(res.Superseded) > 0}, res.Language)
	default:
		h.optInPage(c, http.StatusOK, templates.OptInView{Step: "ask", Token: token, Controller: res.Controller,
			Titles: res.TitlesOf(res.Confirmed)}, res.Language)
	}
}

// ConfirmOptIn confirms the pending grants of a double opt-in link (the page's form POST).
func (h *Handlers) ConfirmOptIn(c *gin.Context) {
	if err := http.NewCrossOriginProtection().Check(c.Request); err != nil {
		h.optInPage(c, http.StatusForbidden, templates.OptInView{Step: "invalid"}, "")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 16<<10)
	res, err := h.svc.ConfirmOptIn(c.Request.Context(), c.PostForm("t"))
	switch {
	case errors.Is(err, consent.ErrOptInLink):
		h.optInPage(c, http.StatusUnprocessableEntity, templates.OptInView{Step: "invalid"}, "")
	case err != nil:
		h.api.Fail(c, err)
	default:
		v := templates.OptInView{Step: "done", Controller: res.Controller, Titles: res.TitlesOf(res.Confirmed),
			Changed: len(res.Changed) > 0, Superseded: len(res.Superseded) > 0}
		if len(res.Confirmed) == 0 {
			v.Step = "nothing"
		}
		h.optInPage(c, http.StatusOK, v, res.Language)
	}
}

// optInPage renders the page in the language the link or the form names, else the
// email's (fallback), else English.
func (h *Handlers) optInPage(c *gin.Context, status int, v templates.OptInView, fallback string) {
	lang := c.Query("lang")
	if lang == "" {
		lang = c.PostForm("lang")
	}
	text, ok := templates.OptInTexts[lang]
	if !ok {
		lang = fallback
		if text, ok = templates.OptInTexts[lang]; !ok {
			lang, text = "en", templates.OptInTexts["en"]
		}
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	v.Lang, v.T, v.Nonce = lang, text, base64.StdEncoding.EncodeToString(nonce)
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+v.Nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := templates.OptIn(v).Render(c.Request.Context(), c.Writer); err != nil {
		h.api.Log.Error("render opt-in page", "err", err)
	}
}
