package metrics

// Data-subject request and DataStore metrics, served by the manager's metrics
// endpoint (controller-runtime's Registry). Labels name namespaces, stores,
// collections, request types, states and outcomes only: never a subject's
// identity, a value read from a store, or a request's name (which is free text
// and unbounded). Alerts on them are in config/prometheus.

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Outcomes of a completed request (label outcome).
const (
	OutcomeCompleted     = "completed"
	OutcomeCompletedLate = "completed_late"
	OutcomeDryRun        = "dry_run"
)

// States of an open request (label state of lethe_datasubjectrequests_open).
const (
	RequestInProgress  = "in_progress"
	RequestOnLegalHold = "on_legal_hold"
	RequestStalled     = "stalled"
)

var (
	requestsCompleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_datasubjectrequests_completed_total",
		Help: "Data-subject requests completed, by namespace, type (Access, Erasure, Rectification) and outcome (completed, completed_late, dry_run).",
	}, []string{"namespace", "type", "outcome"})

	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lethe_datasubjectrequest_duration_seconds",
		Help: "Time from a request's creation to its completion (dry runs excluded), by namespace and type.",
		// 1s .. 30d: the default deadlines are 24h (erasure) and 30d (others).
		Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600, 30 * 24 * 3600},
	}, []string{"namespace", "type"})

	requestDeadlineBreaches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_datasubjectrequest_deadline_breaches_total",
		Help: "Requests whose deadline passed before they completed (counted once per request, when DeadlineExceeded turns True).",
	}, []string{"namespace", "type"})

	requestRows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_datasubjectrequest_rows_total",
		Help: "Rows acted on by completed requests (dry runs excluded), by namespace, store, collection and action (delete, anonymize, rectify, export, retain, setNull).",
	}, []string{"namespace", "store", "collection", "action"})

	storeReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_datastore_ready",
		Help: "1 when the DataStore is Ready (reachable, live schema matches the data map), 0 otherwise.",
	}, []string{"namespace", "store"})

	openRequests = newOpenRequestsCollector()
)

func init() {
	crmetrics.Registry.MustRegister(requestsCompleted, requestDuration, requestDeadlineBreaches, requestRows, storeReady, openRequests)
}

// RequestCompleted records a request's completion: its outcome and, unless it
// was a dry run, how long it took from creation.
func RequestCompleted(namespace, requestType string, dryRun, late bool, created, completed time.Time) {
	outcome := OutcomeCompleted
	switch {
	case dryRun:
		outcome = OutcomeDryRun
	case late:
		outcome = OutcomeCompletedLate
	}
	requestsCompleted.WithLabelValues(namespace, requestType, outcome).Inc()
	if !dryRun {
		requestDuration.WithLabelValues(namespace, requestType).Observe(max(completed.Sub(created).Seconds(), 0))
	}
}

// RequestRows adds the rows a completed request acted on in one collection.
func RequestRows(namespace, store, collection, action string, rows int64) {
	if rows > 0 {
		requestRows.WithLabelValues(namespace, store, collection, action).Add(float64(rows))
	}
}

// RequestDeadlineBreached counts a request whose deadline passed before it completed.
func RequestDeadlineBreached(namespace, requestType string) {
	requestDeadlineBreaches.WithLabelValues(namespace, requestType).Inc()
}

// RequestOpen records the state of an unfinished request. The name only keys
// the request internally; it never becomes a label.
func RequestOpen(namespace, name, requestType, state string, overdue bool) {
	openRequests.set(namespace+"/"+name, openRequest{namespace: namespace, requestType: requestType, state: state, overdue: overdue})
}

// RequestClosed forgets a request that completed or was deleted.
func RequestClosed(namespace, name string) {
	openRequests.remove(namespace + "/" + name)
}

// StoreReadiness records whether a DataStore is Ready.
func StoreReadiness(namespace, store string, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	storeReady.WithLabelValues(namespace, store).Set(v)
}

// StoreDeleted removes a deleted DataStore's series (readiness, unmapped columns).
func StoreDeleted(namespace, store string) {
	storeReady.DeleteLabelValues(namespace, store)
	StoreUnmappedUnknown(namespace, store)
}

// openRequest is what the open-requests gauges count of one request.
type openRequest struct {
	namespace, requestType, state string
	overdue                       bool
}

// openRequestsCollector computes, at scrape time, the number of open requests
// per namespace, type and state, and of overdue ones. Every unfinished request
// is reconciled when the manager starts, so the counts are right after a restart.
type openRequestsCollector struct {
	mu       sync.Mutex
	requests map[string]openRequest
	open     *prometheus.Desc
	overdue  *prometheus.Desc
}

func newOpenRequestsCollector() *openRequestsCollector {
	return &openRequestsCollector{
		requests: map[string]openRequest{},
		open: prometheus.NewDesc("lethe_datasubjectrequests_open",
			"Requests not complete yet, by namespace, type and state (in_progress, on_legal_hold, stalled).",
			[]string{"namespace", "type", "state"}, nil),
		overdue: prometheus.NewDesc("lethe_datasubjectrequests_overdue",
			"Requests not complete whose deadline has passed (DeadlineExceeded=True), by namespace and type.",
			[]string{"namespace", "type"}, nil),
	}
}

func (c *openRequestsCollector) set(key string, r openRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests[key] = r
}

func (c *openRequestsCollector) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.requests, key)
}

// Describe implements prometheus.Collector.
func (c *openRequestsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.overdue
}

// Collect implements prometheus.Collector.
func (c *openRequestsCollector) Collect(ch chan<- prometheus.Metric) {
	type openKey struct{ namespace, requestType, state string }
	type overdueKey struct{ namespace, requestType string }
	open := map[openKey]float64{}
	overdue := map[overdueKey]float64{}
	c.mu.Lock()
	for _, r := range c.requests {
		open[openKey{r.namespace, r.requestType, r.state}]++
		if r.overdue {
			overdue[overdueKey{r.namespace, r.requestType}]++
		}
	}
	c.mu.Unlock()
	for k, v := range open {
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, v, k.namespace, k.requestType, k.state)
	}
	for k, v := range overdue {
		ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, v, k.namespace, k.requestType)
	}
}
