package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Retention sweeps batch as the PostgreSQL engine's do (and as pt-archiver
// --bulk-delete does): one short transaction finds the key of the batch's
// last expired row, then changes the expired rows up to it in one statement
// that restates the whole condition, so a row changed meanwhile is judged on
// its new version:
//
//	SELECT pk FROM t WHERE pk > ? AND field < ? [AND where...] [AND pk NOT IN (held)] ORDER BY pk LIMIT 1 OFFSET n-1
//	DELETE FROM t WHERE pk > ? AND pk <= ? AND field < ? [AND where...] [AND pk NOT IN (held)]
//
// InnoDB waits at least a second for a row lock; a batch that times out is
// redone locking the range's rows with FOR UPDATE SKIP LOCKED (MariaDB 10.6,
// MySQL 8.0) and changing them by key, leaving the locked rows for the next
// run. The cursor is the batch's last key, sealed by sqlcore.SealCursor.

// Sweep transactions are short, and fail rather than queue behind a lock.
const (
	// fastLockTimeout is InnoDB's shortest lock wait: a range statement
	// waiting longer is redone skipping locked rows.
	fastLockTimeout       = time.Second
	sweepLockTimeout      = 2 * time.Second
	sweepStatementTimeout = 30 * time.Second
	// maxInlineHeld bounds the held keys a range statement binds (a prepared
	// statement takes at most 65,535 parameters); a rule holding more is
	// swept by key.
	maxInlineHeld = 10000
)

// lockWaitTimeout is MySQL error 1205, raised when innodb_lock_wait_timeout expires.
const lockWaitTimeout = 1205

var _ stores.Sweeper = (*Store)(nil)

// SweepBatch deletes or anonymizes at most rule.BatchSize rows past their
// period after cursor ("" to start).
func (s *Store) SweepBatch(ctx context.Context, rule stores.SweepRule, cursor string) (stores.SweepBatch, error) {
	var out stores.SweepBatch
	err := s.withSweepSchema(ctx, func(live *liveSchema) error {
		q, err := s.sweepQuery(live, rule)
		if err != nil {
			return err
		}
		if len(rule.HeldKeys) > maxInlineHeld {
			out, err = s.sweepByKeys(ctx, q, cursor)
		} else {
			out, err = s.sweepRange(ctx, q, cursor)
		}
		return err
	})
	if err != nil {
		return stores.SweepBatch{}, err
	}
	return out, nil
}

// sweepRange changes the expired rows of the batch's key range in one statement.
func (s *Store) sweepRange(ctx context.Context, q *sweepQuery, cursor string) (stores.SweepBatch, error) {
	after := sqlcore.OpenCursor(s.key, q.C.Name, cursor)
	out := stores.SweepBatch{Cursor: cursor}
	var last string
	found, locked := false, false
	err := s.inSweepTx(ctx, readWrite, fastLockTimeout, func(tx *sql.Tx) error {
		var err error
		if last, found, err = q.lastKey(ctx, tx, after); err != nil {
			return err
		}
		out.Rows, locked, err = q.changeRange(ctx, tx, after, last, found)
		return err
	})
	if locked {
		// Redo the range without waiting for the locked rows.
		err = s.inSweepTx(ctx, readWrite, sweepLockTimeout, func(tx *sql.Tx) error {
			keys, err := q.pick(ctx, tx, after, last, found)
			if err == nil {
				out.Rows, err = q.change(ctx, tx, keys)
			}
			return err
		})
	}
	if err != nil {
		return stores.SweepBatch{}, err
	}
	out.Done = !found
	if found {
		out.Cursor, err = sqlcore.SealCursor(s.key, q.C.Name, last)
	}
	return out, err
}

// sweepByKeys picks at most BatchSize expired rows after the cursor (locking
// them, skipping locked ones) and changes those not held, by key. Held rows
// are picked, so the cursor moves past them.
func (s *Store) sweepByKeys(ctx context.Context, q *sweepQuery, cursor string) (stores.SweepBatch, error) {
	out := stores.SweepBatch{Cursor: cursor}
	err := s.inSweepTx(ctx, readWrite, sweepLockTimeout, func(tx *sql.Tx) error {
		picked, err := q.pick(ctx, tx, sqlcore.OpenCursor(s.key, q.C.Name, cursor), "", false)
		if err != nil {
			return err
		}
		if out.Rows, err = q.change(ctx, tx, sqlcore.Without(picked, q.Rule.HeldKeys)); err != nil {
			return err
		}
		out.Done = len(picked) < q.BatchSize
		if len(picked) > 0 {
			out.Cursor, err = sqlcore.SealCursor(s.key, q.C.Name, picked[len(picked)-1])
		}
		return err
	})
	if err != nil {
		return stores.SweepBatch{}, err
	}
	return out, nil
}

// CountPastPeriod counts the rows the rule would still act on: past their
// period, meeting every where condition, not held, and (anonymize) not masked yet.
func (s *Store) CountPastPeriod(ctx context.Context, rule stores.SweepRule) (int64, error) {
	var n int64
	err := s.withSweepSchema(ctx, func(live *liveSchema) error {
		q, err := s.sweepQuery(live, rule)
		if err != nil {
			return err
		}
		return s.inSweepTx(ctx, readOnly, sweepLockTimeout, func(tx *sql.Tx) error {
			var err error
			if n, err = q.count(ctx, tx, nil); err != nil {
				return err
			}
			for _, chunk := range chunks(rule.HeldKeys) {
				held, err := q.count(ctx, tx, func(p *masking.Params) string { return keyIn(q.pk, quote(q.C.PrimaryKey), chunk, p) })
				if err != nil {
					return err
				}
				n -= held
			}
			return nil
		})
	})
	return n, err
}

// SubjectKeys returns the primary keys (as text) of the subject's rows in a
// collection, found as erasure finds them: through the identity columns and
// down the cascade references. A subject none of whose identity types this
// store maps has no rows here.
func (s *Store) SubjectKeys(ctx context.Context, subject map[string]string, collection string) ([]string, error) {
	return sqlcore.SubjectKeys(s.m, subject, collection, func() (rows sqlcore.Rows, err error) {
		err = s.inTxWithSchema(ctx, readOnly, func(tx *sql.Tx, live *liveSchema) error {
			rows, err = finder{s: s, tx: tx, live: live}.resolve(ctx, subject)
			return err
		})
		return rows, err
	})
}

// inSweepTx is inTx with the sweep's short timeouts (never longer than the store's).
func (s *Store) inSweepTx(ctx context.Context, opts *sql.TxOptions, lockTimeout time.Duration, fn func(*sql.Tx) error) error {
	return s.inTxWithTimeouts(ctx, opts, min(s.lockTimeout, lockTimeout), min(s.statementTimeout, sweepStatementTimeout), fn)
}

// withSweepSchema calls fn with the live schema checked against the data map
// (a sweep never acts on a schema that drifted): the cached one, or one read
// in a transaction of its own, as a batch may run more than one.
func (s *Store) withSweepSchema(ctx context.Context, fn func(*liveSchema) error) error {
	return s.schema.With(func() (*liveSchema, error) { return s.readSchema(ctx) }, fn)
}

// sweepQuery is a rule checked against the live schema, ready to render.
type sweepQuery struct {
	sqlcore.Sweep
	live  *liveSchema
	pk    column
	store *Store
}

func (s *Store) sweepQuery(live *liveSchema, rule stores.SweepRule) (*sweepQuery, error) {
	sw, err := sqlcore.CheckSweep(s.m, rule, live.sweptTable)
	if err != nil {
		return nil, err
	}
	return &sweepQuery{Sweep: sw, live: live, pk: live.column(sw.C, sw.C.PrimaryKey), store: s}, nil
}

// sweptTable is c's table as a rule's fields are looked up in: only names
// admission would accept, since rules name columns the map may not.
func (l *liveSchema) sweptTable(c *datamap.Collection) sqlcore.Table {
	t := l.tables[c.Name]
	return sqlcore.Table{Name: c.Table, Column: func(name string) (masking.ColumnInfo, bool) {
		col, ok := t.column(name)
		return col.ColumnInfo, ok && identifierPattern.MatchString(name)
	}}
}

// expired renders the condition on the rows the rule acts on (the cursor
// aside), held keys included when inline.
func (q *sweepQuery) expired(p *masking.Params, held bool) (string, error) {
	conds := []string{quote(q.Rule.Field) + " < " + p.Add(q.Rule.Cutoff.UTC())}
	for _, w := range q.Rule.Where {
		if w.IsNull {
			conds = append(conds, quote(w.Field)+" IS NULL")
		} else {
			conds = append(conds, quote(w.Field)+" IS NOT NULL")
		}
	}
	if held && len(q.Rule.HeldKeys) > 0 {
		conds = append(conds, "NOT ("+keyIn(q.pk, quote(q.C.PrimaryKey), q.Rule.HeldKeys, p)+")")
	}
	if q.Rule.Action == stores.ActionAnonymize {
		masked, err := q.masked(p)
		if err != nil {
			return "", err
		}
		if masked != "" {
			conds = append(conds, "NOT ("+masked+")")
		}
	}
	return strings.Join(conds, " AND "), nil
}

// masked tests whether a row's fields already hold their masked values, so a
// sweep anonymizes each row once and the compliance gap reaches zero. Values
// masked by hash are recognised by their shape (a 64-character hex digest);
// randomize leaves nothing to recognise, so it does not take part: a rule
// whose fields are all randomized masks its expired rows again on every run.
func (q *sweepQuery) masked(p *masking.Params) (string, error) {
	var tests []string
	for _, f := range q.Fields {
		ref := quote(f.Name)
		switch f.Masking.Strategy {
		case privacyv1.MaskRandomize:
			continue
		case privacyv1.MaskHash:
			// A binary string: REGEXP is case-sensitive, so only lower-case hex passes.
			tests = append(tests, fmt.Sprintf("(%s IS NULL OR %s REGEXP '^[0-9a-f]{64}$')", ref, binaryText(ref)))
		default:
			exprs, err := q.store.maskExpressions(q.live, q.C, []datamap.Field{f}, p)
			if err != nil {
				return "", err
			}
			tests = append(tests, "NOT "+distinct(q.live.column(q.C, f.Name), ref, exprs[0]))
		}
	}
	return strings.Join(tests, " AND "), nil
}

// inRange renders the key range (after, last] ("" after: from the start;
// without last: to the end) followed by " AND ", or "".
func (q *sweepQuery) inRange(after, last string, bounded bool, p *masking.Params) string {
	pk := quote(q.C.PrimaryKey)
	var conds []string
	if after != "" {
		conds = append(conds, pk+" > "+keyParam(q.pk, after, p))
	}
	if bounded {
		conds = append(conds, pk+" <= "+keyParam(q.pk, last, p))
	}
	if len(conds) == 0 {
		return ""
	}
	return strings.Join(conds, " AND ") + " AND "
}

// lastKey finds the key of the batch's last row: the BatchSize-th expired row
// after the key after. found is false when fewer are left.
func (q *sweepQuery) lastKey(ctx context.Context, tx *sql.Tx, after string) (last string, found bool, err error) {
	p := masking.NewParams(masking.MySQL)
	from := q.inRange(after, "", false, p)
	expired, err := q.expired(p, true)
	if err != nil {
		return "", false, err
	}
	pk := quote(q.C.PrimaryKey)
	query := fmt.Sprintf("SELECT %s FROM %s WHERE %s%s ORDER BY %s LIMIT 1 OFFSET %d",
		textOf(q.pk, pk), tableRef(q.C), from, expired, pk, q.BatchSize-1)
	switch err := tx.QueryRowContext(ctx, query, p.Values()...).Scan(&last); {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, dbError(fmt.Sprintf("sweeping collection %q", q.C.Name), err)
	}
	return last, true, nil
}

// changeRange deletes or masks the expired rows of the key range (after,
// last], or after "after" when not bounded (the final batch). locked reports
// that it failed waiting for a row another transaction holds.
func (q *sweepQuery) changeRange(ctx context.Context, tx *sql.Tx, after, last string, bounded bool) (n int64, locked bool, err error) {
	p := masking.NewParams(masking.MySQL)
	var set string
	if q.Rule.Action == stores.ActionAnonymize {
		if set, err = q.assignments(p); err != nil {
			return 0, false, err
		}
	}
	where := q.inRange(after, last, bounded, p)
	expired, err := q.expired(p, true)
	if err != nil {
		return 0, false, err
	}
	stmt := statement{"DELETE FROM " + tableRef(q.C) + " WHERE " + where + expired, p.Values()}
	if q.Rule.Action == stores.ActionAnonymize {
		stmt.sql = fmt.Sprintf("UPDATE %s SET %s WHERE %s%s", tableRef(q.C), set, where, expired)
	}
	if n, err = runStatement(ctx, tx, stmt, true); err != nil {
		var myErr *gomysql.MySQLError
		locked = errors.As(err, &myErr) && myErr.Number == lockWaitTimeout
		return 0, locked, dbError(fmt.Sprintf("sweeping collection %q", q.C.Name), err)
	}
	return n, false, nil
}

// assignments renders anonymize's SET list.
func (q *sweepQuery) assignments(p *masking.Params) (string, error) {
	sets, err := q.store.maskExpressions(q.live, q.C, q.Fields, p)
	if err != nil {
		return "", err
	}
	for i, f := range q.Fields {
		sets[i] = quote(f.Name) + " = " + sets[i]
	}
	return strings.Join(sets, ", "), nil
}

// pick locks and returns the keys of at most BatchSize expired rows after the
// key after (up to last when bounded), skipping rows others have locked.
// Held keys are left out only when inline.
func (q *sweepQuery) pick(ctx context.Context, tx *sql.Tx, after, last string, bounded bool) ([]string, error) {
	p := masking.NewParams(masking.MySQL)
	where := q.inRange(after, last, bounded, p)
	expired, err := q.expired(p, len(q.Rule.HeldKeys) <= maxInlineHeld)
	if err != nil {
		return nil, err
	}
	pk := quote(q.C.PrimaryKey)
	query := fmt.Sprintf("SELECT %s FROM %s WHERE %s%s ORDER BY %s LIMIT %d FOR UPDATE SKIP LOCKED",
		textOf(q.pk, pk), tableRef(q.C), where, expired, pk, q.BatchSize)
	keys, err := queryStrings(ctx, tx, query, p.Values())
	if err != nil {
		return nil, dbError(fmt.Sprintf("sweeping collection %q", q.C.Name), err)
	}
	return keys, nil
}

// change deletes or masks the rows of keys, by primary key.
func (q *sweepQuery) change(ctx context.Context, tx *sql.Tx, keys []string) (int64, error) {
	statements, err := changeByKeys(q.live, q.C, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		if q.Rule.Action == stores.ActionDelete {
			return "DELETE FROM " + tableRef(q.C) + " WHERE " + keyCond(p), nil
		}
		set, err := q.assignments(p)
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(q.C), set, keyCond(p)), err
	})
	if err != nil {
		return 0, err
	}
	var rows int64
	for _, stmt := range statements {
		n, err := runStatement(ctx, tx, stmt, true)
		if err != nil {
			return 0, dbError(fmt.Sprintf("sweeping collection %q", q.C.Name), err)
		}
		rows += n
	}
	return rows, nil
}

// count counts the expired rows, narrowed by the extra condition when given.
func (q *sweepQuery) count(ctx context.Context, tx *sql.Tx, extra func(*masking.Params) string) (int64, error) {
	p := masking.NewParams(masking.MySQL)
	where, err := q.expired(p, false)
	if err != nil {
		return 0, err
	}
	if extra != nil {
		where += " AND " + extra(p)
	}
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+tableRef(q.C)+" WHERE "+where, p.Values()...).Scan(&n); err != nil {
		return 0, dbError(fmt.Sprintf("counting expired rows of collection %q", q.C.Name), err)
	}
	return n, nil
}
