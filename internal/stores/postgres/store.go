// Package postgres is Lethe's PostgreSQL engine. It checks the live schema
// against the data map, resolves a subject's rows by walking the data map from
// the identity columns, and carries out requests set-based (one statement per
// collection) in one transaction per store. Identity values, keys and masking
// keys are always bound parameters, identifiers always quoted, and no error it
// returns repeats a value from the database.
//
// The requests, exports, checks and sweeps are sqlcore's; this package gives
// them PostgreSQL's dialect (dialect.go), connections and timeouts (store.go,
// connection.go), schema introspection and checks (schema.go, check.go) and
// error classification (errors.go), and what only PostgreSQL does: the whole
// resolution in one statement, references compared in the database
// (resolve.go), a request's statements in one round trip (engine.go), a
// sweep range locked and changed in one statement (dialect.go).
package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Default timeouts of the transactions a Store runs (see sqlcore.Options).
const (
	DefaultLockTimeout      = sqlcore.DefaultLockTimeout
	DefaultStatementTimeout = sqlcore.DefaultStatementTimeout
)

// maxConns is small: requests run one transaction at a time per store.
const maxConns = 4

// Store is one PostgreSQL database and its data map. Requests, exports,
// checks and sweeps are sqlcore's (Core), in PostgreSQL's dialect, with its
// own resolution (inDatabase) and one round trip per request (pgTx.Batch).
type Store struct {
	*sqlcore.Core[liveSchema, pgx.Tx]
	pool *pgxpool.Pool
	m    *datamap.Map
	key  []byte
	opts sqlcore.Options
}

var (
	_ stores.Store   = (*Store)(nil)
	_ stores.Sweeper = (*Store)(nil)
)

// Option configures a Store.
type Option = sqlcore.Option

// WithTimeouts sets the lock_timeout and statement_timeout of every transaction.
func WithTimeouts(lock, statement time.Duration) Option { return sqlcore.WithTimeouts(lock, statement) }

// WithSchemaTTL sets how long requests and sweeps trust the live schema (see
// sqlcore.WithSchemaTTL).
func WithSchemaTTL(ttl time.Duration) Option { return sqlcore.WithSchemaTTL(ttl) }

// New connects to the database of dsn through network's dialer only; dsn may
// set only the parameters of allowedParameters. maskingKey keys the hash and
// uniqueEmail strategies; it may be empty when the map uses neither.
func New(ctx context.Context, dsn string, m *datamap.Map, maskingKey []byte, network stores.Network, opts ...Option) (*Store, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: no data map", stores.ErrInvalid)
	}
	if err := sqlcore.NewOptions(opts).Journal.Validate(); err != nil {
		return nil, err
	}
	cfg, err := poolConfig(dsn, network)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", stores.ErrUnavailable, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if refused := stores.EgressRefusal(err); refused != nil {
			return nil, refused
		}
		return nil, fmt.Errorf("%w: connecting to PostgreSQL: %s", stores.ErrUnavailable, describeConnectError(err))
	}
	s := &Store{pool: pool, m: m, key: maskingKey, opts: sqlcore.NewOptions(opts)}
	s.Core = sqlcore.NewCore[liveSchema, pgx.Tx](m, maskingKey, pgSQL, engine{s}, s.opts)
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// readOnly is a snapshot that cannot write: planning, checking and exporting
// are safe by construction, and see one consistent state.
var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// readWrite is Apply's transaction; it locks the subject's rows as it resolves them.
var readWrite = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}

// inTx runs fn in a transaction with the store's timeouts, and commits if fn succeeds.
func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	return s.inTxWithTimeouts(ctx, opts, s.opts.LockTimeout, s.opts.StatementTimeout, "", fn)
}

// inTxWithTimeouts runs fn in a transaction whose lock_timeout and
// statement_timeout (and extra settings, a set_config list) are set with
// BEGIN, in the same round trip. The values are the store's own durations,
// never input.
func (s *Store) inTxWithTimeouts(ctx context.Context, opts pgx.TxOptions, lock, statement time.Duration, extra string, fn func(pgx.Tx) error) error {
	opts.BeginQuery = fmt.Sprintf("%s; SELECT set_config('lock_timeout', '%s', true), set_config('statement_timeout', '%s', true)%s",
		beginSQL(opts), milliseconds(lock), milliseconds(statement), extra)
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil && connectionEnded(err) {
		// The server ended the pooled connection (a restart, or a restore
		// that terminated every session) and BEGIN found out: nothing ran.
		// The others idle in the pool were most likely ended too: all are
		// closed, and a fresh connection is tried at once.
		s.pool.Reset()
		tx, err = s.pool.BeginTx(ctx, opts)
	}
	if err != nil {
		return dbError("starting a transaction", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op once committed
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("committing", err)
	}
	return nil
}

// beginSQL is the BEGIN statement of opts' isolation level and access mode.
func beginSQL(opts pgx.TxOptions) string {
	sql := "BEGIN"
	if opts.IsoLevel != "" {
		sql += " ISOLATION LEVEL " + strings.ToUpper(string(opts.IsoLevel))
	}
	if opts.AccessMode != "" {
		sql += " " + strings.ToUpper(string(opts.AccessMode))
	}
	return sql
}

func milliseconds(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
