package mongodb

import (
	"context"
	"encoding/hex"
	"sort"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
	"github.com/lethe-dev/lethe/internal/testdb"
)

func TestConformance(t *testing.T) {
	storetest.Suite{
		Name: "mongodb/ferretdb",
		Open: openHarness,
		Unsupported: storetest.Features{
			storetest.Atomic:  "FerretDB v1 and a standalone MongoDB have no multi-document transactions: Apply resolves every collection before writing any, then writes collection by collection with guarded, idempotent updates, so a failed Apply is finished by applying it again (engine test)",
			storetest.Journal: "without multi-document transactions a journal cannot be written in the request's own transaction: receipts add up the passes in the request's status",
			storetest.Schema:  "documents have no schema: Check samples the documents instead (a collection that does not exist, a mapped path no document holds), covered by engine tests; there are no column types or lengths to refuse a corrected value by",
			storetest.Locks:   "MongoDB has no row locks for Lethe to wait on: a document changed between resolution and write fails its guarded update, and Apply reports the store unavailable (engine test); a sweep batch deletes by _id what it read, and anonymizes with guarded updates",
		},
		Texts: storetest.Texts{},
	}.Run(t)
}

// harness is the fixture in a database of its own: each row a document
// whose _id is the row's key, holding every non-NULL column (the key's too).
type harness struct {
	f     storetest.Fixture
	db    *testdb.Mongo
	store stores.Store
}

func openHarness(t *testing.T, f storetest.Fixture) storetest.Harness {
	t.Helper()
	h := &harness{f: f, db: testdb.NewMongo(t)}
	ctx := context.Background()
	if !f.Empty {
		for _, c := range f.Collections() {
			docs := make([]any, 0, len(c.Rows))
			for i := range c.Rows {
				d := bson.D{{Key: "_id", Value: value(f, c.Key(i))}}
				for j, col := range c.Columns {
					if v := c.Rows[i][j]; v != nil {
						d = append(d, bson.E{Key: col, Value: value(f, v)})
					}
				}
				if c.Spec.Name == "accounts" {
					// As the SQL fixtures' default: every account created then.
					d = append(d, bson.E{Key: "created_at", Value: primitive.NewDateTimeFromTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))})
				}
				docs = append(docs, d)
			}
			if _, err := h.db.DB.Collection(string(c.Spec.Name)).InsertMany(ctx, docs); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.store = h.Open(t, f.Spec(), storetest.MaskingKey)
	return h
}

// value is fixture data as a document holds it: ids and integers as int64,
// bytes as binary, times as dates, the rest (dates as YYYY-MM-DD) as text.
func value(f storetest.Fixture, v any) any {
	switch v := v.(type) {
	case storetest.ID:
		if f.UUIDKeys {
			return f.IDText(v)
		}
		return int64(v)
	case int:
		return int64(v)
	case []byte:
		return primitive.Binary{Data: v}
	case time.Time:
		return primitive.NewDateTimeFromTime(v)
	}
	return v
}

func (h *harness) Store() stores.Store { return h.store }

// Open maps every collection's primary key to _id, where the harness writes it.
func (h *harness) Open(t storetest.T, spec privacyv1.DataStoreSpec, key []byte) stores.Store {
	t.Helper()
	spec.Engine = privacyv1.EngineMongoDB
	for i := range spec.Collections {
		spec.Collections[i].PrimaryKey = "_id"
	}
	return storetest.OpenStore(t, spec, func(m *datamap.Map) (stores.Store, error) {
		return New(context.Background(), h.db.URL, m, key, testdb.Loopback)
	})
}

// Snapshot reads every document of every collection: its fields but _id as
// text, keyed by _id as Key renders it.
func (h *harness) Snapshot(t storetest.T) storetest.Snapshot {
	t.Helper()
	ctx := context.Background()
	names, err := h.db.DB.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	snap := storetest.Snapshot{}
	for _, name := range names {
		cur, err := h.db.DB.Collection(name).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.D
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		rows := map[string]storetest.Row{}
		for _, d := range docs {
			row := storetest.Row{}
			var key string
			for _, e := range d {
				if e.Key == "_id" {
					key = keyText(e.Value)
					continue
				}
				if e.Value != nil {
					row[e.Key] = display(e.Value)
				}
			}
			rows[key] = row
		}
		snap[name] = rows
	}
	return snap
}

func keyText(v any) string {
	if b, ok := v.(primitive.Binary); ok {
		return hex.EncodeToString(b.Data)
	}
	s, _ := text(v)
	return s
}

// Key renders binary keys in hex, as the engine renders them as text.
func (h *harness) Key(_ string, key any) string {
	if b, ok := key.([]byte); ok {
		return hex.EncodeToString(b)
	}
	return h.f.KeyText(key)
}

// MaskingRowKey: the engine mixes in the primary key as text.
func (h *harness) MaskingRowKey(_, key string) string { return key }

// ExportRow renames _id to the fixture's primary key column.
func (h *harness) ExportRow(collection string, row map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range row {
		out[k] = v
	}
	for _, c := range h.f.Collections() {
		if string(c.Spec.Name) == collection {
			if id, ok := out["_id"]; ok {
				delete(out, "_id")
				out[string(c.Spec.PrimaryKey)] = id
			}
		}
	}
	return out
}
