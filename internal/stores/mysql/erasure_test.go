package mysql

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// The erasure of the subject with accounts deleted, children first.
var deleteOutcome = []string{
	"tickets delete 1",
	"device_tokens delete 2",
	"devices delete 1",
	"leads delete 1",
	"newsletter delete 2",
	"login_events retain 2",
	"invoice_lines delete 3",
	"invoices delete 2",
	"accounts setNull 2",
	"accounts delete 1",
}

// Erasure deletes the subject's rows down the three-level chain and the
// binary and text references, retains the retained collection, clears the
// self-references of other accounts, and changes no other row: not the
// look-alikes equal under the collations, not user 11.
func TestMySQLErasureDeletesExactlyTheSubjectsRows(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	before := f.snapshot(t)

	res, err := f.store.Apply(context.Background(), erasureRequest(subject))
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res, deleteOutcome...)
	if got := res.Collections[5].Reason; got != "security logs are kept for a year (legitimate interest)" {
		t.Errorf("login_events reason = %q", got)
	}

	after := f.snapshot(t)
	want := withoutTable(subjectRowIDs, "login_events")
	want["accounts"] = []string{"1", "2", "3"} // 2 and 3 were referred by 1
	if got := changedRows(before, after); !reflect.DeepEqual(got, want) {
		t.Fatalf("changed rows = %v, want %v", got, want)
	}
	if _, ok := after["accounts"]["1"]; ok {
		t.Error("account 1 still exists")
	}
	if got := f.queryString(t, "SELECT GROUP_CONCAT(CONCAT(id, ':', COALESCE(referred_by, 'NULL'), ':', name) ORDER BY id) FROM accounts WHERE id IN (2, 3)"); got != "2:NULL:Look Alike,3:NULL:Percent" {
		t.Errorf("accounts 2 and 3 = %q, want referred_by NULL and nothing else changed", got)
	}
}

// Anonymization masks each field with its strategy, in SQL, with the same
// digests as the Go implementation, and leaves the other accounts alone.
func TestMySQLErasureAnonymizesAsMapped(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
	before := f.snapshot(t)

	res, err := f.store.Apply(context.Background(), erasureRequest(subject))
	if err != nil {
		t.Fatal(err)
	}
	want := append(deleteOutcome[:len(deleteOutcome)-2:len(deleteOutcome)-2], "accounts anonymize 1")
	assertOutcome(t, res, want...)
	if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, withoutTable(subjectRowIDs, "login_events")) {
		t.Fatalf("changed rows = %v, want %v", got, withoutTable(subjectRowIDs, "login_events"))
	}
	email, err := masking.MaskString(&privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}, testKey, "1", "a_b@x.io")
	if err != nil {
		t.Fatal(err)
	}
	got := f.queryString(t, `SELECT CONCAT_WS('|', email, name, phone, birth_date, COALESCE(HEX(avatar), 'NULL'), created_at, COALESCE(referred_by, 'NULL')) FROM accounts WHERE id = 1`)
	if want := email + "|[redacted]|***************78|1990-01-01|NULL|2020-01-01 00:00:00|NULL"; got != want {
		t.Fatalf("anonymized account = %q, want %q", got, want)
	}
}

// Running the same erasure again finds the anonymized account by its id, but
// changes and counts nothing.
func TestMySQLErasureTwiceIsHarmless(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
	ctx := context.Background()
	if _, err := f.store.Apply(ctx, erasureRequest(subject)); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	res, err := f.store.Apply(ctx, erasureRequest(subject))
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res,
		"tickets delete 0",
		"device_tokens delete 0",
		"devices delete 0",
		"leads delete 0",
		"newsletter delete 0",
		"login_events retain 2",
		"invoice_lines delete 0",
		"invoices delete 0",
		"accounts anonymize 0",
	)
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("second erasure changed %v", got)
	}
}

// Plan changes nothing, even the rows Apply then changes, and reports the
// counts Apply then reports, retained rows and their dates included.
func TestMySQLPlanChangesNothingAndMatchesApply(t *testing.T) {
	for _, accounts := range []privacyv1.ErasureAction{privacyv1.ErasureDelete, privacyv1.ErasureAnonymize} {
		t.Run(string(accounts), func(t *testing.T) {
			f := newFixture(t, accounts)
			ctx := context.Background()
			req := erasureRequest(subject)
			if accounts == privacyv1.ErasureAnonymize {
				req.Exemptions = []stores.Exemption{invoiceExemption()} // a retained invoice would block deleting its account
			}
			before := f.snapshot(t)
			plan, err := f.store.Plan(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
				t.Fatalf("Plan changed %v", got)
			}
			applied, err := f.store.Apply(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(plan, applied) {
				t.Fatalf("Plan reported\n  %v\nApply reported\n  %v", outcome(plan), outcome(applied))
			}
			if len(changedRows(before, f.snapshot(t))) == 0 {
				t.Fatal("Apply changed nothing")
			}
		})
	}
}

// Identity values match exactly whatever the collation: case, accents,
// trailing spaces, LIKE wildcards, globs, quotes or unicode never widen the
// match, in utf8mb4 and latin1 columns alike, and integers match canonical
// integers only. Each subject is erased in turn from the same database.
func TestMySQLLookAlikeSubjectsMatchExactly(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	nl := func(n string) string { return "00000000-0000-4000-8000-00000000000" + n }
	for _, tt := range []struct {
		name    string
		subject map[string]string
		want    map[string][]string
	}{
		{"upper case", map[string]string{"email": "A_B@x.io"}, map[string][]string{"newsletter": {nl("4")}, "leads": {"2"}, "tickets": nil}},
		{"trailing space", map[string]string{"email": "a_b@x.io "}, map[string][]string{"newsletter": {nl("5"), nl("7")}, "leads": {"3"}}},
		{"accent", map[string]string{"email": "á_b@x.io"}, map[string][]string{"newsletter": {nl("6")}, "leads": {"4"}}},
		{"LIKE wildcard", map[string]string{"email": "a%b@x.io"}, map[string][]string{"accounts": {"3"}, "invoices": {"13"}, "invoice_lines": {"104"}}},
		{"quote", map[string]string{"email": "o'brien@x.io"}, map[string][]string{"accounts": {"4"}, "leads": {"5"}}},
		{"unicode", map[string]string{"email": "ünïcödé@x.io"}, map[string][]string{"accounts": {"5"}}},
		{"glob", map[string]string{"email": "*?[a-z]@x.io"}, map[string][]string{"accounts": {"6"}}},
		{"not in latin1", map[string]string{"email": "a_b@x.io✓"}, map[string][]string{}},
		{"not UTF-8", map[string]string{"email": "a_b@x.io\xff"}, map[string][]string{}},
		{"integer look-alikes", map[string]string{"userId": "011"}, map[string][]string{}},
		{"integer with space", map[string]string{"userId": "11 "}, map[string][]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := f.snapshot(t)
			if _, err := f.store.Apply(context.Background(), erasureRequest(tt.subject)); err != nil {
				t.Fatal(err)
			}
			for table, ids := range tt.want {
				if ids == nil {
					delete(tt.want, table)
				}
			}
			if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("changed rows = %v, want %v", got, tt.want)
			}
		})
	}
	if got := f.strings(t, "SELECT CAST(id AS CHAR) FROM accounts"); !reflect.DeepEqual(got, []string{"1", "11", "2"}) {
		t.Fatalf("accounts left: %v, want 1, 2, 11", got)
	}
	if got := f.strings(t, "SELECT CAST(id AS CHAR) FROM tickets"); !reflect.DeepEqual(got, []string{"1", "2", "3", "4", "5"}) {
		t.Fatalf("tickets left: %v, want all (none refers to an erased account exactly)", got)
	}
}

// A failure inside the transaction (here a foreign key from a table the map
// does not know) rolls back every collection, and the error names the
// collection and constraint but no data.
func TestMySQLFailureLeavesTheStoreUnchanged(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete,
		`CREATE TABLE payments (id BIGINT PRIMARY KEY, invoice_id BIGINT NOT NULL, CONSTRAINT payments_invoice_fk FOREIGN KEY (invoice_id) REFERENCES invoices (id))`,
		`INSERT INTO payments VALUES (5000, 10)`)
	before := f.snapshot(t)

	_, err := f.store.Apply(context.Background(), erasureRequest(subject))
	if err == nil {
		t.Fatal("Apply succeeded despite the foreign key from payments")
	}
	if !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	for _, want := range []string{`collection "invoices"`, "foreign key violation", "MySQL error 1451", `constraint "payments_invoice_fk"`, `table "payments"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	for _, leak := range []string{"a_b@x.io", "Subject", "(10)", "5000"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q leaks %q", err, leak)
		}
	}
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("the failed erasure changed %v", got)
	}
}

// Another transaction holding the subject's row makes Apply give up after
// the store's lock wait timeout, unavailable (retry later), having changed nothing.
func TestMySQLLockedRowsTimeOutAndChangeNothing(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	m, err := datamap.Build(fixtureSpec(f.name, privacyv1.ErasureDelete))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), f.dsn, m, testKey, testdb.Loopback, WithTimeouts(time.Second, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := f.snapshot(t)
	tx, err := f.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec("SELECT id FROM invoices WHERE id = 11 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err = s.Apply(context.Background(), erasureRequest(subject))
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "lock wait timeout") {
		t.Fatalf("Apply() error = %v, want ErrUnavailable (lock wait timeout)", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Apply waited %s for the lock, want about 1s", elapsed)
	}
	_ = tx.Rollback()
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("the timed-out erasure changed %v", got)
	}
}

func invoiceExemption() stores.Exemption {
	return stores.Exemption{
		Collection: "invoices", Field: "issued_at", Cutoff: time.Date(2016, 6, 1, 0, 0, 0, 0, time.UTC),
		Period: "10y", LegalBasis: "French Commercial Code L123-22", Rule: "invoices-10y",
	}
}

// Rows inside a legal minimum period stay, with their children, and the
// receipt says why and until when; older rows are erased.
func TestMySQLExemptionKeepsRowsAndTheirChildren(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
	before := f.snapshot(t)
	req := erasureRequest(subject)
	req.Exemptions = []stores.Exemption{invoiceExemption()}

	res, err := f.store.Apply(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res,
		"tickets delete 1",
		"device_tokens delete 2",
		"devices delete 1",
		"leads delete 1",
		"newsletter delete 2",
		"login_events retain 2",
		"invoice_lines delete 2",
		"invoice_lines retain 1",
		"invoices delete 1",
		"invoices retain 1",
		"accounts anonymize 1",
	)
	until := time.Date(2034, 6, 15, 0, 0, 0, 0, time.UTC)
	for _, i := range []int{7, 9} {
		r := res.Collections[i]
		if r.RetainedUntil == nil || !r.RetainedUntil.Equal(until) {
			t.Errorf("%s retained until %v, want %v", r.Collection, r.RetainedUntil, until)
		}
		for _, want := range []string{"invoices-10y", "French Commercial Code L123-22", "10y"} {
			if !strings.Contains(r.Reason, want) {
				t.Errorf("%s reason %q does not mention %q", r.Collection, r.Reason, want)
			}
		}
	}
	if !strings.Contains(res.Collections[7].Reason, "kept with the rows of invoices") {
		t.Errorf("invoice_lines reason %q does not say it is kept with invoices", res.Collections[7].Reason)
	}
	if res.Held {
		t.Error("Held is true without a hold")
	}
	changed := changedRows(before, f.snapshot(t))
	if got := changed["invoices"]; !reflect.DeepEqual(got, []string{"10"}) {
		t.Errorf("changed invoices %v, want only 10", got)
	}
	if got := changed["invoice_lines"]; !reflect.DeepEqual(got, []string{"100", "101"}) {
		t.Errorf("changed invoice lines %v, want 100 and 101", got)
	}
}

// A legal hold on a collection keeps the subject's rows there (and their
// children) and sets Held; a hold on the whole store keeps everything.
func TestMySQLHoldsKeepRows(t *testing.T) {
	t.Run("collection", func(t *testing.T) {
		f := newFixture(t, privacyv1.ErasureAnonymize)
		before := f.snapshot(t)
		req := erasureRequest(subject)
		req.Holds = []stores.Hold{{Collection: "invoices", Name: "case-42", Reason: "court order 2024/17"}}
		res, err := f.store.Apply(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		assertOutcome(t, res,
			"tickets delete 1",
			"device_tokens delete 2",
			"devices delete 1",
			"leads delete 1",
			"newsletter delete 2",
			"login_events retain 2",
			"invoice_lines delete 0",
			"invoice_lines retain 3",
			"invoices delete 0",
			"invoices retain 2",
			"accounts anonymize 1",
		)
		if !res.Held {
			t.Error("Held = false")
		}
		if got := res.Collections[9].Reason; got != "legal hold case-42: court order 2024/17" {
			t.Errorf("invoices reason = %q", got)
		}
		changed := changedRows(before, f.snapshot(t))
		if c, ok := changed["invoices"]; ok {
			t.Errorf("held invoices changed: %v", c)
		}
		if c, ok := changed["invoice_lines"]; ok {
			t.Errorf("lines of held invoices changed: %v", c)
		}
	})
	t.Run("store", func(t *testing.T) {
		f := newFixture(t, privacyv1.ErasureDelete)
		before := f.snapshot(t)
		req := erasureRequest(subject)
		req.Holds = []stores.Hold{{Name: "audit", Reason: "tax audit"}}
		res, err := f.store.Apply(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Held {
			t.Error("Held = false")
		}
		if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
			t.Fatalf("a store-wide hold let the erasure change %v", got)
		}
		assertOutcome(t, res,
			"tickets delete 0", "tickets retain 1",
			"device_tokens delete 0", "device_tokens retain 2",
			"devices delete 0", "devices retain 1",
			"leads delete 0", "leads retain 1",
			"newsletter delete 0", "newsletter retain 2",
			"login_events retain 2",
			"invoice_lines delete 0", "invoice_lines retain 3",
			"invoices delete 0", "invoices retain 2",
			"accounts delete 0", "accounts retain 1",
		)
	})
}

// A scope covering some fields of a collection mapped delete anonymizes only
// those fields (the others are outside the request); collections outside the
// scope are untouched.
func TestMySQLPartialScopeAnonymizesOnlyFieldsInScope(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	before := f.snapshot(t)
	req := erasureRequest(subject)
	req.Scope = datamap.Scope{Categories: []string{"user.contact"}}
	res, err := f.store.Apply(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res, "tickets anonymize 1", "leads delete 1", "newsletter delete 2", "accounts anonymize 1")
	want := map[string][]string{"accounts": {"1"}, "newsletter": subjectRowIDs["newsletter"], "leads": {"1"}, "tickets": {"1"}}
	if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("changed rows = %v, want %v", got, want)
	}
	got := f.queryString(t, "SELECT CONCAT_WS('|', email LIKE 'erased-%@erased.invalid', name, phone) FROM accounts WHERE id = 1")
	if want := "1|Ada Subject|***************78"; got != want {
		t.Fatalf("account 1 = %q, want %q", got, want)
	}
	if got := f.queryString(t, "SELECT CONCAT_WS('|', requester_email, body) FROM tickets WHERE id = 1"); got != "[redacted]|my invoice" {
		t.Fatalf("ticket 1 = %q, want the e-mail redacted and the message kept", got)
	}
}

// A scope covering only fields without masking cannot be erased without
// erasing more than the scope: an error, never a silent skip.
func TestMySQLScopeWithoutMaskingIsRefused(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	req := erasureRequest(subject)
	req.Scope = datamap.Scope{Categories: []string{"user.billing.amount"}}
	_, err := f.store.Plan(context.Background(), req)
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `collection "invoices"`) || !strings.Contains(err.Error(), "(amount)") {
		t.Fatalf("Plan() error = %v, want ErrInvalid naming invoices and amount", err)
	}
}
