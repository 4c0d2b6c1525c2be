package storetest

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Scenarios of erasure the receipt can be trusted for: holds compared by
// person, not by identity value; totals read back from the store's journal;
// a check after the commit; honest retention dates.

// A hold on a person by one identity holds an erasure naming them by
// another: by e-mail holds an erasure by userId, and the reverse. Nothing of
// the subject changes, and the result names the hold.
func holdByAnotherIdentityHoldsThePerson(t T, e *env) {
	for _, c := range []struct{ hold, request string }{{"email", "userId"}, {"userId", "email"}} {
		x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
		subject := x.subject()
		before := x.Snapshot(t)
		req := erasure(map[string]string{c.request: subject[c.request]})
		req.Holds = []stores.Hold{{Name: "case-7", Reason: "litigation", Subject: map[string]string{c.hold: subject[c.hold]}}}
		res, err := x.Store().Apply(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Held || !slices.Equal(res.HeldBy, []string{"case-7"}) {
			t.Errorf("hold by %s, erasure by %s: Held = %v, HeldBy = %v; want held by case-7", c.hold, c.request, res.Held, res.HeldBy)
		}
		if changed := Changed(before, x.Snapshot(t)); len(changed) > 0 {
			t.Errorf("hold by %s, erasure by %s: the held person's rows changed: %v", c.hold, c.request, changed)
		}
	}
}

// A hold on someone else, sharing an identity type with the request but not
// its value, holds nothing: the erasure is the same as without it.
func holdOnSomeoneElseHoldsNothing(t T, e *env) {
	free := e.mustOpen(t, Fixture{})
	want, err := free.Store().Apply(ctx, erasure(free.subject()))
	if err != nil {
		t.Fatal(err)
	}
	x := e.mustOpen(t, Fixture{})
	req := erasure(x.subject())
	req.Holds = []stores.Hold{{Name: "case-11", Reason: "another case", Subject: map[string]string{"email": "eleven@x.io"}}}
	res, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Held || len(res.HeldBy) > 0 {
		t.Errorf("a hold on user 11 held the erasure of user 1: HeldBy = %v", res.HeldBy)
	}
	if got, want := Outcome(pass(res)), Outcome(pass(want)); !slices.Equal(got, want) {
		t.Errorf("with a hold on someone else the erasure reported\n  %s\nwithout it\n  %s", got, want)
	}
}

// Holds are compared by rows: a hold on someone else by an identity the
// request does not carry holds nothing, and a hold on the subject's invoices
// by e-mail keeps exactly the invoices (and their lines) of an erasure by
// userId, erasing the rest.
func holdByRowsComparesPeople(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	byUserID := erasure(map[string]string{"userId": x.subject()["userId"]})
	other := byUserID
	other.Holds = []stores.Hold{{Name: "case-11", Reason: "another case", Subject: map[string]string{"email": "eleven@x.io"}}}
	plan, err := x.Store().Plan(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Held {
		t.Errorf("a hold on user 11 by e-mail held an erasure of user 1 by userId: %v", Outcome(plan))
	}

	held := byUserID
	held.Holds = []stores.Hold{{Collection: "invoices", Name: "case-42", Reason: "court order 2024/17", Subject: map[string]string{"email": "a_b@x.io"}}}
	before := x.Snapshot(t)
	res, err := x.Store().Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.HeldBy, []string{"case-42"}) {
		t.Errorf("HeldBy = %v, want case-42", res.HeldBy)
	}
	if r := resultOf(t, res, "invoices", stores.ActionRetain); r.Rows != 2 || !strings.Contains(r.Reason, "legal hold case-42") {
		t.Errorf("invoices: %+v, want 2 retained by case-42", r)
	}
	changed := Changed(before, x.Snapshot(t))
	for _, c := range []string{"invoices", "invoice_lines"} {
		if keys, ok := changed[c]; ok {
			t.Errorf("held rows of %s changed: %v", c, keys)
		}
	}
	if _, ok := changed["newsletter"]; !ok {
		t.Error("the subject's newsletter rows, not held, were not erased")
	}
	// The next pass (the hold still in force) finds the held person again:
	// the first pass left the account the e-mail the hold finds it by.
	again, err := x.Store().Apply(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	if r := resultOf(t, again, "invoices", stores.ActionRetain); r.Rows != 2 || !slices.Equal(again.HeldBy, []string{"case-42"}) {
		t.Errorf("second pass during the hold: invoices %+v, HeldBy %v; want 2 still held by case-42", r, again.HeldBy)
	}
}

// JournalReader is a store whose journal the suite can read (Journal).
type JournalReader interface {
	// JournalRows lists a request's passes: "collection action rows, ...".
	JournalRows(ctx context.Context, requestID string) ([]string, error)
}

// Each pass of a request is written to the store's journal in its own
// transaction, and Apply returns the request's totals over every pass: a
// pass run again after its receipt was lost (a crash between COMMIT and the
// status write) reports the first pass's counts and writes nothing; the pass
// after the hold ends adds its rows to them.
func journalTotalsSurviveALostReceipt(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	req := erasure(x.subject())
	req.RequestID = "journal-" + RequestID
	req.Holds = []stores.Hold{{Collection: "invoices", Name: "case-42", Reason: "court order 2024/17", Subject: x.subject()}}
	first, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Totals == nil {
		t.Fatal("Apply returned no totals: the store keeps no journal")
	}
	if got, want := totalsOutcome(first), Outcome(pass(first)); !slices.Equal(got, want) {
		t.Errorf("first pass: totals\n  %s\nwant the pass itself\n  %s", got, want)
	}
	lost, err := x.Store().Apply(ctx, req) // the receipt of the first pass was lost
	if err != nil {
		t.Fatal(err)
	}
	if got, want := totalsOutcome(lost), totalsOutcome(first); !slices.Equal(got, want) {
		t.Errorf("pass run again: totals\n  %s\nwant the first pass's\n  %s", got, want)
	}
	if n := resultOf(t, lost, "contacts", stores.ActionDelete).Rows; n != 0 {
		t.Errorf("the pass run again deleted %d contacts, want 0", n)
	}

	req.Holds = nil // the hold ends
	last, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		collection string
		action     stores.Action
		rows       int64
	}{{"invoices", stores.ActionDelete, 2}, {"invoice_lines", stores.ActionDelete, 3}, {"contacts", stores.ActionDelete, 2},
		// The account was masked in both passes: the first kept its e-mail,
		// which the held invoices are found through; the last masked it.
		{"accounts", stores.ActionAnonymize, 2}} {
		if got := totalOf(last, c.collection, c.action); got != c.rows {
			t.Errorf("totals after the hold: %s %s %d, want %d", c.collection, c.action, got, c.rows)
		}
	}
	j, ok := x.Store().(JournalReader)
	if !ok {
		t.Fatal("the store does not expose its journal (JournalRows)")
	}
	passes, err := j.JournalRows(ctx, req.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if len(passes) != 2 || !strings.Contains(passes[0], "contacts delete 2") || !strings.Contains(passes[1], "invoices delete 2") {
		t.Errorf("journal = %q, want the first pass and the pass after the hold, the pass run again not written", passes)
	}
}

func totalsOutcome(res stores.Result) []string {
	return Outcome(stores.Result{Collections: res.Totals})
}

func totalOf(res stores.Result, collection string, action stores.Action) int64 {
	for _, r := range res.Totals {
		if r.Collection == collection && r.Action == action {
			return r.Rows
		}
	}
	return -1
}

// Verify, after an erasure, finds nothing left to change; before it, it
// finds what the erasure would change: it can fail.
func verificationFindsWhatIsLeft(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	v, ok := x.Store().(stores.Verifier)
	if !ok {
		t.Fatal("the store is no stores.Verifier")
	}
	req := erasure(x.subject())
	plan, err := x.Store().Plan(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	before, err := v.Verify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range plan.Collections {
		if r.Action.ChangesRows() && r.Rows > 0 && before.Remaining[r.Collection] == 0 {
			t.Errorf("before the erasure, Verify found nothing left in %s; Plan would %s %d", r.Collection, r.Action, r.Rows)
		}
	}
	if _, err := x.Store().Apply(ctx, req); err != nil {
		t.Fatal(err)
	}
	after, err := v.Verify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if left := after.Left(); len(left) > 0 {
		t.Errorf("after the erasure, Verify found rows left: %v", left)
	}
	if !maps.EqualFunc(after.Remaining, before.Remaining, func(a, b int64) bool { return a == 0 || a <= b }) {
		t.Errorf("remaining after %v, before %v", after.Remaining, before.Remaining)
	}
}

// Retained rows that end their periods on different dates say both: when
// the first may be erased and when the last may.
func retainedRowsReportTheirFirstAndLastDates(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	req := erasure(x.subject())
	req.Exemptions = []stores.Exemption{{Collection: "orders", Field: "issued_at", Cutoff: time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC),
		Period: "10y", LegalBasis: "French Commercial Code L123-22", Rule: "orders-10y"}}
	res, err := x.Store().Plan(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r := resultOf(t, res, "orders", stores.ActionRetain)
	first, last := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2034, 6, 15, 0, 0, 0, 0, time.UTC)
	if r.Rows != 2 || r.RetainedFrom == nil || !r.RetainedFrom.Equal(first) || r.RetainedUntil == nil || !r.RetainedUntil.Equal(last) {
		t.Errorf("orders retained %d rows from %v until %v; want 2, the first erasable %v, the last %v", r.Rows, r.RetainedFrom, r.RetainedUntil, first, last)
	}
}
