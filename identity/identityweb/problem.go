// Package identityweb holds the HTTP side of identity — admin handlers for tenants, brands,
// properties, API keys and the audit log — and the request plumbing every web package
// shares: problem+json errors, request binding, authentication, CORS, rate limits and
// idempotency.
package identityweb

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail,omitempty"`
	Instance  string                `json:"instance,omitempty"`
	Errors    []identity.FieldError `json:"errors,omitempty"`
	RequestID string                `json:"request_id,omitempty"`
}

// ProblemType returns the type URI of a problem code; docs/api.md lists them.
func ProblemType(code string) string { return "urn:lupa:problem:" + code }

var statusOf = map[string]int{
	identity.EInvalid:       http.StatusBadRequest,
	identity.EUnprocessable: http.StatusUnprocessableEntity,
	identity.ENotFound:      http.StatusNotFound,
	identity.EConflict:      http.StatusConflict,
	identity.EIdempotency:   http.StatusUnprocessableEntity,
	identity.EUnauthorized:  http.StatusUnauthorized,
	identity.EForbidden:     http.StatusForbidden,
	identity.ERateLimited:   http.StatusTooManyRequests,
	identity.EUnavailable:   http.StatusServiceUnavailable,
	identity.EUpstream:      http.StatusBadGateway,
	identity.EInternal:      http.StatusInternalServerError,

	// A key still in progress: same problem type as EIdempotency (typeOf), and Retry-After.
	identity.EIdempotencyInProgress: http.StatusConflict,
}

// typeOf names the problem type of the codes whose type is another code's: the problems of
// an Idempotency-Key are one family, urn:lupa:problem:idempotency, whatever the status.
var typeOf = map[string]string{identity.EIdempotencyInProgress: identity.EIdempotency}

// Web-only problem codes.
const (
	codeTooLarge     = "too_large"
	codeMediaType    = "unsupported_media_type"
	codeMalformed    = "malformed_json"
	codeNotAllowed   = "method_not_allowed"
	codeNoRoute      = "not_found"
	codeIdempotency  = "idempotency"
	headerRequestID  = "X-Request-Id"
	contextRequestID = "lupa.request_id"
)

// Title is the problem title of a status: its RFC 9110 reason phrase.
func Title(status int) string {
	if status == http.StatusUnprocessableEntity {
		return "Unprocessable Content" // RFC 9110's name; Go still says "Entity"
	}
	return http.StatusText(status)
}

// WriteProblem writes a problem+json response and stops the handler chain.
func WriteProblem(c *gin.Context, status int, code, title, detail string, fields []identity.FieldError) {
	p := Problem{Type: ProblemType(code), Title: title, Status: status, Detail: detail, Errors: fields,
		Instance: c.Request.URL.Path, RequestID: c.GetString(contextRequestID)}
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", "no-store")
	if status == http.StatusUnauthorized && c.Writer.Header().Get("WWW-Authenticate") == "" {
		c.Header("WWW-Authenticate", `Bearer realm="lupa"`) // a handler may have set a more precise challenge
	}
	if status == http.StatusServiceUnavailable && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, p)
}

// Fail maps any error to its problem response: the one place errors become HTTP. Errors
// that are not Lupa's own are logged and answered with a generic 500.
func Fail(c *gin.Context, log *slog.Logger, err error) {
	var e *identity.Error
	if !errors.As(err, &e) {
		e = &identity.Error{Code: identity.EInternal, Err: err}
	}
	status := statusOf[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status == http.StatusInternalServerError && sqldb.IsInfrastructure(err) {
		// The database is down or going away: a retry may well succeed.
		e, status = &identity.Error{Code: identity.EUnavailable, Message: "the database is unavailable; retry", Err: err},
			http.StatusServiceUnavailable
	}
	title := Title(status)
	detail := e.Message
	code := e.Code
	if t, ok := typeOf[code]; ok {
		code = t
	}
	if e.Code == identity.EIdempotencyInProgress {
		c.Header("Retry-After", "1") // the first request answers within moments, or fails and frees its key
	}
	if status >= 500 {
		log.ErrorContext(c.Request.Context(), "request failed", "route", c.FullPath(), "err", err,
			"request_id", c.GetString(contextRequestID))
		if status == http.StatusInternalServerError {
			detail = "something went wrong on our side; the request id helps us find it"
		}
	}
	WriteProblem(c, status, code, title, detail, e.Fields)
}

// NoRoute answers unknown paths.
func NoRoute(c *gin.Context) {
	WriteProblem(c, http.StatusNotFound, codeNoRoute, "Not Found", "no such endpoint", nil)
}

// NoMethod answers known paths with a method they do not take.
func NoMethod(c *gin.Context) {
	WriteProblem(c, http.StatusMethodNotAllowed, codeNotAllowed, "Method Not Allowed", "this endpoint does not take "+c.Request.Method, nil)
}

// RetryAfter sets Retry-After in whole seconds, at least one.
func RetryAfter(c *gin.Context, seconds float64) {
	s := int(seconds)
	if float64(s) < seconds || s < 1 {
		s++
	}
	c.Header("Retry-After", strconv.Itoa(max(s, 1)))
}
