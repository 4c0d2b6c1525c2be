// Package sqlcore is the SQL engines' (postgres, mysql) one implementation of
// a store: request validation, the decision of what erasure does to each
// collection, which of a subject's rows are kept (holds, legal minimums, and
// the rows that belong to kept rows), the order steps run in, the schema
// checks that only need the introspected columns, and the statements that
// resolve, erase, rectify, export and sweep (Core).
//
// An engine supplies only what differs between databases: a Dialect (how SQL
// is spelt: quoting, placeholders, binding and comparing keys and values,
// masking expressions), an Engine (its connections and transactions, its
// schema introspection and checks, its error classification) and a Tx (its
// driver). What only one database can do is an optional capability, each
// named for what it does: ResolvingEngine (PostgreSQL resolves in one
// statement, comparing references in the database), Batcher (PostgreSQL sends
// a request's statements in one round trip), SkipLockedChanger (PostgreSQL
// locks and changes a sweep range in one statement).
//
// Identity values, keys and masking keys are always bound parameters, and
// identifiers always quoted by the dialect; rows' values pass through only
// to an export.
package sqlcore

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Rows are the primary keys of the subject's rows per collection, as text (the
// engine's uniform rendering of every key type).
type Rows map[*datamap.Collection][]string

// SortedKeys returns the keys of m in order.
func SortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Without returns keys minus drop, keeping order.
func Without(keys, drop []string) []string {
	if len(drop) == 0 {
		return keys
	}
	skip := make(map[string]bool, len(drop))
	for _, k := range drop {
		skip[k] = true
	}
	var out []string
	for _, k := range keys {
		if !skip[k] {
			out = append(out, k)
		}
	}
	return out
}

// Intersect returns the keys that are also in among, keeping the order of keys.
func Intersect(keys, among []string) []string {
	in := make(map[string]bool, len(among))
	for _, k := range among {
		in[k] = true
	}
	var out []string
	for _, k := range keys {
		if in[k] {
			out = append(out, k)
		}
	}
	return out
}

// AccessResults reports, per collection in scope, how many of the subject's
// rows an export holds.
func AccessResults(m *datamap.Map, rows Rows, scope datamap.Scope) []stores.CollectionResult {
	var out []stores.CollectionResult
	for _, c := range m.Collections {
		if scope.InScope(c) {
			out = append(out, stores.CollectionResult{Collection: c.Name, Action: stores.ActionExport, Rows: int64(len(rows[c]))})
		}
	}
	return out
}

// RectifiedFields are the fields of c a rectification sets: those in scope
// whose category is exactly a key of req.Rectification (a value is one
// field's value: user.contact must not overwrite both email and phone).
func RectifiedFields(c *datamap.Collection, req stores.Request) []datamap.Field {
	var out []datamap.Field
	for _, f := range c.Fields {
		if _, ok := req.Rectification[f.Category]; ok && req.Scope.Covers(f.Category) {
			out = append(out, f)
		}
	}
	return out
}

// SubjectHere validates a subject for a lookup every store of a namespace is
// asked (which of its rows a sweep must skip): false without an error when
// none of the subject's identity types is mapped here, so it has no rows in
// this store; an error when the subject is invalid anywhere.
func SubjectHere(m *datamap.Map, subject map[string]string) (bool, error) {
	err := stores.ValidateSubject(m, subject)
	if err == nil || len(subject) == 0 {
		return err == nil, err
	}
	known := stores.IdentityTypes(m)
	for t, v := range subject {
		if slices.Contains(known, t) || strings.TrimSpace(v) == "" {
			return false, err // invalid here, or (an empty value) anywhere
		}
	}
	return false, nil
}

// SubjectKeys returns the keys resolve finds for the subject in each of
// collections (resolving once); none when the subject has no identity type
// this store maps (SubjectHere).
func SubjectKeys(m *datamap.Map, subject map[string]string, collections []string, resolve func() (Rows, error)) (map[string][]string, error) {
	cs := make([]*datamap.Collection, len(collections))
	for i, name := range collections {
		c, ok := m.Get(name)
		if !ok {
			return nil, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, name)
		}
		cs[i] = c
	}
	if here, err := SubjectHere(m, subject); !here {
		return nil, err
	}
	rows, err := resolve()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, c := range cs {
		if keys := rows[c]; len(keys) > 0 {
			out[c.Name] = keys
		}
	}
	return out, nil
}

// Export streams the subject's rows of every collection in scope to w, each
// collection's rows written by rowsOf as it reads them, collections in name
// order (the order of the export document). Collections where the subject has
// no row are reported but left out of the export; results keep the map's order.
func Export(m *datamap.Map, scope datamap.Scope, w stores.ExportWriter, rowsOf func(*datamap.Collection, stores.ExportWriter) (int64, error)) ([]stores.CollectionResult, error) {
	var inScope []*datamap.Collection
	for _, c := range m.Collections {
		if scope.InScope(c) {
			inScope = append(inScope, c)
		}
	}
	byName := slices.Clone(inScope)
	slices.SortFunc(byName, func(a, b *datamap.Collection) int { return strings.Compare(a.Name, b.Name) })
	counts := make(map[*datamap.Collection]int64, len(byName))
	for _, c := range byName {
		n, err := rowsOf(c, w)
		if err != nil {
			return nil, err
		}
		counts[c] = n
	}
	results := make([]stores.CollectionResult, 0, len(inScope))
	for _, c := range inScope {
		results = append(results, stores.CollectionResult{Collection: c.Name, Action: stores.ActionExport, Rows: counts[c]})
	}
	return results, nil
}

// RectificationSteps lists a rectification's steps: for each collection with
// fields to set (RectifiedFields), the engine's step (own) on the subject's
// rows. A collection the map retains on erasure is not changed either
// ("cannot be changed or removed"): it is reported as retained (retained).
func RectificationSteps[S any](m *datamap.Map, req stores.Request,
	own func(c *datamap.Collection, fields []datamap.Field) S, retained func(c *datamap.Collection) (S, error)) ([]S, error) {
	var steps []S
	for _, c := range m.Collections {
		fields := RectifiedFields(c, req)
		switch {
		case len(fields) == 0:
		case c.OnErasure == privacyv1.ErasureRetain:
			st, err := retained(c)
			if err != nil {
				return nil, err
			}
			steps = append(steps, st)
		default:
			steps = append(steps, own(c, fields))
		}
	}
	return steps, nil
}
