package mysql

import (
	"context"
	"reflect"
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
func TestMySQLHeldRowsFoundOnlyThroughAMaskedIdentity(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
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
		"tickets delete 1",
		"device_tokens delete 0",
		"devices delete 0",
		"leads delete 1",
		"newsletter delete 1",
		"login_events retain 0",
		"invoice_lines delete 0",
		"invoice_lines retain 3",
		"invoices delete 0",
		"invoices retain 2",
		"accounts anonymize 1",
	)
	if got := res.Collections[10].Reason; !strings.Contains(got, "email left unmasked in 1 row until the hold ends: legal hold case-42") {
		t.Errorf("accounts reason = %q", got)
	}
	if got := f.queryString(t, "SELECT CONCAT_WS('|', email, name) FROM accounts WHERE id = 1"); got != "a_b@x.io|[redacted]" {
		t.Fatalf("account 1 during the hold = %q, want its email kept and its name masked", got)
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
	if res.Held {
		t.Error("Held after the hold ended")
	}
	if n := f.queryString(t, "SELECT count(*) FROM invoices WHERE account_id = 1"); n != "0" {
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

// Tickets refer to accounts by email: held tickets of a subject known by id
// keep the account's email, the column they are found through, until the
// hold ends.
func TestMySQLHeldRowsFoundThroughAMaskedReference(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
	ctx := context.Background()
	byID := map[string]string{"userId": "1"}
	held := erasureRequest(byID)
	held.Holds = []stores.Hold{{Collection: "tickets", Name: "case-7", Reason: "litigation"}}

	res, err := f.store.Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcome(res); !strings.Contains(strings.Join(got, ","), "tickets retain 1") || !res.Held {
		t.Fatalf("outcome %v, Held %v: want the ticket held", got, res.Held)
	}
	if got := f.queryString(t, "SELECT CONCAT_WS('|', email, name) FROM accounts WHERE id = 1"); got != "a_b@x.io|[redacted]" {
		t.Fatalf("account 1 during the hold = %q, want its email kept and its name masked", got)
	}

	if _, err := f.store.Apply(ctx, erasureRequest(byID)); err != nil {
		t.Fatal(err)
	}
	if n := f.queryString(t, "SELECT count(*) FROM tickets WHERE id = 1"); n != "0" {
		t.Errorf("the held ticket was never erased after the hold ended")
	}
	if got := f.queryString(t, "SELECT email LIKE 'erased-%' FROM accounts WHERE id = 1"); got != "1" {
		t.Errorf("account 1's email is not masked after the hold")
	}
}
