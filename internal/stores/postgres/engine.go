package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// engine is the Store as sqlcore.Core sees it.
type engine struct{ s *Store }

var (
	_ sqlcore.Engine[liveSchema, pgx.Tx] = engine{}
	_ sqlcore.ResolvingEngine            = engine{}
)

// InTx runs fn in the transaction of kind: sweeps in short read-committed
// transactions (see inSweepTx), a batch's first attempt waiting least for a
// row lock.
func (e engine) InTx(ctx context.Context, kind sqlcore.TxKind, fn func(pgx.Tx) error) error {
	switch kind {
	case sqlcore.ReadOnly:
		return e.s.inTx(ctx, readOnly, fn)
	case sqlcore.ReadWrite:
		return e.s.inTx(ctx, readWrite, fn)
	case sqlcore.SweepRange:
		return e.s.inSweepTx(ctx, fastLockTimeout, "", fn)
	case sqlcore.SweepByPosition:
		return e.s.inSweepTx(ctx, fastLockTimeout, readInStorageOrder, fn)
	default: // SweepLocking, SweepCount
		return e.s.inSweepTx(ctx, sweepLockTimeout, "", fn)
	}
}

func (e engine) Introspect(ctx context.Context, tx pgx.Tx) (*liveSchema, error) {
	return e.s.introspect(ctx, tx)
}

func (e engine) Problems(live *liveSchema) []stores.SchemaProblem { return e.s.problems(live) }

func (e engine) Warnings(live *liveSchema) []string { return e.s.warnings(live) }

func (engine) Schema(live *liveSchema) sqlcore.Schema { return live }

func (engine) Tx(tx pgx.Tx) sqlcore.Tx { return pgTx{tx} }

func (engine) DBError(what string, err error) error { return dbError(what, err) }

// LockTimedOut reports SQLSTATE 55P03, raised when lock_timeout expires.
func (engine) LockTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == lockNotAvailable
}

// Resolver is PostgreSQL's own: see inDatabase.
func (engine) Resolver(s *sqlcore.Session) sqlcore.Resolver { return inDatabase{s} }

// pgTx runs the shared statements in a pgx transaction.
type pgTx struct{ tx pgx.Tx }

var _ sqlcore.Batcher = pgTx{}

func (t pgTx) Exec(ctx context.Context, s sqlcore.Statement) (int64, error) {
	tag, err := t.tx.Exec(ctx, s.SQL, s.Args...)
	return tag.RowsAffected(), err
}

func (t pgTx) Query(ctx context.Context, s sqlcore.Statement, dest []any, each func() error) error {
	rows, err := t.tx.Query(ctx, s.SQL, s.Args...)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, dest, each)
	return err
}

// Batch sends the statements as one pipeline: one round trip whatever
// their number (a pipeline prepares named statements); in a customPlanTx,
// one statement after another.
func (t pgTx) Batch(ctx context.Context, statements []sqlcore.Statement, exec bool) ([]int64, int, error) {
	if _, ok := t.tx.(customPlanTx); ok {
		return t.oneByOne(ctx, statements, exec)
	}
	batch := &pgx.Batch{}
	for _, s := range statements {
		batch.Queue(s.SQL, s.Args...)
	}
	results := t.tx.SendBatch(ctx, batch)
	defer results.Close()
	rows := make([]int64, len(statements))
	for i := range statements {
		n, err := batchRows(results, exec)
		if err != nil {
			return nil, i, err
		}
		rows[i] = n
	}
	if err := results.Close(); err != nil {
		return nil, len(statements), err
	}
	return rows, 0, nil
}

// batchRows reads the next statement's result: the rows it changed, or counted.
func batchRows(results pgx.BatchResults, exec bool) (int64, error) {
	if exec {
		tag, err := results.Exec()
		return tag.RowsAffected(), err
	}
	var n int64
	err := results.QueryRow().Scan(&n)
	return n, err
}

// oneByOne runs the statements as Batch does, one round trip each.
func (t pgTx) oneByOne(ctx context.Context, statements []sqlcore.Statement, exec bool) ([]int64, int, error) {
	rows := make([]int64, len(statements))
	for i, s := range statements {
		var err error
		if exec {
			rows[i], err = t.Exec(ctx, s)
		} else {
			err = t.tx.QueryRow(ctx, s.SQL, s.Args...).Scan(&rows[i])
		}
		if err != nil {
			return nil, i, err
		}
	}
	return rows, 0, nil
}
