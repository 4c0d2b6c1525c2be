package postgres

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// A request that knows the subject only by email, with a hold on invoices:
// the first pass must leave the account findable by its email, so the pass
// after the hold finds and erases the held invoices (and only then masks the
// email).
func TestHeldRowsFoundOnlyThroughAMaskedIdentity(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
	ctx := context.Background()
	byEmail := map[string]string{"email": "a_b@x.io"}
	held := erasureRequest(byEmail)
	held.Holds = []stores.Hold{{Collection: "invoices", Name: "case-42", Reason: "court order 2024/17"}}

	res, err := f.store.Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Held {
		t.Fatal("Held = false")
	}
	assertOutcome(t, res,
		"newsletter delete 1",
		"login_events retain 0",
		"invoice_lines delete 0",
		"invoice_lines retain 3",
		"invoices delete 0",
		"invoices retain 2",
		"accounts anonymize 1",
	)
	if got := res.Collections[6].Reason; !strings.Contains(got, "email left unmasked in 1 row until the hold ends: legal hold case-42") {
		t.Errorf("accounts reason = %q", got)
	}
	if got := f.queryString(t, "SELECT concat_ws('|', email, name) FROM accounts WHERE id = 1"); got != "a_b@x.io|[redacted]" {
		t.Fatalf("account 1 during the hold = %q, want its email kept and its name masked", got)
	}

	// Again during the hold: nothing more to do.
	before := f.snapshot(t)
	if _, err := f.store.Apply(ctx, held); err != nil {
		t.Fatal(err)
	}
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("a second pass during the hold changed %v", got)
	}

	// The hold ends: the held rows are found again, erased, and the email masked.
	released := erasureRequest(byEmail)
	plan, err := f.store.Plan(ctx, released)
	if err != nil {
		t.Fatal(err)
	}
	res, err = f.store.Apply(ctx, released)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plan, res) {
		t.Fatalf("Plan reported\n  %v\nApply reported\n  %v", outcome(plan), outcome(res))
	}
	assertOutcome(t, res,
		"newsletter delete 0",
		"login_events retain 0",
		"invoice_lines delete 3",
		"invoices delete 2",
		"accounts anonymize 1",
	)
	if res.Held || res.Collections[4].Reason != "" {
		t.Errorf("after the hold: Held = %v, accounts reason %q", res.Held, res.Collections[4].Reason)
	}
	if n := f.queryString(t, "SELECT count(*) FROM billing.invoices WHERE account_id = 1"); n != "0" {
		t.Errorf("%s held invoices were never erased after the hold ended", n)
	}
	email, err := masking.MaskString(&privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}, testKey, "1", "a_b@x.io")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.queryString(t, "SELECT email FROM accounts WHERE id = 1"); got != email {
		t.Errorf("account 1's email after the hold = %q, want %q", got, email)
	}
}

// A collection that deletes keeps whole the rows held rows are found through,
// reported as held, and deletes them once the hold ends.
func TestHeldRowsKeepTheirDeletedParents(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	ctx := context.Background()
	byEmail := map[string]string{"email": "a_b@x.io"}
	held := erasureRequest(byEmail)
	held.Holds = []stores.Hold{{Collection: "invoice_lines", Name: "case-42", Reason: "court order 2024/17"}}
	before := f.snapshot(t)

	res, err := f.store.Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res,
		"newsletter delete 1",
		"login_events retain 0",
		"invoice_lines delete 0",
		"invoice_lines retain 3",
		"invoices delete 0",
		"invoices retain 2",
		"accounts delete 0",
		"accounts retain 1",
	)
	for _, i := range []int{5, 7} {
		if r := res.Collections[i]; !strings.Contains(r.Reason, "legal hold case-42") || !strings.Contains(r.Reason, "are found through them") {
			t.Errorf("%s reason = %q", r.Collection, r.Reason)
		}
	}
	want := map[string][]string{"public.newsletter": {"00000000-0000-4000-8000-000000000001"}}
	if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("changed rows during the hold = %v, want %v", got, want)
	}

	res, err = f.store.Apply(ctx, erasureRequest(byEmail))
	if err != nil {
		t.Fatal(err)
	}
	assertOutcome(t, res,
		"newsletter delete 0",
		"login_events retain 0",
		"invoice_lines delete 3",
		"invoices delete 2",
		"accounts setNull 2",
		"accounts delete 1",
	)
}

// Keys come in key order, not in the order of their text: 99 before 100.
func TestSubjectKeysInKeyOrder(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete),
		`INSERT INTO billing.invoice_lines VALUES (99, 10, 'setup'), (1000, 11, 'support')`)
	keys, err := f.store.SubjectKeys(context.Background(), subject, "invoice_lines")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"99", "100", "101", "102", "1000"}; !slices.Equal(keys, want) {
		t.Fatalf("SubjectKeys = %v, want %v", keys, want)
	}
}
