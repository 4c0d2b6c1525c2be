package postgres

import (
	"context"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

var _ sqlcore.IdentityDialect = dialect{}

// StoreIdentity is the cluster's system_identifier and current timeline:
// the first changes when a store is a different cluster (a new initdb, a
// logical restore elsewhere), the second on each point-in-time recovery or
// standby promotion.
func (dialect) StoreIdentity(ctx context.Context, tx sqlcore.Tx) (stores.StoreIdentity, error) {
	var id stores.StoreIdentity
	err := tx.Query(ctx, sqlcore.Statement{SQL: `SELECT s.system_identifier::text, c.timeline_id::text FROM pg_control_system() s, pg_control_checkpoint() c`},
		[]any{&id.System, &id.Timeline}, func() error { return nil })
	return id, err
}
