// Running a rule: whole partitions first, then bounded slices of sweep
// batches that follow the data map to the rows below, held rows skipped, and
// the compliance gap counted whatever the rule's outcome.

package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/datamap"
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
	env := &ruleEnv{sweeper: sweeper, store: lease.Store, ds: ds, dataMap: lease.Map}
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
			startRule(sw, rule.Name)
		}
		in, err := run.ruleInput(ctx, env, rule)
		var status privacyv1.RuleStatus
		wait := time.Duration(-1)
		if err == nil {
			status, wait, err = run.sweepRule(ctx, env, in, slice)
		}
		switch {
		case errors.Is(err, stores.ErrInvalid):
			// This rule cannot run; the others still do. Its gap is counted all the same.
			status = run.failedRule(ctx, env, rule, in, err)
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
		startRule(sw, "")
	}
	return run.finish(sched, invalid), nil
}

// startRule resets the progress of the rule being swept.
func startRule(sw *privacyv1.SweepProgress, name string) {
	sw.Rule, sw.Cursor, sw.RowsAffected, sw.BatchesDone = name, "", 0, false
	sw.Children, sw.Kept, sw.Partitions = nil, nil, nil
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

// lastRuleStatus is the rule's result in the last finished run, if any.
func lastRuleStatus(pol *privacyv1.RetentionPolicy, name string) *privacyv1.RuleStatus {
	for i := range pol.Status.Rules {
		if pol.Status.Rules[i].Name == name {
			return &pol.Status.Rules[i]
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

// ruleEnv is what every rule of one reconcile shares: the store, its map and
// the legal minimums of its policies (read once, when a rule needs them).
type ruleEnv struct {
	sweeper    stores.Sweeper
	store      stores.Store
	ds         *privacyv1.DataStore
	dataMap    *datamap.Map
	exemptions []stores.Exemption
	exemptRead bool
}

// ruleInput is one rule as the engine sees it, with its holds.
type ruleInput struct {
	rule  *privacyv1.RetentionRule
	sr    stores.SweepRule
	rate  int
	holds heldRows
}

// ruleInput builds the engine's rule: cutoff from the run's start, holds on
// the collection and the collections below it, and the exemptions of the
// store's other rules.
func (run *sweepRun) ruleInput(ctx context.Context, env *ruleEnv, rule *privacyv1.RetentionRule) (*ruleInput, error) {
	pol, sw := run.pol, run.pol.Status.Sweep
	// Admission takes a column name or a document path (it does not know the
	// store's engine): a dotted path never reaches a SQL engine, which would
	// quote it as one column name.
	if err := rule.ValidateForEngine(env.ds.Spec.Engine); err != nil {
		return nil, fmt.Errorf("%w: %v", stores.ErrInvalid, err)
	}
	cutoff, err := rule.After.Period.Before(sw.StartedAt.Time)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", stores.ErrInvalid, err)
	}
	in := &ruleInput{rule: rule, sr: stores.SweepRule{ // BatchSize 0: the engine's default
		Collection: string(rule.Collection), Field: string(rule.After.Field), Cutoff: cutoff, Action: stores.ActionDelete,
	}}
	sr := &in.sr
	if rule.Action == privacyv1.RetentionAnonymize {
		sr.Action = stores.ActionAnonymize
	}
	for _, w := range rule.Where {
		sr.Where = append(sr.Where, stores.Condition{Field: string(w.Field), IsNull: w.IsNull != nil && *w.IsNull})
	}
	if rule.BatchSize != nil {
		sr.BatchSize = int(*rule.BatchSize)
	}
	if rule.MaxRowsPerSecond != nil {
		in.rate = int(*rule.MaxRowsPerSecond)
		if sr.BatchSize == 0 || sr.BatchSize > in.rate {
			sr.BatchSize = in.rate // a batch is at most a second's worth
		}
	}
	below := env.dataMap.Below(sr.Collection)
	if in.holds, err = (holdResolver{run.r.reader()}).forSweep(ctx, pol.Namespace, env.ds.Name, sr.Collection, below, env.sweeper, run.now); err != nil {
		return nil, err
	}
	sr.HeldKeys, sr.HeldChildKeys = in.holds.keys, in.holds.childKeys
	if len(below) > 0 {
		if !env.exemptRead {
			// Cutoffs from the run's start, as the rules' own: every slice agrees.
			if env.exemptions, err = storeExemptions(ctx, run.r.Client, env.ds, sw.StartedAt.Time); err != nil {
				return nil, err
			}
			env.exemptRead = true
		}
		own := exemptionRule(pol.Name, rule.Name)
		for _, e := range env.exemptions {
			if e.Rule != own {
				sr.Exemptions = append(sr.Exemptions, e)
			}
		}
	}
	return in, nil
}

// sweepRule sweeps one rule from the saved place. It returns the rule's
// result when it is done, or a wait >= 0 when the slice must stop first
// (0: out of budget, come back at once; > 0: the rate limit asks to wait).
func (run *sweepRun) sweepRule(ctx context.Context, env *ruleEnv, in *ruleInput, slice *workSlice) (privacyv1.RuleStatus, time.Duration, error) {
	pol, sw, sr, rule := run.pol, run.pol.Status.Sweep, in.sr, in.rule
	held := in.holds.whole
	if sr.Action == stores.ActionDelete {
		// Deleting a row deletes (or unlinks) the rows below it; anonymizing does not.
		held = append(append([]string(nil), held...), in.holds.wholeBelow...)
	}
	if len(held) > 0 {
		// A whole collection is held, this one or one below it: the rule waits;
		// its rows are reported past their period, those of this one held.
		past, err := env.sweeper.CountPastPeriod(ctx, sr)
		if err != nil {
			return privacyv1.RuleStatus{}, -1, err
		}
		st := run.counted(privacyv1.RuleStatus{Name: rule.Name}, past)
		if len(in.holds.whole) > 0 {
			st.RowsHeld = past.Gap()
			st.Message = "skipped: the collection is on legal hold (" + strings.Join(in.holds.whole, "; ") + ")"
		} else {
			st.Message = "skipped: a collection below it is on legal hold (" + strings.Join(in.holds.wholeBelow, "; ") + ")"
		}
		return st, -1, nil
	}

	if sw.Partitions == nil && sr.Action == stores.ActionDelete {
		if ps, ok := env.store.(stores.PartitionSweeper); ok {
			out, err := ps.SweepPartitions(ctx, sr, pol.Spec.DryRun)
			if err != nil {
				return privacyv1.RuleStatus{}, -1, err
			}
			sw.Partitions = partitionsStatus(out, pol.Spec.DryRun)
			if !pol.Spec.DryRun {
				sw.RowsAffected += sw.Partitions.DroppedRows
				metrics.SweepRows(pol.Namespace, pol.Name, rule.Name, string(sr.Action), sw.Partitions.DroppedRows)
				metrics.PartitionsDropped(pol.Namespace, pol.Name, rule.Name, int(sw.Partitions.DroppedCount))
			}
		}
	}

	if pol.Spec.DryRun {
		past, err := env.sweeper.CountPastPeriod(ctx, sr)
		if err != nil {
			return privacyv1.RuleStatus{}, -1, err
		}
		st := run.counted(privacyv1.RuleStatus{Name: rule.Name, RowsAffected: past.Rows, Partitions: listedPartitions(sw.Partitions)}, past)
		st.Message = fmt.Sprintf("dry run: %d row(s) would be %s", past.Rows, actionPast(sr.Action))
		return st, -1, nil
	}

	var sliceRows int64
	for !sw.BatchesDone {
		if slice.exhausted() {
			return privacyv1.RuleStatus{}, 0, nil
		}
		if in.rate > 0 {
			// Rows of this slice may not run ahead of the rate.
			ahead := time.Duration(float64(sliceRows)/float64(in.rate)*float64(time.Second)) - time.Since(slice.start)
			if ahead > 0 {
				return privacyv1.RuleStatus{}, ahead, nil
			}
		}
		b, err := env.sweeper.SweepBatch(ctx, sr, sw.Cursor)
		if err != nil {
			return privacyv1.RuleStatus{}, -1, err
		}
		slice.batches++
		sliceRows += b.Rows
		sw.Cursor, sw.RowsAffected = b.Cursor, sw.RowsAffected+b.Rows
		sw.Children = addChildren(sw.Children, b.Children)
		sw.Kept = addKept(sw.Kept, b.Kept)
		metrics.SweepRows(pol.Namespace, pol.Name, rule.Name, string(sr.Action), b.Rows)
		// Saved so that a count that must be retried does not sweep again.
		sw.BatchesDone = b.Done
	}

	st := privacyv1.RuleStatus{Name: rule.Name, RowsAffected: sw.RowsAffected,
		Children: sw.Children, Kept: sw.Kept, Partitions: listedPartitions(sw.Partitions)}
	past, err := env.sweeper.CountPastPeriod(ctx, sr)
	switch {
	case errors.Is(err, stores.ErrUnavailable):
		return privacyv1.RuleStatus{}, -1, err // retried: the batches are done
	case err != nil:
		st = run.notCounted(st, err)
	default:
		st = run.counted(st, past)
	}
	var notes []string
	if st.RowsHeld > 0 {
		notes = append(notes, fmt.Sprintf("%d row(s) kept for subject(s) on legal hold (%s)", st.RowsHeld, strings.Join(in.holds.names, ", ")))
	}
	if n := keptRows(st.Kept); n > 0 {
		notes = append(notes, fmt.Sprintf("%d row(s) kept because of rows below them (see kept)", n))
	}
	if st.Message != "" {
		notes = append(notes, st.Message)
	}
	st.Message = strings.Join(notes, "; ")
	st.Table = run.tableHealth(ctx, env, sr.Collection)
	return st, -1, nil
}

// failedRule is the result of a rule that could not run: what it did before
// failing, and its gap counted all the same.
func (run *sweepRun) failedRule(ctx context.Context, env *ruleEnv, rule *privacyv1.RetentionRule, in *ruleInput, cause error) privacyv1.RuleStatus {
	sw := run.pol.Status.Sweep
	st := privacyv1.RuleStatus{Name: rule.Name, RowsAffected: sw.RowsAffected,
		Children: sw.Children, Kept: sw.Kept, Partitions: listedPartitions(sw.Partitions)}
	if in == nil {
		st = run.notCounted(st, errors.New("the rule cannot be expressed"))
	} else if past, err := env.sweeper.CountPastPeriod(ctx, in.sr); err != nil {
		st = run.notCounted(st, err)
	} else {
		st = run.counted(st, past)
	}
	gap := st.Message
	st.Message = invalidRulePrefix + cause.Error()
	if gap != "" {
		st.Message += " (" + gap + ")"
	}
	return st
}

// counted sets the rule's gap from a count made now.
func (run *sweepRun) counted(st privacyv1.RuleStatus, past stores.PastPeriod) privacyv1.RuleStatus {
	st.RowsPastPeriod, st.RowsHeld, st.RowsWithoutDate = past.Gap(), past.Held, past.WithoutDate
	st.CountedAt = &metav1.Time{Time: run.now}
	return st
}

// notCounted keeps the last known gap (never a 0 that was not counted) and
// says why it is not this run's.
func (run *sweepRun) notCounted(st privacyv1.RuleStatus, err error) privacyv1.RuleStatus {
	last := lastRuleStatus(run.pol, st.Name)
	if last == nil || last.CountedAt == nil {
		st.Message = fmt.Sprintf("rows past their period not counted: %v; never counted yet", err)
		return st
	}
	st.RowsPastPeriod, st.RowsHeld, st.RowsWithoutDate, st.CountedAt = last.RowsPastPeriod, last.RowsHeld, last.RowsWithoutDate, last.CountedAt
	st.Message = fmt.Sprintf("rows past their period not counted: %v; the counts are those of %s", err, timeText(last.CountedAt.Time))
	return st
}

// tableHealth reports how much of the table deleted rows still occupy, when
// the engine can tell. Not knowing is not an error of the rule.
func (run *sweepRun) tableHealth(ctx context.Context, env *ruleEnv, collection string) *privacyv1.TableHealthStatus {
	hr, ok := env.store.(stores.TableHealthReporter)
	if !ok {
		return nil
	}
	h, err := hr.TableHealth(ctx, collection)
	if err != nil {
		log.FromContext(ctx).V(1).Info("table health not read", "collection", collection, "error", err.Error())
		return nil
	}
	if !h.Known {
		return nil
	}
	out := &privacyv1.TableHealthStatus{DeadRows: h.DeadRows}
	if !h.LastVacuum.IsZero() {
		out.LastVacuum = &metav1.Time{Time: h.LastVacuum}
	}
	return out
}

// partitionsStatus bounds what SweepPartitions did for the status.
func partitionsStatus(ps stores.PartitionSweep, dryRun bool) *privacyv1.PartitionsStatus {
	out := &privacyv1.PartitionsStatus{DryRun: dryRun, DroppedCount: int32(len(ps.Dropped)), KeptCount: int32(len(ps.Kept))}
	for i, p := range ps.Dropped {
		out.DroppedRows += p.Rows
		out.DroppedRowsEstimated = out.DroppedRowsEstimated || p.Estimated
		if i < privacyv1.MaxPartitionsListed {
			out.Dropped = append(out.Dropped, privacyv1.PartitionOutcome{Name: p.Name, Rows: p.Rows, Estimated: p.Estimated})
		}
	}
	for i, p := range ps.Kept {
		if i < privacyv1.MaxPartitionsListed {
			out.Kept = append(out.Kept, privacyv1.PartitionOutcome{Name: p.Name, Rows: p.Rows, Estimated: p.Estimated, Reason: truncate(p.Reason, 256)})
		}
	}
	return out
}

// listedPartitions is the partitions part of a rule's status: nil when the
// table had no partition past the cutoff (or is not partitioned).
func listedPartitions(p *privacyv1.PartitionsStatus) *privacyv1.PartitionsStatus {
	if p == nil || p.DroppedCount == 0 && p.KeptCount == 0 {
		return nil
	}
	return p.DeepCopy()
}

// addChildren adds a batch's results below the swept rows, per collection
// and action.
func addChildren(sum []privacyv1.ChildRows, batch []stores.CollectionResult) []privacyv1.ChildRows {
	for _, c := range batch {
		if c.Rows == 0 {
			continue
		}
		i := 0
		for i < len(sum) && (sum[i].Collection != c.Collection || sum[i].Action != string(c.Action)) {
			i++
		}
		if i == len(sum) {
			sum = append(sum, privacyv1.ChildRows{Collection: c.Collection, Action: string(c.Action)})
		}
		sum[i].Rows += c.Rows
	}
	return sum
}

// maxKeptReasons bounds the reasons listed; the rest are added up in one.
const maxKeptReasons = 20

const otherKeptReasons = "other reasons"

// addKept adds a batch's kept rows, per reason.
func addKept(sum []privacyv1.KeptRows, batch []stores.CollectionResult) []privacyv1.KeptRows {
	for _, k := range batch {
		if k.Rows == 0 {
			continue
		}
		reason := truncate(k.Reason, 512)
		if reason == "" {
			reason = "rows below them are kept"
		}
		i := 0
		for i < len(sum) && sum[i].Reason != reason {
			i++
		}
		if i == len(sum) {
			if len(sum) >= maxKeptReasons {
				reason = otherKeptReasons
				for i = 0; i < len(sum) && sum[i].Reason != reason; i++ {
				}
			}
			if i == len(sum) {
				sum = append(sum, privacyv1.KeptRows{Reason: reason})
			}
		}
		sum[i].Rows += k.Rows
	}
	return sum
}

func keptRows(kept []privacyv1.KeptRows) int64 {
	var n int64
	for _, k := range kept {
		n += k.Rows
	}
	return n
}

func actionPast(a stores.Action) string {
	if a == stores.ActionAnonymize {
		return "anonymized"
	}
	return "deleted"
}

// runNowValue is the run-now annotation's value as status.lastRunNowValue
// keeps it ("" when absent): as written, or its SHA-256 when long.
func runNowValue(pol *privacyv1.RetentionPolicy) string {
	v := pol.Annotations[privacyv1.AnnotationRunNow]
	if len(v) > 128 {
		sum := sha256.Sum256([]byte(v))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return v
}

// runNowPending is the run-now value the policy has not run for yet, or "".
func runNowPending(pol *privacyv1.RetentionPolicy) string {
	if v := runNowValue(pol); v != pol.Status.LastRunNowValue {
		return v
	}
	return ""
}

// publishMetrics sets the gauges of every rule from its last counts (a rule
// of the run in progress from this run), whatever its state, and whether the
// policy is Stalled.
func publishMetrics(pol *privacyv1.RetentionPolicy) {
	names := make([]string, 0, len(pol.Spec.Rules))
	for _, rule := range pol.Spec.Rules {
		names = append(names, rule.Name)
		st := lastRuleStatus(pol, rule.Name)
		if sw := pol.Status.Sweep; sw != nil {
			if done := completedRule(sw, rule.Name); done != nil {
				st = done
			}
		}
		if st == nil || st.CountedAt == nil {
			continue // never counted: no value rather than a 0 nobody counted
		}
		g := metrics.RuleGap{PastPeriod: st.RowsPastPeriod, Held: st.RowsHeld, WithoutDate: st.RowsWithoutDate}
		if st.Table != nil {
			g.DeadRows = &st.Table.DeadRows
		}
		metrics.RuleCounted(pol.Namespace, pol.Name, rule.Name, g)
	}
	metrics.PolicyRules(pol.Namespace, pol.Name, names)
	metrics.PolicyStalled(pol.Namespace, pol.Name, apimeta.IsStatusConditionTrue(pol.Status.Conditions, privacyv1.ConditionStalled))
}
