package mysql

import (
	"context"
	"database/sql"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// On MariaDB a sweep batch finds its last key reading in key order through
// the key's own index, a bounded number of rows (sqlcore.KeyOrderBounder):
// once part of a table is swept, MariaDB's own plan reads every expired row
// left through the index on the rule's field, for each batch. Where the
// bounded read finds nothing (the final batch here), MariaDB's plan is used.
// Measured with the session's handler counters on the store's only
// connection: with rows interleaved (one fresh in eleven, 100,000 expired),
// a batch of 5000 reads about 11,000 index entries (its look-up and its
// delete), where MariaDB's plan alone read up to 70,500. A key given by a
// unique index other than the primary key is hinted with that index; a key
// no single-column unique index covers (one column of a composite primary
// key) gets no hint, and still sweeps. On MySQL, which has no LIMIT ROWS
// EXAMINED, no key is hinted and the sweeps are still exact; the read
// counts are MariaDB's.
func TestSweepBatchesFindTheirLastKeyInKeyOrder(t *testing.T) {
	dsn := testdb.NewMySQL(t)
	db := inspection(t, dsn)
	for _, stmt := range []string{
		`CREATE TABLE events (id BIGINT PRIMARY KEY, user_id INT NOT NULL DEFAULT 0, at DATETIME NOT NULL, KEY at (at))`,
		`INSERT INTO events (id, at) SELECT seq, IF(seq % 11 = 0, '2030-01-01', '2020-01-01') + INTERVAL seq SECOND FROM seq_1_to_110000`,
		`CREATE TABLE tickets (ref VARCHAR(16) NOT NULL, user_id INT NOT NULL DEFAULT 0, at DATETIME NOT NULL, UNIQUE KEY ticket_ref (ref), KEY at (at))`,
		`INSERT INTO tickets (ref, at) SELECT LPAD(seq, 8, '0'), IF(seq <= 300, '2020-01-01', '2030-01-01') FROM seq_1_to_600`,
		`CREATE TABLE visits (site INT NOT NULL, n INT NOT NULL, user_id INT NOT NULL DEFAULT 0, at DATETIME NOT NULL, PRIMARY KEY (site, n))`,
		`INSERT INTO visits (site, n, at) SELECT seq % 3, seq, IF(seq <= 300, '2020-01-01', '2030-01-01') FROM seq_1_to_600`,
		`ANALYZE TABLE events, tickets, visits`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%.80s: %v", stmt, err)
		}
	}
	coll := func(name, pk string) privacyv1.Collection {
		return privacyv1.Collection{Name: privacyv1.Identifier(name), PrimaryKey: privacyv1.Identifier(pk), OnErasure: privacyv1.ErasureDelete,
			Identity: map[string]privacyv1.Identifier{"userId": "user_id"}}
	}
	s, m := openSweepStore(t, dsn, privacyv1.DataStoreSpec{Engine: privacyv1.EngineMySQL, Collections: []privacyv1.Collection{
		coll("events", "id"), coll("tickets", "ref"), coll("visits", "n"),
	}})
	s.db.SetMaxOpenConns(1) // the handler counters are the session's

	cutoff := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	readNext := func() int64 {
		var name string
		var n int64
		if err := s.db.QueryRow("SHOW SESSION STATUS LIKE 'Handler_read_next'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	sweep := func(collection string, batch int) (rows int64, batches int, most int64) {
		rule := stores.SweepRule{Collection: collection, Field: "at", Cutoff: cutoff, Action: stores.ActionDelete, BatchSize: batch}
		var cursor string
		for {
			before := readNext()
			b, err := s.SweepBatch(context.Background(), rule, cursor)
			if err != nil {
				t.Fatalf("%s: batch %d: %v", collection, batches+1, err)
			}
			rows, batches, cursor = rows+b.Rows, batches+1, b.Cursor
			if b.Done {
				return rows, batches, most
			}
			most = max(most, readNext()-before)
		}
	}
	for _, tt := range []struct {
		collection string
		batch      int
		want       int64
	}{{"events", 5000, 100000}, {"tickets", 50, 300}, {"visits", 50, 300}} {
		rows, batches, most := sweep(tt.collection, tt.batch)
		if rows != tt.want {
			t.Errorf("%s: swept %d rows in %d batches, want %d", tt.collection, rows, batches, tt.want)
		}
		if tt.collection == "events" {
			t.Logf("events: %d batches; at most %d index entries read by a batch before the last", batches, most)
			if s.mariaDB && most > int64(3*tt.batch) {
				t.Errorf("events: a batch of %d read %d index entries, want about twice the batch", tt.batch, most)
			}
		}
		var left int64
		if err := db.QueryRow("SELECT count(*) FROM "+tt.collection+" WHERE at < ?", cutoff).Scan(&left); err != nil || left != 0 {
			t.Errorf("%s: %d expired rows left (%v)", tt.collection, left, err)
		}
	}

	var live *liveSchema
	if err := s.inTx(context.Background(), readOnly, func(tx *sql.Tx) error {
		var err error
		live, err = s.introspect(context.Background(), tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for collection, want := range map[string]string{"events": "PRIMARY", "tickets": "ticket_ref", "visits": ""} {
		c, _ := m.Get(collection)
		pk := live.column(c, c.PrimaryKey)
		if pk.KeyIndex != want {
			t.Errorf("%s: key index %q, want %q", collection, pk.KeyIndex, want)
		}
		// MySQL has no LIMIT ROWS EXAMINED: its optimizer alone chooses.
		if _, _, hinted := (dialect{Dialect: mySQL.Dialect, mariaDB: s.mariaDB}).BoundedKeyOrder(pk, 100); hinted != (s.mariaDB && want != "") {
			t.Errorf("%s: hinted %v on a server that is MariaDB: %v", collection, hinted, s.mariaDB)
		}
	}
}
