package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestCheckAcceptsTheFixture(t *testing.T) {
	for _, accounts := range []privacyv1.ErasureAction{privacyv1.ErasureDelete, privacyv1.ErasureAnonymize} {
		f := newFixture(t, fixtureSpec(accounts))
		res, err := f.store.Check(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Problems) > 0 || len(res.Warnings) > 0 {
			t.Fatalf("accounts %s: Check() = %+v, want no problem or warning", accounts, res)
		}
	}
}

// Check reports each mismatch with its collection and field, what is wrong and
// how to fix it; Plan then refuses to run.
func TestCheckReportsProblemsPrecisely(t *testing.T) {
	spec := fixtureSpec(privacyv1.ErasureAnonymize)
	accounts := &spec.Collections[0]
	accounts.Fields[0].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskNullify}                             // email is NOT NULL
	accounts.Fields[1].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize}                          // name is text
	accounts.Fields[2].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskHash}                                // phone is varchar(32)
	accounts.Fields = append(accounts.Fields, privacyv1.Field{Name: "nickname", Category: "user.identity.name"}) // no such column
	spec.Collections[3].References = []privacyv1.Reference{{Field: "user_id", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}}
	spec.Collections[4].Identity["email"] = "mail"
	spec.Collections = append(spec.Collections, privacyv1.Collection{
		Name: "ghosts", PrimaryKey: "id", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
	})
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	s := newStore(t, f.conn.Config().ConnString(), spec, nil)

	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ collection, field, text string }{
		{"accounts", "nickname", `mapped field "nickname" does not exist in table accounts; add the column or correct the data map`},
		{"accounts", "email", `masking nullify cannot apply to column "email" (text, NOT NULL, UNIQUE): the column is NOT NULL`},
		{"accounts", "name", `masking generalize cannot apply to column "name" (text): it coarsens dates, timestamps and numbers but the column holds text values`},
		{"accounts", "phone", `masking hash cannot apply to column "phone" (character varying(32)): it writes 64 characters but the column holds at most 32`},
		{"login_events", "user_id", "onParentErasure setNull clears this column when a accounts row is erased, but it is NOT NULL"},
		{"newsletter", "mail", `identity column (identity type email) "mail" does not exist in table newsletter`},
		{"ghosts", "", "table ghosts does not exist"},
	}
	if len(res.Problems) != len(want) {
		t.Errorf("Check() found %d problems, want %d: %+v", len(res.Problems), len(want), res.Problems)
	}
	for _, w := range want {
		found := false
		for _, p := range res.Problems {
			found = found || (p.Collection == w.collection && p.Field == w.field && strings.Contains(p.Problem, w.text))
		}
		if !found {
			t.Errorf("no problem %s.%s: %q in %+v", w.collection, w.field, w.text, res.Problems)
		}
	}

	_, err = s.Plan(context.Background(), erasureRequest(subject))
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "nickname") {
		t.Fatalf("Plan() on a drifted schema: error = %v, want ErrInvalid naming the problem", err)
	}
}

// Keyed strategies without a key are a problem, not an unkeyed digest.
func TestCheckWantsAMaskingKey(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureAnonymize))
	s := newStore(t, f.conn.Config().ConnString(), fixtureSpec(privacyv1.ErasureAnonymize), nil)
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 1 || res.Problems[0].Field != "email" || !strings.Contains(res.Problems[0].Problem, "maskingKeySecretRef") {
		t.Fatalf("Check() problems = %+v, want one about email's masking key", res.Problems)
	}
}

// Foreign keys the map does not account for are warnings: an unmapped table
// blocking a delete, one cascading into rows no plan counts, and a retained
// collection blocking its parent's delete.
func TestCheckWarnsAboutForeignKeysThatBreakErasure(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete), `
		CREATE TABLE payments (id bigint PRIMARY KEY, invoice_id bigint REFERENCES billing.invoices (id));
		CREATE TABLE notes (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts (id) ON DELETE CASCADE);
		ALTER TABLE login_events ADD CONSTRAINT login_events_user_fkey FOREIGN KEY (user_id) REFERENCES accounts (id);`)
	spec := fixtureSpec(privacyv1.ErasureDelete)
	spec.Collections[3].References = []privacyv1.Reference{{Field: "user_id", Collection: "accounts"}}
	s := newStore(t, f.conn.Config().ConnString(), spec, testKey)

	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %+v", res.Problems)
	}
	want := []string{
		"collection login_events keeps its rows on erasure (onErasure retain) but its foreign key login_events_user_fkey to accounts",
		"foreign key notes_account_id_fkey on notes(account_id) refers to collection accounts with ON DELETE CASCADE",
		"foreign key payments_invoice_id_fkey on payments(invoice_id) refers to collection invoices, whose onErasure is delete, but the data map does not declare it",
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

// Requests that cannot be carried out safely are refused before any query:
// the store is closed, so a query would fail differently.
func TestRequestsRefusedBeforeAnyQuery(t *testing.T) {
	f := newFixture(t, fixtureSpec(privacyv1.ErasureDelete))
	s := newStore(t, f.conn.Config().ConnString(), fixtureSpec(privacyv1.ErasureDelete), testKey)
	s.Close()
	tests := []struct {
		name string
		req  stores.Request
		want string
	}{
		{"empty identity", erasureRequest(map[string]string{"email": " \t", "userId": "1"}), "identity email has an empty value"},
		{"no identity", erasureRequest(nil), "no subject identity"},
		{"unmapped identities", erasureRequest(map[string]string{"stripeId": "cus_123"}), "none of the subject's identity types (stripeId) is mapped in this store, which knows email, userId"},
		{"rectification without values", stores.Request{Kind: stores.KindRectification, Subject: subject}, "needs values"},
		{"unknown held collection", stores.Request{Kind: stores.KindErasure, Subject: subject, Holds: []stores.Hold{{Collection: "nope", Name: "h"}}}, `collection "nope"`},
		{"access applied", stores.Request{Kind: stores.KindAccess, Subject: subject}, "exported, not applied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Apply(context.Background(), tt.req)
			if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply() error = %v, want ErrInvalid containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "cus_123") {
				t.Fatalf("error %q repeats an identity value", err)
			}
		})
	}
}

func TestNewClassifiesConnectionErrors(t *testing.T) {
	m := fixtureMap(t)
	if _, err := New(context.Background(), "postgres://user:secret@%zz", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrInvalid) || strings.Contains(err.Error(), "secret") {
		t.Errorf("New(bad DSN) error = %v, want ErrInvalid without the password", err)
	}
	if _, err := New(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrUnavailable) {
		t.Errorf("New(closed port) error = %v, want ErrUnavailable", err)
	}
	dsn := testdb.NewPostgres(t)
	s, err := New(context.Background(), dsn, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Plan(context.Background(), erasureRequest(subject)); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "table accounts does not exist") {
		t.Errorf("Plan() on an empty database: error = %v, want ErrInvalid about missing tables", err)
	}
}
