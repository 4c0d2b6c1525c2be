package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// A delete rule's batches go by stored position (ctid, see
// sqlcore.StorageOrderer) on a plain table, and by key elsewhere. The tables
// here store their rows against both orders a sweep could wrongly follow:
// the key descends as the rows are stored, and so does the rule's field,
// which has an index a planner would gladly read the expired rows through.

var storageCutoff = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// storageOrderSQL creates:
//   - dense: 3000 rows, two in three expired;
//   - sparse: 50,000 rows, one in fifty expired (1000), where the planner
//     reads the expired rows through the index on at unless told not to;
//   - family: a table with an inheritance child (kid), whose rows a
//     statement on family reaches too, with ctids of their own: 600 rows in
//     each, half of them expired.
const storageOrderSQL = `
CREATE TABLE dense (id bigint PRIMARY KEY, user_id bigint NOT NULL DEFAULT 0, note text, at timestamptz NOT NULL);
CREATE INDEX dense_at ON dense (at);
INSERT INTO dense SELECT 100000 - g, 0, 'n', CASE WHEN g % 3 = 0 THEN '2030-01-01' ELSE timestamptz '2020-01-01' - g * interval '1 second' END
	FROM generate_series(1, 3000) g;
CREATE TABLE sparse (id bigint PRIMARY KEY, user_id bigint NOT NULL DEFAULT 0, note text, at timestamptz NOT NULL);
CREATE INDEX sparse_at ON sparse (at);
INSERT INTO sparse SELECT 100000 - g, 0, 'n', CASE WHEN g % 50 = 0 THEN timestamptz '2020-01-01' - g * interval '1 second' ELSE '2030-01-01' END
	FROM generate_series(1, 50000) g;
CREATE TABLE family (id bigint PRIMARY KEY, user_id bigint NOT NULL DEFAULT 0, note text, at timestamptz NOT NULL);
CREATE TABLE kid () INHERITS (family);
INSERT INTO family SELECT g, 0, 'n', CASE WHEN g % 2 = 0 THEN timestamptz '2030-01-01' ELSE timestamptz '2020-01-01' END FROM generate_series(1, 600) g;
INSERT INTO kid SELECT 1000 + g, 0, 'n', CASE WHEN g % 2 = 0 THEN timestamptz '2030-01-01' ELSE timestamptz '2020-01-01' END FROM generate_series(1, 600) g;
ANALYZE;
`

// storageFixture is a partFixture on the tables of storageOrderSQL.
type storageFixture struct{ *partFixture }

func newStorageFixture(t *testing.T) *storageFixture {
	t.Helper()
	dsn := testdb.NewPostgres(t)
	f := &partFixture{dsn: dsn, conn: connect(t, dsn)}
	f.exec(t, storageOrderSQL)
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres, Collections: []privacyv1.Collection{
		noteCollection("dense"), noteCollection("sparse"), noteCollection("family"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f.store, err = New(context.Background(), dsn, m, nil, testdb.Loopback, WithTimeouts(2*time.Second, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.store.Close)
	return &storageFixture{f}
}

// expiredByStorage returns the keys of the first n expired rows of table, in storage order.
func (f *storageFixture) expiredByStorage(t *testing.T, table string, n int) []int64 {
	t.Helper()
	rows, err := f.conn.Query(context.Background(), "SELECT id FROM "+table+" WHERE at < $1 ORDER BY ctid LIMIT $2", storageCutoff, n)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (f *storageFixture) batch(t *testing.T, rule stores.SweepRule, cursor string) stores.SweepBatch {
	t.Helper()
	b, err := f.store.SweepBatch(context.Background(), rule, cursor)
	if err != nil {
		t.Fatalf("%s %s: %v", rule.Action, rule.Collection, err)
	}
	return b
}

func storageRule(collection string, action stores.Action, batch int) stores.SweepRule {
	return stores.SweepRule{Collection: collection, Field: "at", Cutoff: storageCutoff, Action: action, BatchSize: batch}
}

// Every batch of a delete rule but the last removes exactly BatchSize rows,
// the first ones in storage order (not the lowest keys, nor the oldest), a
// held one left out; the sweep removes every expired row and keeps the
// others. On sparse, a look-up planned with index scans would read the
// expired rows through the index on at, in the opposite order.
func TestDeleteSweepsGoInStorageOrderWithExactBatches(t *testing.T) {
	f := newStorageFixture(t)
	for _, tt := range []struct {
		table          string
		batch          int
		expired, fresh int64
	}{{"dense", 150, 2000, 1000}, {"sparse", 70, 1000, 49000}} {
		first := f.expiredByStorage(t, tt.table, tt.batch+1)
		held := first[0]
		rule := storageRule(tt.table, stores.ActionDelete, tt.batch)
		rule.HeldKeys = []string{strconv.FormatInt(held, 10)}
		var cursor string
		var total int64
		for n := 1; ; n++ {
			b := f.batch(t, rule, cursor)
			total += b.Rows
			if n == 1 {
				if left := f.count(t, "SELECT count(*) FROM "+tt.table+" WHERE id = ANY($1)", first[1:]); left != 0 {
					t.Errorf("%s: batch 1 left %d of the first %d expired rows in storage order", tt.table, left, tt.batch)
				}
			}
			if b.Done {
				if b.Rows > int64(tt.batch) {
					t.Errorf("%s: the last batch (%d) removed %d rows, more than its size %d", tt.table, n, b.Rows, tt.batch)
				}
				break
			}
			if b.Rows != int64(tt.batch) {
				t.Errorf("%s: batch %d removed %d rows, want exactly %d", tt.table, n, b.Rows, tt.batch)
			}
			cursor = b.Cursor
		}
		if total != tt.expired-1 {
			t.Errorf("%s: swept %d rows, want %d (every expired row but the held one)", tt.table, total, tt.expired-1)
		}
		if left := f.count(t, "SELECT count(*) FROM "+tt.table+" WHERE at < $1", storageCutoff); left != 1 {
			t.Errorf("%s: %d expired rows left, want the held one", tt.table, left)
		}
		if f.count(t, "SELECT count(*) FROM "+tt.table+" WHERE id = $1", held) != 1 {
			t.Errorf("%s: the held row was deleted", tt.table)
		}
		if fresh := f.count(t, "SELECT count(*) FROM "+tt.table+" WHERE at >= $1", storageCutoff); fresh != tt.fresh {
			t.Errorf("%s: %d fresh rows kept, want %d", tt.table, fresh, tt.fresh)
		}
	}
}

// A cursor of a delete rule's batches is a stored position and an
// anonymize rule's is a key: given to the other, neither is taken for what
// it is not (a ctid bound as a key, a key cast to a ctid); the sweep restarts.
func TestSweepCursorsOfTheOtherOrderRestartTheSweep(t *testing.T) {
	f := newStorageFixture(t)
	byPosition := f.batch(t, storageRule("dense", stores.ActionDelete, 100), "")
	byKey := f.batch(t, storageRule("dense", stores.ActionAnonymize, 100), "")
	if byPosition.Done || byKey.Done || byPosition.Cursor == "" || byKey.Cursor == "" {
		t.Fatalf("first batches done early: %+v %+v", byPosition, byKey)
	}
	// The anonymize rule restarts at the lowest key: its 100 rows are masked again.
	if b := f.batch(t, storageRule("dense", stores.ActionAnonymize, 100), byPosition.Cursor); b.Rows != 100 {
		t.Errorf("anonymize given a position: %d rows, want a full batch from the start", b.Rows)
	}
	first := f.expiredByStorage(t, "dense", 100)
	if b := f.batch(t, storageRule("dense", stores.ActionDelete, 100), byKey.Cursor); b.Rows != 100 {
		t.Errorf("delete given a key: %d rows, want a full batch from the start", b.Rows)
	}
	if left := f.count(t, "SELECT count(*) FROM dense WHERE id = ANY($1)", first); left != 0 {
		t.Errorf("delete given a key did not restart at the first stored row: %d of its rows left", left)
	}
}

// A table with inheritance children is swept by key: its rows and its
// children's share ctids, and ranges of them would hold rows of both.
func TestTablesWithInheritanceChildrenAreSweptByKey(t *testing.T) {
	f := newStorageFixture(t)
	rule := storageRule("family", stores.ActionDelete, 100)
	var cursor string
	var total int64
	for n := 1; ; n++ {
		b := f.batch(t, rule, cursor)
		total += b.Rows
		if b.Done {
			break
		}
		if b.Rows != 100 {
			t.Errorf("batch %d removed %d rows, want exactly 100", n, b.Rows)
		}
		cursor = b.Cursor
	}
	if total != 600 || f.count(t, "SELECT count(*) FROM family WHERE at < $1", storageCutoff) != 0 {
		t.Errorf("swept %d rows, want 600 and none expired left", total)
	}
	if kept := f.count(t, "SELECT count(*) FROM ONLY kid"); kept != 300 {
		t.Errorf("kid keeps %d rows, want its 300 fresh ones", kept)
	}
}

// In a transaction set to read in storage order (readInStorageOrder) the
// look-up is planned without a plain index scan, where the same query
// otherwise reads sparse's expired rows through the index on at; and it
// gives index scans back to the rest of the transaction, found or not,
// as the session had them.
func TestPositionLookupReadsInStorageOrderAndRestoresIndexScans(t *testing.T) {
	f := newStorageFixture(t)
	ctx := context.Background()
	const expired = "swept.at < '2025-01-01'"
	lookup := dialect{}.PositionLookup("sparse", expired, 69)
	plan := func(tx pgx.Tx) string {
		t.Helper()
		rows, err := tx.Query(ctx, "EXPLAIN "+lookup)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	plainIndexScan := func(plan string) bool {
		return strings.Contains(strings.ReplaceAll(plan, "Bitmap Index Scan", ""), "Index Scan")
	}
	setting := func(tx pgx.Tx) string {
		t.Helper()
		var v string
		if err := tx.QueryRow(ctx, "SHOW enable_indexscan").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	inTx := func(fn func(pgx.Tx)) {
		t.Helper()
		tx, err := f.conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		fn(tx)
	}

	inTx(func(tx pgx.Tx) {
		if p := plan(tx); !plainIndexScan(p) {
			t.Fatalf("without the settings the look-up reads otherwise than through the index on at; the test proves nothing:\n%s", p)
		}
	})
	for _, session := range []string{"on", "off"} {
		if _, err := f.conn.Exec(ctx, "SET enable_indexscan = "+session); err != nil {
			t.Fatal(err)
		}
		for _, where := range []string{expired, "swept.at < '1900-01-01'"} {
			inTx(func(tx pgx.Tx) {
				if _, err := tx.Exec(ctx, "SELECT true"+readInStorageOrder); err != nil {
					t.Fatal(err)
				}
				if p := plan(tx); plainIndexScan(p) {
					t.Errorf("the look-up reads through an index, not in storage order:\n%s", p)
				}
				if v := setting(tx); v != "off" {
					t.Errorf("enable_indexscan = %s before the look-up, want off", v)
				}
				rows, err := tx.Query(ctx, dialect{}.PositionLookup("sparse", where, 69))
				if err != nil {
					t.Fatal(err)
				}
				found, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				if want := where == expired; (len(found) == 1) != want {
					t.Errorf("%s: look-up found %v, want a row: %v", where, found, want)
				}
				if v := setting(tx); v != session {
					t.Errorf("session %s, %s: enable_indexscan = %s after the look-up, want %s", session, where, v, session)
				}
			})
		}
	}
}
