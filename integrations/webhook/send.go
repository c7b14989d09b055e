package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/integrations"
)

// Doer sends an HTTP request: an *http.Client.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// maxExcerpt is how much of an answer (or an error) a delivery attempt keeps.
const maxExcerpt = 1024

// userAgent names Lupa to receivers.
const userAgent = "Lupa-Webhooks/1"

// Send makes one attempt of a delivery: a signed JSON POST to the endpoint. A connection
// failure or a 502/503/504 without a long Retry-After is retried at once (at most
// InCallRetries times, re-signed with a new timestamp); everything else is for the engine's
// schedule to decide.
func (s *Service) Send(ctx context.Context, m integrations.Message) integrations.Result {
	start := time.Now()
	r, secrets, err := s.signing(ctx, m.TenantID, m.EndpointID)
	if err != nil {
		if identity.IsCode(err, identity.ENotFound) {
			return integrations.Result{Err: err, Gone: true, Latency: time.Since(start)}
		}
		return integrations.Result{Err: err, Latency: time.Since(start)}
	}
	sign := func(req *http.Request) {
		ts := s.now().Unix()
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", Sign(secrets, m.ID, ts, m.Body))
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, r.URL, m.Body)
	if err != nil {
		return integrations.Result{Err: err, Latency: time.Since(start)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("webhook-id", m.ID)
	sign(req.Request)

	client := &retryablehttp.Client{
		HTTPClient:   s.client,
		RetryWaitMin: 100 * time.Millisecond,
		RetryWaitMax: s.opt.InCallWait,
		RetryMax:     s.opt.InCallRetries,
		CheckRetry:   s.checkRetry,
		Backoff:      s.backoff,
		// Each retry is a new attempt at the receiver: a new timestamp, signed again.
		PrepareRetry: func(req *http.Request) error { sign(req); return nil },
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	res, err := client.Do(req)
	latency := time.Since(start)
	if err != nil {
		return integrations.Result{Err: err, Latency: latency, Response: excerpt([]byte(errText(err)))}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20)) // let the connection be reused
	out := integrations.Result{Status: res.StatusCode, Latency: latency, Response: excerpt(body)}
	if throttled(res.StatusCode) {
		out.RetryAfter = retryAfter(res.Header.Get("Retry-After"), s.now())
	}
	return out
}

// sendClient is the configured client (or, when none is, an SSRF-safe one that refuses
// internal addresses) with the request timeout and without following redirects (Standard
// Webhooks: a 3xx is a failure). New builds it once, so that its transport's connections
// are reused from one delivery to the next.
func sendClient(c Doer, timeout time.Duration) *http.Client {
	var base *http.Client
	switch c := c.(type) {
	case *http.Client:
		cp := *c
		base = &cp
	default:
		base = safehttp.New(safehttp.Options{})
	}
	base.Timeout = timeout
	base.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return base
}

// checkRetry retries in the call only what is likely gone in a second: a connection that
// failed (but not one refused as internal, nor a cancelled context) and a 502, 503 or 504
// that does not ask for a longer wait than InCallWait.
func (s *Service) checkRetry(ctx context.Context, res *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if strings.Contains(err.Error(), "internal addresses are not allowed") {
			return false, err
		}
		return true, nil
	}
	switch res.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if d := retryAfter(res.Header.Get("Retry-After"), s.now()); d > s.opt.InCallWait {
			return false, nil // the engine's schedule waits as long as asked
		}
		return true, nil
	}
	return false, nil
}

// backoff is the wait before an in-call retry: a linear jitter, but never less than the
// receiver's Retry-After (checkRetry has made sure that one fits InCallWait).
func (s *Service) backoff(least, most time.Duration, n int, res *http.Response) time.Duration {
	d := retryablehttp.LinearJitterBackoff(least, most, n, res)
	if res != nil && throttled(res.StatusCode) {
		d = max(d, retryAfter(res.Header.Get("Retry-After"), s.now()))
	}
	return d
}

// throttled says whether a status asks the sender to slow down, so that its Retry-After
// counts: Standard Webhooks names 429, 502 and 504; 503 is HTTP's own case for it.
func throttled(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryAfter parses Retry-After (seconds or an HTTP date); 0 when absent or malformed.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 7*24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func errText(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && strings.Contains(err.Error(), "internal addresses") {
		return "refused: the URL resolves to an internal address"
	}
	return err.Error()
}

// excerpt keeps at most 1 KiB of valid UTF-8 without NUL bytes (PostgreSQL's text refuses them).
func excerpt(b []byte) string {
	if len(b) > maxExcerpt {
		b = b[:maxExcerpt]
	}
	return strings.ReplaceAll(string(bytes.ToValidUTF8(b, nil)), "\x00", "")
}
