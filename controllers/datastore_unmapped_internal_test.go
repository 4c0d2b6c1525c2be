package controllers

import (
	"fmt"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

func recorded(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// The condition names 20 columns, its Event fits an Event's 1 KiB note, an
// unchanged list emits nothing, and the annotation's ignored and invalid
// patterns are said; a store that does not look has no condition.
func TestUnmappedConditionMessageAndEvents(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	r := &DataStoreReconciler{Recorder: rec}
	ds := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-unmapped", Name: "db", Generation: 3,
		Annotations: map[string]string{privacyv1.AnnotationIgnoreUnmapped: "ignored_*, [bad"}}}
	var cols []stores.UnmappedColumn
	for i := range 30 {
		cols = append(cols, stores.UnmappedColumn{Table: fmt.Sprintf("a_rather_long_table_name_%02d", i), Column: "contact_email_address", Category: "user.contact.email", Confidence: "high", TableMapped: true})
	}
	cols = append(cols, stores.UnmappedColumn{Table: "ignored_table", Column: "phone", Category: "user.contact.phone", TableMapped: true})
	report := &stores.UnmappedReport{Columns: cols}

	r.reportUnmapped(ds, report)
	c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionUnmappedPersonalData)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != privacyv1.ReasonPersonalDataUnmapped || c.ObservedGeneration != 3 {
		t.Fatalf("condition %+v", c)
	}
	if n := strings.Count(c.Message, "contact_email_address"); n != 20 || !strings.Contains(c.Message, " and 10 more;") ||
		!strings.HasPrefix(c.Message, "30 column(s)") || !strings.Contains(c.Message, "(1 ignored by") || !strings.Contains(c.Message, `["[bad"]`) {
		t.Errorf("message names %d columns: %s", n, c.Message)
	}
	evs := recorded(rec)
	if len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning PersonalDataUnmapped 30 column(s)") || len(evs[0]) > 1024 {
		t.Errorf("events %q (%d bytes)", evs, len(evs[0]))
	}

	r.reportUnmapped(ds, report)
	if evs := recorded(rec); len(evs) != 0 {
		t.Errorf("the same list again emitted %q", evs)
	}

	r.reportUnmapped(ds, &stores.UnmappedReport{Error: "reading the tables linked to the mapped ones: timeout"})
	if c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionUnmappedPersonalData); c.Status != metav1.ConditionUnknown || c.Reason != privacyv1.ReasonUnmappedCheckFailed {
		t.Errorf("a failed look: %+v", c)
	}

	r.reportUnmapped(ds, report)
	recorded(rec)
	r.reportUnmapped(ds, &stores.UnmappedReport{})
	if c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionUnmappedPersonalData); c.Status != metav1.ConditionFalse || c.Reason != privacyv1.ReasonNoUnmappedPersonalData {
		t.Errorf("none left: %+v", c)
	}
	if evs := recorded(rec); len(evs) != 1 || !strings.HasPrefix(evs[0], "Normal NoUnmappedPersonalData") {
		t.Errorf("events %q", evs)
	}

	r.reportUnmapped(ds, nil)
	if c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionUnmappedPersonalData); c != nil {
		t.Errorf("a store that does not look has %+v", c)
	}
}
