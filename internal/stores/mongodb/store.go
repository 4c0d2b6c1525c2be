// Package mongodb is the engine for MongoDB (and MongoDB-wire servers such as
// FerretDB): a collection is a MongoDB collection of the URL's database, and
// identities, the primary key and fields are document paths (email,
// owner.userId, addresses[].line1 for a field of every element of an array).
//
// A subject's documents are found with $in over the literal identity values
// (and the integer or ObjectId they spell canonically): an identity is always
// a value, never an operator, so {"$ne": 1}, $where or a dotted string
// match only documents holding that exact string. Erasure deletes by _id or
// masks with $set and $unset, each update guarded by the values it was
// computed from; masked values are computed with internal/masking, so they
// equal the other engines'. Elements of an array that hold an identity of
// their own (members[].userId) belong to that person: only the subject's
// elements are masked, rectified or exported. Collections are also reached
// through references by document path (graph.go), with the SQL engines' rules
// for holds, exemptions and setNull links; retention sweeps go in batches by
// _id (sweep.go).
//
// There are no multi-document transactions (FerretDB v1 and a standalone
// MongoDB have none): Apply resolves every collection first, then writes
// collection by collection, children first; each write is idempotent, so a
// failed Apply is finished by applying again. Paths, identities and values
// never appear in errors or results.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// collection is a data-map collection with its parsed paths.
type collection struct {
	*datamap.Collection
	key      path
	identity map[string]path // identity type -> path
	fields   map[string]path // field name -> path
	// refs are the paths of this collection's references (cascade and
	// setNull), by field name.
	refs map[string]path
	// owners are, per array, the identity types whose path is inside it:
	// an element belongs to the subject when one of them is the subject's.
	owners map[string][]string
}

// Store is a connected MongoDB database. It is safe for concurrent use.
type Store struct {
	client     *mongo.Client
	db         *mongo.Database
	m          *datamap.Map
	maskingKey []byte
	colls      map[string]*collection
	problems   []stores.SchemaProblem
	seen       *refusals

	// beforeWrite, in tests, runs after a request is resolved and before its writes.
	beforeWrite func()
	// deleteBatch, in tests, replaces selectedDeleteBatch when positive.
	deleteBatch int64
}

var (
	_ stores.Store          = (*Store)(nil)
	_ stores.ExportStreamer = (*Store)(nil)
)

// New connects to the mongodb:// URL (the database is its path) through
// network's dialer only. Problems of the data map do not fail New: Check
// reports them, and Plan, Apply and Export refuse to act while there are
// any. maskingKey is the key of the hash and uniqueEmail strategies.
func New(ctx context.Context, url string, m *datamap.Map, maskingKey []byte, network stores.Network) (*Store, error) {
	seen := &refusals{}
	set, err := parseURL(url, network, seen)
	if err != nil {
		return nil, err
	}
	if err := probe(ctx, network, set.hosts); err != nil {
		return nil, err
	}
	client, err := mongo.Connect(ctx, set.opts)
	if err != nil {
		return nil, fmt.Errorf("%w: mongodb: the client could not be configured", stores.ErrInvalid)
	}
	s := &Store{client: client, db: client.Database(set.database), m: m, maskingKey: maskingKey, seen: seen}
	s.colls, s.problems = compile(m, maskingKey)
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, s.classify("connecting", err)
	}
	return s, nil
}

// compile parses every path of the map and reports how it does not fit MongoDB.
func compile(m *datamap.Map, maskingKey []byte) (map[string]*collection, []stores.SchemaProblem) {
	colls := map[string]*collection{}
	var problems []stores.SchemaProblem
	for _, c := range m.Collections {
		report := func(field, format string, args ...any) {
			problems = append(problems, stores.SchemaProblem{Collection: c.Name, Field: field, Problem: fmt.Sprintf(format, args...)})
		}
		coll := &collection{Collection: c, identity: map[string]path{}, fields: map[string]path{}, refs: map[string]path{}, owners: map[string][]string{}}
		colls[c.Name] = coll
		for _, e := range slices.Concat(c.Parents, c.Clears) {
			p, err := parsePath(e.ChildField)
			switch {
			case err != nil:
				report(e.ChildField, "reference to %s: %v", e.Parent.Name, err)
			case p.array != "":
				report(e.ChildField, "reference to %s: a reference path cannot go through an array", e.Parent.Name)
			default:
				coll.refs[e.ChildField] = p
			}
		}
		for _, e := range slices.Concat(c.Children, c.Referrers) {
			if p, err := parsePath(e.ParentField); err != nil || p.array != "" {
				report(e.ParentField, "the field %s refers to must be a document path outside arrays", e.Child.Name)
			}
		}
		key := c.PrimaryKey
		if key == "" {
			key = "_id"
		}
		if p, err := parsePath(key); err != nil || p.array != "" {
			report("", "primaryKey must be a document path outside arrays (default _id)")
		} else {
			coll.key = p
		}
		for _, t := range slices.Sorted(maps.Keys(c.Identity)) {
			p, err := parsePath(c.Identity[t])
			if err != nil {
				report("", "identity %s: %v", t, err)
				continue
			}
			if p.array != "" && p.elem == "" {
				report("", "identity %s: the path must name a field of the array's elements (members[].userId)", t)
				continue
			}
			coll.identity[t] = p
			if p.array != "" {
				coll.owners[p.array] = append(coll.owners[p.array], t)
			}
		}
		if len(coll.owners) > 0 && c.OnErasure == privacyv1.ErasureDelete {
			report("", "an identity inside an array means documents hold several people's elements: deleting the document would erase the others'; use onErasure anonymize")
		}
		for _, f := range c.Fields {
			p, err := parsePath(f.Name)
			if err != nil {
				report(f.Name, "%v", err)
				continue
			}
			coll.fields[f.Name] = p
			if f.Masking == nil {
				continue
			}
			if masking.NeedsKey(f.Masking) && len(maskingKey) == 0 {
				report(f.Name, "masking %s needs the DataStore's maskingKeySecretRef", f.Masking.Strategy)
			}
			if p.dotted == coll.key.dotted {
				report(f.Name, "the primary key cannot be masked: MongoDB does not change a document's _id")
			}
		}
	}
	return colls, problems
}

// Close disconnects the client.
func (s *Store) Close() { _ = s.client.Disconnect(context.Background()) }

// Plan resolves the subject's documents and reports what Apply would do.
func (s *Store) Plan(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := stores.Validate(s.m, req); err != nil {
		return stores.Result{}, err
	}
	r, err := s.resolve(ctx, req, false)
	if err != nil {
		return stores.Result{}, err
	}
	return r.result(), nil
}

// Apply erases or rectifies the subject's documents: every collection is
// resolved first (nothing is written when one fails), then written children
// first, each collection's writes in one ordered bulk write.
func (s *Store) Apply(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := stores.ValidateApply(s.m, req); err != nil {
		return stores.Result{}, err
	}
	r, err := s.resolve(ctx, req, true)
	if err != nil {
		return stores.Result{}, err
	}
	if s.beforeWrite != nil {
		s.beforeWrite()
	}
	for _, w := range r.writes {
		if w.where != nil {
			n, err := s.deleteWhere(ctx, s.colls[w.collection], w.where)
			if err != nil {
				return stores.Result{}, err
			}
			r.results[w.result].Rows = n
			continue
		}
		if err := s.write(ctx, w); err != nil {
			return stores.Result{}, err
		}
	}
	return r.result(), nil
}

// write runs one collection's writes; an update guarded by the values it was
// computed from that matches nothing means the document changed meanwhile.
func (s *Store) write(ctx context.Context, w collWrite) error {
	if len(w.models) == 0 {
		return nil
	}
	res, err := s.db.Collection(w.collection).BulkWrite(ctx, w.models, nil)
	if err != nil {
		return fmt.Errorf("collection %q: %w", w.collection, s.classify("writing", err))
	}
	if res.MatchedCount < w.guarded {
		return fmt.Errorf("%w: collection %q: %d document(s) changed while the request was applied; apply it again", stores.ErrUnavailable, w.collection, w.guarded-res.MatchedCount)
	}
	return nil
}

// Export returns the subject's documents in scope, collected from StreamExport.
func (s *Store) Export(ctx context.Context, req stores.Request) (stores.Export, stores.Result, error) {
	return stores.CollectExport(func(w stores.ExportWriter) (stores.Result, error) { return s.StreamExport(ctx, req, w) })
}

// StreamExport writes the subject's documents in scope to w, collection by
// collection: the primary key and the mapped fields in scope (an array
// field as the list of the subject's elements' values).
func (s *Store) StreamExport(ctx context.Context, req stores.Request, w stores.ExportWriter) (stores.Result, error) {
	req.Kind = stores.KindAccess
	if err := stores.ValidateSubject(s.m, req.Subject); err != nil {
		return stores.Result{}, err
	}
	if err := s.usable(); err != nil {
		return stores.Result{}, err
	}
	r := &resolution{}
	walk := s.newWalk()
	rows, sel, err := walk.resolveRequest(ctx, req)
	if err != nil {
		return stores.Result{}, err
	}
	for _, dc := range s.m.Collections {
		if !req.Scope.InScope(dc) {
			continue
		}
		coll := s.colls[dc.Name]
		if sel[dc] != nil {
			n, err := s.streamSelected(ctx, coll, sel[dc], req, w)
			if err != nil {
				return stores.Result{}, err
			}
			r.add(stores.CollectionResult{Collection: coll.Name, Action: stores.ActionExport, Rows: n})
			continue
		}
		docs := walk.documents(dc, rows[dc])
		for _, d := range docs {
			if err := w.Row(coll.Name, exportRow(coll, req, d)); err != nil {
				return stores.Result{}, err
			}
		}
		r.add(stores.CollectionResult{Collection: coll.Name, Action: stores.ActionExport, Rows: int64(len(docs))})
	}
	return r.result(), nil
}

func (s *Store) usable() error {
	if len(s.problems) > 0 {
		return fmt.Errorf("%w: the data map does not fit mongodb (%d problems, see the DataStore status)", stores.ErrInvalid, len(s.problems))
	}
	return nil
}

// classify wraps a driver or network error without its text, which may
// quote documents (a duplicate key error quotes the key) or addresses:
// server errors keep only their code name.
func (s *Store) classify(op string, err error) error {
	if refused := stores.EgressRefusal(err); refused != nil {
		return refused
	}
	var cmdErr mongo.CommandError
	var writeErr mongo.WriteException
	var bulkErr mongo.BulkWriteException
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: mongodb %s: %w", stores.ErrUnavailable, op, err)
	case errors.As(err, &cmdErr):
		return fmt.Errorf("%w: mongodb %s: server error %d (%s)", stores.ErrUnavailable, op, cmdErr.Code, cmdErr.Name)
	case errors.As(err, &bulkErr):
		if len(bulkErr.WriteErrors) > 0 {
			return fmt.Errorf("%w: mongodb %s: write error %d", stores.ErrInvalid, op, bulkErr.WriteErrors[0].Code)
		}
		return fmt.Errorf("%w: mongodb %s: write failed", stores.ErrUnavailable, op)
	case errors.As(err, &writeErr):
		if len(writeErr.WriteErrors) > 0 {
			return fmt.Errorf("%w: mongodb %s: write error %d", stores.ErrInvalid, op, writeErr.WriteErrors[0].Code)
		}
		return fmt.Errorf("%w: mongodb %s: write failed", stores.ErrUnavailable, op)
	case errors.As(err, &netErr) && netErr.Timeout():
		if refused := s.seen.get(); refused != nil {
			return refused
		}
		return fmt.Errorf("%w: mongodb %s: timed out", stores.ErrUnavailable, op)
	default:
		if refused := s.seen.get(); refused != nil {
			return refused
		}
		return fmt.Errorf("%w: mongodb %s: connection failed", stores.ErrUnavailable, op)
	}
}

// filterFor is the query of a subject's documents: any of its identities
// the collection maps, each an $in over literal values. nil when the subject
// has none of them.
func filterFor(coll *collection, subject map[string]string) bson.D {
	var or bson.A
	for _, t := range slices.Sorted(maps.Keys(coll.identity)) {
		v, ok := subject[t]
		if !ok {
			continue
		}
		or = append(or, bson.D{{Key: coll.identity[t].dotted, Value: bson.D{{Key: "$in", Value: candidates(v)}}}})
	}
	if len(or) == 0 {
		return nil
	}
	return bson.D{{Key: "$or", Value: or}}
}

var _ stores.Verifier = (*Store)(nil)

// Verify resolves the request again and counts, per collection, the
// documents its action would still change: deleted documents still found,
// and documents whose fields do not hold their masked values yet.
func (s *Store) Verify(ctx context.Context, req stores.Request) (stores.Verification, error) {
	res, err := s.Plan(ctx, req)
	if err != nil {
		return stores.Verification{}, err
	}
	v := stores.Verification{Remaining: map[string]int64{}}
	for _, c := range res.Collections {
		if c.Action.ChangesRows() {
			v.Remaining[c.Collection] += c.Rows
		}
	}
	return v, nil
}
