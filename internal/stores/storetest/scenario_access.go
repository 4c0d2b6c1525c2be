package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// exportReceipt is the subject's export, row counts by collection.
var exportReceipt = receipt{
	"accounts": {"export 1"}, "invoices": {"export 2"}, "invoice_lines": {"export 3"}, "login_events": {"export 2"},
	"newsletter": {"export 2"}, "devices": {"export 1"}, "device_tokens": {"export 2"}, "tickets": {"export 1"},
	"contacts": {"export 2"}, "profiles": {"export 1"}, "orders": {"export 3"},
}

// Export holds the subject's rows only, none of the look-alikes', as
// JSON-friendly values, and Plan counts what Export exports.
func exportHoldsOnlyTheSubjectsRows(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	before := x.Snapshot(t)
	req := access(x.subject())
	exp, res, err := x.Store().Export(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	x.wantReceipt(t, stores.KindAccess, res, exportReceipt)
	for _, c := range x.f.Collections() {
		name := string(c.Spec.Name)
		var got, want []string
		for _, row := range exp[name] {
			got = append(got, fmt.Sprint(x.ExportRow(name, row)[string(c.Spec.PrimaryKey)]))
		}
		for _, k := range subjectRows[name] {
			want = append(want, fmt.Sprint(x.f.Canonical(k)))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("exported %s rows %v, want the subject's %v", name, got, want)
		}
	}
	raw, err := json.Marshal(exp)
	if err != nil {
		t.Fatalf("the export is not JSON-friendly: %v", err)
	}
	for _, other := range []string{"A_B@x.io", "a_b@x.io ", " a_b@x.io", "á_b@x.io", "axb@x.io", "a_b@x.io.au", "upper", "tok-2", "Look Alike", "bob@example.com", "192.0.2.2", "laptop"} {
		if strings.Contains(string(raw), other) {
			t.Errorf("the export holds %q, which is not the subject's", other)
		}
	}
	if x.suite.supports(RowCounts) {
		plan, err := x.Store().Plan(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plan, pass(res)) {
			t.Errorf("Plan reported %v, Export %v", Outcome(plan), Outcome(res))
		}
	}
	unchanged(t, "an export", before, x.Snapshot(t))
}

// expectedExport is the subject's rows with the primary key and the mapped
// fields scope covers, from the fixture's data; collections without a
// field in scope are absent.
func (x *fx) expectedExport(scope datamap.Scope) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, c := range x.f.Collections() {
		name := string(c.Spec.Name)
		for i := range c.Rows {
			if !slices.ContainsFunc(subjectRows[name], func(k any) bool { return reflect.DeepEqual(k, c.Key(i)) }) {
				continue
			}
			row := map[string]any{string(c.Spec.PrimaryKey): x.f.Canonical(c.Key(i))}
			for _, f := range c.Spec.Fields {
				if scope.Covers(string(f.Category)) {
					row[string(f.Name)] = x.f.Canonical(c.Value(i, string(f.Name)))
				}
			}
			if len(row) > 1 || len(scope.Categories) == 0 {
				out[name] = append(out[name], row)
			}
		}
	}
	return out
}

// normalizedExport renders an export as the suite compares it, rows in key order.
func (x *fx) normalizedExport(exp stores.Export) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for name, rows := range exp {
		for _, r := range rows {
			out[name] = append(out[name], x.ExportRow(name, r))
		}
	}
	return out
}

func sortRows(m map[string][]map[string]any, pk func(string) string) {
	for name, rows := range m {
		slices.SortFunc(rows, func(a, b map[string]any) int {
			return strings.Compare(fmt.Sprint(a[pk(name)]), fmt.Sprint(b[pk(name)]))
		})
	}
}

func (x *fx) pk(name string) string {
	c, ok := x.m.Get(name)
	if !ok {
		return "id"
	}
	return c.PrimaryKey
}

func (x *fx) wantExport(t T, exp stores.Export, scope datamap.Scope) {
	t.Helper()
	got, want := x.normalizedExport(exp), x.expectedExport(scope)
	// Row order within a collection is not part of the contract.
	sortRows(got, x.pk)
	sortRows(want, x.pk)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("export =\n%v\nwant\n%v", got, want)
	}
}

// An export holds exactly the subject's mapped fields and primary keys,
// nothing unmapped (a plan, a foreign key, a creation date).
func exportHoldsExactlyTheMappedFields(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	exp, _, err := x.Store().Export(ctx, access(x.subject()))
	if err != nil {
		t.Fatal(err)
	}
	x.wantExport(t, exp, datamap.Scope{})
}

// A scope narrows the export to the collections and fields it covers.
func exportHonoursScope(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	req := access(x.subject())
	req.Scope = datamap.Scope{Categories: []string{"user.billing.address", "user.contact.phone"}}
	exp, _, err := x.Store().Export(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	x.wantExport(t, exp, req.Scope)
}

// rectifyReceipt is a rectification receipt: the given lines, and "?rectify
// 0" for every other collection (engines may report collections that map
// none of the corrected categories).
func rectifyReceipt(lines map[string]string) receipt {
	r := receipt{}
	for _, name := range fixtureNames(Fixture{}) {
		if l, ok := lines[name]; ok {
			r[name] = []string{l}
		} else {
			r[name] = []string{"?rectify 0"}
		}
	}
	return r
}

// Rectification sets the fields of exactly the named categories in the
// subject's rows only; a parent category names no field; a case-only
// correction is a change; running it again changes nothing.
func rectificationUpdatesOnlyTheSubject(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	rectify := func(values map[string]string) stores.Result {
		t.Helper()
		req := rectification(x.subject(), values)
		var plan stores.Result
		if x.suite.supports(RowCounts) {
			var err error
			if plan, err = x.Store().Plan(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		res, err := x.Store().Apply(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if x.suite.supports(RowCounts) && !reflect.DeepEqual(plan, pass(res)) {
			t.Fatalf("Plan reported %v, Apply %v", Outcome(plan), Outcome(res))
		}
		return res
	}
	before := x.Snapshot(t)

	x.wantReceipt(t, stores.KindRectification, rectify(map[string]string{"user.contact": "new@x.io"}), rectifyReceipt(nil))
	x.wantReceipt(t, stores.KindRectification, rectify(map[string]string{"user.identity.name": "ADA SUBJECT"}),
		rectifyReceipt(map[string]string{"accounts": "rectify 1", "contacts": "rectify 2", "profiles": "rectify 1"}))
	values := map[string]string{"user.contact.email": "ada@new.example", "user.contact.phone": "+33 7 00 00 00 01", "user.identity.birthdate": "1990-05-18"}
	x.wantReceipt(t, stores.KindRectification, rectify(values), rectifyReceipt(map[string]string{
		"accounts": "rectify 1", "newsletter": "rectify 2", "tickets": "rectify 1", "contacts": "rectify 2", "profiles": "rectify 1",
	}))

	after := x.Snapshot(t)
	x.wantChanged(t, before, after, map[string][]any{
		"accounts": {ID(1)}, "newsletter": subjectRows["newsletter"], "tickets": {1}, "contacts": {1, 8}, "profiles": {ID(1)},
	})
	if x.holds("accounts") {
		wantRow(t, "account 1", x.row(t, after, "accounts", ID(1)), x.row(t, before, "accounts", ID(1)), Row{
			"email": "ada@new.example", "name": "ADA SUBJECT", "phone": "+33 7 00 00 00 01", "birth_date": "1990-05-18",
		})
	}
	for _, k := range []int{1, 8} {
		wantRow(t, fmt.Sprintf("contact %d", k), x.row(t, after, "contacts", k), x.row(t, before, "contacts", k), Row{"email": "ada@new.example", "name": "ADA SUBJECT"})
	}
	if x.holds("profiles") {
		wantRow(t, "profile 1", x.row(t, after, "profiles", ID(1)), x.row(t, before, "profiles", ID(1)), Row{
			"email": "ada@new.example", "phone": "+33 7 00 00 00 01", "name": "ADA SUBJECT",
		})
	}
	// The subject is now found by userId (and the new e-mail through the
	// account) only: nothing is left to change.
	res := rectify(values)
	unchanged(t, "rectifying again", after, x.Snapshot(t))
	x.wantReceipt(t, stores.KindRectification, res, rectifyReceipt(map[string]string{
		"accounts": "rectify 0", "newsletter": "rectify 0", "tickets": "rectify 0", "contacts": "rectify 0", "profiles": "rectify 0",
	}))
}

// A corrected value that does not fit its column is refused, not
// truncated, and the error does not repeat it.
func rectificationRefusesValuesThatDoNotFit(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	before := x.Snapshot(t)
	for _, c := range []struct{ category, value, want string }{
		{"user.contact.phone", "+33 6 00 00 00 00 00 00 00 00 00 00 00 00", x.suite.Texts.TooLong},
		{"user.identity.birthdate", "the seventeenth of May", x.suite.Texts.BadDate},
	} {
		if c.want == "" {
			continue
		}
		_, err := x.Store().Apply(ctx, rectification(x.subject(), map[string]string{c.category: c.value}))
		if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Apply() error = %v, want ErrInvalid saying %s", c.category, err, c.want)
		}
		if err != nil {
			containsNone(t, "error", err.Error(), "seventeenth", "+33")
		}
	}
	unchanged(t, "refused rectifications", before, x.Snapshot(t))
}
