package consentweb

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

type lookupIn struct {
	Identifier identifierIn `json:"identifier" validate:"required"`
	Reason     string       `json:"reason" validate:"required,max=500"`
}

// LookupSubject finds a subject by any identifier for support, and logs the lookup.
func (h *Handlers) LookupSubject(c *gin.Context) {
	var in lookupIn
	if !h.api.BindBody(c, identityweb.PublicBodyLimit, &in) {
		return
	}
	out, err := h.svc.LookupSubject(c.Request.Context(), identityweb.TenantOf(c), *in.Identifier.domain(), in.Reason, identityweb.ActorOf(c))
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// AccessLog lists subject lookups, newest first (?subject=<pseudonym>, ?before=, ?limit=).
func (h *Handlers) AccessLog(c *gin.Context) {
	limit := 0
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			identityweb.WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed",
				[]identity.FieldError{{Field: "limit", Message: "must be an integer from 1 to 200"}})
			return
		}
		limit = n
	}
	before, ok := identityweb.QueryID(c, "before")
	if !ok {
		return
	}
	items, next, err := h.svc.AccessLog(c.Request.Context(), identityweb.TenantOf(c), c.Query("subject"), before, limit)
	if err != nil {
		h.api.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"items": items, "next": next})
}
