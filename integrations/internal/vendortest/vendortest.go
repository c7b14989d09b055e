// Package vendortest is what the vendor fakes (mailchimptest, hubspottest, klaviyotest)
// share: an httptest server that can be told to fail the next requests in the ways real
// vendors do, hang until the client gives up, and log what it was sent.
package vendortest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Fault is one scripted failure, consumed by the next request whose operation matches.
type Fault struct {
	// Op limits the fault to one operation of the fake ("" = the next request of any kind).
	Op string
	// Status is the HTTP status to answer (429, 500, 503, 400 …).
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Code and Detail fill the vendor's error body (title/category/code and detail).
	Code, Detail string
	// Hang holds the connection open, answering nothing, until the client goes away
	// (its context ends) or the server closes.
	Hang bool
	// Special is a vendor-specific failure ("compliance" for Mailchimp).
	Special string
}

// RateLimited is a 429, with Retry-After when retryAfter is not empty.
func RateLimited(retryAfter string) Fault {
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter}
}

// ServerError is a 5xx.
func ServerError(status int) Fault { return Fault{Status: status} }

// BadRequest is a 400 with the vendor's error body.
func BadRequest(code, detail string) Fault {
	return Fault{Status: http.StatusBadRequest, Code: code, Detail: detail}
}

// Hang is a connection that never answers.
func Hang() Fault { return Fault{Hang: true} }

// Request is one logged request (bodies are kept so strictness tests can inspect them).
type Request struct {
	Op     string
	Method string
	Path   string
	Query  string
	Status int
	At     time.Time
}

// Base runs the server. Fakes embed it.
type Base struct {
	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu          sync.Mutex
	faults      []Fault
	log         []Request
	latency     time.Duration
	inFlight    int
	maxInFlight int
}

// SetLatency makes every request take at least d (to observe concurrency limits).
func (b *Base) SetLatency(d time.Duration) {
	b.mu.Lock()
	b.latency = d
	b.mu.Unlock()
}

// Enter marks a request in flight and applies the latency; call Leave when done.
func (b *Base) Enter(r *http.Request) {
	b.mu.Lock()
	b.inFlight++
	b.maxInFlight = max(b.maxInFlight, b.inFlight)
	d := b.latency
	b.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
}

// Leave ends what Enter began.
func (b *Base) Leave() {
	b.mu.Lock()
	b.inFlight--
	b.mu.Unlock()
}

// MaxInFlight is the most requests the server has had in flight at once.
func (b *Base) MaxInFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.maxInFlight
}

// NewBase makes a server that is not listening yet: register routes with Handle, then Start.
func NewBase() *Base { return &Base{closing: make(chan struct{})} }

// Start serves h on a local port and closes it when the test ends.
func (b *Base) Start(tb testing.TB, h http.Handler) {
	b.srv = httptest.NewServer(h)
	if tb != nil {
		tb.Cleanup(b.Close)
	}
}

// Gate checks what every request of a fake must carry (credentials, version headers,
// content type); it writes the vendor's error and returns false when something is wrong.
type Gate func(w http.ResponseWriter, r *http.Request) bool

// FaultWriter answers a scripted fault in the vendor's error shape (Hang is handled before).
type FaultWriter func(w http.ResponseWriter, r *http.Request, f Fault)

// Handle registers fn for pattern as operation op: the request is logged with its status,
// held for the configured latency, passed through gate, then failed if a fault is queued
// for op, and only then handed to fn.
func (b *Base) Handle(mux *http.ServeMux, pattern, op string, gate Gate, fault FaultWriter, fn http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		b.Enter(r)
		defer b.Leave()
		defer func() { b.Record(op, r, rec.status, start) }()
		if !gate(rec, r) {
			return
		}
		if f, ok := b.TakeFault(op); ok {
			if f.Hang {
				b.HangUntilGone(r)
				return
			}
			if f.RetryAfter != "" {
				rec.Header().Set("Retry-After", f.RetryAfter)
			}
			fault(rec, r, f)
			return
		}
		fn(rec, r)
	})
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Post sends a webhook the way a vendor does and returns the receiver's status.
func Post(ctx context.Context, target, contentType string, body []byte, header http.Header) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// URL is the server's base URL (http://127.0.0.1:port).
func (b *Base) URL() string { return b.srv.URL }

// Client is an *http.Client for the server.
func (b *Base) Client() *http.Client { return b.srv.Client() }

// Close releases hanging requests and stops the server.
func (b *Base) Close() {
	b.once.Do(func() {
		close(b.closing)
		b.srv.CloseClientConnections()
		b.srv.Close()
	})
}

// FailNext queues faults; each is used once, in order, by the next matching request.
func (b *Base) FailNext(fs ...Fault) {
	b.mu.Lock()
	b.faults = append(b.faults, fs...)
	b.mu.Unlock()
}

// TakeFault removes and returns the first queued fault matching op.
func (b *Base) TakeFault(op string) (Fault, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, f := range b.faults {
		if f.Op == "" || f.Op == op {
			b.faults = append(b.faults[:i], b.faults[i+1:]...)
			return f, true
		}
	}
	return Fault{}, false
}

// HangUntilGone blocks until the request's client goes away or the server closes.
func (b *Base) HangUntilGone(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-b.closing:
	}
}

// Record logs a request, the status it got and when it started.
func (b *Base) Record(op string, r *http.Request, status int, start time.Time) {
	b.mu.Lock()
	b.log = append(b.log, Request{Op: op, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: status, At: start})
	b.mu.Unlock()
}

// Requests returns the log so far.
func (b *Base) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Request(nil), b.log...)
}

// Count returns how many logged requests had op (any status).
func (b *Base) Count(op string) int {
	n := 0
	for _, r := range b.Requests() {
		if r.Op == op {
			n++
		}
	}
	return n
}
