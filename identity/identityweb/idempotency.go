package identityweb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
)

// HeaderIdempotencyKey is the request header that makes a POST safe to retry.
const HeaderIdempotencyKey = "Idempotency-Key"

// IdempotencyKey returns the request's key, or "" when none; a malformed key is answered
// with 400 and ok false.
func IdempotencyKey(c *gin.Context) (key string, ok bool) {
	key = c.GetHeader(HeaderIdempotencyKey)
	if key == "" {
		return "", true
	}
	if len(key) > 255 {
		WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "invalid Idempotency-Key",
			[]identity.FieldError{{Field: HeaderIdempotencyKey, Message: "at most 255 characters"}})
		return "", false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "invalid Idempotency-Key",
				[]identity.FieldError{{Field: HeaderIdempotencyKey, Message: "printable ASCII without spaces"}})
			return "", false
		}
	}
	return key, true
}

// RequestHash fingerprints a request body for idempotency: the same key must come with the
// same request.
func RequestHash(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{0})
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

type recorder struct {
	gin.ResponseWriter
	buf bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.buf.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) WriteString(s string) (int, error) {
	r.buf.WriteString(s)
	return r.ResponseWriter.WriteString(s)
}

// replayedHeaders are the headers of an answer that a retry gets again: a secret shown once
// must stay out of caches the second time too.
var replayedHeaders = []string{"Content-Type", "Cache-Control", "Location"}

// Idempotent makes a POST handler (behind API-key auth) safe to retry with an
// Idempotency-Key: the first answer is stored (encrypted) and replayed; the same key with
// another request — another body, or the same route on another object — is refused with
// 422; a retry while the first is still running gets 409. A request with a key runs under
// a deadline of identity.IdempotencyRunLimit, so it has stopped before a retry may take
// its claim over.
func Idempotent(ids *identity.Service, api *API, limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Method != http.MethodPost {
			c.Next() // only POSTs take an Idempotency-Key; other methods are idempotent anyway
			return
		}
		key, ok := IdempotencyKey(c)
		if !ok {
			return
		}
		if key == "" {
			c.Next()
			return
		}
		// Some POSTs take no body (publish, ledger checks): only a body that is sent must be JSON.
		var body []byte
		if bodySent(c) {
			if body, ok = api.ReadBody(c, limit); !ok {
				return
			}
		}
		c.Request.Body = http.NoBody
		c.Set(contextBody, body)
		// Keys are scoped by route, but the request is the real path and query: the same key
		// on /purposes/a/versions and then /purposes/b/versions is two requests, not a retry.
		tenant, route := TenantOf(c), c.FullPath()
		hash := RequestHash([]byte(c.Request.Method+" "+c.Request.URL.RequestURI()), body)
		// The claim is taken over by a retry after identity.IdempotencyAbandoned: the handler
		// must give up well before, or a slow request and its retry would both do the work.
		// The server's WriteTimeout does not stop a handler; this deadline does.
		ctx, cancel := context.WithTimeout(c.Request.Context(), idempotentRunLimit)
		defer cancel()
		claim, stored, err := ids.ClaimIdempotency(ctx, tenant, route, key, hash)
		if err != nil {
			api.Fail(c, err)
			return
		}
		if stored != nil {
			replay(c, api, stored, hash)
			return
		}
		rec := &recorder{ResponseWriter: c.Writer}
		c.Writer = rec
		c.Request = c.Request.WithContext(ctx)
		// The request's own context may be gone (client left, deadline passed); the
		// bookkeeping must finish.
		bg := context.WithoutCancel(ctx)
		completed := false
		defer func() {
			// Any answer but a 2xx, or a handler that panicked (recovery answers 500 further
			// out), did not use the key up: without this its claim would block every retry
			// until it was abandoned.
			if !completed {
				if err := ids.ReleaseIdempotency(bg, claim); err != nil {
					api.Log.Error("idempotency bookkeeping failed", "route", route, "err", err)
				}
			}
		}()
		c.Next()
		if status := rec.Status(); status >= 200 && status < 300 {
			completed = true
			if err := ids.CompleteIdempotency(bg, claim, status, kept(rec.Header()), rec.buf.Bytes()); err != nil {
				api.Log.Error("idempotency bookkeeping failed", "route", route, "err", err)
			}
		}
	}
}

// idempotentRunLimit is identity.IdempotencyRunLimit; tests shorten it.
var idempotentRunLimit = identity.IdempotencyRunLimit

// kept picks the headers of an answer that a retry gets again.
func kept(h http.Header) map[string]string {
	out := make(map[string]string, len(replayedHeaders))
	for _, name := range replayedHeaders {
		if v := h.Get(name); v != "" {
			out[name] = v
		}
	}
	return out
}

func replay(c *gin.Context, api *API, stored *identity.StoredAnswer, hash string) {
	switch {
	case stored.RequestHash != hash:
		WriteProblem(c, http.StatusUnprocessableEntity, codeIdempotency, "Unprocessable Content",
			"this Idempotency-Key was used with a different request",
			[]identity.FieldError{{Field: HeaderIdempotencyKey, Message: "was used with a different request body or path"}})
	case stored.Pending():
		api.Fail(c, identity.ErrIdempotencyInProgress) // the consent routes' answer too
	default:
		contentType := "application/json; charset=utf-8" // answers stored before headers were kept
		for name, value := range stored.Header {
			if name == "Content-Type" {
				contentType = value
				continue
			}
			c.Header(name, value)
		}
		c.Header("Idempotent-Replayed", "true")
		c.Data(stored.Status, contentType, stored.Body)
		c.Abort()
	}
}

const contextBody = "lupa.body"

// BindBody is Bind for handlers behind Idempotent, which may already have read the body.
func (a *API) BindBody(c *gin.Context, limit int64, dst any) bool {
	if b, ok := c.Get(contextBody); ok {
		return a.Decode(c, b.([]byte), dst)
	}
	return a.Bind(c, limit, dst)
}

// BindOptional is BindBody for a POST whose fields are all optional (a webhook secret's
// rotation, an erasure's confirmation): a request without a body (no Content-Type, no
// length) leaves dst as it is, as {} would. A body that is sent is any body: JSON (else
// 415), within limit (else 413), and valid (else 400; an empty one is not JSON).
func (a *API) BindOptional(c *gin.Context, limit int64, dst any) bool {
	if !bodySent(c) {
		return true
	}
	return a.BindBody(c, limit, dst)
}
