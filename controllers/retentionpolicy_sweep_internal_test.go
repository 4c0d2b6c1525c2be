package controllers

import (
	"fmt"
	"reflect"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

func TestRetentionChildrenAndKeptAddUpOverBatches(t *testing.T) {
	var children []privacyv1.ChildRows
	children = addChildren(children, []stores.CollectionResult{
		{Collection: "invoice_lines", Action: stores.ActionDelete, Rows: 4},
		{Collection: "disputes", Action: stores.ActionSetNull, Rows: 1},
	})
	children = addChildren(children, []stores.CollectionResult{
		{Collection: "invoice_lines", Action: stores.ActionDelete, Rows: 6},
		{Collection: "line_notes", Action: stores.ActionDelete, Rows: 0},
	})
	want := []privacyv1.ChildRows{{Collection: "invoice_lines", Action: "delete", Rows: 10}, {Collection: "disputes", Action: "setNull", Rows: 1}}
	if !reflect.DeepEqual(children, want) {
		t.Errorf("children: %+v, want %+v", children, want)
	}

	var kept []privacyv1.KeptRows
	for i := 0; i < maxKeptReasons+5; i++ {
		kept = addKept(kept, []stores.CollectionResult{{Collection: "invoices", Action: stores.ActionRetain, Rows: 2, Reason: fmt.Sprintf("reason %d", i)}})
	}
	kept = addKept(kept, []stores.CollectionResult{{Collection: "invoices", Action: stores.ActionRetain, Rows: 3, Reason: "reason 0"}})
	if len(kept) != maxKeptReasons+1 || kept[0] != (privacyv1.KeptRows{Reason: "reason 0", Rows: 5}) ||
		kept[maxKeptReasons] != (privacyv1.KeptRows{Reason: otherKeptReasons, Rows: 10}) || keptRows(kept) != 2*(maxKeptReasons+5)+3 {
		t.Errorf("kept: %+v", kept)
	}
}

func TestRetentionPartitionsAreListedWithinBounds(t *testing.T) {
	var ps stores.PartitionSweep
	for i := 0; i < privacyv1.MaxPartitionsListed+3; i++ {
		ps.Dropped = append(ps.Dropped, stores.PartitionOutcome{Name: fmt.Sprintf("events_%02d", i), Rows: 100, Estimated: i == 7})
	}
	ps.Kept = []stores.PartitionOutcome{{Name: "events_held", Rows: 5, Reason: "holds a row under a legal hold"}}
	got := partitionsStatus(ps, false)
	if len(got.Dropped) != privacyv1.MaxPartitionsListed || got.DroppedCount != int32(privacyv1.MaxPartitionsListed+3) ||
		got.DroppedRows != 100*int64(privacyv1.MaxPartitionsListed+3) || !got.DroppedRowsEstimated || got.KeptCount != 1 || got.Kept[0].Reason == "" {
		t.Errorf("partitions: %+v", got)
	}
	if listedPartitions(partitionsStatus(stores.PartitionSweep{}, false)) != nil {
		t.Error("an unpartitioned table is listed")
	}
}

func TestRetentionRunNowValue(t *testing.T) {
	pol := &privacyv1.RetentionPolicy{}
	if runNowPending(pol) != "" {
		t.Error("no annotation, yet a run-now is pending")
	}
	pol.Annotations = map[string]string{privacyv1.AnnotationRunNow: "1"}
	if runNowPending(pol) != "1" {
		t.Error("a new value is not pending")
	}
	pol.Status.LastRunNowValue = "1"
	if runNowPending(pol) != "" {
		t.Error("a handled value is pending again")
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	pol.Annotations[privacyv1.AnnotationRunNow] = string(long)
	v := runNowValue(pol)
	if len(v) > 128 || v == pol.Status.LastRunNowValue || runNowPending(pol) != v {
		t.Errorf("a long value is kept as %q", v)
	}
}
