package masking

import (
	"fmt"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// MySQL renders for MySQL 8 and MariaDB 10.10 and later (RANDOM_BYTES). Text
// is digested as utf8mb4 whatever the column's character set, so digests
// match MaskString and PostgreSQL. TIMESTAMP columns are generalized in the
// session's time zone: engines set it to UTC.
var MySQL Dialect = mysqlDialect{}

type mysqlDialect struct{}

func (mysqlDialect) Placeholder(int) string { return "?" }

func (d mysqlDialect) Expr(m *privacyv1.Masking, t Target, key []byte, p *Params) (string, error) {
	if err := validate(m, t, key); err != nil {
		return "", err
	}
	switch m.Strategy {
	case privacyv1.MaskNullify:
		return "NULL", nil
	case privacyv1.MaskRedact:
		return p.Add(redactValue(m)), nil
	case privacyv1.MaskHash:
		return d.hmac(p, key, t.Ref), nil
	case privacyv1.MaskPartial:
		return fmt.Sprintf("CONCAT(REPEAT('*', GREATEST(CHAR_LENGTH(%[1]s) - %[2]d, 0)), RIGHT(%[1]s, %[2]d))", t.Ref, keepLast(m)), nil
	case privacyv1.MaskRandomize:
		return d.random(t.Column), nil
	case privacyv1.MaskGeneralize:
		return d.generalize(m, t), nil
	default: // uniqueEmail; validate refused unknown strategies
		digest := d.hmac(p, key, "CAST("+t.PrimaryKey+" AS CHAR)")
		dom := p.Add(domain(m))
		return fmt.Sprintf("CONCAT('erased-', LEFT(%s, %d), '@', %s)", digest, emailDigestLength, dom), nil
	}
}

// hmac renders HMAC-SHA256(key, value as UTF-8 text) in hex with SHA2() and
// the precomputed pads (see hmacPads); CONCAT with a binary pad is binary.
func (mysqlDialect) hmac(p *Params, key []byte, value string) string {
	inner, outer := hmacPads(key)
	o, i := p.Add(outer), p.Add(inner)
	return fmt.Sprintf("SHA2(CONCAT(%s, UNHEX(SHA2(CONCAT(%s, CONVERT(%s USING utf8mb4)), 256))), 256)", o, i, value)
}

func (mysqlDialect) random(col ColumnInfo) string {
	switch col.Kind {
	case KindText:
		return fmt.Sprintf("LEFT(LOWER(HEX(RANDOM_BYTES(16))), %d)", randomTextLen(col))
	case KindDate:
		return fmt.Sprintf("DATE_ADD(DATE '1980-01-01', INTERVAL FLOOR(RAND() * %d) DAY)", randomDateDays)
	case KindTimestamp, KindTimestampTZ:
		return fmt.Sprintf("DATE_ADD(TIMESTAMP '1980-01-01 00:00:00', INTERVAL FLOOR(RAND() * %d) SECOND)", randomTimeSeconds)
	case KindBoolean:
		return "RAND() < 0.5"
	case KindUUID:
		// A version 4 UUID (MariaDB's UUID type refuses other versions and variants).
		return "LOWER(CONCAT_WS('-', HEX(RANDOM_BYTES(4)), HEX(RANDOM_BYTES(2)), CONCAT('4', SUBSTR(HEX(RANDOM_BYTES(2)), 2)), CONCAT('8', SUBSTR(HEX(RANDOM_BYTES(2)), 2)), HEX(RANDOM_BYTES(6))))"
	case KindBytes:
		return "RANDOM_BYTES(16)"
	default: // numbers; Check refused the other kinds
		return fmt.Sprintf("FLOOR(RAND() * %d)", randomBound(col))
	}
}

func (mysqlDialect) generalize(m *privacyv1.Masking, t Target) string {
	format := "'%Y-%m-01'"
	if granularity(m) == "year" {
		format = "'%Y-01-01'"
	}
	switch t.Column.Kind {
	case KindDate:
		return "CAST(DATE_FORMAT(" + t.Ref + ", " + format + ") AS DATE)"
	case KindTimestamp, KindTimestampTZ:
		return "CAST(DATE_FORMAT(" + t.Ref + ", " + format + ") AS DATETIME)"
	default: // numbers
		return fmt.Sprintf("FLOOR(%s / %[2]d) * %[2]d", t.Ref, step(m))
	}
}
