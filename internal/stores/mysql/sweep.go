package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Retention sweeps, with the PostgreSQL engine's contract. Each batch is one
// short transaction that picks at most BatchSize expired rows after the cursor
// in primary-key order (keyset pagination: the primary key index serves, and
// no batch rescans the rows earlier batches examined), locks them with SKIP
// LOCKED (rows a request or the application is writing are left for the next
// run rather than waited for), and deletes or masks them by primary key:
//
//	SELECT pk FROM t WHERE pk > ? AND field < ? [AND where...] ORDER BY pk LIMIT n FOR UPDATE SKIP LOCKED
//	DELETE FROM t WHERE pk IN (...)   -- or UPDATE t SET masked fields WHERE pk IN (...)
//
// Held keys are picked (so the cursor moves past them) but never changed.
// The cursor is the last key picked, sealed (sqlcore.SealCursor) so the status
// it is stored in never holds a value from the database. SKIP LOCKED needs
// MariaDB 10.6 or MySQL 8.0.

// DefaultSweepBatchSize is the batch size of rules that do not set one.
const DefaultSweepBatchSize = 5000

// Sweep transactions are short: they fail fast rather than queue behind a
// lock, and a batch that runs long is cut off.
const (
	sweepLockTimeout      = 2 * time.Second
	sweepStatementTimeout = 30 * time.Second
)

var _ stores.Sweeper = (*Store)(nil)

// SweepBatch deletes or anonymizes at most rule.BatchSize rows past their
// period after cursor ("" to start), in one transaction.
func (s *Store) SweepBatch(ctx context.Context, rule stores.SweepRule, cursor string) (stores.SweepBatch, error) {
	var out stores.SweepBatch
	err := s.inSweepTx(ctx, readWrite, func(tx *sql.Tx) error {
		q, err := s.sweepQuery(ctx, tx, rule)
		if err != nil {
			return err
		}
		picked, err := q.pick(ctx, tx, sqlcore.OpenCursor(s.key, q.c.Name, cursor))
		if err != nil {
			return err
		}
		if out.Rows, err = q.change(ctx, tx, sqlcore.Without(picked, rule.HeldKeys)); err != nil {
			return err
		}
		out.Done = len(picked) < q.batchSize
		out.Cursor = cursor
		if len(picked) > 0 {
			out.Cursor, err = sqlcore.SealCursor(s.key, q.c.Name, picked[len(picked)-1])
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
	err := s.inSweepTx(ctx, readOnly, func(tx *sql.Tx) error {
		q, err := s.sweepQuery(ctx, tx, rule)
		if err != nil {
			return err
		}
		if n, err = q.count(ctx, tx, nil); err != nil {
			return err
		}
		for _, chunk := range chunks(rule.HeldKeys) {
			held, err := q.count(ctx, tx, func(p *masking.Params) string { return keyIn(q.pk, quote(q.c.PrimaryKey), chunk, p) })
			if err != nil {
				return err
			}
			n -= held
		}
		return nil
	})
	return n, err
}

// SubjectKeys returns the primary keys (as text) of the subject's rows in a
// collection, found as erasure finds them: through the identity columns and
// down the cascade references. A subject none of whose identity types this
// store maps has no rows here.
func (s *Store) SubjectKeys(ctx context.Context, subject map[string]string, collection string) ([]string, error) {
	c, ok := s.m.Get(collection)
	if !ok {
		return nil, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, collection)
	}
	if err := sqlcore.ValidateSubject(s.m, subject); err != nil {
		if len(subject) > 0 && !knowsAnyIdentity(s.m, subject) && !hasEmptyIdentity(subject) {
			return nil, nil
		}
		return nil, err
	}
	var keys []string
	err := s.inTx(ctx, readOnly, func(tx *sql.Tx) error {
		live, err := s.matchingSchema(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := finder{s: s, tx: tx, live: live}.resolve(ctx, subject)
		keys = rows[c]
		return err
	})
	return keys, err
}

func knowsAnyIdentity(m *datamap.Map, subject map[string]string) bool {
	for _, t := range sqlcore.IdentityTypes(m) {
		if _, ok := subject[t]; ok {
			return true
		}
	}
	return false
}

func hasEmptyIdentity(subject map[string]string) bool {
	for _, v := range subject {
		if strings.TrimSpace(v) == "" {
			return true
		}
	}
	return false
}

// inSweepTx is inTx with the sweep's short timeouts (never longer than the store's).
func (s *Store) inSweepTx(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	return s.inTxWithTimeouts(ctx, opts, min(s.lockTimeout, sweepLockTimeout), min(s.statementTimeout, sweepStatementTimeout), fn)
}

// sweepQuery is a rule checked against the live schema, ready to render.
type sweepQuery struct {
	rule      stores.SweepRule
	c         *datamap.Collection
	live      *liveSchema
	pk        column
	batchSize int
	// fields anonymize masks.
	fields []datamap.Field
	store  *Store
}

func (s *Store) sweepQuery(ctx context.Context, tx *sql.Tx, rule stores.SweepRule) (*sweepQuery, error) {
	c, ok := s.m.Get(rule.Collection)
	if !ok {
		return nil, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, rule.Collection)
	}
	live, err := s.matchingSchema(ctx, tx)
	if err != nil {
		return nil, err
	}
	t := live.tables[c.Name]
	if col, ok := t.column(rule.Field); !ok || !isTemporal(col.Kind) || !identifierPattern.MatchString(rule.Field) {
		return nil, fmt.Errorf("%w: collection %q has no date or timestamp column %q for the retention period to run from", stores.ErrInvalid, c.Name, rule.Field)
	}
	for _, w := range rule.Where {
		if _, ok := t.column(w.Field); !ok || !identifierPattern.MatchString(w.Field) {
			return nil, fmt.Errorf("%w: collection %q has no column %q for the rule's where condition", stores.ErrInvalid, c.Name, w.Field)
		}
	}
	q := &sweepQuery{rule: rule, c: c, live: live, pk: live.column(c, c.PrimaryKey), batchSize: rule.BatchSize, store: s}
	if q.batchSize <= 0 {
		q.batchSize = DefaultSweepBatchSize
	}
	switch rule.Action {
	case stores.ActionDelete:
	case stores.ActionAnonymize:
		for _, f := range c.Fields {
			if f.Masking != nil {
				q.fields = append(q.fields, f)
			}
		}
		if len(q.fields) == 0 {
			return nil, fmt.Errorf("%w: collection %q has no field with a masking strategy to anonymize", stores.ErrInvalid, c.Name)
		}
	default:
		return nil, fmt.Errorf("%w: a sweep deletes or anonymizes, not %q", stores.ErrInvalid, rule.Action)
	}
	return q, nil
}

// expired renders the condition on the rows the rule acts on (cursor and
// held keys aside).
func (q *sweepQuery) expired(p *masking.Params) (string, error) {
	conds := []string{quote(q.rule.Field) + " < " + p.Add(q.rule.Cutoff.UTC())}
	for _, w := range q.rule.Where {
		if w.IsNull {
			conds = append(conds, quote(w.Field)+" IS NULL")
		} else {
			conds = append(conds, quote(w.Field)+" IS NOT NULL")
		}
	}
	if q.rule.Action == stores.ActionAnonymize {
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
	for _, f := range q.fields {
		ref := quote(f.Name)
		switch f.Masking.Strategy {
		case privacyv1.MaskRandomize:
			continue
		case privacyv1.MaskHash:
			// A binary string: REGEXP is case-sensitive, so only lower-case hex passes.
			tests = append(tests, fmt.Sprintf("(%s IS NULL OR %s REGEXP '^[0-9a-f]{64}$')", ref, binaryText(ref)))
		default:
			exprs, err := q.store.maskExpressions(q.live, q.c, []datamap.Field{f}, p)
			if err != nil {
				return "", err
			}
			tests = append(tests, "NOT "+distinct(q.live.column(q.c, f.Name), ref, exprs[0]))
		}
	}
	return strings.Join(tests, " AND "), nil
}

// pick locks and returns the keys of the next batch after the key after.
func (q *sweepQuery) pick(ctx context.Context, tx *sql.Tx, after string) ([]string, error) {
	p := masking.NewParams(masking.MySQL)
	pk := quote(q.c.PrimaryKey)
	var where string
	if after != "" {
		where = pk + " > " + keyParam(q.pk, after, p) + " AND "
	}
	expired, err := q.expired(p)
	if err != nil {
		return nil, err
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s%s ORDER BY %s LIMIT %d FOR UPDATE SKIP LOCKED",
		textOf(q.pk, pk), tableRef(q.c), where, expired, pk, q.batchSize)
	keys, err := queryStrings(ctx, tx, sql, p.Values())
	if err != nil {
		return nil, dbError(fmt.Sprintf("sweeping collection %q", q.c.Name), err)
	}
	return keys, nil
}

// change deletes or masks the rows of keys, by primary key.
func (q *sweepQuery) change(ctx context.Context, tx *sql.Tx, keys []string) (int64, error) {
	statements, err := changeByKeys(q.live, q.c, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		if q.rule.Action == stores.ActionDelete {
			return "DELETE FROM " + tableRef(q.c) + " WHERE " + keyCond(p), nil
		}
		sets, err := q.store.maskExpressions(q.live, q.c, q.fields, p)
		if err != nil {
			return "", err
		}
		for i, f := range q.fields {
			sets[i] = quote(f.Name) + " = " + sets[i]
		}
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(q.c), strings.Join(sets, ", "), keyCond(p)), nil
	})
	if err != nil {
		return 0, err
	}
	var rows int64
	for _, stmt := range statements {
		n, err := runStatement(ctx, tx, stmt, true)
		if err != nil {
			return 0, dbError(fmt.Sprintf("sweeping collection %q", q.c.Name), err)
		}
		rows += n
	}
	return rows, nil
}

// count counts the expired rows, narrowed by the extra condition when given.
func (q *sweepQuery) count(ctx context.Context, tx *sql.Tx, extra func(*masking.Params) string) (int64, error) {
	p := masking.NewParams(masking.MySQL)
	where, err := q.expired(p)
	if err != nil {
		return 0, err
	}
	if extra != nil {
		where += " AND " + extra(p)
	}
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+tableRef(q.c)+" WHERE "+where, p.Values()...).Scan(&n); err != nil {
		return 0, dbError(fmt.Sprintf("counting expired rows of collection %q", q.c.Name), err)
	}
	return n, nil
}
