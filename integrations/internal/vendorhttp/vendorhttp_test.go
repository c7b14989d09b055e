package vendorhttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestScrub(t *testing.T) {
	for in, want := range map[string]string{
		"Member In Compliance State":           "Member In Compliance State",
		"a@b.fi is in compliance state":        "[redacted] is in compliance state",
		"line\nbreak":                          "line break",
		strings.Repeat("x", 200):               strings.Repeat("x", 80),
		"VALIDATION_ERROR":                     "VALIDATION_ERROR",
		"bad\x00code <mailto:someone@host.fi>": "badcode [redacted]",
	} {
		if got := Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Thu, 26 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Thu, 26 Nov 2026 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestErrorKindsAndText(t *testing.T) {
	e := &Error{Vendor: "v", Op: "op", Status: 429, Kind: ErrRateLimited, RetryAfter: 2 * time.Second, Code: "throttled"}
	if !errors.Is(e, ErrRateLimited) || !IsRetryable(e) || e.Error() != "v: op: HTTP 429 throttled: rate limited (retry after 2s)" {
		t.Fatalf("%v", e)
	}
	wrapped := &Error{Vendor: "v", Op: "op", Kind: ErrRetryable, Err: context.DeadlineExceeded}
	if !errors.Is(wrapped, context.DeadlineExceeded) || !IsRetryable(wrapped) {
		t.Fatal("cause lost")
	}
	if IsRetryable(&Error{Kind: ErrComplianceState}) || IsRetryable(errors.New("x")) {
		t.Fatal("final error reported retryable")
	}
}

func TestPauseHoldsCalls(t *testing.T) {
	l := NewLimiter(2)
	l.PauseFor(200 * time.Millisecond)
	start := time.Now()
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("acquired after %s during a pause", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r1, _ := l.Acquire(ctx)
	r2, _ := l.Acquire(ctx)
	cancel()
	if _, err := l.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("third call past a concurrency of 2: %v", err)
	}
	r1()
	r2()
}

func TestTransportErrorHasNoURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close() // connection refused from now on
	c := &Client{Vendor: "v"}
	err := c.Do(context.Background(), Call{Op: "op", Method: "GET", URL: url + "/statuses/someone@example.fi"})
	if !errors.Is(err, ErrRetryable) || strings.Contains(err.Error(), "someone") || strings.Contains(err.Error(), "/statuses") {
		t.Fatalf("err = %v", err)
	}
}
