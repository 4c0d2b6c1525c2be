package sqlcore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Retention sweeps. Each batch is one short transaction. It finds the key of
// the BatchSize-th expired row after the cursor in primary-key order (keyset
// pagination, as pt-archiver --bulk-delete does: the primary key index
// serves, and no batch examines again the rows earlier batches passed), then
// deletes or masks the expired rows of that key range with one statement that
// states the whole condition again, so a row another transaction changed in
// between is judged on its new version:
//
//	SELECT pk FROM t WHERE pk > :cursor AND field < :cutoff [AND where...] [AND pk NOT IN (:held)]
//		ORDER BY pk LIMIT 1 OFFSET n-1                                   -- :last; none: the final batch
//	DELETE FROM t WHERE pk > :cursor AND pk <= :last AND field < :cutoff [AND where...] [AND pk NOT IN (:held)]
//
// Two statements rather than one: with the bound a constant, each batch is
// planned as the index range scan it is. Keyset batches run at 0.4 to 0.5
// times the speed of one DELETE of the same rows on this project's machine
// (1,000,000 rows, batches of 5000; the same two statements by hand: 0.5),
// each batch reading its rows twice through the primary key's index where
// the DELETE reads the table once in storage order, and 20 times the speed
// of repeated DELETE ... WHERE pk IN (SELECT pk ... LIMIT n), which scans
// again every row earlier batches passed (measured by make bench).
//
// A delete rule on a dialect that can (StorageOrderer: PostgreSQL, on a
// plain table without inheritance children) goes by stored position
// instead: the same two statements with ctid in place of the key, the
// look-up reading in storage order. 0.45 to 0.64 of the DELETE (0.42 by
// key in the same runs; the machine's WAL flushes make most of the
// spread), 0.92 to 0.99 of the same statements by hand, which reach 0.58
// to 0.61: what is left is each batch's commit, which waits for a WAL
// flush, and the look-up's read of rows the DELETE reads again. The range
// still holds exactly BatchSize expired rows. A row another transaction
// updates during the sweep is stored anew, possibly before the cursor: this
// run passes it, the gap counts it, and the next run removes it. Anonymize
// rules, whose own updates move rows, stay in key order, as do the sweeps
// by key below.
//
// A batch that meets a row locked by another transaction does not queue
// behind it: after a short lock timeout it is redone locking the range's rows
// with FOR UPDATE SKIP LOCKED (in one statement where the dialect can, see
// SkipLockedChanger), which leaves the locked rows for the next run (they are
// counted in the compliance gap meanwhile). Locking every row up front would
// be safe too, but it writes each row twice and makes the sweep three times
// slower.
//
// A delete rule on a collection that other rows belong to (cascade
// references) or refer to (setNull) goes by key instead: the batch picks its
// rows as above (at most BatchSize, SKIP LOCKED), then finds and locks the
// rows below them and erases all of them as the data map says, children
// first, in the same transaction (see sweepmap.go).
//
// The cursor is the last key of the batch, sealed (SealCursor) so that the
// status it is kept in never holds a value from the database.

// Sweep is a retention rule checked against the data map and the live table.
type Sweep struct {
	Rule      stores.SweepRule
	C         *datamap.Collection
	BatchSize int
	// Fields are what anonymize masks.
	Fields []datamap.Field
}

// DefaultSweepBatchSize is the batch size of rules that do not set one.
const DefaultSweepBatchSize = 5000

// CheckSweep refuses a rule the map or the live table cannot carry out: an
// unknown collection, a period field that is not a date or timestamp, an
// unknown where column, an anonymization with nothing to mask, an action
// other than delete or anonymize. table looks up a collection's live table.
func CheckSweep(m *datamap.Map, rule stores.SweepRule, table func(*datamap.Collection) Table) (Sweep, error) {
	c, ok := m.Get(rule.Collection)
	if !ok {
		return Sweep{}, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, rule.Collection)
	}
	if c.PrimaryKey == "" {
		return Sweep{}, fmt.Errorf("%w: collection %q has no primary key to sweep by", stores.ErrInvalid, c.Name)
	}
	t := table(c)
	if col, ok := t.Column(rule.Field); !ok || !IsTemporal(col.Kind) {
		return Sweep{}, fmt.Errorf("%w: collection %q has no date or timestamp column %q for the retention period to run from", stores.ErrInvalid, c.Name, rule.Field)
	}
	for _, w := range rule.Where {
		if _, ok := t.Column(w.Field); !ok {
			return Sweep{}, fmt.Errorf("%w: collection %q has no column %q for the rule's where condition", stores.ErrInvalid, c.Name, w.Field)
		}
	}
	sw := Sweep{Rule: rule, C: c, BatchSize: rule.BatchSize}
	if sw.BatchSize <= 0 {
		sw.BatchSize = DefaultSweepBatchSize
	}
	switch rule.Action {
	case stores.ActionDelete:
	case stores.ActionAnonymize:
		for _, f := range c.Fields {
			if f.Masking != nil {
				sw.Fields = append(sw.Fields, f)
			}
		}
		if len(sw.Fields) == 0 {
			return Sweep{}, fmt.Errorf("%w: collection %q has no field with a masking strategy to anonymize", stores.ErrInvalid, c.Name)
		}
	default:
		return Sweep{}, fmt.Errorf("%w: a sweep deletes or anonymizes, not %q", stores.ErrInvalid, rule.Action)
	}
	return sw, nil
}

// IsTemporal reports whether a column of kind k holds a date or a timestamp.
func IsTemporal(k masking.Kind) bool {
	return k == masking.KindDate || k == masking.KindTimestamp || k == masking.KindTimestampTZ
}

// SweepBatch deletes or anonymizes at most rule.BatchSize rows past their
// period after cursor ("" to start).
func (c *Core[L, T]) SweepBatch(ctx context.Context, rule stores.SweepRule, cursor string) (stores.SweepBatch, error) {
	var out stores.SweepBatch
	err := c.withCheckedSchema(ctx, func(live *L) error {
		q, err := c.sweepQuery(live, rule)
		if err != nil {
			return err
		}
		switch {
		case q.followsMap():
			out, err = c.sweepFollowingMap(ctx, live, q, cursor)
		case q.heldByKey():
			out, err = c.sweepByKeys(ctx, live, q, cursor)
		default:
			out, err = c.sweepRange(ctx, live, q, cursor)
		}
		return err
	})
	if err != nil {
		return stores.SweepBatch{}, err
	}
	return out, nil
}

// sweepRange changes the expired rows of the batch's key range in one statement.
func (c *Core[L, T]) sweepRange(ctx context.Context, live *L, q *sweepQuery, cursor string) (stores.SweepBatch, error) {
	after := OpenCursor(c.key, q.cursorScope(), cursor)
	out := stores.SweepBatch{Cursor: cursor}
	var last string
	found, locked := false, false // locked: a row of the batch's range is locked by another transaction
	kind := SweepRange
	if q.position != nil {
		kind = SweepByPosition
	}
	err := c.inTx(ctx, kind, live, func(s *Session) error {
		var err error
		if last, found, err = q.lastKey(ctx, s, after); err != nil {
			return err
		}
		out.Rows, locked, err = q.changeRange(ctx, s, after, last, found)
		return err
	})
	if locked {
		// Redo the range without waiting for the locked rows.
		err = c.inTx(ctx, SweepLocking, live, func(s *Session) error {
			var err error
			out.Rows, err = q.changeUnlocked(ctx, s, after, last, found)
			return err
		})
	}
	if err != nil {
		return stores.SweepBatch{}, err
	}
	// Fewer than BatchSize expired rows were left: this batch took them all.
	out.Done = !found
	if found {
		if out.Cursor, err = SealCursor(c.key, q.cursorScope(), last); err != nil {
			return stores.SweepBatch{}, err
		}
	}
	return out, nil
}

// sweepByKeys picks at most BatchSize expired rows after the cursor (locking
// them, skipping locked ones) and changes those not held, by key. Held rows
// are picked, so the cursor moves past them.
func (c *Core[L, T]) sweepByKeys(ctx context.Context, live *L, q *sweepQuery, cursor string) (stores.SweepBatch, error) {
	return c.sweepPicked(ctx, live, q, cursor, func(s *Session, keys []string, out *stores.SweepBatch) (err error) {
		out.Rows, err = q.change(ctx, s, keys)
		return err
	})
}

// sweepFollowingMap picks at most BatchSize expired rows after the cursor
// (locking them, skipping locked ones), finds and locks the rows below those
// not held, and erases them all as the data map says, children first, in the
// same transaction (see PlanSweepBatch). A batch always goes by key: the rows
// below are found from the batch's keys.
//
// The batch size counts the rows below too (see fanouts): a batch picks as
// many of the rule's rows as, with the rows found below them on the last
// batch, make BatchSize rows, so a batch transaction stays as short as the
// rule's rows alone would make it.
func (c *Core[L, T]) sweepFollowingMap(ctx context.Context, live *L, q *sweepQuery, cursor string) (stores.SweepBatch, error) {
	batch := *q
	batch.BatchSize = c.fanout.rowsToPick(q.C.Name, q.BatchSize)
	out, err := c.sweepPicked(ctx, live, &batch, cursor, func(s *Session, keys []string, out *stores.SweepBatch) error {
		if len(keys) == 0 {
			return nil
		}
		return q.followMap(ctx, s, keys, out)
	})
	if err == nil {
		c.fanout.observe(q.C.Name, out)
	}
	return out, err
}

// fanouts are, per swept collection, how many rows below each of its rows a
// batch last found: the share of a batch's budget its own rows get. The first
// batch of a collection, before any is known, is a probe of at most
// probeRows rows.
type fanouts struct {
	mu sync.Mutex
	by map[string]float64
}

// probeRows bounds the first batch of a collection whose fanout is unknown.
const probeRows = 100

func (f *fanouts) rowsToPick(collection string, batchSize int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	fanout, ok := f.by[collection]
	if !ok {
		return min(batchSize, probeRows)
	}
	return max(1, min(batchSize, int(float64(batchSize)/(1+fanout))))
}

// observe records the rows below the rows of a batch.
func (f *fanouts) observe(collection string, b stores.SweepBatch) {
	own := b.Rows
	for _, k := range b.Kept {
		own += k.Rows
	}
	if own == 0 {
		return
	}
	var below int64
	for _, ch := range b.Children {
		below += ch.Rows
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == nil {
		f.by = map[string]float64{}
	}
	f.by[collection] = float64(below) / float64(own)
}

// sweepPicked is one batch by key: it picks at most BatchSize expired rows
// after the cursor (locking them, skipping locked ones), acts on those not
// held, and moves the cursor past every row picked (held ones included).
func (c *Core[L, T]) sweepPicked(ctx context.Context, live *L, q *sweepQuery, cursor string, act func(*Session, []string, *stores.SweepBatch) error) (stores.SweepBatch, error) {
	out := stores.SweepBatch{Cursor: cursor}
	err := c.inTx(ctx, SweepLocking, live, func(s *Session) error {
		picked, err := q.pick(ctx, s, OpenCursor(c.key, q.C.Name, cursor), "", false)
		if err != nil {
			return err
		}
		if err := act(s, Without(picked, q.Rule.HeldKeys), &out); err != nil {
			return err
		}
		out.Done = len(picked) < q.BatchSize
		if len(picked) > 0 {
			out.Cursor, err = SealCursor(c.key, q.C.Name, picked[len(picked)-1])
		}
		return err
	})
	if err != nil {
		return stores.SweepBatch{}, err
	}
	return out, nil
}

// followsMap reports whether the rule's batches act below their rows: a
// delete rule on a collection that others belong to (cascade references) or
// refer to (setNull). An anonymize rule leaves its rows, so what belongs or
// refers to them stays as it is.
func (q *sweepQuery) followsMap() bool {
	return q.Rule.Action == stores.ActionDelete && (len(q.C.Children) > 0 || len(q.C.Referrers) > 0)
}

// followMap erases the batch's rows of keys and the rows below them with the
// erasure's steps, and reports what it did in out. The rows below are locked
// as they are found, as Apply locks a subject's rows, so none can be added
// under a row between its resolution and its delete.
func (q *sweepQuery) followMap(ctx context.Context, s *Session, keys []string, out *stores.SweepBatch) error {
	s.Lock = true
	r := s.resolver()
	s.selecting = q.selectableBelow(s.Map)
	rows, err := r.Descend(ctx, q.C, keys)
	selecting := s.selecting
	s.selecting = nil
	if err != nil {
		return err
	}
	plan, err := PlanSweepBatch(ctx, s.Map, q.Sweep, rows, r)
	if err != nil {
		return err
	}
	leaves, err := s.selectedBelow(ctx, r, selecting, plan)
	if err != nil {
		return err
	}
	var unlinks []Step
	for _, u := range plan.Unlinks() {
		unlinks = append(unlinks, s.unlink(u))
	}
	steps, _, err := ErasureSteps(s.Map, plan.Erasure, func(c *datamap.Collection, e Erasure) ([]Step, error) {
		return s.eraseRows(ctx, r, c, e, plan.SparedFrom)
	}, ReportStep)
	if err != nil {
		return err
	}
	// The leaves first: they refer to rows the other steps delete.
	all := append(append(unlinks, leaves...), steps...)
	if err := s.perform(ctx, all, true); err != nil {
		return err
	}
	for _, st := range all[len(unlinks):] { // unlinked rows are deleted: not reported
		switch res := st.Result; {
		case res.Collection == q.C.Name && res.Action == stores.ActionDelete:
			out.Rows += res.Rows
		case res.Rows > 0:
			out.Children = AddResult(out.Children, res)
		}
	}
	out.Kept = plan.Kept
	return nil
}

// unlink clears u's reference in its rows, by key.
func (s *Session) unlink(u Unlink) Step {
	c, field := u.Ref.Child, s.quote(u.Ref.ChildField)
	st := Step{Result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionSetNull}}
	st.Exec, _ = s.changeByKeys(c, u.Keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		return fmt.Sprintf("UPDATE %s SET %s = NULL WHERE %s IS NOT NULL AND %s", s.tableRef(c), field, field, keyCond(p)), nil
	})
	return st
}

// CountPastPeriod counts the rows past their period that the rule would
// still act on (meeting every where condition and, to anonymize, not masked
// yet): those held (among rule.HeldKeys, counted per batch of keys the
// dialect binds) apart from the others, and the rows without a date (the
// period field NULL, meeting every where condition).
func (c *Core[L, T]) CountPastPeriod(ctx context.Context, rule stores.SweepRule) (stores.PastPeriod, error) {
	var out stores.PastPeriod
	err := c.withCheckedSchema(ctx, func(live *L) error {
		q, err := c.sweepQuery(live, rule)
		if err != nil {
			return err
		}
		return c.inTx(ctx, SweepCount, live, func(s *Session) error {
			expired := func(p *masking.Params) (string, error) { return q.expired(s, p, false) }
			past, err := q.count(ctx, s, expired, nil)
			if err != nil {
				return err
			}
			for _, batch := range KeyBatches(q.d, distinct(rule.HeldKeys)) {
				held, err := q.count(ctx, s, expired, func(p *masking.Params) string { return s.KeyIn(q.C, batch, p) })
				if err != nil {
					return err
				}
				out.Held += held
			}
			out.Rows = past - out.Held
			out.WithoutDate, err = q.count(ctx, s, func(*masking.Params) (string, error) { return q.withoutDate(), nil }, nil)
			return err
		})
	})
	if err != nil {
		return stores.PastPeriod{}, err
	}
	return out, nil
}

// distinct is keys without repeats, so no held row is counted twice.
func distinct(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	var out []string
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// sweepQuery is a rule checked against the live schema, ready to render.
type sweepQuery struct {
	Sweep
	d  Dialect
	pk Column
	// position, when set, orders the batches of a range sweep by where rows
	// are stored rather than by key (see StorageOrderer).
	position StorageOrderer
}

func (c *Core[L, T]) sweepQuery(live *L, rule stores.SweepRule) (*sweepQuery, error) {
	schema := c.engine.Schema(live)
	sw, err := CheckSweep(c.m, rule, schema.Table)
	if err != nil {
		return nil, err
	}
	q := &sweepQuery{Sweep: sw, d: c.dialect, pk: schema.Column(sw.C, sw.C.PrimaryKey)}
	if so, ok := c.dialect.(StorageOrderer); ok && schema.Table(sw.C).StorageOrdered &&
		rule.Action == stores.ActionDelete && !q.followsMap() && !q.heldByKey() {
		q.position = so
	}
	return q, nil
}

// cursorScope is what a cursor of the rule's batches is sealed for: the
// collection, and whether it holds a stored position or a key, so that a
// batch never takes the one for the other (it restarts instead).
func (q *sweepQuery) cursorScope() string {
	if q.position != nil {
		return q.C.Name + "\x00stored position"
	}
	return q.C.Name
}

// heldByKey reports whether the rule holds more keys than one statement
// leaves out: the batch is then swept by key.
func (q *sweepQuery) heldByKey() bool {
	limit := q.d.Batching().HeldKeys
	return limit > 0 && len(q.Rule.HeldKeys) > limit
}

func (q *sweepQuery) table() string { return TableRef(q.d, q.C) }

func (q *sweepQuery) what() string { return fmt.Sprintf("sweeping collection %q", q.C.Name) }

// expired renders the condition on the rows the rule acts on (the cursor
// aside), held keys included when inline.
func (q *sweepQuery) expired(s *Session, p *masking.Params, held bool) (string, error) {
	conds := append([]string{q.d.Quote(q.Rule.Field) + " < " + p.Add(q.Rule.Cutoff.UTC())}, q.where()...)
	if held && len(q.Rule.HeldKeys) > 0 {
		conds = append(conds, "NOT ("+s.KeyIn(q.C, q.Rule.HeldKeys, p)+")")
	}
	if q.Rule.Action == stores.ActionAnonymize {
		masked, err := q.masked(s, p)
		if err != nil {
			return "", err
		}
		if masked != "" {
			conds = append(conds, "NOT ("+masked+")")
		}
	}
	return strings.Join(conds, " AND "), nil
}

// where renders the rule's where conditions.
func (q *sweepQuery) where() []string {
	var conds []string
	for _, w := range q.Rule.Where {
		if w.IsNull {
			conds = append(conds, q.d.Quote(w.Field)+" IS NULL")
		} else {
			conds = append(conds, q.d.Quote(w.Field)+" IS NOT NULL")
		}
	}
	return conds
}

// withoutDate renders the condition on the rows the rule cannot date: the
// period field NULL, every where condition met.
func (q *sweepQuery) withoutDate() string {
	return strings.Join(append([]string{q.d.Quote(q.Rule.Field) + " IS NULL"}, q.where()...), " AND ")
}

// masked tests whether a row's fields already hold their masked values, so a
// sweep anonymizes each row once and the compliance gap reaches zero. Values
// masked by hash are recognised by their shape (a 64-character hex digest);
// randomize leaves nothing to recognise, so it does not take part: a rule
// whose fields are all randomized masks its expired rows again on every run.
func (q *sweepQuery) masked(s *Session, p *masking.Params) (string, error) {
	var tests []string
	for _, f := range q.Fields {
		ref := q.d.Quote(f.Name)
		switch f.Masking.Strategy {
		case privacyv1.MaskRandomize:
			continue
		case privacyv1.MaskHash:
			tests = append(tests, fmt.Sprintf("(%s IS NULL OR %s)", ref, q.d.HexDigest(ref)))
		default:
			exprs, err := s.maskExpressions(q.C, []datamap.Field{f}, p)
			if err != nil {
				return "", err
			}
			tests = append(tests, "NOT ("+q.d.Distinct(s.Schema.Column(q.C, f.Name), ref, exprs[0])+")")
		}
	}
	return strings.Join(tests, " AND "), nil
}

// inRange renders the key range (after, last] ("" after: from the start;
// not bounded: to the end), or the range of stored positions when the sweep
// goes by position, followed by " AND ", or "".
func (q *sweepQuery) inRange(after, last string, bounded bool, p *masking.Params) string {
	bound := func(v string, upTo bool) string {
		if q.position != nil {
			return q.position.PositionCond(v, upTo, p)
		}
		op := " > "
		if upTo {
			op = " <= "
		}
		return q.d.Quote(q.C.PrimaryKey) + op + q.d.BindKey(q.pk, v, p)
	}
	var conds []string
	if after != "" {
		conds = append(conds, bound(after, false))
	}
	if bounded {
		conds = append(conds, bound(last, true))
	}
	if len(conds) == 0 {
		return ""
	}
	return strings.Join(conds, " AND ") + " AND "
}

// lastKey finds the key (or the stored position, see StorageOrderer) of
// the batch's last row: the BatchSize-th expired row after the key after.
// found is false when fewer are left.
func (q *sweepQuery) lastKey(ctx context.Context, s *Session, after string) (last string, found bool, err error) {
	p := s.Params()
	from := q.inRange(after, "", false, p)
	expired, err := q.expired(s, p, true)
	if err != nil {
		return "", false, err
	}
	run := func(sql string) (string, bool, error) {
		var last string
		found := false
		err := s.Tx.Query(ctx, Statement{sql, p.Values()}, []any{&last}, func() error {
			found = true
			return nil
		})
		if err != nil {
			return "", false, s.dbError(q.what(), err)
		}
		return last, found, nil
	}
	if q.position != nil {
		return run(q.position.PositionLookup(q.table(), from+expired, q.BatchSize-1))
	}
	pk := q.d.Quote(q.C.PrimaryKey)
	// ORDER BY names the table's column: the bare name may be the text output column.
	inKeyOrder := func(hint, limit string) string {
		return fmt.Sprintf("SELECT %s FROM %s AS swept%s WHERE %s%s ORDER BY swept.%s LIMIT 1 OFFSET %d%s",
			q.d.KeyText(q.pk, "swept."+pk), q.table(), hint, from, expired, pk, q.BatchSize-1, limit)
	}
	if b, ok := q.d.(KeyOrderBounder); ok {
		if hint, limit, ok := b.BoundedKeyOrder(q.pk, keyOrderExamined*q.BatchSize); ok {
			if last, found, err = run(inKeyOrder(hint, limit)); err != nil || found {
				return last, found, err
			}
		}
	}
	return run(inKeyOrder("", ""))
}

// keyOrderExamined is how many batches' rows a KeyOrderBounder's look-up in
// key order examines at most.
const keyOrderExamined = 4

// changeRange deletes or masks the expired rows of the key range (after,
// last], or after "after" when not bounded (the final batch). locked reports
// that it failed waiting for a row another transaction holds.
func (q *sweepQuery) changeRange(ctx context.Context, s *Session, after, last string, bounded bool) (n int64, locked bool, err error) {
	p := s.Params()
	var set string
	if q.Rule.Action == stores.ActionAnonymize {
		if set, err = s.assignments(q.C, q.Fields, p); err != nil {
			return 0, false, err
		}
	}
	where := q.inRange(after, last, bounded, p)
	expired, err := q.expired(s, p, true)
	if err != nil {
		return 0, false, err
	}
	if n, err = s.Tx.Exec(ctx, Statement{q.changeSQL(set, where+expired), p.Values()}); err != nil {
		return 0, s.Errors.LockTimedOut(err), s.dbError(q.what(), err)
	}
	return n, false, nil
}

// changeSQL is the DELETE, or the UPDATE setting set, of the rows meeting where.
func (q *sweepQuery) changeSQL(set, where string) string {
	if q.Rule.Action == stores.ActionDelete {
		return "DELETE FROM " + q.table() + " WHERE " + where
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s", q.table(), set, where)
}

// changeUnlocked changes the expired rows of the key range that no other
// transaction has locked, locking them first.
func (q *sweepQuery) changeUnlocked(ctx context.Context, s *Session, after, last string, bounded bool) (int64, error) {
	one, ok := q.d.(SkipLockedChanger)
	if !ok {
		keys, err := q.pick(ctx, s, after, last, bounded)
		if err != nil {
			return 0, err
		}
		return q.change(ctx, s, keys)
	}
	p := s.Params()
	var set string
	if q.Rule.Action == stores.ActionAnonymize {
		var err error
		if set, err = s.assignments(q.C, q.Fields, p); err != nil {
			return 0, err
		}
	}
	where := q.inRange(after, last, bounded, p)
	expired, err := q.expired(s, p, true)
	if err != nil {
		return 0, err
	}
	n, err := s.queryCount(ctx, Statement{one.SkipLockedChange(q.table(), q.d.Quote(q.C.PrimaryKey), set, where+expired), p.Values()})
	return n, s.dbError(q.what(), err)
}

// pick locks and returns the keys of at most BatchSize expired rows after the
// key after (up to last when bounded), skipping rows others have locked.
// Held keys are left out only when inline.
func (q *sweepQuery) pick(ctx context.Context, s *Session, after, last string, bounded bool) ([]string, error) {
	p := s.Params()
	where := q.inRange(after, last, bounded, p)
	expired, err := q.expired(s, p, !q.heldByKey())
	if err != nil {
		return nil, err
	}
	pk := q.d.Quote(q.C.PrimaryKey)
	sql := fmt.Sprintf("SELECT %s FROM %s AS swept WHERE %s%s ORDER BY swept.%s LIMIT %d FOR UPDATE SKIP LOCKED",
		q.d.KeyText(q.pk, "swept."+pk), q.table(), where, expired, pk, q.BatchSize)
	keys, err := s.QueryKeys(ctx, Statement{sql, p.Values()})
	if err != nil {
		return nil, s.dbError(q.what(), err)
	}
	return keys, nil
}

// change deletes or masks the rows of keys, by primary key.
func (q *sweepQuery) change(ctx context.Context, s *Session, keys []string) (int64, error) {
	statements, err := s.changeByKeys(q.C, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		var set string
		if q.Rule.Action == stores.ActionAnonymize {
			var err error
			if set, err = s.assignments(q.C, q.Fields, p); err != nil {
				return "", err
			}
		}
		return q.changeSQL(set, keyCond(p)), nil
	})
	if err != nil {
		return 0, err
	}
	var rows int64
	for _, stmt := range statements {
		n, err := s.Tx.Exec(ctx, stmt)
		if err != nil {
			return 0, s.dbError(q.what(), err)
		}
		rows += n
	}
	return rows, nil
}

// count counts the rows meeting cond, narrowed by the extra condition when given.
func (q *sweepQuery) count(ctx context.Context, s *Session, cond func(*masking.Params) (string, error), extra func(*masking.Params) string) (int64, error) {
	p := s.Params()
	where, err := cond(p)
	if err != nil {
		return 0, err
	}
	if extra != nil {
		where += " AND " + extra(p)
	}
	n, err := s.queryCount(ctx, Statement{"SELECT count(*) FROM " + q.table() + " WHERE " + where, p.Values()})
	if err != nil {
		return 0, s.dbError(fmt.Sprintf("counting expired rows of collection %q", q.C.Name), err)
	}
	return n, nil
}
