package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// What "weaker" means is decided once, by the admission policies of
// config/admission (lethe-datastore-protection, lethe-retentionpolicy-
// protection): they refuse an update that decreases protection unless it
// carries a new spec.weakeningJustification. The controllers do not decide it
// again; they record each justification admission let through, for DataStores
// and RetentionPolicies alike.

// maxAcceptedWeakenings bounds status.acceptedWeakenings.
const maxAcceptedWeakenings = 20

// recordWeakening adds to list a justification the controller has not
// recorded yet: the admission policy refuses a weakening without a new one,
// so each new justification is an update accepted because of it (one given
// at creation weakens nothing, and is not recorded). It returns the record to
// report as an Event, nil when there is none.
func recordWeakening(obj metav1.Object, list *[]privacyv1.AcceptedWeakening, justification string, now time.Time) *privacyv1.AcceptedWeakening {
	l := *list
	if justification == "" || obj.GetGeneration() < 2 || len(l) > 0 && l[len(l)-1].Justification == justification {
		return nil
	}
	w := privacyv1.AcceptedWeakening{Generation: obj.GetGeneration(), Justification: justification, ObservedTime: metav1.NewTime(now)}
	l = append(l, w)
	if len(l) > maxAcceptedWeakenings {
		l = l[len(l)-maxAcceptedWeakenings:]
	}
	*list = l
	return &w
}

// reportWeakening records an accepted weakening as a Warning Event, once its
// status is saved (so a failed write does not repeat it).
func reportWeakening(rec events.EventRecorder, obj runtime.Object, w *privacyv1.AcceptedWeakening) {
	if w == nil || rec == nil {
		return
	}
	rec.Eventf(obj, nil, corev1.EventTypeWarning, privacyv1.ReasonProtectionWeakened, "Update",
		"generation %d accepted with a justification (an update that decreases protection needs one): %s", w.Generation, truncate(w.Justification, 900))
}
