package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// collection returns the collection named name of spec, failing when there is none.
func collection(t T, spec *privacyv1.DataStoreSpec, name string) *privacyv1.Collection {
	t.Helper()
	for i := range spec.Collections {
		if spec.Collections[i].Name == privacyv1.Identifier(name) {
			return &spec.Collections[i]
		}
	}
	t.Fatalf("storetest: no collection %s in the spec", name)
	return nil
}

// The fixture as mapped fits the store: no problem, and only the warnings
// the engine declares.
func checkAcceptsTheFixture(t T, e *env) {
	for _, accounts := range []privacyv1.ErasureAction{privacyv1.ErasureDelete, privacyv1.ErasureAnonymize} {
		x := e.mustOpen(t, Fixture{Accounts: accounts})
		res, err := x.Store().Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := x.suite.Texts.FixtureWarnings
		ok := len(res.Warnings) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = strings.HasPrefix(res.Warnings[i], want[i])
		}
		if len(res.Problems) > 0 || !ok {
			t.Errorf("accounts %s: Check() = %+v, want no problem and the warnings %q", accounts, res, want)
		}
	}
}

// Keyed strategies without a key are problems, one per field, not unkeyed digests.
func checkWantsAMaskingKey(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	spec := x.f.Spec()
	var want []string
	for _, c := range spec.Collections {
		for _, f := range c.Fields {
			if f.Masking != nil && masking.NeedsKey(f.Masking) {
				want = append(want, fmt.Sprintf("%s.%s", c.Name, f.Name))
			}
		}
	}
	res, err := x.Open(t, spec, nil).Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.Collection+"."+p.Field)
		if !strings.Contains(p.Problem, "maskingKeySecretRef") {
			t.Errorf("problem %+v does not say to set maskingKeySecretRef", p)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Check() problems on %v, want one per keyed strategy: %v", got, want)
	}
}

// Check reports each mismatch with its collection and field, what is wrong
// and how to fix it; Plan and Apply then refuse to run, changing nothing.
func checkReportsDriftPrecisely(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	spec := x.f.Spec()
	accounts := collection(t, &spec, "accounts")
	accounts.OnErasure = privacyv1.ErasureAnonymize
	accounts.Fields[0].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskNullify}                             // email is NOT NULL
	accounts.Fields[1].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize}                          // name is text
	accounts.Fields[2].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskHash}                                // phone is varchar(32)
	accounts.Fields = append(accounts.Fields, privacyv1.Field{Name: "nickname", Category: "user.identity.name"}) // no such column
	collection(t, &spec, "login_events").References = []privacyv1.Reference{{Field: "user_id", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}}
	collection(t, &spec, "newsletter").Identity["email"] = "mail"
	spec.Collections = append(spec.Collections, privacyv1.Collection{
		Name: "ghosts", PrimaryKey: "id", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
	})
	s := x.Open(t, spec, MaskingKey)
	res, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := x.suite.Texts.ColumnTypes
	want := []struct{ collection, field, text string }{
		{"accounts", "nickname", `mapped field "nickname" does not exist in table accounts; add the column or correct the data map`},
		{"accounts", "email", fmt.Sprintf(`masking nullify cannot apply to column "email" (%s, NOT NULL, UNIQUE): the column is NOT NULL`, types["accounts.email"])},
		{"accounts", "name", fmt.Sprintf(`masking generalize cannot apply to column "name" (%s): it coarsens dates, timestamps and numbers but the column holds text values`, types["accounts.name"])},
		{"accounts", "phone", fmt.Sprintf(`masking hash cannot apply to column "phone" (%s): it writes 64 characters but the column holds at most 32`, types["accounts.phone"])},
		{"login_events", "user_id", "onParentErasure setNull clears this column when a accounts row is erased, but it is NOT NULL"},
		{"newsletter", "mail", `identity column (identity type email) "mail" does not exist in table newsletter`},
		{"ghosts", "", "table ghosts does not exist"},
	}
	if len(res.Problems) != len(want) {
		t.Errorf("Check() found %d problems, want %d: %+v", len(res.Problems), len(want), res.Problems)
	}
	for _, w := range want {
		if !slices.ContainsFunc(res.Problems, func(p stores.SchemaProblem) bool {
			return p.Collection == w.collection && p.Field == w.field && strings.Contains(p.Problem, w.text)
		}) {
			t.Errorf("no problem %s.%s: %q in %+v", w.collection, w.field, w.text, res.Problems)
		}
	}
	before := x.Snapshot(t)
	if _, err := s.Plan(ctx, erasure(x.subject())); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "nickname") {
		t.Errorf("Plan() on a drifted schema: error = %v, want ErrInvalid naming the problem", err)
	}
	if _, err := s.Apply(ctx, erasure(x.subject())); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "nickname") {
		t.Errorf("Apply() on a drifted schema: error = %v, want ErrInvalid naming the problem", err)
	}
	unchanged(t, "a request on a drifted schema", before, x.Snapshot(t))
}

// Foreign keys the map does not account for are warnings: an unmapped table
// blocking a delete, one cascading into rows no plan counts, and a retained
// collection blocking its parent's delete.
func checkWarnsAboutForeignKeys(t T, e *env) {
	x := e.mustOpen(t, Fixture{Extras: []Extra{Payments, Notes, LoginEventsFK}})
	spec := x.f.Spec()
	collection(t, &spec, "login_events").References = []privacyv1.Reference{{Field: "user_id", Collection: "accounts"}}
	res, err := x.Open(t, spec, MaskingKey).Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %+v", res.Problems)
	}
	want := []string{
		"collection login_events keeps its rows on erasure (onErasure retain) but its foreign key login_events_user_fk to accounts",
		"foreign key notes_account_fk on notes(account_id) refers to collection accounts with ON DELETE CASCADE",
		"foreign key payments_invoice_fk on payments(invoice_id) refers to collection invoices, whose onErasure is delete, but the data map does not declare it",
	}
	if len(res.Warnings) != len(want) {
		t.Fatalf("warnings = %q, want %d", res.Warnings, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(res.Warnings[i], w) {
			t.Errorf("warning %d = %q, want it to start with %q", i, res.Warnings[i], w)
		}
	}
}

// The live schema is cached between requests and sweep batches; a column
// dropped after it was cached fails the statement, and the call then reads
// the schema again and reports the drift precisely, changing nothing.
func driftAfterTheSchemaWasCached(t T, e *env) {
	x := e.mustOpen(t, Fixture{Accounts: privacyv1.ErasureAnonymize})
	sh, ok := x.Harness.(SchemaHarness)
	if !ok {
		t.Fatalf("storetest: %s has Schema but its harness is no SchemaHarness", x.suite.Name)
	}
	if _, err := x.Store().Plan(ctx, erasure(x.subject())); err != nil {
		t.Fatal(err)
	}
	sh.DropColumn(t, "accounts", "phone")
	before := x.Snapshot(t)
	_, err := x.Store().Apply(ctx, erasure(x.subject()))
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `the schema does not match the data map: collection "accounts" field "phone"`) {
		t.Fatalf("Apply after the drift: %v, want the drift reported", err)
	}
	if sw, ok := x.Store().(stores.Sweeper); ok && x.suite.supports(Sweeps) {
		rule := stores.SweepRule{Collection: "accounts", Field: "created_at", Cutoff: sweepCutoff, Action: stores.ActionAnonymize}
		if _, err := sw.SweepBatch(ctx, rule, ""); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `field "phone"`) {
			t.Fatalf("SweepBatch after the drift: %v, want the drift reported", err)
		}
	}
	unchanged(t, "a request on a drifted schema", before, x.Snapshot(t))
}

// A store on a database without the mapped tables refuses requests, saying so.
func emptyDatabaseIsReportedAsDrift(t T, e *env) {
	x := e.mustOpen(t, Fixture{Empty: true})
	if _, err := x.Store().Plan(ctx, erasure(x.subject())); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "table accounts does not exist") {
		t.Errorf("Plan() on an empty database: error = %v, want ErrInvalid about missing tables", err)
	}
}
