package storetest

import (
	"errors"
	"slices"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

var sweepCutoff = time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)

func sweeper(t T, x *fx, s stores.Store) stores.Sweeper {
	t.Helper()
	sw, ok := s.(stores.Sweeper)
	if !ok {
		t.Fatalf("storetest: %s has Sweeps but its store is no stores.Sweeper", x.suite.Name)
	}
	return sw
}

// sweepAll runs batches until the sweep is done and returns the rows
// affected and the number of batches. Every batch but the last is full.
func sweepAll(t T, s stores.Sweeper, rule stores.SweepRule, cursor string) (int64, int) {
	t.Helper()
	var rows int64
	for batches := 1; ; batches++ {
		b, err := s.SweepBatch(ctx, rule, cursor)
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

// subjectKeys is the subject's keys in one collection.
func subjectKeys(s stores.Sweeper, subject map[string]string, collection string) ([]string, error) {
	keys, err := s.SubjectKeys(ctx, subject, []string{collection})
	return keys[collection], err
}

func count(t T, s stores.Sweeper, rule stores.SweepRule) int64 {
	t.Helper()
	past, err := s.CountPastPeriod(ctx, rule)
	n := past.Rows
	if err != nil {
		t.Fatalf("CountPastPeriod: %v", err)
	}
	return n
}

// Keys come in key order (9 before 20 before 100, not as text), down the
// references; a subject the store knows nothing of has none; an empty
// identity is refused.
func subjectKeysFollowReferencesInKeyOrder(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	s := sweeper(t, x, x.Store())
	for _, c := range []struct {
		collection string
		want       []any
	}{
		{"login_events", subjectRows["login_events"]},
		{"invoice_lines", subjectRows["invoice_lines"]},
		{"devices", subjectRows["devices"]},
		{"orders", subjectRows["orders"]},
	} {
		keys, err := subjectKeys(s, x.subject(), c.collection)
		var want []string
		for _, k := range c.want {
			want = append(want, x.Key(c.collection, k))
		}
		if err != nil || !slices.Equal(keys, want) {
			t.Errorf("SubjectKeys(%s) = %v, %v; want %v in key order", c.collection, keys, err, want)
		}
	}
	if keys, err := subjectKeys(s, map[string]string{"stripeId": "cus_1"}, "login_events"); err != nil || keys != nil {
		t.Errorf("unknown identity type: %v, %v; want no keys", keys, err)
	}
	if _, err := subjectKeys(s, map[string]string{"email": " "}, "login_events"); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("empty identity: %v, want ErrInvalid", err)
	}
}

func sweepDeletesExactlyTheExpiredRows(t T, e *env) {
	x := e.mustOpen(t, Fixture{LoginHistory: true})
	s := sweeper(t, x, x.Store())
	expired := x.loginEvents(func(r []any) bool { return r[3].(time.Time).Before(sweepCutoff) })
	if len(expired) != 517 {
		t.Fatalf("fixture: %d expired rows, want 517", len(expired))
	}
	before := x.Snapshot(t)
	rule := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 64}
	if n := count(t, s, rule); n != int64(len(expired)) {
		t.Fatalf("CountPastPeriod = %d, want %d", n, len(expired))
	}
	rows, batches := sweepAll(t, s, rule, "")
	if rows != int64(len(expired)) {
		t.Errorf("swept %d rows, want %d", rows, len(expired))
	}
	if want := len(expired)/64 + 1; batches != want {
		t.Errorf("%d batches, want %d", batches, want)
	}
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{"login_events": expired})
	if n := count(t, s, rule); n != 0 {
		t.Errorf("after the sweep, CountPastPeriod = %d, want 0", n)
	}
	if rows, _ := sweepAll(t, s, rule, ""); rows != 0 {
		t.Errorf("second sweep affected %d rows", rows)
	}
}

func sweepHonoursConditionsAndHeldKeys(t T, e *env) {
	x := e.mustOpen(t, Fixture{LoginHistory: true})
	s := sweeper(t, x, x.Store())
	// The subject's login events 1000 and 1002 are held.
	held, err := subjectKeys(s, x.subject(), "login_events")
	if err != nil || !slices.Equal(held, x.keys("login_events", 1000, 1002)) {
		t.Fatalf("SubjectKeys(login_events) = %v, %v", held, err)
	}
	// A cutoff after the fixture's own 2024 events, so the subject's are expired too.
	cutoff := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	rule := stores.SweepRule{
		Collection: "login_events", Field: "at", Cutoff: cutoff, Action: stores.ActionDelete, BatchSize: 50,
		Where: []stores.Condition{{Field: "via_proxy", IsNull: true}}, HeldKeys: held,
	}
	want := x.loginEvents(func(r []any) bool {
		return r[3].(time.Time).Before(cutoff) && r[4] == nil && r[0] != 1000 && r[0] != 1002
	})
	if !slices.Contains(want, any(1001)) || slices.Contains(want, any(9505)) {
		t.Fatalf("fixture: %v", want[:5])
	}
	before := x.Snapshot(t)
	if p := pastPeriod(t, s, rule); p != (stores.PastPeriod{Rows: int64(len(want)), Held: 2}) {
		t.Errorf("CountPastPeriod = %+v, want %d rows and the 2 held", p, len(want))
	}
	sweepAll(t, s, rule, "")
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{"login_events": want})
	if p := pastPeriod(t, s, rule); p != (stores.PastPeriod{Held: 2}) {
		t.Errorf("after the sweep, CountPastPeriod = %+v, want the 2 held rows only", p)
	}
}

func sweepAnonymizesEachRowOnce(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	s := sweeper(t, x, x.Store())
	// Accounts created 2020-01-01 that someone referred (2, 3 and 4) are past a 1y period.
	rule := stores.SweepRule{
		Collection: "accounts", Field: "created_at", Cutoff: sweepCutoff, Action: stores.ActionAnonymize, BatchSize: 2,
		Where: []stores.Condition{{Field: "referred_by", IsNull: false}},
	}
	before := x.Snapshot(t)
	if n := count(t, s, rule); n != 3 {
		t.Fatalf("CountPastPeriod = %d, want 3", n)
	}
	if rows, batches := sweepAll(t, s, rule, ""); rows != 3 || batches != 2 {
		t.Errorf("anonymized %d rows in %d batches, want 3 in 2", rows, batches)
	}
	after := x.Snapshot(t)
	x.wantChanged(t, before, after, map[string][]any{"accounts": {ID(2), ID(3), ID(4)}})
	if a := x.row(t, after, "accounts", ID(2)); !strings.HasPrefix(a["email"], "erased-") || a["name"] != "[redacted]" {
		t.Errorf("account 2 after the sweep: %v", a)
	}
	// Masked rows are no longer past their period, and a second run changes nothing.
	if n := count(t, s, rule); n != 0 {
		t.Errorf("after the sweep, CountPastPeriod = %d, want 0", n)
	}
	if rows, _ := sweepAll(t, s, rule, ""); rows != 0 {
		t.Errorf("second sweep anonymized %d rows", rows)
	}
	unchanged(t, "the second sweep", after, x.Snapshot(t))
}

// Text primary keys that are personal data (in a case-insensitive collation
// where the engine has one): the cursor must not carry them, a new store
// resumes after it, and a cursor that cannot be opened restarts the rule.
func sweepCursorIsOpaqueAndResumes(t T, e *env) {
	x := e.mustOpen(t, Fixture{LoginHistory: true, Subscribers: true})
	first := sweeper(t, x, x.Store())
	rule := stores.SweepRule{Collection: "subscribers", Field: "since", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 7}
	b, err := first.SweepBatch(ctx, rule, "")
	if err != nil || b.Rows != 7 || b.Done {
		t.Fatalf("first batch: %+v, %v", b, err)
	}
	if strings.Contains(b.Cursor, "@") || strings.Contains(strings.ToLower(b.Cursor), "user") {
		t.Errorf("cursor %q shows a key", b.Cursor)
	}
	// A restarted operator resumes with a new store (same masking key).
	second := sweeper(t, x, x.Open(t, x.f.Spec(), MaskingKey))
	if rows, _ := sweepAll(t, second, rule, b.Cursor); rows != 23 {
		t.Errorf("resumed sweep deleted %d rows, want the 23 left", rows)
	}
	// A cursor that cannot be opened restarts the rule: nothing is missed.
	logs := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 100}
	other := sweeper(t, x, x.Open(t, x.f.Spec(), []byte("another key")))
	if rows, _ := sweepAll(t, other, logs, b.Cursor); rows == 0 {
		t.Error("a foreign cursor skipped the whole rule")
	}
	if n := count(t, first, logs); n != 0 {
		t.Errorf("%d expired login events left", n)
	}
	if left := x.Snapshot(t)["subscribers"]; len(left) != 0 {
		t.Errorf("%d subscribers left", len(left))
	}
}

func sweepRefusesRulesThatDoNotFit(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	s := sweeper(t, x, x.Store())
	before := x.Snapshot(t)
	for name, rule := range map[string]stores.SweepRule{
		"unknown collection":     {Collection: "sessions", Field: "at", Action: stores.ActionDelete},
		"field not a timestamp":  {Collection: "login_events", Field: "ip", Action: stores.ActionDelete},
		"unknown field":          {Collection: "login_events", Field: "created", Action: stores.ActionDelete},
		"unknown where column":   {Collection: "login_events", Field: "at", Action: stores.ActionDelete, Where: []stores.Condition{{Field: "closed_at"}}},
		"nothing to anonymize":   {Collection: "login_events", Field: "at", Action: stores.ActionAnonymize},
		"neither delete nor ...": {Collection: "login_events", Field: "at", Action: stores.ActionRetain},
	} {
		if _, err := s.SweepBatch(ctx, rule, ""); !errors.Is(err, stores.ErrInvalid) {
			t.Errorf("%s: SweepBatch: %v, want ErrInvalid", name, err)
		}
		if _, err := s.CountPastPeriod(ctx, rule); !errors.Is(err, stores.ErrInvalid) {
			t.Errorf("%s: CountPastPeriod: %v, want ErrInvalid", name, err)
		}
	}
	unchanged(t, "refused sweeps", before, x.Snapshot(t))
}

// A batch leaves rows another transaction holds for the next run instead of
// waiting for them; the compliance gap counts them.
func sweepSkipsRowsLockedByOthers(t T, e *env) {
	x := e.mustOpen(t, Fixture{LoginHistory: true})
	s := sweeper(t, x, x.Store())
	l, ok := x.Harness.(LockHarness)
	if !ok {
		t.Fatalf("storetest: %s has Locks but its harness is no LockHarness", x.suite.Name)
	}
	// The application holds a lock on an expired row in the first batch's
	// range until the test ends: a batch that waited on it would never return.
	release := l.Lock(t, "login_events", x.Key("login_events", 9510))
	rule := stores.SweepRule{Collection: "login_events", Field: "at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 100}
	b, err := s.SweepBatch(ctx, rule, "")
	if err != nil {
		t.Fatal(err)
	}
	if b.Rows != 99 || b.Done {
		t.Errorf("batch: %+v, want the 99 unlocked rows of the range", b)
	}
	rest, _ := sweepAll(t, s, rule, b.Cursor)
	if b.Rows+rest != 516 {
		t.Errorf("swept %d rows, want the 516 unlocked expired ones", b.Rows+rest)
	}
	if n := count(t, s, rule); n != 1 {
		t.Errorf("compliance gap %d, want the locked row", n)
	}
	// Once the lock is released, the next run deletes it.
	release()
	if again, _ := sweepAll(t, s, rule, ""); again != 1 {
		t.Errorf("next run deleted %d rows, want 1", again)
	}
	if n := count(t, s, rule); n != 0 {
		t.Errorf("compliance gap %d after the next run, want 0", n)
	}
}
