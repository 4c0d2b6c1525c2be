package sqlcore

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// run resolves the subject's rows, and counts (plan) or carries out (apply)
// the request's steps.
func (s *Session) run(ctx context.Context, req stores.Request, apply bool) (stores.Result, error) {
	s.subject = req.Subject
	r := s.resolver()
	rows, sel, err := s.resolveRequest(ctx, r, req)
	if err != nil {
		return stores.Result{}, err
	}
	var steps []Step
	var res stores.Result
	switch req.Kind {
	case stores.KindErasure:
		steps, res.HeldBy, err = s.erasureSteps(ctx, r, rows, sel, req)
		res.Held = len(res.HeldBy) > 0
	case stores.KindRectification:
		steps, err = s.rectificationSteps(ctx, rows, sel, req)
	default:
		steps, err = s.accessSteps(ctx, rows, sel, req.Scope)
	}
	if err != nil {
		return stores.Result{}, err
	}
	if err := s.perform(ctx, steps, apply); err != nil {
		return stores.Result{}, err
	}
	for _, st := range steps {
		res.Collections = append(res.Collections, st.Result)
	}
	if req.Kind == stores.KindRectification {
		// Reported in the map's order, whatever order they ran in.
		slices.SortStableFunc(res.Collections, func(a, b stores.CollectionResult) int {
			return cmp.Compare(s.Map.Index(a.Collection), s.Map.Index(b.Collection))
		})
	}
	return res, nil
}

// perform carries out (apply) or counts (plan) the steps' statements, in
// order; in one round trip when the transaction batches. A step's rows are
// the sum of its statements' rows; a step without statements keeps the rows
// its keys gave it. Changed rows are the rows actually changed, so a row
// already in its final state counts as nothing.
func (s *Session) perform(ctx context.Context, steps []Step, apply bool) error {
	var statements []Statement
	var owners []*Step // the step of each statement
	for i := range steps {
		st := &steps[i]
		own := st.Count
		if apply {
			own = st.Exec
		}
		if len(own) > 0 {
			st.Result.Rows = 0
		}
		for _, stmt := range own {
			statements = append(statements, stmt)
			owners = append(owners, st)
		}
	}
	failed := func(st *Step, err error) error {
		return s.Errors.DBError(fmt.Sprintf("%s in collection %q", st.Result.Action, st.Result.Collection), err)
	}
	if b, ok := s.Tx.(Batcher); ok && len(statements) > 0 {
		rows, i, err := b.Batch(ctx, statements, apply)
		switch {
		case err != nil && i < len(owners):
			return failed(owners[i], err)
		case err != nil:
			return s.Errors.DBError("finishing the request's statements", err)
		}
		for i, n := range rows {
			owners[i].Result.Rows += n
		}
		return nil
	}
	for i, stmt := range statements {
		n, err := s.runStatement(ctx, stmt, apply)
		if err != nil {
			return failed(owners[i], err)
		}
		owners[i].Result.Rows += n
	}
	return nil
}

// runStatement carries out a statement (exec), or runs a count.
func (s *Session) runStatement(ctx context.Context, st Statement, exec bool) (int64, error) {
	if exec {
		return s.Tx.Exec(ctx, st)
	}
	return s.queryCount(ctx, st)
}

// accessSteps report, per collection in scope, how many of the subject's
// rows an export holds: the listed ones, and the selected ones counted.
func (s *Session) accessSteps(ctx context.Context, rows Rows, sel Selections, scope datamap.Scope) ([]Step, error) {
	var steps []Step
	for _, cr := range AccessResults(s.Map, rows, scope) {
		if c, _ := s.Map.Get(cr.Collection); sel[c] != nil {
			var err error
			if cr.Rows, err = s.countSelected(ctx, c, sel[c]); err != nil {
				return nil, err
			}
		}
		steps = append(steps, ReportStep(cr))
	}
	return steps, nil
}

// erasureSteps lists an erasure's steps children first. In every collection in
// scope: retained rows are reported with their reason; the other rows are
// deleted or anonymized as mapped; before, setNull references to them from
// other rows are cleared. Selected collections are erased by condition
// (selectedErasure).
func (s *Session) erasureSteps(ctx context.Context, r Resolver, rows Rows, sel Selections, req stores.Request) ([]Step, []string, error) {
	held, err := s.resolveHolds(ctx, r, req)
	if err != nil {
		return nil, nil, err
	}
	plan, err := PlanErasure(ctx, s.Map, rows, req, held, r)
	if err != nil {
		return nil, nil, err
	}
	return ErasureSteps(s.Map, plan, func(c *datamap.Collection, e Erasure) ([]Step, error) {
		if s.batch != nil && c != s.batch {
			return nil, nil
		}
		if sel[c] != nil {
			return s.selectedErasure(ctx, r, c, e, sel[c], plan.Kept, req)
		}
		if e.Action == stores.ActionRetain {
			return []Step{{Result: RetainResult(c, int64(len(rows[c])))}}, nil
		}
		return s.eraseRows(ctx, r, c, e, func(ref *datamap.Edge) []string { return plan.Spared[ref.Child] })
	}, ReportStep)
}

// eraseRows are the steps that delete or anonymize e's rows of c, as erasure
// and sweeps do: first, when the rows are erased whole, the setNull
// references to them are cleared, except in the referring rows spared
// returns for that reference. Links from others' rows are cleared whether
// the rows are deleted or anonymized: an anonymized account kept for its
// invoices must not stay linked to the people it referred. A request scoped
// to some of the fields leaves the links.
func (s *Session) eraseRows(ctx context.Context, r Resolver, c *datamap.Collection, e Erasure, spared func(*datamap.Edge) []string) ([]Step, error) {
	var steps []Step
	if len(e.Keys) > 0 && e.Whole {
		for _, ref := range c.Referrers {
			st, err := r.ClearReferences(ctx, ref, e.Keys, spared(ref))
			if err != nil {
				return nil, err
			}
			steps = append(steps, st)
		}
	}
	if e.Action == stores.ActionDelete {
		return append(steps, s.deleteRows(c, listed(e.Keys))), nil
	}
	var masks []Mask
	for _, m := range e.Masks() {
		if len(m.Keys) > 0 {
			masks = append(masks, m)
		}
	}
	st, err := s.anonymizeRows(c, masks, e.PathReason)
	return append(steps, st), err
}

// resolveHolds finds the rows the request's subject holds hold (see
// ResolveHolds). It takes no locks: the held person's rows are only compared
// with the subject's, which are locked.
func (s *Session) resolveHolds(ctx context.Context, r Resolver, req stores.Request) (HeldRows, error) {
	lock := s.Lock
	s.Lock = false
	defer func() { s.Lock = lock }()
	return ResolveHolds(ctx, s.Map, req, r.Resolve, s.fieldValues)
}

// keyRenderer writes a statement around a batch's key condition, binding its
// parameters in the order of the text (positional placeholders line up).
type keyRenderer func(keyCond func(*masking.Params) string, p *masking.Params) (string, error)

// changeByKeys renders a DELETE or UPDATE of c's rows of keys per batch of
// keys (see Batching.OrderChanges).
func (s *Session) changeByKeys(c *datamap.Collection, keys []string, render keyRenderer) ([]Statement, error) {
	return s.byKeys(c, keys, s.Dialect.Batching().OrderChanges, render)
}

// changeRows renders a DELETE or UPDATE of the rows of rs: per batch of keys,
// or one for a selection.
func (s *Session) changeRows(c *datamap.Collection, rs rowSet, render keyRenderer) ([]Statement, error) {
	return s.statements(c, rs, s.Dialect.Batching().OrderChanges, render)
}

// countRows renders a SELECT count(*) of the rows of rs, as changeRows splits them.
func (s *Session) countRows(c *datamap.Collection, rs rowSet, render keyRenderer) ([]Statement, error) {
	return s.statements(c, rs, false, render)
}

func (s *Session) byKeys(c *datamap.Collection, keys []string, ordered bool, render keyRenderer) ([]Statement, error) {
	var out []Statement
	for _, batch := range KeyBatches(s.Dialect, keys) {
		p := s.Params()
		sql, err := render(func(p *masking.Params) string { return s.KeyIn(c, batch, p) }, p)
		if err != nil {
			return nil, err
		}
		if ordered {
			sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", s.quote(c.PrimaryKey), len(batch))
		}
		out = append(out, Statement{sql, p.Values()})
	}
	return out, nil
}

// deleteRows deletes the rows of rs. Listed rows are counted by their keys,
// selected ones by a count of the condition.
func (s *Session) deleteRows(c *datamap.Collection, rs rowSet) Step {
	st := Step{Result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionDelete, Rows: int64(len(rs.keys))}}
	st.Exec, _ = s.changeRows(c, rs, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		return "DELETE FROM " + s.tableRef(c) + " WHERE " + keyCond(p), nil
	})
	if rs.sel != nil {
		st.Count, _ = s.countRows(c, rs, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
			return "SELECT count(*) FROM " + s.tableRef(c) + " WHERE " + keyCond(p), nil
		})
	}
	return st
}

// anonymizeRows masks each mask's fields in its rows, one UPDATE per batch
// of keys or per selection (and per set of fields, when some rows keep the
// columns held rows are found by). When every strategy is deterministic, rows whose fields
// already hold their masked values are skipped, so running an erasure again
// changes (and counts) nothing. hash is the exception: a digest differs from
// the digest of itself, so rows still found after anonymization (through an
// identity column that is not masked) are hashed again.
func (s *Session) anonymizeRows(c *datamap.Collection, masks []Mask, reason string) (Step, error) {
	st := Step{Result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionAnonymize, Reason: reason}}
	for _, m := range masks {
		if len(m.Fields) == 0 {
			continue
		}
		exec, count, err := s.maskStatements(c, m.Fields, m.rows())
		if err != nil {
			return Step{}, err
		}
		st.Exec, st.Count = append(st.Exec, exec...), append(st.Count, count...)
	}
	return st, nil
}

// maskStatements render the UPDATEs that mask fields in the rows of rs, and
// the counts of the rows they would change.
func (s *Session) maskStatements(c *datamap.Collection, fields []datamap.Field, rs rowSet) (exec, count []Statement, err error) {
	exec, err = s.changeRows(c, rs, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		sets, err := s.assignments(c, fields, p)
		if err != nil {
			return "", err
		}
		where, err := s.rowsToMask(c, fields, keyCond(p), p)
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", s.tableRef(c), sets, where), err
	})
	if err != nil {
		return nil, nil, err
	}
	count, err = s.countRows(c, rs, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		where, err := s.rowsToMask(c, fields, keyCond(p), p)
		return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", s.tableRef(c), where), err
	})
	return exec, count, err
}

// rowsToMask narrows keyCond to the rows some field of which would change.
// A strategy that is not deterministic changes every row, except when
// verifying (see Session.Verifying).
func (s *Session) rowsToMask(c *datamap.Collection, fields []datamap.Field, keyCond string, p *masking.Params) (string, error) {
	var comparable, other []datamap.Field
	for _, f := range fields {
		if masking.Deterministic(f.Masking) {
			comparable = append(comparable, f)
		} else {
			other = append(other, f)
		}
	}
	if len(other) > 0 && !s.Verifying {
		return keyCond, nil
	}
	exprs, err := s.maskExpressions(c, comparable, p)
	if err != nil {
		return "", err
	}
	var changes []string
	for i, f := range comparable {
		changes = append(changes, s.Dialect.Distinct(s.Schema.Column(c, f.Name), s.quote(f.Name), exprs[i]))
	}
	for _, f := range other {
		for t, column := range c.Identity {
			if v, ok := s.subject[t]; ok && column == f.Name {
				if cond, ok := s.Dialect.Match(s.Schema.Column(c, f.Name), s.quote(f.Name), []string{v}, masking.KindText, p); ok {
					changes = append(changes, cond)
				}
			}
		}
	}
	if len(changes) == 0 {
		return keyCond + " AND 1 = 0", nil // nothing that can be compared is left to check
	}
	return keyCond + " AND (" + strings.Join(changes, " OR ") + ")", nil
}

// assignments renders the SET list that masks fields.
func (s *Session) assignments(c *datamap.Collection, fields []datamap.Field, p *masking.Params) (string, error) {
	sets, err := s.maskExpressions(c, fields, p)
	if err != nil {
		return "", err
	}
	for i, f := range fields {
		sets[i] = s.quote(f.Name) + " = " + sets[i]
	}
	return strings.Join(sets, ", "), nil
}

// maskExpressions renders the expressions that mask fields of c's rows.
func (s *Session) maskExpressions(c *datamap.Collection, fields []datamap.Field, p *masking.Params) ([]string, error) {
	exprs := make([]string, len(fields))
	for i, f := range fields {
		target := masking.Target{Column: s.Schema.Column(c, f.Name).ColumnInfo, Ref: s.quote(f.Name), PrimaryKey: s.quote(c.PrimaryKey)}
		expr, err := s.Dialect.Expr(f.Masking, target, s.Key, p)
		if err != nil {
			return nil, fmt.Errorf("%w: collection %q: %v", stores.ErrInvalid, c.Name, err)
		}
		exprs[i] = expr
	}
	return exprs, nil
}

// rectificationSteps sets, in the subject's rows (listed or selected), the
// fields RectificationSteps names. Rows already holding the value are
// skipped, so running it again changes nothing.
func (s *Session) rectificationSteps(ctx context.Context, rows Rows, sel Selections, req stores.Request) ([]Step, error) {
	steps, err := RectificationSteps(s.Map, req, func(c *datamap.Collection, fields []datamap.Field) Step {
		if sel[c] != nil {
			return s.rectifyRows(c, fields, rowSet{sel: sel[c]}, req)
		}
		return s.rectifyRows(c, fields, listed(rows[c]), req)
	}, func(c *datamap.Collection) (Step, error) {
		n := int64(len(rows[c]))
		if sel[c] != nil {
			var err error
			if n, err = s.countSelected(ctx, c, sel[c]); err != nil {
				return Step{}, err
			}
		}
		return ReportStep(RetainResult(c, n)), nil
	})
	// Selected collections first: their conditions may compare the values of
	// parent rows this rectification changes (see selectedErasure). Each is
	// a leaf, so none is a parent of another.
	first := func(st Step) bool {
		c, _ := s.Map.Get(st.Result.Collection)
		return sel[c] != nil
	}
	slices.SortStableFunc(steps, func(a, b Step) int { return cmp.Compare(boolRank(!first(a)), boolRank(!first(b))) })
	return steps, err
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Session) rectifyRows(c *datamap.Collection, fields []datamap.Field, rs rowSet, req stores.Request) Step {
	st := Step{Result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionRectify}}
	value := func(f datamap.Field, p *masking.Params) string {
		return s.Dialect.BindValue(s.Schema.Column(c, f.Name), req.Rectification[f.Category], p)
	}
	changed := func(keyCond string, p *masking.Params) string {
		changes := make([]string, len(fields))
		for i, f := range fields {
			changes[i] = s.Dialect.Distinct(s.Schema.Column(c, f.Name), s.quote(f.Name), value(f, p))
		}
		return keyCond + " AND (" + strings.Join(changes, " OR ") + ")"
	}
	st.Exec, _ = s.changeRows(c, rs, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		sets := make([]string, len(fields))
		for i, f := range fields {
			sets[i] = s.quote(f.Name) + " = " + value(f, p)
		}
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", s.tableRef(c), strings.Join(sets, ", "), changed(keyCond(p), p)), nil
	})
	st.Count, _ = s.countRows(c, rs, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", s.tableRef(c), changed(keyCond(p), p)), nil
	})
	return st
}

// export streams the subject's rows of every collection in scope to w (see
// Export); the selected collections' rows are read by their condition, by
// one cursor each.
func (s *Session) export(ctx context.Context, subject map[string]string, scope datamap.Scope, w stores.ExportWriter) ([]stores.CollectionResult, error) {
	rows, sel, err := s.resolveRequest(ctx, s.resolver(), stores.Request{Kind: stores.KindAccess, Subject: subject, Scope: scope})
	if err != nil {
		return nil, err
	}
	return Export(s.Map, scope, w, func(c *datamap.Collection, w stores.ExportWriter) (int64, error) {
		if sel[c] != nil {
			return s.exportRows(ctx, c, rowSet{sel: sel[c]}, scope, w)
		}
		return s.exportRows(ctx, c, listed(rows[c]), scope, w)
	})
}

// exportRows writes to w, as the cursor reads them, the primary key and the
// mapped fields in scope of c's rows of rs, keyed by their names in the
// data map, and counts them. An error of w (the budget is spent) stops the
// query at once and is returned as it is, not as a database error.
func (s *Session) exportRows(ctx context.Context, c *datamap.Collection, rs rowSet, scope datamap.Scope, w stores.ExportWriter) (int64, error) {
	pk := s.primaryKey(c)
	names, selects, kinds := []string{c.PrimaryKey}, []string{s.Dialect.ExportColumn(pk, s.quote(c.PrimaryKey))}, []masking.Kind{pk.Kind}
	for _, f := range c.Fields {
		// A field that is the primary key column, as the database compares names, is exported once.
		if col := s.Schema.Column(c, f.Name); col.Name != pk.Name && scope.Covers(f.Category) {
			names, selects, kinds = append(names, f.Name), append(selects, s.Dialect.ExportColumn(col, s.quote(f.Name))), append(kinds, col.Kind)
		}
	}
	var n int64
	var writeErr error
	queries, _ := s.statements(c, rs, false, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		// ORDER BY names the table's column: the bare name may be a text output column.
		return fmt.Sprintf("SELECT %s FROM %s AS t WHERE %s ORDER BY t.%s", strings.Join(selects, ", "), s.tableRef(c), keyCond(p), s.quote(c.PrimaryKey)), nil
	})
	for _, q := range queries {
		err := s.Tx.ExportRows(ctx, q, kinds, func(values []any) error {
			row := make(map[string]any, len(names))
			for i, name := range names {
				row[name] = values[i]
			}
			if writeErr = w.Row(c.Name, row); writeErr != nil {
				return writeErr
			}
			n++
			return nil
		})
		if writeErr != nil {
			return n, writeErr
		}
		if err != nil {
			return n, s.dbError(fmt.Sprintf("exporting collection %q", c.Name), err)
		}
	}
	return n, nil
}

// JSONValue makes a value a driver scanned JSON-friendly: dates as
// YYYY-MM-DD, timestamps as RFC 3339 in UTC, non-finite floats and anything
// unusual as text. Engines convert their drivers' other types first.
func JSONValue(kind masking.Kind, v any) any {
	switch v := v.(type) {
	case nil, string, bool, int64, uint64:
		return v
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
		return v
	case time.Time:
		if kind == masking.KindDate {
			return v.Format(time.DateOnly)
		}
		return v.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}
