package controllers_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Helpers of the RetentionPolicy and LegalHold tests. Policies run on
// "@hourly": nothing happens until the test moves the clock past the next
// hour and pokes the policy (the controller sleeps on a real-time timer).

func policy(ns, name string, rules ...privacyv1.RetentionRule) *privacyv1.RetentionPolicy {
	return &privacyv1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       privacyv1.RetentionPolicySpec{StoreRef: "app-db", Schedule: "@hourly", Rules: rules},
	}
}

func rule(name, collection, field string, period privacyv1.Period, action privacyv1.RetentionAction) privacyv1.RetentionRule {
	return privacyv1.RetentionRule{
		Name: name, Collection: privacyv1.Identifier(collection), Action: action,
		After: privacyv1.RetentionAfter{Field: privacyv1.Identifier(field), Period: period},
	}
}

func int32p(v int32) *int32 { return &v }

// createCleaned creates obj and deletes it when the test ends, so the manager
// stops acting on it before the test's database is dropped.
func createCleaned(t *testing.T, obj client.Object) {
	t.Helper()
	create(t, obj)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

var pokes atomic.Int64

// poke changes an annotation, which makes the controllers look at obj now.
func poke(t *testing.T, obj client.Object) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"test.lethe.dev/poke":"%d"}}}`, pokes.Add(1))
	if err := k8s.Patch(t.Context(), obj, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatalf("poke %s: %v", obj.GetName(), err)
	}
}

// advance moves the suite's clock forward for the rest of the test.
func advance(t *testing.T, d time.Duration) {
	clock.Advance(d)
	t.Cleanup(func() { clock.Advance(-d) })
}

func waitPolicy(t *testing.T, p *privacyv1.RetentionPolicy, status metav1.ConditionStatus, reason string) {
	t.Helper()
	waitForCondition(t, p, func() []metav1.Condition { return p.Status.Conditions }, privacyv1.ConditionReady, status, reason)
}

// runSweep moves the clock past the policy's next hourly run, pokes it, and
// waits until a run that started after the move finished every rule.
func runSweep(t *testing.T, p *privacyv1.RetentionPolicy) {
	t.Helper()
	advance(t, time.Hour+time.Minute)
	after := clock.Now().Add(-time.Minute)
	poke(t, p)
	eventually(t, 90*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if s := p.Status.LastSuccessfulRunTime; s == nil || s.Time.Before(after) {
			c := apimeta.FindStatusCondition(p.Status.Conditions, privacyv1.ConditionReady)
			return fmt.Errorf("no finished run yet (sweep %+v, Ready %+v)", p.Status.Sweep, c)
		}
		return nil
	})
}

func ruleStatus(p *privacyv1.RetentionPolicy, name string) privacyv1.RuleStatus {
	for _, r := range p.Status.Rules {
		if r.Name == name {
			return r
		}
	}
	return privacyv1.RuleStatus{Name: "absent"}
}

// eventNote waits for an Event of obj with reason and returns its note.
func eventNote(t *testing.T, obj client.Object, reason, contains string) string {
	t.Helper()
	var note string
	eventually(t, 20*time.Second, func() error {
		evs := &eventsv1.EventList{}
		if err := k8s.List(t.Context(), evs, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == obj.GetName() && e.Reason == reason && strings.Contains(e.Note, contains) {
				note = e.Note
				return nil
			}
		}
		return fmt.Errorf("no %s event of %s mentioning %q", reason, obj.GetName(), contains)
	})
	return note
}

// metricValue sums the samples of a metric of the manager's registry whose
// labels include want.
func metricValue(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelsInclude(m, want) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func labelsInclude(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// oldAccessLogs inserts n access logs of an account with ids from firstID,
// the first daysOld days old and each next one a day older.
func oldAccessLogs(t *testing.T, db *sql.DB, account, firstID, n, daysOld int) {
	t.Helper()
	exec(t, db, `INSERT INTO access_logs SELECT g, $1::bigint, '192.0.2.' || $1::bigint, 'curl', now() - ($4::int + g - $2::int) * INTERVAL '1 day'
		FROM generate_series($2::int, $2::int + $3::int - 1) g`, account, firstID, n, daysOld)
}

func holdOn(ns, name, subjectSecret string, collections ...privacyv1.HeldCollection) *privacyv1.LegalHold {
	h := &privacyv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       privacyv1.LegalHoldSpec{Reason: "Tribunal judiciaire de Strasbourg, RG 26/01234", Collections: collections},
	}
	if subjectSecret != "" {
		h.Spec.Subject = &privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: subjectSecret}}}
	}
	return h
}

func waitHold(t *testing.T, h *privacyv1.LegalHold, status metav1.ConditionStatus, reason string) {
	t.Helper()
	waitForCondition(t, h, func() []metav1.Condition { return h.Status.Conditions }, privacyv1.ConditionReady, status, reason)
}

// waitRunFinished waits until p's run in progress has finished every rule.
func waitRunFinished(t *testing.T, p *privacyv1.RetentionPolicy) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if p.Status.Sweep != nil || p.Status.LastSuccessfulRunTime == nil {
			return fmt.Errorf("not finished: %+v", p.Status.Sweep)
		}
		return nil
	})
}
