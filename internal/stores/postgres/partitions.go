package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Partition sweeps (see sqlcore/partitions.go for what is dropped and what
// kept). A partition goes in two steps:
//
//  1. ALTER TABLE parent DETACH PARTITION p CONCURRENTLY: it takes only a
//     SHARE UPDATE EXCLUSIVE lock on the parent, so the application's reads
//     and writes go on; it cannot run in a transaction block, so it runs on a
//     plain connection of the pool, with the store's lock and statement
//     timeouts. PostgreSQL refuses it when the table has a DEFAULT partition:
//     the partition is then dropped in one transaction holding the parent's
//     ACCESS EXCLUSIVE lock for the check and the DROP (waiting at most
//     sweepLockTimeout for it).
//  2. One transaction locks the detached table, checks it again (no one
//     writes to it through the parent any more), and drops it; or, when a
//     held or exempted row arrived in between, attaches it again with the
//     bound the catalog gave (cheap: the detach left a CHECK constraint
//     matching it, so PostgreSQL need not scan the rows).
//
// A detach cut off in its second phase (a timeout waiting for older
// transactions) leaves the partition "detach pending", invisible to new
// queries; the next sweep finishes it (DETACH ... FINALIZE) before dropping
// it. Partitions are dropped at once: keeping them detached for a grace
// period is not done.

var (
	_ stores.PartitionSweeper    = (*Store)(nil)
	_ stores.TableHealthReporter = (*Store)(nil)
)

// SweepPartitions drops the partitions of rule.Collection's table wholly
// past rule.Cutoff that nothing keeps (see sqlcore.Core.SweepRangePartitions).
func (s *Store) SweepPartitions(ctx context.Context, rule stores.SweepRule, dryRun bool) (stores.PartitionSweep, error) {
	return s.Core.SweepRangePartitions(ctx, &partitioner{s: s}, rule, dryRun)
}

// partitioner is one partition sweep's view of the catalog.
type partitioner struct {
	s *Store
	// parent is the partitioned table, quoted.
	parent string
	// concurrent: the table has no DEFAULT partition, so partitions can be
	// detached concurrently.
	concurrent bool
	parts      map[string]pgPartition
}

// pgPartition is what dropping (or attaching again) a partition needs.
type pgPartition struct {
	ref     string // schema-qualified, quoted
	bound   string // FOR VALUES FROM (...) TO (...), as pg_get_expr prints it
	pending bool   // an earlier DETACH CONCURRENTLY did not finish
}

// partitionsSQL lists the partitions of $1 (the quoted table, resolved now:
// a cached schema's oid may be a table dropped since) when it is partitioned by range
// on the column $2 alone. Whether a partition's range lies wholly before the
// cutoff $3 is decided in the database: its upper bound, as pg_get_expr
// prints it in this session (a quoted literal, or MAXVALUE), is cast back to
// the column's type (%[1]s) and compared with the cutoff. The estimate sums
// the leaves' reltuples (-1 when one was never analyzed).
const partitionsSQL = `SELECT n.nspname::text, c.relname::text, coalesce(pg_get_expr(c.relpartbound, c.oid), ''), i.inhdetachpending,
	CASE WHEN b.m[2] LIKE '''%%''' THEN replace(substr(b.m[2], 2, length(b.m[2]) - 2), '''''', '''')::%[1]s <= $3::%[1]s ELSE false END,
	coalesce((SELECT CASE WHEN bool_or(lc.reltuples < 0) THEN -1 ELSE sum(lc.reltuples) END::bigint
		FROM pg_partition_tree(c.oid) l JOIN pg_class lc ON lc.oid = l.relid WHERE l.isleaf), -1)
FROM pg_partitioned_table pt
JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
JOIN pg_inherits i ON i.inhparent = pt.partrelid
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \((.+)\) TO \((.+)\)$') AS m) b
WHERE pt.partrelid = to_regclass($1) AND pt.partstrat = 'r' AND pt.partnatts = 1 AND a.attname = $2
ORDER BY 1, 2`

// plannerEstimates fills the estimate of the expired partitions the database
// never analyzed (reltuples -1) with the planner's, which it derives from the
// partition's size on disk without reading it: counting such a partition
// exactly would read all of it, the very work dropping it saves.
func plannerEstimates(ctx context.Context, tx pgx.Tx, parts map[string]pgPartition, out []sqlcore.RangePartition) error {
	for i := range out {
		rp := &out[i]
		if !rp.Expired || rp.Estimate >= 0 {
			continue
		}
		var plan []struct {
			Plan struct {
				Rows float64 `json:"Plan Rows"`
			} `json:"Plan"`
		}
		var doc []byte
		if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) SELECT 1 FROM "+parts[rp.Name].ref).Scan(&doc); err != nil {
			return err
		}
		if err := json.Unmarshal(doc, &plan); err != nil || len(plan) != 1 {
			return fmt.Errorf("reading the planner's estimate of partition %q: %v", rp.Name, err)
		}
		rp.Estimate = int64(plan[0].Plan.Rows)
	}
	return nil
}

// referencesSQL names the foreign keys referring to $1 or one of its
// partitions (the constraints PostgreSQL clones onto partitions left out).
const referencesSQL = `SELECT con.conname::text || ' on ' || con.conrelid::regclass::text
FROM pg_constraint con
WHERE con.contype = 'f' AND con.conparentid = 0 AND con.confrelid IN (SELECT relid FROM pg_partition_tree(to_regclass($1)))
ORDER BY 1`

func (p *partitioner) RangePartitions(ctx context.Context, live *liveSchema, sw sqlcore.Sweep) (sqlcore.RangeTable, error) {
	col := live.column(sw.C, sw.Rule.Field)
	p.parent, p.concurrent, p.parts = tableRef(sw.C), true, map[string]pgPartition{}
	var out sqlcore.RangeTable
	what := fmt.Sprintf("reading the partitions of collection %q", sw.C.Name)
	err := p.s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, fmt.Sprintf(partitionsSQL, col.CastType), p.parent, sw.Rule.Field, sw.Rule.Cutoff.UTC())
		if err != nil {
			return dbError(what, err)
		}
		var schema, name string
		var part pgPartition
		var rp sqlcore.RangePartition
		_, err = pgx.ForEachRow(rows, []any{&schema, &name, &part.bound, &part.pending, &rp.Expired, &rp.Estimate}, func() error {
			out.Partitioned = true
			if part.bound == "DEFAULT" {
				p.concurrent = false
				return nil
			}
			part.ref = quote(schema) + "." + quote(name)
			rp.Name, rp.From = name, part.ref
			p.parts[name] = part
			out.Partitions = append(out.Partitions, rp)
			return nil
		})
		if err != nil {
			return dbError(what, err)
		}
		if !out.Partitioned {
			return nil
		}
		if err := plannerEstimates(ctx, tx, p.parts, out.Partitions); err != nil {
			return dbError(what, err)
		}
		rows, err = tx.Query(ctx, referencesSQL, p.parent)
		if err != nil {
			return dbError(what, err)
		}
		var ref string
		_, err = pgx.ForEachRow(rows, []any{&ref}, func() error {
			out.ReferencedBy = append(out.ReferencedBy, ref)
			return nil
		})
		return orNil(what, err)
	})
	return out, err
}

// orNil is dbError, and nil for nil.
func orNil(what string, err error) error {
	if err == nil {
		return nil
	}
	return dbError(what, err)
}

func (p *partitioner) DropPartitions(ctx context.Context, _ *liveSchema, sw sqlcore.Sweep, parts []sqlcore.RangePartition, check sqlcore.PartitionCheck) (dropped, kept []stores.PartitionOutcome, err error) {
	for _, rp := range parts {
		part := p.parts[rp.Name]
		what := fmt.Sprintf("dropping partition %q of collection %q", rp.Name, sw.C.Name)
		if p.concurrent {
			if err := p.s.detach(ctx, p.parent, part); err != nil {
				return dropped, kept, dbError(what, err)
			}
		}
		var o stores.PartitionOutcome
		var keep bool
		// Waits for an exclusive lock are short: while one waits, it blocks
		// everyone queued behind it.
		lock := min(p.s.opts.LockTimeout, sweepLockTimeout)
		err := p.s.inTxWithTimeouts(ctx, readWrite, lock, p.s.opts.StatementTimeout, "", func(tx pgx.Tx) error {
			locked := part.ref // detached: nobody reaches it through the parent
			if !p.concurrent {
				locked = p.parent // still attached: the DROP needs the parent's lock anyway
			}
			if _, err := tx.Exec(ctx, "LOCK TABLE "+locked+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				return dbError(what, err)
			}
			var err error
			if o, keep, err = check(ctx, pgTx{tx}, rp); err != nil {
				return err
			}
			switch {
			case keep && p.concurrent:
				_, err = tx.Exec(ctx, "ALTER TABLE "+p.parent+" ATTACH PARTITION "+part.ref+" "+part.bound)
			case !keep:
				_, err = tx.Exec(ctx, "DROP TABLE "+part.ref)
			}
			return orNil(what, err)
		})
		if err != nil {
			return dropped, kept, err
		}
		if keep {
			kept = append(kept, o)
		} else {
			dropped = append(dropped, o)
		}
	}
	return dropped, kept, nil
}

// detach detaches part from parent concurrently (or finishes an earlier
// detach), on a connection of its own outside any transaction block, with
// the store's timeouts: the waits of a concurrent detach block no one.
func (s *Store) detach(ctx context.Context, parent string, part pgPartition) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	set := fmt.Sprintf("SELECT set_config('lock_timeout', '%s', false), set_config('statement_timeout', '%s', false)",
		milliseconds(s.opts.LockTimeout), milliseconds(s.opts.StatementTimeout))
	if _, err := conn.Exec(ctx, set); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool with the server's defaults,
		// or not at all.
		for _, reset := range []string{"RESET lock_timeout", "RESET statement_timeout"} {
			if _, err := conn.Exec(context.WithoutCancel(ctx), reset); err != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
				return
			}
		}
	}()
	how := " CONCURRENTLY"
	if part.pending {
		how = " FINALIZE"
	}
	_, err = conn.Exec(ctx, "ALTER TABLE "+parent+" DETACH PARTITION "+part.ref+how)
	return err
}

// TableHealth reports the dead row versions of collection's table (summed
// over its partitions) from pg_stat_user_tables, and its last (auto)vacuum:
// for a partitioned table the earliest of its partitions' (every partition
// has been vacuumed since), zero if one never was. The statistics lag the
// changes by up to a second (PostgreSQL flushes them asynchronously).
func (s *Store) TableHealth(ctx context.Context, collection string) (stores.TableHealth, error) {
	c, ok := s.m.Get(collection)
	if !ok {
		return stores.TableHealth{}, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, collection)
	}
	// pg_partition_tree lists nothing for a table that is not partitioned.
	const q = `SELECT count(*), coalesce(sum(st.n_dead_tup), 0)::bigint,
	count(greatest(st.last_vacuum, st.last_autovacuum)), min(greatest(st.last_vacuum, st.last_autovacuum))
FROM (SELECT l.relid FROM pg_partition_tree(to_regclass($1)) l WHERE l.isleaf
	UNION SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind <> 'p') t
JOIN pg_stat_user_tables st ON st.relid = t.relid`
	var leaves, vacuumed int64
	var h stores.TableHealth
	var last *time.Time
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, q, tableRef(c)).Scan(&leaves, &h.DeadRows, &vacuumed, &last)
	})
	if err != nil {
		return stores.TableHealth{}, dbError(fmt.Sprintf("reading the statistics of collection %q", collection), err)
	}
	if leaves == 0 {
		return stores.TableHealth{}, fmt.Errorf("%w: collection %q: table %s does not exist", stores.ErrInvalid, collection, c.Table)
	}
	h.Known = true
	if last != nil && vacuumed == leaves {
		h.LastVacuum = last.UTC()
	}
	return h, nil
}
