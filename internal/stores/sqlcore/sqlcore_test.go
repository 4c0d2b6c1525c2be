package sqlcore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

func TestCursorRoundTripsOnlyForItsCollectionAndSecret(t *testing.T) {
	secret := []byte("masking key")
	c, err := SealCursor(secret, "subscribers", "user7@x.io")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c, "user7") || !strings.HasPrefix(c, "c1.") {
		t.Fatalf("cursor %q shows its key or lacks its version", c)
	}
	if got := OpenCursor(secret, "subscribers", c); got != "user7@x.io" {
		t.Errorf("OpenCursor = %q", got)
	}
	for name, got := range map[string]string{
		"another collection": OpenCursor(secret, "accounts", c),
		"another secret":     OpenCursor([]byte("other"), "subscribers", c),
		"tampered":           OpenCursor(secret, "subscribers", c[:len(c)-2]+"AA"),
		"not a cursor":       OpenCursor(secret, "subscribers", "user7@x.io"),
	} {
		if got != "" {
			t.Errorf("%s: OpenCursor = %q, want a restart", name, got)
		}
	}
}

func TestErasureOfNarrowsDeleteToTheScope(t *testing.T) {
	c := &datamap.Collection{Name: "accounts", OnErasure: privacyv1.ErasureDelete, Fields: []datamap.Field{
		{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
		{Name: "plan", Category: "user.billing.plan"},
	}}
	if e, err := ErasureOf(c, datamap.Scope{}); err != nil || e.Action != stores.ActionDelete {
		t.Errorf("full scope: %+v, %v; want delete", e, err)
	}
	if e, err := ErasureOf(c, datamap.Scope{Categories: []string{"user.contact"}}); err != nil || e.Action != stores.ActionAnonymize || len(e.Fields) != 1 {
		t.Errorf("contact scope: %+v, %v; want anonymize email only", e, err)
	}
	if _, err := ErasureOf(c, datamap.Scope{Categories: []string{"user.billing"}}); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "(plan)") {
		t.Errorf("billing scope: %v; want ErrInvalid naming plan", err)
	}
}

func TestWithoutAndIntersectKeepOrder(t *testing.T) {
	keys := []string{"3", "1", "2"}
	if got := Without(keys, []string{"1"}); !slices.Equal(got, []string{"3", "2"}) {
		t.Errorf("Without = %v", got)
	}
	if got := Intersect(keys, []string{"2", "3", "9"}); !slices.Equal(got, []string{"3", "2"}) {
		t.Errorf("Intersect = %v", got)
	}
}

func TestSchemaCacheReadsAgainOnceWhenACachedSchemaFails(t *testing.T) {
	c := &SchemaCache[string]{TTL: time.Hour}
	old, fresh := "old", "fresh"
	c.Put(&old)
	var got []*string
	err := c.Do(func(cached *string) (*string, error) {
		got = append(got, cached)
		if cached != nil {
			return cached, fmt.Errorf("%w: undefined column", stores.ErrInvalid)
		}
		return &fresh, nil
	})
	if err != nil || len(got) != 2 || got[0] != &old || got[1] != nil {
		t.Fatalf("Do: %v, calls with %v; want the cached schema, then none", err, got)
	}
	if c.Get() != &fresh {
		t.Error("the fresh schema is not cached")
	}
	// Other failures, and failures on a fresh schema, are not retried.
	calls := 0
	_ = c.Do(func(cached *string) (*string, error) { calls++; return cached, stores.ErrUnavailable })
	c.Forget()
	_ = c.Do(func(*string) (*string, error) { calls++; return nil, stores.ErrInvalid })
	if calls != 2 {
		t.Errorf("%d calls, want 2", calls)
	}
	c.TTL = 0
	c.Put(&fresh)
	if c.Get() != nil {
		t.Error("a schema older than TTL is returned")
	}
}

// fakeFinder knows which child rows refer to which parent rows.
type fakeFinder struct{ parentOf map[string]string }

func (f fakeFinder) ChildrenOf(_ context.Context, _ *datamap.Edge, parentKeys, among []string) ([]string, error) {
	var out []string
	for _, k := range among {
		if slices.Contains(parentKeys, f.parentOf[k]) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (f fakeFinder) ParentsOf(_ context.Context, _ *datamap.Edge, childKeys, among []string) ([]string, error) {
	var out []string
	for _, k := range among {
		if slices.ContainsFunc(childKeys, func(c string) bool { return f.parentOf[c] == k }) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (fakeFinder) Exempted(context.Context, *datamap.Collection, stores.Exemption, []string) ([]string, Span, error) {
	return nil, Span{}, nil
}

// Rows held rows are found through keep what they are found by: an
// anonymized account its email (identity) and its handle only when held posts
// refer to it, a deleted order all of it.
func TestPlanErasureKeepsThePathsToHeldRows(t *testing.T) {
	mask := &privacyv1.Masking{Strategy: privacyv1.MaskRedact}
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres, Collections: []privacyv1.Collection{
		{Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize, Identity: map[string]privacyv1.Identifier{"email": "email"},
			Fields: []privacyv1.Field{{Name: "email", Category: "user.contact.email", Masking: mask},
				{Name: "name", Category: "user.name", Masking: mask}, {Name: "handle", Category: "user.handle", Masking: mask}}},
		{Name: "orders", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
			Fields: []privacyv1.Field{{Name: "address", Category: "user.address"}}},
		{Name: "lines", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "order_id", Collection: "orders"}}},
		{Name: "posts", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "author", Collection: "accounts", CollectionField: "handle"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *datamap.Collection { c, _ := m.Get(name); return c }
	rows := Rows{get("accounts"): {"1"}, get("orders"): {"10", "11"}, get("lines"): {"100", "110"}, get("posts"): {"7"}}
	f := fakeFinder{parentOf: map[string]string{"10": "1", "11": "1", "100": "10", "110": "11", "7": "1"}}
	req := stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": "a@x.io"},
		Holds: []stores.Hold{{Collection: "lines", Name: "h", Reason: "court"}}}

	plan, err := PlanErasure(context.Background(), m, rows, req, nil, f)
	if err != nil {
		t.Fatal(err)
	}
	accounts, orders := plan.Erasures[get("accounts")], plan.Erasures[get("orders")]
	if masks := accounts.Masks(); len(masks) != 2 || len(masks[0].Keys) != 0 ||
		!slices.Equal(masks[1].Keys, []string{"1"}) || len(masks[1].Fields) != 2 || masks[1].Fields[0].Name != "name" {
		t.Errorf("accounts masks %+v, want name and handle masked in account 1", masks)
	}
	if !strings.Contains(accounts.PathReason, "email left unmasked in 1 row until the hold ends: legal hold h: court (the held rows of orders are found through them)") {
		t.Errorf("accounts reason %q", accounts.PathReason)
	}
	if len(orders.Keys) != 0 || len(plan.Kept[get("orders")]) != 1 || plan.Kept[get("orders")][0].Leads != "lines" {
		t.Errorf("orders: erased %v, kept %+v; want both kept for lines", orders.Keys, plan.Kept[get("orders")])
	}
	if got := plan.Erasures[get("posts")].Keys; !slices.Equal(got, []string{"7"}) {
		t.Errorf("posts erased %v, want 7 (not held)", got)
	}

	// Held posts refer to the account's handle.
	req.Holds = append(req.Holds, stores.Hold{Collection: "posts", Name: "p", Reason: "press"})
	if plan, err = PlanErasure(context.Background(), m, rows, req, nil, f); err != nil {
		t.Fatal(err)
	}
	if got := plan.Erasures[get("accounts")].PathReason; !strings.HasPrefix(got, "email, handle left unmasked") {
		t.Errorf("accounts reason with held posts: %q", got)
	}

	// Without a hold nothing is kept.
	req.Holds = nil
	if plan, err = PlanErasure(context.Background(), m, rows, req, nil, f); err != nil {
		t.Fatal(err)
	}
	if masks := plan.Erasures[get("accounts")].Masks(); len(masks) != 1 || len(masks[0].Fields) != 3 {
		t.Errorf("accounts masks without a hold: %+v", masks)
	}
}

// edgeFinder knows, per reference (child collection and field), which child
// rows refer to which parent rows; rows of exempted are exempted.
type edgeFinder struct {
	parentOf map[string]string // "collection.field:key" -> parent key
	exempted []string
}

func (f edgeFinder) parent(e *datamap.Edge, child string) string {
	return f.parentOf[e.Child.Name+"."+e.ChildField+":"+child]
}

func (f edgeFinder) ChildrenOf(_ context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error) {
	var out []string
	for _, k := range among {
		if p := f.parent(e, k); p != "" && slices.Contains(parentKeys, p) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (f edgeFinder) ParentsOf(_ context.Context, e *datamap.Edge, childKeys, among []string) ([]string, error) {
	var out []string
	for _, k := range among {
		if slices.ContainsFunc(childKeys, func(c string) bool { return f.parent(e, c) == k }) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (f edgeFinder) Exempted(_ context.Context, _ *datamap.Collection, _ stores.Exemption, among []string) ([]string, Span, error) {
	return Intersect(among, f.exempted), Span{}, nil
}

// A sweep of accounts: a held line keeps its invoice and account 2 with all
// below it, project P among them; line 100, below project P and invoice 10,
// then keeps invoice 10 and account 1 too. Without the hold, everything is
// erased as mapped: notes anonymized, the rest deleted, and a self-reference
// among the batch's rows unlinked first.
func TestPlanSweepBatchKeepsEveryParentOfAKeptRow(t *testing.T) {
	mask := &privacyv1.Masking{Strategy: privacyv1.MaskRedact}
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres, Collections: []privacyv1.Collection{
		{Name: "accounts", PrimaryKey: "id", Identity: map[string]privacyv1.Identifier{"userId": "id"},
			References: []privacyv1.Reference{{Field: "referred_by", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}}},
		{Name: "invoices", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}}},
		{Name: "projects", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}}},
		{Name: "lines", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "invoice_id", Collection: "invoices"}, {Field: "project_id", Collection: "projects"}}},
		{Name: "notes", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize, References: []privacyv1.Reference{{Field: "invoice_id", Collection: "invoices"}},
			Fields: []privacyv1.Field{{Name: "body", Category: "customer.content", Masking: mask}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *datamap.Collection { c, _ := m.Get(name); return c }
	rows := Rows{get("accounts"): {"1", "2", "3"}, get("invoices"): {"10", "20"}, get("projects"): {"P"},
		get("lines"): {"100", "200"}, get("notes"): {"n10"}}
	f := edgeFinder{parentOf: map[string]string{
		"invoices.account_id:10": "1", "invoices.account_id:20": "2", "projects.account_id:P": "2",
		"lines.invoice_id:100": "10", "lines.project_id:100": "P", "lines.invoice_id:200": "20", "notes.invoice_id:n10": "10",
	}}
	sw := Sweep{C: get("accounts"), Rule: stores.SweepRule{Collection: "accounts", HeldChildKeys: map[string][]string{"lines": {"200"}}}}

	plan, err := PlanSweepBatch(context.Background(), m, sw, rows, f)
	if err != nil {
		t.Fatal(err)
	}
	want := []stores.CollectionResult{{Collection: "accounts", Action: stores.ActionRetain, Rows: 2, Reason: "kept: lines below are on legal hold"}}
	if !reflect.DeepEqual(plan.Kept, want) {
		t.Errorf("kept %+v, want %+v", plan.Kept, want)
	}
	for name, keys := range map[string][]string{"accounts": {"3"}, "invoices": nil, "projects": nil, "lines": nil, "notes": nil} {
		if got := plan.Erasure.Erasures[get(name)].Keys; !slices.Equal(got, keys) {
			t.Errorf("%s erased %v, want %v", name, got, keys)
		}
	}
	if got := plan.SparedFrom(get("accounts").Referrers[0]); !slices.Contains(got, "1") || !slices.Contains(got, "3") || slices.Contains(got, "4") {
		t.Errorf("accounts spared from clearing %v, want the kept 1 and 2 and the deleted 3", got)
	}

	// With line 100 below invoice 10 only, an exempted note keeps invoice 10
	// and account 1 only.
	sw.Rule.HeldChildKeys = nil
	delete(f.parentOf, "lines.project_id:100")
	f.exempted = []string{"n10"}
	sw.Rule.Exemptions = []stores.Exemption{{Collection: "notes", Rule: "r", LegalBasis: "law", Period: "1y"}}
	if plan, err = PlanSweepBatch(context.Background(), m, sw, rows, f); err != nil {
		t.Fatal(err)
	}
	if len(plan.Kept) != 1 || plan.Kept[0].Rows != 1 || plan.Kept[0].Reason != "kept: notes below are kept by retention rule r (legal basis: law) for 1y" {
		t.Errorf("kept %+v, want account 1 for the exempted note", plan.Kept)
	}
	if got := plan.Erasure.Erasures[get("lines")].Keys; !slices.Equal(got, []string{"200"}) {
		t.Errorf("lines erased %v, want 200 (not 100, below invoice 10)", got)
	}
	if got := plan.Erasure.Erasures[get("projects")].Keys; !slices.Equal(got, []string{"P"}) {
		t.Errorf("projects erased %v, want P", got)
	}

	// Nothing held or exempted: the map's actions, and the batch's own referrals unlinked first.
	sw.Rule.Exemptions = nil
	if plan, err = PlanSweepBatch(context.Background(), m, sw, rows, f); err != nil {
		t.Fatal(err)
	}
	if len(plan.Kept) != 0 {
		t.Errorf("kept %+v, want none", plan.Kept)
	}
	if e := plan.Erasure.Erasures[get("notes")]; e.Action != stores.ActionAnonymize || len(e.Fields) != 1 || !slices.Equal(e.Keys, []string{"n10"}) {
		t.Errorf("notes: %+v, want note n10 anonymized, customer content included", e)
	}
	if e := plan.Erasure.Erasures[get("accounts")]; e.Action != stores.ActionDelete || !slices.Equal(e.Keys, []string{"1", "2", "3"}) {
		t.Errorf("accounts: %+v, want all three deleted", e)
	}
	if u := plan.Unlinks(); len(u) != 1 || u[0].Ref.Child.Name != "accounts" || !slices.Equal(u[0].Keys, []string{"1", "2", "3"}) {
		t.Errorf("unlinks %+v, want the self-reference in the three deleted accounts", u)
	}
}

// A sweep that follows the map spends its batch budget on the rows below
// too: after a batch found six rows below each of its own, the next picks a
// seventh of the batch size, and never fewer than one row nor more than the
// batch size.
func TestSweepBatchesCountTheRowsBelow(t *testing.T) {
	var f fanouts
	if n := f.rowsToPick("orders", 5000); n != probeRows {
		t.Errorf("first batch picks %d rows, want a probe of %d", n, probeRows)
	}
	if n := f.rowsToPick("orders", 10); n != 10 {
		t.Errorf("first batch of 10 picks %d rows, want 10", n)
	}
	f.observe("orders", stores.SweepBatch{Rows: 900, Kept: []stores.CollectionResult{{Rows: 100}},
		Children: []stores.CollectionResult{{Collection: "order_lines", Rows: 2000}, {Collection: "line_taxes", Rows: 4000}}})
	if n := f.rowsToPick("orders", 5000); n != 714 {
		t.Errorf("after a batch with 6 rows below each, a batch picks %d rows, want 714 (5000/7)", n)
	}
	if n := f.rowsToPick("invoices", 5000); n != probeRows {
		t.Errorf("another collection picks %d rows, want the probe: its fanout is its own", n)
	}
	f.observe("orders", stores.SweepBatch{Rows: 1, Children: []stores.CollectionResult{{Rows: 1_000_000}}})
	if n := f.rowsToPick("orders", 5000); n != 1 {
		t.Errorf("with a million rows below one, a batch picks %d rows, want 1", n)
	}
	f.observe("orders", stores.SweepBatch{}) // an empty batch tells nothing
	if n := f.rowsToPick("orders", 5000); n != 1 {
		t.Errorf("an empty batch changed the fanout: %d rows picked, want 1", n)
	}
}
