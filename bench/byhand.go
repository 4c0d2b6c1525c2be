package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The same statements by hand: a delete sweep's two statements a batch (the
// look-up of the batch's last row, then the DELETE of its range), written as
// a DBA would in a loop, a transaction a batch, with none of Lethe's checks,
// cursors or status. What Lethe's own SQL costs on this machine: the ratio
// against it says how much Lethe adds; the ratio of these statements to the
// single DELETE, or to pt-archiver, is the limit batches of exactly the
// batch size, each committed, can reach.

// byHandBatch runs one batch after the cursor after ("" for the first):
// the rows it removed, the next cursor, and whether it was the last.
type byHandBatch func(ctx context.Context, after string) (rows int64, last string, done bool, err error)

// byHandLoop runs batch until the last, timing each.
func byHandLoop(ctx context.Context, batch byHandBatch) (sweepRun, error) {
	var run sweepRun
	after := ""
	start := time.Now()
	for {
		t := time.Now()
		rows, last, done, err := batch(ctx, after)
		run.Batches = append(run.Batches, time.Since(t))
		if err != nil {
			return run, fmt.Errorf("by hand, batch %d: %w", len(run.Batches), err)
		}
		run.Rows += rows
		if done {
			break
		}
		after = last
	}
	run.Elapsed = time.Since(start)
	return run, nil
}

// pgDeleteByHand deletes the expired rows of events in storage order (by
// ctid), batchSize rows a transaction: the session reads without index
// scans, parallel plans or synchronized scans, and plans each statement for
// its values, as Lethe's sweep transactions do.
func pgDeleteByHand(ctx context.Context, pool *pgxpool.Pool, batchSize int) (sweepRun, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return sweepRun{}, err
	}
	defer conn.Release()
	const session = "SET enable_indexscan = off; SET max_parallel_workers_per_gather = 0; SET synchronize_seqscans = off; SET plan_cache_mode = force_custom_plan"
	if _, err := conn.Exec(ctx, session); err != nil {
		return sweepRun{}, err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "RESET ALL") }()
	return byHandLoop(ctx, func(ctx context.Context, after string) (int64, string, bool, error) {
		if after == "" {
			after = "(0,0)"
		}
		var rows int64
		var last string
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, "SELECT CAST(ctid AS text) FROM events WHERE ctid > CAST($1 AS tid) AND created_at < $2 LIMIT 1 OFFSET $3",
				after, sweepCutoff, batchSize-1).Scan(&last)
			var tag pgconn.CommandTag
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				last = ""
				tag, err = tx.Exec(ctx, "DELETE FROM events WHERE ctid > CAST($1 AS tid) AND created_at < $2", after, sweepCutoff)
			case err == nil:
				tag, err = tx.Exec(ctx, "DELETE FROM events WHERE ctid > CAST($1 AS tid) AND ctid <= CAST($2 AS tid) AND created_at < $3", after, last, sweepCutoff)
			}
			if err == nil {
				rows = tag.RowsAffected()
			}
			return err
		})
		return rows, last, err == nil && last == "", err
	})
}

// mariaDBDeleteByHand deletes the expired rows of events in key order,
// batchSize rows a transaction, finding each batch's last key through the
// primary key, as Lethe's MariaDB sweep does.
func mariaDBDeleteByHand(ctx context.Context, db *sql.DB, batchSize int) (sweepRun, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return sweepRun{}, err
	}
	defer conn.Close()
	cutoff := sweepCutoff.Format("2006-01-02 15:04:05")
	return byHandLoop(ctx, func(ctx context.Context, after string) (int64, string, bool, error) {
		if after == "" {
			after = "0"
		}
		tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			return 0, "", false, err
		}
		defer func() { _ = tx.Rollback() }()
		var last string
		var res sql.Result
		err = tx.QueryRowContext(ctx, "SELECT id FROM events FORCE INDEX (PRIMARY) WHERE id > ? AND created_at < ? ORDER BY id LIMIT 1 OFFSET ?",
			after, cutoff, batchSize-1).Scan(&last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			last = ""
			res, err = tx.ExecContext(ctx, "DELETE FROM events WHERE id > ? AND created_at < ?", after, cutoff)
		case err == nil:
			res, err = tx.ExecContext(ctx, "DELETE FROM events WHERE id > ? AND id <= ? AND created_at < ?", after, last, cutoff)
		}
		if err != nil {
			return 0, "", false, err
		}
		rows, err := res.RowsAffected()
		if err == nil {
			err = tx.Commit()
		}
		return rows, last, last == "", err
	})
}

// byHandRow compares Lethe's sweep with the same statements by hand.
func byHandRow(statements string, lethe, byHand sweepRun) Row {
	r := lethe.rate() / byHand.rate()
	return Row{Benchmark: "   against the same statements by hand (" + statements + ", a transaction a batch)",
		Lethe: fmtRate(lethe.rate(), "rows/s"), LetheValue: lethe.rate(), Baseline: fmtRate(byHand.rate(), "rows/s") + " by hand", BaselineValue: byHand.rate(),
		Ratio: fmtRatio(r), RatioValue: r, Unit: "rows/s", Goal: "-", Met: "-"}
}
