package storetest

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
)

// Outcome renders results as "collection action rows" lines, the part of a
// receipt most assertions compare.
func Outcome(res stores.Result) []string {
	var out []string
	for _, c := range res.Collections {
		out = append(out, fmt.Sprintf("%s %s %d", c.Collection, c.Action, c.Rows))
	}
	return out
}

// receipt is the expected outcome per collection: lines "action rows", in
// the order they appear for that collection. A collection the fixture holds
// but receipt omits must report nothing (it is outside the request's scope).
// A line marked "?" may be left out: engines word receipts differently in
// two places only, a zero count before a collection's retain line when a
// hold keeps the whole collection, and "rectify 0" for a collection that
// maps none of the corrected categories.
type receipt map[string][]string

// wantReceipt compares res with want, collection by collection in the order
// the engine acts on the data map: parents first, children first for an
// erasure. Engines without RowCounts report erasure and rectification as
// calls: -1 for a collection kept without asking, 1 for a call that acted, 0
// for none.
func (x *fx) wantReceipt(t T, kind stores.Kind, res stores.Result, want receipt) {
	t.Helper()
	order := slices.Clone(x.m.Collections)
	if kind == stores.KindErasure {
		slices.Reverse(order)
	}
	var lines []string
	for _, c := range order {
		for _, l := range want[c.Name] {
			optional := strings.HasPrefix(l, "?")
			l = c.Name + " " + x.countAs(kind, strings.TrimPrefix(l, "?"))
			if optional {
				l = "?" + l
			}
			lines = append(lines, l)
		}
	}
	for name := range want {
		if !x.holds(name) && !slices.Contains(fixtureNames(x.f), name) {
			t.Fatalf("storetest: the expected receipt names %q, which is no collection of the fixture", name)
		}
	}
	if got := Outcome(res); !matchLines(got, lines) {
		t.Fatalf("outcome:\n  %s\nwant (? marks a line the engine may leave out):\n  %s", strings.Join(got, "\n  "), strings.Join(lines, "\n  "))
	}
}

// matchLines reports whether got is want with some of its optional lines
// (marked "?") left out.
func matchLines(got, want []string) bool {
	i := 0
	for _, w := range want {
		optional := strings.HasPrefix(w, "?")
		w = strings.TrimPrefix(w, "?")
		if i < len(got) && got[i] == w {
			i++
			continue
		}
		if !optional {
			return false
		}
	}
	return i == len(got)
}

// countAs renders an expected "action rows" line as the engine counts it.
func (x *fx) countAs(kind stores.Kind, line string) string {
	if x.suite.supports(RowCounts) || kind == stores.KindAccess {
		return line
	}
	action, rows, _ := strings.Cut(line, " ")
	switch {
	case action == string(stores.ActionRetain):
		rows = "-1"
	case rows != "0":
		rows = "1"
	}
	return action + " " + rows
}

func fixtureNames(f Fixture) []string {
	f.unsupported = nil
	var names []string
	for _, c := range f.all() {
		names = append(names, string(c.Spec.Name))
	}
	return names
}

// wantChanged compares the rows changed between two snapshots with want
// (fixture keys by collection; collections the engine does not hold are
// ignored, unmapped tables are compared as named).
func (x *fx) wantChanged(t T, before, after Snapshot, want map[string][]any) {
	t.Helper()
	exp := map[string][]string{}
	for c, keys := range want {
		if len(keys) == 0 {
			continue
		}
		if x.holds(c) {
			exp[c] = x.keys(c, keys...)
		} else if !slices.Contains(fixtureNames(x.f), c) {
			exp[c] = x.keys(c, keys...) // an unmapped table of an extra
		}
	}
	if got := Changed(before, after); !reflect.DeepEqual(got, exp) {
		t.Fatalf("changed rows = %v, want %v", got, exp)
	}
}

// unchanged fails when anything changed between two snapshots.
func unchanged(t T, what string, before, after Snapshot) {
	t.Helper()
	if got := Changed(before, after); len(got) != 0 {
		t.Fatalf("%s changed %v", what, got)
	}
}

// row returns the row of collection with fixture key k in snap.
func (x *fx) row(t T, snap Snapshot, collection string, k any) Row {
	t.Helper()
	r, ok := snap[collection][x.Key(collection, k)]
	if !ok {
		t.Fatalf("%s %v: no such row", collection, k)
	}
	return r
}

// withoutKeys returns a copy of m without the given collections.
func withoutKeys[V any](m map[string]V, drop ...string) map[string]V {
	out := maps.Clone(m)
	for _, d := range drop {
		delete(out, d)
	}
	return out
}

func resultOf(t T, res stores.Result, collection string, action stores.Action) stores.CollectionResult {
	t.Helper()
	for _, c := range res.Collections {
		if c.Collection == collection && c.Action == action {
			return c
		}
	}
	t.Fatalf("no %s %s in %v", collection, action, Outcome(res))
	return stores.CollectionResult{}
}

func containsAll(t T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s %q does not contain %q", what, s, w)
		}
	}
}

func containsNone(t T, what, s string, leaks ...string) {
	t.Helper()
	for _, l := range leaks {
		if l != "" && strings.Contains(s, l) {
			t.Errorf("%s %q leaks %q", what, s, l)
		}
	}
}

// pass is an Apply's result without its journal totals: what Plan reports.
func pass(res stores.Result) stores.Result {
	res.Totals = nil
	return res
}
