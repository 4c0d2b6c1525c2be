package postgres

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// unmappedSchema: accounts is mapped (id, email); tickets and crm.notes
// and the partitioned events refer to it, accounts refers to plans; none of
// those is mapped.
// strangers is linked to nothing. Rows hold values the report must never
// carry.
const unmappedSchema = `
CREATE TABLE plans (id bigint PRIMARY KEY, title text, price numeric(10,2));
CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  email text NOT NULL UNIQUE,
  status text,
  plan_id bigint REFERENCES plans(id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tickets (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  email text,
  status text,
  created_at timestamptz
);
CREATE SCHEMA crm;
CREATE TABLE crm.notes (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts(id), mobile_number text);
CREATE TABLE events (id bigint, at date, account_id bigint REFERENCES accounts(id), origin inet, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE strangers (id bigint PRIMARY KEY, email text);
INSERT INTO plans VALUES (1, 'pro', 9.99);
INSERT INTO accounts (id, email, status, plan_id) VALUES (1, 'secret-person@x.io', 'active', 1);
INSERT INTO tickets VALUES (1, 1, 'other-secret@x.io', 'open', now());
`

func unmappedStore(t *testing.T, dsn string, fields ...string) *Store {
	t.Helper()
	c := privacyv1.Collection{Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"email": "email"}}
	for _, f := range fields {
		c.Fields = append(c.Fields, privacyv1.Field{Name: privacyv1.Identifier(f), Category: "user.contact"})
	}
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres, Collections: []privacyv1.Collection{c}})
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
// links to a mapped one; mapped, non-personal, key, ignored and unlinked
// columns are not.
func TestUnmappedPersonalColumns(t *testing.T) {
	dsn := testdb.NewPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, unmappedSchema); err != nil {
		t.Fatal(err)
	}
	s := unmappedStore(t, dsn)
	linked := []string{
		"crm.notes.mobile_number (user.contact.phone; table not mapped)",
		"events.origin (user.device.ip_address; table not mapped)",
		"tickets.email (user.contact.email; table not mapped)",
	}
	if got := unmappedNames(t, s, ""); !reflect.DeepEqual(got, linked) {
		t.Errorf("before the migration: %q, want %q", got, linked)
	}

	if _, err := conn.Exec(ctx, `ALTER TABLE accounts ADD COLUMN phone text`); err != nil {
		t.Fatal(err)
	}
	want := append([]string{"accounts.phone (user.contact.phone)"}, linked...)
	if got := unmappedNames(t, s, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("after adding accounts.phone: %q, want %q", got, want)
	}
	if got := unmappedNames(t, s, "tickets.*, CRM.Notes.mobile_number,events"); !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("ignoring the linked tables: %q, want %q", got, want[:1])
	}
	if got := unmappedNames(t, s, "*.phone\ncrm.notes"); !reflect.DeepEqual(got, want[2:]) {
		t.Errorf("ignoring *.phone and crm.notes: %q, want %q", got, want[2:])
	}
	// Mapped, the column is no longer reported.
	if got := unmappedNames(t, unmappedStore(t, dsn, "phone"), ""); !reflect.DeepEqual(got, linked) {
		t.Errorf("phone mapped: %q, want %q", got, linked)
	}
}
