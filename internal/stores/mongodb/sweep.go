package mongodb

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Retention sweeps, in bounded batches by _id: a batch reads the expired
// documents after the cursor in _id order ({field: {$lt: cutoff}, where...,
// _id > cursor}, sorted by _id, limited to the batch size), passes over the
// held ones (and, to anonymize, those already masked) and deletes the others
// by _id, or masks each with an update guarded by the values it was computed
// from. A date is a BSON date: text that spells one is not compared (such
// documents are neither swept nor counted as past their period).
//
// A delete rule on a collection others belong to (cascade references) or
// refer to (setNull) follows the data map as erasure does, with the SQL
// engines' plan (sqlcore.PlanSweepBatch): the documents below the batch's are
// found through the references, deleted or anonymized as mapped, children
// first, setNull links cleared; a document below that must stay (retained by
// the map, held, exempted) keeps the batch's document above it, reported as
// kept. Without transactions the batch's writes are not atomic: each is
// idempotent, so a failed batch is finished by the next run.
//
// The cursor is the batch's last _id, sealed (sqlcore.SealCursor) so that
// the status it is kept in never holds a value from the database.

var _ stores.Sweeper = (*Store)(nil)

// sweep is a rule checked against the map and the documents.
type sweep struct {
	rule  stores.SweepRule
	c     *datamap.Collection
	coll  *collection
	field path
	batch int
	// fields anonymize masks.
	fields []datamap.Field
}

// checkSweep refuses a rule the map or the documents cannot carry out: an
// unknown collection, an action other than delete and anonymize, nothing to
// mask, and, when the collection has documents, a period field none of them
// holds as a date, or a where field the map does not give the collection
// that none of them holds (a typo, or a SQL column name).
func (s *Store) checkSweep(ctx context.Context, rule stores.SweepRule) (*sweep, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	c, ok := s.m.Get(rule.Collection)
	if !ok {
		return nil, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, rule.Collection)
	}
	sw := &sweep{rule: rule, c: c, coll: s.colls[c.Name], batch: rule.BatchSize}
	if sw.batch <= 0 {
		sw.batch = sqlcore.DefaultSweepBatchSize
	}
	p, err := parsePath(rule.Field)
	if err != nil || p.array != "" {
		return nil, fmt.Errorf("%w: collection %q: the retention field is not a document path outside arrays", stores.ErrInvalid, c.Name)
	}
	sw.field = p
	for _, w := range rule.Where {
		if p, err := parsePath(w.Field); err != nil || p.array != "" {
			return nil, fmt.Errorf("%w: collection %q: a where field is not a document path outside arrays", stores.ErrInvalid, c.Name)
		}
	}
	switch rule.Action {
	case stores.ActionDelete:
	case stores.ActionAnonymize:
		for _, f := range c.Fields {
			if f.Masking != nil {
				sw.fields = append(sw.fields, f)
			}
		}
		if len(sw.fields) == 0 {
			return nil, fmt.Errorf("%w: collection %q has no field with a masking strategy to anonymize", stores.ErrInvalid, c.Name)
		}
	default:
		return nil, fmt.Errorf("%w: a sweep deletes or anonymizes, not %q", stores.ErrInvalid, rule.Action)
	}
	mc := s.db.Collection(c.Name)
	holds := func(filter bson.D) (bool, error) {
		err := mc.FindOne(ctx, filter).Err()
		if err == mongo.ErrNoDocuments {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("collection %q: %w", c.Name, s.classify("find", err))
		}
		return true, nil
	}
	if some, err := holds(bson.D{}); err != nil || !some {
		return sw, err // nothing to sweep, nothing to check
	}
	if ok, err := holds(bson.D{{Key: sw.field.dotted, Value: bson.D{{Key: "$type", Value: "date"}}}}); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: collection %q: no document holds a date at %s for the retention period to run from", stores.ErrInvalid, c.Name, rule.Field)
	}
	for _, w := range rule.Where {
		if sw.mapped(w.Field) {
			continue // may be absent from every document for a while
		}
		if ok, err := holds(bson.D{{Key: w.Field, Value: bson.D{{Key: "$exists", Value: true}}}}); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("%w: collection %q: no document holds the where field %s", stores.ErrInvalid, c.Name, w.Field)
		}
	}
	return sw, nil
}

// mapped reports whether name is a path the data map gives the collection
// (its key, an identity, a field, a reference).
func (sw *sweep) mapped(name string) bool {
	if name == sw.coll.key.raw {
		return true
	}
	for _, p := range sw.coll.identity {
		if p.raw == name {
			return true
		}
	}
	_, field := sw.coll.fields[name]
	_, ref := sw.coll.refs[name]
	return field || ref
}

// where is the rule's where conditions: null (or absent), or not.
func (sw *sweep) where() bson.D {
	var out bson.D
	for _, w := range sw.rule.Where {
		if w.IsNull {
			out = append(out, bson.E{Key: w.Field, Value: nil})
		} else {
			out = append(out, bson.E{Key: w.Field, Value: bson.D{{Key: "$ne", Value: nil}}})
		}
	}
	return out
}

// expired is the filter of the documents past their period.
func (sw *sweep) expired() bson.D {
	return append(bson.D{{Key: sw.field.dotted, Value: bson.D{{Key: "$lt", Value: sw.rule.Cutoff.UTC()}}}}, sw.where()...)
}

// after is the filter of the documents whose _id sorts after id, as MongoDB
// sorts values of different types: by type first, then by value within the
// type ($gt alone compares within the type of id only).
func after(id any) bson.D {
	later := laterTypes(id)
	gt := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: id}}}}
	if len(later) == 0 {
		return gt
	}
	return bson.D{{Key: "$or", Value: bson.A{gt, bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: later}}}}}}}
}

// typeOrder is MongoDB's order of BSON types in comparisons and sorts, by
// their $type aliases (an _id is never an array or undefined).
var typeOrder = [][]string{
	{"null"}, {"double", "int", "long"}, {"string"}, {"object"},
	{"binData"}, {"objectId"}, {"bool"}, {"date"}, {"timestamp"}, {"regex"},
}

func laterTypes(id any) bson.A {
	rank := 1 // numbers
	switch id.(type) {
	case nil:
		rank = 0
	case string:
		rank = 2
	case bson.D, bson.M:
		rank = 3
	case primitive.Binary:
		rank = 4
	case primitive.ObjectID:
		rank = 5
	case bool:
		rank = 6
	case primitive.DateTime:
		rank = 7
	}
	var out bson.A
	for _, aliases := range typeOrder[rank+1:] {
		for _, a := range aliases {
			out = append(out, a)
		}
	}
	return out
}

// SweepBatch deletes or anonymizes at most rule.BatchSize documents past
// their period after cursor ("" to start).
func (s *Store) SweepBatch(ctx context.Context, rule stores.SweepRule, cursor string) (stores.SweepBatch, error) {
	sw, err := s.checkSweep(ctx, rule)
	if err != nil {
		return stores.SweepBatch{}, err
	}
	start, _ := s.openCursor(sw.c.Name, cursor)
	picked, last, done, err := s.pick(ctx, sw, start)
	if err != nil {
		return stores.SweepBatch{}, err
	}
	out := stores.SweepBatch{Cursor: cursor, Done: done}
	if last != nil {
		if out.Cursor, err = s.sealCursor(sw.c.Name, last); err != nil {
			return stores.SweepBatch{}, err
		}
	}
	if len(picked) == 0 {
		return out, nil
	}
	everything := allCategories(s.m)
	req := stores.Request{Scope: everything}
	switch {
	case sw.rule.Action == stores.ActionAnonymize:
		w := collWrite{collection: sw.c.Name}
		for _, d := range picked {
			model, err := s.maskDoc(sw.coll, req, d, sw.fields)
			if err != nil {
				return stores.SweepBatch{}, err
			}
			if model != nil {
				w.models = append(w.models, model)
				w.guarded++
			}
		}
		if err := s.write(ctx, w); err != nil {
			return stores.SweepBatch{}, err
		}
		out.Rows = int64(len(w.models))
	case len(sw.c.Children)+len(sw.c.Referrers) > 0:
		if err := s.sweepFollowingMap(ctx, sw, picked, req, &out); err != nil {
			return stores.SweepBatch{}, err
		}
	default:
		ids := make(bson.A, len(picked))
		for i, d := range picked {
			ids[i] = d.id
		}
		res, err := s.db.Collection(sw.c.Name).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err != nil {
			return stores.SweepBatch{}, fmt.Errorf("collection %q: %w", sw.c.Name, s.classify("sweeping", err))
		}
		out.Rows = res.DeletedCount
	}
	return out, nil
}

// pick reads, in _id order after start (nil: from the first), at most
// sw.batch expired documents the batch acts on: not held, and, to
// anonymize, not masked yet. last is the _id of the last document read
// (nil when none was); done is true when no expired document is left after it.
func (s *Store) pick(ctx context.Context, sw *sweep, start any) (picked []document, last any, done bool, err error) {
	held := map[string]bool{}
	for _, k := range sw.rule.HeldKeys {
		held[k] = true
	}
	everything := stores.Request{Scope: allCategories(s.m)}
	cursor, started := start, start != nil
	for len(picked) < sw.batch {
		filter := sw.expired()
		if started {
			filter = append(filter, after(cursor)...)
		}
		docs, err := s.findSorted(ctx, sw.coll, filter, int64(sw.batch))
		if err != nil {
			return nil, nil, false, err
		}
		for i, d := range docs {
			cursor, started, last = d.id, true, d.id
			if held[d.key] {
				continue
			}
			if sw.rule.Action == stores.ActionAnonymize {
				m, err := s.maskDoc(sw.coll, everything, d, sw.fields)
				if err != nil {
					return nil, nil, false, err
				}
				if m == nil {
					continue // masked already
				}
			}
			picked = append(picked, d)
			if len(picked) == sw.batch {
				if i == len(docs)-1 && len(docs) < sw.batch {
					return picked, last, true, nil
				}
				more, err := s.findSorted(ctx, sw.coll, append(sw.expired(), after(cursor)...), 1)
				return picked, last, err == nil && len(more) == 0, err
			}
		}
		if len(docs) < sw.batch {
			return picked, last, true, nil
		}
	}
	return picked, last, false, nil
}

// findSorted reads at most limit documents of coll matching filter, in _id order.
func (s *Store) findSorted(ctx context.Context, coll *collection, filter bson.D, limit int64) ([]document, error) {
	return s.read(ctx, coll, filter, "sweeping", options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(limit))
}

// sweepFollowingMap deletes the batch's documents and erases the documents
// below them as the data map says (sqlcore.PlanSweepBatch), children first.
func (s *Store) sweepFollowingMap(ctx context.Context, sw *sweep, picked []document, req stores.Request, out *stores.SweepBatch) error {
	w := s.newWalk()
	rows, err := w.descend(ctx, func(_ context.Context, coll *collection) ([]document, error) {
		if coll.Name == sw.c.Name {
			return picked, nil
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	plan, err := sqlcore.PlanSweepBatch(ctx, s.m, sqlcore.Sweep{Rule: sw.rule, C: sw.c, BatchSize: sw.batch}, rows, w)
	if err != nil {
		return err
	}
	// Documents have no foreign keys: the links the SQL engines clear
	// first in the documents a batch deletes (plan.Unlinks) go with them.
	steps, _, err := sqlcore.ErasureSteps(s.m, plan.Erasure, func(c *datamap.Collection, e sqlcore.Erasure) ([]step, error) {
		return s.eraseDocs(ctx, w, c, e, req, plan.SparedFrom)
	}, func(r stores.CollectionResult) step { return step{result: r} })
	if err != nil {
		return err
	}
	for _, st := range steps {
		if err := s.write(ctx, st.write); err != nil {
			return err
		}
	}
	for _, st := range steps {
		switch res := st.result; {
		case res.Collection == sw.c.Name && res.Action == stores.ActionDelete:
			out.Rows += res.Rows
		case res.Rows > 0:
			out.Children = sqlcore.AddResult(out.Children, res)
		}
	}
	out.Kept = plan.Kept
	return nil
}

// CountPastPeriod counts the documents past their period the rule would
// still act on (to anonymize: not masked yet): those held apart from the
// others, and those without a date (the field absent or null), every where
// condition met.
func (s *Store) CountPastPeriod(ctx context.Context, rule stores.SweepRule) (stores.PastPeriod, error) {
	sw, err := s.checkSweep(ctx, rule)
	if err != nil {
		return stores.PastPeriod{}, err
	}
	var out stores.PastPeriod
	held := map[string]bool{}
	for _, k := range rule.HeldKeys {
		held[k] = true
	}
	everything := stores.Request{Scope: allCategories(s.m)}
	mc := s.db.Collection(sw.c.Name)
	if rule.Action == stores.ActionAnonymize || len(held) > 0 {
		// Documents are judged one by one: by key, and by their masked values.
		var start any
		for {
			filter := sw.expired()
			if start != nil {
				filter = append(filter, after(start)...)
			}
			docs, err := s.findSorted(ctx, sw.coll, filter, int64(sw.batch))
			if err != nil {
				return stores.PastPeriod{}, err
			}
			for _, d := range docs {
				start = d.id
				if rule.Action == stores.ActionAnonymize {
					m, err := s.maskDoc(sw.coll, everything, d, sw.fields)
					if err != nil {
						return stores.PastPeriod{}, err
					}
					if m == nil {
						continue
					}
				}
				if held[d.key] {
					out.Held++
				} else {
					out.Rows++
				}
			}
			if len(docs) < sw.batch {
				break
			}
		}
	} else {
		n, err := mc.CountDocuments(ctx, sw.expired())
		if err != nil {
			return stores.PastPeriod{}, fmt.Errorf("collection %q: %w", sw.c.Name, s.classify("counting", err))
		}
		out.Rows = n
	}
	n, err := mc.CountDocuments(ctx, append(bson.D{{Key: sw.field.dotted, Value: nil}}, sw.where()...))
	if err != nil {
		return stores.PastPeriod{}, fmt.Errorf("collection %q: %w", sw.c.Name, s.classify("counting", err))
	}
	out.WithoutDate = n
	return out, nil
}

// SubjectKeys returns the primary keys (as text, in key order) of the
// subject's documents in each of collections, found as a hold finds the
// person it holds (sqlcore.PersonRows): through the identity paths and down
// the cascade references, widened once through the other identities those
// documents carry.
func (s *Store) SubjectKeys(ctx context.Context, subject map[string]string, collections []string) (map[string][]string, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	return sqlcore.SubjectKeys(s.m, subject, collections, func() (sqlcore.Rows, error) {
		w := s.newWalk()
		rows, all, err := sqlcore.PersonRows(ctx, s.m, subject, w.resolve, w.read)
		if all && err == nil {
			err = fmt.Errorf("%w: the held subject's documents carry too many other identities", stores.ErrInvalid)
		}
		return rows, err
	})
}

// allCategories is a scope covering every field of the map: a sweep masks
// and erases whole documents.
func allCategories(m *datamap.Map) datamap.Scope {
	var scope datamap.Scope
	for _, c := range m.Collections {
		for _, f := range c.Fields {
			if !slices.Contains(scope.Categories, f.Category) {
				scope.Categories = append(scope.Categories, f.Category)
			}
		}
	}
	return scope
}

// sealCursor seals a batch's last _id (as extended JSON) into an opaque cursor.
func (s *Store) sealCursor(collection string, id any) (string, error) {
	raw, err := bson.MarshalExtJSON(bson.D{{Key: "id", Value: id}}, true, false)
	if err != nil {
		return "", fmt.Errorf("%w: collection %q: a document's _id cannot be kept in a cursor", stores.ErrInvalid, collection)
	}
	return sqlcore.SealCursor(s.maskingKey, collection, string(raw))
}

// openCursor returns the _id a cursor was sealed from; nil (start again) for
// "" and for a cursor it cannot open.
func (s *Store) openCursor(collection, cursor string) (any, bool) {
	raw := sqlcore.OpenCursor(s.maskingKey, collection, cursor)
	if raw == "" {
		return nil, false
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON([]byte(raw), true, &d); err != nil || len(d) != 1 {
		return nil, false
	}
	return d[0].Value, true
}
