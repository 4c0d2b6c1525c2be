package audit

import (
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Receipt is what a DataSubjectRequest's receipt digest covers: the request,
// the subject's digest, the times and every store's outcome. The controller
// writes ReceiptDigest(ReceiptOf(dsr)) to status.receiptDigest when the
// request completes; `kubectl lethe receipt --verify` recomputes it the same
// way. Its JSON encoding is the digest's input: renaming or reordering a
// field changes every digest.
type Receipt struct {
	Request        string                   `json:"request"`
	UID            string                   `json:"uid"`
	Type           string                   `json:"type"`
	DryRun         bool                     `json:"dryRun"`
	SubjectDigest  string                   `json:"subjectDigest"`
	StartTime      string                   `json:"startTime"`
	CompletionTime string                   `json:"completionTime"`
	Stores         []privacyv1.StoreOutcome `json:"stores"`
}

// ReceiptOf is the receipt of a completed request (status.startTime and
// status.completionTime set).
func ReceiptOf(dsr *privacyv1.DataSubjectRequest) Receipt {
	return Receipt{
		Request: dsr.Namespace + "/" + dsr.Name, UID: string(dsr.UID), Type: string(dsr.Spec.Type), DryRun: dsr.Spec.DryRun,
		SubjectDigest: dsr.Status.SubjectDigest,
		StartTime:     dsr.Status.StartTime.UTC().Format(time.RFC3339), CompletionTime: dsr.Status.CompletionTime.UTC().Format(time.RFC3339),
		Stores: dsr.Status.Stores,
	}
}
