package controllers_test

import (
	"encoding/json"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testdb"
)

func waitUnmapped(t *testing.T, ds *privacyv1.DataStore, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionUnmappedPersonalData, status, reason)
	return apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionUnmappedPersonalData)
}

// patchStore changes a DataStore with a merge patch (the controller writes
// its status meanwhile).
func patchStore(t *testing.T, ds *privacyv1.DataStore, change func(*privacyv1.DataStore)) {
	t.Helper()
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(ds), ds); err != nil {
		t.Fatal(err)
	}
	before := ds.DeepCopy()
	change(ds)
	if err := k8s.Patch(t.Context(), ds, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

func expectStillReady(t *testing.T, ds *privacyv1.DataStore) {
	t.Helper()
	if c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v, want True: unmapped personal data is a warning", c)
	}
}

func expectUnmappedMetric(t *testing.T, ds *privacyv1.DataStore, want float64) {
	t.Helper()
	labels := map[string]string{"namespace": ds.Namespace, "store": ds.Name}
	if v := metricValue(t, "lethe_datastore_unmapped_personal_columns", labels); v != want {
		t.Errorf("lethe_datastore_unmapped_personal_columns = %v, want %v", v, want)
	}
}

// A migration that adds phone to a mapped table is noticed at the next
// check: UnmappedPersonalData turns True naming accounts.phone (names only),
// with an Event and the gauge, while Ready stays True; ignoring the column
// by annotation, or mapping it, turns the condition False.
func TestUnmappedPersonalDataIsAWarningCondition(t *testing.T) {
	ns := env.Namespace(t)
	dsn := testdb.NewPostgres(t)
	db := openDB(t, dsn)
	const value = "unmapped-subject@x.io"
	exec(t, db, `CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, status text, created_at timestamptz NOT NULL DEFAULT now())`)
	exec(t, db, `INSERT INTO accounts (id, email, status) VALUES (1, $1, 'active')`, value)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn}))
	ds := &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-db"},
		Spec: privacyv1.DataStoreSpec{
			Engine:     privacyv1.EnginePostgres,
			Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "app-db", Key: "dsn"}},
			Collections: []privacyv1.Collection{{
				Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email"},
				Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
			}},
		},
	}
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	waitUnmapped(t, ds, metav1.ConditionFalse, privacyv1.ReasonNoUnmappedPersonalData)
	expectUnmappedMetric(t, ds, 0)

	exec(t, db, `ALTER TABLE accounts ADD COLUMN phone text`)
	// A change of the annotation asks for a check now (the interval is 30s at least).
	patchStore(t, ds, func(ds *privacyv1.DataStore) {
		ds.Annotations = map[string]string{privacyv1.AnnotationIgnoreUnmapped: "audit.*"}
	})
	c := waitUnmapped(t, ds, metav1.ConditionTrue, privacyv1.ReasonPersonalDataUnmapped)
	if !strings.Contains(c.Message, "accounts.phone (user.contact.phone)") || strings.Contains(c.Message, "status") || strings.Contains(c.Message, "created_at") {
		t.Errorf("message %q, want accounts.phone named and nothing else", c.Message)
	}
	expectStillReady(t, ds)
	expectUnmappedMetric(t, ds, 1)
	eventNote(t, ds, privacyv1.ReasonPersonalDataUnmapped, "accounts.phone")
	status, _ := json.Marshal(ds.Status)
	if strings.Contains(string(status), value) {
		t.Error("a value of the store is in the DataStore's status")
	}

	// Declared as deliberately unmapped: not reported.
	patchStore(t, ds, func(ds *privacyv1.DataStore) {
		ds.Annotations[privacyv1.AnnotationIgnoreUnmapped] = "audit.*, accounts.phone"
	})
	c = waitUnmapped(t, ds, metav1.ConditionFalse, privacyv1.ReasonNoUnmappedPersonalData)
	if !strings.Contains(c.Message, "1 ignored") {
		t.Errorf("message %q, want the ignored column counted", c.Message)
	}
	expectStillReady(t, ds)
	expectUnmappedMetric(t, ds, 0)

	patchStore(t, ds, func(ds *privacyv1.DataStore) {
		ds.Annotations[privacyv1.AnnotationIgnoreUnmapped] = "audit.*"
	})
	waitUnmapped(t, ds, metav1.ConditionTrue, privacyv1.ReasonPersonalDataUnmapped)
	expectUnmappedMetric(t, ds, 1)

	// Mapped: the condition turns False at the check the spec change starts.
	patchStore(t, ds, func(ds *privacyv1.DataStore) {
		ds.Spec.Collections[0].Fields = append(ds.Spec.Collections[0].Fields, privacyv1.Field{Name: "phone", Category: "user.contact.phone"})
	})
	c = waitUnmapped(t, ds, metav1.ConditionFalse, privacyv1.ReasonNoUnmappedPersonalData)
	if c.ObservedGeneration != ds.Generation {
		t.Errorf("observedGeneration %d, want %d", c.ObservedGeneration, ds.Generation)
	}
	expectStillReady(t, ds)
	expectUnmappedMetric(t, ds, 0)
	eventNote(t, ds, privacyv1.ReasonNoUnmappedPersonalData, "no column")
}
