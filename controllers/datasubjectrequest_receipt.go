package controllers

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

func completionMessage(dsr *privacyv1.DataSubjectRequest) string {
	var rows int64
	for _, o := range dsr.Status.Stores {
		for _, c := range o.Collections {
			if c.Action != string(stores.ActionRetain) && c.Rows > 0 {
				rows += c.Rows
			}
		}
	}
	verb := verbOf(dsr.Spec.Type)
	if dsr.Spec.DryRun {
		return fmt.Sprintf("dry run: %d row(s) would be %s in %d store(s); nothing was changed", rows, verb, len(dsr.Status.Stores))
	}
	return fmt.Sprintf("%d row(s) %s in %d store(s)", rows, verb, len(dsr.Status.Stores))
}

func verbOf(t privacyv1.RequestType) string {
	return map[privacyv1.RequestType]string{
		privacyv1.RequestAccess: "exported", privacyv1.RequestErasure: "erased", privacyv1.RequestRectification: "rectified",
	}[t]
}

// subjectFound is true when some store held data of the subject: rows acted
// on, retained or held, or a processor that acted.
func subjectFound(dsr *privacyv1.DataSubjectRequest) bool {
	for _, o := range dsr.Status.Stores {
		for _, c := range o.Collections {
			if c.Rows != 0 {
				return true
			}
		}
	}
	return false
}

func collectionOutcomes(results []stores.CollectionResult) []privacyv1.CollectionOutcome {
	out := make([]privacyv1.CollectionOutcome, 0, len(results))
	for _, c := range results {
		o := privacyv1.CollectionOutcome{Collection: c.Collection, Action: string(c.Action), Rows: c.Rows, Reason: c.Reason,
			RetainedUntil: metaTime(c.RetainedUntil), RetainedUntilEarliest: metaTime(c.RetainedFrom)}
		out = append(out, o)
	}
	return out
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	m := metav1.NewTime(*t)
	return &m
}

// earlierChanges are the rows a store's earlier passes changed, as the
// receipt recorded them (for stores.AddUp; what they retained is the past).
func earlierChanges(outcomes []privacyv1.CollectionOutcome) []stores.CollectionResult {
	var out []stores.CollectionResult
	for _, o := range outcomes {
		if a := stores.Action(o.Action); a.ChangesRows() {
			out = append(out, stores.CollectionResult{Collection: o.Collection, Action: a, Rows: o.Rows, Reason: o.Reason})
		}
	}
	return out
}
