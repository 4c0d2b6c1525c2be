package mysql

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/internal/masking"
)

// keyChunk bounds the keys or values bound in one statement: MySQL has no
// array parameter, a prepared statement takes at most 65,535 parameters, and
// the optimizer estimates long IN lists from statistics rather than the index.
const keyChunk = 500

// Keys and values travel between statements as text: binary columns in hex,
// everything else as its utf8mb4 text.

// textOf renders ref as the text a key or value is carried as.
func textOf(col column, ref string) string {
	if col.Kind == masking.KindBytes {
		return "HEX(" + ref + ")"
	}
	return "CAST(" + ref + " AS CHAR CHARACTER SET utf8mb4)"
}

// binaryText is ref's value as UTF-8 bytes: comparing two of them is exact
// (no collation, no case or accent folding, no space padding).
func binaryText(ref string) string {
	return "CAST(CAST(" + ref + " AS CHAR CHARACTER SET utf8mb4) AS BINARY)"
}

// keyIn selects rows by primary key among keys that came from textOf. A text
// key matches only its own row even under a folding collation: the key was
// read from the table, and the primary key is unique under that collation.
func keyIn(col column, ref string, keys []string, p *masking.Params) string {
	items := make([]string, len(keys))
	for i, k := range keys {
		items[i] = keyParam(col, k, p)
	}
	return ref + " IN (" + strings.Join(items, ", ") + ")"
}

// keyParam binds one key as col's type: integers as integers (a string would
// be compared as a double, losing precision past 2^53), binary from hex.
func keyParam(col column, key string, p *masking.Params) string {
	switch col.Kind {
	case masking.KindInteger:
		if n, ok := parseInteger(key); ok {
			return p.Add(n)
		}
	case masking.KindBytes:
		return "UNHEX(" + p.Add(key) + ")"
	}
	return p.Add(key)
}

// parseInteger parses a canonical decimal integer (no sign +, no leading
// zero, no space), signed or unsigned 64-bit; anything else matches no
// integer exactly.
func parseInteger(s string) (any, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(n, 10) == s {
		return n, true
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && strconv.FormatUint(n, 10) == s {
		return n, true
	}
	return nil, false
}

// matchValues selects the rows whose column (ref) equals one of values
// exactly. hex says the values are binary, in hex. ok is false when no value
// can match the column (an identity that is not an integer, for an integer
// column): the caller then has no condition, rather than a failing one.
//
// Text is compared as UTF-8 bytes. When every value can be compared in the
// column's character set, the column's own (folding) comparison comes first,
// so its index finds the candidates; the byte comparison keeps the exact
// ones. A value the character set cannot hold (an emoji, for latin1) would
// make that first comparison fail with an illegal mix of collations, and
// cannot be in the column anyway: then only the byte comparison is made.
func matchValues(col column, ref string, values []string, hex bool, p *masking.Params) (string, bool) {
	switch {
	case hex:
		return inList(ref, values, p, func(v string, p *masking.Params) string { return "UNHEX(" + p.Add(v) + ")" })
	case col.Kind == masking.KindInteger:
		var ints []any
		for _, v := range values {
			if n, ok := parseInteger(v); ok {
				ints = append(ints, n)
			}
		}
		return inList(ref, ints, p, func(n any, p *masking.Params) string { return p.Add(n) })
	case col.Kind == masking.KindBytes:
		return inList(ref, values, p, func(v string, p *masking.Params) string { return "CAST(" + p.Add(v) + " AS BINARY)" })
	}
	valid := slices.DeleteFunc(slices.Clone(values), func(v string) bool { return !utf8.ValidString(v) })
	if len(valid) == 0 {
		return "", false // text read as utf8mb4 is valid UTF-8: nothing matches
	}
	var parts []string
	if col.Kind == masking.KindText && !slices.ContainsFunc(valid, func(v string) bool { return !indexSafe(col.Charset, v) }) {
		candidates, _ := inList(ref, valid, p, func(v string, p *masking.Params) string { return p.Add(v) })
		parts = append(parts, candidates)
	}
	exact, _ := inList(binaryText(ref), valid, p, func(v string, p *masking.Params) string { return "CAST(" + p.Add(v) + " AS BINARY)" })
	return strings.Join(append(parts, exact), " AND "), true
}

// inList renders ref IN (...) with each value bound by bind.
func inList[V any](ref string, values []V, p *masking.Params, bind func(V, *masking.Params) string) (string, bool) {
	if len(values) == 0 {
		return "", false
	}
	items := make([]string, len(values))
	for i, v := range values {
		items[i] = bind(v, p)
	}
	return ref + " IN (" + strings.Join(items, ", ") + ")", true
}

// indexSafe reports whether v can be compared with a column of charset
// without conversion loss: any value for utf8mb4, values without
// supplementary characters for utf8mb3, ASCII for the others.
func indexSafe(charset, v string) bool {
	switch charset {
	case "utf8mb4":
		return true
	case "utf8mb3", "utf8":
		return !strings.ContainsFunc(v, func(r rune) bool { return r > 0xFFFF })
	}
	return !strings.ContainsFunc(v, func(r rune) bool { return r >= utf8.RuneSelf })
}

// distinct is SQL's IS DISTINCT FROM, exact for text: a value differing only
// in case, accents or trailing spaces is still a change to write.
func distinct(col column, ref, value string) string {
	if col.Kind == masking.KindText {
		return "NOT (" + binaryText(ref) + " <=> " + binaryText(value) + ")"
	}
	return "NOT (" + ref + " <=> " + value + ")"
}
