package mysql

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// Partition sweeps on MariaDB: tables with monthly partitions over the
// first half of 2024, ten rows a month (id month*100+day, on that day), and
// a cutoff of 15 April: January to March lie wholly before it, April
// straddles it, May and June (and MAXVALUE) are after it. events is
// partitioned BY RANGE COLUMNS, by_days BY RANGE (TO_DAYS), by_seconds BY
// RANGE (UNIX_TIMESTAMP) with subpartitions.

var partCutoff = time.Date(2024, 4, 15, 0, 0, 0, 0, time.UTC)

func monthly(table, column, kind, by string, bound func(month string) string, sub string) []string {
	var parts []string
	for _, m := range []string{"02", "03", "04", "05", "06", "07"} {
		parts = append(parts, "PARTITION p2024_"+prevMonth(m)+" VALUES LESS THAN ("+bound("2024-"+m+"-01")+")")
	}
	parts = append(parts, "PARTITION pmax VALUES LESS THAN (MAXVALUE)")
	return []string{
		"CREATE TABLE " + table + " (id BIGINT NOT NULL, user_id BIGINT NOT NULL, note VARCHAR(32), " + column + " " + kind + " NOT NULL, PRIMARY KEY (id, " + column + ")) " +
			"PARTITION BY " + by + sub + " (" + strings.Join(parts, ", ") + ")",
		"INSERT INTO " + table + " SELECT m.seq * 100 + d.seq, d.seq, 'n', TIMESTAMP(CONCAT('2024-', m.seq, '-', d.seq, ' 12:00:00')) " +
			"FROM seq_1_to_6 m, seq_1_to_28_step_3 d",
	}
}

func prevMonth(m string) string {
	return map[string]string{"02": "01", "03": "02", "04": "03", "05": "04", "06": "05", "07": "06"}[m]
}

func partitionedSchema() []string {
	var out []string
	out = append(out, monthly("events", "at", "DATETIME(6)", "RANGE COLUMNS(at)", func(d string) string { return "'" + d + "'" }, "")...)
	out = append(out, monthly("by_days", "at", "DATE", "RANGE (TO_DAYS(at))", func(d string) string { return "TO_DAYS('" + d + "')" }, "")...)
	out = append(out, monthly("by_seconds", "at", "TIMESTAMP", "RANGE (UNIX_TIMESTAMP(at))", func(d string) string { return "UNIX_TIMESTAMP('" + d + " 00:00:00')" }, " SUBPARTITION BY HASH(id) SUBPARTITIONS 2")...)
	out = append(out,
		"CREATE TABLE plain (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, note VARCHAR(32), at DATETIME(6) NOT NULL)",
		"INSERT INTO plain SELECT seq, seq, 'n', TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq DAY FROM seq_1_to_100",
		// Partitioned by hash: not by range on the field.
		"CREATE TABLE hashed (id BIGINT NOT NULL, user_id BIGINT NOT NULL, note VARCHAR(32), at DATETIME(6) NOT NULL, PRIMARY KEY (id)) PARTITION BY HASH(id) PARTITIONS 4",
		"INSERT INTO hashed SELECT id, user_id, note, at FROM events",
		"CREATE TABLE event_notes (id BIGINT PRIMARY KEY, event_id BIGINT)",
	)
	return out
}

func partSpec(withChild bool) privacyv1.DataStoreSpec {
	coll := func(name string) privacyv1.Collection {
		return privacyv1.Collection{
			Name: privacyv1.Identifier(name), PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
			Fields:   []privacyv1.Field{{Name: "note", Category: "user.notes", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}}},
		}
	}
	spec := privacyv1.DataStoreSpec{Engine: privacyv1.EngineMySQL}
	for _, n := range []string{"events", "by_days", "by_seconds", "plain", "hashed"} {
		spec.Collections = append(spec.Collections, coll(n))
	}
	if withChild {
		spec.Collections = append(spec.Collections, privacyv1.Collection{
			Name: "event_notes", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			References: []privacyv1.Reference{{Field: "event_id", Collection: "events"}},
		})
	}
	return spec
}

type partFixture struct {
	db    *sql.DB
	store *Store
}

func newPartFixture(t *testing.T, withChild bool) *partFixture {
	t.Helper()
	dsn := testdb.NewMySQL(t)
	f := &partFixture{db: inspection(t, dsn)}
	for _, stmt := range partitionedSchema() {
		if _, err := f.db.Exec(stmt); err != nil {
			t.Fatalf("%.80s: %v", stmt, err)
		}
	}
	f.store, _ = openSweepStore(t, dsn, partSpec(withChild))
	return f
}

// openSweepStore opens a store of spec on dsn, without a masking key, with
// short timeouts, closed when the test ends.
func openSweepStore(t *testing.T, dsn string, spec privacyv1.DataStoreSpec) (*Store, *datamap.Map) {
	t.Helper()
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), dsn, m, nil, testdb.Loopback, WithTimeouts(2*time.Second, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, m
}

func (f *partFixture) count(t *testing.T, q string) int64 {
	t.Helper()
	var n int64
	if err := f.db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// partitions lists table's partitions, from the catalog.
func (f *partFixture) partitions(t *testing.T, table string) []string {
	t.Helper()
	rows, err := f.db.Query("SELECT DISTINCT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY PARTITION_ORDINAL_POSITION", table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func deleteRule(collection string) stores.SweepRule {
	return stores.SweepRule{Collection: collection, Field: "at", Cutoff: partCutoff, Action: stores.ActionDelete, BatchSize: 100}
}

func names(outcomes []stores.PartitionOutcome) []string {
	var out []string
	for _, o := range outcomes {
		out = append(out, o.Name)
	}
	return out
}

func sweepParts(t *testing.T, s *Store, rule stores.SweepRule, dryRun bool) stores.PartitionSweep {
	t.Helper()
	res, err := s.SweepPartitions(context.Background(), rule, dryRun)
	if err != nil {
		t.Fatalf("SweepPartitions(%s): %v", rule.Collection, err)
	}
	return res
}

var (
	allMonths = []string{"p2024_01", "p2024_02", "p2024_03", "p2024_04", "p2024_05", "p2024_06", "pmax"}
	expired   = allMonths[:3]
)

// The partitions wholly before the cutoff are dropped, counted exactly,
// whatever the range partitioning on the field; a dry run reports the same
// and changes nothing; the straddling partition keeps its rows for row
// batches; tables not partitioned by range on the field are left alone.
func TestPartitionSweepDropsExpiredPartitions(t *testing.T) {
	f := newPartFixture(t, false)
	for _, table := range []string{"events", "by_days", "by_seconds"} {
		t.Run(table, func(t *testing.T) {
			dry := sweepParts(t, f.store, deleteRule(table), true)
			if got := names(dry.Dropped); !slices.Equal(got, expired) || len(dry.Kept) != 0 {
				t.Fatalf("dry run: dropped %v kept %+v, want dropped %v", got, dry.Kept, expired)
			}
			if got := f.partitions(t, table); !slices.Equal(got, allMonths) {
				t.Fatalf("after the dry run: partitions %v", got)
			}
			if n := f.count(t, "SELECT count(*) FROM "+table); n != 60 {
				t.Fatalf("after the dry run: %d rows, want 60", n)
			}
			res := sweepParts(t, f.store, deleteRule(table), false)
			if got := names(res.Dropped); !slices.Equal(got, expired) || len(res.Kept) != 0 {
				t.Fatalf("dropped %v kept %+v, want dropped %v", got, res.Kept, expired)
			}
			for _, o := range res.Dropped {
				if o.Rows != 10 || o.Estimated {
					t.Errorf("partition %s: %d rows (estimated %v), want exactly 10", o.Name, o.Rows, o.Estimated)
				}
			}
			if got := f.partitions(t, table); !slices.Equal(got, allMonths[3:]) {
				t.Errorf("partitions left: %v", got)
			}
			if n := f.count(t, "SELECT count(*) FROM "+table); n != 30 {
				t.Errorf("%d rows left, want 30", n)
			}
			if n := f.count(t, "SELECT count(*) FROM "+table+" WHERE at < '2024-04-15'"); n != 5 {
				t.Errorf("the straddling partition has %d expired rows, want 5", n)
			}
		})
	}
	for _, table := range []string{"plain", "hashed"} {
		if res := sweepParts(t, f.store, deleteRule(table), false); len(res.Dropped)+len(res.Kept) != 0 {
			t.Errorf("%s: %+v", table, res)
		}
		if n := f.count(t, "SELECT count(*) FROM "+table); n == 0 {
			t.Errorf("%s lost its rows", table)
		}
	}
}

// A partition holding a held key, or a row an exemption still keeps, is kept
// with its reason; the others are dropped.
func TestPartitionSweepKeepsHeldAndExemptPartitions(t *testing.T) {
	f := newPartFixture(t, false)
	rule := deleteRule("events")
	rule.HeldKeys = []string{"204", "999"}
	rule.Exemptions = []stores.Exemption{
		{Collection: "events", Field: "at", Cutoff: time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC), Period: "10y", LegalBasis: "accounting", Rule: "invoices-10y"},
	}
	res := sweepParts(t, f.store, rule, false)
	if got := names(res.Dropped); !slices.Equal(got, []string{"p2024_01"}) {
		t.Fatalf("dropped %v, want only p2024_01", got)
	}
	reasons := map[string]string{}
	for _, o := range res.Kept {
		reasons[o.Name] = o.Reason
	}
	if r := reasons["p2024_02"]; !strings.Contains(r, "legal hold") || !strings.Contains(r, "1 row") {
		t.Errorf("February kept for %q, want a legal hold of 1 row", r)
	}
	if r := reasons["p2024_03"]; !strings.Contains(r, "invoices-10y") {
		t.Errorf("March kept for %q, want the exemption", r)
	}
	if got := f.partitions(t, "events"); !slices.Equal(got, allMonths[1:]) {
		t.Errorf("partitions left: %v", got)
	}
	if n := f.count(t, "SELECT count(*) FROM events WHERE at < '2024-04-01'"); n != 20 {
		t.Errorf("%d rows left in February and March, want 20", n)
	}
}

// A collection the data map has referring to the table, a rule with where
// conditions and an anonymizing rule keep every expired partition.
func TestPartitionSweepKeepsWhatRowBatchesMustDo(t *testing.T) {
	f := newPartFixture(t, true)
	where := deleteRule("events")
	where.Where = []stores.Condition{{Field: "note", IsNull: true}}
	anonymize := deleteRule("events")
	anonymize.Action = stores.ActionAnonymize
	for _, tc := range []struct {
		rule   stores.SweepRule
		reason string
	}{{deleteRule("events"), "event_notes"}, {where, "where conditions"}, {anonymize, "anonymizes"}} {
		res := sweepParts(t, f.store, tc.rule, false)
		if got := names(res.Kept); len(res.Dropped) != 0 || !slices.Equal(got, expired) {
			t.Fatalf("%s: dropped %v kept %v", tc.reason, names(res.Dropped), got)
		}
		for _, o := range res.Kept {
			if !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("%s kept for %q, want %q", o.Name, o.Reason, tc.reason)
			}
		}
	}
	if got := f.partitions(t, "events"); !slices.Equal(got, allMonths) {
		t.Errorf("partitions left: %v", got)
	}
}

// MariaDB reports no per-table figure of old row versions: not known.
func TestPartitionTableHealthUnknown(t *testing.T) {
	f := newPartFixture(t, false)
	h, err := f.store.TableHealth(context.Background(), "events")
	if err != nil || h.Known {
		t.Errorf("TableHealth = %+v, %v; want not known", h, err)
	}
	if _, err := f.store.TableHealth(context.Background(), "nope"); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("unknown collection: %v, want ErrInvalid", err)
	}
}
