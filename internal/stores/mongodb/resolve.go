package mongodb

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// deleteBatch is how many _ids one deleteMany names.
const deleteBatch = 500

// document is one document found for a subject.
type document struct {
	id  any    // _id
	key string // the primary key as text
	doc bson.D
}

// collWrite is one collection's writes, in one ordered bulk write.
type collWrite struct {
	collection string
	models     []mongo.WriteModel
	// guarded is how many updates must match their guard.
	guarded int64
	// where, instead of models, names documents deleted by filter (see
	// selections); the result of index result counts them.
	where  bson.D
	result int
}

// resolution is a request resolved against the documents: the results and
// the writes Apply runs.
type resolution struct {
	results []stores.CollectionResult
	heldBy  []string
	writes  []collWrite
}

func (r *resolution) result() stores.Result {
	slices.Sort(r.heldBy)
	return stores.Result{Collections: r.results, Held: len(r.heldBy) > 0, HeldBy: slices.Compact(r.heldBy)}
}

func (r *resolution) add(res stores.CollectionResult) { r.results = append(r.results, res) }

// find returns the documents of coll matching filter, in primary-key order.
func (s *Store) find(ctx context.Context, coll *collection, filter bson.D) ([]document, error) {
	docs, err := s.read(ctx, coll, filter, "find")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(docs, func(a, b document) int { return compareKeys(a.key, b.key) })
	return docs, nil
}

// read returns the documents of coll matching filter, with their _id and
// primary key, in the order opts give (what names the operation in errors).
func (s *Store) read(ctx context.Context, coll *collection, filter bson.D, what string, opts ...*options.FindOptions) ([]document, error) {
	cur, err := s.db.Collection(coll.Name).Find(ctx, filter, opts...)
	if err != nil {
		return nil, fmt.Errorf("collection %q: %w", coll.Name, s.classify(what, err))
	}
	var raw []bson.D
	if err := cur.All(ctx, &raw); err != nil {
		return nil, fmt.Errorf("collection %q: %w", coll.Name, s.classify(what, err))
	}
	docs := make([]document, 0, len(raw))
	for _, d := range raw {
		id, _ := field(d, "_id")
		k, _ := lookup(d, coll.key.dotted)
		key, ok := text(k)
		if !ok {
			return nil, fmt.Errorf("%w: collection %q: a document has no primary key %s", stores.ErrInvalid, coll.Name, coll.key.raw)
		}
		docs = append(docs, document{id: id, key: key, doc: d})
	}
	return docs, nil
}

// compareKeys orders numeric keys numerically, then text.
func compareKeys(a, b string) int {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return strings.Compare(a, b)
}

func asTime(v any) (time.Time, bool) {
	switch v := v.(type) {
	case primitive.DateTime:
		return v.Time().UTC(), true
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, strings.TrimSpace(v)); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// change is what one document's update sets and unsets, and the values it
// was computed from (its guard).
type change struct {
	set, unset, guard bson.D
}

func (c *change) empty() bool { return len(c.set) == 0 && len(c.unset) == 0 }

func (c *change) model(id any) mongo.WriteModel {
	update := bson.D{}
	if len(c.set) > 0 {
		update = append(update, bson.E{Key: "$set", Value: c.set})
	}
	if len(c.unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: c.unset})
	}
	filter := append(bson.D{{Key: "_id", Value: id}}, c.guard...)
	return mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(update)
}

// transform is what happens to one value: the new value, or remove.
type transform func(v any) (nv any, remove bool, err error)

// edit applies t to the value at p in d: a plain path once, an array path
// to every element of the array the subject owns. The change sets the path
// (or the whole array) and is guarded by the value it had.
func (s *Store) edit(coll *collection, subject map[string]string, d document, p path, t transform, c *change) error {
	if p.array == "" {
		v, ok := lookup(d.doc, p.dotted)
		if !ok || v == nil {
			return nil
		}
		nv, remove, err := t(v)
		if err != nil {
			return err
		}
		switch {
		case remove:
			c.unset = append(c.unset, bson.E{Key: p.dotted, Value: ""})
		case reflect.DeepEqual(nv, v):
			return nil
		default:
			c.set = append(c.set, bson.E{Key: p.dotted, Value: nv})
		}
		c.guard = append(c.guard, bson.E{Key: p.dotted, Value: v})
		return nil
	}
	// An earlier field may have changed this array already: start from it.
	base, ok := lookup(d.doc, p.array)
	for _, e := range c.set {
		if e.Key == p.array {
			base = e.Value
		}
	}
	if !ok || base == nil {
		return nil
	}
	arr, isArray := base.(bson.A)
	if !isArray {
		return fmt.Errorf("%w: collection %q field %q: a document holds no array there", stores.ErrInvalid, coll.Name, p.raw)
	}
	out := slices.Clone(arr)
	changed := false
	for i, el := range arr {
		if !owns(coll, subject, p.array, el) {
			continue
		}
		v, ok := lookup(el, p.elem)
		if !ok || v == nil {
			continue
		}
		nv, remove, err := t(v)
		if err != nil {
			return err
		}
		if !remove && reflect.DeepEqual(nv, v) {
			continue
		}
		out[i] = setIn(el, p.elem, nv, remove)
		changed = true
	}
	if !changed {
		return nil
	}
	if i := slices.IndexFunc(c.set, func(e bson.E) bool { return e.Key == p.array }); i >= 0 {
		c.set[i].Value = out
		return nil
	}
	c.set = append(c.set, bson.E{Key: p.array, Value: out})
	orig, _ := lookup(d.doc, p.array)
	c.guard = append(c.guard, bson.E{Key: p.array, Value: orig})
	return nil
}

// owns reports whether an element of the array belongs to the subject: one
// of the identities mapped inside the array is the subject's or, when none
// is mapped there, the document is the subject's and so are its elements.
func owns(coll *collection, subject map[string]string, array string, el any) bool {
	types := coll.owners[array]
	if len(types) == 0 || subject == nil { // nil: a sweep's, of whole documents
		return true
	}
	for _, t := range types {
		v, ok := subject[t]
		if !ok {
			continue
		}
		if got, ok := lookup(el, coll.identity[t].elem); ok && matchesAny(got, candidates(v)) {
			return true
		}
	}
	return false
}

// maskDoc renders the masking of the mapped fields in scope of one
// document as one guarded update; nil when every field already holds its
// masked value (applying again changes and counts nothing).
func (s *Store) maskDoc(coll *collection, req stores.Request, d document, fields []datamap.Field) (mongo.WriteModel, error) {
	c := &change{}
	for _, f := range fields {
		if f.Masking == nil || !req.Scope.Covers(f.Category) {
			continue
		}
		m := f.Masking
		t := func(v any) (any, bool, error) {
			if m.Strategy == privacyv1.MaskNullify {
				return nil, true, nil
			}
			return maskValue(coll, f.Name, m, s.maskingKey, d.key, v)
		}
		if err := s.edit(coll, req.Subject, d, coll.fields[f.Name], t, c); err != nil {
			return nil, err
		}
	}
	if c.empty() {
		return nil, nil
	}
	return c.model(d.id), nil
}

// maskValue masks one stored value with internal/masking, keeping its BSON
// type where the strategy keeps the kind of value (generalize: a number
// stays a number, a date a date). Documents and arrays are refused.
func maskValue(coll *collection, name string, m *privacyv1.Masking, key []byte, pk string, v any) (any, bool, error) {
	refuse := func(why string) (any, bool, error) {
		return nil, false, fmt.Errorf("%w: collection %q field %q: masking %s %s", stores.ErrInvalid, coll.Name, name, m.Strategy, why)
	}
	in, ok := text(v)
	if !ok {
		return refuse("cannot apply to an embedded document or array; map its fields, or use nullify")
	}
	if m.Strategy == privacyv1.MaskPartial {
		if _, isString := v.(string); !isString {
			return refuse("applies to strings only")
		}
	}
	if dt, isDate := v.(primitive.DateTime); isDate {
		in = dt.Time().UTC().Format(time.RFC3339)
	}
	out, err := masking.MaskString(m, key, pk, in)
	if err != nil {
		// MaskString's errors name the strategy, never the value.
		return nil, false, fmt.Errorf("%w: collection %q field %q: %w", stores.ErrInvalid, coll.Name, name, err)
	}
	if m.Strategy == privacyv1.MaskGeneralize {
		switch v.(type) {
		case int32, int64:
			n, err := strconv.ParseInt(out, 10, 64)
			if err == nil {
				if _, is32 := v.(int32); is32 {
					return int32(n), false, nil
				}
				return n, false, nil
			}
		case float64:
			if f, err := strconv.ParseFloat(out, 64); err == nil {
				return f, false, nil
			}
		case primitive.DateTime:
			if t, err := time.Parse(time.RFC3339, out); err == nil {
				return primitive.NewDateTimeFromTime(t), false, nil
			}
		}
	}
	return out, false, nil
}

// rectify sets the mapped fields in scope whose category has a corrected
// value, in the subject's documents (and elements). It counts the documents
// it changes, so applying it again reports 0.
func (s *Store) rectify(coll *collection, req stores.Request, docs []document, r *resolution) error {
	res := stores.CollectionResult{Collection: coll.Name, Action: stores.ActionRectify}
	w := collWrite{collection: coll.Name}
	var names []string
	for _, f := range coll.Fields {
		if _, ok := req.Rectification[f.Category]; ok && req.Scope.Covers(f.Category) {
			names = append(names, f.Name)
		}
	}
	if len(names) == 0 {
		res.Reason = "no corrected value for the fields this collection maps"
		r.add(res)
		return nil
	}
	for _, d := range docs {
		c := &change{}
		for _, name := range names {
			f, _ := coll.Field(name)
			value := req.Rectification[f.Category]
			t := func(v any) (any, bool, error) { return corrected(coll, name, v, value) }
			if err := s.edit(coll, req.Subject, d, coll.fields[name], t, c); err != nil {
				return err
			}
		}
		if !c.empty() {
			res.Rows++
			w.models = append(w.models, c.model(d.id))
			w.guarded++
		}
	}
	r.add(res)
	r.writes = append(r.writes, w)
	return nil
}

// corrected is a corrected value as the field holds its kind: a number
// where a number is, a date where a date is (refused when it is none), text
// otherwise. The error never repeats the value.
func corrected(coll *collection, name string, stored any, value string) (any, bool, error) {
	switch stored.(type) {
	case int32, int64:
		if n, err := strconv.ParseInt(value, 10, 64); err == nil {
			return n, false, nil
		}
	case float64:
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			return f, false, nil
		}
	case primitive.DateTime:
		t, ok := asTime(value)
		if !ok {
			return nil, false, fmt.Errorf("%w: collection %q field %q holds dates: the corrected value is not a date (YYYY-MM-DD or RFC 3339)", stores.ErrInvalid, coll.Name, name)
		}
		return primitive.NewDateTimeFromTime(t), false, nil
	case bson.D, bson.M, bson.A:
		return nil, false, fmt.Errorf("%w: collection %q field %q holds an embedded document or array: map its fields to correct them", stores.ErrInvalid, coll.Name, name)
	}
	return value, false, nil
}

// exportRow is one document as exported: its primary key under its path
// and each mapped field in scope under its name (nil when absent; an array
// field as the list of the subject's elements' values).
func exportRow(coll *collection, req stores.Request, d document) map[string]any {
	k, _ := lookup(d.doc, coll.key.dotted)
	row := map[string]any{coll.key.raw: plain(k)}
	for _, f := range coll.Fields {
		if !req.Scope.Covers(f.Category) {
			continue
		}
		p := coll.fields[f.Name]
		if p.array == "" {
			v, _ := lookup(d.doc, p.dotted)
			row[f.Name] = plain(v)
			continue
		}
		base, _ := lookup(d.doc, p.array)
		arr, _ := base.(bson.A)
		values := []any{}
		for _, el := range arr {
			if !owns(coll, req.Subject, p.array, el) {
				continue
			}
			if v, ok := lookup(el, p.elem); ok {
				values = append(values, plain(v))
			}
		}
		row[f.Name] = values
	}
	return row
}

// Check pings the server, reports the data map's problems and compares the
// map with the documents: a collection that does not exist, or a mapped path
// no document holds, is drift. Messages name collections and paths, never a
// value.
func (s *Store) Check(ctx context.Context) (stores.CheckResult, error) {
	if err := s.client.Ping(ctx, nil); err != nil {
		return stores.CheckResult{}, s.classify("ping", err)
	}
	res := stores.CheckResult{Problems: slices.Clone(s.problems)}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return stores.CheckResult{}, s.classify("listCollections", err)
	}
	for _, dc := range s.m.Collections {
		coll := s.colls[dc.Name]
		if !slices.Contains(names, coll.Name) {
			res.Problems = append(res.Problems, stores.SchemaProblem{Collection: coll.Name,
				Problem: "the collection does not exist in the database; create it or fix the collection's name"})
			continue
		}
		mc := s.db.Collection(coll.Name)
		if err := mc.FindOne(ctx, bson.D{}).Err(); err == mongo.ErrNoDocuments {
			res.Warnings = append(res.Warnings, fmt.Sprintf("collection %q is empty: its paths cannot be checked yet", coll.Name))
			continue
		} else if err != nil {
			return stores.CheckResult{}, s.classify("find", err)
		}
		paths := map[string]path{}
		for t, p := range coll.identity {
			paths["identity "+t] = p
		}
		for n, p := range coll.fields {
			paths[n] = p
		}
		for n, p := range coll.refs {
			paths["reference "+n] = p
		}
		for _, label := range slices.Sorted(maps.Keys(paths)) {
			p := paths[label]
			err := mc.FindOne(ctx, bson.D{{Key: p.dotted, Value: bson.D{{Key: "$exists", Value: true}}}}).Err()
			switch {
			case err == mongo.ErrNoDocuments:
				fieldName, what := label, "field"
				if strings.HasPrefix(label, "identity ") {
					fieldName, what = p.raw, label
				} else if strings.HasPrefix(label, "reference ") {
					fieldName, what = p.raw, "reference"
				}
				res.Problems = append(res.Problems, stores.SchemaProblem{Collection: coll.Name, Field: fieldName,
					Problem: fmt.Sprintf("no document holds the %s path %s; fix the path or remove it from the map", what, p.raw)})
			case err != nil:
				return stores.CheckResult{}, s.classify("find", err)
			}
		}
	}
	return res, nil
}
