package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Partition sweeps (see sqlcore/partitions.go for what is dropped and what
// kept). The expired partitions of a table without a DEFAULT partition go in
// three steps:
//
//  1. One transaction marks each with a comment (detachMark) naming the
//     parent (schema-qualified) and the partition's bound, the partition's
//     own comment kept after it.
//  2. ALTER TABLE parent DETACH PARTITION p CONCURRENTLY, one partition at a
//     time: it takes only a SHARE UPDATE EXCLUSIVE lock on the parent, so the
//     application's reads and writes go on; it cannot run in a transaction
//     block, so it runs on a plain connection of the pool, with the store's
//     lock and statement timeouts.
//  3. One transaction locks the detached tables, checks each again (no one
//     writes to them through the parent any more), drops those nothing
//     keeps in one DROP TABLE, and attaches the others again with the bound
//     the catalog gave (cheap: the detach left a CHECK constraint matching
//     it, so PostgreSQL need not scan the rows), their comments as they were.
//
// What an interrupted sweep leaves, the next one of the collection (not a
// dry run) puts back before it reads the partitions (RecoverPartitions),
// and then sweeps as any partition:
//   - a table marked as detached from this parent (a crash, a lost
//     connection or a timeout between the detach and the drop) is attached
//     again;
//   - a partition "detach pending" (a detach cut off in its second phase,
//     waiting for older transactions), invisible to new queries, is
//     detached (DETACH ... FINALIZE) and attached again;
//   - a partition marked and never detached gets its comment back.
// So expired rows are not left for good in a table no sweep looks at, nor
// held rows out of the application's sight, as long as the collection is
// swept again. Two sweeps of one table never run at once: a real one holds
// an advisory lock on the parent, on a connection of its own, from its
// recovery to its drop (sweepLock). Bounds are printed and read in ISO
// dates and UTC (isoDates).
//
// PostgreSQL refuses a concurrent detach when the table has a DEFAULT
// partition: each partition is then dropped in one transaction holding the
// parent's ACCESS EXCLUSIVE lock for the check and the DROP (waiting at most
// sweepLockTimeout for it).
//
// Partitions are dropped at once, never kept detached for a grace period:
// erasure reaches rows through the mapped table, so a subject's rows in a
// detached table would outlive a receipt saying they are gone.

var (
	_ stores.PartitionSweeper    = (*Store)(nil)
	_ stores.TableHealthReporter = (*Store)(nil)

	_ sqlcore.PartitionRecoverer[liveSchema] = (*partitioner)(nil)
)

// SweepPartitions drops the partitions of rule.Collection's table wholly
// past rule.Cutoff that nothing keeps (see sqlcore.Core.SweepRangePartitions).
func (s *Store) SweepPartitions(ctx context.Context, rule stores.SweepRule, dryRun bool) (stores.PartitionSweep, error) {
	p := &partitioner{s: s}
	if !dryRun {
		unlock, locked, err := s.sweepLock(ctx, rule.Collection)
		if err != nil {
			return stores.PartitionSweep{}, err
		}
		defer unlock()
		p.locked = locked
	}
	return s.Core.SweepRangePartitions(ctx, p, rule, dryRun)
}

// sweepLockKeySQL is the advisory lock key of the partitioned table $1
// names (no row for a table that is not partitioned, or none).
const sweepLockKeySQL = `SELECT hashtextextended('lethe partition sweep ' || oid::text, 0) FROM pg_class
WHERE oid = to_regclass($1) AND relkind = 'p'`

// sweepLock holds the advisory lock of collection's table, if it is
// partitioned (locked), until unlock: another partition sweep of the same
// table (a rule of another policy) fails while one runs, rather than take
// the marks and detached tables of a sweep in progress for those of an
// interrupted one. The lock lives on a connection of its own, opened as the
// pool's are (same dialer, same TLS) but outside the pool: a sweep holding a
// pooled connection for its whole run while it needs others would let a few
// sweeps at once take the whole pool and wait for each other for ever.
// Should the unlock fail, closing the connection lets the lock go.
func (s *Store) sweepLock(ctx context.Context, collection string) (unlock func(), locked bool, err error) {
	nothing := func() {}
	c, ok := s.m.Get(collection)
	if !ok {
		return nothing, false, nil // the sweep says what is wrong
	}
	what := fmt.Sprintf("locking the partition sweeps of collection %q", collection)
	// Most tables are not partitioned: a pooled connection says so without
	// opening one.
	var key int64
	switch err := s.pool.QueryRow(ctx, sweepLockKeySQL, tableRef(c)).Scan(&key); {
	case errors.Is(err, pgx.ErrNoRows):
		return nothing, false, nil
	case err != nil:
		return nil, false, dbError(what, err)
	}
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, false, dbError(what, err)
	}
	release := func(unlock bool) {
		done, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if unlock {
			// At once, not when the server notices the closed connection:
			// the next sweep may start right after this one.
			_, _ = conn.Exec(done, "SELECT pg_advisory_unlock($1)", key)
		}
		_ = conn.Close(done)
	}
	var free bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&free); err != nil || !free {
		release(false)
		if err != nil {
			return nil, false, dbError(what, err)
		}
		return nil, false, fmt.Errorf("%w: %s: another partition sweep of the collection's table is running", stores.ErrUnavailable, what)
	}
	return func() { release(true) }, true, nil
}

// partitioner is one partition sweep's view of the catalog.
type partitioner struct {
	s *Store
	// locked: the sweep holds the table's lock (sweepLock), which it takes
	// when the table is partitioned and the sweep no dry run.
	locked bool
	// parent is the partitioned table, quoted.
	parent string
	// concurrent: the table has no DEFAULT partition, so partitions can be
	// detached concurrently.
	concurrent bool
	// qualified is the parent's schema-qualified name as the catalog
	// quotes it, which detachMark names.
	qualified string
	parts     map[string]pgPartition
}

// pgPartition is what dropping (or attaching again) a partition needs.
type pgPartition struct {
	ref     string // schema-qualified, quoted
	bound   string // FOR VALUES FROM (...) TO (...), as pg_get_expr prints it
	comment string // the partition's own comment, without a detachMark
}

// partitionsSQL lists the partitions of $1 (the quoted table, resolved now:
// a cached schema's oid may be a table dropped since) when it is partitioned by range
// on the column $2 alone. Whether a partition's range lies wholly before the
// cutoff $3 is decided in the database: its upper bound, as pg_get_expr
// prints it in this session (a quoted literal, or MAXVALUE), is cast back to
// the column's type (%[1]s) and compared with the cutoff. The estimate sums
// the leaves' reltuples (-1 when one was never analyzed).
const partitionsSQL = `SELECT ` + qualifiedParentSQL + `, n.nspname::text, c.relname::text, coalesce(pg_get_expr(c.relpartbound, c.oid), ''),
	coalesce(obj_description(c.oid, 'pg_class'), ''),
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
ORDER BY 2, 3`

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
	err := p.s.inTxWithTimeouts(ctx, readOnly, p.s.opts.LockTimeout, p.s.opts.StatementTimeout, isoDates, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, fmt.Sprintf(partitionsSQL, col.CastType), p.parent, sw.Rule.Field, sw.Rule.Cutoff.UTC())
		if err != nil {
			return dbError(what, err)
		}
		var schema, name string
		var part pgPartition
		var rp sqlcore.RangePartition
		_, err = pgx.ForEachRow(rows, []any{&p.qualified, &schema, &name, &part.bound, &part.comment, &rp.Expired, &rp.Estimate}, func() error {
			out.Partitioned = true
			if part.bound == "DEFAULT" {
				p.concurrent = false
				return nil
			}
			// A mark left by a sweep cut off before its detach.
			_, part.comment = splitDetachMark(part.comment)
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
	if !p.concurrent {
		for _, rp := range parts {
			o, keep, err := p.dropUnderParentLock(ctx, sw, rp, check)
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
	what := fmt.Sprintf("dropping %d partition(s) of collection %q", len(parts), sw.C.Name)
	if err := p.mark(ctx, what, parts); err != nil {
		return nil, nil, err
	}
	n, detachErr := p.detachAll(ctx, parts)
	// A failed detach may have left its partition detach pending: it keeps
	// its mark; those never tried get their comments back.
	untried := parts[min(n+1, len(parts)):]
	// Once partitions are detached, their drop is not cut short by the
	// sweep's end (a shutdown): it has its own time limit.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*p.s.opts.StatementTimeout)
	defer cancel()
	dropped, kept, err = p.dropDetached(dctx, what, parts[:n], untried, check)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the %d partition(s) detached so far stay detached, marked, until the next sweep of the collection attaches them again and decides about them: %w", what, n, err)
	}
	if detachErr != nil {
		return dropped, kept, dbError(fmt.Sprintf("detaching partition %q of collection %q", parts[n].Name, sw.C.Name), detachErr)
	}
	return dropped, kept, nil
}

// dropUnderParentLock checks and drops (or keeps) one partition still
// attached, in one transaction holding the parent's lock: the DROP needs it
// anyway.
func (p *partitioner) dropUnderParentLock(ctx context.Context, sw sqlcore.Sweep, rp sqlcore.RangePartition, check sqlcore.PartitionCheck) (o stores.PartitionOutcome, keep bool, err error) {
	what := fmt.Sprintf("dropping partition %q of collection %q", rp.Name, sw.C.Name)
	err = p.s.inTxWithTimeouts(ctx, readWrite, p.exclusiveLockTimeout(), p.s.opts.StatementTimeout, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+p.parent+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return dbError(what, err)
		}
		var err error
		if o, keep, err = check(ctx, pgTx{tx}, rp); err != nil || keep {
			return err
		}
		_, err = tx.Exec(ctx, "DROP TABLE "+p.parts[rp.Name].ref)
		return orNil(what, err)
	})
	return o, keep, err
}

// exclusiveLockTimeout bounds the waits for an exclusive lock: while one
// waits, it blocks everyone queued behind it.
func (p *partitioner) exclusiveLockTimeout() time.Duration {
	return min(p.s.opts.LockTimeout, sweepLockTimeout)
}

// mark comments each of parts with its detachMark, in one transaction.
func (p *partitioner) mark(ctx context.Context, what string, parts []sqlcore.RangePartition) error {
	return p.s.inTx(ctx, readWrite, func(tx pgx.Tx) error {
		for _, rp := range parts {
			part := p.parts[rp.Name]
			if _, err := tx.Exec(ctx, commentSQL(part.ref, detachMark(p.qualified, part.bound)+"\n"+part.comment)); err != nil {
				return dbError(what+": marking them", err)
			}
		}
		return nil
	})
}

// detachAll detaches parts one after the other on one connection, and
// returns how many it detached, up to an error.
func (p *partitioner) detachAll(ctx context.Context, parts []sqlcore.RangePartition) (int, error) {
	conn, err := p.s.timedConn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.release(ctx)
	for i, rp := range parts {
		if _, err := conn.Exec(ctx, "ALTER TABLE "+p.parent+" DETACH PARTITION "+p.parts[rp.Name].ref+" CONCURRENTLY"); err != nil {
			return i, err
		}
	}
	return len(parts), nil
}

// dropDetached checks the detached partitions again in one transaction,
// drops those nothing keeps, attaches the others again, and puts back the
// comments of those a failed detach left untried.
func (p *partitioner) dropDetached(ctx context.Context, what string, detached, untried []sqlcore.RangePartition, check sqlcore.PartitionCheck) (dropped, kept []stores.PartitionOutcome, err error) {
	err = p.s.inTxWithTimeouts(ctx, readWrite, p.exclusiveLockTimeout(), p.s.opts.StatementTimeout, isoDates, func(tx pgx.Tx) error {
		exec := func(sql string) error {
			_, err := tx.Exec(ctx, sql)
			return orNil(what, err)
		}
		dropped, kept = nil, nil
		var drop []string
		var attach []pgPartition
		if len(detached) > 0 {
			var refs []string
			for _, rp := range detached {
				refs = append(refs, p.parts[rp.Name].ref)
			}
			// Detached: nobody reaches them through the parent.
			if err := exec("LOCK TABLE " + strings.Join(refs, ", ") + " IN ACCESS EXCLUSIVE MODE"); err != nil {
				return err
			}
		}
		for _, rp := range detached {
			o, keep, err := check(ctx, pgTx{tx}, rp)
			if err != nil {
				return err
			}
			if keep {
				kept = append(kept, o)
				attach = append(attach, p.parts[rp.Name])
			} else {
				dropped = append(dropped, o)
				drop = append(drop, p.parts[rp.Name].ref)
			}
		}
		if len(drop) > 0 {
			if err := exec("DROP TABLE " + strings.Join(drop, ", ")); err != nil {
				return err
			}
		}
		if err := attachAgain(ctx, tx, p.parent, attach); err != nil {
			return orNil(what, err)
		}
		for _, rp := range untried {
			part := p.parts[rp.Name]
			if err := exec(commentSQL(part.ref, part.comment)); err != nil {
				return err
			}
		}
		return nil
	})
	return dropped, kept, err
}

// attachAgain attaches parts to parent with their bounds and comments as
// they were.
func attachAgain(ctx context.Context, tx pgx.Tx, parent string, parts []pgPartition) error {
	for _, part := range parts {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+parent+" ATTACH PARTITION "+part.ref+" "+part.bound); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, commentSQL(part.ref, part.comment)); err != nil {
			return err
		}
	}
	return nil
}

// A detach mark is the first line of the comment of a partition a sweep is
// detaching: detachMarkPrefix, the parent's schema-qualified name (a name,
// not an oid, survives a dump and restore taken mid-sweep), and the
// partition's bound. The partition's own comment follows on the next lines.
const detachMarkPrefix = "lethe: detached from table "

func detachMark(parent, bound string) string {
	return detachMarkPrefix + parent + " " + bound
}

// qualifiedParentSQL is the schema-qualified name, as detachMark writes it,
// of the table $1 names (NULL when there is none).
const qualifiedParentSQL = `(SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname)
	FROM pg_class pc JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE pc.oid = to_regclass($1))`

// isoDates makes a partition transaction print and read bounds the same way
// whatever the session's defaults (set_config list for BEGIN): a bound goes
// from pg_get_expr into a mark, and back into ATTACH PARTITION.
const isoDates = ", set_config('datestyle', 'ISO, YMD', true), set_config('timezone', 'UTC', true)"

// splitDetachMark splits a comment into its detach mark (or "") and the
// rest.
func splitDetachMark(comment string) (mark, rest string) {
	if !strings.HasPrefix(comment, detachMarkPrefix) {
		return "", comment
	}
	mark, rest, _ = strings.Cut(comment, "\n")
	return mark, rest
}

// markedBound is the bound a detach mark names for a table detached from
// parent, if it is one PostgreSQL could have printed for a date or time
// partition: it goes into DDL, and anyone who can comment on a table can
// write a comment.
var markedBound = regexp.MustCompile(`^FOR VALUES FROM \((MINVALUE|'[0-9A-Za-z :+.\-]*')\) TO \((MAXVALUE|'[0-9A-Za-z :+.\-]*')\)$`)

func boundOf(mark, parent string) (string, bool) {
	bound, ok := strings.CutPrefix(mark, detachMarkPrefix+parent+" ")
	return bound, ok && markedBound.MatchString(bound)
}

// commentSQL sets (or, for "", removes) a table's comment. COMMENT takes
// no parameters: the text is an escape string literal, each backslash and
// quote doubled.
func commentSQL(ref, comment string) string {
	if comment == "" {
		return "COMMENT ON TABLE " + ref + " IS NULL"
	}
	return "COMMENT ON TABLE " + ref + " IS E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(comment) + "'"
}

// leftDetachedSQL lists what interrupted sweeps left of the partitions of
// $1 (quoted, resolved now), $2 being detachMarkPrefix, in a state column:
//   - detached: a table, not a partition (a partitioned one too: a partition
//     with partitions of its own), whose comment marks it as detached from
//     $1; its bound is in the mark;
//   - pending: a partition of $1 "detach pending";
//   - marked: a partition of $1 still attached with a mark (a sweep cut off
//     before its detach), whose comment only is put back.
const leftDetachedSQL = `SELECT n.nspname::text, c.relname::text, d.description, '', 'detached'
FROM pg_description d
JOIN pg_class c ON c.oid = d.objoid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
	AND starts_with(d.description, $2 || ` + qualifiedParentSQL + ` || ' ')
UNION ALL
SELECT n.nspname::text, c.relname::text, coalesce(obj_description(c.oid, 'pg_class'), ''), pg_get_expr(c.relpartbound, c.oid),
	CASE WHEN i.inhdetachpending THEN 'pending' ELSE 'marked' END
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = to_regclass($1)
	AND (i.inhdetachpending OR starts_with(obj_description(c.oid, 'pg_class'), $2))
ORDER BY 1, 2`

// leftDetached is a partition an interrupted sweep left behind, in the
// state leftDetachedSQL names.
type leftDetached struct {
	pgPartition
	name, state string
}

// RecoverPartitions puts back as they were the partitions of sw's table
// interrupted sweeps left behind, in one transaction: detached ones (marked,
// not dropped) and detach pending ones (finished first) are attached again,
// and the marks of those still attached removed. Should the transaction
// fail, each stays as it was, to be found again. The sweep that follows then
// decides about them as about any partition.
func (p *partitioner) RecoverPartitions(ctx context.Context, _ *liveSchema, sw sqlcore.Sweep) error {
	if !p.locked {
		return nil // not partitioned: nothing to put back, and no read to spend on it
	}
	parent := tableRef(sw.C)
	what := fmt.Sprintf("putting back the partitions of collection %q an interrupted sweep left detached", sw.C.Name)
	left, err := p.leftDetached(ctx, what, parent)
	if err != nil || len(left) == 0 {
		return err
	}
	var names []string
	for _, l := range left {
		names = append(names, l.name)
	}
	what = fmt.Sprintf("%s (%s)", what, strings.Join(names, ", "))
	return p.s.inTxWithTimeouts(ctx, readWrite, p.exclusiveLockTimeout(), p.s.opts.StatementTimeout, isoDates, func(tx pgx.Tx) error {
		for _, l := range left {
			var err error
			switch l.state {
			case "pending":
				if _, err = tx.Exec(ctx, "ALTER TABLE "+parent+" DETACH PARTITION "+l.ref+" FINALIZE"); err == nil {
					err = attachAgain(ctx, tx, parent, []pgPartition{l.pgPartition})
				}
			case "detached":
				err = attachAgain(ctx, tx, parent, []pgPartition{l.pgPartition})
			default: // marked, still attached
				_, err = tx.Exec(ctx, commentSQL(l.ref, l.comment))
			}
			if err != nil {
				return dbError(what, err)
			}
		}
		return nil
	})
}

// leftDetached reads what interrupted sweeps left of parent's partitions
// (leftDetachedSQL), and refuses a mark whose bound Lethe did not write.
func (p *partitioner) leftDetached(ctx context.Context, what, parent string) ([]leftDetached, error) {
	var qualified *string
	var left []leftDetached
	err := p.s.inTxWithTimeouts(ctx, readOnly, p.s.opts.LockTimeout, p.s.opts.StatementTimeout, isoDates, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT "+qualifiedParentSQL, parent).Scan(&qualified); err != nil || qualified == nil {
			return orNil(what, err)
		}
		rows, err := tx.Query(ctx, leftDetachedSQL, parent, detachMarkPrefix)
		if err != nil {
			return dbError(what, err)
		}
		var schema string
		var l leftDetached
		_, err = pgx.ForEachRow(rows, []any{&schema, &l.name, &l.comment, &l.bound, &l.state}, func() error {
			l.ref = quote(schema) + "." + quote(l.name)
			left = append(left, l)
			return nil
		})
		return orNil(what, err)
	})
	if err != nil {
		return nil, err
	}
	for i := range left {
		l := &left[i]
		mark, rest := splitDetachMark(l.comment)
		l.comment = rest
		if l.state != "detached" {
			continue
		}
		var ok bool
		if l.bound, ok = boundOf(mark, *qualified); !ok {
			return nil, fmt.Errorf("%w: table %s is marked as detached from collection's table %s with a bound Lethe did not write; attach it by hand, or drop it, and remove the first line of its comment", stores.ErrInvalid, l.ref, parent)
		}
	}
	return left, nil
}

// timedConn is a connection of the pool of its own, outside any
// transaction block, with the store's lock and statement timeouts: for a
// concurrent detach, which cannot run in a transaction block. While it
// waits it holds a SHARE UPDATE EXCLUSIVE lock on the parent, which blocks
// no read or write of the application's.
type timedConn struct{ *pgxpool.Conn }

func (s *Store) timedConn(ctx context.Context) (timedConn, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return timedConn{}, err
	}
	set := fmt.Sprintf("SELECT set_config('lock_timeout', '%s', false), set_config('statement_timeout', '%s', false)",
		milliseconds(s.opts.LockTimeout), milliseconds(s.opts.StatementTimeout))
	if _, err := conn.Exec(ctx, set); err != nil {
		conn.Release()
		return timedConn{}, err
	}
	return timedConn{conn}, nil
}

// release gives the connection back to the pool with the server's
// defaults, or closes it.
func (c timedConn) release(ctx context.Context) {
	defer c.Release()
	for _, reset := range []string{"RESET lock_timeout", "RESET statement_timeout"} {
		if _, err := c.Exec(context.WithoutCancel(ctx), reset); err != nil {
			_ = c.Conn.Conn().Close(context.WithoutCancel(ctx))
			return
		}
	}
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
