package metrics

// Retention sweep metrics. Labels name namespaces, RetentionPolicies, their
// rules and actions only: never a key, a value, a partition or a subject.

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
		Help: "Rows still past their retention period after the last run of the rule, whatever its outcome, held rows included (see lethe_retention_rows_held): the compliance gap.",
	}, []string{"namespace", "policy", "rule"})

	retentionHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_rows_held",
		Help: "Rows past their retention period that the last run of the rule kept because of a legal hold (part of lethe_retention_rows_past_period).",
	}, []string{"namespace", "policy", "rule"})

	retentionWithoutDate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_rows_without_date",
		Help: "Rows of the rule whose period field is NULL: never swept (Lethe does not act on an unknown date), counted at the last run.",
	}, []string{"namespace", "policy", "rule"})

	retentionDeadRows = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_table_dead_rows",
		Help: "Deleted or updated row versions not yet reclaimed (PostgreSQL: until VACUUM) in the table of the rule's collection, after the last run; only for stores that can tell.",
	}, []string{"namespace", "policy", "rule"})

	retentionPartitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_retention_partitions_dropped_total",
		Help: "Partitions dropped as a unit by retention sweeps (dry runs excluded).",
	}, []string{"namespace", "policy", "rule"})

	retentionLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_last_success_timestamp_seconds",
		Help: "Start time (Unix seconds) of the last sweep of the policy that finished every rule.",
	}, []string{"namespace", "policy"})

	retentionStalled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_retention_policy_stalled",
		Help: "1 when the RetentionPolicy is Stalled (a rule, its schedule or its store needs a fix before it can sweep), 0 otherwise.",
	}, []string{"namespace", "policy"})

	// rulesOf remembers the rules each policy has series for, so series of
	// removed rules are dropped.
	rulesMu sync.Mutex
	rulesOf = map[[2]string]map[string]bool{}
)

func init() {
	crmetrics.Registry.MustRegister(retentionRows, retentionPastPeriod, retentionHeld, retentionWithoutDate,
		retentionDeadRows, retentionPartitions, retentionLastSuccess, retentionStalled)
}

// SweepRows adds the rows a sweep deleted or anonymized under one rule.
func SweepRows(namespace, policy, rule, action string, rows int64) {
	if rows > 0 {
		retentionRows.WithLabelValues(namespace, policy, rule, action).Add(float64(rows))
	}
}

// PartitionsDropped adds the partitions a sweep dropped under one rule.
func PartitionsDropped(namespace, policy, rule string, n int) {
	if n > 0 {
		retentionPartitions.WithLabelValues(namespace, policy, rule).Add(float64(n))
	}
}

// RuleGap is what a rule's last run counted.
type RuleGap struct {
	PastPeriod, Held, WithoutDate int64
	// DeadRows is nil when the store cannot tell.
	DeadRows *int64
}

// RuleCounted sets a rule's gauges to its last counts (status.rules), so
// they exist for every rule whatever its state, across restarts of the manager.
func RuleCounted(namespace, policy, rule string, g RuleGap) {
	retentionPastPeriod.WithLabelValues(namespace, policy, rule).Set(float64(g.PastPeriod))
	retentionHeld.WithLabelValues(namespace, policy, rule).Set(float64(g.Held))
	retentionWithoutDate.WithLabelValues(namespace, policy, rule).Set(float64(g.WithoutDate))
	if g.DeadRows != nil {
		retentionDeadRows.WithLabelValues(namespace, policy, rule).Set(float64(*g.DeadRows))
	} else {
		retentionDeadRows.DeleteLabelValues(namespace, policy, rule)
	}
	rulesMu.Lock()
	defer rulesMu.Unlock()
	key := [2]string{namespace, policy}
	if rulesOf[key] == nil {
		rulesOf[key] = map[string]bool{}
	}
	rulesOf[key][rule] = true
}

// PolicyRules drops the gauges of rules the policy no longer has.
func PolicyRules(namespace, policy string, rules []string) {
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

// PolicyStalled records whether the policy is Stalled.
func PolicyStalled(namespace, policy string, stalled bool) {
	v := 0.0
	if stalled {
		v = 1
	}
	retentionStalled.WithLabelValues(namespace, policy).Set(v)
}

// SweepSucceeded records the start of a sweep that finished every rule.
func SweepSucceeded(namespace, policy string, started time.Time) {
	retentionLastSuccess.WithLabelValues(namespace, policy).Set(float64(started.Unix()))
}

// PolicyDeleted drops every series of a deleted policy. The counters are
// kept: they are totals, and Prometheus handles counters that stop.
func PolicyDeleted(namespace, policy string) {
	retentionLastSuccess.DeleteLabelValues(namespace, policy)
	retentionStalled.DeleteLabelValues(namespace, policy)
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
	retentionWithoutDate.DeleteLabelValues(namespace, policy, rule)
	retentionDeadRows.DeleteLabelValues(namespace, policy, rule)
}
