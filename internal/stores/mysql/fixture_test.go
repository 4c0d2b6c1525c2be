package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// The fixture, in MariaDB's default collations (utf8mb4_general_ci, and
// latin1_swedish_ci for leads): accounts own invoices, which own invoice lines
// (a three-level chain; invoices are mapped database-qualified); accounts refer
// to the account that referred them (a self-reference, setNull); tickets refer
// to accounts by e-mail (a text reference to a column other than the key);
// devices have binary keys their tokens refer to; login events, the
// newsletter and leads are found by identity only. The subject is account 1
// (a_b@x.io, user 1). Its look-alikes differ by one character, a LIKE
// wildcard, a glob, a quote, case, an accent or a trailing space (all equal
// to a_b@x.io under the collations), or are user 11 next to user 1.
var fixtureSQL = []string{
	`CREATE TABLE accounts (
		id          BIGINT PRIMARY KEY,
		email       VARCHAR(255) NOT NULL UNIQUE,
		name        VARCHAR(255),
		phone       VARCHAR(32),
		birth_date  DATE,
		avatar      VARBINARY(64),
		referred_by BIGINT,
		created_at  TIMESTAMP NOT NULL DEFAULT '2020-01-01 00:00:00',
		CONSTRAINT accounts_referred_by_fk FOREIGN KEY (referred_by) REFERENCES accounts (id)
	)`,
	`CREATE TABLE invoices (
		id              BIGINT PRIMARY KEY,
		account_id      BIGINT NOT NULL,
		billing_address VARCHAR(255) NOT NULL,
		amount          DECIMAL(10,2) NOT NULL,
		issued_at       DATETIME NOT NULL,
		CONSTRAINT invoices_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id)
	)`,
	`CREATE TABLE invoice_lines (
		id          BIGINT PRIMARY KEY,
		invoice_id  BIGINT NOT NULL,
		description VARCHAR(255) NOT NULL,
		CONSTRAINT invoice_lines_invoice_fk FOREIGN KEY (invoice_id) REFERENCES invoices (id)
	)`,
	`CREATE TABLE login_events (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, ip VARCHAR(45) NOT NULL, at DATETIME NOT NULL, KEY (user_id))`,
	`CREATE TABLE newsletter (id UUID PRIMARY KEY, email VARCHAR(255) NOT NULL, user_id BIGINT, KEY (email))`,
	`CREATE TABLE leads (id INT PRIMARY KEY, email VARCHAR(255) CHARACTER SET latin1 NOT NULL, KEY (email))`,
	`CREATE TABLE devices (id BINARY(16) PRIMARY KEY, user_id BIGINT NOT NULL, label VARCHAR(64))`,
	`CREATE TABLE device_tokens (
		id        INT PRIMARY KEY,
		device_id BINARY(16) NOT NULL,
		token     VARCHAR(64) NOT NULL,
		CONSTRAINT device_tokens_device_fk FOREIGN KEY (device_id) REFERENCES devices (id)
	)`,
	`CREATE TABLE tickets (id INT PRIMARY KEY, requester_email VARCHAR(255), body TEXT, KEY (requester_email))`,
	`INSERT INTO accounts (id, email, name, phone, birth_date, avatar, referred_by) VALUES
		(1, 'a_b@x.io',      'Ada Subject', '+33 6 12 34 56 78', '1990-05-17', x'deadbeef', NULL),
		(2, 'axb@x.io',      'Look Alike',  '+33 6 00 00 00 02', '1985-01-02', NULL, 1),
		(3, 'a%b@x.io',      'Percent',     '+33 6 00 00 00 03', NULL, NULL, 1),
		(4, 'o''brien@x.io', 'Quote',       NULL, NULL, NULL, 2),
		(5, 'ünïcödé@x.io',  'Unicode',     NULL, NULL, NULL, NULL),
		(6, '*?[a-z]@x.io',  'Glob',        NULL, NULL, NULL, NULL),
		(11, 'eleven@x.io',  'Eleven',      NULL, NULL, NULL, NULL)`,
	`INSERT INTO invoices VALUES
		(10, 1, '1 Subject Street', 120.50, '2014-01-10 00:00:00'),
		(11, 1, '1 Subject Street', 99.99,  '2024-06-15 00:00:00'),
		(12, 2, '2 Other Street',   10.00,  '2024-01-01 00:00:00'),
		(13, 3, '3 Other Street',   20.00,  '2024-01-01 00:00:00'),
		(14, 11, '11 Other Street', 30.00,  '2014-01-01 00:00:00')`,
	`INSERT INTO invoice_lines VALUES
		(100, 10, 'hosting'), (101, 10, 'database'), (102, 11, 'hosting'),
		(103, 12, 'hosting'), (104, 13, 'hosting'), (105, 14, 'hosting')`,
	`INSERT INTO login_events VALUES
		(1000, 1, '192.0.2.1', '2024-01-01 00:00:00'),
		(1001, 2, '192.0.2.2', '2024-01-01 00:00:00'),
		(1002, 1, '192.0.2.1', '2024-02-01 00:00:00'),
		(1003, 11, '192.0.2.11', '2024-01-01 00:00:00')`,
	`INSERT INTO newsletter VALUES
		('00000000-0000-4000-8000-000000000001', 'a_b@x.io', NULL),
		('00000000-0000-4000-8000-000000000002', 'axb@x.io', 2),
		('00000000-0000-4000-8000-000000000003', 'other@x.io', 1),
		('00000000-0000-4000-8000-000000000004', 'A_B@x.io', NULL),
		('00000000-0000-4000-8000-000000000005', 'a_b@x.io ', NULL),
		('00000000-0000-4000-8000-000000000006', 'á_b@x.io', NULL),
		('00000000-0000-4000-8000-000000000007', 'a_b@x.io ', 11)`,
	`INSERT INTO leads VALUES (1, 'a_b@x.io'), (2, 'A_B@x.io'), (3, 'a_b@x.io '), (4, 'á_b@x.io'), (5, 'o''brien@x.io')`,
	`INSERT INTO devices VALUES
		(UNHEX('000000000000000000000000000000a1'), 1, 'phone'),
		(UNHEX('000000000000000000000000000000a2'), 2, 'laptop'),
		(UNHEX('000000000000000000000000000000b1'), 11, 'tablet')`,
	`INSERT INTO device_tokens VALUES
		(500, UNHEX('000000000000000000000000000000a1'), 'tok-1'),
		(501, UNHEX('000000000000000000000000000000a2'), 'tok-2'),
		(502, UNHEX('000000000000000000000000000000a1'), 'tok-3'),
		(503, UNHEX('000000000000000000000000000000b1'), 'tok-4')`,
	`INSERT INTO tickets VALUES
		(1, 'a_b@x.io', 'my invoice'), (2, 'A_B@x.io', 'upper'), (3, 'a_b@x.io ', 'space'),
		(4, 'axb@x.io', 'look-alike'), (5, NULL, 'anonymous')`,
}

var (
	testKey = []byte("lethe test masking key")
	subject = map[string]string{"email": "a_b@x.io", "userId": "1"}
)

// subjectRowIDs are the fixture rows that belong to the subject, by table
// (binary keys in hex).
var subjectRowIDs = map[string][]string{
	"accounts":      {"1"},
	"invoices":      {"10", "11"},
	"invoice_lines": {"100", "101", "102"},
	"login_events":  {"1000", "1002"},
	"newsletter":    {"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000003"},
	"leads":         {"1"},
	"devices":       {"000000000000000000000000000000A1"},
	"device_tokens": {"500", "502"},
	"tickets":       {"1"},
}

func ptr[T any](v T) *T { return &v }

// fixtureSpec maps the fixture of database db; accounts are erased as given.
func fixtureSpec(db string, accounts privacyv1.ErasureAction) privacyv1.DataStoreSpec {
	return privacyv1.DataStoreSpec{
		Engine: privacyv1.EngineMySQL,
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
				Name: "invoices", Table: db + ".invoices", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
				Fields: []privacyv1.Field{
					{Name: "billing_address", Category: "user.billing.address", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "amount", Category: "user.billing.amount"},
					{Name: "issued_at", Category: "user.billing.date"},
				},
			},
			{
				Name: "invoice_lines", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
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
			{
				Name: "leads", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email"},
				Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
			},
			{
				Name: "devices", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields:   []privacyv1.Field{{Name: "label", Category: "user.technical.device"}},
			},
			{
				Name: "device_tokens", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "device_id", Collection: "devices"}},
				Fields:     []privacyv1.Field{{Name: "token", Category: "user.technical.token"}},
			},
			{
				Name: "tickets", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "requester_email", Collection: "accounts", CollectionField: "email"}},
				Fields: []privacyv1.Field{
					{Name: "requester_email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "body", Category: "user.support.message"},
				},
			},
		},
	}
}

// fixture is a fresh database holding the fixture, with a Store on it and a
// connection to inspect it.
type fixture struct {
	store *Store
	db    *sql.DB
	dsn   string
	name  string // the database
}

func newFixture(t *testing.T, accounts privacyv1.ErasureAction, extraSQL ...string) *fixture {
	t.Helper()
	dsn := testdb.NewMySQL(t)
	f := &fixture{db: openDB(t, dsn), dsn: dsn, name: databaseOf(t, dsn)}
	for _, stmt := range append(slices.Clone(fixtureSQL), extraSQL...) {
		f.exec(t, stmt)
	}
	f.store = newStore(t, dsn, fixtureSpec(f.name, accounts), testKey)
	return f
}

func databaseOf(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DBName
}

// openDB opens an inspection connection, in UTC.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	if err := cfg.Apply(gomysql.Charset("utf8mb4", "")); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
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

func (f *fixture) exec(t *testing.T, stmt string, args ...any) {
	t.Helper()
	if _, err := f.db.ExecContext(context.Background(), stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func erasureRequest(subject map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindErasure, Subject: subject, RequestID: "req-1"}
}

// snapshot is every row of every table, rendered exactly (bytes quoted), by
// table and id (binary ids in hex).
type snapshot map[string]map[string]string

func (f *fixture) snapshot(t *testing.T) snapshot {
	t.Helper()
	tables := f.strings(t, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")
	snap := snapshot{}
	for _, name := range tables {
		snap[name] = f.tableRows(t, name)
	}
	return snap
}

func (f *fixture) tableRows(t *testing.T, table string) map[string]string {
	t.Helper()
	id := "CAST(id AS CHAR)"
	if binaryKeyTables[table] {
		id = "HEX(id)"
	}
	// Text protocol (no arguments): every value arrives as its bytes.
	rows, err := f.db.Query("SELECT " + id + ", t.* FROM " + quote(table) + " t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := map[string]string{}
	for rows.Next() {
		values := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range values[1:] {
			if v == nil {
				b.WriteString("NULL|")
			} else {
				fmt.Fprintf(&b, "%q|", string(v))
			}
		}
		out[string(values[0])] = b.String()
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// binaryKeyTables are the tables whose ids snapshots show in hex.
var binaryKeyTables = map[string]bool{"devices": true}

// changedRows lists, by table, the ids of rows deleted, added or changed.
func changedRows(before, after snapshot) map[string][]string {
	out := map[string][]string{}
	for table, rows := range before {
		var ids []string
		for id, row := range rows {
			if got, ok := after[table][id]; !ok || got != row {
				ids = append(ids, id)
			}
		}
		for id := range after[table] {
			if _, ok := rows[id]; !ok {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			slices.Sort(ids)
			out[table] = ids
		}
	}
	return out
}

func (f *fixture) queryString(t *testing.T, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := f.db.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

func (f *fixture) strings(t *testing.T, q string, args ...any) []string {
	t.Helper()
	rows, err := f.db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
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

func withoutTable(m map[string][]string, tables ...string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		if !slices.Contains(tables, k) {
			out[k] = v
		}
	}
	return out
}
