package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/stores"
)

// storeRetryInterval is the wait before reconnecting to an unavailable store.
const storeRetryInterval = 15 * time.Second

// DataStoreReconciler checks that a DataStore is reachable and that its live
// schema matches the data map, and reports any drift precisely.
type DataStoreReconciler struct {
	client.Client
	// APIReader reads Secrets, LegalHolds and requests past the cache (replays).
	APIReader client.Reader
	// Forget is the forget list replays read their identities from; nil
	// keeps none (restores are then only reported).
	Forget    *ForgetList
	Connector *connector.Connector
	Recorder  events.EventRecorder
	Now       func() time.Time

	// unrecorded are replays done whose record failed, written at the next check.
	unrecorded unrecordedReplays
}

// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=datastores,verbs=get;list;watch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=datastores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=datasubjectrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=datasubjectrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=retentionpolicies;legalholds,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile checks one DataStore.
func (r *DataStoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ds := &privacyv1.DataStore{}
	if err := r.Get(ctx, req.NamespacedName, ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.Connector.Forget(req.NamespacedName)
			metrics.StoreDeleted(req.Namespace, req.Name) // metrics
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := ds.DeepCopy()
	result, checkErr := r.check(ctx, ds)
	ds.Status.ObservedGeneration = ds.Generation
	accepted := recordWeakening(ds, &ds.Status.AcceptedWeakenings, ds.Spec.WeakeningJustification, r.Now())
	recordConditionTransitions(r.Recorder, ds, before.Status.Conditions, ds.Status.Conditions)
	if err := patchStatus(ctx, r.Client, ds, before); err != nil {
		return ctrl.Result{}, err
	}
	reportWeakening(r.Recorder, ds, accepted)
	metrics.StoreReadiness(ds.Namespace, ds.Name, apimeta.IsStatusConditionTrue(ds.Status.Conditions, privacyv1.ConditionReady)) // metrics
	return result, checkErr
}

func (r *DataStoreReconciler) check(ctx context.Context, ds *privacyv1.DataStore) (ctrl.Result, error) {
	conds := &ds.Status.Conditions
	gen := ds.Generation
	if apimeta.FindStatusCondition(*conds, privacyv1.ConditionReady) == nil {
		markProgressing(conds, gen, privacyv1.ReasonProgressing, "checking the connection and the live schema")
	}
	lease, err := r.Connector.Acquire(ctx, ds)
	switch {
	case errors.Is(err, egress.ErrRefused):
		markStalled(conds, gen, privacyv1.ReasonEgressRefused, err.Error())
		return ctrl.Result{RequeueAfter: ds.Spec.CheckEvery()}, nil
	case errors.Is(err, stores.ErrConnectionSettings):
		markStalled(conds, gen, privacyv1.ReasonConnectionRefused, err.Error())
		return ctrl.Result{RequeueAfter: ds.Spec.CheckEvery()}, nil
	case errors.Is(err, stores.ErrInvalid):
		markStalled(conds, gen, privacyv1.ReasonInvalidDataMap, err.Error())
		return ctrl.Result{}, nil
	case errors.Is(err, connector.ErrSecret):
		markProgressing(conds, gen, privacyv1.ReasonSecretNotFound, err.Error())
		return ctrl.Result{RequeueAfter: storeRetryInterval}, nil
	case err != nil:
		markProgressing(conds, gen, privacyv1.ReasonStoreUnavailable, "cannot connect: "+err.Error())
		return ctrl.Result{RequeueAfter: storeRetryInterval}, nil
	}
	defer lease.Release()
	res, err := lease.Store.Check(ctx)
	now := metav1.NewTime(r.Now())
	ds.Status.LastCheckTime = &now
	if err != nil {
		markProgressing(conds, gen, privacyv1.ReasonStoreUnavailable, "schema check failed: "+err.Error())
		return ctrl.Result{RequeueAfter: storeRetryInterval}, nil
	}
	ds.Status.SchemaProblems = nil
	for _, p := range res.Problems {
		ds.Status.SchemaProblems = append(ds.Status.SchemaProblems, privacyv1.SchemaProblem{Collection: p.Collection, Field: p.Field, Problem: p.Problem})
	}
	ds.Status.Warnings = res.Warnings
	setJournalCondition(conds, gen, res.Journal)
	r.reportUnmapped(ds, res.Unmapped) // datastore_unmapped.go: a warning, Ready does not depend on it
	interval := ds.Spec.CheckEvery()
	if len(res.Problems) > 0 {
		// Drift is fixed by a migration or a map change, not by retrying soon:
		// Stalled, rechecked at the normal interval.
		markStalled(conds, gen, privacyv1.ReasonSchemaDrift, driftMessage(res.Problems))
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	msg := "connected; the live schema matches the data map"
	if len(res.Warnings) > 0 {
		msg += fmt.Sprintf(" (%d warning(s), see status.warnings)", len(res.Warnings))
	}
	markReady(conds, gen, privacyv1.ReasonSucceeded, msg)
	if wait := r.replayCheck(ctx, ds, lease.Store, res.Journal); wait > 0 && wait < interval {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

func driftMessage(problems []stores.SchemaProblem) string {
	parts := make([]string, 0, len(problems))
	for _, p := range problems {
		where := p.Collection
		if p.Field != "" {
			where += "." + p.Field
		}
		parts = append(parts, where+": "+p.Problem)
	}
	return fmt.Sprintf("the live schema does not match the data map (%d problem(s)): %s", len(problems), strings.Join(parts, "; "))
}

// SetupWithManager registers the controller. Secrets are not watched: the
// manager only needs to get the few it is pointed at, and a missing one is
// retried every storeRetryInterval.
func (r *DataStoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		return errNoClock
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return ctrl.NewControllerManagedBy(mgr).
		// A new value of the replay-check annotation asks for a check now
		// (datastore_replay.go); a change of the ignore-unmapped one updates
		// UnmappedPersonalData at once (datastore_unmapped.go).
		For(&privacyv1.DataStore{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
			annotationChanged(privacyv1.ReplayCheckAnnotation, privacyv1.AnnotationIgnoreUnmapped)))).
		Named("datastore").
		Complete(r)
}

// setJournalCondition reports whether requests write the store's journal
// (SQL stores; none for the others). Without it a store still works, but a
// crash between its commit and the status write loses that pass's counts.
func setJournalCondition(conds *[]metav1.Condition, gen int64, j *stores.JournalStatus) {
	switch {
	case j == nil:
		apimeta.RemoveStatusCondition(conds, privacyv1.ConditionJournal)
	case j.Available:
		setCondition(conds, gen, privacyv1.ConditionJournal, metav1.ConditionTrue, privacyv1.ReasonJournalReady,
			"each request's changes are recorded in the store, in the request's own transaction")
	case j.Disabled:
		setCondition(conds, gen, privacyv1.ConditionJournal, metav1.ConditionFalse, privacyv1.ReasonJournalDisabled,
			j.Reason+"; receipts add up each pass as the manager saw it")
	default:
		setCondition(conds, gen, privacyv1.ConditionJournal, metav1.ConditionFalse, privacyv1.ReasonJournalUnavailable,
			j.Reason+"; requests run without it (grant CREATE, INSERT and SELECT on it, or set spec.journal.disabled)")
	}
}
