package mysql

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// unmappedSchema: accounts is mapped (id, email); tickets and the other
// database's notes refer to it, accounts refers to plans; none of those is
// mapped. strangers is linked to nothing. Rows hold values the report must
// never carry. %s is the other database, %m this one.
var unmappedSchema = []string{
	`CREATE TABLE plans (id BIGINT PRIMARY KEY, title VARCHAR(50), price DECIMAL(10,2))`,
	`CREATE TABLE accounts (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, status VARCHAR(20),
		plan_id BIGINT, created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, FOREIGN KEY (plan_id) REFERENCES plans (id))`,
	`CREATE TABLE tickets (id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, email VARCHAR(255), status VARCHAR(20),
		created_at DATETIME, FOREIGN KEY (account_id) REFERENCES accounts (id))`,
	"CREATE TABLE `%s`.notes (id BIGINT PRIMARY KEY, account_id BIGINT, mobile_number VARCHAR(30), FOREIGN KEY (account_id) REFERENCES `%m`.accounts (id))",
	`CREATE TABLE strangers (id BIGINT PRIMARY KEY, email VARCHAR(255))`,
	`INSERT INTO plans VALUES (1, 'pro', 9.99)`,
	`INSERT INTO accounts (id, email, status, plan_id) VALUES (1, 'secret-person@x.io', 'active', 1)`,
	`INSERT INTO tickets VALUES (1, 1, 'other-secret@x.io', 'open', NOW())`,
}

func unmappedStore(t *testing.T, dsn string, fields ...string) *Store {
	t.Helper()
	c := privacyv1.Collection{Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"email": "email"}}
	for _, f := range fields {
		c.Fields = append(c.Fields, privacyv1.Field{Name: privacyv1.Identifier(f), Category: "user.contact"})
	}
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EngineMySQL, Collections: []privacyv1.Collection{c}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), dsn, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func unmappedNames(t *testing.T, s *Store, ignore string) []string {
	t.Helper()
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Fatalf("problems: %v", res.Problems)
	}
	if res.Unmapped == nil || res.Unmapped.Error != "" {
		t.Fatalf("unmapped report = %+v, want one without error", res.Unmapped)
	}
	l, invalid := stores.ParseUnmappedIgnore(ignore)
	if len(invalid) > 0 {
		t.Fatalf("invalid patterns %q", invalid)
	}
	names := []string{}
	for _, c := range l.Filter(res.Unmapped.Columns) {
		if strings.Contains(c.String(), "secret") {
			t.Errorf("the report carries a value: %s", c)
		}
		names = append(names, c.String())
	}
	return names
}

// A column a migration adds to a mapped table is reported at the next check
// when it looks personal, with the columns of unmapped tables a foreign key
// links to a mapped one (in this database or another); mapped,
// non-personal, key, ignored and unlinked columns are not.
func TestUnmappedPersonalColumns(t *testing.T) {
	dsn := testdb.NewMySQL(t)
	other, err := gomysql.ParseDSN(testdb.NewMySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	this, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range unmappedSchema {
		stmt = strings.NewReplacer("%s", other.DBName, "%m", this.DBName).Replace(stmt)
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	s := unmappedStore(t, dsn)
	notes := other.DBName + ".notes"
	linked := []string{
		notes + ".mobile_number (user.contact.phone; table not mapped)",
		"tickets.email (user.contact.email; table not mapped)",
	}
	if got := unmappedNames(t, s, ""); !reflect.DeepEqual(got, linked) {
		t.Errorf("before the migration: %q, want %q", got, linked)
	}

	if _, err := db.Exec(`ALTER TABLE accounts ADD COLUMN phone TEXT`); err != nil {
		t.Fatal(err)
	}
	want := append([]string{"accounts.phone (user.contact.phone)"}, linked...)
	if got := unmappedNames(t, s, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("after adding accounts.phone: %q, want %q", got, want)
	}
	if got := unmappedNames(t, s, "TICKETS.*, "+strings.ToUpper(notes)); !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("ignoring the linked tables: %q, want %q", got, want[:1])
	}
	if got := unmappedNames(t, s, "*.phone"); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("ignoring *.phone: %q, want %q", got, want[1:])
	}
	// Mapped (in another case: MySQL column names are case-insensitive), the
	// column is no longer reported.
	if got := unmappedNames(t, unmappedStore(t, dsn, "Phone"), ""); !reflect.DeepEqual(got, linked) {
		t.Errorf("phone mapped: %q, want %q", got, linked)
	}
}
