package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// erasure is what an erasure does to one collection.
type erasure struct {
	action stores.Action
	// fields anonymize masks (action anonymize).
	fields []datamap.Field
	// keys are the rows deleted or anonymized: the subject's rows minus the retained ones.
	keys []string
}

// erasureSteps lists an erasure's steps children first. In every collection in
// scope: retained rows are reported with their reason; the other rows are
// deleted or anonymized as mapped; before deleting rows, setNull references to
// them from other rows are cleared.
func (s *Store) erasureSteps(ctx context.Context, tx pgx.Tx, live *liveSchema, rows subjectRows, req stores.Request) ([]step, bool, error) {
	kept, err := s.retainedRows(ctx, tx, live, rows, req)
	if err != nil {
		return nil, false, err
	}
	plans, err := s.erasurePlans(rows, kept, req.Scope)
	if err != nil {
		return nil, false, err
	}
	spared := sparedFromClearing(plans, kept)
	var steps []step
	held := false
	for i := len(s.m.Collections) - 1; i >= 0; i-- {
		c := s.m.Collections[i]
		e, ok := plans[c]
		if !ok {
			continue
		}
		collectionSteps, err := s.erasureStepsOf(live, c, e, rows, spared)
		if err != nil {
			return nil, false, err
		}
		steps = append(steps, collectionSteps...)
		if e.action == stores.ActionRetain {
			continue
		}
		for _, r := range kept[c] {
			steps = append(steps, step{result: r.result(c.Name)})
			held = held || r.held
		}
	}
	return steps, held, nil
}

// erasurePlans decides what erasure does to each collection in scope, and to
// which of the subject's rows (all but the retained ones).
func (s *Store) erasurePlans(rows subjectRows, kept map[*datamap.Collection][]retained, scope datamap.Scope) (map[*datamap.Collection]erasure, error) {
	plans := map[*datamap.Collection]erasure{}
	for _, c := range s.m.Collections {
		if !scope.InScope(c) {
			continue
		}
		e, err := erasureOf(c, scope)
		if err != nil {
			return nil, err
		}
		e.keys = rows[c]
		for _, r := range kept[c] {
			e.keys = without(e.keys, r.keys)
		}
		plans[c] = e
	}
	return plans, nil
}

// sparedFromClearing are, per collection, the subject's rows whose setNull
// references are not cleared: rows this erasure deletes anyway, and rows it
// must leave unchanged (retained, held or exempted). A kept row whose foreign
// key then blocks the parent's delete fails the erasure rather than breaking
// the hold.
func sparedFromClearing(plans map[*datamap.Collection]erasure, kept map[*datamap.Collection][]retained) map[*datamap.Collection][]string {
	spared := map[*datamap.Collection][]string{}
	for c, e := range plans {
		if e.action != stores.ActionAnonymize {
			spared[c] = append(spared[c], e.keys...)
		}
	}
	for c, rs := range kept {
		for _, r := range rs {
			spared[c] = append(spared[c], r.keys...)
		}
	}
	return spared
}

// erasureOf decides what erasure does to c. A collection mapped delete whose
// fields the scope covers only in part is anonymized instead, masking only
// the fields in scope: deleting the rows would erase data the request does
// not cover. Anonymizing with no masked field in scope is impossible, and an
// error rather than a silent skip.
func erasureOf(c *datamap.Collection, scope datamap.Scope) (erasure, error) {
	if c.OnErasure == privacyv1.ErasureRetain {
		return erasure{action: stores.ActionRetain}, nil
	}
	var fields []datamap.Field
	var unmasked []string
	covered := 0
	for _, f := range c.Fields {
		if !scope.Covers(f.Category) {
			continue
		}
		covered++
		if f.Masking != nil {
			fields = append(fields, f)
		} else {
			unmasked = append(unmasked, f.Name)
		}
	}
	if c.OnErasure == privacyv1.ErasureDelete && covered == len(c.Fields) {
		return erasure{action: stores.ActionDelete}, nil
	}
	if len(fields) == 0 {
		return erasure{}, fmt.Errorf("%w: collection %q: none of its fields in the request's scope (%s) has masking, so they can be neither anonymized nor deleted without erasing data outside the scope; add masking to them or widen the scope",
			stores.ErrInvalid, c.Name, strings.Join(unmasked, ", "))
	}
	return erasure{action: stores.ActionAnonymize, fields: fields}, nil
}

// erasureStepsOf lists the steps of one collection's own action.
func (s *Store) erasureStepsOf(live *liveSchema, c *datamap.Collection, e erasure, rows subjectRows, spared map[*datamap.Collection][]string) ([]step, error) {
	switch e.action {
	case stores.ActionRetain:
		return []step{{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionRetain, Rows: int64(len(rows[c])), Reason: retainReason(c)}}}, nil
	case stores.ActionDelete:
		var steps []step
		if len(e.keys) > 0 {
			for _, ref := range c.Referrers {
				steps = append(steps, clearReferences(live, ref, e.keys, spared[ref.Child]))
			}
		}
		return append(steps, deleteRows(live, c, e.keys)), nil
	default:
		st, err := s.anonymizeRows(live, c, e.fields, e.keys)
		return []step{st}, err
	}
}

func retainReason(c *datamap.Collection) string {
	if c.RetainReason != "" {
		return c.RetainReason
	}
	return "the data map retains this collection on erasure"
}

func deleteRows(live *liveSchema, c *datamap.Collection, keys []string) step {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionDelete, Rows: int64(len(keys))}}
	if len(keys) > 0 {
		p := masking.NewParams(masking.Postgres)
		st.exec = &statement{"DELETE FROM " + tableRef(c) + " WHERE " + keyIn(live, c, keys, p), p.Values()}
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
			Reason: fmt.Sprintf("%s cleared where it referred to erased rows of %s", ref.ChildField, ref.Parent.Name)},
		exec:  &statement{fmt.Sprintf("UPDATE %s SET %s = NULL WHERE %s", tableRef(ref.Child), quote(ref.ChildField), where(p)), p.Values()},
		count: &statement{fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(ref.Child), where(cp)), cp.Values()},
	}
}

// anonymizeRows masks fields in the given rows with one UPDATE. When every
// strategy is deterministic, rows whose fields already hold their masked
// values are skipped, so running an erasure again changes (and counts)
// nothing. hash is the exception: a digest differs from the digest of itself,
// so rows still found after anonymization (through an identity column that is
// not masked) are hashed again.
func (s *Store) anonymizeRows(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keys []string) (step, error) {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionAnonymize}}
	if len(keys) == 0 {
		return st, nil
	}
	p := masking.NewParams(masking.Postgres)
	sets, err := s.maskExpressions(live, c, fields, p)
	if err != nil {
		return step{}, err
	}
	for i, f := range fields {
		sets[i] = quote(f.Name) + " = " + sets[i]
	}
	where, err := s.rowsToMask(live, c, fields, keys, p)
	if err != nil {
		return step{}, err
	}
	st.exec = &statement{fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(c), strings.Join(sets, ", "), where), p.Values()}
	cp := masking.NewParams(masking.Postgres)
	if where, err = s.rowsToMask(live, c, fields, keys, cp); err != nil {
		return step{}, err
	}
	st.count = &statement{fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(c), where), cp.Values()}
	return st, nil
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
