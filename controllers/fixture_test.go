package controllers_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// The fixture models the demo privacy policy: accounts (anonymized, because
// retained invoices refer to them), billing profiles (deleted), invoices
// (retained: accounting law) with invoice lines (three-level chain), access logs
// (deleted), a self-reference (referrals) and customer applications that must
// never be touched. Subjects include look-alikes: a_b@x.io vs axb@x.io.
const fixtureSchema = `
CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text,
  phone text,
  referred_by bigint REFERENCES accounts(id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE billing_profiles (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  vat_number text,
  address text
);
CREATE TABLE invoices (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  issued_at timestamptz NOT NULL,
  billing_address text
);
CREATE TABLE invoice_lines (
  id bigint PRIMARY KEY,
  invoice_id bigint NOT NULL REFERENCES invoices(id),
  description text,
  amount numeric(10,2)
);
CREATE TABLE access_logs (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  ip text,
  user_agent text,
  at timestamptz NOT NULL
);
CREATE TABLE applications (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  source_repo text
);
`

// subjects: id, email. 2 and 3 are look-alikes of 1 under LIKE; 4 has quotes and %.
var fixtureAccounts = []struct {
	id    int
	email string
}{
	{1, "a_b@x.io"},
	{2, "axb@x.io"},
	{3, "A_B@x.io"},
	{4, `o'brien%"x"@x.io`},
	{5, "zoë@x.io"},
}

func seedFixture(t *testing.T, db *sql.DB) {
	t.Helper()
	exec(t, db, fixtureSchema)
	for _, a := range fixtureAccounts {
		var referrer any
		if a.id > 1 {
			referrer = 1 // everyone was referred by subject 1
		}
		exec(t, db, `INSERT INTO accounts (id, email, name, phone, referred_by) VALUES ($1, $2, $3, $4, $5)`,
			a.id, a.email, "Name "+a.email, "+33 6 00 00 00 0"+string(rune('0'+a.id)), referrer)
		exec(t, db, `INSERT INTO billing_profiles VALUES ($1::bigint, $1::bigint, 'FR000'||$1::text, 'Strasbourg '||$1::text)`, a.id)
		for i := 0; i < 2; i++ {
			inv := a.id*10 + i
			issued := time.Now().AddDate(-i*12, 0, 0) // one recent, one 12 years old
			exec(t, db, `INSERT INTO invoices VALUES ($1, $2::bigint, $3, 'Street '||$2::text)`, inv, a.id, issued)
			exec(t, db, `INSERT INTO invoice_lines VALUES ($1::bigint, $1::bigint, 'hosting', 10.5), ($1::bigint+1000, $1::bigint, 'support', 2)`, inv)
		}
		exec(t, db, `INSERT INTO access_logs SELECT g, $1::bigint, '10.0.0.'||$1::text, 'Firefox', now() FROM generate_series($1::bigint*100, $1::bigint*100+2) g`, a.id)
		exec(t, db, `INSERT INTO applications VALUES ($1::bigint, $1::bigint, 'git@example.com:app'||$1::text)`, a.id)
	}
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// fixtureStore maps the fixture.
func fixtureStore(ns, name, secretName string) *privacyv1.DataStore {
	return &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataStoreSpec{
			Engine:              privacyv1.EnginePostgres,
			Connection:          privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: secretName, Key: "dsn"}},
			MaskingKeySecretRef: &privacyv1.SecretKeySelector{Name: secretName, Key: "maskingKey"},
			Collections: []privacyv1.Collection{
				{
					Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize,
					Identity:   map[string]privacyv1.Identifier{"email": "email", "userId": "id"},
					References: []privacyv1.Reference{{Field: "referred_by", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}},
					Fields: []privacyv1.Field{
						{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}},
						{Name: "name", Category: "user.contact.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
						{Name: "phone", Category: "user.contact.phone", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
					},
				},
				{
					Name: "billing_profiles", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields: []privacyv1.Field{
						{Name: "vat_number", Category: "user.billing.tax_id"},
						{Name: "address", Category: "user.billing.address"},
					},
				},
				{
					Name: "invoices", PrimaryKey: "id", OnErasure: privacyv1.ErasureRetain, RetainReason: "invoices are kept 10 years for accounting (Code de commerce L123-22)",
					References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields:     []privacyv1.Field{{Name: "billing_address", Category: "user.billing.address"}},
				},
				{
					Name: "invoice_lines", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize,
					References: []privacyv1.Reference{{Field: "invoice_id", Collection: "invoices"}},
					Fields: []privacyv1.Field{
						{Name: "description", Category: "user.billing.details", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					},
				},
				{
					Name: "access_logs", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields: []privacyv1.Field{
						{Name: "ip", Category: "user.tracking.ip"},
						{Name: "user_agent", Category: "user.tracking.browser"},
					},
				},
				{
					Name: "applications", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields:     []privacyv1.Field{{Name: "source_repo", Category: "customer.content"}},
				},
			},
		},
	}
}

// fixtureDB creates a fresh database with the fixture and returns it and its DSN.
func fixtureDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := testdb.NewPostgres(t)
	db := openDB(t, dsn)
	seedFixture(t, db)
	return db, dsn
}

// fingerprint digests every row of table whose id is not in except, so a test
// can prove that no other row changed.
func fingerprint(t *testing.T, db *sql.DB, table string, exceptIDs ...int) string {
	t.Helper()
	if exceptIDs == nil {
		exceptIDs = []int{}
	}
	var fp sql.NullString
	q := `SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM ` + pgx.Identifier{table}.Sanitize() + ` t WHERE NOT (id = ANY($1))`
	if err := db.QueryRow(q, exceptIDs).Scan(&fp); err != nil {
		t.Fatalf("fingerprint %s: %v", table, err)
	}
	return fp.String
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
