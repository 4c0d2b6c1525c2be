// Package mysql is Lethe's MySQL and MariaDB engine (go-sql-driver). It has
// the PostgreSQL engine's semantics: it checks the live schema against the
// data map, resolves a subject's rows by walking the map from the identity
// columns, and carries out requests by primary key, one statement per
// collection and batch of keys, in one InnoDB transaction per store. The
// requests, exports, checks and sweeps are sqlcore's portable statements;
// this package gives them MySQL's dialect (dialect.go, match.go), connections
// and timeouts, schema introspection and checks, and error classification.
//
// Matching is exact whatever the column's collation. MySQL's default
// collations are case-, accent- and trailing-space-insensitive (a_b@x.io,
// A_B@x.io, á_b@x.io and "a_b@x.io " are all equal under utf8mb4_general_ci,
// and even utf8mb4_bin pads spaces), so a text identity is compared twice: by
// the column's own collation, which lets its index find the candidates, and
// byte for byte in UTF-8 (CAST(CAST(col AS CHAR CHARACTER SET utf8mb4) AS
// BINARY) = CAST(? AS BINARY)), which keeps only the exact ones.
//
// Identity values, keys and masking keys are always bound parameters (server-
// side prepared statements, never interpolated), identifiers are validated and
// quoted with backticks, and no error it returns repeats a value from the
// database: MySQL messages that can quote values are reduced to the error
// number and the object names.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

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

// Store is one MySQL or MariaDB database and its data map. Requests,
// exports, checks and sweeps are sqlcore's (Core), in MySQL's dialect.
type Store struct {
	*sqlcore.Core[liveSchema, *sql.Tx]
	db   *sql.DB
	m    *datamap.Map
	key  []byte
	opts sqlcore.Options
	// mariaDB selects the statement timeout variable: MariaDB's
	// max_statement_time (any statement) or MySQL's max_execution_time (SELECT only).
	mariaDB bool
}

var (
	_ stores.Store   = (*Store)(nil)
	_ stores.Sweeper = (*Store)(nil)
)

// Option configures a Store.
type Option = sqlcore.Option

// WithTimeouts sets the lock wait and statement timeouts of every transaction.
func WithTimeouts(lock, statement time.Duration) Option { return sqlcore.WithTimeouts(lock, statement) }

// WithSchemaTTL sets how long requests and sweeps trust the live schema (see
// sqlcore.WithSchemaTTL).
func WithSchemaTTL(ttl time.Duration) Option { return sqlcore.WithSchemaTTL(ttl) }

// New connects to the database of dsn, a go-sql-driver DSN
// (user:password@tcp(host:3306)/database), through network's dialer only. The
// DSN may set only the parameters of allowedParameters; sessions are set to
// utf8mb4, UTC and a strict sql_mode whatever it says. maskingKey keys the hash and
// uniqueEmail strategies; it may be empty when the map uses neither.
func New(ctx context.Context, dsn string, m *datamap.Map, maskingKey []byte, network stores.Network, opts ...Option) (*Store, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: no data map", stores.ErrInvalid)
	}
	if err := sqlcore.NewOptions(opts).Journal.Validate(); err != nil {
		return nil, err
	}
	if err := validateIdentifiers(m); err != nil {
		return nil, err
	}
	cfg, err := connConfig(dsn, network)
	if err != nil {
		return nil, err
	}
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: the MySQL connection settings are invalid", stores.ErrInvalid)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, m: m, key: maskingKey, opts: sqlcore.NewOptions(opts)}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		db.Close()
		return nil, connectError(err)
	}
	s.mariaDB = strings.Contains(strings.ToLower(version), "mariadb")
	s.Core = sqlcore.NewCore[liveSchema, *sql.Tx](m, maskingKey, dialect{Dialect: mySQL.Dialect, mariaDB: s.mariaDB}, engine{s}, s.opts)
	return s, nil
}

// connectError reports a failed first connection. Whatever the server said
// (access denied, unknown database) is fixed by a change to the Secret or the
// server, not to the data map, so it is unavailable: retried, never stalled.
func connectError(err error) error {
	if refused := stores.EgressRefusal(err); refused != nil {
		return refused
	}
	var myErr *gomysql.MySQLError
	if errors.As(err, &myErr) {
		return fmt.Errorf("%w: connecting to MySQL: %s", stores.ErrUnavailable, describe(myErr))
	}
	err = dbError("connecting to MySQL", err)
	if !errors.Is(err, stores.ErrUnavailable) && !errors.Is(err, stores.ErrInvalid) {
		// Whatever else ends a first connection (a server asking for a local
		// file, a protocol error) is the server's doing: retried, not stalled.
		return fmt.Errorf("%w: %w", stores.ErrUnavailable, err)
	}
	return err
}

// Close closes the connections.
func (s *Store) Close() { _ = s.db.Close() }

// readOnly is a snapshot that cannot write: planning, checking and exporting
// are safe by construction, and see one consistent state.
var readOnly = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}

// readWrite is Apply's transaction; it locks the subject's rows as it resolves them.
var readWrite = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

// inTx runs fn in a transaction with the store's timeouts, and commits if fn succeeds.
func (s *Store) inTx(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	return s.inTxWithTimeouts(ctx, opts, s.opts.LockTimeout, s.opts.StatementTimeout, fn)
}

func (s *Store) inTxWithTimeouts(ctx context.Context, opts *sql.TxOptions, lock, statement time.Duration, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return dbError("starting a transaction", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op once committed
	if _, err := tx.ExecContext(ctx, s.timeoutsStatement(lock, statement)); err != nil {
		return dbError("setting timeouts", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return dbError("committing", err)
	}
	return nil
}

// timeoutsStatement sets the session's lock waits (row locks and metadata
// locks, in whole seconds, at least 1) and statement timeout. The values are
// the store's own durations, never input, so they are rendered as numbers.
func (s *Store) timeoutsStatement(lock, statement time.Duration) string {
	lockSeconds := max(int64(math.Ceil(lock.Seconds())), 1)
	set := fmt.Sprintf("SET SESSION innodb_lock_wait_timeout = %d, SESSION lock_wait_timeout = %d", lockSeconds, lockSeconds)
	if s.mariaDB {
		return set + fmt.Sprintf(", SESSION max_statement_time = %.3f", statement.Seconds())
	}
	return set + fmt.Sprintf(", SESSION max_execution_time = %d", statement.Milliseconds())
}

// identifierPattern is what admission accepts for table and column names,
// within MySQL's 64-character limit.
var identifierPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,63}$`)

// validateIdentifiers refuses a map whose names admission would refuse (a
// map built without the API server): quoting alone would make them safe,
// but they could never name what the user meant.
func validateIdentifiers(m *datamap.Map) error {
	var bad []string
	check := func(c *datamap.Collection, name string) {
		if !identifierPattern.MatchString(name) {
			bad = append(bad, fmt.Sprintf("collection %q: %q", c.Name, name))
		}
	}
	for _, c := range m.Collections {
		parts := strings.Split(c.Table, ".")
		if len(parts) > 2 {
			bad = append(bad, fmt.Sprintf("collection %q: table %q", c.Name, c.Table))
		}
		for _, p := range parts {
			check(c, p)
		}
		check(c, c.PrimaryKey)
		for _, col := range c.Identity {
			check(c, col)
		}
		for _, f := range c.Fields {
			check(c, f.Name)
		}
		for _, e := range c.Parents {
			check(c, e.ChildField)
			check(c, e.ParentField)
		}
		for _, e := range c.Referrers {
			check(e.Child, e.ChildField)
			check(c, e.ParentField)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: invalid SQL identifiers (letters, digits, _ and $, at most 64): %s", stores.ErrInvalid, strings.Join(bad, "; "))
	}
	return nil
}
