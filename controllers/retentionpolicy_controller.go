package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
//
// The annotation privacy.lethe.dev/run-now, set to a value the policy has not
// run for (status.lastRunNowValue), starts a run at once (after the run in
// progress, if any), once per value; the schedule goes on as before. A
// suspended policy keeps the request until suspend is turned off.
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
		return errNoClock
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
	run := &sweepRun{r: r, pol: pol, before: pol.DeepCopy(), now: r.Now()}
	result, err := run.advance(ctx)
	pol.Status.ObservedGeneration = pol.Generation
	recordConditionTransitions(r.Recorder, pol, run.before.Status.Conditions, pol.Status.Conditions)
	// Before the write, so that whoever sees the status sees its gauges (a
	// failed write is retried, and the retry sets them again).
	publishMetrics(pol)
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
	// failedRules are the rules of the finished run that could not run, and why.
	failedRules []string
	// weakened is the accepted weakening to report once the status is saved.
	weakened *privacyv1.AcceptedWeakening
}

func (run *sweepRun) conds() *[]metav1.Condition { return &run.pol.Status.Conditions }
func (run *sweepRun) gen() int64                 { return run.pol.Generation }

// minScheduleInterval is the shortest time between two scheduled runs.
const minScheduleInterval = time.Minute

func (run *sweepRun) advance(ctx context.Context) (reconcile.Result, error) {
	pol := run.pol
	run.weakened = recordWeakening(pol, &pol.Status.AcceptedWeakenings, pol.Spec.WeakeningJustification, run.now)

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
		runNow := runNowPending(pol)
		if pol.Spec.Suspend {
			pol.Status.NextRunTime = nil
			msg := "suspended: no sweep is scheduled"
			if runNow != "" {
				msg += "; the " + privacyv1.AnnotationRunNow + " request waits until suspend is turned off"
			}
			markReady(run.conds(), run.gen(), privacyv1.ReasonSuspended, msg)
			return reconcile.Result{}, nil
		}
		next := nextRun(sched, pol)
		pol.Status.NextRunTime = &metav1.Time{Time: next}
		if run.now.Before(next) && runNow == "" {
			if !lastRunStands(pol) {
				markReady(run.conds(), run.gen(), privacyv1.ReasonSucceeded, "scheduled; next sweep at "+timeText(next))
			}
			return reconcile.Result{RequeueAfter: next.Sub(run.now)}, nil
		}
		start := metav1.NewTime(run.now)
		pol.Status.Sweep = &privacyv1.SweepProgress{StartedAt: start}
		pol.Status.LastRunTime = &start
		pol.Status.NextRunTime = &metav1.Time{Time: sched.Next(run.now)}
		if runNow != "" {
			// Handled once: the same value again starts nothing.
			pol.Status.LastRunNowValue = runNow
		}
	}
	if pol.Spec.Suspend {
		markReady(run.conds(), run.gen(), privacyv1.ReasonSuspended,
			"suspended during a sweep: it stopped after its last batch and resumes where it stopped when suspend is turned off")
		return reconcile.Result{}, nil
	}
	res, err := run.sweep(ctx, sched)
	if err == nil && pol.Status.Sweep == nil && runNowPending(pol) != "" {
		// A run-now value set during the run asks for a run of its own.
		res = reconcile.Result{RequeueAfter: time.Millisecond}
	}
	return res, err
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
