package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// The live schema is cached between requests; a column dropped after it was
// cached fails the statement, and the request then reads the schema again and
// reports the drift precisely, changing nothing.
func TestDriftAfterTheSchemaWasCachedIsReportedPrecisely(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
	ctx := context.Background()
	if _, err := f.store.Plan(ctx, erasureRequest(subject)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.conn.Exec(ctx, "ALTER TABLE accounts DROP COLUMN phone"); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	_, err := f.store.Apply(ctx, erasureRequest(subject))
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `the schema does not match the data map: collection "accounts" field "phone"`) {
		t.Fatalf("Apply after the drift: %v, want the drift reported", err)
	}
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("a request acted on a drifted schema: %v", got)
	}
}
