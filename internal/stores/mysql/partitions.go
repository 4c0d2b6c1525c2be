package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Partition sweeps (see sqlcore/partitions.go for what is dropped and what
// kept) on tables partitioned BY RANGE COLUMNS(field) or BY RANGE of
// TO_DAYS, TO_SECONDS, UNIX_TIMESTAMP or YEAR of the field; any other
// partitioning is left to row batches. Expired partitions go with one ALTER
// TABLE ... DROP PARTITION, on a connection of its own holding LOCK TABLES
// ... WRITE (waiting at most sweepLockTimeout for it, as lock_wait_timeout
// says) while each partition is checked again and the partitions dropped: a
// held row written after the first check is never dropped. The lock stops
// the application's reads and writes of the table for the check of the
// partitions being dropped (by key and LIMIT 1 for held and exempted rows; a
// count of at most sqlcore.ExactCountLimit estimated rows) and the DROP.
//
// InnoDB refuses foreign keys to or from a partitioned table, so no
// database reference can keep one: only the data map's references do.

var (
	_ stores.PartitionSweeper    = (*Store)(nil)
	_ stores.TableHealthReporter = (*Store)(nil)
)

// SweepPartitions drops the partitions of rule.Collection's table wholly
// past rule.Cutoff that nothing keeps (see sqlcore.Core.SweepRangePartitions).
func (s *Store) SweepPartitions(ctx context.Context, rule stores.SweepRule, dryRun bool) (stores.PartitionSweep, error) {
	return s.Core.SweepRangePartitions(ctx, partitioner{s}, rule, dryRun)
}

// TableHealth is not known: InnoDB purges old row versions itself, soon
// after the transactions that could see them end, and reports no per-table
// figure of what is left to purge (the history list length is the whole
// server's).
func (s *Store) TableHealth(_ context.Context, collection string) (stores.TableHealth, error) {
	if _, ok := s.m.Get(collection); !ok {
		return stores.TableHealth{}, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, collection)
	}
	return stores.TableHealth{Known: false}, nil
}

type partitioner struct{ s *Store }

// partitionFunctions are the partitioning functions of a date or time
// column whose bound (PARTITION_DESCRIPTION, an integer) the database turns
// back into a time to compare with the cutoff (?): the partition holds
// f(col) < bound, that is col before the returned time.
var partitionFunctions = map[string]string{
	"to_days":        "FROM_DAYS(CAST(PARTITION_DESCRIPTION AS SIGNED)) <= ?",
	"to_seconds":     "CAST(PARTITION_DESCRIPTION AS SIGNED) <= TO_SECONDS(?)",
	"unix_timestamp": "CAST(PARTITION_DESCRIPTION AS SIGNED) <= UNIX_TIMESTAMP(?)",
	"year":           "MAKEDATE(CAST(PARTITION_DESCRIPTION AS SIGNED), 1) <= ?",
}

// functionOf recognises information_schema's PARTITION_EXPRESSION of a
// RANGE partitioning: function(`column`).
var functionOf = regexp.MustCompile("^(?i)([a-z_]+)\\(`([^`]+)`\\)$")

// expiredCondition is the condition on an information_schema.PARTITIONS
// row that its partition lies wholly before the cutoff, or "" when the
// table's partitioning is not by range on field.
func expiredCondition(method, expression, field string) string {
	var cmp string
	switch method {
	case "RANGE COLUMNS":
		// A single column; its bounds are quoted literals.
		if !strings.EqualFold(expression, quote(field)) {
			return ""
		}
		cmp = "CAST(TRIM(BOTH '''' FROM PARTITION_DESCRIPTION) AS DATETIME(6)) <= ?"
	case "RANGE":
		m := functionOf.FindStringSubmatch(expression)
		if m == nil || !strings.EqualFold(m[2], field) {
			return ""
		}
		if cmp = partitionFunctions[strings.ToLower(m[1])]; cmp == "" {
			return ""
		}
	default:
		return ""
	}
	return "CASE WHEN PARTITION_DESCRIPTION = 'MAXVALUE' THEN 0 ELSE " + cmp + " END"
}

func (p partitioner) RangePartitions(ctx context.Context, live *liveSchema, sw sqlcore.Sweep) (sqlcore.RangeTable, error) {
	t := live.tables[sw.C.Name]
	ref := tableRef(sw.C)
	var out sqlcore.RangeTable
	what := fmt.Sprintf("reading the partitions of collection %q", sw.C.Name)
	err := p.s.inTx(ctx, readOnly, func(tx *sql.Tx) error {
		const scheme = `SELECT PARTITION_METHOD, PARTITION_EXPRESSION FROM information_schema.PARTITIONS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL LIMIT 1`
		var method, expression string
		switch err := tx.QueryRowContext(ctx, scheme, t.schema, t.name).Scan(&method, &expression); {
		case errors.Is(err, sql.ErrNoRows):
			return nil // not partitioned
		case err != nil:
			return dbError(what, err)
		}
		expired := expiredCondition(method, expression, sw.Rule.Field)
		if expired == "" {
			return nil
		}
		out.Partitioned = true
		// One row per partition (subpartitions summed): its name, whether it
		// lies wholly before the cutoff, and InnoDB's estimate of its rows.
		list := `SELECT PARTITION_NAME, MAX(` + expired + `), COALESCE(SUM(TABLE_ROWS), -1)
FROM information_schema.PARTITIONS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL
GROUP BY PARTITION_NAME, PARTITION_ORDINAL_POSITION ORDER BY PARTITION_ORDINAL_POSITION`
		rows, err := tx.QueryContext(ctx, list, sw.Rule.Cutoff.UTC(), t.schema, t.name)
		if err != nil {
			return dbError(what, err)
		}
		err = scanEach(rows, func(r *sql.Rows) error {
			var rp sqlcore.RangePartition
			var expired sql.NullBool
			if err := r.Scan(&rp.Name, &expired, &rp.Estimate); err != nil {
				return err
			}
			rp.Expired = expired.Valid && expired.Bool
			rp.From = ref + " PARTITION (" + quote(rp.Name) + ")"
			out.Partitions = append(out.Partitions, rp)
			return nil
		})
		if err != nil {
			return dbError(what, err)
		}
		return nil
	})
	return out, err
}

// DropPartitions checks and drops parts on one connection holding the
// table's write lock.
func (p partitioner) DropPartitions(ctx context.Context, _ *liveSchema, sw sqlcore.Sweep, parts []sqlcore.RangePartition, check sqlcore.PartitionCheck) (dropped, kept []stores.PartitionOutcome, err error) {
	ref := tableRef(sw.C)
	what := fmt.Sprintf("dropping partitions of collection %q", sw.C.Name)
	conn, err := p.s.db.Conn(ctx)
	if err != nil {
		return nil, nil, dbError(what, err)
	}
	locked := false
	defer func() {
		if locked {
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES"); err != nil {
				// A connection that may still hold the lock never goes back to the pool.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		_ = conn.Close()
	}()
	// Engine transactions set their own timeouts: the session's need no reset.
	if _, err := conn.ExecContext(ctx, p.s.timeoutsStatement(min(p.s.opts.LockTimeout, sweepLockTimeout), p.s.opts.StatementTimeout)); err != nil {
		return nil, nil, dbError(what, err)
	}
	if _, err := conn.ExecContext(ctx, "LOCK TABLES "+ref+" WRITE"); err != nil {
		return nil, nil, dbError(what, err)
	}
	locked = true
	var drop []string
	var outcomes []stores.PartitionOutcome
	for _, rp := range parts {
		o, keep, err := check(ctx, sqlTx{conn}, rp) // on the connection holding the lock, outside a transaction (LOCK TABLES ends one)
		if err != nil {
			return nil, kept, err
		}
		if keep {
			kept = append(kept, o)
			continue
		}
		drop = append(drop, quote(rp.Name))
		outcomes = append(outcomes, o)
	}
	if len(drop) == 0 {
		return nil, kept, nil
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE "+ref+" DROP PARTITION "+strings.Join(drop, ", ")); err != nil {
		return nil, kept, dbError(what, err)
	}
	return outcomes, kept, nil
}
