package masking

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

var fuzzStrategies = []privacyv1.MaskingStrategy{
	privacyv1.MaskNullify, privacyv1.MaskRedact, privacyv1.MaskHash, privacyv1.MaskPartial,
	privacyv1.MaskRandomize, privacyv1.MaskGeneralize, privacyv1.MaskUniqueEmail, "shuffle",
}

var fuzzKinds = []Kind{KindOther, KindText, KindInteger, KindDecimal, KindFloat, KindDate, KindTimestamp, KindTimestampTZ, KindBoolean, KindUUID, KindBytes}

var pgPlaceholder = regexp.MustCompile(`\$([0-9]+)`)

// domainPattern is Masking.Domain's admission pattern: a DNS name, ASCII.
var domainPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// sameShape returns a string of the same length in characters as s, but
// different from it wherever s is not empty, so Check (which looks at
// lengths) decides alike for both.
func sameShape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == 'x' {
			b.WriteRune('y')
		} else {
			b.WriteRune('x')
		}
	}
	return b.String()
}

// FuzzRender renders every strategy for every column kind in both dialects
// with arbitrary redact values, keys, domains and parameters, and checks:
//   - the SQL text does not depend on the redact value, the key or the domain
//     (rendering with other ones of the same length gives the same text), so
//     none of them is ever inline;
//   - the bound parameters line up with the placeholders ($1..$n each used,
//     or as many ? as parameters);
//   - what is inline is validated: granularity is month or year, keepLast and
//     step are the integers given, and a failure never quotes the value.
//
// MaskString, the Go rendering, must never panic and must keep partial's length.
func FuzzRender(f *testing.F) {
	f.Add(uint8(1), uint8(1), "[redacted]", []byte("key"), "erased.invalid", "", int32(3), int64(10), uint16(0), true, false, false)
	f.Add(uint8(6), uint8(1), "'; DROP TABLE x; --", []byte("k'ey"), "x.io", "", int32(0), int64(1), uint16(64), false, true, true)
	f.Add(uint8(5), uint8(6), "", []byte{}, "", "year'; --", int32(0), int64(-5), uint16(0), true, false, true)
	f.Add(uint8(3), uint8(1), "$1 ? ?", []byte("\x00"), "a.b", "", int32(-1), int64(0), uint16(3), true, false, false)
	f.Fuzz(func(t *testing.T, strategy, kind uint8, value string, key []byte, domain, granularity string,
		keepLast int32, step int64, maxLen uint16, nullable, unique, mysql bool) {
		if !domainPattern.MatchString(domain) {
			domain = "" // admission refuses it; the default applies
		}
		m := &privacyv1.Masking{Strategy: fuzzStrategies[int(strategy)%len(fuzzStrategies)], Domain: domain, Granularity: granularity}
		switch m.Strategy {
		case privacyv1.MaskRedact:
			m.Value = &value
		case privacyv1.MaskPartial:
			m.KeepLast = &keepLast
		case privacyv1.MaskGeneralize:
			m.Step = &step
		}
		col := ColumnInfo{Name: "c", Type: "t", Kind: fuzzKinds[int(kind)%len(fuzzKinds)], Nullable: nullable, Unique: unique, MaxLength: int(maxLen)}
		var d Dialect = Postgres
		if mysql {
			d = MySQL
		}
		tgt := Target{Column: col, Ref: `"c"`, PrimaryKey: `"id"`}

		p := NewParams(d)
		sql, err := d.Expr(m, tgt, key, p)

		other := *m
		otherValue := sameShape(value)
		if m.Value != nil {
			other.Value = &otherValue
		}
		other.Domain = sameShape(domain)
		otherKey := bytes.Clone(key)
		for i := range otherKey {
			otherKey[i] ^= 0xff
		}
		p2 := NewParams(d)
		sql2, err2 := d.Expr(&other, tgt, otherKey, p2)

		if (err == nil) != (err2 == nil) {
			t.Fatalf("the verdict depends on the value, key or domain: %v / %v", err, err2)
		}
		if err != nil {
			if len(value) >= 3 && strings.Contains(err.Error(), value) {
				t.Fatalf("error quotes the value: %v", err)
			}
			return
		}
		if sql != sql2 {
			t.Fatalf("SQL depends on the value, key or domain (so one of them is inline):\n%s\n%s", sql, sql2)
		}
		checkPlaceholders(t, d, sql, len(p.Values()))
		if m.Strategy == privacyv1.MaskRedact && !containsValue(p.Values(), value) {
			t.Fatalf("redact does not bind its value: %v", p.Values())
		}
		if m.Strategy == privacyv1.MaskGeneralize && granularity != "" && granularity != "month" && granularity != "year" {
			t.Fatalf("granularity %q rendered: %s", granularity, sql)
		}
		if m.Strategy == privacyv1.MaskGeneralize && step < 1 {
			t.Fatalf("step %d rendered: %s", step, sql)
		}
		if m.Strategy == privacyv1.MaskPartial && (keepLast < 0 || !strings.Contains(sql, strconv.Itoa(int(keepLast)))) {
			t.Fatalf("keepLast %d rendered as %s", keepLast, sql)
		}

		if out, err := MaskString(m, key, "pk", value); err == nil && m.Strategy == privacyv1.MaskPartial &&
			utf8.RuneCountInString(out) != utf8.RuneCountInString(value) {
			t.Fatalf("partial changed the length: %q -> %q", value, out)
		}
	})
}

func containsValue(values []any, v string) bool {
	for _, x := range values {
		if s, ok := x.(string); ok && s == v {
			return true
		}
	}
	return false
}

// checkPlaceholders: positional ? count equals the parameters; numbered
// placeholders are exactly $1..$n.
func checkPlaceholders(t *testing.T, d Dialect, sql string, n int) {
	t.Helper()
	if d == MySQL {
		if got := strings.Count(sql, "?"); got != n {
			t.Fatalf("%d ? placeholders for %d parameters: %s", got, n, sql)
		}
		return
	}
	seen := map[int]bool{}
	for _, m := range pgPlaceholder.FindAllStringSubmatch(sql, -1) {
		i, _ := strconv.Atoi(m[1])
		if i < 1 || i > n {
			t.Fatalf("placeholder $%d but %d parameters: %s", i, n, sql)
		}
		seen[i] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d parameters used: %s", len(seen), n, sql)
	}
}
