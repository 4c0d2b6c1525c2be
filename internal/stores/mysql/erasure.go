package mysql

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
		return s.erasureStepsOf(ctx, f, c, e, rows, spared)
	}
	return sqlcore.EraseSteps(ctx, s.m, rows, req, f, own, reportStep)
}

// erasureStepsOf lists the steps of one collection's own action.
func (s *Store) erasureStepsOf(ctx context.Context, f finder, c *datamap.Collection, e sqlcore.Erasure, rows sqlcore.Rows, spared map[*datamap.Collection][]string) ([]step, error) {
	switch e.Action {
	case stores.ActionRetain:
		return []step{{result: sqlcore.RetainResult(c, len(rows[c]))}}, nil
	case stores.ActionDelete:
		var steps []step
		if len(e.Keys) > 0 {
			for _, ref := range c.Referrers {
				st, err := clearReferences(ctx, f, ref, e.Keys, spared[ref.Child])
				if err != nil {
					return nil, err
				}
				steps = append(steps, st)
			}
		}
		return append(steps, deleteRows(f.live, c, e.Keys)), nil
	default:
		st, err := s.anonymizeRows(f.live, c, e)
		return []step{st}, err
	}
}

// renderer writes a statement around a batch's key condition, binding its
// parameters in the order of the text.
type renderer func(keyCond func(*masking.Params) string, p *masking.Params) (string, error)

// changeByKeys renders a DELETE or UPDATE per batch of keys, each ending in
// ORDER BY pk LIMIT n: the optimizer then reads the primary key's ranges
// instead of scanning the table, which under READ COMMITTED would wait on the
// locks of rows outside the batch (a row the application is writing, a row a
// sweep skipped).
func changeByKeys(live *liveSchema, c *datamap.Collection, keys []string, render renderer) ([]statement, error) {
	return byKeys(live, c, keys, true, render)
}

// countByKeys renders a SELECT count(*) per batch of keys.
func countByKeys(live *liveSchema, c *datamap.Collection, keys []string, render renderer) ([]statement, error) {
	return byKeys(live, c, keys, false, render)
}

func byKeys(live *liveSchema, c *datamap.Collection, keys []string, ordered bool, render renderer) ([]statement, error) {
	pk := live.column(c, c.PrimaryKey)
	var out []statement
	for _, chunk := range chunks(keys) {
		p := masking.NewParams(masking.MySQL)
		keyCond := func(p *masking.Params) string { return keyIn(pk, quote(c.PrimaryKey), chunk, p) }
		sql, err := render(keyCond, p)
		if err != nil {
			return nil, err
		}
		if ordered {
			sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", quote(c.PrimaryKey), len(chunk))
		}
		out = append(out, statement{sql, p.Values()})
	}
	return out, nil
}

func deleteRows(live *liveSchema, c *datamap.Collection, keys []string) step {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionDelete, Rows: int64(len(keys))}}
	st.exec, _ = changeByKeys(live, c, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		return "DELETE FROM " + tableRef(c) + " WHERE " + keyCond(p), nil
	})
	return st
}

// clearReferences sets ref's field to NULL in the rows referring to parent
// rows about to be deleted (those rows belong to others), except in the
// spared rows. The referring rows are found (and, in Apply, locked) first,
// then updated by primary key.
func clearReferences(ctx context.Context, f finder, ref *datamap.Edge, parentKeys, spared []string) (step, error) {
	referring, err := f.referring(ctx, ref, parentKeys)
	if err != nil {
		return step{}, err
	}
	keys := sqlcore.Without(f.distinctSorted(ref.Child, referring), spared)
	st := step{result: stores.CollectionResult{Collection: ref.Child.Name, Action: stores.ActionSetNull, Rows: int64(len(keys)), Reason: sqlcore.SetNullReason(ref)}}
	st.exec, _ = changeByKeys(f.live, ref.Child, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		return fmt.Sprintf("UPDATE %s SET %s = NULL WHERE %s", tableRef(ref.Child), quote(ref.ChildField), keyCond(p)), nil
	})
	return st, nil
}

// anonymizeRows masks the erasure's fields in its rows, one UPDATE per batch
// of keys (and per set of fields, when some rows keep the columns held rows
// are found by). When every strategy is deterministic, rows whose fields
// already hold their masked values are skipped, so running an erasure again
// changes (and counts) nothing. hash is the exception: a digest differs from
// the digest of itself, so rows still found after anonymization (through an
// identity column that is not masked) are hashed again.
func (s *Store) anonymizeRows(live *liveSchema, c *datamap.Collection, e sqlcore.Erasure) (step, error) {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionAnonymize, Reason: e.PathReason}}
	for _, m := range e.Masks() {
		if len(m.Fields) == 0 {
			continue
		}
		exec, count, err := s.maskStatements(live, c, m.Fields, m.Keys)
		if err != nil {
			return step{}, err
		}
		st.exec, st.count = append(st.exec, exec...), append(st.count, count...)
	}
	return st, nil
}

// maskStatements render the UPDATEs that mask fields in the rows of keys, and
// the counts of the rows they would change.
func (s *Store) maskStatements(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keys []string) (exec, count []statement, err error) {
	exec, err = changeByKeys(live, c, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		sets, err := s.maskExpressions(live, c, fields, p)
		if err != nil {
			return "", err
		}
		for i, f := range fields {
			sets[i] = quote(f.Name) + " = " + sets[i]
		}
		where, err := s.rowsToMask(live, c, fields, keyCond(p), p)
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(c), strings.Join(sets, ", "), where), err
	})
	if err != nil {
		return nil, nil, err
	}
	count, err = countByKeys(live, c, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		where, err := s.rowsToMask(live, c, fields, keyCond(p), p)
		return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(c), where), err
	})
	return exec, count, err
}

// rowsToMask narrows keyCond to the rows some field of which would change.
func (s *Store) rowsToMask(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keyCond string, p *masking.Params) (string, error) {
	for _, f := range fields {
		if !masking.Deterministic(f.Masking) {
			return keyCond, nil
		}
	}
	exprs, err := s.maskExpressions(live, c, fields, p)
	if err != nil {
		return "", err
	}
	changes := make([]string, len(fields))
	for i, f := range fields {
		changes[i] = distinct(live.column(c, f.Name), quote(f.Name), exprs[i])
	}
	return keyCond + " AND (" + strings.Join(changes, " OR ") + ")", nil
}

// distinct is SQL's IS DISTINCT FROM, exact for text: a value differing only
// in case, accents or trailing spaces is still a change to write.
func distinct(col column, ref, value string) string {
	if col.Kind == masking.KindText {
		return "NOT (" + binaryText(ref) + " <=> " + binaryText(value) + ")"
	}
	return "NOT (" + ref + " <=> " + value + ")"
}

func (s *Store) maskExpressions(live *liveSchema, c *datamap.Collection, fields []datamap.Field, p *masking.Params) ([]string, error) {
	exprs := make([]string, len(fields))
	for i, f := range fields {
		target := masking.Target{Column: live.column(c, f.Name).ColumnInfo, Ref: quote(f.Name), PrimaryKey: quote(c.PrimaryKey)}
		expr, err := masking.MySQL.Expr(f.Masking, target, s.key, p)
		if err != nil {
			return nil, fmt.Errorf("%w: collection %q: %v", stores.ErrInvalid, c.Name, err)
		}
		exprs[i] = expr
	}
	return exprs, nil
}
