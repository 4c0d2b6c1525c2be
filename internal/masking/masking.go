// Package masking gives every masking strategy one meaning and renders it for
// each engine: as a SQL expression per dialect, so anonymisation runs inside
// the database and set-based, and in Go (MaskString) for engines without SQL.
//
// The keyed strategies (hash, uniqueEmail) are HMAC-SHA256 under the
// DataStore's masking key, computed identically in Go and in SQL, so the same
// value gives the same digest in every engine of a store.
package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strings"
	"unicode/utf8"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Defaults of the optional masking parameters.
const (
	DefaultRedactValue = "[redacted]"
	DefaultStep        = 10
	DefaultDomain      = "erased.invalid"
	DefaultGranularity = "month"
)

const (
	// hashLength is the length of a hash result: SHA-256 in hex.
	hashLength = 2 * sha256.Size
	// emailDigestLength is the hex digest length uniqueEmail keeps: 128 bits,
	// which keeps the local part (erased-<digest>) within RFC 5321's 64 characters.
	emailDigestLength = 32
	// randomTextLength is the length of random text: 128 bits in hex.
	randomTextLength = 32
	// randomMaxDigits bounds random integers to 10^9 so they fit a 32-bit column.
	randomMaxDigits = 9
	// The random dates and timestamps randomize writes lie in [1980-01-01, 2020-01-01).
	randomDateDays    = 14610
	randomTimeSeconds = 1262304000
)

// Kind is the family of a column type; it decides which strategies fit.
type Kind int

const (
	// KindOther is any type without a family below (json, arrays, network
	// addresses...): only nullify fits it.
	KindOther Kind = iota
	KindText
	KindInteger
	KindDecimal
	KindFloat
	KindDate
	// KindTimestamp is a timestamp without time zone (MySQL DATETIME).
	KindTimestamp
	// KindTimestampTZ is a timestamp with time zone (MySQL TIMESTAMP).
	KindTimestampTZ
	KindBoolean
	KindUUID
	KindBytes
)

var kindNames = map[Kind]string{
	KindOther: "other", KindText: "text", KindInteger: "integer", KindDecimal: "decimal",
	KindFloat: "floating point", KindDate: "date", KindTimestamp: "timestamp",
	KindTimestampTZ: "timestamp with time zone", KindBoolean: "boolean", KindUUID: "uuid", KindBytes: "binary",
}

func (k Kind) String() string { return kindNames[k] }

func (k Kind) numeric() bool { return k == KindInteger || k == KindDecimal || k == KindFloat }

func (k Kind) temporal() bool { return k == KindDate || k == KindTimestamp || k == KindTimestampTZ }

// ColumnInfo is what the live schema says about a column.
type ColumnInfo struct {
	Name string
	// Type as the database spells it, such as character varying(64); for messages.
	Type     string
	Kind     Kind
	Nullable bool
	// Unique: the column is part of a primary key, unique constraint or unique index.
	Unique bool
	// MaxLength of a text column, in characters; 0 when unbounded.
	MaxLength int
	// IntDigits is how many decimal digits left of the point a numeric column
	// always holds (4 for smallint, 9 for integer); 0 when unbounded or unknown.
	IntDigits int
}

func (c ColumnInfo) describe() string {
	parts := []string{c.Type}
	if !c.Nullable {
		parts = append(parts, "NOT NULL")
	}
	if c.Unique {
		parts = append(parts, "UNIQUE")
	}
	return strings.Join(parts, ", ")
}

// Check reports whether m can mask col. A strategy that cannot apply is an
// error that says why and what to use instead: Lethe never skips a field silently.
// A nil m (a field without masking) always passes.
func Check(m *privacyv1.Masking, col ColumnInfo) error {
	if m == nil {
		return nil
	}
	var problem string
	switch m.Strategy {
	case privacyv1.MaskNullify:
		problem = checkNullify(col)
	case privacyv1.MaskRedact:
		problem = checkRedact(m, col)
	case privacyv1.MaskHash:
		problem = checkText(col, "a 64-character hex digest", hashLength)
	case privacyv1.MaskPartial:
		problem = checkPartial(m, col)
	case privacyv1.MaskRandomize:
		problem = checkRandomize(col)
	case privacyv1.MaskGeneralize:
		problem = checkGeneralize(m, col)
	case privacyv1.MaskUniqueEmail:
		problem = checkText(col, "an email-shaped value", len(uniqueEmail(m, strings.Repeat("0", emailDigestLength))))
	default:
		problem = "unknown strategy"
	}
	if problem == "" {
		return nil
	}
	return fmt.Errorf("masking %s cannot apply to column %q (%s): %s", m.Strategy, col.Name, col.describe(), problem)
}

func checkNullify(col ColumnInfo) string {
	if !col.Nullable {
		return "the column is NOT NULL; allow NULL in it, or use a strategy that writes a value (redact, hash, randomize, uniqueEmail)"
	}
	return ""
}

// checkText checks a strategy that writes text of the given length.
func checkText(col ColumnInfo, writes string, length int) string {
	if col.Kind != KindText {
		return fmt.Sprintf("it writes %s but the column holds %s values; use nullify, randomize or generalize", writes, col.Kind)
	}
	if col.MaxLength > 0 && length > col.MaxLength {
		return fmt.Sprintf("it writes %d characters but the column holds at most %d; widen the column", length, col.MaxLength)
	}
	return ""
}

func checkRedact(m *privacyv1.Masking, col ColumnInfo) string {
	if col.Unique {
		return "every anonymized row would get the same value, which the unique constraint refuses; use uniqueEmail or hash"
	}
	return checkText(col, "a fixed text", utf8.RuneCountInString(redactValue(m)))
}

func checkPartial(m *privacyv1.Masking, col ColumnInfo) string {
	if m.KeepLast == nil || *m.KeepLast < 0 {
		return "keepLast is required and must not be negative"
	}
	if col.Unique {
		return "values of the same length and ending would mask to the same value, which the unique constraint refuses; use hash or uniqueEmail"
	}
	return checkText(col, "masked text", 0)
}

func checkRandomize(col ColumnInfo) string {
	switch {
	case col.Kind == KindOther:
		return fmt.Sprintf("there is no random value for type %s; use nullify", col.Type)
	case !col.Unique, col.Kind == KindUUID, col.Kind == KindBytes:
		return ""
	case col.Kind == KindText && (col.MaxLength == 0 || col.MaxLength >= randomTextLength):
		return ""
	default:
		return "random values of this type can repeat, which the unique constraint refuses; use hash or uniqueEmail on text columns"
	}
}

func checkGeneralize(m *privacyv1.Masking, col ColumnInfo) string {
	switch {
	case !col.Kind.numeric() && !col.Kind.temporal():
		return fmt.Sprintf("it coarsens dates, timestamps and numbers but the column holds %s values; use partial or redact for text", col.Kind)
	case col.Unique:
		return "generalized values repeat by design, which the unique constraint refuses"
	case m.Granularity != "" && m.Granularity != "month" && m.Granularity != "year":
		return fmt.Sprintf("granularity %q is not month or year", m.Granularity)
	case m.Step != nil && *m.Step < 1:
		return "step must be at least 1"
	}
	return ""
}

// Deterministic reports whether m gives the same output for the same input, so
// a statement may compare a column with its masked value to skip rows that are
// already masked (every strategy but randomize).
func Deterministic(m *privacyv1.Masking) bool {
	return m.Strategy != privacyv1.MaskRandomize
}

// NeedsKey reports whether m digests values under the store's masking key.
func NeedsKey(m *privacyv1.Masking) bool {
	return m.Strategy == privacyv1.MaskHash || m.Strategy == privacyv1.MaskUniqueEmail
}

func redactValue(m *privacyv1.Masking) string {
	if m.Value != nil {
		return *m.Value
	}
	return DefaultRedactValue
}

func step(m *privacyv1.Masking) int64 {
	if m.Step != nil {
		return *m.Step
	}
	return DefaultStep
}

func granularity(m *privacyv1.Masking) string {
	if m.Granularity != "" {
		return m.Granularity
	}
	return DefaultGranularity
}

func domain(m *privacyv1.Masking) string {
	if m.Domain != "" {
		return m.Domain
	}
	return DefaultDomain
}

func keepLast(m *privacyv1.Masking) int {
	return int(*m.KeepLast)
}

func uniqueEmail(m *privacyv1.Masking, digest string) string {
	return "erased-" + digest[:emailDigestLength] + "@" + domain(m)
}

// hmacPads returns HMAC-SHA256's inner and outer keys, (K' xor ipad) and
// (K' xor opad), so SQL can compute HMAC(K, m) = H(opadKey || H(ipadKey || m))
// with a plain SHA-256 function and the key still bound as parameters.
func hmacPads(key []byte) (inner, outer []byte) {
	const blockSize = 64
	k := key
	if len(k) > blockSize {
		sum := sha256.Sum256(k)
		k = sum[:]
	}
	inner = make([]byte, blockSize)
	outer = make([]byte, blockSize)
	copy(inner, k)
	copy(outer, k)
	for i := range blockSize {
		inner[i] ^= 0x36
		outer[i] ^= 0x5c
	}
	return inner, outer
}

func hmacHex(key []byte, value string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(value))
	return fmt.Sprintf("%x", mac.Sum(nil))
}

// errNoKey is returned when a keyed strategy has no key: an unkeyed digest of an
// email address is reversed by trying candidate addresses.
func errNoKey(m *privacyv1.Masking) error {
	return fmt.Errorf("masking %s needs the DataStore's maskingKeySecretRef", m.Strategy)
}
