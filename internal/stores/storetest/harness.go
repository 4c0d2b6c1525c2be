package storetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Harness is one materialized fixture on an engine: the store under test and
// the ground truth, read directly (SQL, redis commands, a processor's records).
type Harness interface {
	// Store is a store on the fixture's data map, with MaskingKey.
	Store() stores.Store
	// Open opens another store on the same data, for spec (a logical map as
	// Fixture.Spec returns it, maybe edited; the engine fills in its tables or
	// key patterns) and masking key. The harness closes it at the end of the test.
	Open(t T, spec privacyv1.DataStoreSpec, key []byte) stores.Store
	// Snapshot reads every row of every collection (and of the unmapped
	// tables of extras), directly.
	Snapshot(t T) Snapshot
	// Key renders fixture key data (an ID, an int, a string, []byte) as the
	// engine writes keys as text: in snapshots, in SubjectKeys, in HeldKeys.
	Key(collection string, key any) string
	// MaskingRowKey is the row key keyed masking strategies mix in for the
	// row of collection with key (as Key renders it).
	MaskingRowKey(collection, key string) string
	// ExportRow renders one exported row as the suite compares it: the mapped
	// fields and the primary key under its column name, values as SQL
	// engines export them (int64 integers, strings, RFC 3339 times, base64 bytes).
	ExportRow(collection string, row map[string]any) map[string]any
}

// SchemaHarness is the harness of an engine with a live schema (Schema).
type SchemaHarness interface {
	Harness
	// DropColumn drops a column of a collection's table behind the store's back.
	DropColumn(t T, collection, column string)
}

// LockHarness is the harness of an engine with row locks (Locks).
type LockHarness interface {
	Harness
	// Lock takes a row lock on a row of collection (key as Key renders it) in
	// another transaction, held until release is called (or the test ends).
	Lock(t T, collection, key string) (release func())
}

// Saboteur is the harness of an engine that can make Apply fail part-way
// for the subject (Atomic).
type Saboteur interface {
	Harness
	// Sabotage makes the subject's erasure fail inside the store's
	// transaction, after some collections were acted on, and returns
	// fragments the error must contain and data it must not repeat.
	Sabotage(t T) (want, leaks []string)
}

// Row is one row as the store holds it: column -> value as text. NULL (or an
// absent hash field) is absent; dates read YYYY-MM-DD.
type Row map[string]string

// Snapshot is every row by collection (or unmapped table) and key.
type Snapshot map[string]map[string]Row

// Changed lists, by collection, the keys of rows deleted, added or changed
// between two snapshots, sorted.
func Changed(before, after Snapshot) map[string][]string {
	out := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(union(before, after))) {
		var keys []string
		for k, row := range before[name] {
			if got, ok := after[name][k]; !ok || !maps.Equal(got, row) {
				keys = append(keys, k)
			}
		}
		for k := range after[name] {
			if _, ok := before[name][k]; !ok {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			slices.Sort(keys)
			out[name] = keys
		}
	}
	return out
}

func union(a, b Snapshot) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// env is what a scenario gets: the suite, and fixtures to open.
type env struct {
	suite Suite
	t     *testing.T
}

// fixture is f with the suite's settings.
func (e *env) fixture(f Fixture) Fixture {
	f.UUIDKeys = e.suite.UUIDKeys
	f.unsupported = e.suite.Unsupported
	return f
}

// open materializes f and returns it with its harness.
func (e *env) open(f Fixture) (*fx, error) {
	f = e.fixture(f)
	h := e.suite.Open(e.t, f)
	if h == nil {
		return nil, fmt.Errorf("storetest: %s Open returned no harness", e.suite.Name)
	}
	m, err := datamap.Build(f.Spec())
	if err != nil {
		return nil, fmt.Errorf("storetest: the fixture's data map: %w", err)
	}
	return &fx{Harness: h, f: f, m: m, suite: e.suite}, nil
}

// fx is an opened fixture: its harness, its data and its logical map.
type fx struct {
	Harness
	f     Fixture
	m     *datamap.Map
	suite Suite
}

func (e *env) mustOpen(t T, f Fixture) *fx {
	t.Helper()
	x, err := e.open(f)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// holds reports whether the fixture holds collection name.
func (x *fx) holds(name string) bool {
	_, ok := x.m.Get(name)
	return ok
}

// keys renders fixture keys of collection as the engine writes them, sorted.
func (x *fx) keys(collection string, keys ...any) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = x.Key(collection, k)
	}
	slices.Sort(out)
	return out
}

// want keeps the expected rows of the collections the fixture holds, each
// rendered as the engine writes keys, and drops empty entries.
func (x *fx) want(rows map[string][]any) map[string][]string {
	out := map[string][]string{}
	for c, keys := range rows {
		if x.holds(c) && len(keys) > 0 {
			out[c] = x.keys(c, keys...)
		}
	}
	return out
}

// id renders ID n of the fixture.
func (x *fx) id(n ID) string { return x.f.IDText(n) }

func (x *fx) subject() map[string]string { return x.f.Subject() }

// OpenStore builds spec's data map, opens a store on it with open and
// closes it when the test ends: the common part of a harness's Open.
func OpenStore(t T, spec privacyv1.DataStoreSpec, open func(*datamap.Map) (stores.Store, error)) stores.Store {
	t.Helper()
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
