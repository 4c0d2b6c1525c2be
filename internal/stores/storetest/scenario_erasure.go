package storetest

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// subjectRows are the fixture rows that belong to the subject (user 1,
// a_b@x.io), by collection: found by identity, or down the references.
var subjectRows = map[string][]any{
	"accounts":      {ID(1)},
	"invoices":      {10, 11},
	"invoice_lines": {100, 101, 102},
	"login_events":  {1000, 1002},
	"newsletter":    {nl(1), nl(3)},
	"devices":       {DeviceKey(0xa1)},
	"device_tokens": {500, 502},
	"tickets":       {1},
	"contacts":      {1, 8},
	"profiles":      {ID(1)},
	"orders":        {9, 20, 100},
}

const loginReason = "security logs are kept for a year (legitimate interest)"

// deleteReceipt is the subject's erasure with accounts deleted.
var deleteReceipt = receipt{
	"orders":        {"delete 3"},
	"profiles":      {"anonymize 1"},
	"contacts":      {"delete 2"},
	"tickets":       {"delete 1"},
	"device_tokens": {"delete 2"},
	"devices":       {"delete 1"},
	"newsletter":    {"delete 2"},
	"login_events":  {"retain 2"},
	"invoice_lines": {"delete 3"},
	"invoices":      {"delete 2"},
	"accounts":      {"setNull 2", "delete 1"},
}

// anonymizeReceipt is the subject's erasure with accounts anonymized.
func anonymizeReceipt() receipt {
	r := maps.Clone(deleteReceipt)
	r["accounts"] = []string{"setNull 2", "anonymize 1"}
	return r
}

// Erasure deletes the subject's rows down the three-level chain and the
// binary and text references, retains the retained collection with its
// reason, clears the self-references of other accounts, and changes no
// other row: not the look-alikes, not user 11.
func erasureDeletesExactlyTheSubjectsRows(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	before := x.Snapshot(t)
	res, err := x.Store().Apply(ctx, erasure(x.subject()))
	if err != nil {
		t.Fatal(err)
	}
	x.wantReceipt(t, stores.KindErasure, res, deleteReceipt)
	if got := resultOf(t, res, "login_events", stores.ActionRetain).Reason; got != loginReason {
		t.Errorf("login_events reason = %q", got)
	}
	if res.Held {
		t.Error("Held is true without a hold")
	}
	after := x.Snapshot(t)
	want := withoutKeys(subjectRows, "login_events") // retained
	want["accounts"] = []any{ID(1), ID(2), ID(3)}    // 2 and 3 were referred by 1
	x.wantChanged(t, before, after, want)
	for c, keys := range withoutKeys(subjectRows, "login_events", "profiles") {
		for _, k := range x.want(map[string][]any{c: keys})[c] {
			if _, ok := after[c][k]; ok {
				t.Errorf("%s %s still exists", c, k)
			}
		}
	}
}

// A deleted parent's referrers (rows of other subjects) only lose the link:
// referred_by is NULL and nothing else of theirs changes.
func setNullWhenTheParentIsDeleted(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	before := x.Snapshot(t)
	res, err := x.Store().Apply(ctx, erasure(x.subject()))
	if err != nil {
		t.Fatal(err)
	}
	if got := resultOf(t, res, "accounts", stores.ActionSetNull).Rows; got != 2 {
		t.Errorf("accounts setNull %d, want 2", got)
	}
	after := x.Snapshot(t)
	wantLinkCleared(t, x, before, after, ID(2), ID(3))
	if got, was := x.row(t, after, "accounts", ID(4)), x.row(t, before, "accounts", ID(4)); !maps.Equal(got, was) {
		t.Errorf("account 4, referred by account 2, changed: %v, was %v", got, was)
	}
}

// wantLinkCleared checks that the accounts' referred_by is NULL and nothing
// else of theirs changed.
func wantLinkCleared(t T, x *fx, before, after Snapshot, ids ...ID) {
	t.Helper()
	for _, id := range ids {
		was, got := x.row(t, before, "accounts", id), x.row(t, after, "accounts", id)
		if v, ok := got["referred_by"]; ok {
			t.Errorf("account %d: referred_by = %s, want NULL", id, v)
		}
		if !maps.Equal(withoutKeys(got, "referred_by"), withoutKeys(was, "referred_by")) {
			t.Errorf("account %d: %v, was %v: more than the link changed", id, got, was)
		}
	}
}

// The link is cleared whenever the parent is erased, deleted or anonymized
// (DESIGN.md): an anonymized account's referrers lose their link too, and the
// receipt says so.
func setNullWhenTheParentIsAnonymized(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	before := x.Snapshot(t)
	res, err := x.Store().Apply(ctx, erasure(x.subject()))
	if err != nil {
		t.Fatal(err)
	}
	wantLinkCleared(t, x, before, x.Snapshot(t), ID(2), ID(3))
	if !slices.Contains(Outcome(res), "accounts setNull 2") {
		t.Errorf("receipt %v does not report the 2 links cleared", Outcome(res))
	}
}

// Anonymization masks each field with its strategy, inside the store, with
// the same digests as the Go implementation; fields without masking and
// unmapped fields stay; other subjects' rows do not change; applying again
// changes nothing.
func anonymizationMasksAsMapped(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	before := x.Snapshot(t)
	res, err := x.Store().Apply(ctx, erasure(x.subject()))
	if err != nil {
		t.Fatal(err)
	}
	x.wantReceipt(t, stores.KindErasure, res, anonymizeReceipt())
	after := x.Snapshot(t)
	// Accounts 2 and 3 refer to the subject: whether their link is cleared
	// is set-null-when-the-parent-is-anonymized's concern; nothing else of
	// theirs may change.
	got := Changed(before, after)
	got["accounts"] = slices.DeleteFunc(got["accounts"], func(k string) bool {
		if k != x.Key("accounts", ID(2)) && k != x.Key("accounts", ID(3)) {
			return false
		}
		if !maps.Equal(withoutKeys(after["accounts"][k], "referred_by"), withoutKeys(before["accounts"][k], "referred_by")) {
			t.Errorf("account %s: more than its link changed", k)
		}
		return true
	})
	if len(got["accounts"]) == 0 {
		delete(got, "accounts")
	}
	want := x.want(withoutKeys(subjectRows, "login_events"))
	if !equalChanges(got, want) {
		t.Errorf("changed rows = %v, want %v", got, want)
	}

	mask := func(strategy *privacyv1.Masking, collection string, key any, value string) string {
		t.Helper()
		s, err := masking.MaskString(strategy, MaskingKey, x.MaskingRowKey(collection, x.Key(collection, key)), value)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	uniqueEmail := &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}
	if x.holds("accounts") {
		wantRow(t, "account 1", x.row(t, after, "accounts", ID(1)), x.row(t, before, "accounts", ID(1)), Row{
			"email": mask(uniqueEmail, "accounts", ID(1), "a_b@x.io"), "name": "[redacted]",
			"phone": "***************78", "birth_date": "1990-01-01",
		}, "avatar")
	}
	email := mask(uniqueEmail, "profiles", ID(1), "ada@example.com")
	if !strings.HasPrefix(email, "erased-") {
		t.Errorf("uniqueEmail gave %q", email)
	}
	wantRow(t, "profile 1", x.row(t, after, "profiles", ID(1)), x.row(t, before, "profiles", ID(1)), Row{
		"email": email, "phone": "**********89", "name": "[redacted]", "age": "30",
	}, "city")

	// Deterministic strategies are stable: applying again changes nothing.
	if _, err := x.Store().Apply(ctx, erasure(x.subject())); err != nil {
		t.Fatal(err)
	}
	unchanged(t, "applying the anonymization again", after, x.Snapshot(t))
}

// wantRow checks that row is was with the columns of set changed to their
// values and the columns of cleared removed (NULL).
func wantRow(t T, what string, row, was, set Row, cleared ...string) {
	t.Helper()
	want := maps.Clone(was)
	maps.Copy(want, set)
	for _, c := range cleared {
		delete(want, c)
	}
	if !maps.Equal(row, want) {
		t.Errorf("%s = %v, want %v", what, row, want)
	}
}

// Running the same erasure again finds what is left of the subject (the
// anonymized rows, the retained ones) but changes and counts nothing.
func erasureTwiceChangesNothing(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	if _, err := x.Store().Apply(ctx, erasure(x.subject())); err != nil {
		t.Fatal(err)
	}
	before := x.Snapshot(t)
	res, err := x.Store().Apply(ctx, erasure(x.subject()))
	if err != nil {
		t.Fatal(err)
	}
	unchanged(t, "the second erasure", before, x.Snapshot(t))
	x.wantReceipt(t, stores.KindErasure, res, receipt{
		"orders": {"delete 0"}, "profiles": {"anonymize 0"}, "contacts": {"delete 0"}, "tickets": {"delete 0"},
		"device_tokens": {"delete 0"}, "devices": {"delete 0"}, "newsletter": {"delete 0"},
		"login_events": {"retain 2"}, "invoice_lines": {"delete 0"}, "invoices": {"delete 0"}, "accounts": {"setNull 0", "anonymize 0"},
	})
}

func invoiceExemptions(x *fx) []stores.Exemption {
	cutoff := time.Date(2016, 6, 1, 0, 0, 0, 0, time.UTC)
	var out []stores.Exemption
	if x.holds("invoices") {
		out = append(out, stores.Exemption{Collection: "invoices", Field: "issued_at", Cutoff: cutoff, Period: "10y", LegalBasis: "French Commercial Code L123-22", Rule: "invoices-10y"})
	}
	return append(out, stores.Exemption{Collection: "orders", Field: "issued_at", Cutoff: cutoff, Period: "10y", LegalBasis: "French Commercial Code L123-22", Rule: "orders-10y"})
}

// Plan changes nothing, not even the rows Apply then changes, and reports the
// counts Apply then reports, retained rows and their dates included.
func planChangesNothingAndMatchesApply(t T, e *env) {
	for _, accounts := range []privacyv1.ErasureAction{privacyv1.ErasureDelete, privacyv1.ErasureAnonymize} {
		x := e.mustOpen(t, Fixture{Accounts: accounts})
		req := erasure(x.subject())
		if accounts == privacyv1.ErasureAnonymize && x.suite.supports(Exemptions) {
			req.Exemptions = invoiceExemptions(x) // a retained invoice would block deleting its account
		}
		before := x.Snapshot(t)
		plan, err := x.Store().Plan(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		unchanged(t, "Plan", before, x.Snapshot(t))
		applied, err := x.Store().Apply(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plan, pass(applied)) {
			t.Fatalf("accounts %s: Plan reported\n  %v\nApply reported\n  %v", accounts, Outcome(plan), Outcome(applied))
		}
		if len(Changed(before, x.Snapshot(t))) == 0 {
			t.Fatalf("accounts %s: Apply changed nothing", accounts)
		}
	}
}

// A failure inside the store's part of a request (after some collections
// were acted on) rolls everything back, and the error names what failed
// but no data.
func failureLeavesTheStoreUnchanged(t T, e *env) {
	x := e.mustOpen(t, Fixture{Extras: []Extra{Payments}})
	s, ok := x.Harness.(Saboteur)
	if !ok {
		t.Fatalf("storetest: %s has Atomic but its harness is no Saboteur", x.suite.Name)
	}
	want, leaks := s.Sabotage(t)
	before := x.Snapshot(t)
	_, err := x.Store().Apply(ctx, erasure(x.subject()))
	if err == nil {
		t.Fatal("Apply succeeded despite the sabotage")
	}
	if !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	containsAll(t, "error", err.Error(), want...)
	containsNone(t, "error", err.Error(), append(leaks, "a_b@x.io", "Subject", "(10)", "5000")...)
	unchanged(t, "the failed erasure", before, x.Snapshot(t))
}

// Another transaction holding one of the subject's rows makes Apply give up
// after the store's lock timeout, unavailable (retry later), having changed nothing.
func lockedRowsTimeOutAndChangeNothing(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	l, ok := x.Harness.(LockHarness)
	if !ok {
		t.Fatalf("storetest: %s has Locks but its harness is no LockHarness", x.suite.Name)
	}
	before := x.Snapshot(t)
	// The lock is released only after Apply returns: an Apply that waited
	// on it rather than time out would never return (the test's timeout).
	release := l.Lock(t, "invoices", x.Key("invoices", 11))
	_, err := x.Store().Apply(ctx, erasure(x.subject()))
	release()
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), x.suite.Texts.LockTimeout) {
		t.Fatalf("Apply() error = %v, want ErrUnavailable (%s)", err, x.suite.Texts.LockTimeout)
	}
	unchanged(t, "the timed-out erasure", before, x.Snapshot(t))
}

// Rows inside a legal minimum period stay, with their children, and the
// receipt says why and until when; older rows are erased, and so are rows
// whose date is unknown (NULL): they cannot be shown to be inside the period.
func exemptionsKeepRowsAndTheirChildren(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	before := x.Snapshot(t)
	req := erasure(x.subject())
	req.Exemptions = invoiceExemptions(x)
	res, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := anonymizeReceipt()
	want["orders"] = []string{"delete 2", "retain 1"}
	want["invoice_lines"] = []string{"delete 2", "retain 1"}
	want["invoices"] = []string{"delete 1", "retain 1"}
	x.wantReceipt(t, stores.KindErasure, res, want)
	until := time.Date(2034, 6, 15, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct{ collection, rule string }{{"invoices", "invoices-10y"}, {"invoice_lines", "invoices-10y"}, {"orders", "orders-10y"}} {
		if !x.holds(c.collection) {
			continue
		}
		r := resultOf(t, res, c.collection, stores.ActionRetain)
		if r.RetainedUntil == nil || !r.RetainedUntil.Equal(until) {
			t.Errorf("%s retained until %v, want %v", r.Collection, r.RetainedUntil, until)
		}
		containsAll(t, c.collection+" reason", r.Reason, c.rule, "French Commercial Code L123-22", "10y")
	}
	if x.holds("invoice_lines") {
		containsAll(t, "invoice_lines reason", resultOf(t, res, "invoice_lines", stores.ActionRetain).Reason, "kept with the rows of invoices")
	}
	if res.Held {
		t.Error("Held is true without a hold")
	}
	changed := Changed(before, x.Snapshot(t))
	for c, keys := range map[string][]any{"invoices": {10}, "invoice_lines": {100, 101}, "orders": {20, 100}} {
		if x.holds(c) && !slices.Equal(changed[c], x.keys(c, keys...)) {
			t.Errorf("changed %s %v, want %v", c, changed[c], x.keys(c, keys...))
		}
	}
}

// A scope covering some fields of a collection mapped delete anonymizes only
// those fields (the others are outside the request); a collection whose
// mapped fields are all in scope is deleted; collections outside the scope
// are untouched.
func partialScopeAnonymizesOnlyFieldsInScope(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	before := x.Snapshot(t)
	req := erasure(x.subject())
	req.Scope = datamap.Scope{Categories: []string{"user.contact"}}
	res, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	after := x.Snapshot(t)
	x.wantChanged(t, before, after, map[string][]any{
		"accounts": {ID(1)}, "newsletter": subjectRows["newsletter"], "tickets": {1}, "contacts": {1, 8}, "profiles": {ID(1)},
	})
	if x.holds("accounts") {
		a := x.row(t, after, "accounts", ID(1))
		if !strings.HasPrefix(a["email"], "erased-") || !strings.HasSuffix(a["email"], "@erased.invalid") || a["name"] != "Ada Subject" || a["phone"] != "***************78" {
			t.Errorf("account 1 = %v, want its e-mail and phone masked, its name kept", a)
		}
	}
	if x.holds("tickets") {
		if r := x.row(t, after, "tickets", 1); r["requester_email"] != "[redacted]" || r["body"] != "my invoice" {
			t.Errorf("ticket 1 = %v, want the e-mail redacted and the message kept", r)
		}
	}
	p := x.row(t, after, "profiles", ID(1))
	if !strings.HasPrefix(p["email"], "erased-") || p["phone"] != "**********89" || p["name"] != "Ada" || p["city"] != "Paris" || p["age"] != "37" {
		t.Errorf("profile 1 = %v, want only its e-mail and phone masked", p)
	}
	for _, k := range []int{1, 8} {
		r, was := x.row(t, after, "contacts", k), x.row(t, before, "contacts", k)
		if r["email"] != "[redacted]" || r["name"] != was["name"] {
			t.Errorf("contact %d = %v, want the e-mail redacted and the name kept", k, r)
		}
	}
	x.wantReceipt(t, stores.KindErasure, res, receipt{
		"profiles": {"anonymize 1"}, "contacts": {"anonymize 2"}, "tickets": {"anonymize 1"},
		"newsletter": {"delete 2"}, "accounts": {"anonymize 1"},
	})
}

// A scope covering only fields without masking cannot be erased without
// erasing more than the scope: an error naming the collection and fields,
// never a silent skip nor a whole delete.
func scopeWithoutMaskingIsRefused(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	before := x.Snapshot(t)
	req := erasure(x.subject())
	req.Scope = datamap.Scope{Categories: []string{"user.billing.amount"}}
	collection, field := `collection "orders"`, "(total)"
	if x.holds("invoices") {
		collection, field = `collection "invoices"`, "(amount)" // the first in the map's order
	}
	_, err := x.Store().Plan(ctx, req)
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), collection) || !strings.Contains(err.Error(), field) {
		t.Errorf("Plan() error = %v, want ErrInvalid naming %s and %s", err, collection, field)
	}
	_, err = x.Store().Apply(ctx, req)
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), collection) {
		t.Errorf("Apply() error = %v, want ErrInvalid naming %s", err, collection)
	}
	unchanged(t, "a refused scope", before, x.Snapshot(t))
}
