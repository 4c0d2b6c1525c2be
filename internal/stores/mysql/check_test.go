package mysql

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

func TestMySQLCheckAcceptsTheFixture(t *testing.T) {
	for _, accounts := range []privacyv1.ErasureAction{privacyv1.ErasureDelete, privacyv1.ErasureAnonymize} {
		f := newFixture(t, accounts)
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
func TestMySQLCheckReportsProblemsPrecisely(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete,
		`CREATE TABLE archive (id INT PRIMARY KEY, email VARCHAR(255)) ENGINE=MyISAM`,
		`CREATE VIEW account_emails AS SELECT id, email FROM accounts`,
		`ALTER TABLE tickets ADD COLUMN email_domain VARCHAR(255) AS (SUBSTRING_INDEX(requester_email, '@', -1)) VIRTUAL`)
	spec := fixtureSpec(f.name, privacyv1.ErasureAnonymize)
	accounts := &spec.Collections[0]
	accounts.Fields[0].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskNullify}                             // email is NOT NULL
	accounts.Fields[1].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize}                          // name is text
	accounts.Fields[2].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskHash}                                // phone is varchar(32)
	accounts.Fields = append(accounts.Fields, privacyv1.Field{Name: "nickname", Category: "user.identity.name"}) // no such column
	spec.Collections[3].References = []privacyv1.Reference{{Field: "user_id", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}}
	spec.Collections[4].Identity["email"] = "mail"
	tickets := &spec.Collections[8]
	tickets.Fields = append(tickets.Fields, privacyv1.Field{Name: "email_domain", Category: "user.contact.domain", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}})
	for _, name := range []string{"ghosts", "archive", "account_emails"} {
		spec.Collections = append(spec.Collections, privacyv1.Collection{
			Name: privacyv1.Identifier(name), PrimaryKey: "id", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
		})
	}
	s := newStore(t, f.dsn, spec, nil)

	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ collection, field, text string }{
		{"accounts", "nickname", `mapped field "nickname" does not exist in table accounts; add the column or correct the data map`},
		{"accounts", "email", `masking nullify cannot apply to column "email" (varchar(255), NOT NULL, UNIQUE): the column is NOT NULL`},
		{"accounts", "name", `masking generalize cannot apply to column "name" (varchar(255)): it coarsens dates, timestamps and numbers but the column holds text values`},
		{"accounts", "phone", `masking hash cannot apply to column "phone" (varchar(32)): it writes 64 characters but the column holds at most 32`},
		{"login_events", "user_id", "onParentErasure setNull clears this column when a accounts row is erased, but it is NOT NULL"},
		{"newsletter", "mail", `identity column (identity type email) "mail" does not exist in table newsletter`},
		{"tickets", "email_domain", `column "email_domain" is generated from other columns and cannot be masked`},
		{"ghosts", "", "table ghosts does not exist"},
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

	before := f.snapshot(t)
	_, err = s.Apply(context.Background(), erasureRequest(subject))
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "nickname") {
		t.Fatalf("Apply() on a drifted schema: error = %v, want ErrInvalid naming the problem", err)
	}
	if got := changedRows(before, f.snapshot(t)); len(got) != 0 {
		t.Fatalf("a request acted on a drifted schema: %v", got)
	}
}

// Names resolve as the server resolves them: column names in any case, table
// names exactly (lower_case_table_names=0 on Linux).
func TestMySQLCheckResolvesNamesAsTheServerDoes(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	spec := fixtureSpec(f.name, privacyv1.ErasureDelete)
	spec.Collections[0].Fields[1].Name = "NAME"
	spec.Collections[5].Table = "Leads"
	s := newStore(t, f.dsn, spec, testKey)
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var lowerCaseNames int
	if err := f.db.QueryRow("SELECT @@lower_case_table_names").Scan(&lowerCaseNames); err != nil {
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

// Keyed strategies without a key are a problem, not an unkeyed digest.
func TestMySQLCheckWantsAMaskingKey(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureAnonymize)
	s := newStore(t, f.dsn, fixtureSpec(f.name, privacyv1.ErasureAnonymize), nil)
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
func TestMySQLCheckWarnsAboutForeignKeysThatBreakErasure(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete,
		`CREATE TABLE payments (id BIGINT PRIMARY KEY, invoice_id BIGINT, CONSTRAINT payments_invoice_fk FOREIGN KEY (invoice_id) REFERENCES invoices (id))`,
		`CREATE TABLE notes (id BIGINT PRIMARY KEY, account_id BIGINT, CONSTRAINT notes_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE)`,
		`ALTER TABLE login_events ADD CONSTRAINT login_events_user_fk FOREIGN KEY (user_id) REFERENCES accounts (id)`)
	spec := fixtureSpec(f.name, privacyv1.ErasureDelete)
	spec.Collections[3].References = []privacyv1.Reference{{Field: "user_id", Collection: "accounts"}}
	s := newStore(t, f.dsn, spec, testKey)

	res, err := s.Check(context.Background())
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

// Requests that cannot be carried out safely are refused before any query:
// the store is closed, so a query would fail differently.
func TestMySQLRequestsRefusedBeforeAnyQuery(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	s := newStore(t, f.dsn, fixtureSpec(f.name, privacyv1.ErasureDelete), testKey)
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

func TestMySQLNewClassifiesConnectionErrors(t *testing.T) {
	m, err := datamap.Build(fixtureSpec("x", privacyv1.ErasureDelete))
	if err != nil {
		t.Fatal(err)
	}
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
	dsn := testdb.NewMySQL(t)
	s, err := New(ctx, dsn, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Plan(ctx, erasureRequest(subject)); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "table accounts does not exist") {
		t.Errorf("Plan() on an empty database: error = %v, want ErrInvalid about missing tables", err)
	}
	cfg, _ := gomysql.ParseDSN(dsn)
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
	spec := fixtureSpec("x", privacyv1.ErasureDelete)
	spec.Collections[2].Table = "invoice_lines` WHERE 1 OR `x"
	spec.Collections[0].Fields[1].Name = "name`, `email"
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
	f := newFixture(t, privacyv1.ErasureDelete)
	m, _ := datamap.Build(fixtureSpec(f.name, privacyv1.ErasureDelete))
	s, err := New(context.Background(), f.dsn, m, nil, testdb.Loopback, WithTimeouts(1500*time.Millisecond, 7*time.Second))
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

// The exact comparison does not cost the column's index: the collation's
// comparison comes first and looks the candidates up.
func TestMySQLIdentityMatchUsesTheColumnIndex(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	for _, tt := range []struct {
		table, value string
		index        bool
	}{
		{"newsletter", "a_b@x.io", true},
		{"newsletter", "ünïcödé✓@x.io", true},
		{"leads", "a_b@x.io", true},
		{"leads", "a_b@x.io✓", false}, // latin1 cannot hold it: only the exact comparison, which never fails
	} {
		var live *liveSchema
		err := f.store.inTx(context.Background(), readOnly, func(tx *sql.Tx) error {
			var err error
			live, err = f.store.introspect(context.Background(), tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := f.store.m.Get(tt.table)
		p := masking.NewParams(masking.MySQL)
		cond, ok := matchValues(live.column(c, "email"), "`email`", []string{tt.value}, false, p)
		if !ok {
			t.Fatalf("%s %q: no condition", tt.table, tt.value)
		}
		var id, selectType, table, accessType string
		var possibleKeys, key, keyLen, ref, extra sql.NullString
		var rows sql.NullInt64
		if err := f.db.QueryRow("EXPLAIN SELECT id FROM "+tt.table+" WHERE "+cond, p.Values()...).Scan(&id, &selectType, &table, &accessType, &possibleKeys, &key, &keyLen, &ref, &rows, &extra); err != nil {
			t.Fatalf("%s %q: %s: %v", tt.table, tt.value, cond, err)
		}
		// ref and range look the index up; index and ALL scan it or the table.
		if got := key.String == "email" && (accessType == "ref" || accessType == "range"); got != tt.index {
			t.Errorf("%s %q: index lookup = %v (access %s, key %q), want %v", tt.table, tt.value, got, accessType, key.String, tt.index)
		}
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
