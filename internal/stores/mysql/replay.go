package mysql

import (
	"context"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

var _ sqlcore.IdentityDialect = dialect{}

// StoreIdentity is MySQL's @@server_uuid. MariaDB has none: its identity is
// "mariadb:<server_id>@<hostname>", which a failover to a replica (another
// server_id or host) changes.
func (dialect) StoreIdentity(ctx context.Context, tx sqlcore.Tx) (stores.StoreIdentity, error) {
	var version string
	if err := tx.Query(ctx, sqlcore.Statement{SQL: "SELECT VERSION()"}, []any{&version}, func() error { return nil }); err != nil {
		return stores.StoreIdentity{}, err
	}
	q := "SELECT @@server_uuid"
	if strings.Contains(strings.ToLower(version), "mariadb") {
		q = "SELECT CONCAT('mariadb:', @@server_id, '@', @@hostname)"
	}
	var id stores.StoreIdentity
	err := tx.Query(ctx, sqlcore.Statement{SQL: q}, []any{&id.System}, func() error { return nil })
	return id, err
}
