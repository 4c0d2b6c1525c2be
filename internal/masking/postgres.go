package masking

import (
	"fmt"
	"strconv"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Postgres renders for PostgreSQL 13 and later with no extension: the digests
// use the built-in sha256() (PostgreSQL 11) and random values gen_random_uuid()
// (PostgreSQL 13), never pgcrypto.
var Postgres Dialect = postgresDialect{}

type postgresDialect struct{}

func (postgresDialect) Placeholder(n int) string { return "$" + strconv.Itoa(n) }

func (d postgresDialect) Expr(m *privacyv1.Masking, t Target, key []byte, p *Params) (string, error) {
	if err := validate(m, t, key); err != nil {
		return "", err
	}
	switch m.Strategy {
	case privacyv1.MaskNullify:
		return "NULL", nil
	case privacyv1.MaskRedact:
		return "CAST(" + p.Add(redactValue(m)) + " AS text)", nil
	case privacyv1.MaskHash:
		return d.hmac(p, key, t.Ref), nil
	case privacyv1.MaskPartial:
		return fmt.Sprintf("repeat('*', greatest(char_length(%[1]s) - %[2]d, 0)) || right(%[1]s, %[2]d)", t.Ref, keepLast(m)), nil
	case privacyv1.MaskRandomize:
		return d.random(t.Column), nil
	case privacyv1.MaskGeneralize:
		return d.generalize(m, t), nil
	default: // uniqueEmail; validate refused unknown strategies
		digest := d.hmac(p, key, t.PrimaryKey)
		dom := p.Add(domain(m))
		return fmt.Sprintf("'erased-' || left(%s, %d) || '@' || CAST(%s AS text)", digest, emailDigestLength, dom), nil
	}
}

// hmac renders HMAC-SHA256(key, value as UTF-8 text) in hex, built from the
// built-in sha256() and the precomputed pads (see hmacPads).
func (postgresDialect) hmac(p *Params, key []byte, value string) string {
	inner, outer := hmacPads(key)
	o, i := p.Add(outer), p.Add(inner)
	return fmt.Sprintf("encode(sha256(CAST(%s AS bytea) || sha256(CAST(%s AS bytea) || convert_to(CAST(%s AS text), 'UTF8'))), 'hex')", o, i, value)
}

func (postgresDialect) random(col ColumnInfo) string {
	switch col.Kind {
	case KindText:
		return fmt.Sprintf("left(replace(CAST(gen_random_uuid() AS text), '-', ''), %d)", randomTextLen(col))
	case KindDate:
		return fmt.Sprintf("DATE '1980-01-01' + CAST(floor(random() * %d) AS integer)", randomDateDays)
	case KindTimestamp:
		return fmt.Sprintf("TIMESTAMP '1980-01-01 00:00:00' + floor(random() * %d) * INTERVAL '1 second'", randomTimeSeconds)
	case KindTimestampTZ:
		return fmt.Sprintf("TIMESTAMPTZ '1980-01-01 00:00:00+00' + floor(random() * %d) * INTERVAL '1 second'", randomTimeSeconds)
	case KindBoolean:
		return "random() < 0.5"
	case KindUUID:
		return "gen_random_uuid()"
	case KindBytes:
		return "uuid_send(gen_random_uuid())"
	default: // numbers; Check refused the other kinds
		return fmt.Sprintf("floor(random() * %d)", randomBound(col))
	}
}

func (postgresDialect) generalize(m *privacyv1.Masking, t Target) string {
	switch t.Column.Kind {
	case KindDate:
		return fmt.Sprintf("CAST(date_trunc('%s', CAST(%s AS timestamp)) AS date)", granularity(m), t.Ref)
	case KindTimestamp:
		return fmt.Sprintf("date_trunc('%s', %s)", granularity(m), t.Ref)
	case KindTimestampTZ:
		// Truncated in UTC whatever the session's time zone, as MaskString does.
		return fmt.Sprintf("date_trunc('%s', %s, 'UTC')", granularity(m), t.Ref)
	default: // numbers; floor() rounds towards minus infinity, unlike integer division
		return fmt.Sprintf("floor(CAST(%s AS numeric) / %[2]d) * %[2]d", t.Ref, step(m))
	}
}
