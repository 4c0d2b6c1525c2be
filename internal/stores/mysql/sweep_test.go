package mysql

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// moreLoginEvents adds 1000 login events of user 2, one a day from 2020-01-01;
// every fifth came through a proxy (via_proxy true, otherwise NULL).
var moreLoginEvents = []string{
	`ALTER TABLE login_events ADD COLUMN via_proxy BOOLEAN`,
	`INSERT INTO login_events (id, user_id, ip, at, via_proxy)
	SELECT seq, 2, CONCAT('198.51.100.', seq % 250), TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (seq - 2000) DAY, IF(seq % 5 = 0, TRUE, NULL)
	FROM seq_2000_to_2999`,
}

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
		if rule.BatchSize > 0 && b.Rows > int64(rule.BatchSize) {
			t.Fatalf("batch of %d rows, more than the batch size %d", b.Rows, rule.BatchSize)
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

func TestMySQLSweepDeletesExactlyTheExpiredRows(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete, moreLoginEvents...)
	expired := f.strings(t, `SELECT CAST(id AS CHAR) FROM login_events WHERE at < ?`, sweepCutoff)
	if len(expired) != 517 {
		t.Fatalf("fixture: %d expired rows, want 517", len(expired))
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
	if got := changed["login_events"]; !slices.Equal(got, expired) {
		t.Errorf("deleted %d rows, want exactly the %d expired ones", len(got), len(expired))
	}
	if len(changed) != 1 {
		t.Errorf("other tables changed: %v", changed)
	}
	if n, err := f.store.CountPastPeriod(context.Background(), rule); err != nil || n != 0 {
		t.Errorf("after the sweep, CountPastPeriod = %d, %v; want 0", n, err)
	}
	if rows, _ := sweepAll(t, f.store, rule, ""); rows != 0 {
		t.Errorf("second sweep affected %d rows", rows)
	}
}

func TestMySQLSweepWhereConditionsAndHeldKeys(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete, moreLoginEvents...)
	ctx := context.Background()
	// The subject (user 1) has login events 1000 and 1002.
	held, err := f.store.SubjectKeys(ctx, subject, "login_events")
	if err != nil || !slices.Equal(held, []string{"1000", "1002"}) {
		t.Fatalf("SubjectKeys(login_events) = %v, %v", held, err)
	}
	// Down the references, binary keys in hex.
	if lines, err := f.store.SubjectKeys(ctx, subject, "invoice_lines"); err != nil || !slices.Equal(lines, []string{"100", "101", "102"}) {
		t.Fatalf("SubjectKeys(invoice_lines) = %v, %v", lines, err)
	}
	if devices, err := f.store.SubjectKeys(ctx, subject, "devices"); err != nil || !slices.Equal(devices, subjectRowIDs["devices"]) {
		t.Fatalf("SubjectKeys(devices) = %v, %v", devices, err)
	}
	// A subject this store knows nothing of has no rows here; an empty identity is refused.
	if keys, err := f.store.SubjectKeys(ctx, map[string]string{"stripeId": "cus_1"}, "login_events"); err != nil || keys != nil {
		t.Errorf("unknown identity type: %v, %v", keys, err)
	}
	if _, err := f.store.SubjectKeys(ctx, map[string]string{"email": " "}, "login_events"); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("empty identity: %v, want ErrInvalid", err)
	}

	// A cutoff after the fixture's own 2024 events, so the subject's are expired too.
	cutoff := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	rule := stores.SweepRule{
		Collection: "login_events", Field: "at", Cutoff: cutoff, Action: stores.ActionDelete, BatchSize: 50,
		Where: []stores.Condition{{Field: "via_proxy", IsNull: true}}, HeldKeys: held,
	}
	want := f.strings(t, `SELECT CAST(id AS CHAR) FROM login_events WHERE at < ? AND via_proxy IS NULL AND id NOT IN (1000, 1002)`, cutoff)
	if !slices.Contains(want, "1001") || slices.Contains(want, "2005") {
		t.Fatalf("fixture: %v", want[:5])
	}
	before := f.snapshot(t)
	if n, _ := f.store.CountPastPeriod(ctx, rule); n != int64(len(want)) {
		t.Errorf("CountPastPeriod = %d, want %d", n, len(want))
	}
	sweepAll(t, f.store, rule, "")
	if got := changedRows(before, f.snapshot(t))["login_events"]; !slices.Equal(got, want) {
		t.Errorf("deleted %d rows, want the %d expired, unproxied, unheld ones", len(got), len(want))
	}
	if n := f.queryString(t, `SELECT count(*) FROM login_events WHERE id IN (1000, 1002)`); n != "2" {
		t.Errorf("held rows deleted: %s left of 2", n)
	}
	if n, _ := f.store.CountPastPeriod(ctx, rule); n != 0 {
		t.Errorf("after the sweep, CountPastPeriod = %d, want 0 (held rows are not counted)", n)
	}
}

func TestMySQLSweepAnonymizesEachRowOnce(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
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
	if got := changed["accounts"]; !slices.Equal(got, []string{"2", "3", "4"}) || len(changed) != 1 {
		t.Fatalf("changed %v, want accounts 2, 3 and 4 only", changed)
	}
	if got := f.queryString(t, `SELECT CONCAT_WS('|', email LIKE 'erased-%', name) FROM accounts WHERE id = 2`); got != "1|[redacted]" {
		t.Errorf("account 2 after the sweep: %q", got)
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

// Text primary keys that are personal data, in a case-insensitive collation:
// the cursor must not carry them, and a new store resumes after it.
func TestMySQLSweepCursorIsOpaqueAndResumesInAnotherStore(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete, append(moreLoginEvents,
		`CREATE TABLE subscribers (email VARCHAR(255) PRIMARY KEY, since DATETIME NOT NULL)`,
		`INSERT INTO subscribers SELECT CONCAT(IF(seq % 2, 'User', 'user'), seq, '@x.io'), '2019-01-01' FROM seq_1_to_30`)...)
	spec := fixtureSpec(f.name, privacyv1.ErasureDelete)
	spec.Collections = append(spec.Collections, privacyv1.Collection{
		Name: "subscribers", PrimaryKey: "email", Identity: map[string]privacyv1.Identifier{"email": "email"},
		Fields: []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
	})
	first := newStore(t, f.dsn, spec, testKey)
	rule := stores.SweepRule{Collection: "subscribers", Field: "since", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 7}
	b, err := first.SweepBatch(context.Background(), rule, "")
	if err != nil || b.Rows != 7 || b.Done {
		t.Fatalf("first batch: %+v, %v", b, err)
	}
	if strings.Contains(b.Cursor, "@") || strings.Contains(strings.ToLower(b.Cursor), "user") {
		t.Errorf("cursor %q shows a key", b.Cursor)
	}
	// A restarted operator resumes with a new store (same masking key).
	second := newStore(t, f.dsn, spec, testKey)
	if rows, _ := sweepAll(t, second, rule, b.Cursor); rows != 23 {
		t.Errorf("resumed sweep deleted %d rows, want the 23 left", rows)
	}
	// A cursor that cannot be opened restarts the rule: nothing is missed.
	logs := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 100}
	other := newStore(t, f.dsn, spec, []byte("another key"))
	if rows, _ := sweepAll(t, other, logs, b.Cursor); rows == 0 {
		t.Error("a foreign cursor skipped the whole rule")
	}
	if left := f.queryString(t, `SELECT count(*) FROM login_events WHERE at < ?`, sweepCutoff); left != "0" {
		t.Errorf("%s expired login events left", left)
	}
}

// A batch leaves rows another transaction holds for the next run instead of
// waiting for them.
func TestMySQLSweepSkipsLockedRows(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete, moreLoginEvents...)
	tx, err := f.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec("SELECT id FROM login_events WHERE id = 2001 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	rule := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 1000}
	start := time.Now()
	rows, _ := sweepAll(t, f.store, rule, "")
	if rows != 516 || time.Since(start) > 5*time.Second {
		t.Errorf("swept %d rows in %s, want 516 without waiting", rows, time.Since(start))
	}
	_ = tx.Rollback()
	if got := f.strings(t, `SELECT CAST(id AS CHAR) FROM login_events WHERE at < ?`, sweepCutoff); !reflect.DeepEqual(got, []string{"2001"}) {
		t.Errorf("left %v, want only the locked row 2001", got)
	}
}

func TestMySQLSweepRefusesRulesThatDoNotFit(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
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
