package cli_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

func TestSweepRunSetsANewRunNowValueEachTime(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	pol := &privacyv1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-retention"},
		Spec: privacyv1.RetentionPolicySpec{
			StoreRef: "app-db", Schedule: "0 3 1 1 *",
			Rules: []privacyv1.RetentionRule{{
				Name: "old-orders", Collection: "orders", Action: privacyv1.RetentionDelete,
				After: privacyv1.RetentionAfter{Field: "created_at", Period: "30d"},
			}},
		},
	}
	create(t, pol)

	run := func() string {
		t.Helper()
		before := time.Now().UTC()
		r := lethe(t, "", "sweep", "run", "orders-retention", "-n", ns)
		if r.code != 0 {
			t.Fatalf("sweep run:\n%s", r)
		}
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(pol), pol); err != nil {
			t.Fatal(err)
		}
		v := pol.Annotations[privacyv1.AnnotationRunNow]
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("run-now value %q is not the time of the run (%v)", v, err)
		}
		want := fmt.Sprintf("retentionpolicy.privacy.lethe.dev/orders-retention: run requested (%s=%s)\n", privacyv1.AnnotationRunNow, v)
		if r.stdout != want {
			t.Errorf("sweep run printed %q, want %q", r.stdout, want)
		}
		// The controller starts a run for that value: the annotation's semantics.
		testenv.Eventually(t, 60*time.Second, func() error {
			if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(pol), pol); err != nil {
				return err
			}
			if pol.Status.LastRunNowValue != v {
				return fmt.Errorf("status.lastRunNowValue = %q, want %q", pol.Status.LastRunNowValue, v)
			}
			return nil
		})
		return v
	}
	first := run()
	second := run()
	if first == second {
		t.Errorf("two runs set the same value %q", first)
	}

	r := lethe(t, "", "sweep", "run", "no-such-policy", "-n", ns)
	if r.code != 1 || !strings.Contains(r.stderr, "error: reading RetentionPolicy no-such-policy") || !strings.Contains(r.stderr, "not found") {
		t.Errorf("sweep run of a missing policy:\n%s", r)
	}
}
