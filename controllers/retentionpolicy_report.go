// Reporting a run: its end, its errors, the Events that must not repeat, and
// the weakenings of the policy recorded against what was applied before.

package controllers

import (
	"errors"
	"fmt"
	"slices"
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
	if len(run.weakened) > 0 {
		note := fmt.Sprintf("accepted a change that decreases protection: %s; justification: %q",
			strings.Join(run.weakened, "; "), run.pol.Spec.WeakeningJustification)
		rec.Eventf(run.pol, nil, corev1.EventTypeWarning, privacyv1.ReasonProtectionWeakened, "Update", "%s", truncate(note, 1000))
	}
	// A run finished within one reconcile leaves Ready as it was: say it anyway.
	b := apimeta.FindStatusCondition(run.before.Status.Conditions, privacyv1.ConditionReady)
	if run.finished != "" && b != nil && b.Status == metav1.ConditionTrue && b.Reason == privacyv1.ReasonSucceeded {
		rec.Eventf(run.pol, nil, corev1.EventTypeNormal, privacyv1.ReasonSucceeded, "Sweep", "%s", run.finished)
	}
}

// finish ends the run: the rules' results become the last run's, and Ready
// says what happened and when the next run is.
func (run *sweepRun) finish(sched cron.Schedule, invalid []string) reconcile.Result {
	pol := run.pol
	sw := pol.Status.Sweep
	var results []privacyv1.RuleStatus
	var rows, gap, held int64
	for _, rule := range pol.Spec.Rules {
		if st := completedRule(sw, rule.Name); st != nil {
			results = append(results, *st)
			rows, gap, held = rows+st.RowsAffected, gap+st.RowsPastPeriod, held+st.RowsHeld
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
	summary := fmt.Sprintf("%s %d row(s) in %d rule(s) (run started %s); %d row(s) still past their period, %d held",
		verb, rows, len(results), timeText(sw.StartedAt.Time), gap, held)
	run.finished = summary
	if len(invalid) > 0 {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidRule, fmt.Sprintf(
			"%d rule(s) cannot run: %s; the others ran: %s; next sweep at %s", len(invalid), strings.Join(invalid, "; "), summary, timeText(next)))
		return reconcile.Result{RequeueAfter: max(next.Sub(run.now), time.Second)}
	}
	pol.Status.LastSuccessfulRunTime = sw.StartedAt.DeepCopy()
	names := make([]string, 0, len(results))
	for _, r := range results {
		names = append(names, r.Name)
	}
	if !pol.Spec.DryRun {
		metrics.SweepSucceeded(pol.Namespace, pol.Name, sw.StartedAt.Time, names)
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

// appliedPolicy is the part of the spec whose weakening is recorded.
func appliedPolicy(spec privacyv1.RetentionPolicySpec) *privacyv1.AppliedPolicy {
	a := &privacyv1.AppliedPolicy{StoreRef: spec.StoreRef, Suspend: spec.Suspend, DryRun: spec.DryRun}
	for _, r := range spec.Rules {
		action := r.Action
		if action == "" {
			action = privacyv1.RetentionDelete
		}
		a.Rules = append(a.Rules, privacyv1.AppliedRule{
			Name: r.Name, Collection: string(r.Collection), Field: string(r.After.Field), Period: r.After.Period,
			Action: action, ExemptFromErasure: r.ExemptFromErasure, Where: slices.Clone(r.Where),
		})
	}
	return a
}

// weakenings lists, for humans, how spec decreases protection compared with
// what was applied before. Admission already refused each of them unless the
// change carried a justification; this records them. Periods are compared
// exactly, in calendar arithmetic from now.
func weakenings(applied *privacyv1.AppliedPolicy, spec privacyv1.RetentionPolicySpec, now time.Time) []string {
	if applied == nil {
		return nil
	}
	cur := appliedPolicy(spec)
	var out []string
	if cur.StoreRef != applied.StoreRef {
		out = append(out, fmt.Sprintf("storeRef changed from %s to %s", applied.StoreRef, cur.StoreRef))
	}
	if cur.Suspend && !applied.Suspend {
		out = append(out, "suspend turned on")
	}
	if cur.DryRun && !applied.DryRun {
		out = append(out, "dryRun turned on")
	}
	for _, old := range applied.Rules {
		i := slices.IndexFunc(cur.Rules, func(n privacyv1.AppliedRule) bool { return n.Name == old.Name })
		if i < 0 {
			out = append(out, fmt.Sprintf("rule %s removed", old.Name))
			continue
		}
		n := cur.Rules[i]
		if n.Collection != old.Collection || n.Field != old.Field {
			out = append(out, fmt.Sprintf("rule %s moved from %s.%s to %s.%s", old.Name, old.Collection, old.Field, n.Collection, n.Field))
		}
		if longer(n.Period, old.Period, now) {
			out = append(out, fmt.Sprintf("rule %s: period lengthened from %s to %s", old.Name, old.Period, n.Period))
		}
		if old.Action == privacyv1.RetentionDelete && n.Action == privacyv1.RetentionAnonymize {
			out = append(out, fmt.Sprintf("rule %s: delete turned into anonymize", old.Name))
		}
		if n.ExemptFromErasure && !old.ExemptFromErasure {
			out = append(out, fmt.Sprintf("rule %s: exemptFromErasure turned on", old.Name))
		}
		for _, w := range n.Where {
			if !slices.ContainsFunc(old.Where, func(o privacyv1.RetentionCondition) bool {
				return o.Field == w.Field && (o.IsNull == nil) == (w.IsNull == nil) && (o.IsNull == nil || *o.IsNull == *w.IsNull)
			}) {
				out = append(out, fmt.Sprintf("rule %s: where condition on %s added", old.Name, w.Field))
			}
		}
	}
	return out
}

func longer(n, o privacyv1.Period, now time.Time) bool {
	nt, err1 := n.After(now)
	ot, err2 := o.After(now)
	return err1 == nil && err2 == nil && nt.After(ot)
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
