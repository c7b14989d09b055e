package main

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/connector"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// newWebhooks wires the webhook endpoints, the connectors and the delivery engine: every request to an
// endpoint goes through a client that refuses internal addresses at dial time (unless
// LUPA_ALLOW_PRIVATE_WEBHOOKS), with Standard Webhooks' 15-second timeout.
func (a *app) newWebhooks() {
	// The engine keeps up to 63 requests in flight to one receiver: keep their connections
	// (and TLS sessions) open instead of two per host.
	client := safehttp.New(safehttp.Options{AllowPrivate: a.cfg.AllowPrivateWebhooks, Timeout: 15 * time.Second,
		MaxIdleConns: 256, MaxIdleConnsPerHost: 64})
	a.webhooks = webhook.New(a.db, a.keys, a.consent, a.now, webhook.Options{Client: client, Timeout: 15 * time.Second})
	// The vendors' APIs go through the same kind of client: a connector's base URL can only
	// point elsewhere than the vendor where private addresses are allowed.
	// A page of a vendor's members is larger than an identity provider's documents: the
	// client lets up to connector.MaxVendorBody (16 MiB) of an answer through, of which the
	// vendor clients read at most 8 MiB themselves.
	vendors := safehttp.New(safehttp.Options{AllowPrivate: a.cfg.AllowPrivateWebhooks, Timeout: 15 * time.Second,
		MaxBodyBytes: connector.MaxVendorBody})
	a.connectors = connector.New(a.db, a.keys, a.consent, a.ids, a.now, connector.Options{HTTPClient: vendors,
		AllowBaseURL: a.cfg.AllowPrivateWebhooks, ReconcileEvery: a.cfg.ReconcileInterval, Instances: a.cfg.ConnectorInstances, Log: a.log})
	router := integrations.Router{Webhooks: a.webhooks, Connectors: a.connectors}
	// An acknowledged subject.erasure_approved is its data-map system's confirmation.
	a.deliveries = integrations.New(a.db, a.consent, router, router, a.now, integrations.Options{Log: a.log, Erasures: a.dataMap,
		LogRetention: a.cfg.DeliveryLogRetention})
}

// deliveryMetrics are the engine's Prometheus metrics, webhook endpoints' and connectors'
// apart.
type deliveryMetrics struct {
	attempts, syncs *prometheus.CounterVec
	latency, sync   prometheus.Histogram
}

// Attempted counts one attempt by outcome (delivered, retry, final, gone) and its latency.
func (d *deliveryMetrics) Attempted(target, outcome string, latency time.Duration) {
	if strings.HasPrefix(target, integrations.ConnectorIDPrefix) {
		d.syncs.WithLabelValues(outcome).Inc()
		d.sync.Observe(latency.Seconds())
		return
	}
	d.attempts.WithLabelValues(outcome).Inc()
	d.latency.Observe(latency.Seconds())
}

// registerDeliveryMetrics adds the deliveries' metrics to the registry: attempts by outcome,
// their latency, and the backlog (deliveries waiting), counted when scraped.
func registerDeliveryMetrics(m *metrics, engine *integrations.Engine) *deliveryMetrics {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15}
	d := &deliveryMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lupa_webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome (delivered, retry, final, gone)."}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lupa_webhook_attempt_duration_seconds",
			Help: "Time of one webhook delivery attempt.", Buckets: buckets}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lupa_connector_attempts_total",
			Help: "Connector sync attempts by outcome (delivered: synced or skipped; retry, final, gone)."}, []string{"outcome"}),
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lupa_connector_attempt_duration_seconds",
			Help: "Time of one connector sync attempt, the vendor calls it made included.", Buckets: buckets}),
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lupa_webhook_backlog",
		Help: "Deliveries waiting to be sent, to webhook endpoints and connectors (all instances)."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := engine.Backlog(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	m.reg.MustRegister(d.attempts, d.latency, d.syncs, d.sync, backlog)
	return d
}

// wakingMetrics passes the writer's measurements on and tells the delivery engine of each
// commit that wrote events, so a consent leaves within milliseconds of its commit.
type wakingMetrics struct {
	*metrics
	engine *integrations.Engine
}

func (w wakingMetrics) EventsWritten(n int) {
	w.metrics.EventsWritten(n)
	if n > 0 {
		w.engine.Committed()
	}
}

var _ consent.WriterMetrics = wakingMetrics{}
