// Reporting a run: its end, its errors, the Events that must not repeat, and
// the weakenings of the policy recorded against what was applied before.

package controllers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/stores"
)

// afterSave records Events that must not repeat when the status write fails
// (the reconcile is then retried and finds the same changes again).
func (run *sweepRun) afterSave() {
	rec := run.r.Recorder
	if rec == nil {
		return
	}
	reportWeakening(rec, run.pol, run.weakened)
	if run.finished == "" {
		return
	}
	// A run that leaves Ready as it was (finished within one reconcile, or
	// failing as the last one did) is said anyway. Succeeded only when every
	// rule ran: a run in which a rule failed is a Warning with its reason.
	b := apimeta.FindStatusCondition(run.before.Status.Conditions, privacyv1.ConditionReady)
	a := apimeta.FindStatusCondition(run.pol.Status.Conditions, privacyv1.ConditionReady)
	if b == nil || a == nil || b.Status != a.Status || b.Reason != a.Reason {
		return // recordConditionTransitions said it, with Ready's reason
	}
	if len(run.failedRules) > 0 {
		note := fmt.Sprintf("%s; %d rule(s) cannot run: %s", run.finished, len(run.failedRules), strings.Join(run.failedRules, "; "))
		rec.Eventf(run.pol, nil, corev1.EventTypeWarning, a.Reason, "Sweep", "%s", truncate(note, 1000))
		return
	}
	if a.Status == metav1.ConditionTrue && a.Reason == privacyv1.ReasonSucceeded {
		rec.Eventf(run.pol, nil, corev1.EventTypeNormal, privacyv1.ReasonSucceeded, "Sweep", "%s", run.finished)
	}
}

// finish ends the run: the rules' results become the last run's, and Ready
// says what happened and when the next run is.
func (run *sweepRun) finish(sched cron.Schedule, invalid []string) reconcile.Result {
	pol := run.pol
	sw := pol.Status.Sweep
	var results []privacyv1.RuleStatus
	var rows, below, gap, held, undated int64
	for _, rule := range pol.Spec.Rules {
		if st := completedRule(sw, rule.Name); st != nil {
			results = append(results, *st)
			rows, gap, held, undated = rows+st.RowsAffected, gap+st.RowsPastPeriod, held+st.RowsHeld, undated+st.RowsWithoutDate
			for _, c := range st.Children {
				below += c.Rows
			}
		}
	}
	pol.Status.Rules = results
	pol.Status.Sweep = nil
	next := nextRun(sched, pol)
	pol.Status.NextRunTime = &metav1.Time{Time: next}
	verb := "swept"
	if pol.Spec.DryRun {
		verb = "dry run: would sweep"
	}
	summary := fmt.Sprintf("%s %d row(s) in %d rule(s) (run started %s)", verb, rows, len(results), timeText(sw.StartedAt.Time))
	if below > 0 {
		summary += fmt.Sprintf(" and %d row(s) below them", below)
	}
	summary += fmt.Sprintf("; %d row(s) still past their period, %d of them held", gap, held)
	if undated > 0 {
		summary += fmt.Sprintf("; %d row(s) without a date", undated)
	}
	run.finished = summary
	run.failedRules = invalid
	if len(invalid) > 0 {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidRule, fmt.Sprintf(
			"%d rule(s) cannot run: %s; the others ran: %s; next sweep at %s", len(invalid), strings.Join(invalid, "; "), summary, timeText(next)))
		return reconcile.Result{RequeueAfter: max(next.Sub(run.now), time.Second)}
	}
	pol.Status.LastSuccessfulRunTime = sw.StartedAt.DeepCopy()
	if !pol.Spec.DryRun {
		metrics.SweepSucceeded(pol.Namespace, pol.Name, sw.StartedAt.Time)
	}
	markReady(run.conds(), run.gen(), privacyv1.ReasonSucceeded, summary+"; next sweep at "+timeText(next))
	return reconcile.Result{RequeueAfter: max(next.Sub(run.now), time.Second)}
}

// storeError keeps the run's place and retries later.
func (run *sweepRun) storeError(err error) reconcile.Result {
	switch {
	case errors.Is(err, connector.ErrSecret):
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonSecretNotFound, err.Error())
	case errors.Is(err, stores.ErrInvalid):
		markStalled(run.conds(), run.gen(), privacyv1.ReasonStoreNotReady, err.Error())
		return reconcile.Result{RequeueAfter: recheckStalled}
	default:
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonStoreUnavailable, "store unavailable: "+err.Error()+" (retrying; the sweep resumes where it stopped)")
	}
	wait := run.r.RetryBase
	if wait <= 0 {
		wait = storeRetryInterval
	}
	return reconcile.Result{RequeueAfter: wait}
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
