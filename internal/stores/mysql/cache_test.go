package mysql

import (
	"context"
	"errors"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// The live schema is cached between requests and sweep batches; a column
// dropped after it was cached fails the statement, and the call then reads
// the schema again and reports the drift precisely, changing nothing.
func TestMySQLDriftAfterTheSchemaWasCachedIsReportedPrecisely(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
	ctx := context.Background()
	if _, err := f.store.Plan(ctx, erasureRequest(subject)); err != nil {
		t.Fatal(err)
	}
	f.exec(t, "ALTER TABLE accounts DROP COLUMN phone")
	before := f.snapshot(t)
	_, err := f.store.Apply(ctx, erasureRequest(subject))
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `the schema does not match the data map: collection "accounts" field "phone"`) {
		t.Fatalf("Apply after the drift: %v, want the drift reported", err)
	}
	rule := stores.SweepRule{Collection: "accounts", Field: "created_at", Cutoff: sweepCutoff, Action: stores.ActionAnonymize}
	if _, err := f.store.SweepBatch(ctx, rule, ""); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `field "phone"`) {
		t.Fatalf("SweepBatch after the drift: %v, want the drift reported", err)
	}
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("a drifted schema was acted on: %v", got)
	}
}
