package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// moreLoginEvents adds 1000 login events of user 2, one a day from 2020-01-01;
// every fifth came through a proxy (via_proxy true, otherwise NULL). Their ids
// cross from four digits to five, where text and numeric order differ.
const moreLoginEvents = `
ALTER TABLE login_events ADD COLUMN via_proxy boolean;
INSERT INTO login_events (id, user_id, ip, at, via_proxy)
SELECT g, 2, '198.51.100.' || (g % 250), TIMESTAMPTZ '2020-01-01 00:00:00+00' + (g - 9500) * INTERVAL '1 day',
	CASE WHEN g % 5 = 0 THEN true END
FROM generate_series(9500, 10499) g;`

var sweepCutoff = time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)

// sweepAll runs batches until the sweep is done and returns the rows affected
// and the number of batches.
func sweepAll(t *testing.T, s *Store, rule stores.SweepRule, cursor string) (int64, int) {
	t.Helper()
	var rows int64
	for batches := 1; ; batches++ {
		b, err := s.SweepBatch(context.Background(), rule, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if rule.BatchSize > 0 && (b.Rows > int64(rule.BatchSize) || !b.Done && b.Rows != int64(rule.BatchSize)) {
			t.Fatalf("batch %d: %d rows (done %v), want full batches of %d until the last", batches, b.Rows, b.Done, rule.BatchSize)
		}
		rows += b.Rows
		cursor = b.Cursor
		if b.Done {
			return rows, batches
		}
		if batches > 10000 {
			t.Fatal("the sweep does not end")
		}
	}
}

func ids(t *testing.T, f *fixture, sql string, args ...any) []string {
	t.Helper()
	rows, err := f.conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestSweepDeletesExactlyTheExpiredRows(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete), moreLoginEvents)
	expired := ids(t, f, `SELECT id::text FROM login_events WHERE at < $1`, sweepCutoff)
	if len(expired) < 500 {
		t.Fatalf("fixture: only %d expired rows", len(expired))
	}
	before := f.snapshot(t)

	rule := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 64}
	if n, err := f.store.CountPastPeriod(context.Background(), rule); err != nil || n != int64(len(expired)) {
		t.Fatalf("CountPastPeriod = %d, %v; want %d", n, err, len(expired))
	}
	rows, batches := sweepAll(t, f.store, rule, "")
	if rows != int64(len(expired)) {
		t.Errorf("swept %d rows, want %d", rows, len(expired))
	}
	if want := len(expired)/64 + 1; batches != want {
		t.Errorf("%d batches, want %d", batches, want)
	}
	changed := changedRows(before, f.snapshot(t))
	if got := changed["public.login_events"]; !slices.Equal(got, expired) {
		t.Errorf("deleted %d rows, want exactly the %d expired ones", len(got), len(expired))
	}
	if len(changed) != 1 {
		t.Errorf("other tables changed: %v", changed)
	}
	if n, err := f.store.CountPastPeriod(context.Background(), rule); err != nil || n != 0 {
		t.Errorf("after the sweep, CountPastPeriod = %d, %v; want 0", n, err)
	}
	// Sweeping again changes nothing.
	if rows, _ := sweepAll(t, f.store, rule, ""); rows != 0 {
		t.Errorf("second sweep affected %d rows", rows)
	}
}

func TestSweepWhereConditionsAndHeldKeys(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete), moreLoginEvents)
	// The subject (user 1) has login events 1000 and 1002, both expired.
	held, err := f.store.SubjectKeys(context.Background(), subject, "login_events")
	if err != nil || !slices.Equal(held, []string{"1000", "1002"}) {
		t.Fatalf("SubjectKeys(login_events) = %v, %v", held, err)
	}
	// Down the references: the subject's invoice lines through its invoices.
	if lines, err := f.store.SubjectKeys(context.Background(), subject, "invoice_lines"); err != nil || !slices.Equal(lines, []string{"100", "101", "102"}) {
		t.Fatalf("SubjectKeys(invoice_lines) = %v, %v", lines, err)
	}
	// A subject this store knows nothing of has no rows here; an empty identity is refused.
	if keys, err := f.store.SubjectKeys(context.Background(), map[string]string{"stripeId": "cus_1"}, "login_events"); err != nil || keys != nil {
		t.Errorf("unknown identity type: %v, %v", keys, err)
	}
	if _, err := f.store.SubjectKeys(context.Background(), map[string]string{"email": " "}, "login_events"); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("empty identity: %v, want ErrInvalid", err)
	}

	// A cutoff after the fixture's own 2024 events, so the subject's are expired too.
	cutoff := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	rule := stores.SweepRule{
		Collection: "login_events", Field: "at", Cutoff: cutoff, Action: stores.ActionDelete, BatchSize: 50,
		Where: []stores.Condition{{Field: "via_proxy", IsNull: true}}, HeldKeys: held,
	}
	want := ids(t, f, `SELECT id::text FROM login_events WHERE at < $1 AND via_proxy IS NULL AND id NOT IN (1000, 1002)`, cutoff)
	if !slices.Contains(want, "1001") || slices.Contains(want, "9505") {
		t.Fatalf("fixture: %v", want[:5])
	}
	before := f.snapshot(t)
	if n, _ := f.store.CountPastPeriod(context.Background(), rule); n != int64(len(want)) {
		t.Errorf("CountPastPeriod = %d, want %d", n, len(want))
	}
	sweepAll(t, f.store, rule, "")
	if got := changedRows(before, f.snapshot(t))["public.login_events"]; !slices.Equal(got, want) {
		t.Errorf("deleted %d rows, want the %d expired, unproxied, unheld ones", len(got), len(want))
	}
	if n := f.queryString(t, `SELECT count(*)::text FROM login_events WHERE id IN (1000, 1002)`); n != "2" {
		t.Errorf("held rows deleted: %s left of 2", n)
	}
}

func TestSweepAnonymizesEachRowOnce(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
	// Accounts created 2020-01-01 that someone referred (2, 3 and 4) are past a 1y period.
	rule := stores.SweepRule{
		Collection: "accounts", Field: "created_at", Cutoff: sweepCutoff, Action: stores.ActionAnonymize, BatchSize: 2,
		Where: []stores.Condition{{Field: "referred_by", IsNull: false}},
	}
	before := f.snapshot(t)
	if n, _ := f.store.CountPastPeriod(context.Background(), rule); n != 3 {
		t.Fatalf("CountPastPeriod = %d, want 3", n)
	}
	if rows, batches := sweepAll(t, f.store, rule, ""); rows != 3 || batches != 2 {
		t.Errorf("anonymized %d rows in %d batches, want 3 in 2", rows, batches)
	}
	changed := changedRows(before, f.snapshot(t))
	if got := changed["public.accounts"]; !slices.Equal(got, []string{"2", "3", "4"}) || len(changed) != 1 {
		t.Fatalf("changed %v, want accounts 2, 3 and 4 only", changed)
	}
	var email, name string
	if err := f.conn.QueryRow(context.Background(), `SELECT email, name FROM accounts WHERE id = 2`).Scan(&email, &name); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(email, "erased-") || name != "[redacted]" {
		t.Errorf("account 2 after the sweep: %q %q", email, name)
	}
	// Masked rows are no longer past their period, and a second run changes nothing.
	if n, _ := f.store.CountPastPeriod(context.Background(), rule); n != 0 {
		t.Errorf("after the sweep, CountPastPeriod = %d, want 0", n)
	}
	after := f.snapshot(t)
	if rows, _ := sweepAll(t, f.store, rule, ""); rows != 0 {
		t.Errorf("second sweep anonymized %d rows", rows)
	}
	if c := changedRows(after, f.snapshot(t)); len(c) != 0 {
		t.Errorf("second sweep changed %v", c)
	}
}

func TestSweepCursorIsOpaqueAndResumesInAnotherStore(t *testing.T) {
	dsn := testdb.NewPostgres(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Text primary keys that are personal data: the cursor must not carry them.
	if _, err := conn.Exec(context.Background(), fixtureSQL+moreLoginEvents+`
		CREATE TABLE subscribers (email text PRIMARY KEY, since timestamptz NOT NULL);
		INSERT INTO subscribers SELECT 'user' || g || '@x.io', TIMESTAMPTZ '2019-01-01 00:00:00+00' FROM generate_series(1, 30) g;`); err != nil {
		t.Fatal(err)
	}
	spec := fixtureSpec(privacyv1.ErasureDelete)
	spec.Collections = append(spec.Collections, privacyv1.Collection{
		Name: "subscribers", PrimaryKey: "email", Identity: map[string]privacyv1.Identifier{"email": "email"},
		Fields: []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
	})
	first := newStore(t, dsn, spec, testKey)
	rule := stores.SweepRule{Collection: "subscribers", Field: "since", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 7}
	b, err := first.SweepBatch(context.Background(), rule, "")
	if err != nil || b.Rows != 7 || b.Done {
		t.Fatalf("first batch: %+v, %v", b, err)
	}
	if strings.Contains(b.Cursor, "@") || strings.Contains(b.Cursor, "user") {
		t.Errorf("cursor %q shows a key", b.Cursor)
	}
	// A restarted operator resumes with a new store (same masking key).
	second := newStore(t, dsn, spec, testKey)
	rows, _ := sweepAll(t, second, rule, b.Cursor)
	if rows != 23 {
		t.Errorf("resumed sweep deleted %d rows, want the 23 left", rows)
	}
	// A cursor that cannot be opened restarts the rule: nothing is missed.
	logs := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 100}
	other := newStore(t, dsn, spec, []byte("another key"))
	if rows, _ := sweepAll(t, other, logs, b.Cursor); rows == 0 {
		t.Error("a foreign cursor skipped the whole rule")
	}
	var left int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM login_events WHERE at < $1`, sweepCutoff).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d expired login events left (%v)", left, err)
	}
}

func TestSweepRefusesRulesThatDoNotFit(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	cases := map[string]stores.SweepRule{
		"unknown collection":     {Collection: "sessions", Field: "at", Action: stores.ActionDelete},
		"field not a timestamp":  {Collection: "login_events", Field: "ip", Action: stores.ActionDelete},
		"unknown field":          {Collection: "login_events", Field: "created", Action: stores.ActionDelete},
		"unknown where column":   {Collection: "login_events", Field: "at", Action: stores.ActionDelete, Where: []stores.Condition{{Field: "closed_at"}}},
		"nothing to anonymize":   {Collection: "login_events", Field: "at", Action: stores.ActionAnonymize},
		"neither delete nor ...": {Collection: "login_events", Field: "at", Action: stores.ActionRetain},
	}
	for name, rule := range cases {
		t.Run(name, func(t *testing.T) {
			before := f.snapshot(t)
			if _, err := f.store.SweepBatch(context.Background(), rule, ""); !errors.Is(err, stores.ErrInvalid) {
				t.Errorf("SweepBatch: %v, want ErrInvalid", err)
			}
			if _, err := f.store.CountPastPeriod(context.Background(), rule); !errors.Is(err, stores.ErrInvalid) {
				t.Errorf("CountPastPeriod: %v, want ErrInvalid", err)
			}
			if c := changedRows(before, f.snapshot(t)); len(c) != 0 {
				t.Errorf("changed %v", c)
			}
		})
	}
}

func TestSweepSkipsRowsLockedByOthers(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete), moreLoginEvents)
	ctx := context.Background()
	// The application holds a lock on an expired row in the first batch's range.
	tx, err := f.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM login_events WHERE id = 9510 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	rule := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 100}
	start := time.Now()
	b, err := f.store.SweepBatch(ctx, rule, "")
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the batch waited %s for the lock", waited)
	}
	if b.Rows != 99 || b.Done {
		t.Errorf("batch: %+v, want the 99 unlocked rows of the range", b)
	}
	rest, _ := sweepAll(t, f.store, rule, b.Cursor)
	if n, _ := f.store.CountPastPeriod(ctx, rule); n != 1 {
		t.Errorf("compliance gap %d, want the locked row", n)
	}
	// Once the lock is released, the next run deletes it.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := sweepAll(t, f.store, rule, ""); again != 1 {
		t.Errorf("next run deleted %d rows, want 1 (%d before)", again, rest)
	}
}
