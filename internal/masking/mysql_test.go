package masking

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

const mariadbFixture = `CREATE TABLE people (
	id     BIGINT PRIMARY KEY,
	email  VARCHAR(255) CHARACTER SET utf8mb4,
	legacy VARCHAR(255) CHARACTER SET latin1,
	phone  VARCHAR(20),
	born   DATE,
	seen   TIMESTAMP NULL,
	at     DATETIME,
	amount DECIMAL(10,2),
	n      INT,
	small  SMALLINT,
	u      UUID,
	b      VARBINARY(16)
)`

var mysqlColumns = map[string]ColumnInfo{
	"email":  {Name: "email", Type: "varchar(255)", Kind: KindText, Nullable: true, MaxLength: 255},
	"legacy": {Name: "legacy", Type: "varchar(255)", Kind: KindText, Nullable: true, MaxLength: 255},
	"phone":  {Name: "phone", Type: "varchar(20)", Kind: KindText, Nullable: true, MaxLength: 20},
	"born":   {Name: "born", Type: "date", Kind: KindDate, Nullable: true},
	"seen":   {Name: "seen", Type: "timestamp", Kind: KindTimestampTZ, Nullable: true},
	"at":     {Name: "at", Type: "datetime", Kind: KindTimestamp, Nullable: true},
	"amount": {Name: "amount", Type: "decimal(10,2)", Kind: KindDecimal, Nullable: true, IntDigits: 8},
	"n":      {Name: "n", Type: "int", Kind: KindInteger, Nullable: true, IntDigits: 9},
	"small":  {Name: "small", Type: "smallint", Kind: KindInteger, Nullable: true, IntDigits: 4},
	"u":      {Name: "u", Type: "uuid", Kind: KindUUID, Nullable: true},
	"b":      {Name: "b", Type: "varbinary(16)", Kind: KindBytes, Nullable: true},
}

// TestMariaDBExpressions runs the MySQL dialect's expressions as UPDATEs on the
// real MariaDB server and checks they mean what the Go side means.
func TestMariaDBExpressions(t *testing.T) {
	db := newMariaDB(t)
	ctx := context.Background()
	for _, stmt := range []string{
		mariadbFixture,
		`INSERT INTO people VALUES (1, 'ünïcödé@x.io', 'café', '+33 6 12 34 56 78', '1990-05-17', '2024-02-29 23:30:00', '2024-03-15 10:00:00', 1234.56, -3, 12, '5b3f1c2e-8d4a-4f6b-9c1d-2e3f4a5b6c7d', x'0102')`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	goMask := func(m *privacyv1.Masking, pk, value string) string {
		t.Helper()
		s, err := MaskString(m, testKey, pk, value)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	year := &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "year"}
	tests := []struct {
		name   string
		column string
		m      *privacyv1.Masking
		check  func(*string) string
	}{
		{"hash matches Go (UTF-8)", "email", mask(privacyv1.MaskHash), equals(goMask(mask(privacyv1.MaskHash), "1", "ünïcödé@x.io"))},
		{"hash digests latin1 as UTF-8", "legacy", mask(privacyv1.MaskHash), equals(goMask(mask(privacyv1.MaskHash), "1", "café"))},
		{"uniqueEmail matches Go", "email", mask(privacyv1.MaskUniqueEmail), equals(goMask(mask(privacyv1.MaskUniqueEmail), "1", ""))},
		{"redact", "email", mask(privacyv1.MaskRedact), equals("[redacted]")},
		{"partial counts characters", "email", partial(4), equals("********x.io")},
		{"partial matches Go", "phone", partial(2), equals(goMask(partial(2), "1", "+33 6 12 34 56 78"))},
		{"nullify", "phone", mask(privacyv1.MaskNullify), isNull},
		{"generalize date", "born", year, equals("1990-01-01")},
		{"generalize timestamp in UTC session", "seen", mask(privacyv1.MaskGeneralize), equals("2024-02-01 00:00:00")},
		{"generalize datetime", "at", mask(privacyv1.MaskGeneralize), equals("2024-03-01 00:00:00")},
		{"generalize decimal", "amount", mask(privacyv1.MaskGeneralize), equals("1230.00")},
		{"generalize negative integer", "n", mask(privacyv1.MaskGeneralize), equals("-10")},
		{"randomize text", "email", mask(privacyv1.MaskRandomize), matches(`^[0-9a-f]{32}$`)},
		{"randomize fits varchar(20)", "phone", mask(privacyv1.MaskRandomize), matches(`^[0-9a-f]{20}$`)},
		{"randomize fits smallint", "small", mask(privacyv1.MaskRandomize), intBelow(10000)},
		{"randomize date", "born", mask(privacyv1.MaskRandomize), matches(`^(19[89]\d|20[01]\d)-\d\d-\d\d$`)},
		{"randomize timestamp", "seen", mask(privacyv1.MaskRandomize), matches(`^(19[89]\d|20[01]\d)-`)},
		{"randomize uuid", "u", mask(privacyv1.MaskRandomize), matches(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$`)},
		{"randomize binary", "b", mask(privacyv1.MaskRandomize), matches(`^[0-9A-F]{32}$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if complaint := tt.check(mariadbUpdate(t, db, tt.column, tt.m)); complaint != "" {
				t.Fatal(complaint)
			}
		})
	}
}

// mariadbUpdate masks row 1's column in a transaction it rolls back and
// returns the stored value as text (binary values in hex).
func mariadbUpdate(t *testing.T, db *sql.DB, column string, m *privacyv1.Masking) *string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	p := NewParams(MySQL)
	ref := "`" + column + "`"
	expr, err := MySQL.Expr(m, Target{Column: mysqlColumns[column], Ref: ref, PrimaryKey: "`id`"}, testKey, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE people SET "+ref+" = "+expr+" WHERE id = 1", p.Values()...); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	read := "CAST(" + ref + " AS CHAR)"
	if mysqlColumns[column].Kind == KindBytes {
		read = "HEX(" + ref + ")"
	}
	var got sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT "+read+" FROM people WHERE id = 1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Valid {
		return nil
	}
	return &got.String
}

// newMariaDB creates a throwaway database on the server of
// LETHE_TEST_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/), in UTC.
func newMariaDB(t *testing.T) *sql.DB {
	t.Helper()
	dsn := os.Getenv("LETHE_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/"
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	name := "lethe_masking_" + strings.ToLower(randomHex()[:12])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating a MariaDB test database: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE " + name) })
	cfg.DBName = name
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}
