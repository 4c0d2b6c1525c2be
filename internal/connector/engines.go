package connector

import (
	"context"
	"fmt"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	httpstore "github.com/lethe-dev/lethe/internal/stores/http"
	mongostore "github.com/lethe-dev/lethe/internal/stores/mongodb"
	mysqlstore "github.com/lethe-dev/lethe/internal/stores/mysql"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
	redisstore "github.com/lethe-dev/lethe/internal/stores/redis"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Engines opens the engine a DataStore names. Every engine reaches its server
// only through Network, the manager's egress policy.
type Engines struct {
	Network stores.Network
}

// Open is the Opener the manager uses.
func (e Engines) Open(ctx context.Context, ds *privacyv1.DataStore, m *datamap.Map, s Secrets) (stores.Store, error) {
	sqlOptions := []sqlcore.Option{sqlcore.WithSchemaTTL(ds.Spec.CheckEvery()), sqlcore.WithJournal(journalOf(ds))}
	if t := ds.Spec.StatementTimeout; t != nil && t.Duration > 0 {
		sqlOptions = append(sqlOptions, sqlcore.WithTimeouts(sqlcore.DefaultLockTimeout, t.Duration))
	}
	switch ds.Spec.Engine {
	case privacyv1.EnginePostgres:
		return postgres.New(ctx, s.Connection, m, s.MaskingKey, e.Network, sqlOptions...)
	case privacyv1.EngineMySQL:
		return mysqlstore.New(ctx, s.Connection, m, s.MaskingKey, e.Network, sqlOptions...)
	case privacyv1.EngineRedis:
		return redisstore.New(ctx, s.Connection, m, s.MaskingKey, e.Network)
	case privacyv1.EngineMongoDB:
		return mongostore.New(ctx, s.Connection, m, s.MaskingKey, e.Network)
	case privacyv1.EngineHTTP:
		cfg := httpstore.ConfigFor(ds.Spec, s.Connection, s.Authorization, s.SigningKey)
		cfg.Network = e.Network
		return httpstore.New(cfg, m)
	default:
		return nil, fmt.Errorf("%w: engine %q is not supported by this build", stores.ErrInvalid, ds.Spec.Engine)
	}
}

// journalOf is the journal table a SQL DataStore names.
func journalOf(ds *privacyv1.DataStore) sqlcore.JournalTable {
	if j := ds.Spec.Journal; j != nil {
		return sqlcore.JournalTable{Schema: j.Schema, Table: j.Table, Disabled: j.Disabled}
	}
	return sqlcore.JournalTable{}
}
