package mongodb

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// A heavy user's documents are mostly in leaf collections (events, tokens,
// messages: a million documents below one account), as in the SQL engines
// (sqlcore's Selection). Nothing in the manager needs their keys: no
// collection is found through them, none refers to them, they refer to
// nothing they would have to clear. So a request never lists them: they are
// named by a filter the server evaluates, the subject's identities $in
// their literal values, or a reference $in the values of the parent's
// documents found (which are few), and every operation acting on them
// carries the filter: countDocuments to plan, verify and report what is
// kept, deleteMany to erase, a cursor to export. The documents kept (with a
// kept parent, or whose exemption date is after the cutoff) are named by
// filters too and left out ($nor) of the ones the request changes.
//
// Only collections that erasure deletes or retains whole are selected, for
// erasure and access requests; a collection a hold of the request covers
// is listed (a hold is decided by comparing documents), and so are
// collections anonymized (each update is computed per document and
// guarded), collections whose documents hold several people's elements,
// and rectifications.

// selections are the request's documents named by a filter, per collection.
type selections map[*datamap.Collection]bson.D

// selectedDeleteBatch bounds the documents one deleteMany of a selection
// removes: a deleteMany that matches more fails on FerretDB v1's SQLite
// backend (it deletes the matches by _id in one SQL statement, and SQLite
// binds at most 32,766 values), and a bounded delete is kinder to a
// replica set's oplog anyway.
const selectedDeleteBatch = 25_000

// selectable reports whether the request's documents of c are named by a
// filter rather than listed.
func (s *Store) selectable(c *datamap.Collection, req stores.Request) bool {
	if !sqlcore.Selectable(c, req) || len(s.colls[c.Name].owners) > 0 || c.OnErasure == privacyv1.ErasureAnonymize {
		return false
	}
	switch req.Kind {
	case stores.KindAccess:
		return true
	case stores.KindErasure:
		if !req.Scope.InScope(c) {
			return false
		}
		action, _, err := stores.ErasureAction(c, req.Scope)
		return err == nil && (action == stores.ActionDelete || action == stores.ActionRetain)
	}
	return false
}

// resolveRequest finds the request's subject's documents: the listed ones,
// read by the walk, and the selected collections' filters, built from the
// identities and the parents' listed documents. A collection no filter can
// match has neither.
func (w *walk) resolveRequest(ctx context.Context, req stores.Request) (sqlcore.Rows, selections, error) {
	w.skip = map[*datamap.Collection]bool{}
	for _, c := range w.s.m.Collections {
		if w.s.selectable(c, req) {
			w.skip[c] = true
		}
	}
	skipped := w.skip
	rows, err := w.resolve(ctx, req.Subject)
	w.skip = nil
	if err != nil {
		return nil, nil, err
	}
	sel := selections{}
	for _, c := range w.s.m.Collections {
		if !skipped[c] {
			continue
		}
		var parts []bson.D
		if f := filterFor(w.s.colls[c.Name], req.Subject); f != nil {
			parts = append(parts, f)
		}
		for _, e := range c.Parents {
			if len(rows[e.Parent]) == 0 {
				continue
			}
			if f := w.refers(e, rows[e.Parent]); f != nil {
				parts = append(parts, f)
			}
		}
		if len(parts) > 0 {
			sel[c] = anyOf(parts)
		}
	}
	return rows, sel, nil
}

// listTextDated lists, as the walk would have, the selected collections in
// which a document of the subject holds an exemption's date as text: text
// dates are compared as times by the walk (Exempted), a filter could only
// compare them as text.
func (w *walk) listTextDated(ctx context.Context, req stores.Request, rows sqlcore.Rows, sel selections) error {
	for _, c := range w.s.m.Collections {
		if sel[c] == nil {
			continue
		}
		for _, ex := range req.Exemptions {
			if ex.Collection != c.Name {
				continue
			}
			p, err := exemptionPath(c, ex)
			if err != nil {
				return err
			}
			coll := w.s.colls[c.Name]
			found, err := w.s.exists(ctx, coll, both(sel[c], bson.D{{Key: p.dotted, Value: bson.D{{Key: "$type", Value: "string"}}}}))
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			docs, err := w.s.find(ctx, coll, sel[c])
			if err != nil {
				return err
			}
			if keys := w.remember(c, docs); len(keys) > 0 {
				rows[c] = keys
			}
			delete(sel, c)
			break
		}
	}
	return nil
}

// refers is the filter of the documents of e's child whose reference holds
// a value of e's parent field in the parent documents of keys ($in, 500
// values each); nil when the parents hold no value a reference can match.
func (w *walk) refers(e *datamap.Edge, keys []string) bson.D {
	values := w.values(e.Parent, e.ParentField, keys)
	p := w.s.colls[e.Child.Name].refs[e.ChildField]
	var parts []bson.D
	for batch := range slices.Chunk(values, inBatch) {
		parts = append(parts, bson.D{{Key: p.dotted, Value: bson.D{{Key: "$in", Value: bson.A(batch)}}}})
	}
	if len(parts) == 0 {
		return nil
	}
	return anyOf(parts)
}

// anyOf names the documents any of parts names.
func anyOf(parts []bson.D) bson.D {
	if len(parts) == 1 {
		return parts[0]
	}
	or := make(bson.A, len(parts))
	for i, p := range parts {
		or[i] = p
	}
	return bson.D{{Key: "$or", Value: or}}
}

// both names the documents a and b both name.
func both(a, b bson.D) bson.D { return bson.D{{Key: "$and", Value: bson.A{a, b}}} }

// without names sel's documents none of drop names.
func without(sel bson.D, drop []bson.D) bson.D {
	if len(drop) == 0 {
		return sel
	}
	nor := make(bson.A, len(drop))
	for i, d := range drop {
		nor[i] = d
	}
	return both(sel, bson.D{{Key: "$nor", Value: nor}})
}

// count counts coll's documents filter names.
func (s *Store) count(ctx context.Context, coll *collection, filter bson.D) (int64, error) {
	n, err := s.db.Collection(coll.Name).CountDocuments(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("collection %q: %w", coll.Name, s.classify("counting the subject's documents", err))
	}
	return n, nil
}

// exists reports whether a document of coll matches filter.
func (s *Store) exists(ctx context.Context, coll *collection, filter bson.D) (bool, error) {
	err := s.db.Collection(coll.Name).FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("collection %q: %w", coll.Name, s.classify("find", err))
	}
	return true, nil
}

// selectedErasure lists the steps of a selected collection, as eraseDocs
// lists a listed one's: the documents it retains (all, when the map retains
// the collection), or the deletion of the others by filter and a report per
// set of kept documents: documents belonging to parent documents kept (as
// RetainedRows keeps them), then documents inside an exemption's period.
// The deletion is counted (Plan) or left to Apply, which counts what it
// deletes.
func (s *Store) selectedErasure(ctx context.Context, w *walk, c *datamap.Collection, e sqlcore.Erasure, sel bson.D, kept sqlcore.Kept,
	req stores.Request, apply bool) ([]step, error) {
	coll := s.colls[c.Name]
	if e.Action == stores.ActionRetain {
		n, err := s.count(ctx, coll, sel)
		return []step{{result: sqlcore.RetainResult(c, n)}}, err
	}
	var keeps []bson.D
	var reports []sqlcore.Retained
	for _, ref := range c.Parents {
		for _, parentKept := range kept[ref.Parent] {
			if parentKept.Leads != "" {
				continue // kept as a path to held documents below: its other children go (see HeldPaths)
			}
			cond := w.refers(ref, parentKept.Keys)
			if cond == nil {
				continue
			}
			n, err := s.count(ctx, coll, both(without(sel, keeps), cond))
			if err != nil {
				return nil, err
			}
			if n > 0 {
				reports = append(reports, sqlcore.Retained{Reason: parentKept.Reason, Via: ref.Parent.Name, Held: parentKept.Held,
					Holds: parentKept.Holds, Until: parentKept.Until, From: parentKept.From, Rows: n})
				keeps = append(keeps, cond)
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
	rest := without(sel, keeps)
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionDelete}, write: collWrite{collection: c.Name, where: rest}}
	if !apply {
		n, err := s.count(ctx, coll, rest)
		if err != nil {
			return nil, err
		}
		st.result.Rows = n
	}
	steps := []step{st}
	for _, r := range reports {
		steps = append(steps, step{result: r.Result(c.Name)})
	}
	return steps, nil
}

// exemptionPath is the path of an exemption's date field in c.
func exemptionPath(c *datamap.Collection, ex stores.Exemption) (path, error) {
	p, err := parsePath(ex.Field)
	if err != nil || p.array != "" {
		return path{}, fmt.Errorf("%w: retention rule %s: field %q of collection %q is not a document path outside arrays", stores.ErrInvalid, ex.Rule, ex.Field, c.Name)
	}
	return p, nil
}

// exemptedSelection finds the documents among sel names whose exemption
// field holds a date after the cutoff: what they are kept for (as the SQL
// engines report it), and the filter naming them (nil when there are none).
// Text dates never reach it (listTextDated lists their collection).
func (s *Store) exemptedSelection(ctx context.Context, c *datamap.Collection, ex stores.Exemption, sel bson.D) (sqlcore.Retained, bson.D, error) {
	p, err := exemptionPath(c, ex)
	if err != nil {
		return sqlcore.Retained{}, nil, err
	}
	coll := s.colls[c.Name]
	exempted := bson.D{{Key: p.dotted, Value: bson.D{{Key: "$gt", Value: primitive.NewDateTimeFromTime(ex.Cutoff)}}}}
	n, err := s.count(ctx, coll, both(sel, exempted))
	if err != nil || n == 0 {
		return sqlcore.Retained{}, nil, err
	}
	var span sqlcore.Span
	for _, order := range []int{1, -1} {
		var d bson.D
		opts := options.FindOne().SetSort(bson.D{{Key: p.dotted, Value: order}}).SetProjection(bson.D{{Key: p.dotted, Value: 1}})
		if err := s.db.Collection(coll.Name).FindOne(ctx, both(sel, exempted), opts).Decode(&d); err != nil {
			return sqlcore.Retained{}, nil, fmt.Errorf("collection %q: %w", coll.Name, s.classify("finding exempted documents", err))
		}
		v, _ := lookup(d, p.dotted)
		if t, ok := asTime(v); ok {
			span.Add(t)
		}
	}
	r := sqlcore.ExemptedRows(ex, n, span)
	r.Rows = n
	return r, exempted, nil
}

// deleteWhere deletes coll's documents filter names, at most
// selectedDeleteBatch per deleteMany: while more than that remain, the
// documents up to the batch's last _id in _id order (the one document a
// round reads), then the rest. It returns how many it deleted.
func (s *Store) deleteWhere(ctx context.Context, coll *collection, filter bson.D) (int64, error) {
	mc := s.db.Collection(coll.Name)
	batch := int64(selectedDeleteBatch)
	if s.deleteBatch > 0 {
		batch = s.deleteBatch
	}
	var deleted int64
	for {
		var last bson.Raw
		err := mc.FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}}).
			SetSkip(batch-1).SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&last)
		round := filter
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
		case err != nil:
			return deleted, fmt.Errorf("collection %q: %w", coll.Name, s.classify("find", err))
		default:
			// A document of another BSON type than the last _id's is not
			// below it ($lte compares within a type): a later round takes it.
			round = both(filter, bson.D{{Key: "_id", Value: bson.D{{Key: "$lte", Value: last.Lookup("_id")}}}})
		}
		res, derr := mc.DeleteMany(ctx, round)
		if derr != nil {
			return deleted, fmt.Errorf("collection %q: %w", coll.Name, s.classify("deleting", derr))
		}
		deleted += res.DeletedCount
		if err != nil {
			return deleted, nil
		}
	}
}

// streamSelected writes coll's documents sel names to w, in _id order (the
// index MongoDB always has), through a cursor: the manager holds one batch
// at a time.
func (s *Store) streamSelected(ctx context.Context, coll *collection, sel bson.D, req stores.Request, w stores.ExportWriter) (int64, error) {
	cur, err := s.db.Collection(coll.Name).Find(ctx, sel, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("collection %q: %w", coll.Name, s.classify("find", err))
	}
	defer func() { _ = cur.Close(context.Background()) }()
	var n int64
	for cur.Next(ctx) {
		var d bson.D
		if err := cur.Decode(&d); err != nil {
			return n, fmt.Errorf("collection %q: %w", coll.Name, s.classify("find", err))
		}
		if err := w.Row(coll.Name, exportRow(coll, req, document{doc: d})); err != nil {
			return n, err
		}
		n++
	}
	if err := cur.Err(); err != nil {
		return n, fmt.Errorf("collection %q: %w", coll.Name, s.classify("find", err))
	}
	return n, nil
}
