package controllers

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Deadlines: the default from flags, DeadlineExceeded, and waking on time.

// deadline is when the request must be complete: creation plus spec.deadline,
// or the operator's default for its type.
func (r *DataSubjectRequestReconciler) deadline(dsr *privacyv1.DataSubjectRequest) metav1.Time {
	created := dsr.CreationTimestamp.Time
	if dsr.Spec.Deadline != "" {
		if t, err := dsr.Spec.Deadline.After(created); err == nil {
			return metav1.NewTime(t)
		}
	}
	d := r.OtherDeadline
	if dsr.Spec.Type == privacyv1.RequestErasure {
		d = r.ErasureDeadline
	}
	return metav1.NewTime(created.Add(d))
}

// trackDeadline sets DeadlineExceeded: True once the deadline passed without
// completion (or completion came late), False while within it.
func (r *DataSubjectRequestReconciler) trackDeadline(dsr *privacyv1.DataSubjectRequest) {
	if dsr.Status.Deadline == nil {
		return
	}
	deadline := dsr.Status.Deadline.Time
	conds := &dsr.Status.Conditions
	switch {
	case dsr.Status.CompletionTime != nil && dsr.Status.CompletionTime.After(deadline):
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonCompletedLate,
			fmt.Sprintf("completed %s after the deadline", dsr.Status.CompletionTime.Sub(deadline).Round(time.Second)))
	case dsr.Status.CompletionTime != nil:
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionFalse, privacyv1.ReasonWithinDeadline, "completed within the deadline")
	case r.Now().After(deadline):
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonDeadlineExceeded,
			fmt.Sprintf("the deadline %s has passed and the request is not complete", deadline.UTC().Format(time.RFC3339)))
	default:
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionFalse, privacyv1.ReasonWithinDeadline, "within the deadline")
	}
}

// wakeAtDeadline makes sure an unfinished request is looked at when its
// deadline passes, so DeadlineExceeded is reported on time.
func (r *DataSubjectRequestReconciler) wakeAtDeadline(dsr *privacyv1.DataSubjectRequest, res reconcile.Result) reconcile.Result {
	if dsr.Status.Deadline == nil {
		return res
	}
	until := dsr.Status.Deadline.Sub(r.Now())
	if until > 0 && (res.RequeueAfter == 0 || until < res.RequeueAfter) {
		res.RequeueAfter = until + time.Second
	}
	return res
}
