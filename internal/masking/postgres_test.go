package masking

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testdb"
)

const maskingFixture = `
SET TIME ZONE 'UTC';
CREATE TABLE people (
	id       bigint PRIMARY KEY,
	email    text,
	phone    varchar(20),
	code     varchar(8),
	born     date,
	seen     timestamptz,
	at       timestamp,
	amount   numeric(10,2),
	n        integer,
	small    smallint,
	flag     boolean,
	u        uuid,
	b        bytea
);
INSERT INTO people VALUES
	(1, 'ünïcödé@x.io', '+33 6 12 34 56 78', 'ABCDEFGH', '1990-05-17', '2024-03-01 01:30:00+02', '2024-03-15 10:00:00', 1234.56, 37, 12, true, '5b3f1c2e-8d4a-4f6b-9c1d-2e3f4a5b6c7d', '\x0102'),
	(2, NULL, NULL, NULL, NULL, NULL, NULL, -3.5, -3, NULL, NULL, NULL, NULL);
`

var pgColumns = map[string]ColumnInfo{
	"email":  {Name: "email", Type: "text", Kind: KindText, Nullable: true},
	"phone":  {Name: "phone", Type: "character varying(20)", Kind: KindText, Nullable: true, MaxLength: 20},
	"code":   {Name: "code", Type: "character varying(8)", Kind: KindText, Nullable: true, MaxLength: 8},
	"born":   {Name: "born", Type: "date", Kind: KindDate, Nullable: true},
	"seen":   {Name: "seen", Type: "timestamp with time zone", Kind: KindTimestampTZ, Nullable: true},
	"at":     {Name: "at", Type: "timestamp without time zone", Kind: KindTimestamp, Nullable: true},
	"amount": {Name: "amount", Type: "numeric(10,2)", Kind: KindDecimal, Nullable: true, IntDigits: 8},
	"n":      {Name: "n", Type: "integer", Kind: KindInteger, Nullable: true, IntDigits: 9},
	"small":  {Name: "small", Type: "smallint", Kind: KindInteger, Nullable: true, IntDigits: 4},
	"flag":   {Name: "flag", Type: "boolean", Kind: KindBoolean, Nullable: true},
	"u":      {Name: "u", Type: "uuid", Kind: KindUUID, Nullable: true},
	"b":      {Name: "b", Type: "bytea", Kind: KindBytes, Nullable: true},
}

// TestPostgresExpressions runs every rendered expression as an UPDATE of the
// real column (so assignment casts are exercised too) and compares the stored
// result with the Go semantics.
func TestPostgresExpressions(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testdb.NewPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, maskingFixture); err != nil {
		t.Fatal(err)
	}
	goMask := func(m *privacyv1.Masking, pk, value string) string {
		t.Helper()
		s, err := MaskString(m, testKey, pk, value)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	longKey := []byte(strings.Repeat("a key longer than the 64-byte block ", 3))
	year := &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "year"}
	hundreds := &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Step: ptr(int64(100))}
	quote := "it's -- [gone]"
	tests := []struct {
		name   string
		column string
		m      *privacyv1.Masking
		key    []byte
		id     int
		check  func(got *string) string // returns a complaint, or ""
	}{
		{"hash matches Go (UTF-8)", "email", mask(privacyv1.MaskHash), testKey, 1, equals(goMask(mask(privacyv1.MaskHash), "1", "ünïcödé@x.io"))},
		{"hash with a long key matches HMAC", "email", mask(privacyv1.MaskHash), longKey, 1, equals(hmacHex(longKey, "ünïcödé@x.io"))},
		{"hash keeps NULL", "email", mask(privacyv1.MaskHash), testKey, 2, isNull},
		{"uniqueEmail matches Go", "email", mask(privacyv1.MaskUniqueEmail), testKey, 1, equals(goMask(mask(privacyv1.MaskUniqueEmail), "1", ""))},
		{"redact binds quotes", "email", &privacyv1.Masking{Strategy: privacyv1.MaskRedact, Value: &quote}, nil, 1, equals(quote)},
		{"partial matches Go", "phone", partial(2), nil, 1, equals(goMask(partial(2), "1", "+33 6 12 34 56 78"))},
		{"partial counts characters", "email", partial(4), nil, 1, equals("********x.io")},
		{"partial keeps NULL", "phone", partial(2), nil, 2, isNull},
		{"nullify", "phone", mask(privacyv1.MaskNullify), nil, 1, isNull},
		{"generalize date to year", "born", year, nil, 1, equals("1990-01-01")},
		{"generalize date to month", "born", mask(privacyv1.MaskGeneralize), nil, 1, equals("1990-05-01")},
		{"generalize timestamptz in UTC", "seen", mask(privacyv1.MaskGeneralize), nil, 1, equals("2024-02-01 00:00:00+00")},
		{"generalize timestamp", "at", year, nil, 1, equals("2024-01-01 00:00:00")},
		{"generalize decimal", "amount", hundreds, nil, 1, equals("1200.00")},
		{"generalize negative decimal", "amount", mask(privacyv1.MaskGeneralize), nil, 2, equals("-10.00")},
		{"generalize negative integer", "n", mask(privacyv1.MaskGeneralize), nil, 2, equals(goMask(mask(privacyv1.MaskGeneralize), "2", "-3"))},
		{"randomize text", "email", mask(privacyv1.MaskRandomize), nil, 1, matches(`^[0-9a-f]{32}$`)},
		{"randomize fits varchar(8)", "code", mask(privacyv1.MaskRandomize), nil, 1, matches(`^[0-9a-f]{8}$`)},
		{"randomize fits smallint", "small", mask(privacyv1.MaskRandomize), nil, 1, intBelow(10000)},
		{"randomize integer", "n", mask(privacyv1.MaskRandomize), nil, 1, intBelow(1000000000)},
		{"randomize date", "born", mask(privacyv1.MaskRandomize), nil, 1, matches(`^(19[89]\d|20[01]\d)-\d\d-\d\d$`)},
		{"randomize timestamptz", "seen", mask(privacyv1.MaskRandomize), nil, 1, matches(`^(19[89]\d|20[01]\d)-`)},
		{"randomize boolean", "flag", mask(privacyv1.MaskRandomize), nil, 1, matches(`^(true|false)$`)},
		{"randomize uuid", "u", mask(privacyv1.MaskRandomize), nil, 1, matches(`^[0-9a-f-]{36}$`)},
		{"randomize bytea", "b", mask(privacyv1.MaskRandomize), nil, 1, matches(`^\\x[0-9a-f]{32}$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := updateReturning(t, conn, tt.column, tt.m, tt.key, tt.id)
			if complaint := tt.check(got); complaint != "" {
				t.Fatal(complaint)
			}
		})
	}
}

// updateReturning masks one row's column in a transaction it rolls back, and
// returns the stored value as text.
func updateReturning(t *testing.T, conn *pgx.Conn, column string, m *privacyv1.Masking, key []byte, id int) *string {
	t.Helper()
	ctx := context.Background()
	p := NewParams(Postgres)
	ref := pgx.Identifier{column}.Sanitize()
	expr, err := Postgres.Expr(m, Target{Column: pgColumns[column], Ref: ref, PrimaryKey: `"id"`}, key, p)
	if err != nil {
		t.Fatal(err)
	}
	sql := "UPDATE people SET " + ref + " = " + expr + " WHERE id = " + p.Add(id) + " RETURNING CAST(" + ref + " AS text)"
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var got *string
	if err := tx.QueryRow(ctx, sql, p.Values()...).Scan(&got); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

func show(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strconv.Quote(*s)
}

func equals(want string) func(*string) string {
	return func(got *string) string {
		if got == nil || *got != want {
			return "got " + show(got) + ", want " + strconv.Quote(want)
		}
		return ""
	}
}

func isNull(got *string) string {
	if got != nil {
		return "got " + show(got) + ", want NULL"
	}
	return ""
}

func matches(pattern string) func(*string) string {
	return func(got *string) string {
		if got == nil || !regexp.MustCompile(pattern).MatchString(*got) {
			return "got " + show(got) + ", want a match of " + pattern
		}
		return ""
	}
}

func intBelow(bound int64) func(*string) string {
	return func(got *string) string {
		if got == nil {
			return "got NULL"
		}
		n, err := strconv.ParseInt(*got, 10, 64)
		if err != nil || n < 0 || n >= bound {
			return "got " + show(got) + ", want an integer in [0, " + strconv.FormatInt(bound, 10) + ")"
		}
		return ""
	}
}
