package mysql

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// What only MySQL and MariaDB have: latin1 columns, the index the exact
// comparison keeps, session settings, storage engines, views and generated
// columns, name folding, and the server's error messages. Everything else is
// the conformance suite.

var subject = map[string]string{"email": "a_b@x.io", "userId": "1"}

func erasureRequest(subject map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindErasure, Subject: subject, RequestID: "req-1"}
}

// leads holds look-alikes of the subject's e-mail in latin1 (latin1_swedish_ci
// folds case, accents and trailing spaces).
var leads = []string{
	`CREATE TABLE leads (id INT PRIMARY KEY, email VARCHAR(255) CHARACTER SET latin1 NOT NULL, KEY (email))`,
	`INSERT INTO leads VALUES (1, 'a_b@x.io'), (2, 'A_B@x.io'), (3, 'a_b@x.io '), (4, 'á_b@x.io'), (5, 'o''brien@x.io')`,
}

func leadsCollection(table string) privacyv1.Collection {
	return privacyv1.Collection{
		Name: "leads", Table: table, PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"email": "email"},
		Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
	}
}

// withLeads is the conformance fixture (in MariaDB's default collation) with
// the leads table, and its map with the leads collection.
func withLeads(t *testing.T) (*harness, privacyv1.DataStoreSpec) {
	t.Helper()
	h := openHarness(t, storetest.Fixture{}, "utf8mb4_general_ci")
	for _, stmt := range leads {
		h.exec(t, stmt)
	}
	spec := h.f.Spec()
	spec.Collections = append(spec.Collections, leadsCollection(""))
	return h, spec
}

func (h *harness) mysqlStore(t *testing.T, spec privacyv1.DataStoreSpec, key []byte) *Store {
	t.Helper()
	s, ok := h.Open(t, spec, key).(*Store)
	if !ok {
		t.Fatal("the MySQL harness opened another kind of store")
	}
	return s
}

// Identity values match exactly in latin1 columns too: case, accents,
// trailing spaces and quotes never widen the match, and a value latin1
// cannot hold, or that is not UTF-8, matches nothing rather than failing.
func TestMySQLLatin1IdentitiesMatchExactly(t *testing.T) {
	h := openHarness(t, storetest.Fixture{Empty: true}, "utf8mb4_general_ci")
	for _, stmt := range leads {
		h.exec(t, stmt)
	}
	s := h.mysqlStore(t, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{leadsCollection("")}}, nil)
	for _, tt := range []struct {
		email string
		want  []string
	}{
		{"A_B@x.io", []string{"2"}},
		{"a_b@x.io ", []string{"3"}},
		{"á_b@x.io", []string{"4"}},
		{"o'brien@x.io", []string{"5"}},
		{"a_b@x.io✓", nil},
		{"a_b@x.io\xff", nil},
		{"a_b@x.io", []string{"1"}},
	} {
		before := h.Snapshot(t)
		if _, err := s.Apply(context.Background(), erasureRequest(map[string]string{"email": tt.email})); err != nil {
			t.Fatalf("%q: %v", tt.email, err)
		}
		if got := storetest.Changed(before, h.Snapshot(t))["leads"]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: changed leads %v, want %v", tt.email, got, tt.want)
		}
	}
}

// The exact comparison does not cost the column's index: the collation's
// comparison comes first and looks the candidates up.
func TestMySQLIdentityMatchUsesTheColumnIndex(t *testing.T) {
	h, spec := withLeads(t)
	s := h.mysqlStore(t, spec, storetest.MaskingKey)
	for _, tt := range []struct {
		table, value string
		index        bool
	}{
		{"newsletter", "a_b@x.io", true},
		{"newsletter", "ünïcödé✓@x.io", true},
		{"contacts", "a_b@x.io", true},
		{"leads", "a_b@x.io", true},
		{"leads", "a_b@x.io✓", false}, // latin1 cannot hold it: only the exact comparison, which never fails
	} {
		var live *liveSchema
		err := s.inTx(context.Background(), readOnly, func(tx *sql.Tx) error {
			var err error
			live, err = s.introspect(context.Background(), tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := s.m.Get(tt.table)
		p := masking.NewParams(masking.MySQL)
		cond, ok := matchValues(live.column(c, "email"), "`email`", []string{tt.value}, false, p)
		if !ok {
			t.Fatalf("%s %q: no condition", tt.table, tt.value)
		}
		var id, selectType, table, accessType string
		var possibleKeys, key, keyLen, ref, extra sql.NullString
		var rows sql.NullInt64
		if err := h.db.QueryRow("EXPLAIN SELECT id FROM "+tt.table+" WHERE "+cond, p.Values()...).Scan(&id, &selectType, &table, &accessType, &possibleKeys, &key, &keyLen, &ref, &rows, &extra); err != nil {
			t.Fatalf("%s %q: %s: %v", tt.table, tt.value, cond, err)
		}
		// ref and range look the index up; index and ALL scan it or the table.
		if got := key.String == "email" && (accessType == "ref" || accessType == "range"); got != tt.index {
			t.Errorf("%s %q: index lookup = %v (access %s, key %q), want %v", tt.table, tt.value, got, accessType, key.String, tt.index)
		}
	}
}

// Check reports what only MySQL has: a storage engine that cannot roll
// back, a view, a generated column; Apply then refuses, changing nothing.
func TestMySQLCheckReportsEnginesViewsAndGeneratedColumns(t *testing.T) {
	h := openHarness(t, storetest.Fixture{}, "utf8mb4_general_ci")
	for _, stmt := range []string{
		`CREATE TABLE archive (id INT PRIMARY KEY, email VARCHAR(255)) ENGINE=MyISAM`,
		`CREATE VIEW account_emails AS SELECT id, email FROM accounts`,
		`ALTER TABLE tickets ADD COLUMN email_domain VARCHAR(255) AS (SUBSTRING_INDEX(requester_email, '@', -1)) VIRTUAL`,
	} {
		h.exec(t, stmt)
	}
	spec := h.f.Spec()
	for i := range spec.Collections {
		if spec.Collections[i].Name == "tickets" {
			spec.Collections[i].Fields = append(spec.Collections[i].Fields, privacyv1.Field{Name: "email_domain", Category: "user.contact.domain", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}})
		}
	}
	for _, name := range []string{"archive", "account_emails"} {
		spec.Collections = append(spec.Collections, privacyv1.Collection{
			Name: privacyv1.Identifier(name), PrimaryKey: "id", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
		})
	}
	s := h.mysqlStore(t, spec, storetest.MaskingKey)
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ collection, field, text string }{
		{"tickets", "email_domain", `column "email_domain" is generated from other columns and cannot be masked`},
		{"archive", "", "table archive uses the MyISAM storage engine, which cannot roll back"},
		{"account_emails", "", "account_emails is not a table (view)"},
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
	before := h.Snapshot(t)
	if _, err := s.Apply(context.Background(), erasureRequest(subject)); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "MyISAM") {
		t.Fatalf("Apply() on a drifted schema: error = %v, want ErrInvalid naming the problem", err)
	}
	if got := storetest.Changed(before, h.Snapshot(t)); len(got) != 0 {
		t.Fatalf("a request acted on a drifted schema: %v", got)
	}
}

// Names resolve as the server resolves them: column names in any case, table
// names exactly (lower_case_table_names=0 on Linux).
func TestMySQLCheckResolvesNamesAsTheServerDoes(t *testing.T) {
	h, spec := withLeads(t)
	for i := range spec.Collections {
		switch spec.Collections[i].Name {
		case "accounts":
			spec.Collections[i].Fields[1].Name = "NAME"
		case "leads":
			spec.Collections[i].Table = "Leads"
		}
	}
	res, err := h.mysqlStore(t, spec, storetest.MaskingKey).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var lowerCaseNames int
	if err := h.db.QueryRow("SELECT @@lower_case_table_names").Scan(&lowerCaseNames); err != nil {
		t.Fatal(err)
	}
	if lowerCaseNames != 0 {
		// The server folds table names: Leads is leads, and the map matches.
		if len(res.Problems) != 0 {
			t.Fatalf("problems = %+v, want none where the server folds table names", res.Problems)
		}
		return
	}
	if len(res.Problems) != 1 || res.Problems[0].Collection != "leads" || !strings.Contains(res.Problems[0].Problem, "table Leads does not exist") {
		t.Fatalf("problems = %+v, want only table Leads missing", res.Problems)
	}
}

func fixtureMap(t *testing.T) *datamap.Map {
	t.Helper()
	spec := storetest.Fixture{}.Spec()
	spec.Engine = privacyv1.EngineMySQL
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMySQLNewClassifiesConnectionErrors(t *testing.T) {
	m := fixtureMap(t)
	ctx := context.Background()
	if _, err := New(ctx, "root:s3cret@tcp(127.0.0.1:3306/x", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrInvalid) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("New(bad DSN) error = %v, want ErrInvalid without the password", err)
	}
	if _, err := New(ctx, "root:s3cret@tcp(127.0.0.1:1)/x?timeout=2s", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrUnavailable) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("New(closed port) error = %v, want ErrUnavailable without the password", err)
	}
	if _, err := New(ctx, "root:wrong-password@tcp(127.0.0.1:3306)/x", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrUnavailable) || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("New(wrong password) error = %v, want ErrUnavailable without the password", err)
	}
	if _, err := New(ctx, "root@tcp(127.0.0.1:3306)/lethe_no_such_database", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "MySQL error 1049") {
		t.Errorf("New(unknown database) error = %v, want ErrUnavailable (MySQL error 1049)", err)
	}
	cfg, _ := gomysql.ParseDSN(testdb.NewMySQL(t))
	cfg.DBName = ""
	noDatabase, err := New(ctx, cfg.FormatDSN(), m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer noDatabase.Close()
	if res, err := noDatabase.Check(ctx); err != nil || len(res.Problems) == 0 || !strings.Contains(res.Problems[0].Problem, "the DSN names no database") {
		t.Errorf("Check() without a database = %+v, %v; want a problem saying the DSN names no database", res, err)
	}
}

// A map built without the API server's validation cannot smuggle SQL through
// a name: New refuses it, and quoting would neutralize it anyway.
func TestMySQLIdentifiersAreValidatedAndQuoted(t *testing.T) {
	spec := storetest.Fixture{}.Spec()
	spec.Engine = privacyv1.EngineMySQL
	for i := range spec.Collections {
		switch spec.Collections[i].Name {
		case "invoice_lines":
			spec.Collections[i].Table = "invoice_lines` WHERE 1 OR `x"
		case "accounts":
			spec.Collections[i].Fields[1].Name = "name`, `email"
		}
	}
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), testdb.DefaultMySQLDSN, m, nil, testdb.Loopback)
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), `collection "invoice_lines"`) || !strings.Contains(err.Error(), `collection "accounts"`) {
		t.Errorf("New() error = %v, want ErrInvalid naming both collections", err)
	}
	if got := quote("a`b"); got != "`a``b`" {
		t.Errorf("quote = %s", got)
	}
	if got := tableRef(&datamap.Collection{Table: "billing.invoices"}); got != "`billing`.`invoices`" {
		t.Errorf("tableRef = %s", got)
	}
}

// Every transaction sets its own lock wait and statement timeouts.
func TestMySQLTransactionsSetTheirTimeouts(t *testing.T) {
	dsn := testdb.NewMySQL(t)
	s, err := New(context.Background(), dsn, fixtureMap(t), nil, testdb.Loopback, WithTimeouts(1500*time.Millisecond, 7*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var lockWait, mdlWait int
	var statement float64
	var zone, mode string
	err = s.inTx(context.Background(), readOnly, func(tx *sql.Tx) error {
		return tx.QueryRow("SELECT @@innodb_lock_wait_timeout, @@lock_wait_timeout, @@max_statement_time, @@time_zone, @@sql_mode").Scan(&lockWait, &mdlWait, &statement, &zone, &mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	if lockWait != 2 || mdlWait != 2 || statement != 7 || zone != "+00:00" || !strings.Contains(mode, "STRICT_ALL_TABLES") {
		t.Errorf("session: lock wait %d, metadata lock wait %d, statement %v, zone %s, mode %s; want 2, 2, 7, +00:00, strict", lockWait, mdlWait, statement, zone, mode)
	}
}

// Errors keep the error number, SQLSTATE and object names of a MySQL error,
// never the values its message quotes, even values shaped like the names.
func TestMySQLErrorsNeverQuoteValues(t *testing.T) {
	tests := []struct {
		number  uint16
		state   string
		message string
		want    string
		class   error
	}{
		{1062, "23000", "Duplicate entry 'a_b@x.io' for key 'email'", `unique violation (MySQL error 1062, SQLSTATE 23000) key "email"`, stores.ErrInvalid},
		{1062, "23000", "Duplicate entry 'x' for key 'victim' for key 'email'", `key "email"`, stores.ErrInvalid},
		{1366, "22007", "Incorrect integer value: 'secret' for column `db`.`t`.`n` at row 1", `column "n"`, stores.ErrInvalid},
		{1366, "22007", "Incorrect integer value: 'x' for column `evil` at row 1' for column `db`.`t`.`n` at row 1", `column "n"`, stores.ErrInvalid},
		{1062, "23000", "Duplicate entry 'CONSTRAINT `johndoe` FOREIGN KEY (' for key 'email'", `key "email"`, stores.ErrInvalid},
		{1205, "HY000", "Lock wait timeout exceeded; try restarting transaction", "lock wait timeout (MySQL error 1205, SQLSTATE HY000)", stores.ErrUnavailable},
		{1969, "70100", "Query execution was interrupted (max_statement_time exceeded)", "statement timeout", stores.ErrUnavailable},
	}
	for _, tt := range tests {
		e := &gomysql.MySQLError{Number: tt.number, Message: tt.message}
		copy(e.SQLState[:], tt.state)
		err := dbError("erasing", e)
		if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.class) {
			t.Errorf("%s: error %q, want it to contain %q and wrap %v", tt.message, err, tt.want, tt.class)
		}
		for _, leak := range []string{"a_b@x.io", "secret", "victim", "evil", "johndoe"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("error %q leaks %q", err, leak)
			}
		}
	}
	if err := dbError("exporting", errors.New(`converting "a_b@x.io" to int64`)); strings.Contains(err.Error(), "a_b@x.io") {
		t.Errorf("a driver error's text was repeated: %v", err)
	}
}

// A reference a foreign key links is followed as InnoDB compares it, by the
// columns' collation: the child 'A_B@X.IO' belongs to the parent 'a_b@x.io'
// under utf8mb4_general_ci, and is erased with it (without it, deleting the
// parent fails on the key). A reference only the map declares stays exact.
func TestMySQLReferencesFollowTheForeignKeysCollation(t *testing.T) {
	h := openHarness(t, storetest.Fixture{Empty: true}, "utf8mb4_general_ci")
	for _, stmt := range []string{
		`CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(255) NOT NULL, UNIQUE KEY (email))`,
		`CREATE TABLE orders (id INT PRIMARY KEY, buyer VARCHAR(255) NOT NULL, KEY (buyer), FOREIGN KEY (buyer) REFERENCES people (email))`,
		`CREATE TABLE notes (id INT PRIMARY KEY, author VARCHAR(255) NOT NULL, KEY (author))`,
		`INSERT INTO people VALUES (1, 'a_b@x.io'), (2, 'c_d@x.io')`,
		`INSERT INTO orders VALUES (10, 'a_b@x.io'), (11, 'A_B@X.IO'), (12, 'c_d@x.io')`,
		`INSERT INTO notes VALUES (20, 'a_b@x.io'), (21, 'A_B@X.IO'), (22, 'c_d@x.io')`,
	} {
		h.exec(t, stmt)
	}
	child := func(name, field string) privacyv1.Collection {
		return privacyv1.Collection{
			Name: privacyv1.Identifier(name), PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			References: []privacyv1.Reference{{Field: privacyv1.Identifier(field), Collection: "people", CollectionField: "email"}},
			Fields:     []privacyv1.Field{{Name: privacyv1.Identifier(field), Category: "user.contact.email"}},
		}
	}
	spec := privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{
		{Name: "people", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			Identity: map[string]privacyv1.Identifier{"email": "email"},
			Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}}},
		child("orders", "buyer"), child("notes", "author"),
	}}
	s := h.mysqlStore(t, spec, nil)
	res, err := s.Apply(context.Background(), erasureRequest(map[string]string{"email": "a_b@x.io"}))
	if err != nil {
		t.Fatalf("erasure: %v", err)
	}
	got := map[string]int64{}
	for _, c := range res.Collections {
		got[c.Collection] += c.Rows
	}
	if want := map[string]int64{"people": 1, "orders": 2, "notes": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("erased %v, want %v", got, want)
	}
	for table, want := range map[string]string{"people": "2", "orders": "12", "notes": "21,22"} {
		var ids string
		if err := h.db.QueryRow("SELECT GROUP_CONCAT(id ORDER BY id) FROM " + table).Scan(&ids); err != nil || ids != want {
			t.Errorf("%s left: %q (%v), want %q", table, ids, err, want)
		}
	}
}

// A statement the server cancels at the store's statement timeout
// (max_statement_time) is unavailable and a statement timeout: the part is
// rolled back whole.
func TestMySQLStatementTimeoutIsReportedAsSuch(t *testing.T) {
	h := openHarness(t, storetest.Fixture{}, "utf8mb4_general_ci")
	// Each deleted newsletter row takes 0.3 s: the subject's part cannot finish in 200 ms.
	h.exec(t, `CREATE TRIGGER slow BEFORE DELETE ON newsletter FOR EACH ROW DO SLEEP(0.3)`)
	spec := h.f.Spec()
	spec.Engine = privacyv1.EngineMySQL
	for i := range spec.Collections {
		if spec.Collections[i].Name == "invoices" {
			spec.Collections[i].Table = h.name + ".invoices"
		}
	}
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), h.dsn, m, storetest.MaskingKey, testdb.Loopback, WithTimeouts(5*time.Second, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	before := h.Snapshot(t)
	_, err = s.Apply(context.Background(), erasureRequest(map[string]string{"email": "a_b@x.io"}))
	if !errors.Is(err, stores.ErrStatementTimeout) || !errors.Is(err, stores.ErrUnavailable) || strings.Contains(err.Error(), "a_b@x.io") {
		t.Fatalf("err = %v, want a statement timeout (unavailable), without the identity", err)
	}
	if after := h.Snapshot(t); !reflect.DeepEqual(after, before) {
		t.Error("a part cancelled at the statement timeout changed rows")
	}
}
