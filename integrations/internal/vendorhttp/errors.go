// Package vendorhttp is the HTTP plumbing the vendor connectors (mailchimp, hubspot,
// klaviyo) share: typed errors that tell the delivery engine whether to retry, a limiter
// that keeps to a vendor's documented rate and concurrency limits and pauses after a 429,
// and one request loop that honours Retry-After and the caller's context.
//
// Nothing here logs, and no error string carries a request URL, a request body or a
// vendor's free-text detail: those hold email addresses (HubSpot puts the address in the
// path, Mailchimp repeats it in its error detail).
package vendorhttp

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The kinds of failure. Every *Error wraps exactly one of them, so callers test with
// errors.Is(err, vendorhttp.ErrRateLimited) and the like.
var (
	// ErrRetryable: the vendor or the network failed (5xx, 408, a reset or timed-out
	// connection); the same request may succeed later.
	ErrRetryable = errors.New("temporary failure")
	// ErrRateLimited: 429. RetryAfter on the *Error says how long to wait when the vendor said.
	ErrRateLimited = errors.New("rate limited")
	// ErrNotFound: 404, the record does not exist (already erased, never synced).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: 401 or 403, the credentials are wrong or lack a scope. Final until
	// an admin fixes the connector.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrComplianceState: Mailchimp refused to subscribe an address that unsubscribed
	// itself, bounced or is under compliance review. Final, and a withdrawal, not a fault.
	ErrComplianceState = errors.New("member in compliance state")
	// ErrRejected: any other 4xx; the request itself is wrong. Final.
	ErrRejected = errors.New("request rejected")
)

// Error is a failed vendor call.
type Error struct {
	Vendor string // "mailchimp", "hubspot", "klaviyo"
	Op     string // what was attempted, e.g. "upsert member"
	Status int    // HTTP status; 0 when no response arrived
	// Kind is one of the Err* values above.
	Kind error
	// RetryAfter is the vendor's Retry-After (429, 503), zero when absent.
	RetryAfter time.Duration
	// Code is the vendor's machine-readable error title or code ("Member In Compliance
	// State", "VALIDATION_ERROR", "invalid"), scrubbed of anything that looks like an
	// address. Never the free-text detail.
	Code string
	// Err is the underlying transport or context error, if any (URL stripped).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Vendor)
	b.WriteString(": ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.Status)
	}
	if e.Code != "" {
		b.WriteString(e.Code)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.Error())
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes the kind and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Retryable reports whether the same request may succeed later (rate limits included).
func (e *Error) Retryable() bool {
	return e.Kind == ErrRetryable || e.Kind == ErrRateLimited
}

// IsRetryable reports whether err is a vendor error worth retrying later.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// RetryAfter returns the wait the vendor asked for, if err carries one.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// Scrub makes a vendor's short error code safe for logs: words holding an '@' are
// replaced, control characters dropped, the length capped.
func Scrub(s string) string {
	if s == "" {
		return ""
	}
	words := strings.Fields(s)
	for i, w := range words {
		if strings.Contains(w, "@") {
			words[i] = "[redacted]"
		}
	}
	s = strings.Join(words, " ")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
