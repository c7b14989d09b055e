package consentweb

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

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

// ReceiptLimit is the longest receipt POST /v1/receipts/verify takes (the validate tag of
// verifyIn says it too). A receipt lists every purpose of an interaction (up to 50) with its
// title, data categories and recipients' legal names: a tenant whose advertising purpose
// names its hundreds of ad-tech partners signs receipts far longer than the 64 KiB other
// bodies are held to, and a receipt Lupa signed must be one it can check. The work a
// longer body costs is linear and small (base64, one SHA-512, JSON), and the route is
// rate limited.
const ReceiptLimit = 1 << 20

// ReceiptBodyLimit is the body limit of POST /v1/receipts/verify: the receipt, and room
// for the JSON around it.
const ReceiptBodyLimit = ReceiptLimit + 1<<10

type verifyIn struct {
	Receipt string `json:"receipt" validate:"required,max=1048576"`
}

// Verify checks a receipt's signature and its events against the ledger.
func (r *Receipts) Verify(c *gin.Context) {
	var in verifyIn
	if !r.h.api.Bind(c, ReceiptBodyLimit, &in) {
		return
	}
	res, err := r.h.svc.VerifyReceipt(c.Request.Context(), in.Receipt)
	if err != nil {
		r.h.api.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}
