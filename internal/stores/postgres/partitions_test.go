package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// Partition sweeps and table health on a table with monthly partitions over
// the first half of 2024, ten rows a month (id month*100+day, on that day),
// and a cutoff of 15 April: January to March lie wholly before it, April
// straddles it, May and June are after it.

var partCutoff = time.Date(2024, 4, 15, 0, 0, 0, 0, time.UTC)

// partitionedSQL creates events partitioned by month; {extra} is appended.
const partitionedSQL = `
CREATE TABLE events (id bigint NOT NULL, user_id bigint NOT NULL, note text, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024_01 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE events_2024_02 PARTITION OF events FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE events_2024_03 PARTITION OF events FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE events_2024_04 PARTITION OF events FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
CREATE TABLE events_2024_05 PARTITION OF events FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
CREATE TABLE events_2024_06 PARTITION OF events FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
INSERT INTO events SELECT m * 100 + d, d, 'n', make_timestamptz(2024, m, d, 12, 0, 0, 'UTC')
	FROM generate_series(1, 6) m, generate_series(1, 28, 3) d;
CREATE TABLE plain (id bigint PRIMARY KEY, user_id bigint NOT NULL, note text, at timestamptz NOT NULL);
INSERT INTO plain SELECT g, g, 'n', timestamptz '2020-01-01' + g * interval '1 day' FROM generate_series(1, 100) g;
CREATE TABLE daily (id bigint NOT NULL, user_id bigint NOT NULL, note text, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE daily_q1 PARTITION OF daily FOR VALUES FROM ('2024-01-01') TO ('2024-04-01');
CREATE TABLE daily_q2 PARTITION OF daily FOR VALUES FROM ('2024-04-01') TO ('2024-07-01');
INSERT INTO daily SELECT id, user_id, note, at::date FROM events;
`

// partSpec maps events and plain; withChild adds a collection referring to events.
func partSpec(withChild bool) privacyv1.DataStoreSpec {
	spec := privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres, Collections: []privacyv1.Collection{
		noteCollection("events"), noteCollection("plain"), noteCollection("daily"),
	}}
	if withChild {
		spec.Collections = append(spec.Collections, privacyv1.Collection{
			Name: "event_notes", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			References: []privacyv1.Reference{{Field: "event_id", Collection: "events"}},
		})
	}
	return spec
}

// noteCollection maps a table (id, user_id, note, at): note is redacted.
func noteCollection(name string) privacyv1.Collection {
	return privacyv1.Collection{
		Name: privacyv1.Identifier(name), PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
		Fields:   []privacyv1.Field{{Name: "note", Category: "user.notes", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}}},
	}
}

type partFixture struct {
	dsn   string
	conn  *pgx.Conn
	store *Store
}

func newPartFixture(t *testing.T, withChild bool, extra string) *partFixture {
	t.Helper()
	dsn := testdb.ReusedPostgres(t)
	f := &partFixture{dsn: dsn, conn: connect(t, dsn)}
	f.exec(t, partitionedSQL+extra)
	f.store = f.open(t, withChild)
	return f
}

// connect opens a connection of the test's own, closed with it.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func (f *partFixture) open(t *testing.T, withChild bool) *Store {
	t.Helper()
	return openShortTimeouts(t, f.dsn, partSpec(withChild))
}

// openShortTimeouts opens a store of spec on dsn, without a masking key,
// with short timeouts, closed when the test ends.
func openShortTimeouts(t *testing.T, dsn string, spec privacyv1.DataStoreSpec) *Store {
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
	return s
}

func (f *partFixture) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := f.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%.80s: %v", sql, err)
	}
}

func (f *partFixture) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := f.conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// partitioner reads the partitions of events as a sweep of deleteRule does.
func (f *partFixture) partitioner(t *testing.T) (*partitioner, *liveSchema, sqlcore.Sweep, sqlcore.RangeTable) {
	t.Helper()
	ctx := context.Background()
	var live *liveSchema
	err := f.store.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		var err error
		live, err = f.store.introspect(ctx, tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := sqlcore.CheckSweep(f.store.m, deleteRule(), live.Table)
	if err != nil {
		t.Fatal(err)
	}
	p := &partitioner{s: f.store}
	table, err := p.RangePartitions(ctx, live, sw)
	if err != nil {
		t.Fatal(err)
	}
	expired := map[string]bool{}
	for _, rp := range table.Partitions {
		expired[rp.Name] = rp.Expired
	}
	if !table.Partitioned || !p.concurrent || len(table.Partitions) < 6 || !expired["events_2024_01"] || expired["events_2024_04"] {
		t.Fatalf("catalog read: %+v (concurrent %v)", table, p.concurrent)
	}
	return p, live, sw, table
}

// qualifiedEvents is events' name as detach marks write it.
func (f *partFixture) qualifiedEvents(t *testing.T) string {
	t.Helper()
	var name string
	if err := f.conn.QueryRow(context.Background(), "SELECT "+qualifiedParentSQL, "events").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// dayFirstDates makes the database's sessions print dates day first, away
// from UTC, and opens the fixture's store again with them: bounds read from
// the catalog must still read back as they were written. The database is
// reset when the test ends.
func (f *partFixture) dayFirstDates(t *testing.T) {
	t.Helper()
	f.exec(t, `DO $$ BEGIN
		EXECUTE format('ALTER DATABASE %I SET datestyle = ''SQL, DMY''', current_database());
		EXECUTE format('ALTER DATABASE %I SET timezone = ''America/New_York''', current_database());
	END $$`)
	t.Cleanup(func() {
		f.exec(t, `DO $$ BEGIN
			EXECUTE format('ALTER DATABASE %I RESET datestyle', current_database());
			EXECUTE format('ALTER DATABASE %I RESET timezone', current_database());
		END $$`)
	})
	f.store = f.open(t, false)
}

// partitions lists the partitions attached to events, from the catalog.
func (f *partFixture) partitions(t *testing.T) []string {
	t.Helper()
	rows, err := f.conn.Query(context.Background(), "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func deleteRule() stores.SweepRule {
	return stores.SweepRule{Collection: "events", Field: "at", Cutoff: partCutoff, Action: stores.ActionDelete, BatchSize: 100}
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
		t.Fatalf("SweepPartitions: %v", err)
	}
	return res
}

var allMonths = []string{"events_2024_01", "events_2024_02", "events_2024_03", "events_2024_04", "events_2024_05", "events_2024_06"}

// The partitions wholly before the cutoff are dropped, counted exactly; a
// dry run first reports the same and changes nothing; the straddling
// partition keeps every row for row batches.
func TestPartitionSweepDropsExpiredPartitions(t *testing.T) {
	f := newPartFixture(t, false, "")
	dry := sweepParts(t, f.store, deleteRule(), true)
	want := []string{"events_2024_01", "events_2024_02", "events_2024_03"}
	if got := names(dry.Dropped); !slices.Equal(got, want) || len(dry.Kept) != 0 {
		t.Fatalf("dry run: dropped %v kept %+v, want dropped %v", got, dry.Kept, want)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths) {
		t.Fatalf("after the dry run the partitions are %v", got)
	}
	if n := f.count(t, "SELECT count(*) FROM events"); n != 60 {
		t.Fatalf("after the dry run events has %d rows, want 60", n)
	}
	res := sweepParts(t, f.store, deleteRule(), false)
	if got := names(res.Dropped); !slices.Equal(got, want) || len(res.Kept) != 0 {
		t.Fatalf("dropped %v kept %+v, want dropped %v", got, res.Kept, want)
	}
	for _, o := range res.Dropped {
		if o.Rows != 10 || o.Estimated {
			t.Errorf("partition %s: %d rows (estimated %v), want exactly 10", o.Name, o.Rows, o.Estimated)
		}
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths[3:]) {
		t.Fatalf("partitions left: %v, want %v", got, allMonths[3:])
	}
	if n := f.count(t, "SELECT count(*) FROM pg_class WHERE relname IN ('events_2024_01', 'events_2024_02', 'events_2024_03')"); n != 0 {
		t.Errorf("%d dropped partitions are still tables", n)
	}
	if n := f.count(t, "SELECT count(*) FROM events"); n != 30 {
		t.Errorf("events has %d rows, want 30", n)
	}
	// April straddles the cutoff: its 5 expired rows are left to row batches.
	if n := f.count(t, "SELECT count(*) FROM events_2024_04 WHERE at < '2024-04-15'"); n != 5 {
		t.Errorf("the straddling partition has %d expired rows, want 5", n)
	}
	// Nothing left to drop.
	if again := sweepParts(t, f.store, deleteRule(), false); len(again.Dropped)+len(again.Kept) != 0 {
		t.Errorf("second sweep: %+v", again)
	}
}

// A partition holding a held key, or a row an exemption still keeps, is kept
// with its reason; the others are dropped.
func TestPartitionSweepKeepsHeldAndExemptPartitions(t *testing.T) {
	f := newPartFixture(t, false, "")
	rule := deleteRule()
	rule.HeldKeys = []string{"204", "999"} // 4 February, and a key no row has
	rule.Exemptions = []stores.Exemption{
		// Keeps the rows after 10 March: only March has some.
		{Collection: "events", Field: "at", Cutoff: time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC), Period: "10y", LegalBasis: "accounting", Rule: "invoices-10y"},
		// Another collection's exemption says nothing about this table.
		{Collection: "plain", Field: "at", Cutoff: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Rule: "other"},
	}
	res := sweepParts(t, f.store, rule, false)
	if got := names(res.Dropped); !slices.Equal(got, []string{"events_2024_01"}) {
		t.Fatalf("dropped %v, want only events_2024_01", got)
	}
	reasons := map[string]string{}
	for _, o := range res.Kept {
		reasons[o.Name] = o.Reason
		if o.Rows != 10 || o.Estimated {
			t.Errorf("kept %s: %d rows (estimated %v), want exactly 10", o.Name, o.Rows, o.Estimated)
		}
	}
	if r := reasons["events_2024_02"]; !strings.Contains(r, "legal hold") || !strings.Contains(r, "1 row") {
		t.Errorf("February kept for %q, want a legal hold of 1 row", r)
	}
	if r := reasons["events_2024_03"]; !strings.Contains(r, "invoices-10y") || !strings.Contains(r, "accounting") {
		t.Errorf("March kept for %q, want the exemption", r)
	}
	if len(res.Kept) != 2 {
		t.Errorf("kept %+v, want February and March", res.Kept)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths[1:]) {
		t.Errorf("partitions left: %v", got)
	}
	if n := f.count(t, "SELECT count(*) FROM events WHERE at < '2024-04-01'"); n != 20 {
		t.Errorf("%d rows left in February and March, want 20", n)
	}
}

// A table other tables refer to (in the data map, or by a foreign key in
// the database), a rule with where conditions and an anonymizing rule keep
// every expired partition, with the reason.
func TestPartitionSweepKeepsWhatRowBatchesMustDo(t *testing.T) {
	cases := []struct {
		name      string
		withChild bool
		extra     string
		rule      func(stores.SweepRule) stores.SweepRule
		reason    string
	}{
		{name: "map reference", withChild: true, extra: "CREATE TABLE event_notes (id bigint PRIMARY KEY, event_id bigint);", reason: "event_notes"},
		{name: "foreign key", extra: `CREATE TABLE audit (id bigint PRIMARY KEY, event_id bigint, event_at timestamptz,
			CONSTRAINT audit_event_fk FOREIGN KEY (event_id, event_at) REFERENCES events (id, at));`, reason: "audit_event_fk on audit"},
		{name: "where", rule: func(r stores.SweepRule) stores.SweepRule {
			r.Where = []stores.Condition{{Field: "note", IsNull: true}}
			return r
		}, reason: "where conditions"},
		{name: "anonymize", rule: func(r stores.SweepRule) stores.SweepRule {
			r.Action = stores.ActionAnonymize
			return r
		}, reason: "anonymizes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPartFixture(t, tc.withChild, tc.extra)
			rule := deleteRule()
			if tc.rule != nil {
				rule = tc.rule(rule)
			}
			res := sweepParts(t, f.store, rule, false)
			if len(res.Dropped) != 0 {
				t.Fatalf("dropped %v", names(res.Dropped))
			}
			if got := names(res.Kept); !slices.Equal(got, allMonths[:3]) {
				t.Fatalf("kept %v, want %v", got, allMonths[:3])
			}
			for _, o := range res.Kept {
				if !strings.Contains(o.Reason, tc.reason) {
					t.Errorf("%s kept for %q, want it to name %q", o.Name, o.Reason, tc.reason)
				}
			}
			if got := f.partitions(t); !slices.Equal(got, allMonths) {
				t.Errorf("partitions left: %v", got)
			}
		})
	}
}

// A date column's partitions compare with the cutoff as the row sweep's
// condition does (at < cutoff): the first quarter goes, the second stays.
func TestPartitionSweepOnADateColumn(t *testing.T) {
	f := newPartFixture(t, false, "")
	rule := deleteRule()
	rule.Collection = "daily"
	res := sweepParts(t, f.store, rule, false)
	if got := names(res.Dropped); !slices.Equal(got, []string{"daily_q1"}) || res.Dropped[0].Rows != 30 {
		t.Fatalf("dropped %+v, want daily_q1 with 30 rows", res.Dropped)
	}
	if n := f.count(t, "SELECT count(*) FROM daily"); n != 30 {
		t.Errorf("daily has %d rows, want 30", n)
	}
}

// An unpartitioned table, and a table partitioned on another column, are
// not partition-swept.
func TestPartitionSweepLeavesOtherTables(t *testing.T) {
	f := newPartFixture(t, false, "")
	rule := deleteRule()
	rule.Collection = "plain"
	if res := sweepParts(t, f.store, rule, false); len(res.Dropped)+len(res.Kept) != 0 {
		t.Errorf("unpartitioned table: %+v", res)
	}
	if n := f.count(t, "SELECT count(*) FROM plain"); n != 100 {
		t.Errorf("plain has %d rows, want 100", n)
	}
	f.exec(t, `DROP TABLE events;
		CREATE TABLE events (id bigint NOT NULL, user_id bigint NOT NULL, note text, at timestamptz NOT NULL, PRIMARY KEY (id, user_id)) PARTITION BY RANGE (user_id);
		CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (0) TO (1000);`)
	if res := sweepParts(t, f.open(t, false), deleteRule(), false); len(res.Dropped)+len(res.Kept) != 0 {
		t.Errorf("table partitioned on another column: %+v", res)
	}
}

// With a DEFAULT partition PostgreSQL refuses a concurrent detach: the
// expired partitions are dropped under the parent's lock; the DEFAULT one
// and a MAXVALUE one are not touched.
func TestPartitionSweepWithDefaultAndMaxValuePartitions(t *testing.T) {
	f := newPartFixture(t, false, `
		CREATE TABLE events_default PARTITION OF events DEFAULT;
		CREATE TABLE events_old PARTITION OF events FOR VALUES FROM (MINVALUE) TO ('2023-01-01');
		CREATE TABLE events_late PARTITION OF events FOR VALUES FROM ('2030-01-01') TO (MAXVALUE);
		INSERT INTO events VALUES (1, 1, 'n', '2022-06-01'), (2, 2, 'n', '2023-06-01'), (3, 3, 'n', '2031-01-01');`)
	res := sweepParts(t, f.store, deleteRule(), false)
	want := []string{"events_2024_01", "events_2024_02", "events_2024_03", "events_old"}
	if got := names(res.Dropped); !slices.Equal(got, want) {
		t.Fatalf("dropped %v, want %v", got, want)
	}
	got := f.partitions(t)
	for _, keep := range []string{"events_default", "events_late", "events_2024_04"} {
		if !slices.Contains(got, keep) {
			t.Errorf("partition %s is gone: %v", keep, got)
		}
	}
	// The 2023 row lies in the DEFAULT partition: left to row batches.
	if n := f.count(t, "SELECT count(*) FROM events WHERE at < '2024-01-01'"); n != 1 {
		t.Errorf("%d rows before 2024 left, want the DEFAULT partition's 1", n)
	}
}

// A partition whose last check, once detached, finds a reason to keep it is
// attached again as it was, rows and all.
func TestPartitionKeptAfterDetachIsAttachedAgain(t *testing.T) {
	f := newPartFixture(t, false, "")
	ctx := context.Background()
	p, live, sw, table := f.partitioner(t)
	var detached int64
	keep := func(ctx context.Context, tx sqlcore.Tx, rp sqlcore.RangePartition) (stores.PartitionOutcome, bool, error) {
		// Detached by now: the parent no longer has it.
		err := tx.Query(ctx, sqlcore.Statement{SQL: "SELECT count(*) FROM pg_inherits WHERE inhrelid = 'events_2024_01'::regclass"}, []any{&detached}, func() error { return nil })
		return stores.PartitionOutcome{Name: rp.Name, Reason: "test"}, true, err
	}
	dropped, kept, err := p.DropPartitions(ctx, live, sw, table.Partitions[:1], keep)
	if err != nil {
		t.Fatal(err)
	}
	if detached != 0 {
		t.Errorf("the check ran while the partition was still attached")
	}
	if len(dropped) != 0 || len(kept) != 1 {
		t.Fatalf("dropped %+v kept %+v", dropped, kept)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths) {
		t.Errorf("partitions: %v", got)
	}
	if n := f.count(t, "SELECT count(*) FROM events WHERE at < '2024-02-01'"); n != 10 {
		t.Errorf("January has %d rows through the parent, want 10", n)
	}
}

// A sweep cut off between its detaches and its drop leaves the partitions
// detached and marked; the next sweep attaches them again and then drops
// (or keeps) them as any partition: no expired row is left in a table no
// sweep looks at, and a held one comes back into the parent, its comment as
// it was. Here the last check fails (as a statement timeout would) once all
// four are detached: 2023, itself partitioned by half year, and January to
// March.
func TestPartitionLeftDetachedByAnInterruptedSweepIsFinished(t *testing.T) {
	f := newPartFixture(t, false, `COMMENT ON TABLE events_2024_02 IS 'billing''s \ archive';
		CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01') PARTITION BY RANGE (at);
		CREATE TABLE events_2023_h1 PARTITION OF events_2023 FOR VALUES FROM ('2023-01-01') TO ('2023-07-01');
		CREATE TABLE events_2023_h2 PARTITION OF events_2023 FOR VALUES FROM ('2023-07-01') TO ('2024-01-01');
		INSERT INTO events VALUES (1, 1, 'n', '2023-03-01'), (2, 2, 'n', '2023-09-01');`)
	ctx := context.Background()
	f.dayFirstDates(t)
	p, live, sw, table := f.partitioner(t)
	failing := func(context.Context, sqlcore.Tx, sqlcore.RangePartition) (stores.PartitionOutcome, bool, error) {
		return stores.PartitionOutcome{}, false, errors.New("cut off")
	}
	if got := table.Partitions[0]; got.Name != "events_2023" || !got.Expired {
		t.Fatalf("first partition %+v, want 2023, expired", got)
	}
	if _, _, err := p.DropPartitions(ctx, live, sw, table.Partitions[:4], failing); err == nil || !strings.Contains(err.Error(), "until the next sweep") {
		t.Fatalf("interrupted drop: %v, want an error saying the next sweep finishes it", err)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths[3:]) {
		t.Fatalf("partitions attached after the interrupted sweep: %v, want %v", got, allMonths[3:])
	}
	marked := "SELECT count(*) FROM pg_class WHERE relname IN ('events_2023', 'events_2024_01', 'events_2024_02', 'events_2024_03') AND starts_with(obj_description(oid, 'pg_class'), 'lethe: detached from table ')"
	if n := f.count(t, marked); n != 4 {
		t.Fatalf("%d of the 4 detached tables are marked", n)
	}
	// A dry run changes nothing, the detached tables included.
	sweepParts(t, f.store, deleteRule(), true)
	if got := f.partitions(t); !slices.Equal(got, allMonths[3:]) {
		t.Fatalf("partitions attached after a dry run: %v", got)
	}

	rule := deleteRule()
	rule.HeldKeys = []string{"204"} // 4 February, held since
	res := sweepParts(t, f.store, rule, false)
	if got := names(res.Dropped); !slices.Equal(got, []string{"events_2023", "events_2024_01", "events_2024_03"}) {
		t.Fatalf("dropped %v, want 2023, January and March", got)
	}
	for _, o := range res.Dropped {
		if want := map[bool]int64{true: 2, false: 10}[o.Name == "events_2023"]; o.Rows != want || o.Estimated {
			t.Errorf("partition %s: %d rows (estimated %v), want exactly %d", o.Name, o.Rows, o.Estimated, want)
		}
	}
	if got := names(res.Kept); !slices.Equal(got, []string{"events_2024_02"}) || !strings.Contains(res.Kept[0].Reason, "legal hold") {
		t.Fatalf("kept %+v, want February for its legal hold", res.Kept)
	}
	if got, want := f.partitions(t), append([]string{"events_2024_02"}, allMonths[3:]...); !slices.Equal(got, want) {
		t.Fatalf("partitions attached: %v, want %v", got, want)
	}
	if n := f.count(t, "SELECT count(*) FROM events WHERE at < '2024-04-01'"); n != 10 {
		t.Errorf("February has %d rows through the parent, want 10", n)
	}
	if n := f.count(t, "SELECT count(*) FROM pg_class WHERE relname IN ('events_2023', 'events_2023_h1', 'events_2023_h2', 'events_2024_01', 'events_2024_03')"); n != 0 {
		t.Errorf("%d of the tables of 2023, January and March are still there", n)
	}
	var comment string
	if err := f.conn.QueryRow(ctx, "SELECT obj_description('events_2024_02'::regclass, 'pg_class')").Scan(&comment); err != nil || comment != `billing's \ archive` {
		t.Errorf("February's comment is %q (%v), want it as it was", comment, err)
	}
}

// A detach that fails partway (February read by name, in an open
// transaction, holds it past the lock timeout) leaves January dropped,
// February attached and marked (a failed detach may leave it pending), and
// March as it was; the next sweep removes February's mark and drops both.
func TestPartitionDetachFailingPartwayIsFinished(t *testing.T) {
	f := newPartFixture(t, false, `COMMENT ON TABLE events_2024_03 IS 'march';`)
	ctx := context.Background()
	reader := connect(t, f.dsn)
	if _, err := reader.Exec(ctx, "BEGIN; SELECT count(*) FROM events_2024_02"); err != nil {
		t.Fatal(err)
	}
	res, err := f.store.SweepPartitions(ctx, deleteRule(), false)
	if err == nil || !strings.Contains(err.Error(), "events_2024_02") {
		t.Fatalf("sweep with February read: %v, want its detach to fail", err)
	}
	if got := names(res.Dropped); !slices.Equal(got, []string{"events_2024_01"}) {
		t.Errorf("dropped %v, want January", got)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths[1:]) {
		t.Fatalf("partitions: %v, want %v", got, allMonths[1:])
	}
	comments := func() (feb, mar *string) {
		if err := f.conn.QueryRow(ctx, "SELECT obj_description('events_2024_02'::regclass, 'pg_class'), obj_description('events_2024_03'::regclass, 'pg_class')").Scan(&feb, &mar); err != nil {
			t.Fatal(err)
		}
		return feb, mar
	}
	if feb, mar := comments(); feb == nil || !strings.HasPrefix(*feb, detachMarkPrefix) || mar == nil || *mar != "march" {
		t.Fatalf("comments %v and %v, want February marked and March's own", feb, mar)
	}
	if _, err := reader.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	res = sweepParts(t, f.store, deleteRule(), false)
	if got := names(res.Dropped); !slices.Equal(got, []string{"events_2024_02", "events_2024_03"}) {
		t.Fatalf("second sweep dropped %v, want February and March", got)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths[3:]) {
		t.Errorf("partitions: %v", got)
	}
}

// A second partition sweep of the same table fails while one runs (here
// its lock is held by hand); a dry run still reads.
func TestPartitionSweepsOfOneTableDoNotOverlap(t *testing.T) {
	f := newPartFixture(t, false, "")
	ctx := context.Background()
	holder := connect(t, f.dsn)
	var free bool
	if err := holder.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended('lethe partition sweep ' || 'events'::regclass::oid::text, 0))").Scan(&free); err != nil || !free {
		t.Fatalf("taking the lock: %v %v", free, err)
	}
	_, err := f.store.SweepPartitions(ctx, deleteRule(), false)
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "another partition sweep") {
		t.Fatalf("sweep while another runs: %v, want ErrUnavailable", err)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths) {
		t.Fatalf("partitions: %v", got)
	}
	if dry := sweepParts(t, f.store, deleteRule(), true); len(dry.Dropped) != 3 {
		t.Errorf("dry run: %+v", dry)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}
	if res := sweepParts(t, f.store, deleteRule(), false); len(res.Dropped) != 3 {
		t.Errorf("sweep once the lock is free: %+v", res)
	}
	// The sweep let its lock go.
	if err := holder.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended('lethe partition sweep ' || 'events'::regclass::oid::text, 0))").Scan(&free); err != nil || !free {
		t.Errorf("the lock is still held after the sweep: %v %v", free, err)
	}
}

// More partition sweeps at once than the store has pooled connections, on
// tables of their own (partitioned or not), all finish: the lock that keeps
// two sweeps of one table apart takes no pooled connection.
func TestManyPartitionSweepsAtOnceShareThePool(t *testing.T) {
	dsn := testdb.ReusedPostgres(t)
	conn := connect(t, dsn)
	var ddl strings.Builder
	spec := privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres}
	const tables = 2 * maxConns
	for i := range tables {
		fmt.Fprintf(&ddl, `CREATE TABLE t%[1]d (id bigint NOT NULL, user_id bigint NOT NULL, note text, at timestamptz NOT NULL, PRIMARY KEY (id, at))`, i)
		if i%2 == 0 {
			fmt.Fprintf(&ddl, ` PARTITION BY RANGE (at);
				CREATE TABLE t%[1]d_jan PARTITION OF t%[1]d FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
				CREATE TABLE t%[1]d_feb PARTITION OF t%[1]d FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')`, i)
		}
		fmt.Fprintf(&ddl, ";\nINSERT INTO t%[1]d VALUES (1, 1, 'n', '2024-01-05');\n", i)
		spec.Collections = append(spec.Collections, noteCollection(fmt.Sprintf("t%d", i)))
	}
	if _, err := conn.Exec(context.Background(), ddl.String()); err != nil {
		t.Fatal(err)
	}
	s := openShortTimeouts(t, dsn, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, tables)
	dropped := make([]int, tables)
	var wg sync.WaitGroup
	for i := range tables {
		wg.Go(func() {
			rule := stores.SweepRule{Collection: fmt.Sprintf("t%d", i), Field: "at", Cutoff: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Action: stores.ActionDelete, BatchSize: 100}
			var res stores.PartitionSweep
			res, errs[i] = s.SweepPartitions(ctx, rule, false)
			dropped[i] = len(res.Dropped)
		})
	}
	wg.Wait()
	for i := range tables {
		want := map[bool]int{true: 2, false: 0}[i%2 == 0]
		if errs[i] != nil || dropped[i] != want {
			t.Errorf("sweep of t%d: dropped %d (want %d), %v", i, dropped[i], want, errs[i])
		}
	}
}

// A detach cut off in its second phase leaves the partition "detach
// pending", out of new queries' sight. The next sweep finishes the detach
// and attaches it again before it decides: a held partition comes back into
// the parent instead of staying invisible, the others are dropped.
func TestPartitionLeftDetachPendingIsFinished(t *testing.T) {
	f := newPartFixture(t, false, "")
	f.dayFirstDates(t)
	ctx := context.Background()
	reader := connect(t, f.dsn)
	if _, err := reader.Exec(ctx, "BEGIN; SELECT count(*) FROM events WHERE at >= '2024-06-01'"); err != nil {
		t.Fatal(err)
	}
	detacher := connect(t, f.dsn)
	if _, err := detacher.Exec(ctx, "SET statement_timeout = 1500"); err != nil {
		t.Fatal(err)
	}
	if _, err := detacher.Exec(ctx, "ALTER TABLE events DETACH PARTITION events_2024_02 CONCURRENTLY"); err == nil || !strings.Contains(err.Error(), "57014") {
		t.Fatalf("detach: %v, want it cut off waiting for the reader of the parent", err)
	}
	if _, err := reader.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	pending := "SELECT count(*) FROM pg_inherits WHERE inhrelid = 'events_2024_02'::regclass AND inhdetachpending"
	if n := f.count(t, pending); n != 1 {
		t.Fatal("February is not detach pending")
	}
	if n := f.count(t, "SELECT count(*) FROM events WHERE at >= '2024-02-01' AND at < '2024-03-01'"); n != 0 {
		t.Fatalf("a detach pending partition shows %d rows through the parent", n)
	}
	rule := deleteRule()
	rule.HeldKeys = []string{"204"}
	res := sweepParts(t, f.store, rule, false)
	if got := names(res.Dropped); !slices.Equal(got, []string{"events_2024_01", "events_2024_03"}) {
		t.Fatalf("dropped %v, want January and March", got)
	}
	if got := names(res.Kept); !slices.Equal(got, []string{"events_2024_02"}) {
		t.Fatalf("kept %v, want February", got)
	}
	if n := f.count(t, pending); n != 0 {
		t.Error("February is still detach pending")
	}
	if n := f.count(t, "SELECT count(*) FROM events WHERE at >= '2024-02-01' AND at < '2024-03-01'"); n != 10 {
		t.Errorf("February shows %d rows through the parent, want 10", n)
	}
}

// A sweep cut off after its marks and before its detach leaves a partition
// attached with a mark: the next sweep puts its comment back, whether or
// not it drops the partition.
func TestMarkOfAPartitionNeverDetachedIsRemoved(t *testing.T) {
	f := newPartFixture(t, false, "")
	events := f.qualifiedEvents(t)
	f.exec(t, commentSQL("events_2024_05", detachMark(events, "FOR VALUES FROM ('2024-05-01 00:00:00+00') TO ('2024-06-01 00:00:00+00')")+"\nmay's own"))
	f.exec(t, commentSQL("events_2024_06", detachMark(events, "FOR VALUES FROM ('2024-06-01 00:00:00+00') TO ('2024-07-01 00:00:00+00')")+"\n"))
	res := sweepParts(t, f.store, deleteRule(), false)
	if got := names(res.Dropped); !slices.Equal(got, allMonths[:3]) {
		t.Fatalf("dropped %v, want %v", got, allMonths[:3])
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths[3:]) {
		t.Fatalf("partitions: %v", got)
	}
	var may string
	var june *string
	if err := f.conn.QueryRow(context.Background(), "SELECT obj_description('events_2024_05'::regclass, 'pg_class'), obj_description('events_2024_06'::regclass, 'pg_class')").Scan(&may, &june); err != nil {
		t.Fatal(err)
	}
	if may != "may's own" || june != nil {
		t.Errorf("comments %q and %v, want May's own and none for June", may, june)
	}
}

// A comment only looks like a detach mark unless its bound is one
// PostgreSQL prints for a date or time: anything else would go into DDL,
// where a bound may call a function (here one that leaves a trace).
func TestDetachMarksWithAForeignBoundAreRefused(t *testing.T) {
	f := newPartFixture(t, false, `CREATE TABLE probes (n int);
		CREATE FUNCTION probe() RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN INSERT INTO probes VALUES (1); RETURN '2023-02-01'; END $$;
		CREATE TABLE stray (LIKE events);`)
	f.exec(t, commentSQL("stray", detachMark(f.qualifiedEvents(t), "FOR VALUES FROM ('2023-01-01') TO (probe())")))
	_, err := f.store.SweepPartitions(context.Background(), deleteRule(), false)
	if err == nil || !strings.Contains(err.Error(), "did not write") {
		t.Fatalf("sweep: %v, want the foreign mark refused", err)
	}
	if n := f.count(t, "SELECT count(*) FROM probes"); n != 0 {
		t.Errorf("the bound's function ran %d time(s)", n)
	}
	if got := f.partitions(t); !slices.Equal(got, allMonths) {
		t.Errorf("partitions: %v", got)
	}
}

// TableHealth counts dead rows after a DELETE (summed over partitions),
// and none once VACUUM has run.
func TestPartitionTableHealth(t *testing.T) {
	f := newPartFixture(t, false, "")
	ctx := context.Background()
	for _, tc := range []struct{ collection, table, del string }{
		{"plain", "plain", "DELETE FROM plain WHERE id <= 40"},
		{"events", "events", "DELETE FROM events WHERE at < '2024-03-01'"},
	} {
		f.exec(t, "VACUUM "+tc.table)
		before := waitHealth(t, f.store, tc.collection, func(h stores.TableHealth) bool { return h.DeadRows == 0 })
		if !before.Known || before.LastVacuum.IsZero() {
			t.Errorf("%s after VACUUM: %+v, want known, with a last vacuum", tc.collection, before)
		}
		f.exec(t, tc.del)
		// The statistics are flushed asynchronously: ask this backend to
		// flush them as soon as it is idle.
		f.exec(t, "SELECT pg_stat_force_next_flush()")
		after := waitHealth(t, f.store, tc.collection, func(h stores.TableHealth) bool { return h.DeadRows > 0 })
		want := int64(40)
		if tc.collection == "events" {
			want = 20
		}
		if after.DeadRows != want {
			t.Errorf("%s after the DELETE: %d dead rows, want %d", tc.collection, after.DeadRows, want)
		}
		f.exec(t, "VACUUM "+tc.table)
		vacuumed := waitHealth(t, f.store, tc.collection, func(h stores.TableHealth) bool { return h.DeadRows == 0 })
		if vacuumed.LastVacuum.Before(before.LastVacuum) {
			t.Errorf("%s: last vacuum went back from %v to %v", tc.collection, before.LastVacuum, vacuumed.LastVacuum)
		}
	}
	if _, err := f.store.TableHealth(ctx, "nope"); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("unknown collection: %v, want ErrInvalid", err)
	}
}

// waitHealth polls TableHealth until ok (statistics lag), failing after 15s.
func waitHealth(t *testing.T, s *Store, collection string, ok func(stores.TableHealth) bool) stores.TableHealth {
	t.Helper()
	var h stores.TableHealth
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if h, err = s.TableHealth(context.Background(), collection); err != nil {
			t.Fatalf("TableHealth(%s): %v", collection, err)
		}
		if ok(h) {
			return h
		}
	}
	t.Fatalf("TableHealth(%s) stayed %+v", collection, h)
	return h
}

// A large partition the database never analyzed is not read to be counted:
// its rows are the planner's estimate (from its size on disk), flagged so.
func TestPartitionNeverAnalyzedIsEstimatedNotCounted(t *testing.T) {
	// Autovacuum off for it, so nothing analyzes it during the test.
	f := newPartFixture(t, false, `ALTER TABLE events_2024_01 SET (autovacuum_enabled = false);
INSERT INTO events SELECT 1000000 + g, g, 'n', timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, 50000) g;`)
	if n := f.count(t, "SELECT count(*) FROM pg_class WHERE relname = 'events_2024_01' AND reltuples < 0"); n != 1 {
		t.Fatal("the partition has been analyzed: the test needs one that never was")
	}
	res := sweepParts(t, f.store, deleteRule(), true)
	var jan stores.PartitionOutcome
	for _, o := range res.Dropped {
		if o.Name == "events_2024_01" {
			jan = o
		}
	}
	if !jan.Estimated || jan.Rows < 25000 || jan.Rows > 100000 {
		t.Errorf("never-analyzed January: %d rows (estimated %v), want the planner's estimate of about 50,010, flagged estimated", jan.Rows, jan.Estimated)
	}
}
