package masking

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

const dateLayout = "2006-01-02"

// MaskString masks one value in Go with the same meaning as the SQL dialects,
// for engines without SQL (redis). pk is the row's primary key, which
// uniqueEmail digests. Values carry no column type, so generalize accepts a
// date (2006-01-02), an RFC 3339 timestamp (truncated in UTC, as in SQL) or a
// number, and refuses anything else. nullify returns the empty string: engines
// without NULL remove the field instead.
func MaskString(m *privacyv1.Masking, key []byte, pk, value string) (string, error) {
	if NeedsKey(m) && len(key) == 0 {
		return "", errNoKey(m)
	}
	switch m.Strategy {
	case privacyv1.MaskNullify:
		return "", nil
	case privacyv1.MaskRedact:
		return redactValue(m), nil
	case privacyv1.MaskHash:
		return hmacHex(key, value), nil
	case privacyv1.MaskPartial:
		return partialString(m, value)
	case privacyv1.MaskRandomize:
		return randomHex(), nil
	case privacyv1.MaskGeneralize:
		return generalizeString(m, value)
	case privacyv1.MaskUniqueEmail:
		return uniqueEmail(m, hmacHex(key, pk)), nil
	}
	return "", fmt.Errorf("unknown masking strategy %q", m.Strategy)
}

// partialString keeps the last keepLast characters (not bytes, as SQL's
// right() and char_length() count) and stars the others.
func partialString(m *privacyv1.Masking, value string) (string, error) {
	if m.KeepLast == nil || *m.KeepLast < 0 {
		return "", fmt.Errorf("masking partial needs a keepLast that is not negative")
	}
	runes := []rune(value)
	hidden := max(len(runes)-keepLast(m), 0)
	return strings.Repeat("*", hidden) + string(runes[hidden:]), nil
}

func randomHex() string {
	b := make([]byte, randomTextLength/2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func generalizeString(m *privacyv1.Masking, value string) (string, error) {
	if d, err := time.Parse(dateLayout, value); err == nil {
		return truncateTime(m, d).Format(dateLayout), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, value); err == nil {
		return truncateTime(m, t.UTC()).Format(time.RFC3339), nil
	}
	if n, err := strconv.ParseInt(value, 10, 64); err == nil {
		return strconv.FormatInt(floorToStep(n, step(m)), 10), nil
	}
	if f, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		s := float64(step(m))
		return strconv.FormatFloat(math.Floor(f/s)*s, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("masking generalize needs a date (YYYY-MM-DD), an RFC 3339 timestamp or a number")
}

func truncateTime(m *privacyv1.Masking, t time.Time) time.Time {
	month := t.Month()
	if granularity(m) == "year" {
		month = time.January
	}
	return time.Date(t.Year(), month, 1, 0, 0, 0, 0, t.Location())
}

// floorToStep returns the lower bound of n's range of width step, rounding
// towards minus infinity as SQL's floor() does (-3 → -10 with step 10).
func floorToStep(n, step int64) int64 {
	q := n / step
	if n%step != 0 && n < 0 {
		q--
	}
	return q * step
}
