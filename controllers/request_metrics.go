package controllers

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/metrics"
)

// recordRequestMetrics records what one reconcile changed, once its status was
// saved: counting only after a successful write means a conflict (and the retry
// that follows) never counts a completion or a deadline breach twice.
func recordRequestMetrics(before, after *privacyv1.DataSubjectRequest) {
	ns, typ := after.Namespace, string(after.Spec.Type)
	conds := after.Status.Conditions
	exceeded := apimeta.IsStatusConditionTrue(conds, privacyv1.ConditionDeadlineExceeded)
	if exceeded && !apimeta.IsStatusConditionTrue(before.Status.Conditions, privacyv1.ConditionDeadlineExceeded) {
		metrics.RequestDeadlineBreached(ns, typ)
	}
	if isComplete(after) {
		if !isComplete(before) {
			metrics.RequestCompleted(ns, typ, after.Spec.DryRun, exceeded, after.CreationTimestamp.Time, after.Status.CompletionTime.Time)
			if !after.Spec.DryRun {
				for _, s := range after.Status.Stores {
					for _, c := range s.Collections {
						metrics.RequestRows(ns, s.Store, c.Collection, c.Action, c.Rows)
					}
				}
			}
		}
		metrics.RequestClosed(ns, after.Name)
		return
	}
	state := metrics.RequestInProgress
	switch {
	case apimeta.IsStatusConditionTrue(conds, privacyv1.ConditionStalled):
		state = metrics.RequestStalled
	case apimeta.IsStatusConditionTrue(conds, privacyv1.ConditionOnLegalHold):
		state = metrics.RequestOnLegalHold
	}
	metrics.RequestOpen(ns, after.Name, typ, state, exceeded)
}
