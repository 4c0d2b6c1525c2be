package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// The kstatus trio, set consistently so kubectl wait, Flux and Argo CD agree:
// working → Ready=False + Reconciling=True; done → Ready=True alone;
// terminal failure → Ready=False + Stalled=True.

func setCondition(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// markProgressing says the controller is working towards Ready.
func markProgressing(conds *[]metav1.Condition, gen int64, reason, msg string) {
	setCondition(conds, gen, privacyv1.ConditionReady, metav1.ConditionFalse, reason, msg)
	setCondition(conds, gen, privacyv1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
	apimeta.RemoveStatusCondition(conds, privacyv1.ConditionStalled)
}

// markReady says the object is done or healthy.
func markReady(conds *[]metav1.Condition, gen int64, reason, msg string) {
	setCondition(conds, gen, privacyv1.ConditionReady, metav1.ConditionTrue, reason, msg)
	apimeta.RemoveStatusCondition(conds, privacyv1.ConditionReconciling)
	apimeta.RemoveStatusCondition(conds, privacyv1.ConditionStalled)
}

// markStalled says retrying cannot help until the spec or the environment changes.
func markStalled(conds *[]metav1.Condition, gen int64, reason, msg string) {
	setCondition(conds, gen, privacyv1.ConditionReady, metav1.ConditionFalse, reason, msg)
	setCondition(conds, gen, privacyv1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	apimeta.RemoveStatusCondition(conds, privacyv1.ConditionReconciling)
}

// patchStatus writes obj's status if it differs from before's, with optimistic
// locking so a concurrent writer makes us retry instead of being overwritten.
func patchStatus(ctx context.Context, c client.Client, obj, before client.Object) error {
	if equality.Semantic.DeepEqual(obj, before) {
		return nil
	}
	return c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// recordConditionTransitions emits one Event per condition whose status or
// reason changed, with the condition's reason.
func recordConditionTransitions(rec events.EventRecorder, obj client.Object, before, after []metav1.Condition) {
	if rec == nil {
		return
	}
	for _, typ := range []string{privacyv1.ConditionReady, privacyv1.ConditionStalled, privacyv1.ConditionDeadlineExceeded, privacyv1.ConditionOnLegalHold} {
		a := apimeta.FindStatusCondition(after, typ)
		b := apimeta.FindStatusCondition(before, typ)
		if a == nil || (b != nil && b.Status == a.Status && b.Reason == a.Reason) {
			continue
		}
		if typ != privacyv1.ConditionReady && a.Status != metav1.ConditionTrue {
			continue // only the start of a domain condition is news
		}
		if typ == privacyv1.ConditionStalled {
			continue // Ready carries the same reason and message
		}
		evType := corev1.EventTypeNormal
		if a.Reason != privacyv1.ReasonProgressing && a.Reason != privacyv1.ReasonCompleted &&
			a.Reason != privacyv1.ReasonDryRunCompleted && a.Reason != privacyv1.ReasonSucceeded {
			evType = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, evType, a.Reason, typ, "%s", a.Message)
	}
}

// annotationChanged lets an update that changes one of the annotations keys
// through a controller's generation filter: annotations that ask for work
// now, or change what a check reports, without changing the spec.
func annotationChanged(keys ...string) predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			before, after := e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()
			for _, k := range keys {
				if before[k] != after[k] {
					return true
				}
			}
			return false
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
