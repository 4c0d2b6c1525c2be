package postgres

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Erasure deletes the subject's rows down the three-level chain, retains the
// retained collection, clears the self-references of other accounts, and
// changes no other row: not the look-alikes, not user 11.
func TestErasureDeletesExactlyTheSubjectsRows(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	before := f.snapshot(t)

	res, err := f.store.Apply(context.Background(), erasureRequest(subject))
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res,
		"newsletter delete 2",
		"login_events retain 2",
		"invoice_lines delete 3",
		"invoices delete 2",
		"accounts setNull 2",
		"accounts delete 1",
	)
	if got := res.Collections[1].Reason; got != "security logs are kept for a year (legitimate interest)" {
		t.Errorf("login_events reason = %q", got)
	}

	after := f.snapshot(t)
	want := maps.Clone(subjectRowIDs)
	delete(want, "public.login_events")               // retained
	want["public.accounts"] = []string{"1", "2", "3"} // 2 and 3 were referred by 1
	if got := changedRows(before, after); !reflect.DeepEqual(got, want) {
		t.Fatalf("changed rows = %v, want %v", got, want)
	}
	for _, id := range subjectRowIDs["public.accounts"] {
		if _, ok := after["public.accounts"][id]; ok {
			t.Errorf("account %s still exists", id)
		}
	}
	for _, id := range []string{"2", "3"} {
		if got := f.queryString(t, "SELECT coalesce(referred_by::text, 'NULL') || ' ' || name FROM accounts WHERE id = $1", id); !strings.HasPrefix(got, "NULL ") {
			t.Errorf("account %s: referred_by and name = %q, want referred_by NULL", id, got)
		}
	}
}

// Anonymization masks each field with its strategy, in SQL, with the same
// digests as the Go implementation, and leaves the other accounts alone.
func TestErasureAnonymizesAsMapped(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
	before := f.snapshot(t)

	res, err := f.store.Apply(context.Background(), erasureRequest(subject))
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res,
		"newsletter delete 2",
		"login_events retain 2",
		"invoice_lines delete 3",
		"invoices delete 2",
		"accounts anonymize 1",
	)
	want := maps.Clone(subjectRowIDs)
	delete(want, "public.login_events")
	if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("changed rows = %v, want %v", got, want)
	}
	email, err := masking.MaskString(&privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}, testKey, "1", "a_b@x.io")
	if err != nil {
		t.Fatal(err)
	}
	got := f.queryString(t, `SELECT concat_ws('|', email, name, phone, birth_date, coalesce(avatar::text, 'NULL'), created_at) FROM accounts WHERE id = 1`)
	if want := email + "|[redacted]|***************78|1990-01-01|NULL|2020-01-01 00:00:00+00"; got != want {
		t.Fatalf("anonymized account = %q, want %q", got, want)
	}
}

// Running the same erasure again finds the anonymized account by its id, but
// changes and counts nothing.
func TestErasureTwiceIsHarmless(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
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
func TestPlanChangesNothingAndMatchesApply(t *testing.T) {
	for _, accounts := range []privacyv1.ErasureAction{privacyv1.ErasureDelete, privacyv1.ErasureAnonymize} {
		t.Run(string(accounts), func(t *testing.T) {
			f := newFixture(t, fixtureSpec(accounts))
			ctx := context.Background()
			req := erasureRequest(subject)
			req.Exemptions = []stores.Exemption{invoiceExemption()}
			if accounts == privacyv1.ErasureDelete {
				req.Exemptions = nil // a retained invoice would block deleting its account
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

// Identity values match exactly: a LIKE wildcard, a quote, unicode or case
// never widen the match.
func TestLookAlikeSubjectsMatchExactly(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	for _, tt := range []struct {
		email string
		want  map[string][]string
	}{
		{"a%b@x.io", map[string][]string{"public.accounts": {"3"}, "billing.invoices": {"13"}, "billing.invoice_lines": {"104"}}},
		{"o'brien@x.io", map[string][]string{"public.accounts": {"4"}}},
		{"ünïcödé@x.io", map[string][]string{"public.accounts": {"5"}}},
		{"A_B@x.io", map[string][]string{"public.accounts": {"6"}, "public.newsletter": {"00000000-0000-4000-8000-000000000004"}}},
		{"a_b@x.io ", map[string][]string{"public.accounts": {"7"}}},
	} {
		t.Run(tt.email, func(t *testing.T) {
			before := f.snapshot(t)
			if _, err := f.store.Apply(context.Background(), erasureRequest(map[string]string{"email": tt.email})); err != nil {
				t.Fatal(err)
			}
			if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("changed rows = %v, want %v", got, tt.want)
			}
		})
	}
	if got := f.queryString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM accounts"); got != "1,2,11" {
		t.Fatalf("accounts left: %s, want 1,2,11", got)
	}
}

// A failure inside the transaction (here a foreign key from a table the map
// does not know) rolls back every collection, and the error names the
// collection and constraint but no data.
func TestFailureLeavesTheStoreUnchanged(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete), `
		CREATE TABLE payments (id bigint PRIMARY KEY, invoice_id bigint NOT NULL REFERENCES billing.invoices (id));
		INSERT INTO payments VALUES (5000, 10);`)
	before := f.snapshot(t)

	_, err := f.store.Apply(context.Background(), erasureRequest(subject))
	if err == nil {
		t.Fatal("Apply succeeded despite the foreign key from payments")
	}
	if !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	for _, want := range []string{`collection "invoices"`, "foreign key violation", "payments_invoice_id_fkey"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	for _, leak := range []string{"a_b@x.io", "Subject", "(10)"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q leaks %q", err, leak)
		}
	}
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("the failed erasure changed %v", got)
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
func TestExemptionKeepsRowsAndTheirChildren(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
	before := f.snapshot(t)
	req := erasureRequest(subject)
	req.Exemptions = []stores.Exemption{invoiceExemption()}

	res, err := f.store.Apply(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res,
		"newsletter delete 2",
		"login_events retain 2",
		"invoice_lines delete 2",
		"invoice_lines retain 1",
		"invoices delete 1",
		"invoices retain 1",
		"accounts anonymize 1",
	)
	until := time.Date(2034, 6, 15, 0, 0, 0, 0, time.UTC)
	for _, i := range []int{3, 5} {
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
	if !strings.Contains(res.Collections[3].Reason, "kept with the rows of invoices") {
		t.Errorf("invoice_lines reason %q does not say it is kept with invoices", res.Collections[3].Reason)
	}
	if res.Held {
		t.Error("Held is true without a hold")
	}
	changed := changedRows(before, f.snapshot(t))
	if got := changed["billing.invoices"]; !reflect.DeepEqual(got, []string{"10"}) {
		t.Errorf("changed invoices %v, want only 10", got)
	}
	if got := changed["billing.invoice_lines"]; !reflect.DeepEqual(got, []string{"100", "101"}) {
		t.Errorf("changed invoice lines %v, want 100 and 101", got)
	}
}

// A legal hold on a collection keeps the subject's rows there (and their
// children) and sets Held; a hold on the whole store keeps everything.
func TestHoldsKeepRows(t *testing.T) {
	t.Run("collection", func(t *testing.T) {
		f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
		before := f.snapshot(t)
		req := erasureRequest(subject)
		req.Holds = []stores.Hold{{Collection: "invoices", Name: "case-42", Reason: "court order 2024/17"}}
		res, err := f.store.Apply(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		assertOutcome(t, res,
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
		if got := res.Collections[5].Reason; got != "legal hold case-42: court order 2024/17" {
			t.Errorf("invoices reason = %q", got)
		}
		changed := changedRows(before, f.snapshot(t))
		if _, ok := changed["billing.invoices"]; ok {
			t.Errorf("held invoices changed: %v", changed["billing.invoices"])
		}
		if _, ok := changed["billing.invoice_lines"]; ok {
			t.Errorf("lines of held invoices changed: %v", changed["billing.invoice_lines"])
		}
	})
	t.Run("store", func(t *testing.T) {
		f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
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
func TestPartialScopeAnonymizesOnlyFieldsInScope(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	before := f.snapshot(t)
	req := erasureRequest(subject)
	req.Scope = datamap.Scope{Categories: []string{"user.contact"}}
	res, err := f.store.Apply(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res, "newsletter delete 2", "accounts anonymize 1")
	want := map[string][]string{"public.accounts": {"1"}, "public.newsletter": subjectRowIDs["public.newsletter"]}
	if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("changed rows = %v, want %v", got, want)
	}
	got := f.queryString(t, "SELECT concat_ws('|', email LIKE 'erased-%@erased.invalid', name, phone) FROM accounts WHERE id = 1")
	if want := "t|Ada Subject|***************78"; got != want {
		t.Fatalf("account 1 = %q, want %q", got, want)
	}
}

// A scope covering only fields without masking cannot be erased without
// erasing more than the scope: an error, never a silent skip.
func TestScopeWithoutMaskingIsRefused(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	req := erasureRequest(subject)
	req.Scope = datamap.Scope{Categories: []string{"user.billing.amount"}}
	_, err := f.store.Plan(context.Background(), req)
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `collection "invoices"`) || !strings.Contains(err.Error(), "(amount)") {
		t.Fatalf("Plan() error = %v, want ErrInvalid naming invoices and amount", err)
	}
}
