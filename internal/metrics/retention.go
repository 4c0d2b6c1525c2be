package metrics

// Retention sweep metrics. Labels name namespaces, RetentionPolicies, their
// rules and actions only: never a key, a value or a subject.

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	retentionRows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_retention_rows_total",
		Help: "Rows deleted or anonymized by retention sweeps (dry runs excluded), by namespace, policy, rule and action (delete, anonymize).",
	}, []string{"namespace", "policy", "rule", "action"})

	retentionPastPeriod = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_rows_past_period",
		Help: "Rows still past their retention period after the last sweep of the rule, held rows excluded: the compliance gap.",
	}, []string{"namespace", "policy", "rule"})

	retentionHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_rows_held",
		Help: "Rows past their retention period that the last sweep of the rule left because of a legal hold.",
	}, []string{"namespace", "policy", "rule"})

	retentionLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_last_success_timestamp_seconds",
		Help: "Start time (Unix seconds) of the last sweep of the policy that finished every rule.",
	}, []string{"namespace", "policy"})

	// rulesOf remembers the rules each policy has series for, so series of
	// removed rules are dropped.
	rulesMu sync.Mutex
	rulesOf = map[[2]string]map[string]bool{}
)

func init() {
	crmetrics.Registry.MustRegister(retentionRows, retentionPastPeriod, retentionHeld, retentionLastSuccess)
}

// SweepRows adds the rows a sweep deleted or anonymized under one rule.
func SweepRows(namespace, policy, rule, action string, rows int64) {
	if rows > 0 {
		retentionRows.WithLabelValues(namespace, policy, rule, action).Add(float64(rows))
	}
}

// RuleSwept records, after a rule's sweep, the rows still past their period
// and the rows held.
func RuleSwept(namespace, policy, rule string, pastPeriod, held int64) {
	retentionPastPeriod.WithLabelValues(namespace, policy, rule).Set(float64(pastPeriod))
	retentionHeld.WithLabelValues(namespace, policy, rule).Set(float64(held))
	rulesMu.Lock()
	defer rulesMu.Unlock()
	key := [2]string{namespace, policy}
	if rulesOf[key] == nil {
		rulesOf[key] = map[string]bool{}
	}
	rulesOf[key][rule] = true
}

// SweepSucceeded records the start of a sweep that finished every rule, and
// drops the series of rules the policy no longer has.
func SweepSucceeded(namespace, policy string, started time.Time, rules []string) {
	retentionLastSuccess.WithLabelValues(namespace, policy).Set(float64(started.Unix()))
	keep := map[string]bool{}
	for _, r := range rules {
		keep[r] = true
	}
	rulesMu.Lock()
	defer rulesMu.Unlock()
	key := [2]string{namespace, policy}
	for r := range rulesOf[key] {
		if !keep[r] {
			forgetRule(namespace, policy, r)
			delete(rulesOf[key], r)
		}
	}
}

// PolicyDeleted drops every series of a deleted policy. The rows counter is
// kept: it is a total, and Prometheus handles counters that stop.
func PolicyDeleted(namespace, policy string) {
	retentionLastSuccess.DeleteLabelValues(namespace, policy)
	rulesMu.Lock()
	defer rulesMu.Unlock()
	key := [2]string{namespace, policy}
	for r := range rulesOf[key] {
		forgetRule(namespace, policy, r)
	}
	delete(rulesOf, key)
}

func forgetRule(namespace, policy, rule string) {
	retentionPastPeriod.DeleteLabelValues(namespace, policy, rule)
	retentionHeld.DeleteLabelValues(namespace, policy, rule)
}
