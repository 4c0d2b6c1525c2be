package sqlcore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// A heavy user's rows are mostly in leaf collections: logs, events, messages,
// a million rows below one account. Nothing in the manager needs their keys:
// no collection is found through them, none refers to them, and they refer
// to nothing they would have to clear. So a request never lists them: they
// are named by a condition the database evaluates (the subject's identities,
// or a reference to the subject's rows of a parent, whose keys are few), and
// every statement acting on them carries the condition. The manager's memory
// does not grow with them, each collection is changed by one statement, and
// its counts are the statements' own.
//
// The rows such a collection keeps (with a kept parent row, or inside an
// exemption's period) are named by conditions too, and left out of the
// statements that change the others. A legal hold covering the collection
// makes it listed again: a hold is decided by comparing the held person's
// rows with the subject's (ResolveHolds), which needs keys.

// Selection names some rows of one collection by a condition, rendered with
// its values bound into p (each statement binds its own).
type Selection func(p *masking.Params) string

// Selections are the request's rows named by a condition, per collection.
type Selections map[*datamap.Collection]Selection

// Selectable reports whether the request's rows of c may be named by a
// condition rather than listed: c is a leaf (nothing below it, no setNull
// reference to or from it) and no hold of the request covers it.
func Selectable(c *datamap.Collection, req stores.Request) bool {
	if !c.Leaf() {
		return false
	}
	for _, h := range req.Holds {
		if h.Covers(c.Name) {
			return false
		}
	}
	return true
}

// Selecting reports whether the request being resolved names c's rows by a
// condition: a Resolver then leaves c out (Session.resolveRequest selects it).
func (s *Session) Selecting(c *datamap.Collection) bool { return s.selecting[c] }

// resolveRequest finds the request's subject's rows: the listed ones, by the
// resolver, and the selectable collections' as Selections built from the
// identities and the parents' listed rows. A collection no condition can
// match has neither.
func (s *Session) resolveRequest(ctx context.Context, r Resolver, req stores.Request) (Rows, Selections, error) {
	s.selecting = map[*datamap.Collection]bool{}
	for _, c := range s.Map.Collections {
		if Selectable(c, req) {
			s.selecting[c] = true
		}
	}
	rows, err := r.Resolve(ctx, req.Subject)
	selecting := s.selecting
	s.selecting = nil
	if err != nil {
		return nil, nil, err
	}
	sel := Selections{}
	for _, c := range s.Map.Collections {
		if !selecting[c] {
			continue
		}
		parts := s.identitySelections(c, req.Subject)
		for _, e := range c.Parents {
			if len(rows[e.Parent]) == 0 {
				continue
			}
			part, err := r.Refers(ctx, e, rows[e.Parent])
			if err != nil {
				return nil, nil, err
			}
			if part != nil {
				parts = append(parts, part)
			}
		}
		if len(parts) > 0 {
			sel[c] = anyOf(parts)
		}
	}
	return rows, sel, nil
}

// identitySelections are c's rows where a mapped identity of the subject
// equals its value exactly, one condition per identity that can match.
func (s *Session) identitySelections(c *datamap.Collection, subject map[string]string) []Selection {
	var out []Selection
	types, columns := c.IdentityColumns(subject)
	for i, t := range types {
		col, ref, value := s.Schema.Column(c, columns[i]), s.quote(columns[i]), []string{subject[t]}
		if _, ok := s.Dialect.Match(col, ref, value, masking.KindText, s.Params()); !ok {
			continue
		}
		out = append(out, func(p *masking.Params) string {
			cond, _ := s.Dialect.Match(col, ref, value, masking.KindText, p)
			return cond
		})
	}
	return out
}

// Refers names the rows of e's child that refer to the parent rows of
// parentKeys, comparing the parents' values read once (nil when none can
// match); the portable Resolver's.
func (s *Session) Refers(ctx context.Context, e *datamap.Edge, parentKeys []string) (Selection, error) {
	values, err := s.fieldValues(ctx, e.Parent, e.ParentField, parentKeys)
	if err != nil {
		return nil, err
	}
	from := s.Schema.Column(e.Parent, e.ParentField).Kind
	childCol, ref := s.Schema.Column(e.Child, e.ChildField), s.quote(e.ChildField)
	var parts []Selection
	for _, batch := range KeyBatches(s.Dialect, values) {
		if _, ok := s.matchReference(e, childCol, ref, batch, from, s.Params()); !ok {
			continue
		}
		parts = append(parts, func(p *masking.Params) string {
			cond, _ := s.matchReference(e, childCol, ref, batch, from, p)
			return cond
		})
	}
	if len(parts) == 0 {
		return nil, nil
	}
	return anyOf(parts), nil
}

// anyOf names the rows any of parts names.
func anyOf(parts []Selection) Selection {
	if len(parts) == 1 {
		return parts[0]
	}
	return func(p *masking.Params) string {
		conds := make([]string, len(parts))
		for i, part := range parts {
			conds[i] = "(" + part(p) + ")"
		}
		return strings.Join(conds, " OR ")
	}
}

// without names sel's rows none of drop names. A condition that is unknown
// for a row (a NULL reference) does not name it: IS NOT TRUE keeps the row.
func without(sel Selection, drop []Selection) Selection {
	if len(drop) == 0 {
		return sel
	}
	return func(p *masking.Params) string {
		return "(" + sel(p) + ") AND ((" + anyOf(drop)(p) + ") IS NOT TRUE)"
	}
}

// both names the rows a and b both name.
func both(a, b Selection) Selection {
	return func(p *masking.Params) string { return "(" + a(p) + ") AND (" + b(p) + ")" }
}

// countSelected counts c's rows sel names.
func (s *Session) countSelected(ctx context.Context, c *datamap.Collection, sel Selection) (int64, error) {
	p := s.Params()
	n, err := s.queryCount(ctx, Statement{fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", s.tableRef(c), sel(p)), p.Values()})
	if err != nil {
		return 0, s.dbError(fmt.Sprintf("counting the subject's rows of collection %q", c.Name), err)
	}
	return n, nil
}

// selectedErasure lists the erasure steps of a selected collection, as
// ErasureSteps lists a listed one's: the rows it retains (whole, when the
// map retains it), then the change of the others by one statement, and a
// report per set of kept rows: rows belonging to parent rows kept (as
// RetainedRows keeps them), then rows inside an exemption's period.
//
// A rectification runs parents first, and a selection referring to a
// parent's rows compares the parent's values as the statement finds them:
// selected collections are rectified before the others (rectificationSteps),
// while the parents still hold the values they were found by.
func (s *Session) selectedErasure(ctx context.Context, r Resolver, c *datamap.Collection, e Erasure, sel Selection, kept Kept, req stores.Request) ([]Step, error) {
	if e.Action == stores.ActionRetain {
		n, err := s.countSelected(ctx, c, sel)
		return []Step{{Result: RetainResult(c, n)}}, err
	}
	var keeps []Selection
	var reports []Retained
	keep := func(cond Selection, r Retained) error {
		n, err := s.countSelected(ctx, c, both(without(sel, keeps), cond))
		if err == nil && n > 0 {
			r.Rows = n
			reports = append(reports, r)
			keeps = append(keeps, cond)
		}
		return err
	}
	for _, ref := range c.Parents {
		for _, parentKept := range kept[ref.Parent] {
			if parentKept.Leads != "" {
				continue // kept as a path to held rows below: its other children go (see HeldPaths)
			}
			cond, err := r.Refers(ctx, ref, parentKept.Keys)
			if err != nil {
				return nil, err
			}
			if cond == nil {
				continue
			}
			if err := keep(cond, Retained{Reason: parentKept.Reason, Via: ref.Parent.Name, Held: parentKept.Held, Holds: parentKept.Holds, Until: parentKept.Until, From: parentKept.From}); err != nil {
				return nil, err
			}
		}
	}
	for _, ex := range req.Exemptions {
		if ex.Collection != c.Name {
			continue
		}
		r, cond, err := s.exemptedSelection(ctx, c, ex, without(sel, keeps))
		if err != nil {
			return nil, err
		}
		if cond != nil {
			reports = append(reports, r)
			keeps = append(keeps, cond)
		}
	}
	rest := rowSet{sel: without(sel, keeps)}
	var st Step
	switch {
	case e.Action == stores.ActionDelete && s.batch == c:
		st = s.deleteBatch(c, rest.sel, c.ErasureBatchSize)
	case e.Action == stores.ActionDelete:
		st = s.deleteRows(c, rest)
	default:
		var err error
		if st, err = s.anonymizeRows(c, []Mask{{Fields: e.Fields, Sel: rest.sel}}, e.PathReason); err != nil {
			return nil, err
		}
	}
	steps := []Step{st}
	for _, r := range reports {
		steps = append(steps, ReportStep(r.Result(c.Name)))
	}
	return steps, nil
}

// exemptedSelection finds the rows among sel names whose exemption field is
// after the cutoff: what they are kept for, and the condition naming them
// (nil when there are none).
func (s *Session) exemptedSelection(ctx context.Context, c *datamap.Collection, ex stores.Exemption, sel Selection) (Retained, Selection, error) {
	if col := s.Schema.Column(c, ex.Field); !IsTemporal(col.Kind) {
		return Retained{}, nil, fmt.Errorf("%w: retention rule %s: collection %q has no date or timestamp column %q", stores.ErrInvalid, ex.Rule, c.Name, ex.Field)
	}
	field, cutoff := s.quote(ex.Field), ex.Cutoff.UTC()
	exempted := func(p *masking.Params) string { return field + " > " + p.Add(cutoff) }
	p := s.Params()
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", s.tableRef(c), both(sel, exempted)(p))
	n, err := s.queryCount(ctx, Statement{q, p.Values()})
	if err != nil || n == 0 {
		return Retained{}, nil, s.dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
	}
	var span Span
	p = s.Params()
	q = fmt.Sprintf("SELECT min(%s), max(%[1]s) FROM %s WHERE %s", field, s.tableRef(c), both(sel, exempted)(p))
	err = s.Tx.Query(ctx, Statement{q, p.Values()}, []any{&span.Oldest, &span.Newest}, func() error { return nil })
	if err != nil {
		return Retained{}, nil, s.dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
	}
	r := ExemptedRows(ex, n, span)
	r.Rows = n
	return r, exempted, nil
}

// rowSet is the rows a step acts on: listed keys (a statement per batch) or
// a selection (one statement).
type rowSet struct {
	keys []string
	sel  Selection
}

// listed is the rows of keys.
func listed(keys []string) rowSet { return rowSet{keys: keys} }

// empty reports whether the set has no rows to act on.
func (rs rowSet) empty() bool { return rs.sel == nil && len(rs.keys) == 0 }

// statements renders a statement around each batch's condition (see
// Batching.OrderChanges for ordered).
func (s *Session) statements(c *datamap.Collection, rs rowSet, ordered bool, render keyRenderer) ([]Statement, error) {
	if rs.sel == nil {
		return s.byKeys(c, rs.keys, ordered, render)
	}
	p := s.Params()
	sql, err := render(rs.sel, p)
	if err != nil {
		return nil, err
	}
	return []Statement{{sql, p.Values()}}, nil
}

// Batched erasure (Collection.ErasureBatchSize) is the opt-in for a subject
// too large for one transaction within the statement timeout: before the
// store's one transaction, the subject's rows of each batched collection are
// deleted batchSize at a time, each batch a transaction of its own that
// resolves the request again (holds, kept parents and exemptions as they are
// then), deletes at most batchSize of the rows it would delete, and records
// the batch in the journal. The one transaction then finds none of those
// rows left, and the journal's totals count every batch. A failure between
// batches leaves the collection partly erased, which the next attempt goes
// on from: the trade-off the DataStore opts into. Without a journal there is
// nothing to count the batches by, so there are none (journalFor).

// eraseInBatches deletes the request's rows of its batched collections, a
// batch per transaction, until a batch finds fewer rows than it may delete.
func (c *Core[L, T]) eraseInBatches(ctx context.Context, req stores.Request) error {
	for _, coll := range c.m.Collections {
		if coll.ErasureBatchSize <= 0 || !Selectable(coll, req) || !req.Scope.InScope(coll) {
			continue
		}
		for {
			var deleted int64
			err := c.inTxWithSchema(ctx, ReadWrite, func(s *Session) error {
				s.Lock, s.batch = true, coll
				res, err := s.journaled(ctx, c.journal.table, req, func() (stores.Result, error) { return s.run(ctx, req, true) })
				for _, r := range res.Collections {
					if r.Collection == coll.Name && r.Action == stores.ActionDelete {
						deleted = r.Rows
					}
				}
				return err
			})
			if err != nil {
				return err
			}
			if deleted < int64(coll.ErasureBatchSize) {
				break
			}
		}
	}
	return nil
}

// deleteBatch deletes at most n of c's rows sel names: by ORDER BY ... LIMIT
// where the dialect orders its changes (MySQL), by a subquery of keys
// otherwise (PostgreSQL has no DELETE ... LIMIT).
func (s *Session) deleteBatch(c *datamap.Collection, sel Selection, n int) Step {
	p := s.Params()
	table, pk, where := s.tableRef(c), s.quote(c.PrimaryKey), sel(p)
	q := fmt.Sprintf("DELETE FROM %[1]s WHERE %[2]s IN (SELECT %[2]s FROM %[1]s WHERE %[3]s LIMIT %[4]d)", table, pk, where, n)
	if s.Dialect.Batching().OrderChanges {
		q = fmt.Sprintf("DELETE FROM %s WHERE %s ORDER BY %s LIMIT %d", table, where, pk, n)
	}
	return Step{Result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionDelete}, Exec: []Statement{{q, p.Values()}}}
}

// A sweep batch that follows the map names the rows of the leaf collections
// below it by condition too (see Selection): rows referring to the batch's
// rows below that are erased, never listed, each leaf changed by one
// statement. A leaf whose rows may keep the rows above them (retained by the
// map, held, exempted) is listed, as the batch must know which rows to keep.

// selectableBelow are the collections a batch of q names by condition.
func (q *sweepQuery) selectableBelow(m *datamap.Map) map[*datamap.Collection]bool {
	out := map[*datamap.Collection]bool{}
	for _, c := range m.Collections {
		if c == q.C || !c.Leaf() || c.OnErasure == privacyv1.ErasureRetain || len(q.Rule.HeldChildKeys[c.Name]) > 0 {
			continue
		}
		if slices.ContainsFunc(q.Rule.Exemptions, func(ex stores.Exemption) bool { return ex.Collection == c.Name }) {
			continue
		}
		out[c] = true
	}
	return out
}

// selectedBelow are the steps that erase, as the map says, the rows of the
// selected leaves that refer to the rows the batch plan erases.
func (s *Session) selectedBelow(ctx context.Context, r Resolver, selected map[*datamap.Collection]bool, plan SweepPlan) ([]Step, error) {
	var steps []Step
	everything := allCategories(s.Map)
	for _, c := range s.Map.Collections {
		if !selected[c] {
			continue
		}
		var parts []Selection
		for _, ref := range c.Parents {
			parent, ok := plan.Erasure.Erasures[ref.Parent]
			if !ok || len(parent.Keys) == 0 {
				continue
			}
			part, err := r.Refers(ctx, ref, parent.Keys)
			if err != nil {
				return nil, err
			}
			if part != nil {
				parts = append(parts, part)
			}
		}
		if len(parts) == 0 {
			continue
		}
		e, err := ErasureOf(c, everything)
		if err != nil {
			return nil, err
		}
		sel := anyOf(parts)
		if e.Action == stores.ActionDelete {
			steps = append(steps, s.deleteRows(c, rowSet{sel: sel}))
			continue
		}
		st, err := s.anonymizeRows(c, []Mask{{Fields: e.Fields, Sel: sel}}, "")
		if err != nil {
			return nil, err
		}
		steps = append(steps, st)
	}
	return steps, nil
}
