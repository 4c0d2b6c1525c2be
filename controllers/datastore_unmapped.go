package controllers

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/stores"
)

// The UnmappedPersonalData message names at most maxUnmappedListed columns
// in maxUnmappedListBytes; its Events (whose note is at most 1 KiB) fewer.
const (
	maxUnmappedListed         = 20
	maxUnmappedListBytes      = 4096
	maxUnmappedEventListBytes = 640
)

// reportUnmapped sets the UnmappedPersonalData condition and the
// lethe_datastore_unmapped_personal_columns gauge from a check's report, the
// columns the annotation ignores left out. It is a warning beside Ready,
// which it never changes. An Event says when the list changes (names and
// guessed categories only: no value is ever read for it). A store whose
// engine does not look (report nil) has neither condition nor series; a
// look that failed makes the condition Unknown and keeps the last count.
func (r *DataStoreReconciler) reportUnmapped(ds *privacyv1.DataStore, report *stores.UnmappedReport) {
	conds := &ds.Status.Conditions
	var before *metav1.Condition
	if c := apimeta.FindStatusCondition(*conds, privacyv1.ConditionUnmappedPersonalData); c != nil {
		before = c.DeepCopy()
	}
	switch {
	case report == nil:
		apimeta.RemoveStatusCondition(conds, privacyv1.ConditionUnmappedPersonalData)
		metrics.StoreUnmappedUnknown(ds.Namespace, ds.Name)
		return
	case report.Error != "":
		setCondition(conds, ds.Generation, privacyv1.ConditionUnmappedPersonalData, metav1.ConditionUnknown, privacyv1.ReasonUnmappedCheckFailed,
			"cannot look for personal data outside the data map: "+report.Error)
		return
	}
	ignore, invalid := stores.ParseUnmappedIgnore(ds.Annotations[privacyv1.AnnotationIgnoreUnmapped])
	cols := ignore.Filter(report.Columns)
	metrics.StoreUnmapped(ds.Namespace, ds.Name, len(cols))
	message := func(maxItems, maxBytes int) string {
		msg := "no column outside the data map looks personal (in the mapped tables and the tables a foreign key links to them)"
		if len(cols) > 0 {
			msg = fmt.Sprintf("%d column(s) outside the data map look personal: %s; map them, or list them in the %s annotation",
				len(cols), unmappedList(cols, maxItems, maxBytes), privacyv1.AnnotationIgnoreUnmapped)
		}
		if ignored := len(report.Columns) - len(cols); ignored > 0 {
			msg += fmt.Sprintf(" (%d ignored by the %s annotation)", ignored, privacyv1.AnnotationIgnoreUnmapped)
		}
		if len(invalid) > 0 {
			msg += fmt.Sprintf("; invalid pattern(s) in the %s annotation ignore nothing: %q", privacyv1.AnnotationIgnoreUnmapped, invalid)
		}
		return msg
	}
	status, reason := metav1.ConditionFalse, privacyv1.ReasonNoUnmappedPersonalData
	if len(cols) > 0 {
		status, reason = metav1.ConditionTrue, privacyv1.ReasonPersonalDataUnmapped
	}
	msg := message(maxUnmappedListed, maxUnmappedListBytes)
	setCondition(conds, ds.Generation, privacyv1.ConditionUnmappedPersonalData, status, reason, msg)
	if r.Recorder == nil {
		return
	}
	// An Event's note is at most 1 KiB: it names fewer columns than the condition.
	switch {
	case status == metav1.ConditionTrue && (before == nil || before.Status != status || before.Message != msg):
		r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, reason, privacyv1.ConditionUnmappedPersonalData, "%s", message(maxUnmappedListed, maxUnmappedEventListBytes))
	case status == metav1.ConditionFalse && before != nil && before.Status == metav1.ConditionTrue:
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, reason, privacyv1.ConditionUnmappedPersonalData, "%s", message(maxUnmappedListed, maxUnmappedEventListBytes))
	}
}

// unmappedList names the first columns, at most maxItems of them in at most
// maxBytes (one at least), then says how many more there are.
func unmappedList(cols []stores.UnmappedColumn, maxItems, maxBytes int) string {
	var b strings.Builder
	n := 0
	for _, c := range cols {
		item := c.String()
		if n == maxItems || (n > 0 && b.Len()+len(item)+2 > maxBytes) {
			break
		}
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString(item)
		n++
	}
	if more := len(cols) - n; more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}
