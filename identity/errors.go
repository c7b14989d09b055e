package identity

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to exactly one HTTP status in identityweb's problem writer, so
// domain code states what went wrong and the web layer alone decides how to say it.
const (
	EInvalid       = "invalid"       // malformed or failing validation (400 / 422 with fields)
	EUnprocessable = "unprocessable" // well-formed but refers to something that cannot be used (422)
	ENotFound      = "not_found"     // does not exist, or belongs to another tenant (404)
	EConflict      = "conflict"      // clashes with the current state (409)
	EIdempotency   = "idempotency"   // an Idempotency-Key reused with another request (422)
	EUnauthorized  = "unauthorized"  // no or unknown credentials (401)
	EForbidden     = "forbidden"     // credentials lack the right (403)
	ERateLimited   = "rate_limited"  // too many requests (429)
	EUnavailable   = "unavailable"   // shutting down or overloaded (503)
	EUpstream      = "bad_gateway"   // a vendor's API failed or refused a call made for the request (502)
	EInternal      = "internal"      // everything else (500)

	// EIdempotencyInProgress: the first request with this Idempotency-Key is still running
	// (409 with Retry-After). Its problem type is EIdempotency's: one family for the key's
	// problems, told apart by the status.
	EIdempotencyInProgress = "idempotency_in_progress"
)

// ErrIdempotencyInProgress answers a retry that arrives while the first request with its
// Idempotency-Key is still being processed, on every route that takes a key.
var ErrIdempotencyInProgress = &Error{Code: EIdempotencyInProgress,
	Message: "a request with this Idempotency-Key is still in progress; retry shortly"}

// FieldError names one field of a request and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the typed error of every Lupa domain package.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	Err     error // wrapped cause, never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrors builds an EInvalid error that lists the fields at fault.
func FieldErrors(message string, fields ...FieldError) *Error {
	return &Error{Code: EInvalid, Message: message, Fields: fields}
}

// Unprocessable builds an EUnprocessable error for one field.
func Unprocessable(field, message string) *Error {
	return &Error{Code: EUnprocessable, Message: message, Fields: []FieldError{{Field: field, Message: message}}}
}

// NotFound says that an object of the given kind does not exist for this tenant.
func NotFound(kind string) *Error {
	return &Error{Code: ENotFound, Message: kind + " not found"}
}

// ErrorCode returns the code of err, or EInternal for errors that are not ours.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code string) bool { return err != nil && ErrorCode(err) == code }

// Validator collects field errors while a domain type checks its invariants.
type Validator struct{ fields []FieldError }

// Check records message for field unless ok.
func (v *Validator) Check(ok bool, field, message string) {
	if !ok {
		v.fields = append(v.fields, FieldError{Field: field, Message: message})
	}
}

// Err returns nil when every check passed, else an EInvalid error listing the fields.
func (v *Validator) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return FieldErrors("validation failed", v.fields...)
}
