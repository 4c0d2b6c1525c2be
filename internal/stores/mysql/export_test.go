package mysql

import (
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
)

// A subject with 50,000 rows exports whole under a budget it fits, and is
// refused under a small one before the manager allocates the export.
func TestMySQLALargeSubjectsExportStreamsWithinItsBudget(t *testing.T) {
	const rows, payload = 50000, 150
	h := openHarness(t, storetest.Fixture{}, "utf8mb4_general_ci")
	h.exec(t, `CREATE TABLE large_export (id bigint PRIMARY KEY, user_id bigint NOT NULL, payload text NOT NULL, KEY (user_id))`)
	// seq_1_to_N is MariaDB's Sequence engine.
	h.exec(t, `INSERT INTO large_export SELECT seq, IF(seq <= 50000, 7, 8), CONCAT(REPEAT('p', 150), seq) FROM seq_1_to_51000`)
	s := h.Open(t, storetest.LargeExportSpec(privacyv1.EngineMySQL, ""), storetest.MaskingKey)
	storetest.LargeExport(t, s, rows, payload)
}
