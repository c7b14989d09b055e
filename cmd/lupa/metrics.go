package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are Lupa's Prometheus metrics, on their own registry and listener.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	events    prometheus.Counter
	batchSize prometheus.Histogram
	batchWait prometheus.Histogram
	commit    prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lupa_http_requests_total",
			Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lupa_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}},
			[]string{"route", "method"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "lupa_consent_events_written_total",
			Help: "Ledger events committed."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lupa_writer_batch_size",
			Help: "Interactions per group commit.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		batchWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lupa_writer_batch_wait_seconds",
			Help: "Time an interaction waited for its batch to start.", Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1}}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lupa_writer_commit_seconds",
			Help: "Time from batch start to commit.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25}}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.events, m.batchSize, m.batchWait, m.commit,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// middleware counts requests by route template (never by raw path: ids stay out of labels).
// Every label has a fixed set of values, as these requests come before authentication and
// rate limiting: anyone could otherwise add series with made-up paths or methods.
func (m *metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		// FullPath is a registered template, or empty when nothing matched (404 and 405).
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		method := methodLabel(requestMethod(c))
		m.requests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
		m.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// methodLabel is the method as a label: a standard one by its name, anything else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// The consent writer's measurements.

func (m *metrics) Batch(size int, commit time.Duration) {
	m.batchSize.Observe(float64(size))
	m.commit.Observe(commit.Seconds())
}

func (m *metrics) Waited(d time.Duration) { m.batchWait.Observe(d.Seconds()) }

func (m *metrics) EventsWritten(n int) { m.events.Add(float64(n)) }
