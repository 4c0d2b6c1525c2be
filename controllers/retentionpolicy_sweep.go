// Running a rule: bounded slices of sweep batches, held rows skipped, the
// compliance gap counted.

package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/stores"
)

// sweep does a bounded slice of the run in progress.
func (run *sweepRun) sweep(ctx context.Context, sched cron.Schedule) (reconcile.Result, error) {
	pol := run.pol
	ds := &privacyv1.DataStore{}
	if err := run.r.Get(ctx, types.NamespacedName{Namespace: pol.Namespace, Name: string(pol.Spec.StoreRef)}, ds); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonStoreNotFound,
			fmt.Sprintf("waiting for DataStore %q in namespace %q", pol.Spec.StoreRef, pol.Namespace))
		return reconcile.Result{RequeueAfter: waitForStoreInterval}, nil
	}
	if msg := storeNotReadyReason(ds); msg != "" {
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonStoreNotReady, msg)
		return reconcile.Result{RequeueAfter: waitForStoreInterval}, nil
	}
	lease, err := run.r.Connector.Acquire(ctx, ds)
	if err != nil {
		return run.storeError(err), nil
	}
	defer lease.Release()
	sweeper, ok := lease.Store.(stores.Sweeper)
	if !ok {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonSweepUnsupported,
			fmt.Sprintf("DataStore %q (engine %s) does not support retention sweeps", ds.Name, ds.Spec.Engine))
		return reconcile.Result{RequeueAfter: recheckStalled}, nil
	}

	sw := pol.Status.Sweep
	// The budget measures how long this reconcile holds a worker: elapsed
	// time on the monotonic clock, not the domain clock tests move.
	slice := &workSlice{start: time.Now(), r: run.r}
	var invalid []string
	for i := range pol.Spec.Rules {
		rule := &pol.Spec.Rules[i]
		if done := completedRule(sw, rule.Name); done != nil {
			if strings.HasPrefix(done.Message, invalidRulePrefix) {
				invalid = append(invalid, rule.Name+": "+strings.TrimPrefix(done.Message, invalidRulePrefix))
			}
			continue
		}
		if sw.Rule != rule.Name {
			sw.Rule, sw.Cursor, sw.RowsAffected = rule.Name, "", 0
		}
		status, wait, err := run.sweepRule(ctx, sweeper, ds, rule, slice)
		switch {
		case errors.Is(err, stores.ErrInvalid):
			// This rule cannot run; the others still do.
			status = privacyv1.RuleStatus{Name: rule.Name, Message: invalidRulePrefix + err.Error()}
			invalid = append(invalid, rule.Name+": "+err.Error())
		case errors.Is(err, connector.ErrSecret):
			markProgressing(run.conds(), run.gen(), privacyv1.ReasonSecretNotFound,
				fmt.Sprintf("rule %s waits: %v (a legal hold's subject must be known before its rows can be swept)", rule.Name, err))
			return reconcile.Result{RequeueAfter: storeRetryInterval}, nil
		case errors.Is(err, errInvalidSubject):
			markProgressing(run.conds(), run.gen(), privacyv1.ReasonInvalidSubject, fmt.Sprintf("rule %s waits: %v", rule.Name, err))
			return reconcile.Result{RequeueAfter: recheckStalled}, nil
		case err != nil:
			return run.storeError(err), nil
		case wait >= 0:
			// Out of budget (wait 0) or ahead of the rate limit: save the place, come back.
			markProgressing(run.conds(), run.gen(), privacyv1.ReasonProgressing, fmt.Sprintf(
				"sweeping rule %s (%d of %d): %d row(s) so far", rule.Name, i+1, len(pol.Spec.Rules), sw.RowsAffected))
			return reconcile.Result{RequeueAfter: max(wait, time.Millisecond)}, nil
		}
		sw.Completed = append(sw.Completed, status)
		sw.Rule, sw.Cursor, sw.RowsAffected = "", "", 0
	}
	return run.finish(sched, invalid), nil
}

// invalidRulePrefix marks, in a completed rule's message, a rule that could not run.
const invalidRulePrefix = "not run: "

func completedRule(sw *privacyv1.SweepProgress, name string) *privacyv1.RuleStatus {
	for i := range sw.Completed {
		if sw.Completed[i].Name == name {
			return &sw.Completed[i]
		}
	}
	return nil
}

// workSlice is the budget of one reconcile.
type workSlice struct {
	r       *RetentionPolicyReconciler
	start   time.Time
	batches int
}

func (s *workSlice) exhausted() bool {
	maxBatches, maxWork := s.r.MaxBatchesPerReconcile, s.r.MaxWorkPerReconcile
	if maxBatches <= 0 {
		maxBatches = DefaultMaxBatchesPerReconcile
	}
	if maxWork <= 0 {
		maxWork = DefaultMaxWorkPerReconcile
	}
	return s.batches >= maxBatches || time.Since(s.start) >= maxWork
}

// sweepRule sweeps one rule from the saved cursor. It returns the rule's
// result when it is done, or a wait >= 0 when the slice must stop first
// (0: out of budget, come back at once; > 0: the rate limit asks to wait).
func (run *sweepRun) sweepRule(ctx context.Context, sweeper stores.Sweeper, ds *privacyv1.DataStore, rule *privacyv1.RetentionRule, slice *workSlice) (privacyv1.RuleStatus, time.Duration, error) {
	pol, sw := run.pol, run.pol.Status.Sweep
	cutoff, err := rule.After.Period.Before(sw.StartedAt.Time)
	if err != nil {
		return privacyv1.RuleStatus{}, -1, fmt.Errorf("%w: %v", stores.ErrInvalid, err)
	}
	sr := stores.SweepRule{ // BatchSize 0: the engine's default
		Collection: string(rule.Collection), Field: string(rule.After.Field), Cutoff: cutoff, Action: stores.ActionDelete,
	}
	if rule.Action == privacyv1.RetentionAnonymize {
		sr.Action = stores.ActionAnonymize
	}
	for _, w := range rule.Where {
		sr.Where = append(sr.Where, stores.Condition{Field: string(w.Field), IsNull: w.IsNull != nil && *w.IsNull})
	}
	if rule.BatchSize != nil {
		sr.BatchSize = int(*rule.BatchSize)
	}
	rate := 0
	if rule.MaxRowsPerSecond != nil {
		rate = int(*rule.MaxRowsPerSecond)
		if sr.BatchSize == 0 || sr.BatchSize > rate {
			sr.BatchSize = rate // a batch is at most a second's worth
		}
	}
	holds, err := (holdResolver{run.r.reader()}).forSweep(ctx, pol.Namespace, ds.Name, sr.Collection, sweeper, run.now)
	if err != nil {
		return privacyv1.RuleStatus{}, -1, err
	}
	if len(holds.whole) > 0 {
		// The whole collection is held: the rule waits; its rows are reported held.
		past, err := sweeper.CountPastPeriod(ctx, sr)
		held := past.Rows
		if err != nil {
			return privacyv1.RuleStatus{}, -1, err
		}
		metrics.RuleSwept(pol.Namespace, pol.Name, rule.Name, 0, held)
		return privacyv1.RuleStatus{Name: rule.Name, RowsHeld: held,
			Message: "skipped: the collection is on legal hold (" + strings.Join(holds.whole, "; ") + ")"}, -1, nil
	}
	sr.HeldKeys = holds.keys

	if pol.Spec.DryRun {
		n, held, err := countGap(ctx, sweeper, sr)
		if err != nil {
			return privacyv1.RuleStatus{}, -1, err
		}
		return privacyv1.RuleStatus{Name: rule.Name, RowsAffected: n, RowsPastPeriod: n, RowsHeld: held,
			Message: fmt.Sprintf("dry run: %d row(s) would be %s", n, actionPast(sr.Action))}, -1, nil
	}

	var sliceRows int64
	for {
		if slice.exhausted() {
			return privacyv1.RuleStatus{}, 0, nil
		}
		if rate > 0 {
			// Rows of this slice may not run ahead of the rate.
			ahead := time.Duration(float64(sliceRows)/float64(rate)*float64(time.Second)) - time.Since(slice.start)
			if ahead > 0 {
				return privacyv1.RuleStatus{}, ahead, nil
			}
		}
		b, err := sweeper.SweepBatch(ctx, sr, sw.Cursor)
		if err != nil {
			return privacyv1.RuleStatus{}, -1, err
		}
		slice.batches++
		sliceRows += b.Rows
		sw.Cursor, sw.RowsAffected = b.Cursor, sw.RowsAffected+b.Rows
		metrics.SweepRows(pol.Namespace, pol.Name, rule.Name, string(sr.Action), b.Rows)
		if b.Done {
			break
		}
	}
	gap, held, err := countGap(ctx, sweeper, sr)
	if err != nil {
		return privacyv1.RuleStatus{}, -1, err
	}
	metrics.RuleSwept(pol.Namespace, pol.Name, rule.Name, gap, held)
	st := privacyv1.RuleStatus{Name: rule.Name, RowsAffected: sw.RowsAffected, RowsPastPeriod: gap, RowsHeld: held}
	if held > 0 {
		st.Message = fmt.Sprintf("%d row(s) kept for subject(s) on legal hold (%s)", held, strings.Join(holds.names, ", "))
	}
	return st, -1, nil
}

// countGap counts the rows still past their period (held rows excluded) and the held ones.
func countGap(ctx context.Context, sweeper stores.Sweeper, sr stores.SweepRule) (gap, held int64, err error) {
	past, err := sweeper.CountPastPeriod(ctx, sr)
	if err != nil || len(sr.HeldKeys) == 0 {
		return past.Rows, 0, err
	}
	all := sr
	all.HeldKeys = nil
	n, err := sweeper.CountPastPeriod(ctx, all)
	return past.Rows, n.Rows - past.Rows, err
}

func actionPast(a stores.Action) string {
	if a == stores.ActionAnonymize {
		return "anonymized"
	}
	return "deleted"
}
