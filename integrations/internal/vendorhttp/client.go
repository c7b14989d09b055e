package vendorhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// maxBody caps how much of a response is read (a page of members is well below it).
const maxBody = 8 << 20

// Classifier lets a vendor refine a failed response: it returns the vendor's error code
// (title, category…) and, when it recognises a special case, a kind that overrides the
// default mapping (Mailchimp's compliance state). Return nil kind to keep the default.
type Classifier func(status int, body []byte) (code string, kind error)

// Client runs requests against one vendor.
type Client struct {
	HTTP   *http.Client
	Vendor string
	// Now reads a Retry-After given as an HTTP date. Waits use the real clock.
	Now      func() time.Time
	Classify Classifier
	// Retries is how many more attempts a call makes after a retryable failure (5xx,
	// transport error, 429 whose Retry-After is at most MaxRetryWait). 0: one attempt.
	Retries int
	// MaxRetryWait caps an in-call wait; a longer Retry-After is returned to the caller
	// (the delivery engine schedules the job later instead of holding a worker).
	MaxRetryWait time.Duration
	// Backoff is the first wait after a failure without Retry-After; it doubles, with jitter.
	Backoff time.Duration
}

// NewClient fills a Client with the connectors' defaults: two in-call retries and a 30 s
// cap on an in-call wait unless retries or maxWait say otherwise; noRetries turns retries
// off (the delivery engine then sees every failure at once).
func NewClient(vendor string, hc *http.Client, now func() time.Time, classify Classifier, retries int, maxWait time.Duration, noRetries bool) *Client {
	if retries == 0 {
		retries = 2
	}
	if noRetries {
		retries = 0
	}
	if maxWait == 0 {
		maxWait = 30 * time.Second
	}
	return &Client{HTTP: hc, Vendor: vendor, Now: now, Classify: classify, Retries: retries, MaxRetryWait: maxWait}
}

// Call is one request.
type Call struct {
	Op      string
	Method  string
	URL     string
	Body    any // marshalled as JSON unless it is []byte (sent as is)
	Header  http.Header
	Limiter *Limiter
	// OK lists the success statuses; empty means any 2xx.
	OK []int
	// Out receives the decoded JSON body of a success, when non-nil.
	Out any
}

// Do performs the call, retrying within the limits above, and returns nil or an *Error.
func (c *Client) Do(ctx context.Context, call Call) error {
	var body []byte
	switch b := call.Body.(type) {
	case nil:
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return &Error{Vendor: c.Vendor, Op: call.Op, Kind: ErrRejected, Err: errors.New("cannot encode request body")}
		}
	}
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, call, body)
		if err == nil {
			return nil
		}
		var e *Error
		if !errors.As(err, &e) || !e.Retryable() || attempt >= c.Retries || ctx.Err() != nil {
			return err
		}
		wait := e.RetryAfter
		if wait == 0 {
			wait = backoff<<attempt + time.Duration(rand.Int64N(int64(backoff)))
		}
		if c.MaxRetryWait > 0 && wait > c.MaxRetryWait {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
			return err
		}
		if Sleep(ctx, wait) != nil {
			return err
		}
	}
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) once(ctx context.Context, call Call, body []byte) error {
	fail := func(kind error, cause error) *Error {
		return &Error{Vendor: c.Vendor, Op: call.Op, Kind: kind, Err: cause}
	}
	if p := call.Limiter.Paused(); c.MaxRetryWait > 0 && p > c.MaxRetryWait {
		// A long 429 pause is the engine's to wait out: do not hold a worker for it.
		return &Error{Vendor: c.Vendor, Op: call.Op, Kind: ErrRateLimited, RetryAfter: p}
	}
	release, err := call.Limiter.Acquire(ctx)
	if err != nil {
		return fail(ErrRetryable, err)
	}
	defer release()

	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, call.Method, call.URL, rd)
	if err != nil {
		return fail(ErrRejected, errors.New("invalid request"))
	}
	for k, vs := range call.Header {
		req.Header[k] = vs
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fail(ErrRetryable, stripURL(ctx, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fail(ErrRetryable, stripURL(ctx, err))
	}

	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if len(call.OK) > 0 {
		ok = slices.Contains(call.OK, resp.StatusCode)
	}
	if ok {
		if call.Out != nil && len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, call.Out); err != nil {
				return &Error{Vendor: c.Vendor, Op: call.Op, Status: resp.StatusCode, Kind: ErrRetryable, Err: errors.New("malformed response body")}
			}
		}
		return nil
	}

	e := &Error{Vendor: c.Vendor, Op: call.Op, Status: resp.StatusCode}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
	case s == http.StatusNotFound:
		e.Kind = ErrNotFound
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Kind = ErrUnauthorized
	case s == http.StatusRequestTimeout || (s >= 500 && s != http.StatusNotImplemented):
		e.Kind = ErrRetryable
	default:
		e.Kind = ErrRejected
	}
	if s := resp.StatusCode; s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	if c.Classify != nil {
		code, kind := c.Classify(resp.StatusCode, data)
		e.Code = Scrub(code)
		if kind != nil {
			e.Kind = kind
		}
	}
	if e.Kind == ErrRateLimited {
		pause := e.RetryAfter
		if pause == 0 {
			pause = time.Second
		}
		call.Limiter.PauseFor(pause)
	}
	return e
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// stripURL drops the request URL from a transport error (it may hold an address) and
// keeps the cause, so errors.Is(err, context.DeadlineExceeded) still works.
func stripURL(ctx context.Context, err error) error {
	if ce := ctx.Err(); ce != nil {
		return ce
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
