package storetest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Sweeps of a parent follow the data map below its expired rows, as erasure
// does: children deleted first in the batch's transaction, setNull links
// cleared, and a row below that must stay (retained by the map, held,
// exempted) keeping its parent, which the batch reports as kept.

// sweepTotals is what a whole sweep did, summed over its batches.
type sweepTotals struct {
	rows     int64
	batches  int
	children []string // "collection action rows", sorted
	kept     map[string]int64
}

// sweepAllBatches runs batches until the sweep is done and sums what they did.
func sweepAllBatches(t T, s stores.Sweeper, rule stores.SweepRule) sweepTotals {
	t.Helper()
	out := sweepTotals{kept: map[string]int64{}}
	children := map[string]int64{}
	cursor := ""
	for {
		out.batches++
		b, err := s.SweepBatch(ctx, rule, cursor)
		if err != nil {
			t.Fatalf("batch %d: %v", out.batches, err)
		}
		out.rows += b.Rows
		for _, r := range b.Children {
			if r.Collection == rule.Collection && r.Action == stores.ActionDelete {
				t.Errorf("batch %d reports the swept rows among its children: %+v", out.batches, r)
			}
			children[r.Collection+" "+string(r.Action)] += r.Rows
		}
		for _, r := range b.Kept {
			if r.Collection != rule.Collection || r.Action != stores.ActionRetain {
				t.Errorf("batch %d: kept %+v, want collection %s, action retain", out.batches, r, rule.Collection)
			}
			out.kept[r.Reason] += r.Rows
		}
		cursor = b.Cursor
		if b.Done {
			break
		}
		if out.batches > 1000 {
			t.Fatal("the sweep does not end")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(children)) {
		out.children = append(out.children, fmt.Sprintf("%s %d", k, children[k]))
	}
	return out
}

func (st sweepTotals) want(t T, rows int64, children []string, kept map[string]int64) {
	t.Helper()
	slices.Sort(children)
	if st.rows != rows {
		t.Errorf("swept %d rows, want %d", st.rows, rows)
	}
	if !slices.Equal(st.children, children) {
		t.Errorf("children:\n  %s\nwant:\n  %s", strings.Join(st.children, "\n  "), strings.Join(children, "\n  "))
	}
	if kept == nil {
		kept = map[string]int64{}
	}
	if !maps.Equal(st.kept, kept) {
		t.Errorf("kept %v, want %v", st.kept, kept)
	}
}

// pastPeriod is CountPastPeriod, failing the test on an error.
func pastPeriod(t T, s stores.Sweeper, rule stores.SweepRule) stores.PastPeriod {
	t.Helper()
	p, err := s.CountPastPeriod(ctx, rule)
	if err != nil {
		t.Fatalf("CountPastPeriod: %v", err)
	}
	return p
}

// accountsRule sweeps accounts (all created 2020-01-01) meeting where.
func accountsRule(where ...stores.Condition) stores.SweepRule {
	return stores.SweepRule{Collection: "accounts", Field: "created_at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 10, Where: where}
}

// Invoices 10 and 14 are past a rule's period (issued 2014); their lines go
// with them, batch by batch, and nothing else changes.
func sweepDeletesTheChildrenOfExpiredRows(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	s := sweeper(t, x, x.Store())
	rule := stores.SweepRule{Collection: "invoices", Field: "issued_at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 1}
	if p := pastPeriod(t, s, rule); p != (stores.PastPeriod{Rows: 2}) {
		t.Fatalf("CountPastPeriod = %+v, want 2 rows", p)
	}
	before := x.Snapshot(t)
	got := sweepAllBatches(t, s, rule)
	got.want(t, 2, []string{"invoice_lines delete 3"}, nil)
	if got.batches < 2 {
		t.Errorf("%d batches of 1, want one an expired invoice at least", got.batches)
	}
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{"invoices": {10, 14}, "invoice_lines": {100, 101, 105}})
	if p := pastPeriod(t, s, rule); p != (stores.PastPeriod{}) {
		t.Errorf("after the sweep, CountPastPeriod = %+v, want nothing", p)
	}
}

// Accounts 1, 2 and 3 (those with a phone) are swept: their invoices,
// those invoices' lines and their tickets go first; account 4, referred by
// account 2, only loses the link. Other accounts, invoices, lines and
// tickets are left.
func sweepFollowsAThreeLevelChainAndClearsLinks(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	s := sweeper(t, x, x.Store())
	rule := accountsRule(stores.Condition{Field: "phone", IsNull: false})
	before := x.Snapshot(t)
	got := sweepAllBatches(t, s, rule)
	got.want(t, 3, []string{"invoice_lines delete 5", "invoices delete 4", "tickets delete 2", "accounts setNull 1"}, nil)
	after := x.Snapshot(t)
	x.wantChanged(t, before, after, map[string][]any{
		"accounts": {ID(1), ID(2), ID(3), ID(4)}, "invoices": {10, 11, 12, 13},
		"invoice_lines": {100, 101, 102, 103, 104}, "tickets": {1, 4},
	})
	// Account 4 lost its link and nothing else.
	was, now := maps.Clone(x.row(t, before, "accounts", ID(4))), x.row(t, after, "accounts", ID(4))
	delete(was, "referred_by")
	if !maps.Equal(was, now) {
		t.Errorf("account 4 after the sweep: %v, want %v", now, was)
	}
	if p := pastPeriod(t, s, rule); p != (stores.PastPeriod{}) {
		t.Errorf("after the sweep, CountPastPeriod = %+v, want nothing", p)
	}
}

// With invoice lines retained by the map, account 11, whose invoice has a
// line, stays, and so does everything below it; accounts 4 to 7 (no
// invoices) go. The batch says why account 11 stays, and it is still past
// its period.
func sweepKeepsAParentWhoseChildTheMapRetains(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	spec := x.f.Spec()
	lines := collection(t, &spec, "invoice_lines")
	lines.OnErasure, lines.RetainReason = privacyv1.ErasureRetain, "lines are accounting records"
	s := sweeper(t, x, x.Open(t, spec, MaskingKey))
	rule := accountsRule(stores.Condition{Field: "phone", IsNull: true})
	before := x.Snapshot(t)
	got := sweepAllBatches(t, s, rule)
	got.want(t, 4, nil, map[string]int64{"kept: invoice_lines below are retained by the data map (lines are accounting records)": 1})
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{"accounts": {ID(4), ID(5), ID(6), ID(7)}})
	if p := pastPeriod(t, s, rule); p != (stores.PastPeriod{Rows: 1}) {
		t.Errorf("after the sweep, CountPastPeriod = %+v, want the kept account", p)
	}
}

// A held invoice line (101) keeps invoice 10 and its account 1, and all
// that belongs to them; accounts 2 and 3 are swept with what is below them.
func sweepKeepsAParentWhoseChildIsHeld(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	s := sweeper(t, x, x.Store())
	rule := accountsRule(stores.Condition{Field: "phone", IsNull: false})
	rule.HeldChildKeys = map[string][]string{"invoice_lines": {x.Key("invoice_lines", 101)}}
	before := x.Snapshot(t)
	got := sweepAllBatches(t, s, rule)
	got.want(t, 2, []string{"invoice_lines delete 2", "invoices delete 2", "tickets delete 1", "accounts setNull 1"},
		map[string]int64{"kept: invoice_lines below are on legal hold": 1})
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{
		"accounts": {ID(2), ID(3), ID(4)}, "invoices": {12, 13}, "invoice_lines": {103, 104}, "tickets": {4},
	})
}

// Invoices issued after 2016-06-01 are inside another rule's legal
// minimum: accounts 1, 2 and 3, which have such invoices, stay with all
// their invoices (10, issued 2014, too); the others go, account 11 with
// invoice 14 and its line.
func sweepKeepsAParentWhoseChildIsExempted(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	s := sweeper(t, x, x.Store())
	rule := accountsRule()
	rule.Exemptions = []stores.Exemption{{Collection: "invoices", Field: "issued_at", Cutoff: time.Date(2016, 6, 1, 0, 0, 0, 0, time.UTC),
		Period: "10y", LegalBasis: "French Commercial Code L123-22", Rule: "invoices-10y"}}
	before := x.Snapshot(t)
	got := sweepAllBatches(t, s, rule)
	got.want(t, 5, []string{"invoice_lines delete 1", "invoices delete 1"},
		map[string]int64{"kept: invoices below are kept by retention rule invoices-10y (legal basis: French Commercial Code L123-22) for 10y": 3})
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{
		"accounts": {ID(4), ID(5), ID(6), ID(7), ID(11)}, "invoices": {14}, "invoice_lines": {105},
	})
	if p := pastPeriod(t, s, rule); p != (stores.PastPeriod{Rows: 3}) {
		t.Errorf("after the sweep, CountPastPeriod = %+v, want the 3 kept accounts", p)
	}
}

// The compliance gap counts what the fixture holds: orders issued before
// the cutoff, held or not, and orders without a date, which no sweep
// touches.
func pastPeriodCountsHeldRowsAndRowsWithoutADate(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	s := sweeper(t, x, x.Store())
	rule := stores.SweepRule{Collection: "orders", Field: "issued_at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: 10,
		HeldKeys: []string{x.Key("orders", 20), x.Key("orders", 20)}} // a held key given twice is counted once
	var want stores.PastPeriod
	var expired []any
	for _, c := range x.f.Collections() {
		if c.Spec.Name != "orders" {
			continue
		}
		for i := range c.Rows {
			switch at := c.Value(i, "issued_at"); {
			case at == nil:
				want.WithoutDate++
			case !at.(time.Time).Before(sweepCutoff):
			case c.Key(i) == 20:
				want.Held++
			default:
				want.Rows++
				expired = append(expired, c.Key(i))
			}
		}
	}
	if want != (stores.PastPeriod{Rows: 1, Held: 1, WithoutDate: 1}) {
		t.Fatalf("fixture: %+v", want)
	}
	if got := pastPeriod(t, s, rule); got != want {
		t.Errorf("CountPastPeriod = %+v, want %+v", got, want)
	}
	before := x.Snapshot(t)
	sweepAll(t, s, rule, "")
	x.wantChanged(t, before, x.Snapshot(t), map[string][]any{"orders": expired})
	want.Rows = 0
	if got := pastPeriod(t, s, rule); got != want {
		t.Errorf("after the sweep, CountPastPeriod = %+v, want %+v", got, want)
	}
}
