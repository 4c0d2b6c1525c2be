package controllers

import (
	"context"
	"maps"
	"slices"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Field indexes on the manager's cache, so that a change to one object wakes
// only the objects that depend on it instead of listing the namespace.
const (
	// indexRequestStore holds the DataStores an unfinished request names, or
	// anyStore when its scope names none (every store, or a label selector).
	// Finished requests are not indexed: no store change concerns them.
	indexRequestStore = "lethe.dev/request-store"
	// indexPolicyStore holds a RetentionPolicy's storeRef.
	indexPolicyStore = "lethe.dev/policy-store"
	// anyStore is the indexRequestStore value of requests not naming stores.
	anyStore = "*"
	// indexJournaledErasure holds the DataStores where an erasure's part
	// completed and is journaled: the erasures a restore may undo there
	// (datastore_replay.go).
	indexJournaledErasure = "lethe.dev/journaled-erasure-store"
	// indexWaitingInput is "true" on a completed request with an input
	// Secret waiting for another reader (datasubjectrequest_footprint.go):
	// without it every request's change listed, and copied, the namespace's
	// requests, which took half the manager's CPU with 1,000 of them.
	indexWaitingInput = "lethe.dev/waiting-input"
)

// setupIndexes registers the field indexes every controller relies on.
func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &privacyv1.DataSubjectRequest{}, indexRequestStore, requestStores); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &privacyv1.DataSubjectRequest{}, indexJournaledErasure, journaledErasureStores); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &privacyv1.DataSubjectRequest{}, indexWaitingInput, waitingInput); err != nil {
		return err
	}
	return idx.IndexField(ctx, &privacyv1.RetentionPolicy{}, indexPolicyStore, func(obj client.Object) []string {
		return []string{string(obj.(*privacyv1.RetentionPolicy).Spec.StoreRef)}
	})
}

func requestStores(obj client.Object) []string {
	dsr, ok := obj.(*privacyv1.DataSubjectRequest)
	if !ok || isComplete(dsr) {
		return nil
	}
	if len(dsr.Spec.Scope.Stores) == 0 {
		return []string{anyStore}
	}
	keys := make([]string, 0, len(dsr.Spec.Scope.Stores))
	for _, s := range dsr.Spec.Scope.Stores {
		keys = append(keys, string(s))
	}
	return keys
}

// waitingInput indexes a completed request whose input Secret waits for
// another reader.
func waitingInput(obj client.Object) []string {
	dsr, ok := obj.(*privacyv1.DataSubjectRequest)
	if !ok || !isComplete(dsr) {
		return nil
	}
	if slices.ContainsFunc(dsr.Status.InputSecrets, func(o privacyv1.InputSecretOutcome) bool { return o.State == privacyv1.InputWaiting }) {
		return []string{"true"}
	}
	return nil
}

// journaledErasureStores are the stores where an erasure's part completed
// and is journaled.
func journaledErasureStores(obj client.Object) []string {
	dsr, ok := obj.(*privacyv1.DataSubjectRequest)
	if !ok || dsr.Spec.Type != privacyv1.RequestErasure || dsr.Spec.DryRun {
		return nil
	}
	var out []string
	for _, o := range dsr.Status.Stores {
		if o.Phase == privacyv1.StoreCompleted && o.Journaled {
			out = append(out, o.Store)
		}
	}
	return out
}

// unfinishedRequestsOfStore are the requests a DataStore change may unblock:
// those naming it, and those whose scope may select it.
func unfinishedRequestsOfStore(ctx context.Context, c client.Reader, namespace, store string) []reconcile.Request {
	var reqs []reconcile.Request
	for _, key := range []string{store, anyStore} {
		list := &privacyv1.DataSubjectRequestList{}
		if err := c.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{indexRequestStore: key}); err != nil {
			continue
		}
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// storeReadinessChanged passes the DataStore events its dependents act on:
// a store created or deleted, its spec or labels changed, or its Ready
// condition changing status or reason. The periodic check's status patches
// (lastCheckTime) pass nothing.
var storeReadinessChanged = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return true },
	DeleteFunc: func(event.DeleteEvent) bool { return true },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*privacyv1.DataStore)
		n, ok2 := e.ObjectNew.(*privacyv1.DataStore)
		if !ok1 || !ok2 || o.Generation != n.Generation || !maps.Equal(o.Labels, n.Labels) {
			return true
		}
		before := apimeta.FindStatusCondition(o.Status.Conditions, privacyv1.ConditionReady)
		after := apimeta.FindStatusCondition(n.Status.Conditions, privacyv1.ConditionReady)
		if before == nil || after == nil {
			return before != after
		}
		return before.Status != after.Status || before.Reason != after.Reason || before.ObservedGeneration != after.ObservedGeneration
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}
