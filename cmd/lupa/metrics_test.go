package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestMetricsLabelsBounded: anonymous requests with invented methods and paths come before
// authentication and rate limiting, so they must not add series to the metrics.
func TestMetricsLabelsBounded(t *testing.T) {
	a := &app{log: slog.New(slog.DiscardHandler), now: time.Now}
	m := newMetrics()
	r, err := a.routes(m)
	if err != nil {
		t.Fatal(err)
	}
	send := func(method, path string) {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
	}
	// One of each kind first: a known route with an invented method (405), an unknown path
	// with a standard and with an invented method (404).
	send("RANDOMMETHOD0", "/healthz")
	send(http.MethodGet, "/no-such-path-0")
	send("RANDOMMETHOD0", "/no-such-path-0")
	before := httpSeries(t, m)
	for i := 1; i <= 50; i++ {
		send(fmt.Sprintf("RANDOMMETHOD%d", i), "/healthz")
		send(http.MethodGet, fmt.Sprintf("/no-such-path-%d", i))
		send(fmt.Sprintf("RANDOMMETHOD%d", i), fmt.Sprintf("/v1/made-up/%d", i))
	}
	after := httpSeries(t, m)
	if len(after) != len(before) {
		t.Fatalf("the HTTP metrics grew from %d to %d series: %v", len(before), len(after), after)
	}
	for _, want := range []string{
		"lupa_http_requests_total method=other route=unmatched status=405",
		"lupa_http_requests_total method=GET route=unmatched status=404",
		"lupa_http_requests_total method=other route=unmatched status=404",
		"lupa_http_request_duration_seconds method=other route=unmatched",
	} {
		if !after[want] {
			t.Errorf("no series %q in %v", want, after)
		}
	}
}

// httpSeries lists the series of the HTTP metrics as "name label=value …".
func httpSeries(t testing.TB, m *metrics) map[string]bool {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "lupa_http_requests_total" && f.GetName() != "lupa_http_request_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			key := f.GetName()
			for _, l := range s.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			series[key] = true
		}
	}
	return series
}
