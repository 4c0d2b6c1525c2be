package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"

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
	x.wantStreamedExport(t, req, raw)
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

// wantStreamedExport checks that the engine's streamed export, encoded by a
// Document, holds the rows of its collected export (raw), each encoded as
// json.Marshal encodes it, under the collections json.Marshal would name;
// and that a budget smaller than the export refuses it, naming sizes only.
func (x *fx) wantStreamedExport(t T, req stores.Request, raw []byte) {
	t.Helper()
	st, ok := x.Store().(stores.ExportStreamer)
	if !ok {
		t.Errorf("%T does not stream exports (stores.ExportStreamer)", x.Store())
		return
	}
	var buf bytes.Buffer
	doc := stores.NewDocument(&buf, 0)
	section := doc.Store("s")
	if _, err := st.StreamExport(ctx, req, section); err != nil {
		t.Fatalf("StreamExport: %v", err)
	}
	if err := section.End(); err != nil {
		t.Fatal(err)
	}
	if err := doc.Close(); err != nil {
		t.Fatal(err)
	}
	// Each row is encoded byte for byte as json.Marshal encodes it; rows may
	// come in another order than in the collected export (a processor's
	// answer to a second call need not list them in the same order).
	if got, want := rowsByCollection(t, buf.Bytes(), "s"), rowsByCollection(t, []byte(`{"s":`+string(raw)+`}`), "s"); !reflect.DeepEqual(got, want) {
		t.Errorf("streamed export =\n%s\nwant the rows of\n%s", buf.String(), raw)
	}
	limit := int64(len(raw) / 2)
	small := stores.NewDocument(io.Discard, limit).Store("s")
	_, err := st.StreamExport(ctx, req, small)
	var tooLarge *stores.ExportTooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, stores.ErrExportTooLarge) || tooLarge.Limit != limit || tooLarge.Reached > limit {
		t.Fatalf("StreamExport over a %d-byte budget: err = %v, want ErrExportTooLarge within the limit", limit, err)
	}
	for _, v := range x.subject() {
		if strings.Contains(err.Error(), v) {
			t.Errorf("the refusal quotes the subject: %v", err)
		}
	}
	if !strings.Contains(err.Error(), fmt.Sprint(limit)) || !strings.Contains(err.Error(), fmt.Sprint(tooLarge.Reached)) {
		t.Errorf("the refusal does not name the size reached and the limit: %v", err)
	}
}

// rowsByCollection reads a streamed export document's section store: each
// collection's rows as their JSON text, sorted.
func rowsByCollection(t T, doc []byte, store string) map[string][]string {
	t.Helper()
	var parsed map[string]map[string][]json.RawMessage
	if err := json.Unmarshal(doc, &parsed); err != nil {
		t.Fatalf("the streamed export is not JSON: %v", err)
	}
	out := map[string][]string{}
	for c, rows := range parsed[store] {
		for _, r := range rows {
			out[c] = append(out[c], string(r))
		}
		slices.Sort(out[c])
	}
	return out
}

// LargeExportSpec maps one collection, large_export (in table, with columns
// id, user_id and payload), found by identity userId in user_id: the data map
// of LargeExport.
func LargeExportSpec(engine privacyv1.Engine, table string) privacyv1.DataStoreSpec {
	return privacyv1.DataStoreSpec{
		Engine: engine,
		Collections: []privacyv1.Collection{{
			Name: "large_export", Table: table, PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
			Fields:   []privacyv1.Field{{Name: "payload", Category: "user.activity.event"}},
		}},
	}
}

// LargeExport checks the export of subject {"userId": "7"}, who has rows rows
// in large_export (LargeExportSpec), of about payload bytes each: under a
// budget that fits, every row is exported; under a small budget the export is
// refused, naming the size reached and the limit, having allocated a small
// part of what holding the whole export (the collected Export and its JSON,
// as the manager did before exports streamed) allocates.
func LargeExport(t *testing.T, s stores.Store, rows, payload int) {
	t.Helper()
	st, ok := s.(stores.ExportStreamer)
	if !ok {
		t.Fatalf("%T does not stream exports", s)
	}
	req := stores.Request{Kind: stores.KindAccess, Subject: map[string]string{"userId": "7"}, RequestID: "large-export"}
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}

	// The whole export, as the manager held it before: every row, then its JSON.
	var whole uint64
	var size int
	whole = allocated(func() {
		exp, res, err := s.Export(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(map[string]stores.Export{"s": exp})
		if err != nil {
			t.Fatal(err)
		}
		size = len(raw)
		if n := len(exp["large_export"]); n != rows || res.Collections[0].Rows != int64(rows) {
			t.Fatalf("collected export holds %d rows (receipt %d), want %d", n, res.Collections[0].Rows, rows)
		}
	})
	if size < rows*payload {
		t.Fatalf("the export is %d bytes, want more than %d", size, rows*payload)
	}

	// Streamed under a budget it fits: every row, the same document.
	var streamed uint64
	var counted int
	streamed = allocated(func() {
		var buf bytes.Buffer
		doc := stores.NewDocument(&buf, int64(size))
		sec := doc.Store("s")
		res, err := st.StreamExport(ctx, req, countRows{sec, &counted})
		if err != nil {
			t.Fatalf("StreamExport under a %d-byte budget: %v", size, err)
		}
		if err := sec.End(); err != nil {
			t.Fatal(err)
		}
		if err := doc.Close(); err != nil {
			t.Fatal(err)
		}
		if counted != rows || res.Collections[0].Rows != int64(rows) || buf.Len() != size {
			t.Fatalf("streamed %d rows (receipt %d), %d bytes; want %d rows, %d bytes", counted, res.Collections[0].Rows, buf.Len(), rows, size)
		}
	})

	// Streamed to nowhere: the heap never holds the export, as it does when collected.
	held := peakHeap(func() {
		exp, _, err := s.Export(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(map[string]stores.Export{"s": exp})
		runtime.KeepAlive(raw)
	})
	flowing := peakHeap(func() {
		if _, err := st.StreamExport(ctx, req, stores.NewDocument(io.Discard, int64(size)).Store("s")); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("peak heap growth: collected export %d MiB, streamed %d MiB", held>>20, flowing>>20)
	// The streamed peak is the collector's pacing over the resolved keys and
	// one row's garbage (about a quarter of the collected peak here); half
	// leaves room for a noisy collector and still fails an export held whole.
	if flowing > held/2 {
		t.Errorf("the streamed export grew the heap by %d bytes, the collected one by %d: streaming holds the export", flowing, held)
	}

	// Refused under a small budget, before it costs what the whole export does.
	const limit = 256 << 10
	var err error
	refused := allocated(func() {
		_, err = st.StreamExport(ctx, req, stores.NewDocument(io.Discard, limit).Store("s"))
	})
	var tooLarge *stores.ExportTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Limit != limit || tooLarge.Reached > limit || tooLarge.Collection != "large_export" {
		t.Fatalf("StreamExport under a %d-byte budget: err = %v, want ErrExportTooLarge", limit, err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(tooLarge.Reached)) || !strings.Contains(msg, fmt.Sprint(limit)) || strings.Contains(msg, "pppp") {
		t.Errorf("the refusal %q does not name the size reached and the limit, or quotes a value", msg)
	}
	t.Logf("%d rows, %d bytes of JSON: whole export allocated %d MiB, streamed %d MiB, refused at %d KiB %d MiB",
		rows, size, whole>>20, streamed>>20, limit>>10, refused>>20)
	// What is left once refused is resolving the subject's keys and one
	// batch of rows: a quarter of the whole export's cost is far above it,
	// and far below what the old path allocated before it could refuse.
	if refused > whole/4 {
		t.Errorf("the refused export allocated %d bytes, more than a quarter of the whole export's %d: it did not stop at the budget", refused, whole)
	}
}

type countRows struct {
	w stores.ExportWriter
	n *int
}

func (c countRows) Row(collection string, row map[string]any) error {
	if err := c.w.Row(collection, row); err != nil {
		return err
	}
	*c.n++
	return nil
}

// peakHeap is how much f grows the heap in use at most, sampled every
// millisecond (and at the end).
func peakHeap(f func()) uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	var mu sync.Mutex
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapInuse)
		mu.Unlock()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	f()
	sample()
	close(done)
	wg.Wait()
	return peak - base
}
