package gitops_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testdb"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// The demo (hack/demo) run by the real controllers in liveNS: the states they
// produce are checked with kstatus and the Argo CD health checks, and the
// metrics they record are checked for values and for the absence of any
// identity. The demo's YAML and SQL are the ones `make demo` uses, so this also
// proves the demo's data map matches its schema.

// Identities and names that must never appear in a metric label.
var neverInMetrics = []string{"jane", "doe", "7d4e2f0a", "0b6f3c2e", "example.com", "ali.martin", "demo-erasure", "demo-access", "ali-erasure", "overdue-erasure"}

func demoFile(name string) string { return testenv.RepoPath("hack", "demo", name) }

// demoObjects reads demo manifests into liveNS.
func demoObjects(t *testing.T, files ...string) []*unstructured.Unstructured {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, demoFile(f))
	}
	objs := readManifests(t, paths...)
	for _, o := range objs {
		o.SetNamespace(liveNS)
	}
	return objs
}

func createAll(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func demoDatabase(t *testing.T) string {
	t.Helper()
	dsn := testdb.NewPostgres(t)
	schema, err := os.ReadFile(demoFile("schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, string(schema)); err != nil {
		t.Fatalf("loading hack/demo/schema.sql: %v", err)
	}
	return dsn
}

func storeIn(name string) *privacyv1.DataStore {
	return &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: name}}
}

func requestIn(name string) *privacyv1.DataSubjectRequest {
	return &privacyv1.DataSubjectRequest{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: name}}
}

func waitStoreCond(t *testing.T, ds *privacyv1.DataStore, typ string, st metav1.ConditionStatus, reason string) {
	t.Helper()
	waitCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, typ, st, reason)
}

func waitRequestCond(t *testing.T, dsr *privacyv1.DataSubjectRequest, typ string, st metav1.ConditionStatus, reason string) {
	t.Helper()
	waitCondition(t, dsr, func() []metav1.Condition { return dsr.Status.Conditions }, typ, st, reason)
}

// expectHealth checks kstatus and the Argo CD health check on obj as it is now.
func expectHealth(t *testing.T, obj client.Object, kind string, want status.Status, argo, argoMessage string) {
	t.Helper()
	u := live(t, obj)
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != want {
		t.Errorf("%s %s: kstatus %s (%s), want %s", kind, obj.GetName(), res.Status, res.Message, want)
	}
	got, msg := argoHealth(t, kind, u)
	if got != argo || !strings.Contains(msg, argoMessage) {
		t.Errorf("%s %s: Argo CD health %s %q, want %s with %q", kind, obj.GetName(), got, msg, argo, argoMessage)
	}
}

// wakeRequests makes the controller reconcile the unfinished requests of
// liveNS now: it ignores updates of a request that do not change its spec, but
// wakes a namespace's requests whenever one of its DataStores changes.
func wakeRequests(t *testing.T) {
	t.Helper()
	touch(t, storeIn("platform-db"))
}

// touch changes an annotation of obj.
func touch(t *testing.T, obj client.Object) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{"test.lethe.dev/touched":%q}}}`, time.Now().Format(time.RFC3339Nano)))
	if err := k8s.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
}

// ---- metrics ----------------------------------------------------------------

func gather(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// metricValue is the value of the series of name with exactly these label
// values among its labels (counter, gauge, or a histogram's sample count);
// 0 when there is no such series.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	for _, mf := range gather(t) {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

type metricQuery struct {
	name   string
	labels map[string]string
}

func q(name string, kv ...string) metricQuery {
	labels := map[string]string{"namespace": liveNS}
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	return metricQuery{name, labels}
}

// snapshotMetrics reads the queries' values, so a test can assert deltas.
func snapshotMetrics(t *testing.T, qs ...metricQuery) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mq := range qs {
		out[fmt.Sprint(mq)] = metricValue(t, mq.name, mq.labels)
	}
	return out
}

func expectDelta(t *testing.T, before map[string]float64, mq metricQuery, want float64) {
	t.Helper()
	if got := metricValue(t, mq.name, mq.labels) - before[fmt.Sprint(mq)]; got != want {
		t.Errorf("%s%v changed by %v, want %v", mq.name, mq.labels, got, want)
	}
}

func expectValue(t *testing.T, mq metricQuery, want float64) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if got := metricValue(t, mq.name, mq.labels); got != want {
			return fmt.Errorf("%s%v = %v, want %v", mq.name, mq.labels, got, want)
		}
		return nil
	})
}

// expectNoIdentities fails when any label of any lethe_ metric names a subject or a request.
func expectNoIdentities(t *testing.T) {
	t.Helper()
	families := 0
	for _, mf := range gather(t) {
		if !strings.HasPrefix(mf.GetName(), "lethe_") {
			continue
		}
		families++
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				v := strings.ToLower(lp.GetValue())
				for _, bad := range neverInMetrics {
					if strings.Contains(v, bad) {
						t.Errorf("metric %s has label %s=%q, which names a subject or a request", mf.GetName(), lp.GetName(), lp.GetValue())
					}
				}
			}
		}
	}
	if families < 4 {
		t.Errorf("only %d lethe_ metric families have series, want at least 4", families)
	}
}

// ---- the test -------------------------------------------------------------------

func TestLiveStatesHealthAndMetrics(t *testing.T) {
	ctx := context.Background()
	dsn := demoDatabase(t)
	dbSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "demo-db"}, StringData: map[string]string{"dsn": dsn}}
	if err := k8s.Create(ctx, dbSecret); err != nil {
		t.Fatal(err)
	}
	createAll(t, demoObjects(t, "datastore.yaml", "retentionpolicy.yaml", "subject.yaml"))

	platform := storeIn("platform-db")
	waitStoreCond(t, platform, privacyv1.ConditionReady, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	expectHealth(t, platform, "DataStore", status.CurrentStatus, "Healthy", "the live schema matches")
	expectValue(t, q("lethe_datastore_ready", "store", "platform-db"), 1)

	requestMetrics := []metricQuery{
		q("lethe_datasubjectrequests_completed_total", "type", "Access", "outcome", "completed"),
		q("lethe_datasubjectrequests_completed_total", "type", "Erasure", "outcome", "completed"),
		q("lethe_datasubjectrequests_completed_total", "type", "Erasure", "outcome", "dry_run"),
		q("lethe_datasubjectrequest_duration_seconds", "type", "Erasure"),
		q("lethe_datasubjectrequest_duration_seconds", "type", "Access"),
		q("lethe_datasubjectrequest_rows_total", "store", "platform-db", "collection", "accounts", "action", "anonymize"),
		q("lethe_datasubjectrequest_rows_total", "store", "platform-db", "collection", "accounts", "action", "export"),
		q("lethe_datasubjectrequest_rows_total", "store", "platform-db", "collection", "invoices", "action", "delete"),
		q("lethe_datasubjectrequest_rows_total", "store", "platform-db", "collection", "invoices", "action", "retain"),
		q("lethe_datasubjectrequest_rows_total", "store", "platform-db", "collection", "access_logs", "action", "retain"),
		q("lethe_datasubjectrequest_rows_total", "store", "platform-db", "collection", "applications", "action", "delete"),
	}

	t.Run("the demo's requests complete: Current and Healthy, counted once", func(t *testing.T) {
		before := snapshotMetrics(t, requestMetrics...)
		createAll(t, demoObjects(t, "requests.yaml"))
		for _, name := range []string{"demo-access", "demo-erasure-dryrun"} {
			waitRequestCond(t, requestIn(name), privacyv1.ConditionReady, metav1.ConditionTrue, "")
		}
		createAll(t, demoObjects(t, "erasure.yaml"))
		erasure := requestIn("demo-erasure")
		waitRequestCond(t, erasure, privacyv1.ConditionReady, metav1.ConditionTrue, privacyv1.ReasonCompleted)
		expectHealth(t, erasure, "DataSubjectRequest", status.CurrentStatus, "Healthy", "erased in 1 store(s)")
		expectHealth(t, requestIn("demo-access"), "DataSubjectRequest", status.CurrentStatus, "Healthy", "exported")
		expectHealth(t, requestIn("demo-erasure-dryrun"), "DataSubjectRequest", status.CurrentStatus, "Healthy", "nothing was changed")

		expectDelta(t, before, requestMetrics[0], 1)
		expectDelta(t, before, requestMetrics[1], 1)
		expectDelta(t, before, requestMetrics[2], 1)
		expectDelta(t, before, requestMetrics[3], 1) // the dry run is not timed
		expectDelta(t, before, requestMetrics[4], 1)
		expectDelta(t, before, requestMetrics[5], 1) // the dry run's plan is not counted as rows
		expectDelta(t, before, requestMetrics[6], 1)
		expectDelta(t, before, requestMetrics[7], 1) // the invoice past its 10 years
		expectDelta(t, before, requestMetrics[8], 2) // the two kept for accounting
		expectDelta(t, before, requestMetrics[9], 4)
		expectDelta(t, before, requestMetrics[10], 0) // customer.content is never touched

		// Reconciling a completed request again changes nothing.
		wakeRequests(t)
		time.Sleep(time.Second)
		expectDelta(t, before, requestMetrics[1], 1)
		expectNoIdentities(t)
	})

	t.Run("a request waiting for a legal hold: InProgress, Suspended in Argo CD", func(t *testing.T) {
		hold := &privacyv1.LegalHold{
			ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "payment-dispute"},
			Spec: privacyv1.LegalHoldSpec{
				Reason:      "Payment dispute, case 2026-117",
				Collections: []privacyv1.HeldCollection{{Store: "platform-db", Collection: "payment_methods"}},
			},
		}
		if err := k8s.Create(ctx, hold); err != nil {
			t.Fatal(err)
		}
		onHold := q("lethe_datasubjectrequests_open", "type", "Erasure", "state", "on_legal_hold")
		baseline := metricValue(t, onHold.name, onHold.labels)
		// The account id too: anonymization rewrites the e-mail, and a
		// request finds its subject again when the hold ends. (In a Secret:
		// the installation refuses inline identities for erasure.)
		if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "ali-subject"}, StringData: map[string]string{
			"email": "ali.martin@example.com", "userId": "0b6f3c2e-9d41-4e7a-8c25-6a1f2e3d4c5b",
		}}); err != nil {
			t.Fatal(err)
		}
		dsr := &privacyv1.DataSubjectRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "ali-erasure"},
			Spec: privacyv1.DataSubjectRequestSpec{
				Type:    privacyv1.RequestErasure,
				Subject: privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: "ali-subject"}}},
			},
		}
		if err := k8s.Create(ctx, dsr); err != nil {
			t.Fatal(err)
		}
		waitRequestCond(t, dsr, privacyv1.ConditionOnLegalHold, metav1.ConditionTrue, privacyv1.ReasonOnLegalHold)
		expectHealth(t, dsr, "DataSubjectRequest", status.InProgressStatus, "Suspended", "on legal hold")
		expectValue(t, onHold, baseline+1)

		if err := k8s.Delete(ctx, hold); err != nil {
			t.Fatal(err)
		}
		// The request rechecks holds every 30s; do not wait for it. (Touch until
		// the controller's cache has seen the hold go.)
		wakeUntil(t, dsr, func() bool { return apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionReady) })
		expectHealth(t, dsr, "DataSubjectRequest", status.CurrentStatus, "Healthy", "erased")
		expectValue(t, onHold, baseline)
	})

	t.Run("a request no store can serve: Failed, Degraded", func(t *testing.T) {
		stalledOpen := q("lethe_datasubjectrequests_open", "type", "Erasure", "state", "stalled")
		baseline := metricValue(t, stalledOpen.name, stalledOpen.labels)
		if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "nobody-subject"},
			StringData: map[string]string{"email": "nobody@example.net"}}); err != nil {
			t.Fatal(err)
		}
		dsr := &privacyv1.DataSubjectRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "nowhere-erasure"},
			Spec: privacyv1.DataSubjectRequestSpec{
				Type:    privacyv1.RequestErasure,
				Subject: privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: "nobody-subject"}}},
				Scope: privacyv1.RequestScope{StoreSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{"privacy.lethe.dev/system": "none"},
				}},
			},
		}
		if err := k8s.Create(ctx, dsr); err != nil {
			t.Fatal(err)
		}
		waitRequestCond(t, dsr, privacyv1.ConditionStalled, metav1.ConditionTrue, privacyv1.ReasonNoStoresInScope)
		expectHealth(t, dsr, "DataSubjectRequest", status.FailedStatus, "Degraded", "NoStoresInScope")
		expectValue(t, stalledOpen, baseline+1)
		// A deleted request is no longer open.
		if err := k8s.Delete(ctx, dsr); err != nil {
			t.Fatal(err)
		}
		expectValue(t, stalledOpen, baseline)
	})

	t.Run("broken stores: unreachable is InProgress, drift is Failed; both not ready", func(t *testing.T) {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "closed-port"},
			StringData: map[string]string{"dsn": "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}}
		if err := k8s.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		var demo privacyv1.DataStore
		u := demoObjects(t, "datastore.yaml")[0]
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &demo); err != nil {
			t.Fatal(err)
		}
		unreachable := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "unreachable"}, Spec: *demo.Spec.DeepCopy()}
		unreachable.Spec.Connection.SecretRef.Name = "closed-port"
		drifted := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "drifted"}, Spec: *demo.Spec.DeepCopy()}
		drifted.Spec.Collections[0].Fields = append(drifted.Spec.Collections[0].Fields,
			privacyv1.Field{Name: "nickname", Category: "user.contact.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}})
		for _, ds := range []*privacyv1.DataStore{unreachable, drifted} {
			if err := k8s.Create(ctx, ds); err != nil {
				t.Fatal(err)
			}
		}
		waitStoreCond(t, unreachable, privacyv1.ConditionReconciling, metav1.ConditionTrue, privacyv1.ReasonStoreUnavailable)
		expectHealth(t, unreachable, "DataStore", status.InProgressStatus, "Progressing", "StoreUnavailable")
		waitStoreCond(t, drifted, privacyv1.ConditionStalled, metav1.ConditionTrue, privacyv1.ReasonSchemaDrift)
		expectHealth(t, drifted, "DataStore", status.FailedStatus, "Degraded", "nickname")
		expectValue(t, q("lethe_datastore_ready", "store", "unreachable"), 0)
		expectValue(t, q("lethe_datastore_ready", "store", "drifted"), 0)
		if metricValue(t, "lethe_datastore_ready", map[string]string{"namespace": liveNS, "store": "drifted"}) != 0 ||
			!hasSeries(t, "lethe_datastore_ready", map[string]string{"namespace": liveNS, "store": "drifted"}) {
			t.Error("lethe_datastore_ready of the drifted store is not 0")
		}
		// Deleting a store removes its series.
		if err := k8s.Delete(ctx, drifted); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() error {
			if hasSeries(t, "lethe_datastore_ready", map[string]string{"namespace": liveNS, "store": "drifted"}) {
				return fmt.Errorf("the deleted store still has a readiness series")
			}
			return nil
		})
	})

	t.Run("an overdue request: InProgress and Progressing; the breach counted once", func(t *testing.T) {
		t.Cleanup(func() { clock.Advance(-clock.offsetNow()) })
		breaches := q("lethe_datasubjectrequest_deadline_breaches_total", "type", "Erasure")
		overdue := q("lethe_datasubjectrequests_overdue", "type", "Erasure")
		late := q("lethe_datasubjectrequests_completed_total", "type", "Erasure", "outcome", "completed_late")
		before := snapshotMetrics(t, breaches, overdue, late)

		dsr := &privacyv1.DataSubjectRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "overdue-erasure"},
			Spec: privacyv1.DataSubjectRequestSpec{
				Type:    privacyv1.RequestErasure,
				Subject: privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: "jane-doe-subject"}}},
				Scope:   privacyv1.RequestScope{Stores: []privacyv1.StoreName{"late-store"}},
			},
		}
		if err := k8s.Create(ctx, dsr); err != nil {
			t.Fatal(err)
		}
		waitRequestCond(t, dsr, privacyv1.ConditionReady, metav1.ConditionFalse, privacyv1.ReasonStoreNotFound)
		clock.Advance(25 * time.Hour)
		wakeRequests(t)
		waitRequestCond(t, dsr, privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonDeadlineExceeded)
		expectHealth(t, dsr, "DataSubjectRequest", status.InProgressStatus, "Progressing", "DeadlineExceeded")
		expectDelta(t, before, breaches, 1)
		expectDelta(t, before, overdue, 1)
		wakeRequests(t) // still overdue: not a new breach
		time.Sleep(time.Second)
		expectDelta(t, before, breaches, 1)

		// The store appears; the request completes, late.
		var demo privacyv1.DataStore
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(demoObjects(t, "datastore.yaml")[0].Object, &demo); err != nil {
			t.Fatal(err)
		}
		lateStore := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: liveNS, Name: "late-store"}, Spec: demo.Spec}
		if err := k8s.Create(ctx, lateStore); err != nil {
			t.Fatal(err)
		}
		waitRequestCond(t, dsr, privacyv1.ConditionReady, metav1.ConditionTrue, privacyv1.ReasonCompleted)
		expectHealth(t, dsr, "DataSubjectRequest", status.CurrentStatus, "Healthy", "after the deadline")
		expectDelta(t, before, breaches, 1)
		expectDelta(t, before, overdue, 0)
		expectDelta(t, before, late, 1)
		expectNoIdentities(t)
	})
}

// wakeUntil wakes the requests every second until done (obj is re-read into itself first).
func wakeUntil(t *testing.T, obj client.Object, done func() bool) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		if done() {
			return nil
		}
		wakeRequests(t)
		time.Sleep(time.Second)
		return fmt.Errorf("not yet")
	})
}

func hasSeries(t *testing.T, name string, labels map[string]string) bool {
	t.Helper()
	for _, mf := range gather(t) {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			return true
		}
	}
	return false
}
