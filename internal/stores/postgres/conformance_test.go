package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// variant is one way of declaring the fixture's identity columns.
type variant struct {
	name string
	// email is the type of the identity e-mail columns (and the text
	// reference to them); id the type of account and user ids.
	email, id string
	// setup runs before the schema: an extension, a collation.
	setup string
	// emailType is how Check describes the e-mail column's type.
	emailType string
}

// variants are the column types and collations identities are stored in.
// citext and the non-deterministic ICU collation compare case-insensitively:
// identities and text references are compared byte-wise after the column's
// own equality narrowed by its index, so erasing a_b@x.io never takes A_B@x.io.
var variants = []variant{
	{name: "text", email: "text", id: "bigint", emailType: "text"},
	{name: "citext", email: "citext", id: "bigint", emailType: "citext",
		setup: "CREATE EXTENSION IF NOT EXISTS citext"},
	{name: "icu-nondeterministic", email: "text COLLATE lethe_ci", id: "bigint", emailType: "text",
		setup: "CREATE COLLATION lethe_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"},
	{name: "uuid", email: "text", id: "uuid", emailType: "text"},
}

func TestMain(m *testing.M) {
	code := m.Run()
	testdb.DropReusedPostgres()
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	var suites []storetest.Suite
	for _, v := range variants {
		suites = append(suites, storetest.Suite{
			Name: "postgres/" + v.name,
			Open: v.open,

			UUIDKeys: v.id == "uuid",
			Texts: storetest.Texts{
				ColumnTypes: map[string]string{"accounts.email": v.emailType, "accounts.name": "text", "accounts.phone": "character varying(32)"},
				TooLong:     "value too long",
				BadDate:     "(SQLSTATE 22007)",
				LockTimeout: "lock timeout",
			},
		})
	}
	storetest.RunAll(t, suites...)
}

// schemaSQL is the fixture's schema; {email} and {id} are the variant's types.
const schemaSQL = `
CREATE SCHEMA billing;
CREATE TABLE accounts (
	id          {id} PRIMARY KEY,
	email       {email} NOT NULL UNIQUE,
	name        text,
	phone       varchar(32),
	birth_date  date,
	avatar      bytea,
	referred_by {id} REFERENCES accounts (id),
	created_at  timestamptz NOT NULL DEFAULT '2020-01-01T00:00:00Z'
);
CREATE TABLE billing.invoices (
	id              bigint PRIMARY KEY,
	account_id      {id} NOT NULL REFERENCES accounts (id),
	billing_address text NOT NULL,
	amount          numeric(10,2) NOT NULL,
	issued_at       timestamptz NOT NULL
);
CREATE TABLE billing.invoice_lines (
	id          bigint PRIMARY KEY,
	invoice_id  bigint NOT NULL REFERENCES billing.invoices (id),
	description text NOT NULL
);
CREATE TABLE login_events (id bigint PRIMARY KEY, user_id {id} NOT NULL, ip text NOT NULL, at timestamptz NOT NULL, via_proxy boolean);
CREATE INDEX ON login_events (user_id);
CREATE TABLE newsletter (id uuid PRIMARY KEY, email {email} NOT NULL, user_id {id});
CREATE TABLE devices (id bytea PRIMARY KEY, user_id {id} NOT NULL, label text);
CREATE TABLE device_tokens (id integer PRIMARY KEY, device_id bytea NOT NULL REFERENCES devices (id), token text NOT NULL);
CREATE TABLE tickets (id integer PRIMARY KEY, requester_email {email}, body text);
CREATE TABLE contacts (id integer PRIMARY KEY, email {email} NOT NULL, name text);
CREATE TABLE profiles (user_id {id} PRIMARY KEY, email text, phone varchar(32), name text, city text, age integer, nickname text, plan text);
CREATE TABLE orders (id integer PRIMARY KEY, user_id {id} NOT NULL, total numeric(10,2) NOT NULL, issued_at timestamptz);
CREATE TABLE subscribers (email text PRIMARY KEY, since timestamptz NOT NULL);
`

var extrasSQL = map[storetest.Extra]string{
	storetest.Payments: `CREATE TABLE payments (id bigint PRIMARY KEY, invoice_id bigint NOT NULL CONSTRAINT payments_invoice_fk REFERENCES billing.invoices (id));
		INSERT INTO payments VALUES (5000, 10);`,
	storetest.Notes:         `CREATE TABLE notes (id bigint PRIMARY KEY, account_id {id} CONSTRAINT notes_account_fk REFERENCES accounts (id) ON DELETE CASCADE);`,
	storetest.LoginEventsFK: `ALTER TABLE login_events ADD CONSTRAINT login_events_user_fk FOREIGN KEY (user_id) REFERENCES accounts (id);`,
}

// tables are the fixture's tables outside the public schema.
var tables = map[string]string{"invoices": "billing.invoices", "invoice_lines": "billing.invoice_lines"}

// harness is the fixture in a fresh database of the local server.
type harness struct {
	f     storetest.Fixture
	dsn   string
	conn  *pgx.Conn
	store stores.Store
	t     *testing.T
}

func (v variant) open(t *testing.T, f storetest.Fixture) storetest.Harness {
	t.Helper()
	ctx := context.Background()
	dsn := testdb.ReusedPostgres(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	h := &harness{f: f, dsn: dsn, conn: conn, t: t}
	if !f.Empty {
		types := strings.NewReplacer("{email}", v.email, "{id}", v.id)
		h.exec(t, v.setup)
		h.exec(t, types.Replace(schemaSQL))
		for _, ins := range f.Inserts(storetest.SQLDialect{
			Table:       func(c string) string { return pgx.Identifier(strings.Split(tableOf(c), ".")).Sanitize() },
			Quote:       func(n string) string { return pgx.Identifier{n}.Sanitize() },
			Placeholder: func(n int) string { return fmt.Sprintf("$%d", n) },
			Value:       h.value,
		}) {
			if _, err := conn.Exec(ctx, ins.SQL, ins.Args...); err != nil {
				t.Fatalf("%.60s...: %v", ins.SQL, err)
			}
		}
		for _, e := range f.Extras { // after the rows they refer to
			h.exec(t, types.Replace(extrasSQL[e]))
		}
	}
	h.store = h.Open(t, f.Spec(), storetest.MaskingKey)
	return h
}

func tableOf(collection string) string {
	if t, ok := tables[collection]; ok {
		return t
	}
	return collection
}

func (h *harness) exec(t storetest.T, sql string) {
	t.Helper()
	if sql == "" {
		return
	}
	if _, err := h.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// value is fixture data as pgx binds it: ids as integers or uuid text.
func (h *harness) value(v any) any {
	switch v := v.(type) {
	case storetest.ID:
		if h.f.UUIDKeys {
			return h.f.IDText(v)
		}
		return int64(v)
	case int:
		return int64(v)
	}
	return v
}

func (h *harness) Store() stores.Store { return h.store }

func (h *harness) Open(t storetest.T, spec privacyv1.DataStoreSpec, key []byte) stores.Store {
	t.Helper()
	spec.Engine = privacyv1.EnginePostgres
	for i := range spec.Collections {
		c := &spec.Collections[i]
		if table, ok := tables[string(c.Name)]; ok {
			c.Table = table
		}
	}
	return storetest.OpenStore(t, spec, func(m *datamap.Map) (stores.Store, error) {
		return New(context.Background(), h.dsn, m, key, testdb.Loopback, WithTimeouts(2*time.Second, 10*time.Second))
	})
}

// Snapshot reads every row of every table of the public and billing schemas
// but Lethe's journal (the journal scenarios read it through the store).
func (h *harness) Snapshot(t storetest.T) storetest.Snapshot {
	t.Helper()
	ctx := context.Background()
	rows, err := h.conn.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema IN ('public', 'billing') AND table_type = 'BASE TABLE' AND table_name <> $1`, sqlcore.DefaultJournalTable)
	if err != nil {
		t.Fatal(err)
	}
	var names [][2]string
	var schema, name string
	if _, err := pgx.ForEachRow(rows, []any{&schema, &name}, func() error { names = append(names, [2]string{schema, name}); return nil }); err != nil {
		t.Fatal(err)
	}
	snap := storetest.Snapshot{}
	for _, n := range names {
		table := map[string]storetest.Row{}
		snap[n[1]] = table
		pk := pgx.Identifier{h.f.PrimaryKey(n[1])}.Sanitize()
		rows, err := h.conn.Query(ctx, "SELECT t."+pk+"::text, to_jsonb(t)::text FROM "+pgx.Identifier{n[0], n[1]}.Sanitize()+" t")
		if err != nil {
			t.Fatal(err)
		}
		var key, doc string
		_, err = pgx.ForEachRow(rows, []any{&key, &doc}, func() error {
			row, err := jsonRow(doc)
			table[key] = row
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// jsonRow flattens a to_jsonb row: NULLs left out, everything else as text.
func jsonRow(doc string) (storetest.Row, error) {
	d := json.NewDecoder(strings.NewReader(doc))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	row := storetest.Row{}
	for k, v := range m {
		if v != nil {
			row[k] = fmt.Sprint(v)
		}
	}
	return row, nil
}

// Key renders keys as PostgreSQL casts them to text: bytea in hex (\x...).
func (h *harness) Key(_ string, key any) string {
	if b, ok := key.([]byte); ok {
		return `\x` + hex.EncodeToString(b)
	}
	return h.f.KeyText(key)
}

func (h *harness) MaskingRowKey(_, key string) string { return key }

// ExportRow: the engine exports JSON-friendly values already.
func (h *harness) ExportRow(_ string, row map[string]any) map[string]any { return row }

func (h *harness) DropColumn(t storetest.T, collection, column string) {
	h.exec(t, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", pgx.Identifier(strings.Split(tableOf(collection), ".")).Sanitize(), pgx.Identifier{column}.Sanitize()))
}

// Lock holds a row lock in another connection's transaction.
func (h *harness) Lock(t storetest.T, collection, key string) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sql := fmt.Sprintf("SELECT 1 FROM %s WHERE %s::text = $1 FOR UPDATE",
		pgx.Identifier(strings.Split(tableOf(collection), ".")).Sanitize(), pgx.Identifier{h.f.PrimaryKey(collection)}.Sanitize())
	if _, err := tx.Exec(ctx, sql, key); err != nil {
		t.Fatal(err)
	}
	release := func() {
		_ = tx.Rollback(ctx)
		_ = conn.Close(ctx)
	}
	h.t.Cleanup(release)
	return release
}

// Sabotage relies on the Payments extra: a payment refers to the subject's
// invoice 10 through a foreign key the map does not know.
func (h *harness) Sabotage(t storetest.T) (want, leaks []string) {
	if !h.f.Has(storetest.Payments) {
		t.Fatal("storetest: Sabotage needs the Payments extra")
	}
	return []string{`collection "invoices"`, "foreign key violation", "payments_invoice_fk"}, nil
}
