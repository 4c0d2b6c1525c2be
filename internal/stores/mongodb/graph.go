package mongodb

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// The reference graph, as the SQL engines walk it: a subject's documents
// are those its identities find, and the documents whose cascade reference
// holds a value read from the parent's documents found (sessions.accountId
// -> accounts._id: the _id values of the subject's accounts, then $in on
// sessions.accountId). What erasure keeps (holds resolved to documents,
// exemptions, the children of kept documents, the documents held ones are
// found through) and which setNull links it clears is decided by the same
// code as theirs (sqlcore's PlanErasure and ResolveHolds), over the
// documents read once per request: a document is named by its primary key
// as text.

// inBatch is how many values one $in of a reference names.
const inBatch = 500

// walk is one request's reading of the store: every document it found, by
// collection and key. It answers sqlcore.Finder's questions from them.
type walk struct {
	s    *Store
	docs map[string]map[string]document
	// skip are the collections the request being resolved names by a
	// filter (see selections): its walk leaves them out.
	skip map[*datamap.Collection]bool
}

var _ sqlcore.Finder = (*walk)(nil)

func (s *Store) newWalk() *walk { return &walk{s: s, docs: map[string]map[string]document{}} }

// remember keeps the documents found in c, and returns their keys, distinct
// and in key order.
func (w *walk) remember(c *datamap.Collection, docs []document) []string {
	known := w.docs[c.Name]
	if known == nil {
		known = map[string]document{}
		w.docs[c.Name] = known
	}
	var keys []string
	for _, d := range docs {
		if !slices.Contains(keys, d.key) {
			keys = append(keys, d.key)
		}
		known[d.key] = d
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// documents are c's documents of keys, in that order.
func (w *walk) documents(c *datamap.Collection, keys []string) []document {
	out := make([]document, 0, len(keys))
	for _, k := range keys {
		if d, ok := w.docs[c.Name][k]; ok {
			out = append(out, d)
		}
	}
	return out
}

// resolve finds the subject's documents, parents first: in each collection
// those where a mapped identity of the subject holds its value, and those
// whose cascade reference holds a value of the parent's documents found.
func (w *walk) resolve(ctx context.Context, subject map[string]string) (sqlcore.Rows, error) {
	return w.descend(ctx, func(ctx context.Context, coll *collection) ([]document, error) {
		filter := filterFor(coll, subject)
		if filter == nil {
			return nil, nil
		}
		return w.s.find(ctx, coll, filter)
	})
}

// descend is resolve with the documents each collection starts from given by own.
func (w *walk) descend(ctx context.Context, own func(context.Context, *collection) ([]document, error)) (sqlcore.Rows, error) {
	rows := sqlcore.Rows{}
	for _, c := range w.s.m.Collections {
		if w.skip[c] {
			continue
		}
		coll := w.s.colls[c.Name]
		found, err := own(ctx, coll)
		if err != nil {
			return nil, err
		}
		for _, e := range c.Parents {
			if len(rows[e.Parent]) == 0 {
				continue
			}
			more, err := w.referring(ctx, e, rows[e.Parent])
			if err != nil {
				return nil, err
			}
			found = append(found, more...)
		}
		if keys := w.remember(c, found); len(keys) > 0 {
			rows[c] = keys
		}
	}
	return rows, nil
}

// referring reads the documents of e's child whose reference holds a value
// of e's parent field in the parent documents of keys.
func (w *walk) referring(ctx context.Context, e *datamap.Edge, keys []string) ([]document, error) {
	values := w.values(e.Parent, e.ParentField, keys)
	child := w.s.colls[e.Child.Name]
	p := child.refs[e.ChildField]
	var out []document
	for batch := range slices.Chunk(values, inBatch) {
		found, err := w.s.find(ctx, child, bson.D{{Key: p.dotted, Value: bson.D{{Key: "$in", Value: bson.A(batch)}}}})
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// values are the distinct non-null values at path name in c's documents of keys.
func (w *walk) values(c *datamap.Collection, name string, keys []string) []any {
	p, err := parsePath(name)
	if err != nil {
		return nil
	}
	var out []any
	for _, d := range w.documents(c, keys) {
		for _, v := range valuesAt(d.doc, p) {
			if !referable(v) || slices.ContainsFunc(out, func(o any) bool { return sameValue(o, v) }) {
				continue
			}
			out = append(out, v)
		}
	}
	return out
}

// referable reports whether a stored value can be matched as a reference:
// a scalar that $in compares by equality. A regular expression (which $in
// would apply as a pattern), code, documents, arrays and null never are.
func referable(v any) bool {
	switch v.(type) {
	case string, int32, int64, float64, bool, primitive.ObjectID, primitive.Binary, primitive.DateTime, primitive.Decimal128:
		return true
	}
	return false
}

// valuesAt are the values at p in a document: one, or one per element of p's array.
func valuesAt(doc bson.D, p path) []any {
	if p.array == "" {
		v, ok := lookup(doc, p.dotted)
		if !ok {
			return nil
		}
		if arr, isArray := v.(bson.A); isArray {
			return arr // MongoDB matches an array by any of its elements
		}
		return []any{v}
	}
	base, _ := lookup(doc, p.array)
	arr, _ := base.(bson.A)
	var out []any
	for _, el := range arr {
		if v, ok := lookup(el, p.elem); ok {
			out = append(out, v)
		}
	}
	return out
}

// read is sqlcore's read for ResolveHolds: the distinct values, as text, at
// an identity path of c's documents of keys.
func (w *walk) read(_ context.Context, c *datamap.Collection, name string, keys []string) ([]string, error) {
	var out []string
	for _, v := range w.values(c, name, keys) {
		if t, ok := text(v); ok && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// ChildrenOf returns which of the child keys among refer through e to the
// parent documents of parentKeys.
func (w *walk) ChildrenOf(_ context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error) {
	values := w.values(e.Parent, e.ParentField, parentKeys)
	return w.holding(e.Child, e.ChildField, among, values), nil
}

// ParentsOf returns which of the parent keys among the child documents of
// childKeys refer to through e.
func (w *walk) ParentsOf(_ context.Context, e *datamap.Edge, childKeys, among []string) ([]string, error) {
	values := w.values(e.Child, e.ChildField, childKeys)
	return w.holding(e.Parent, e.ParentField, among, values), nil
}

// holding returns, in key order, which of c's documents of among hold one of
// values at path name.
func (w *walk) holding(c *datamap.Collection, name string, among []string, values []any) []string {
	p, err := parsePath(name)
	if err != nil || len(values) == 0 {
		return nil
	}
	var out []string
	for _, d := range w.documents(c, among) {
		if slices.ContainsFunc(valuesAt(d.doc, p), func(v any) bool {
			return slices.ContainsFunc(values, func(o any) bool { return sameValue(o, v) })
		}) {
			out = append(out, d.key)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// Exempted returns which of c's documents of among hold, at the
// exemption's field, a date after its cutoff (a BSON date, or RFC 3339 or
// YYYY-MM-DD text), with the oldest and newest of those dates. A document
// without such a date cannot be shown to be inside the legal period.
func (w *walk) Exempted(_ context.Context, c *datamap.Collection, ex stores.Exemption, among []string) ([]string, sqlcore.Span, error) {
	p, err := parsePath(ex.Field)
	if err != nil || p.array != "" {
		return nil, sqlcore.Span{}, fmt.Errorf("%w: retention rule %s: field %q of collection %q is not a document path outside arrays", stores.ErrInvalid, ex.Rule, ex.Field, c.Name)
	}
	var keys []string
	var span sqlcore.Span
	for _, d := range w.documents(c, among) {
		v, _ := lookup(d.doc, p.dotted)
		if t, ok := asTime(v); ok && t.After(ex.Cutoff) {
			keys = append(keys, d.key)
			span.Add(t)
		}
	}
	return keys, span, nil
}

// sameValue is MongoDB's equality of two stored scalars: numbers across
// numeric types, binary by its bytes, the rest by type and value.
func sameValue(a, b any) bool {
	if x, ok := asInt(a); ok {
		y, ok := asInt(b)
		return ok && x == y
	}
	if x, ok := a.(float64); ok {
		y, ok := b.(float64)
		return ok && x == y
	}
	if x, ok := a.(primitive.Binary); ok {
		y, ok := b.(primitive.Binary)
		return ok && bytes.Equal(x.Data, y.Data)
	}
	switch a.(type) {
	case bson.D, bson.A, bson.M:
		return false
	}
	return a == b
}

// step is one result of a request and the writes that carry it out.
type step struct {
	result stores.CollectionResult
	write  collWrite
}

// eraseSteps plans an erasure with the SQL engines' rules (holds resolved to
// documents, exemptions, the children of kept documents, the documents held
// ones are found through, the setNull links to clear) and lists its steps
// children first.
func (s *Store) eraseSteps(ctx context.Context, w *walk, rows sqlcore.Rows, sel selections, req stores.Request, apply bool) ([]step, []string, error) {
	held, err := sqlcore.ResolveHolds(ctx, s.m, req, w.resolve, w.read)
	if err != nil {
		return nil, nil, err
	}
	plan, err := sqlcore.PlanErasure(ctx, s.m, rows, req, held, w)
	if err != nil {
		return nil, nil, err
	}
	return sqlcore.ErasureSteps(s.m, plan, func(c *datamap.Collection, e sqlcore.Erasure) ([]step, error) {
		if sel[c] != nil {
			return s.selectedErasure(ctx, w, c, e, sel[c], plan.Kept, req, apply)
		}
		if e.Action == stores.ActionRetain {
			return []step{{result: sqlcore.RetainResult(c, int64(len(rows[c])))}}, nil
		}
		return s.eraseDocs(ctx, w, c, e, req, func(ref *datamap.Edge) []string { return plan.Spared[ref.Child] })
	}, func(r stores.CollectionResult) step { return step{result: r} })
}

// eraseDocs are the steps that delete or anonymize e's documents of c: first,
// when they are erased whole, the setNull references to them from other
// documents are cleared (but in the documents spared returns).
func (s *Store) eraseDocs(ctx context.Context, w *walk, c *datamap.Collection, e sqlcore.Erasure, req stores.Request,
	spared func(*datamap.Edge) []string) ([]step, error) {
	var steps []step
	if len(e.Keys) > 0 && e.Whole {
		for _, ref := range c.Referrers {
			st, err := s.clearReferences(ctx, w, ref, e.Keys, spared(ref))
			if err != nil {
				return nil, err
			}
			steps = append(steps, st)
		}
	}
	coll := s.colls[c.Name]
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: e.Action}, write: collWrite{collection: c.Name}}
	if e.Action == stores.ActionDelete {
		docs := w.documents(c, e.Keys)
		st.result.Rows = int64(len(docs))
		for chunk := range slices.Chunk(docs, deleteBatch) {
			ids := make(bson.A, len(chunk))
			for i, d := range chunk {
				ids[i] = d.id
			}
			st.write.models = append(st.write.models, mongo.NewDeleteManyModel().SetFilter(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}))
		}
		return append(steps, st), nil
	}
	for _, m := range e.Masks() {
		for _, d := range w.documents(c, m.Keys) {
			model, err := s.maskDoc(coll, req, d, m.Fields)
			if err != nil {
				return nil, err
			}
			if model != nil {
				st.result.Rows++
				st.write.models = append(st.write.models, model)
				st.write.guarded++
			}
		}
	}
	if len(e.Paths) > 0 {
		st.result.Reason = e.PathReason
	}
	return append(steps, st), nil
}

// clearReferences is the step that removes ref's field ($unset) from the
// documents referring to the parent documents of parentKeys (they belong to
// others), except the spared ones; each update is guarded by the value it
// removes.
func (s *Store) clearReferences(ctx context.Context, w *walk, ref *datamap.Edge, parentKeys, spared []string) (step, error) {
	docs, err := w.referring(ctx, ref, parentKeys)
	if err != nil {
		return step{}, err
	}
	child := s.colls[ref.Child.Name]
	p := child.refs[ref.ChildField]
	st := step{result: stores.CollectionResult{Collection: ref.Child.Name, Action: stores.ActionSetNull, Reason: sqlcore.SetNullReason(ref)},
		write: collWrite{collection: ref.Child.Name}}
	var done []string
	for _, d := range docs {
		if slices.Contains(spared, d.key) || slices.Contains(done, d.key) {
			continue
		}
		done = append(done, d.key)
		v, _ := lookup(d.doc, p.dotted)
		st.write.models = append(st.write.models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: d.id}, {Key: p.dotted, Value: v}}).
			SetUpdate(bson.D{{Key: "$unset", Value: bson.D{{Key: p.dotted, Value: ""}}}}))
		st.write.guarded++
	}
	st.result.Rows = int64(len(done))
	return st, nil
}

// resolve resolves a request: the subject's documents in every collection,
// then, in scope, what happens to them. It only reads.
func (s *Store) resolve(ctx context.Context, req stores.Request, apply bool) (*resolution, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	w := s.newWalk()
	rows, sel, err := w.resolveRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	r := &resolution{}
	switch req.Kind {
	case stores.KindErasure:
		if err := w.listTextDated(ctx, req, rows, sel); err != nil {
			return nil, err
		}
		steps, heldBy, err := s.eraseSteps(ctx, w, rows, sel, req, apply)
		if err != nil {
			return nil, err
		}
		for _, st := range steps {
			if st.write.where != nil {
				st.write.result = len(r.results)
				r.writes = append(r.writes, st.write)
			} else if len(st.write.models) > 0 {
				r.writes = append(r.writes, st.write)
			}
			r.add(st.result)
		}
		r.heldBy = heldBy
	case stores.KindRectification:
		for _, c := range s.m.Collections {
			if req.Scope.InScope(c) {
				if err := s.rectify(s.colls[c.Name], req, w.documents(c, rows[c]), r); err != nil {
					return nil, err
				}
			}
		}
	case stores.KindAccess:
		for _, cr := range sqlcore.AccessResults(s.m, rows, req.Scope) {
			if c, _ := s.m.Get(cr.Collection); sel[c] != nil {
				if cr.Rows, err = s.count(ctx, s.colls[c.Name], sel[c]); err != nil {
					return nil, err
				}
			}
			r.add(cr)
		}
	}
	return r, nil
}
