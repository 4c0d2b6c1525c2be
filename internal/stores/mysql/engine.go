package mysql

import (
	"context"
	"database/sql"
	"errors"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// engine is the Store as sqlcore.Core sees it.
type engine struct{ s *Store }

var _ sqlcore.Engine[liveSchema, *sql.Tx] = engine{}

// InTx runs fn in the transaction of kind; sweeps with short timeouts (see
// inSweepTx), a batch's first attempt waiting least for a row lock.
func (e engine) InTx(ctx context.Context, kind sqlcore.TxKind, fn func(*sql.Tx) error) error {
	switch kind {
	case sqlcore.ReadOnly:
		return e.s.inTx(ctx, readOnly, fn)
	case sqlcore.ReadWrite:
		return e.s.inTx(ctx, readWrite, fn)
	case sqlcore.SweepRange, sqlcore.SweepByPosition: // the dialect is no StorageOrderer
		return e.s.inSweepTx(ctx, readWrite, fastLockTimeout, fn)
	case sqlcore.SweepLocking:
		return e.s.inSweepTx(ctx, readWrite, sweepLockTimeout, fn)
	default: // SweepCount
		return e.s.inSweepTx(ctx, readOnly, sweepLockTimeout, fn)
	}
}

func (e engine) Introspect(ctx context.Context, tx *sql.Tx) (*liveSchema, error) {
	return e.s.introspect(ctx, tx)
}

func (e engine) Problems(live *liveSchema) []stores.SchemaProblem { return e.s.problems(live) }

func (e engine) Warnings(live *liveSchema) []string { return e.s.warnings(live) }

func (engine) Schema(live *liveSchema) sqlcore.Schema { return live }

func (engine) Tx(tx *sql.Tx) sqlcore.Tx { return sqlTx{tx} }

func (engine) DBError(what string, err error) error { return dbError(what, err) }

// LockTimedOut reports MySQL error 1205, raised when innodb_lock_wait_timeout expires.
func (engine) LockTimedOut(err error) bool {
	var myErr *gomysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == lockWaitTimeout
}

// sqlTx runs the shared statements in a database/sql transaction (or on the
// one connection a partition sweep holds its table lock on): server-side
// prepared statements, so values are never interpolated.
type sqlTx struct{ tx querier }

// querier is a *sql.Tx or a *sql.Conn.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (t sqlTx) Exec(ctx context.Context, s sqlcore.Statement) (int64, error) {
	res, err := t.tx.ExecContext(ctx, s.SQL, s.Args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t sqlTx) Query(ctx context.Context, s sqlcore.Statement, dest []any, each func() error) error {
	rows, err := t.tx.QueryContext(ctx, s.SQL, s.Args...)
	if err != nil {
		return err
	}
	return scanEach(rows, func(r *sql.Rows) error {
		if err := r.Scan(dest...); err != nil {
			return err
		}
		return each()
	})
}

// scanEach calls fn for every row and closes rows.
func scanEach(rows *sql.Rows, fn func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
