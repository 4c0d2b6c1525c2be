package storetest

import (
	"runtime"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
)

// largeSubjectRows is the size of the large subject's one collection: big
// enough that listing its keys in the manager would show in its allocations.
const largeSubjectRows = 200_000

// largeSubjectAllocBudget bounds what Plan, Apply and Verify of the large
// subject may allocate in the test process, each. Listing the subject's keys
// costs more than this in their text alone (200,000 keys of 7 digits, with
// 16-byte string headers: 4.6 MB), before the slices and sets holding them.
const largeSubjectAllocBudget = 2 << 20

// A subject with 200,000 rows in one leaf collection is planned, erased and
// verified exactly, bystanders untouched, and the manager never holds the
// rows' keys: what each call allocates stays below what the keys alone take.
func largeSubjectIsErasedByCondition(t T, e *env) {
	x := e.mustOpen(t, Fixture{LargeSubject: largeSubjectRows})
	req := erasure(x.subject())
	want := int64(largeSubjectRows + 2) // and tokens 500 and 502 of the same phone
	allocated := func(what string, call func() error) {
		t.Helper()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := call(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > largeSubjectAllocBudget {
			t.Errorf("%s of a %d-row subject allocated %d bytes, want at most %d: the rows' keys went through the manager", what, want, n, largeSubjectAllocBudget)
		} else {
			t.Logf("%s of a %d-row subject allocated %d bytes", what, want, n)
		}
	}
	var plan, res stores.Result
	allocated("Plan", func() (err error) { plan, err = x.Store().Plan(ctx, req); return err })
	if r := resultOf(t, plan, "device_tokens", stores.ActionDelete); r.Rows != want {
		t.Errorf("Plan would delete %d device tokens, want %d", r.Rows, want)
	}
	allocated("Apply", func() (err error) { res, err = x.Store().Apply(ctx, req); return err })
	if r := resultOf(t, res, "device_tokens", stores.ActionDelete); r.Rows != want {
		t.Errorf("Apply deleted %d device tokens, want %d", r.Rows, want)
	}
	if v, ok := x.Store().(stores.Verifier); ok {
		var left stores.Verification
		allocated("Verify", func() (err error) { left, err = v.Verify(ctx, req); return err })
		if l := left.Left(); len(l) > 0 {
			t.Errorf("Verify found rows left: %v", l)
		}
	}
	tokens := x.Snapshot(t)["device_tokens"]
	if len(tokens) != 2 || tokens[x.Key("device_tokens", 501)] == nil || tokens[x.Key("device_tokens", 503)] == nil {
		t.Errorf("device tokens left: %d, want the bystanders' 501 and 503 only", len(tokens))
	}
	again, err := x.Store().Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resultOf(t, again, "device_tokens", stores.ActionDelete); r.Rows != 0 {
		t.Errorf("applied again, the erasure deleted %d device tokens, want 0", r.Rows)
	}
}

// A collection opted into batched erasure loses the subject's rows a batch
// per transaction, each recorded in the journal: the totals count every row
// once, the bystanders keep theirs, and the store's one transaction finds
// nothing left there.
func batchedErasureDeletesInBoundedTransactions(t T, e *env) {
	const rows, batch = 2500, 1000
	x := e.mustOpen(t, Fixture{LargeSubject: rows})
	spec := x.f.Spec()
	for i := range spec.Collections {
		if spec.Collections[i].Name == "device_tokens" {
			spec.Collections[i].ErasureBatchSize = batch
		}
	}
	s := x.Open(t, spec, MaskingKey)
	req := erasure(x.subject())
	req.RequestID = "batched-" + RequestID
	res, err := s.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(rows + 2)
	if got := totalOf(res, "device_tokens", stores.ActionDelete); got != want {
		t.Errorf("totals: device_tokens delete %d, want %d", got, want)
	}
	if got := resultOf(t, res, "device_tokens", stores.ActionDelete).Rows; got != 0 {
		t.Errorf("the one transaction deleted %d device tokens, want 0: the batches took them all", got)
	}
	passes, err := s.(JournalReader).JournalRows(ctx, req.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	wantPasses := []string{"device_tokens delete 1000", "device_tokens delete 1000", "device_tokens delete 502"}
	if len(passes) != 4 || !slices.Equal(passes[:3], wantPasses) || !strings.Contains(passes[3], "devices delete 1") || strings.Contains(passes[3], "device_tokens") {
		t.Errorf("journal = %q, want three batches %q, then the one transaction without device tokens", passes, wantPasses)
	}
	tokens := x.Snapshot(t)["device_tokens"]
	if len(tokens) != 2 || tokens[x.Key("device_tokens", 501)] == nil || tokens[x.Key("device_tokens", 503)] == nil {
		t.Errorf("device tokens left: %d, want the bystanders' 501 and 503 only", len(tokens))
	}
	again, err := s.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := totalOf(again, "device_tokens", stores.ActionDelete); got != want {
		t.Errorf("applied again, totals: device_tokens delete %d, want %d still", got, want)
	}
}
