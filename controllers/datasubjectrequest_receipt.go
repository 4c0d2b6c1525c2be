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
	verb := map[privacyv1.RequestType]string{
		privacyv1.RequestAccess: "exported", privacyv1.RequestErasure: "erased", privacyv1.RequestRectification: "rectified",
	}[dsr.Spec.Type]
	if dsr.Spec.DryRun {
		return fmt.Sprintf("dry run: %d row(s) would be %s in %d store(s); nothing was changed", rows, verb, len(dsr.Status.Stores))
	}
	return fmt.Sprintf("%d row(s) %s in %d store(s)", rows, verb, len(dsr.Status.Stores))
}

// receipt is what the receipt digest covers.
type receipt struct {
	Request        string                   `json:"request"`
	UID            string                   `json:"uid"`
	Type           string                   `json:"type"`
	DryRun         bool                     `json:"dryRun"`
	SubjectDigest  string                   `json:"subjectDigest"`
	StartTime      string                   `json:"startTime"`
	CompletionTime string                   `json:"completionTime"`
	Stores         []privacyv1.StoreOutcome `json:"stores"`
}

func receiptOf(dsr *privacyv1.DataSubjectRequest) receipt {
	return receipt{
		Request: dsr.Namespace + "/" + dsr.Name, UID: string(dsr.UID), Type: string(dsr.Spec.Type), DryRun: dsr.Spec.DryRun,
		SubjectDigest: dsr.Status.SubjectDigest,
		StartTime:     dsr.Status.StartTime.UTC().Format(time.RFC3339), CompletionTime: dsr.Status.CompletionTime.UTC().Format(time.RFC3339),
		Stores: dsr.Status.Stores,
	}
}

func collectionOutcomes(res stores.Result) []privacyv1.CollectionOutcome {
	out := make([]privacyv1.CollectionOutcome, 0, len(res.Collections))
	for _, c := range res.Collections {
		o := privacyv1.CollectionOutcome{Collection: c.Collection, Action: string(c.Action), Rows: c.Rows, Reason: c.Reason}
		if c.RetainedUntil != nil {
			t := metav1.NewTime(*c.RetainedUntil)
			o.RetainedUntil = &t
		}
		out = append(out, o)
	}
	return out
}
