package controllers_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// reconciles is controller-runtime's count of reconciles of one controller
// (every result), read from the manager's own metrics registry.
func reconciles(t *testing.T, controller string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// A DataStore's periodic status patches (its check's lastCheckTime) must not
// wake every request of its namespace; only a change the requests act on
// (a store appearing, its readiness changing) wakes the requests that use it.
func TestStoreStatusPatchesDoNotReconcileTheNamespacesRequests(t *testing.T) {
	ns := env.Namespace(t)
	const waiting = 20
	// A store whose Secret is missing: it exists, but no request names it.
	busy := fixtureStore(ns, "busy", "no-such-secret")
	create(t, busy)
	waitStore(t, busy, metav1.ConditionFalse, privacyv1.ReasonSecretNotFound)

	var requests []*privacyv1.DataSubjectRequest
	for i := range waiting {
		dsr := request(ns, fmt.Sprintf("erase-%d", i), privacyv1.RequestErasure, "")
		dsr.Spec.Subject = privacyv1.Subject{Identities: privacyv1.Identities{"email": privacyv1.IdentityValue(fmt.Sprintf("s%d@x.io", i))}}
		dsr.Spec.Scope.Stores = []privacyv1.StoreName{"later"}
		create(t, dsr)
		requests = append(requests, dsr)
	}
	for _, dsr := range requests {
		waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonStoreNotFound)
	}

	before := reconciles(t, "datasubjectrequest")
	for i := range 5 {
		patch := client.MergeFrom(busy.DeepCopy())
		busy.Status.LastCheckTime = &metav1.Time{Time: time.Now().Add(time.Duration(i) * time.Second)}
		if err := k8s.Status().Patch(t.Context(), busy, patch); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // let the informer deliver the five updates
	// Other tests' leftovers may reconcile meanwhile; the old behaviour woke
	// all twenty requests per patch (100 reconciles).
	if d := reconciles(t, "datasubjectrequest") - before; d >= waiting {
		t.Errorf("five status patches of an unrelated store caused %v request reconciles, want fewer than %d", d, waiting)
	}

	// The store the requests wait for appears: each of them is woken.
	before = reconciles(t, "datasubjectrequest")
	create(t, fixtureStore(ns, "later", "no-such-secret"))
	eventually(t, 30*time.Second, func() error {
		if d := reconciles(t, "datasubjectrequest") - before; d < waiting {
			return fmt.Errorf("%v request reconciles after their store appeared, want at least %d", d, waiting)
		}
		return nil
	})
}
