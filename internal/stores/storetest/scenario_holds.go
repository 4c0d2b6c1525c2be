package storetest

import (
	"reflect"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// A legal hold on a collection keeps the subject's rows there (and the rows
// kept with them, children of held invoices) and sets Held; the receipt
// names the hold; the rest of the subject is erased.
func holdOnACollectionKeepsItsRows(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	before := x.Snapshot(t)
	req := erasure(x.subject())
	for _, c := range []string{"invoices", "orders"} {
		if x.holds(c) {
			req.Holds = append(req.Holds, stores.Hold{Collection: c, Name: "case-42", Reason: "court order 2024/17"})
		}
	}
	res, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := anonymizeReceipt()
	want["orders"] = []string{"?delete 0", "retain 3"}
	want["invoice_lines"] = []string{"delete 0", "retain 3"}
	want["invoices"] = []string{"?delete 0", "retain 2"}
	x.wantReceipt(t, stores.KindErasure, res, want)
	if !res.Held {
		t.Error("Held = false")
	}
	for _, c := range []string{"invoices", "orders"} {
		if x.holds(c) {
			if got := resultOf(t, res, c, stores.ActionRetain).Reason; got != "legal hold case-42: court order 2024/17" {
				t.Errorf("%s reason = %q", c, got)
			}
		}
	}
	changed := Changed(before, x.Snapshot(t))
	for _, c := range []string{"invoices", "invoice_lines", "orders"} {
		if keys, ok := changed[c]; ok {
			t.Errorf("held rows of %s changed: %v", c, keys)
		}
	}
	if _, ok := changed["contacts"]; !ok {
		t.Error("the subject's contacts, not held, were not erased")
	}
}

// A hold on the whole store keeps everything and says so in every collection.
func holdOnTheStoreKeepsEverything(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	before := x.Snapshot(t)
	req := erasure(x.subject())
	req.Holds = []stores.Hold{{Name: "audit", Reason: "tax audit"}}
	res, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Held {
		t.Error("Held = false")
	}
	unchanged(t, "a store-wide hold", before, x.Snapshot(t))
	x.wantReceipt(t, stores.KindErasure, res, receipt{
		"orders": {"?delete 0", "retain 3"}, "profiles": {"?anonymize 0", "retain 1"}, "contacts": {"?delete 0", "retain 2"},
		"tickets": {"?delete 0", "retain 1"}, "device_tokens": {"?delete 0", "retain 2"}, "devices": {"?delete 0", "retain 1"},
		"newsletter": {"?delete 0", "retain 2"}, "login_events": {"retain 2"},
		"invoice_lines": {"?delete 0", "retain 3"}, "invoices": {"?delete 0", "retain 2"}, "accounts": {"?delete 0", "retain 1"},
	})
	for _, r := range res.Collections {
		if r.Action == stores.ActionRetain && r.Collection != "login_events" && !strings.Contains(r.Reason, "legal hold audit: tax audit") {
			t.Errorf("%s reason %q does not name the hold", r.Collection, r.Reason)
		}
	}
}

// A request that knows the subject only by e-mail, with a hold on invoices:
// the first pass must leave the account findable by its e-mail (and say so),
// so the pass after the hold finds and erases the held invoices, and only
// then masks the e-mail.
func heldRowsFoundOnlyThroughAMaskedIdentity(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	byEmail := map[string]string{"email": "a_b@x.io"}
	held := erasure(byEmail)
	held.Holds = []stores.Hold{{Collection: "invoices", Name: "case-42", Reason: "court order 2024/17"}}
	res, err := x.Store().Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Held {
		t.Fatal("Held = false")
	}
	x.wantReceipt(t, stores.KindErasure, res, receipt{
		"orders": {"delete 0"}, "profiles": {"anonymize 0"}, "contacts": {"delete 2"}, "tickets": {"delete 1"},
		"device_tokens": {"delete 0"}, "devices": {"delete 0"}, "newsletter": {"delete 1"}, "login_events": {"retain 0"},
		"invoice_lines": {"delete 0", "retain 3"}, "invoices": {"delete 0", "retain 2"}, "accounts": {"setNull 2", "anonymize 1"},
	})
	if got := resultOf(t, res, "accounts", stores.ActionAnonymize).Reason; !strings.Contains(got, "email left unmasked in 1 row until the hold ends: legal hold case-42") {
		t.Errorf("accounts reason = %q", got)
	}
	snap := x.Snapshot(t)
	if a := x.row(t, snap, "accounts", ID(1)); a["email"] != "a_b@x.io" || a["name"] != "[redacted]" {
		t.Fatalf("account 1 during the hold = %v, want its e-mail kept and its name masked", a)
	}

	// Again during the hold: nothing more to do.
	if _, err := x.Store().Apply(ctx, held); err != nil {
		t.Fatal(err)
	}
	unchanged(t, "a second pass during the hold", snap, x.Snapshot(t))

	// The hold ends: the held rows are found again, erased, and the e-mail masked.
	released := erasure(byEmail)
	plan, err := x.Store().Plan(ctx, released)
	if err != nil {
		t.Fatal(err)
	}
	res, err = x.Store().Apply(ctx, released)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plan, pass(res)) {
		t.Fatalf("Plan reported\n  %v\nApply reported\n  %v", Outcome(plan), Outcome(res))
	}
	x.wantReceipt(t, stores.KindErasure, res, receipt{
		"orders": {"delete 0"}, "profiles": {"anonymize 0"}, "contacts": {"delete 0"}, "tickets": {"delete 0"},
		"device_tokens": {"delete 0"}, "devices": {"delete 0"}, "newsletter": {"delete 0"}, "login_events": {"retain 0"},
		"invoice_lines": {"delete 3"}, "invoices": {"delete 2"}, "accounts": {"setNull 0", "anonymize 1"},
	})
	if r := resultOf(t, res, "accounts", stores.ActionAnonymize); res.Held || r.Reason != "" {
		t.Errorf("after the hold: Held = %v, accounts reason %q", res.Held, r.Reason)
	}
	after := x.Snapshot(t)
	for _, k := range []int{10, 11} {
		if _, ok := after["invoices"][x.Key("invoices", k)]; ok {
			t.Errorf("held invoice %d was never erased after the hold ended", k)
		}
	}
	email, err := masking.MaskString(&privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}, MaskingKey, x.MaskingRowKey("accounts", x.Key("accounts", ID(1))), "a_b@x.io")
	if err != nil {
		t.Fatal(err)
	}
	if got := x.row(t, after, "accounts", ID(1))["email"]; got != email {
		t.Errorf("account 1's e-mail after the hold = %q, want %q", got, email)
	}
}

// A collection that deletes keeps whole the rows held rows are found
// through, reported as held, and deletes them once the hold ends.
func heldRowsKeepTheirDeletedParents(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	byEmail := map[string]string{"email": "a_b@x.io"}
	held := erasure(byEmail)
	held.Holds = []stores.Hold{{Collection: "invoice_lines", Name: "case-42", Reason: "court order 2024/17"}}
	before := x.Snapshot(t)
	res, err := x.Store().Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	x.wantReceipt(t, stores.KindErasure, res, receipt{
		"orders": {"delete 0"}, "profiles": {"anonymize 0"}, "contacts": {"delete 2"}, "tickets": {"delete 1"},
		"device_tokens": {"delete 0"}, "devices": {"delete 0"}, "newsletter": {"delete 1"}, "login_events": {"retain 0"},
		"invoice_lines": {"delete 0", "retain 3"}, "invoices": {"delete 0", "retain 2"}, "accounts": {"delete 0", "retain 1"},
	})
	for _, c := range []string{"invoices", "accounts"} {
		containsAll(t, c+" reason", resultOf(t, res, c, stores.ActionRetain).Reason, "legal hold case-42", "are found through them")
	}
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{"newsletter": {nl(1)}, "contacts": {1, 8}, "tickets": {1}})

	res, err = x.Store().Apply(ctx, erasure(byEmail))
	if err != nil {
		t.Fatal(err)
	}
	x.wantReceipt(t, stores.KindErasure, res, receipt{
		"orders": {"delete 0"}, "profiles": {"anonymize 0"}, "contacts": {"delete 0"}, "tickets": {"delete 0"},
		"device_tokens": {"delete 0"}, "devices": {"delete 0"}, "newsletter": {"delete 0"}, "login_events": {"retain 0"},
		"invoice_lines": {"delete 3"}, "invoices": {"delete 2"}, "accounts": {"setNull 2", "delete 1"},
	})
}

// Tickets refer to accounts by e-mail: held tickets of a subject known by id
// keep the account's e-mail, the column they are found through, until the
// hold ends.
func heldRowsFoundThroughAMaskedReference(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	byID := map[string]string{"userId": x.id(1)}
	held := erasure(byID)
	held.Holds = []stores.Hold{{Collection: "tickets", Name: "case-7", Reason: "litigation"}}
	res, err := x.Store().Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	if r := resultOf(t, res, "tickets", stores.ActionRetain); r.Rows != 1 || !res.Held {
		t.Fatalf("outcome %v, Held %v: want the ticket held", Outcome(res), res.Held)
	}
	snap := x.Snapshot(t)
	if a := x.row(t, snap, "accounts", ID(1)); a["email"] != "a_b@x.io" || a["name"] != "[redacted]" {
		t.Fatalf("account 1 during the hold = %v, want its e-mail kept and its name masked", a)
	}
	if _, err := x.Store().Apply(ctx, erasure(byID)); err != nil {
		t.Fatal(err)
	}
	after := x.Snapshot(t)
	if _, ok := after["tickets"][x.Key("tickets", 1)]; ok {
		t.Error("the held ticket was never erased after the hold ended")
	}
	if a := x.row(t, after, "accounts", ID(1)); !strings.HasPrefix(a["email"], "erased-") {
		t.Errorf("account 1's e-mail is not masked after the hold: %v", a)
	}
}
