package consentweb

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/templates"
)

// OptIn shows the confirmation page of a double opt-in link. A GET only asks: mail
// scanners open the links in emails, and must not confirm anything.
func (h *Handlers) OptIn(c *gin.Context) {
	h.optInPage(c, http.StatusOK, "ask", c.Query("t"), false)
}

// ConfirmOptIn confirms the pending grants of a double opt-in link (a form POST).
func (h *Handlers) ConfirmOptIn(c *gin.Context) {
	if err := http.NewCrossOriginProtection().Check(c.Request); err != nil {
		h.optInPage(c, http.StatusForbidden, "invalid", "", false)
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 16<<10)
	res, err := h.svc.ConfirmOptIn(c.Request.Context(), c.PostForm("t"))
	switch {
	case err == consent.ErrOptInLink:
		h.optInPage(c, http.StatusUnprocessableEntity, "invalid", "", false)
	case err != nil:
		h.api.Fail(c, err)
	case len(res.Confirmed) == 0:
		h.optInPage(c, http.StatusOK, "nothing", "", len(res.Changed) > 0)
	default:
		h.optInPage(c, http.StatusOK, "done", "", len(res.Changed) > 0)
	}
}

// optInPage renders the page; changed says that some of what the link named was not
// confirmed because its text has changed since (templates.OptInView).
func (h *Handlers) optInPage(c *gin.Context, status int, step, token string, changed bool) {
	lang := c.Query("lang")
	if lang == "" {
		lang = c.PostForm("lang")
	}
	text, ok := templates.OptInTexts[lang]
	if !ok {
		lang, text = "en", templates.OptInTexts["en"]
	}
	if step == "ask" && token == "" {
		step, status = "invalid", http.StatusUnprocessableEntity
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	v := templates.OptInView{Lang: lang, T: text, Token: token, Step: step, Changed: changed,
		Nonce: base64.StdEncoding.EncodeToString(nonce)}
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+v.Nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := templates.OptIn(v).Render(c.Request.Context(), c.Writer); err != nil {
		h.api.Log.Error("render opt-in page", "err", err)
	}
}
