package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// erasureSteps lists an erasure's steps children first. In every collection in
// scope: retained rows are reported with their reason; the other rows are
// deleted or anonymized as mapped; before deleting rows, setNull references to
// them from other rows are cleared.
func (s *Store) erasureSteps(ctx context.Context, f finder, rows sqlcore.Rows, req stores.Request) ([]step, bool, error) {
	own := func(c *datamap.Collection, e sqlcore.Erasure, spared map[*datamap.Collection][]string) ([]step, error) {
		return s.erasureStepsOf(f.live, c, e, rows, spared)
	}
	return sqlcore.EraseSteps(ctx, s.m, rows, req, f, own, reportStep)
}

// erasureStepsOf lists the steps of one collection's own action.
func (s *Store) erasureStepsOf(live *liveSchema, c *datamap.Collection, e sqlcore.Erasure, rows sqlcore.Rows, spared map[*datamap.Collection][]string) ([]step, error) {
	switch e.Action {
	case stores.ActionRetain:
		return []step{{result: sqlcore.RetainResult(c, len(rows[c]))}}, nil
	case stores.ActionDelete:
		var steps []step
		if len(e.Keys) > 0 {
			for _, ref := range c.Referrers {
				steps = append(steps, clearReferences(live, ref, e.Keys, spared[ref.Child]))
			}
		}
		return append(steps, deleteRows(live, c, e.Keys)), nil
	default:
		st, err := s.anonymizeRows(live, c, e)
		return []step{st}, err
	}
}

func deleteRows(live *liveSchema, c *datamap.Collection, keys []string) step {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionDelete, Rows: int64(len(keys))}}
	if len(keys) > 0 {
		p := masking.NewParams(masking.Postgres)
		st.exec = []statement{{"DELETE FROM " + tableRef(c) + " WHERE " + keyIn(live, c, keys, p), p.Values()}}
	}
	return st
}

// clearReferences sets ref's field to NULL in the rows referring to parent
// rows about to be deleted (those rows belong to others), except in the
// spared rows.
func clearReferences(live *liveSchema, ref *datamap.Edge, parentKeys, spared []string) step {
	where := func(p *masking.Params) string {
		w := referencesRows(live, ref, parentKeys, p)
		if len(spared) > 0 {
			w += " AND NOT (" + keyIn(live, ref.Child, spared, p) + ")"
		}
		return w
	}
	p, cp := masking.NewParams(masking.Postgres), masking.NewParams(masking.Postgres)
	return step{
		result: stores.CollectionResult{Collection: ref.Child.Name, Action: stores.ActionSetNull,
			Reason: sqlcore.SetNullReason(ref)},
		exec:  []statement{{fmt.Sprintf("UPDATE %s SET %s = NULL WHERE %s", tableRef(ref.Child), quote(ref.ChildField), where(p)), p.Values()}},
		count: []statement{{fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(ref.Child), where(cp)), cp.Values()}},
	}
}

// anonymizeRows masks the erasure's fields in its rows with one UPDATE (two
// when some rows keep the columns held rows are found by). When every
// strategy is deterministic, rows whose fields already hold their masked
// values are skipped, so running an erasure again changes (and counts)
// nothing. hash is the exception: a digest differs from the digest of itself,
// so rows still found after anonymization (through an identity column that is
// not masked) are hashed again.
func (s *Store) anonymizeRows(live *liveSchema, c *datamap.Collection, e sqlcore.Erasure) (step, error) {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionAnonymize, Reason: e.PathReason}}
	for _, m := range e.Masks() {
		if len(m.Keys) == 0 || len(m.Fields) == 0 {
			continue
		}
		exec, count, err := s.maskStatements(live, c, m.Fields, m.Keys)
		if err != nil {
			return step{}, err
		}
		st.exec, st.count = append(st.exec, exec), append(st.count, count)
	}
	return st, nil
}

// maskStatements render the UPDATE that masks fields in the rows of keys, and
// the count of the rows it would change.
func (s *Store) maskStatements(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keys []string) (exec, count statement, err error) {
	p := masking.NewParams(masking.Postgres)
	sets, err := s.maskExpressions(live, c, fields, p)
	if err != nil {
		return statement{}, statement{}, err
	}
	for i, f := range fields {
		sets[i] = quote(f.Name) + " = " + sets[i]
	}
	where, err := s.rowsToMask(live, c, fields, keys, p)
	if err != nil {
		return statement{}, statement{}, err
	}
	exec = statement{fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(c), strings.Join(sets, ", "), where), p.Values()}
	cp := masking.NewParams(masking.Postgres)
	if where, err = s.rowsToMask(live, c, fields, keys, cp); err != nil {
		return statement{}, statement{}, err
	}
	return exec, statement{fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(c), where), cp.Values()}, nil
}

func (s *Store) rowsToMask(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keys []string, p *masking.Params) (string, error) {
	where := keyIn(live, c, keys, p)
	for _, f := range fields {
		if !masking.Deterministic(f.Masking) {
			return where, nil
		}
	}
	exprs, err := s.maskExpressions(live, c, fields, p)
	if err != nil {
		return "", err
	}
	changes := make([]string, len(fields))
	for i, f := range fields {
		changes[i] = quote(f.Name) + " IS DISTINCT FROM " + exprs[i]
	}
	return where + " AND (" + strings.Join(changes, " OR ") + ")", nil
}

func (s *Store) maskExpressions(live *liveSchema, c *datamap.Collection, fields []datamap.Field, p *masking.Params) ([]string, error) {
	exprs := make([]string, len(fields))
	for i, f := range fields {
		target := masking.Target{Column: live.column(c, f.Name).ColumnInfo, Ref: quote(f.Name), PrimaryKey: quote(c.PrimaryKey)}
		expr, err := masking.Postgres.Expr(f.Masking, target, s.key, p)
		if err != nil {
			return nil, fmt.Errorf("%w: collection %q: %v", stores.ErrInvalid, c.Name, err)
		}
		exprs[i] = expr
	}
	return exprs, nil
}
