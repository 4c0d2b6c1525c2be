package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Bounds of one reconcile of a RetentionPolicy: a sweep over millions of rows
// is done in slices, its place saved in status.sweep after each, so it never
// holds a worker for long and a restarted operator resumes it.
const (
	DefaultMaxBatchesPerReconcile = 200
	DefaultMaxWorkPerReconcile    = 2 * time.Second
)

// RetentionPolicyReconciler runs the sweeps of RetentionPolicies on their
// schedules.
//
// Semantics, in kstatus terms:
//   - between runs: Ready=True (Succeeded), status.nextRunTime says when the next starts;
//   - during a run longer than one reconcile: Ready=False, Reconciling=True, with
//     the rule and rows so far in the message and status.sweep;
//   - suspend: Ready=True with reason Suspended (the object is as its spec asks:
//     nothing runs); a run in progress keeps its place and resumes when unsuspended;
//   - an unparsable schedule, or a rule that does not fit the store:
//     Ready=False, Stalled=True (InvalidSchedule, InvalidRule); other rules still run;
//   - dryRun: every rule is counted, nothing changes; rowsAffected is what a run would do.
//
// The first run is at the first time the schedule names after the policy was
// created (a policy applied at noon with "0 3 * * *" first runs at 03:00), so
// the schedule alone decides when the database is loaded. A run that was
// missed (the operator was down) runs as soon as possible, once.
type RetentionPolicyReconciler struct {
	client.Client
	// APIReader reads the Secrets of legal holds' subjects.
	APIReader client.Reader
	Connector *connector.Connector
	Recorder  events.EventRecorder
	Now       func() time.Time
	// MaxBatchesPerReconcile and MaxWorkPerReconcile bound one reconcile
	// (defaults DefaultMaxBatchesPerReconcile, DefaultMaxWorkPerReconcile).
	MaxBatchesPerReconcile int
	MaxWorkPerReconcile    time.Duration
	// RetryBase is the wait before retrying an unavailable store (default 15s).
	RetryBase time.Duration
}

// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=retentionpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=retentionpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=legalholds;datastores,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// setupRetentionAndHolds registers the RetentionPolicy and LegalHold controllers.
func setupRetentionAndHolds(mgr ctrl.Manager, o Options, rec events.EventRecorder) error {
	if err := (&RetentionPolicyReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Connector: o.Connector, Recorder: rec, Now: o.Now, RetryBase: o.RetryBase,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&LegalHoldReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec, Now: o.Now, DigestKey: o.DigestKey,
	}).SetupWithManager(mgr)
}

// SetupWithManager registers the controller. Status writes do not retrigger
// it (its own RequeueAfter paces it); spec and annotation changes do, and a
// DataStore's changes wake the policies that use it.
func (r *RetentionPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&privacyv1.RetentionPolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&privacyv1.DataStore{}, handler.EnqueueRequestsFromMapFunc(r.policiesOfStore), builder.WithPredicates(storeReadinessChanged)).
		Named("retentionpolicy").
		Complete(r)
}

func (r *RetentionPolicyReconciler) policiesOfStore(ctx context.Context, obj client.Object) []reconcile.Request {
	list := &privacyv1.RetentionPolicyList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexPolicyStore: obj.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// Reconcile starts, continues or schedules one policy's sweep.
func (r *RetentionPolicyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// Read uncached: acting on a stale status (the informer not having seen the
	// last slice's write yet) would start a run again or redo a slice.
	pol := &privacyv1.RetentionPolicy{}
	if err := r.reader().Get(ctx, req.NamespacedName, pol); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.PolicyDeleted(req.Namespace, req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	run := &sweepRun{r: r, pol: pol, before: pol.DeepCopy(), now: now()}
	result, err := run.advance(ctx)
	pol.Status.ObservedGeneration = pol.Generation
	recordConditionTransitions(r.Recorder, pol, run.before.Status.Conditions, pol.Status.Conditions)
	if perr := r.saveStatus(ctx, pol, run.before); perr != nil {
		return reconcile.Result{}, perr
	}
	run.afterSave()
	return result, err
}

func (r *RetentionPolicyReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// saveStatus writes the status with optimistic locking. The rows a slice
// changed are changed whatever happens to the write, so when it conflicts only
// because the spec or metadata changed meanwhile (an edit, an annotation), the
// progress is written onto the newer object rather than lost: a lost write
// would make the next reconcile redo the slice and count nothing.
func (r *RetentionPolicyReconciler) saveStatus(ctx context.Context, pol, before *privacyv1.RetentionPolicy) error {
	err := patchStatus(ctx, r.Client, pol, before)
	if !apierrors.IsConflict(err) {
		return err
	}
	fresh := &privacyv1.RetentionPolicy{}
	if gerr := r.reader().Get(ctx, client.ObjectKeyFromObject(pol), fresh); gerr != nil {
		return err
	}
	if !equality.Semantic.DeepEqual(fresh.Status, before.Status) {
		return err // another writer changed the status: start over from it
	}
	updated := fresh.DeepCopy()
	updated.Status = *pol.Status.DeepCopy()
	return patchStatus(ctx, r.Client, updated, fresh)
}

// sweepRun is one reconcile of one policy.
type sweepRun struct {
	r      *RetentionPolicyReconciler
	pol    *privacyv1.RetentionPolicy
	before *privacyv1.RetentionPolicy
	now    time.Time
	// finished is set when this reconcile finished a run: its summary.
	finished string
	// weakened lists the accepted weakenings to record once the status is saved.
	weakened []string
}

func (run *sweepRun) conds() *[]metav1.Condition { return &run.pol.Status.Conditions }
func (run *sweepRun) gen() int64                 { return run.pol.Generation }

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

// minScheduleInterval is the shortest time between two scheduled runs.
const minScheduleInterval = time.Minute

func (run *sweepRun) advance(ctx context.Context) (reconcile.Result, error) {
	pol := run.pol
	run.weakened = weakenings(pol.Status.Applied, pol.Spec, run.now)
	pol.Status.Applied = appliedPolicy(pol.Spec)

	sched, err := cron.ParseStandard(pol.Spec.Schedule)
	if err != nil {
		pol.Status.NextRunTime = nil
		markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidSchedule,
			fmt.Sprintf("schedule %q cannot be parsed: %v; use five cron fields (\"30 3 * * *\") or a descriptor (@daily, @every 6h)", pol.Spec.Schedule, err))
		return reconcile.Result{}, nil
	}
	if first := sched.Next(run.now); sched.Next(first).Sub(first) < minScheduleInterval {
		// Admission refuses this; a policy stored before that rule still must not spin.
		pol.Status.NextRunTime = nil
		markStalled(run.conds(), run.gen(), privacyv1.ReasonTooFrequent,
			fmt.Sprintf("schedule %q runs more often than every %s; sweeps are bounded batches, not a loop", pol.Spec.Schedule, minScheduleInterval))
		return reconcile.Result{}, nil
	}
	for _, rule := range pol.Spec.Rules {
		if err := rule.After.Period.Validate(); err != nil {
			markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidRule, fmt.Sprintf("rule %s: %v", rule.Name, err))
			return reconcile.Result{}, nil
		}
	}
	if pol.Status.Sweep == nil {
		if pol.Spec.Suspend {
			pol.Status.NextRunTime = nil
			markReady(run.conds(), run.gen(), privacyv1.ReasonSuspended, "suspended: no sweep is scheduled")
			return reconcile.Result{}, nil
		}
		next := nextRun(sched, pol)
		pol.Status.NextRunTime = &metav1.Time{Time: next}
		if run.now.Before(next) {
			if !lastRunStands(pol) {
				markReady(run.conds(), run.gen(), privacyv1.ReasonSucceeded, "scheduled; next sweep at "+timeText(next))
			}
			return reconcile.Result{RequeueAfter: next.Sub(run.now)}, nil
		}
		start := metav1.NewTime(run.now)
		pol.Status.Sweep = &privacyv1.SweepProgress{StartedAt: start}
		pol.Status.LastRunTime = &start
		pol.Status.NextRunTime = &metav1.Time{Time: sched.Next(run.now)}
	}
	if pol.Spec.Suspend {
		markReady(run.conds(), run.gen(), privacyv1.ReasonSuspended,
			"suspended during a sweep: it stopped after its last batch and resumes where it stopped when suspend is turned off")
		return reconcile.Result{}, nil
	}
	return run.sweep(ctx, sched)
}

// lastRunStands reports whether Ready, between runs, still describes the spec:
// the last run's success, or its rules that could not run (until the spec changes).
func lastRunStands(pol *privacyv1.RetentionPolicy) bool {
	c := apimeta.FindStatusCondition(pol.Status.Conditions, privacyv1.ConditionReady)
	if c == nil || c.ObservedGeneration != pol.Generation {
		return false
	}
	return c.Status == metav1.ConditionTrue && c.Reason == privacyv1.ReasonSucceeded || c.Reason == privacyv1.ReasonInvalidRule
}

// nextRun is the first time the schedule names after the last run started
// (or, before the first run, after the policy was created).
func nextRun(sched cron.Schedule, pol *privacyv1.RetentionPolicy) time.Time {
	base := pol.CreationTimestamp.Time
	if pol.Status.LastRunTime != nil {
		base = pol.Status.LastRunTime.Time
	}
	return sched.Next(base)
}

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
	holds, err := run.r.holdsOn(ctx, pol.Namespace, ds.Name, sr.Collection, sweeper, run.now)
	if err != nil {
		return privacyv1.RuleStatus{}, -1, err
	}
	if len(holds.whole) > 0 {
		// The whole collection is held: the rule waits; its rows are reported held.
		held, err := sweeper.CountPastPeriod(ctx, sr)
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
	if gap, err = sweeper.CountPastPeriod(ctx, sr); err != nil || len(sr.HeldKeys) == 0 {
		return gap, 0, err
	}
	all := sr
	all.HeldKeys = nil
	n, err := sweeper.CountPastPeriod(ctx, all)
	return gap, n - gap, err
}

func actionPast(a stores.Action) string {
	if a == stores.ActionAnonymize {
		return "anonymized"
	}
	return "deleted"
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

// heldRows are the legal holds on one collection of one store.
type heldRows struct {
	whole []string // holds on every row of the collection
	keys  []string // keys of held subjects' rows
	names []string // holds on subjects
}

// holdsOn finds the active holds of the namespace on a collection: a hold
// without subject holds the whole collection; a hold with a subject holds that
// subject's rows (resolved by the store as erasure would find them). A hold
// whose subject cannot be read stops the rule rather than let it sweep held rows.
func (r *RetentionPolicyReconciler) holdsOn(ctx context.Context, namespace, store, collection string, sweeper stores.Sweeper, now time.Time) (heldRows, error) {
	var out heldRows
	list := &privacyv1.LegalHoldList{}
	// Uncached: a hold created a moment ago must hold already.
	if err := r.reader().List(ctx, list, client.InNamespace(namespace)); err != nil {
		return out, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	for i := range list.Items {
		h := &list.Items[i]
		if !HoldActive(h, now) || !holdCovers(h, store, collection) {
			continue
		}
		if h.Spec.Subject == nil {
			out.whole = append(out.whole, fmt.Sprintf("legal hold %s: %s", h.Name, h.Spec.Reason))
			continue
		}
		ids, err := resolveIdentities(ctx, r.APIReader, namespace, *h.Spec.Subject)
		if err != nil {
			return out, fmt.Errorf("LegalHold %q: %w", h.Name, err)
		}
		keys, err := sweeper.SubjectKeys(ctx, ids, collection)
		if err != nil {
			return out, fmt.Errorf("LegalHold %q: %w", h.Name, err)
		}
		out.keys = append(out.keys, keys...)
		out.names = append(out.names, h.Name)
	}
	return out, nil
}

// holdCovers reports whether a hold applies to a collection of a store.
func holdCovers(h *privacyv1.LegalHold, store, collection string) bool {
	if len(h.Spec.Collections) == 0 {
		return true
	}
	for _, hc := range h.Spec.Collections {
		if string(hc.Store) == store && (hc.Collection == "" || string(hc.Collection) == collection) {
			return true
		}
	}
	return false
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
