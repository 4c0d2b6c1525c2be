package postgres

import (
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
)

// A subject with 50,000 rows exports whole under a budget it fits, and is
// refused under a small one before the manager allocates the export.
func TestALargeSubjectsExportStreamsWithinItsBudget(t *testing.T) {
	const rows, payload = 50000, 150
	h := variants[0].open(t, storetest.Fixture{}).(*harness)
	h.exec(t, `CREATE TABLE large_export (id bigint PRIMARY KEY, user_id bigint NOT NULL, payload text NOT NULL);
		CREATE INDEX ON large_export (user_id);
		INSERT INTO large_export SELECT g, CASE WHEN g <= 50000 THEN 7 ELSE 8 END, repeat('p', 150) || g FROM generate_series(1, 51000) g`)
	s := h.Open(t, storetest.LargeExportSpec(privacyv1.EnginePostgres, ""), storetest.MaskingKey)
	storetest.LargeExport(t, s, rows, payload)
}
