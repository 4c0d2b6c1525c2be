package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Retention sweeps are sqlcore's (see sqlcore.Core.SweepBatch), with two
// PostgreSQL specifics: a batch redone after a lock timeout locks and changes
// its rows in one statement (dialect.SkipLockedChange), and every batch is
// planned for its own bounds (inSweepTx).

// Sweep transactions are short: a batch waits at most fastLockTimeout for a
// row lock before it is redone skipping locked rows, and never more than
// sweepLockTimeout for any other lock; a batch that runs long is cut off.
const (
	fastLockTimeout       = 200 * time.Millisecond
	sweepLockTimeout      = 2 * time.Second
	sweepStatementTimeout = 30 * time.Second
)

// lockNotAvailable is SQLSTATE 55P03, raised when lock_timeout expires.
const lockNotAvailable = "55P03"

// inSweepTx runs fn in a read-committed transaction with the sweep's short
// timeouts (never longer than the store's). Plans are made for each batch's
// values: a generic plan of "pk > $1 AND pk <= $2" cannot tell a batch from
// the whole table, and may scan all of it. The transaction's statements are
// sent as unnamed statements (customPlanTx), which PostgreSQL plans for the
// values bound; plan_cache_mode = force_custom_plan would do the same, but
// for every plan of the transaction, the foreign-key triggers' included:
// they would be planned again for each row deleted, which made the chain
// sweep's deletes three times slower.
//
// settings are more set_config calls for the transaction's first statement.
func (s *Store) inSweepTx(ctx context.Context, lockTimeout time.Duration, settings string, fn func(pgx.Tx) error) error {
	lock, statement := min(s.opts.LockTimeout, lockTimeout), min(s.opts.StatementTimeout, sweepStatementTimeout)
	return s.inTxWithTimeouts(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, lock, statement, settings, func(tx pgx.Tx) error {
		return fn(customPlanTx{tx})
	})
}

// customPlanTx is a transaction whose statements are unnamed prepared
// statements, described then executed (two round trips; the parameter
// types PostgreSQL infers, as for the cached statements elsewhere): each is
// planned for the values it is given. pgTx sends its batches one statement
// at a time, as a pipeline would prepare named statements.
type customPlanTx struct{ pgx.Tx }

func (t customPlanTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.Tx.Exec(ctx, sql, append([]any{pgx.QueryExecModeDescribeExec}, args...)...)
}

func (t customPlanTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.Tx.Query(ctx, sql, append([]any{pgx.QueryExecModeDescribeExec}, args...)...)
}

func (t customPlanTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.Tx.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeDescribeExec}, args...)...)
}

// readInStorageOrder makes a SweepByPosition transaction's look-up
// (dialect.PositionLookup) read the table in storage order: by a TID range
// scan, a sequential scan starting at the first block (no synchronized scan,
// which starts where another scan of the table is) or a bitmap heap scan,
// never by a plain index scan, which reads in the index's order, nor by a
// parallel plan, whose workers return rows in any order. Either would make
// the batch's range hold more or fewer than BatchSize rows (never skip one).
// The look-up restores index scans once it is planned, so that the DELETE
// and the foreign-key triggers it fires (whose plans the session keeps) are
// planned with them.
const readInStorageOrder = ", set_config('lethe.enable_indexscan', current_setting('enable_indexscan'), true)" +
	", set_config('enable_indexscan', 'off', true)" +
	", set_config('max_parallel_workers_per_gather', '0', true)" +
	", set_config('synchronize_seqscans', 'off', true)"

// Descend finds a sweep batch's rows and the rows below them, down the
// cascade references, with the database comparing each reference (as
// ChildrenOf does): one statement a reference, the parent keys bound as one
// array, whatever their number.
func (r inDatabase) Descend(ctx context.Context, from *datamap.Collection, keys []string) (sqlcore.Rows, error) {
	return r.DescendWith(ctx, from, keys, r.referring)
}

// referring selects (and, when the session locks, locks) the rows of e's
// child that refer to the parent rows of parentKeys.
func (r inDatabase) referring(ctx context.Context, e *datamap.Edge, parentKeys []string) ([]string, error) {
	p := r.Params()
	sql := fmt.Sprintf("SELECT CAST(t.%s AS text) FROM %s AS t WHERE %s", quote(e.Child.PrimaryKey), tableRef(e.Child), r.referencesRows(e, parentKeys, p))
	if r.Lock {
		sql += " FOR UPDATE OF t"
	}
	keys, err := r.QueryKeys(ctx, sqlcore.Statement{SQL: sql, Args: p.Values()})
	if err != nil {
		return nil, dbError(fmt.Sprintf("finding the rows of collection %q that refer to %q", e.Child.Name, e.Parent.Name), err)
	}
	return keys, nil
}
