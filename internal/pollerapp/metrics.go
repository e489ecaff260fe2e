package pollerapp

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics of the poller, registered on their own registry (no globals).
type metrics struct {
	reg          *prometheus.Registry
	ficRequests  *prometheus.CounterVec
	quota        *prometheus.GaugeVec
	events       *prometheus.CounterVec
	scanDuration *prometheus.HistogramVec
	scanDocs     *prometheus.CounterVec
	webhooks     *prometheus.CounterVec
	webhookLag   prometheus.Histogram
	owned        prometheus.GaugeFunc
	timersFired  prometheus.Counter
	refreshes    *prometheus.CounterVec
	alerts       *prometheus.CounterVec
	held         *prometheus.GaugeVec
	subs         *prometheus.GaugeVec
}

func newMetrics(owned func() float64) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.ficRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "incasso_fic_requests_total", Help: "FIC API requests by endpoint and HTTP status (0: network error)."}, []string{"endpoint", "status"})
	m.quota = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "incasso_fic_quota_remaining", Help: "FIC quota remaining as last reported, by company and window."}, []string{"company_id", "window"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "incasso_events_published_total", Help: "Events published, by type; duplicate=true when JetStream deduplicated them."}, []string{"type", "duplicate"})
	m.scanDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "incasso_scan_duration_seconds", Help: "Reconciliation scan duration.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"outcome"})
	m.scanDocs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "incasso_scan_documents_total", Help: "Documents seen by scans, and deletions confirmed."}, []string{"kind"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "incasso_webhook_requests_total", Help: "Webhook requests by outcome."}, []string{"outcome"})
	m.webhookLag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "incasso_webhook_lag_seconds", Help: "Delay between FIC's ce-time and reception.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)})
	m.owned = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "incasso_companies_owned", Help: "Companies this replica holds a lease on."}, owned)
	m.timersFired = prometheus.NewCounter(prometheus.CounterOpts{Name: "incasso_timers_fired_total", Help: "Durable timers fired (no FIC request)."})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "incasso_webhook_fetches_total", Help: "Documents fetched because of webhooks, by outcome."}, []string{"outcome"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "incasso_poller_alerts_total", Help: "Sanity checks that held something back for a person (deletions_held, foreign_document)."}, []string{"kind"})
	m.held = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "incasso_poller_deletions_held", Help: "Deletions held by the guard, by company, awaiting confirmation."}, []string{"company_id"})
	m.subs = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "incasso_poller_webhook_subscription", Help: "1 for the state of each company's FIC webhook subscription at its last reconciliation (verified, unverified, unverified_gave_up, error)."}, []string{"company_id", "state"})
	m.reg.MustRegister(m.ficRequests, m.quota, m.events, m.scanDuration, m.scanDocs, m.webhooks, m.webhookLag, m.owned, m.timersFired, m.refreshes, m.alerts, m.held, m.subs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeFIC(_ int64, endpoint string, status int) {
	m.ficRequests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
}

func (m *metrics) observeEvent(typ string, dup bool) {
	m.events.WithLabelValues(typ, strconv.FormatBool(dup)).Inc()
}

func (m *metrics) observeWebhook(outcome string, lag time.Duration) {
	m.webhooks.WithLabelValues(outcome).Inc()
	if lag > 0 {
		m.webhookLag.Observe(lag.Seconds())
	}
}
