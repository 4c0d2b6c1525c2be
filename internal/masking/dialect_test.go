package masking

import (
	"bytes"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func target(col ColumnInfo) Target {
	return Target{Column: col, Ref: `"` + col.Name + `"`, PrimaryKey: `"id"`}
}

func TestRender(t *testing.T) {
	date := ColumnInfo{Name: "born", Type: "date", Kind: KindDate, Nullable: true}
	stamp := ColumnInfo{Name: "seen", Type: "timestamp with time zone", Kind: KindTimestampTZ, Nullable: true}
	small := ColumnInfo{Name: "n", Type: "smallint", Kind: KindInteger, Nullable: true, IntDigits: 4}
	year := &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "year"}
	tests := []struct {
		name    string
		d       Dialect
		m       *privacyv1.Masking
		col     ColumnInfo
		want    string
		nParams int
	}{
		{"pg nullify", Postgres, mask(privacyv1.MaskNullify), textCol(), `NULL`, 0},
		{"pg redact binds the value", Postgres, mask(privacyv1.MaskRedact), textCol(), `CAST($2 AS text)`, 1},
		{"pg hash", Postgres, mask(privacyv1.MaskHash), textCol(), `encode(sha256(CAST($2 AS bytea) || sha256(CAST($3 AS bytea) || convert_to(CAST("c" AS text), 'UTF8'))), 'hex')`, 2},
		{"pg partial", Postgres, partial(3), textCol(), `repeat('*', greatest(char_length("c") - 3, 0)) || right("c", 3)`, 0},
		{"pg uniqueEmail", Postgres, mask(privacyv1.MaskUniqueEmail), textCol(), `'erased-' || left(encode(sha256(CAST($2 AS bytea) || sha256(CAST($3 AS bytea) || convert_to(CAST("id" AS text), 'UTF8'))), 'hex'), 32) || '@' || CAST($4 AS text)`, 3},
		{"pg generalize date", Postgres, year, date, `CAST(date_trunc('year', CAST("born" AS timestamp)) AS date)`, 0},
		{"pg generalize timestamptz in UTC", Postgres, mask(privacyv1.MaskGeneralize), stamp, `date_trunc('month', "seen", 'UTC')`, 0},
		{"pg generalize number", Postgres, mask(privacyv1.MaskGeneralize), small, `floor(CAST("n" AS numeric) / 10) * 10`, 0},
		{"pg randomize smallint", Postgres, mask(privacyv1.MaskRandomize), small, `floor(random() * 10000)`, 0},
		{"mysql redact", MySQL, mask(privacyv1.MaskRedact), textCol(), `?`, 1},
		{"mysql hash", MySQL, mask(privacyv1.MaskHash), textCol(), "SHA2(CONCAT(?, UNHEX(SHA2(CONCAT(?, CONVERT(\"c\" USING utf8mb4)), 256))), 256)", 2},
		{"mysql partial", MySQL, partial(3), textCol(), `CONCAT(REPEAT('*', GREATEST(CHAR_LENGTH("c") - 3, 0)), RIGHT("c", 3))`, 0},
		{"mysql uniqueEmail", MySQL, mask(privacyv1.MaskUniqueEmail), textCol(), `CONCAT('erased-', LEFT(SHA2(CONCAT(?, UNHEX(SHA2(CONCAT(?, CONVERT(CAST("id" AS CHAR) USING utf8mb4)), 256))), 256), 32), '@', ?)`, 3},
		{"mysql generalize date", MySQL, year, date, `CAST(DATE_FORMAT("born", '%Y-01-01') AS DATE)`, 0},
		{"mysql generalize timestamp", MySQL, mask(privacyv1.MaskGeneralize), stamp, `CAST(DATE_FORMAT("seen", '%Y-%m-01') AS DATETIME)`, 0},
		{"mysql generalize number", MySQL, mask(privacyv1.MaskGeneralize), small, `FLOOR("n" / 10) * 10`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParams(tt.d)
			p.Add("first") // the expression sits inside a statement with earlier parameters
			got, err := tt.d.Expr(tt.m, target(tt.col), testKey, p)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Expr() =\n%s\nwant\n%s", got, tt.want)
			}
			if n := len(p.Values()) - 1; n != tt.nParams {
				t.Fatalf("Expr() bound %d parameters, want %d", n, tt.nParams)
			}
		})
	}
}

// The key and the redact value are bound parameters; the SQL text holds neither.
func TestRenderBindsKeyAndValues(t *testing.T) {
	value := "O'Brien -- secret"
	redact := &privacyv1.Masking{Strategy: privacyv1.MaskRedact, Value: &value}
	for _, d := range []Dialect{Postgres, MySQL} {
		for _, m := range []*privacyv1.Masking{mask(privacyv1.MaskHash), mask(privacyv1.MaskUniqueEmail), redact} {
			p := NewParams(d)
			sql, err := d.Expr(m, target(textCol()), testKey, p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(sql, string(testKey)) || strings.Contains(sql, "Brien") {
				t.Errorf("%T %s inlines the key or value: %s", d, m.Strategy, sql)
			}
			for _, v := range p.Values() {
				if b, ok := v.([]byte); ok && bytes.Contains(b, testKey) {
					t.Errorf("%T %s binds the raw key, want only the HMAC pads", d, m.Strategy)
				}
			}
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	notNull := textCol()
	notNull.Nullable = false
	for _, d := range []Dialect{Postgres, MySQL} {
		if _, err := d.Expr(mask(privacyv1.MaskNullify), target(notNull), testKey, NewParams(d)); err == nil || !strings.Contains(err.Error(), "NOT NULL") {
			t.Errorf("%T: nullify on a NOT NULL column: error = %v", d, err)
		}
		if _, err := d.Expr(mask(privacyv1.MaskHash), target(textCol()), nil, NewParams(d)); err == nil || !strings.Contains(err.Error(), "maskingKeySecretRef") {
			t.Errorf("%T: hash without key: error = %v", d, err)
		}
	}
}
