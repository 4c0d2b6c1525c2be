package mysql

import (
	"context"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// collations are the variants: MariaDB's default, which folds case,
// accents and trailing spaces (so most look-alikes are equal to the
// subject's e-mail), and the binary one.
var collations = []string{"utf8mb4_general_ci", "utf8mb4_bin"}

func TestConformance(t *testing.T) {
	var suites []storetest.Suite
	for _, collation := range collations {
		suites = append(suites, storetest.Suite{
			Name: "mysql/" + collation,
			Open: func(t *testing.T, f storetest.Fixture) storetest.Harness { return openHarness(t, f, collation) },
			Texts: storetest.Texts{
				ColumnTypes: map[string]string{"accounts.email": "varchar(255)", "accounts.name": "varchar(255)", "accounts.phone": "varchar(32)"},
				TooLong:     `value too long for the column (MySQL error 1406, SQLSTATE 22001) column "phone"`,
				BadDate:     `invalid value for the column's type (MySQL error 1292, SQLSTATE 22007)`,
				LockTimeout: "lock wait timeout",
			},
		})
	}
	storetest.RunAll(t, suites...)
}

// schema is the fixture's schema, one statement an entry; invoices are
// mapped database-qualified.
var schema = []string{
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
	`CREATE TABLE login_events (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, ip VARCHAR(45) NOT NULL, at DATETIME NOT NULL, via_proxy BOOLEAN, KEY (user_id))`,
	`CREATE TABLE newsletter (id UUID PRIMARY KEY, email VARCHAR(255) NOT NULL, user_id BIGINT, KEY (email), KEY (user_id))`,
	`CREATE TABLE devices (id BINARY(16) PRIMARY KEY, user_id BIGINT NOT NULL, label VARCHAR(64), KEY (user_id))`,
	`CREATE TABLE device_tokens (
		id        INT PRIMARY KEY,
		device_id BINARY(16) NOT NULL,
		token     VARCHAR(64) NOT NULL,
		CONSTRAINT device_tokens_device_fk FOREIGN KEY (device_id) REFERENCES devices (id)
	)`,
	`CREATE TABLE tickets (id INT PRIMARY KEY, requester_email VARCHAR(255), body TEXT, KEY (requester_email))`,
	`CREATE TABLE contacts (id INT PRIMARY KEY, email VARCHAR(255) NOT NULL, name VARCHAR(255), KEY (email))`,
	`CREATE TABLE profiles (user_id BIGINT PRIMARY KEY, email VARCHAR(255), phone VARCHAR(32), name VARCHAR(255), city VARCHAR(255), age INT, nickname VARCHAR(255), plan VARCHAR(32))`,
	`CREATE TABLE orders (id INT PRIMARY KEY, user_id BIGINT NOT NULL, total DECIMAL(10,2) NOT NULL, issued_at DATETIME, KEY (user_id))`,
	`CREATE TABLE subscribers (email VARCHAR(255) PRIMARY KEY, since DATETIME NOT NULL)`,
}

var extras = map[storetest.Extra][]string{
	storetest.Payments: {
		`CREATE TABLE payments (id BIGINT PRIMARY KEY, invoice_id BIGINT NOT NULL, CONSTRAINT payments_invoice_fk FOREIGN KEY (invoice_id) REFERENCES invoices (id))`,
		`INSERT INTO payments VALUES (5000, 10)`,
	},
	storetest.Notes: {
		`CREATE TABLE notes (id BIGINT PRIMARY KEY, account_id BIGINT, CONSTRAINT notes_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE)`,
	},
	storetest.LoginEventsFK: {
		`ALTER TABLE login_events ADD CONSTRAINT login_events_user_fk FOREIGN KEY (user_id) REFERENCES accounts (id)`,
	},
}

// harness is the fixture in a fresh database of the local server.
type harness struct {
	f     storetest.Fixture
	dsn   string
	name  string // the database
	db    *sql.DB
	store stores.Store
	t     *testing.T
}

func openHarness(t *testing.T, f storetest.Fixture, collation string) *harness {
	t.Helper()
	dsn := testdb.NewMySQL(t)
	h := &harness{f: f, dsn: dsn, name: databaseName(t, dsn), db: inspection(t, dsn), t: t}
	if !f.Empty {
		h.exec(t, "ALTER DATABASE "+ident(h.name)+" CHARACTER SET utf8mb4 COLLATE "+collation)
		for _, stmt := range schema {
			h.exec(t, stmt)
		}
		for _, ins := range f.Inserts(storetest.SQLDialect{
			Table:       ident,
			Quote:       ident,
			Placeholder: func(int) string { return "?" },
			Value:       h.value,
		}) {
			h.exec(t, ins.SQL, ins.Args...)
		}
		for _, e := range f.Extras { // after the rows they refer to
			for _, stmt := range extras[e] {
				h.exec(t, stmt)
			}
		}
	}
	h.store = h.Open(t, f.Spec(), storetest.MaskingKey)
	return h
}

// ident quotes a MySQL identifier.
func ident(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

func databaseName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DBName
}

// inspection opens a connection to read and change the fixture behind the
// store's back, in UTC.
func inspection(t *testing.T, dsn string) *sql.DB {
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

func (h *harness) exec(t storetest.T, stmt string, args ...any) {
	t.Helper()
	if _, err := h.db.Exec(stmt, args...); err != nil {
		t.Fatalf("%.80s: %v", stmt, err)
	}
}

func (h *harness) value(v any) any {
	switch v := v.(type) {
	case storetest.ID:
		return int64(v)
	case int:
		return int64(v)
	}
	return v
}

func (h *harness) Store() stores.Store { return h.store }

func (h *harness) Open(t storetest.T, spec privacyv1.DataStoreSpec, key []byte) stores.Store {
	t.Helper()
	spec.Engine = privacyv1.EngineMySQL
	for i := range spec.Collections {
		if spec.Collections[i].Name == "invoices" {
			spec.Collections[i].Table = h.name + ".invoices"
		}
	}
	return storetest.OpenStore(t, spec, func(m *datamap.Map) (stores.Store, error) {
		return New(context.Background(), h.dsn, m, key, testdb.Loopback, WithTimeouts(2*time.Second, 10*time.Second))
	})
}

// Snapshot reads every row of every table but Lethe's journal exactly (the text protocol: every
// value arrives as its bytes), binary keys in hex.
func (h *harness) Snapshot(t storetest.T) storetest.Snapshot {
	t.Helper()
	names := h.strings(t, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> '"+sqlcore.DefaultJournalTable+"'")
	snap := storetest.Snapshot{}
	for _, name := range names {
		pk := ident(h.f.PrimaryKey(name))
		key := "CAST(" + pk + " AS CHAR)"
		if name == "devices" {
			key = "HEX(" + pk + ")"
		}
		rows, err := h.db.Query("SELECT " + key + ", t.* FROM " + ident(name) + " t")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		table := map[string]storetest.Row{}
		for rows.Next() {
			values := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range values {
				ptrs[i] = &values[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := storetest.Row{}
			for i, v := range values[1:] {
				if v != nil {
					row[cols[i+1]] = string(v)
				}
			}
			table[string(values[0])] = row
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		snap[name] = table
	}
	return snap
}

func (h *harness) strings(t storetest.T, q string, args ...any) []string {
	t.Helper()
	rows, err := h.db.Query(q, args...)
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
	return out
}

// Key renders keys as the engine carries them: binary keys in upper-case hex.
func (h *harness) Key(_ string, key any) string {
	if b, ok := key.([]byte); ok {
		return strings.ToUpper(hex.EncodeToString(b))
	}
	return h.f.KeyText(key)
}

func (h *harness) MaskingRowKey(_, key string) string { return key }

func (h *harness) ExportRow(_ string, row map[string]any) map[string]any { return row }

func (h *harness) DropColumn(t storetest.T, collection, column string) {
	h.exec(t, "ALTER TABLE "+ident(collection)+" DROP COLUMN "+ident(column))
}

// Lock holds a row lock in another transaction (by primary key, so that
// InnoDB locks that row only).
func (h *harness) Lock(t storetest.T, collection, key string) func() {
	t.Helper()
	tx, err := h.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT 1 FROM "+ident(collection)+" WHERE "+ident(h.f.PrimaryKey(collection))+" = ? FOR UPDATE", key); err != nil {
		t.Fatal(err)
	}
	release := func() { _ = tx.Rollback() }
	h.t.Cleanup(release)
	return release
}

// Sabotage relies on the Payments extra: a payment refers to the subject's
// invoice 10 through a foreign key the map does not know.
func (h *harness) Sabotage(t storetest.T) (want, leaks []string) {
	if !h.f.Has(storetest.Payments) {
		t.Fatal("storetest: Sabotage needs the Payments extra")
	}
	return []string{`collection "invoices"`, "foreign key violation", "payments_invoice_fk", "MySQL error 1451", `constraint "payments_invoice_fk"`, `table "payments"`}, nil
}
