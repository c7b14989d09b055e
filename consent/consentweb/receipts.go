package consentweb

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/identity/keyring"
)

// Receipts serves the public keys and receipt verification.
type Receipts struct {
	h    *Handlers
	keys *keyring.Keyring
}

// NewReceipts returns the receipt handlers.
func NewReceipts(h *Handlers, keys *keyring.Keyring) *Receipts { return &Receipts{h: h, keys: keys} }

// JWKS publishes every receipt and root signing key, old ones included.
func (r *Receipts) JWKS(c *gin.Context) {
	c.Header("Cache-Control", fmt.Sprintf("public, max-age=%d", int(keyring.JWKSMaxAge.Seconds())))
	c.Header("Access-Control-Allow-Origin", "*")
	c.JSON(http.StatusOK, r.keys.JWKS())
}

type verifyIn struct {
	Receipt string `json:"receipt" validate:"required,max=60000"`
}

// Verify checks a receipt's signature and its events against the ledger.
func (r *Receipts) Verify(c *gin.Context) {
	var in verifyIn
	if !r.h.api.Bind(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	res, err := r.h.svc.VerifyReceipt(c.Request.Context(), in.Receipt)
	if err != nil {
		r.h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}
