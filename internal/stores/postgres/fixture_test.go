package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// The fixture: accounts own invoices, which own invoice lines (a three-level
// chain, two levels in a schema); accounts refer to the account that referred
// them (a self-reference, setNull); login events and a newsletter are found by
// identity only. The subject is account 1 (a_b@x.io); its look-alikes differ
// by one character, a LIKE wildcard, a quote, case, a trailing space, or are
// user 11 next to user 1.
const fixtureSQL = `
CREATE SCHEMA billing;
CREATE TABLE accounts (
	id          bigint PRIMARY KEY,
	email       text NOT NULL UNIQUE,
	name        text,
	phone       varchar(32),
	birth_date  date,
	avatar      bytea,
	referred_by bigint REFERENCES accounts (id),
	created_at  timestamptz NOT NULL DEFAULT '2020-01-01T00:00:00Z'
);
CREATE TABLE billing.invoices (
	id              bigint PRIMARY KEY,
	account_id      bigint NOT NULL REFERENCES accounts (id),
	billing_address text NOT NULL,
	amount          numeric(10,2) NOT NULL,
	issued_at       timestamptz NOT NULL
);
CREATE TABLE billing.invoice_lines (
	id          bigint PRIMARY KEY,
	invoice_id  bigint NOT NULL REFERENCES billing.invoices (id),
	description text NOT NULL
);
CREATE TABLE login_events (
	id      bigint PRIMARY KEY,
	user_id bigint NOT NULL,
	ip      text NOT NULL,
	at      timestamptz NOT NULL
);
CREATE TABLE newsletter (
	id      uuid PRIMARY KEY,
	email   text NOT NULL,
	user_id bigint
);
INSERT INTO accounts (id, email, name, phone, birth_date, avatar, referred_by) VALUES
	(1, 'a_b@x.io',      'Ada Subject', '+33 6 12 34 56 78', '1990-05-17', '\xdeadbeef', NULL),
	(2, 'axb@x.io',      'Look Alike',  '+33 6 00 00 00 02', '1985-01-02', NULL, 1),
	(3, 'a%b@x.io',      'Percent',     '+33 6 00 00 00 03', NULL, NULL, 1),
	(4, 'o''brien@x.io', 'Quote',       NULL, NULL, NULL, 2),
	(5, 'ünïcödé@x.io',  'Unicode',     NULL, NULL, NULL, NULL),
	(6, 'A_B@x.io',      'Upper',       NULL, NULL, NULL, NULL),
	(7, 'a_b@x.io ',     'Space',       NULL, NULL, NULL, NULL),
	(11, 'eleven@x.io',  'Eleven',      NULL, NULL, NULL, NULL);
INSERT INTO billing.invoices VALUES
	(10, 1, '1 Subject Street', 120.50, '2014-01-10T00:00:00Z'),
	(11, 1, '1 Subject Street', 99.99,  '2024-06-15T00:00:00Z'),
	(12, 2, '2 Other Street',   10.00,  '2024-01-01T00:00:00Z'),
	(13, 3, '3 Other Street',   20.00,  '2024-01-01T00:00:00Z'),
	(14, 11, '11 Other Street', 30.00,  '2014-01-01T00:00:00Z');
INSERT INTO billing.invoice_lines VALUES
	(100, 10, 'hosting'), (101, 10, 'database'), (102, 11, 'hosting'),
	(103, 12, 'hosting'), (104, 13, 'hosting'), (105, 14, 'hosting');
INSERT INTO login_events VALUES
	(1000, 1, '192.0.2.1', '2024-01-01T00:00:00Z'),
	(1001, 2, '192.0.2.2', '2024-01-01T00:00:00Z'),
	(1002, 1, '192.0.2.1', '2024-02-01T00:00:00Z'),
	(1003, 11, '192.0.2.11', '2024-01-01T00:00:00Z');
INSERT INTO newsletter VALUES
	('00000000-0000-4000-8000-000000000001', 'a_b@x.io', NULL),
	('00000000-0000-4000-8000-000000000002', 'axb@x.io', 2),
	('00000000-0000-4000-8000-000000000003', 'other@x.io', 1),
	('00000000-0000-4000-8000-000000000004', 'A_B@x.io', NULL);
`

var (
	testKey = []byte("lethe test masking key")
	subject = map[string]string{"email": "a_b@x.io", "userId": "1"}
)

// subjectRows are the fixture rows that belong to the subject, by table.
var subjectRowIDs = map[string][]string{
	"public.accounts":       {"1"},
	"billing.invoices":      {"10", "11"},
	"billing.invoice_lines": {"100", "101", "102"},
	"public.login_events":   {"1000", "1002"},
	"public.newsletter":     {"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000003"},
}

func ptr[T any](v T) *T { return &v }

// fixtureSpec maps the fixture; accounts are erased as given.
func fixtureSpec(accounts privacyv1.ErasureAction) privacyv1.DataStoreSpec {
	return privacyv1.DataStoreSpec{
		Engine: privacyv1.EnginePostgres,
		Collections: []privacyv1.Collection{
			{
				Name: "accounts", PrimaryKey: "id", OnErasure: accounts,
				Identity:   map[string]privacyv1.Identifier{"email": "email", "userId": "id"},
				References: []privacyv1.Reference{{Field: "referred_by", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}},
				Fields: []privacyv1.Field{
					{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}},
					{Name: "name", Category: "user.identity.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "phone", Category: "user.contact.phone", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskPartial, KeepLast: ptr(int32(2))}},
					{Name: "birth_date", Category: "user.identity.birthdate", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "year"}},
					{Name: "avatar", Category: "user.identity.avatar", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
				},
			},
			{
				Name: "invoices", Table: "billing.invoices", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
				Fields: []privacyv1.Field{
					{Name: "billing_address", Category: "user.billing.address", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "amount", Category: "user.billing.amount"},
					{Name: "issued_at", Category: "user.billing.date"},
				},
			},
			{
				Name: "invoice_lines", Table: "billing.invoice_lines", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "invoice_id", Collection: "invoices"}},
				Fields:     []privacyv1.Field{{Name: "description", Category: "user.billing.item"}},
			},
			{
				Name: "login_events", PrimaryKey: "id", OnErasure: privacyv1.ErasureRetain,
				RetainReason: "security logs are kept for a year (legitimate interest)",
				Identity:     map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields:       []privacyv1.Field{{Name: "ip", Category: "user.technical.ip"}},
			},
			{
				Name: "newsletter", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email", "userId": "user_id"},
				Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
			},
		},
	}
}

// fixture is a fresh database holding the fixture, with a Store on it and a
// connection to inspect it.
type fixture struct {
	store *Store
	conn  *pgx.Conn
}

func newFixture(t *testing.T, spec privacyv1.DataStoreSpec, extraSQL ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn := testdb.NewPostgres(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, sql := range append([]string{fixtureSQL}, extraSQL...) {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{store: newStore(t, dsn, spec, testKey), conn: conn}
}

func newStore(t *testing.T, dsn string, spec privacyv1.DataStoreSpec, key []byte) *Store {
	t.Helper()
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), dsn, m, key, testdb.Loopback, WithTimeouts(2*time.Second, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func erasureRequest(subject map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindErasure, Subject: subject, RequestID: "req-1"}
}

// snapshot is every row of every table, as JSON text by table and id.
type snapshot map[string]map[string]string

func (f *fixture) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	tables, err := f.conn.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema IN ('public', 'billing') AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(tables, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot{}
	for _, name := range names {
		snap[name] = map[string]string{}
		rows, err := f.conn.Query(ctx, "SELECT t.id::text, to_jsonb(t)::text FROM "+pgx.Identifier(strings.Split(name, ".")).Sanitize()+" t")
		if err != nil {
			t.Fatal(err)
		}
		var id, row string
		if _, err := pgx.ForEachRow(rows, []any{&id, &row}, func() error { snap[name][id] = row; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// changedRows lists, by table, the ids of rows deleted, added or changed.
func changedRows(before, after snapshot) map[string][]string {
	out := map[string][]string{}
	for table, rows := range before {
		for id, row := range rows {
			if after[table][id] != row {
				out[table] = append(out[table], id)
			}
		}
		for id := range after[table] {
			if _, ok := rows[id]; !ok {
				out[table] = append(out[table], id)
			}
		}
		slices.Sort(out[table])
	}
	return out
}

func (f *fixture) queryString(t *testing.T, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := f.conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// outcome renders results as "collection action rows" lines, the part of a
// receipt most assertions compare.
func outcome(res stores.Result) []string {
	var out []string
	for _, c := range res.Collections {
		out = append(out, fmt.Sprintf("%s %s %d", c.Collection, c.Action, c.Rows))
	}
	return out
}

func assertOutcome(t *testing.T, res stores.Result, want ...string) {
	t.Helper()
	if got := outcome(res); !slices.Equal(got, want) {
		t.Fatalf("outcome:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func fixtureMap(t *testing.T) *datamap.Map {
	t.Helper()
	m, err := datamap.Build(fixtureSpec(privacyv1.ErasureDelete))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
