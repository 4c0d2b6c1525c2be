package scaffold

import (
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"strings"
)

// Pattern is a shape of personal value a sample is checked against.
type Pattern string

const (
	PatternEmail Pattern = "email"
	PatternPhone Pattern = "phone"
	PatternIPv4  Pattern = "ipv4"
	PatternIPv6  Pattern = "ipv6"
	PatternIBAN  Pattern = "iban"
	PatternCard  Pattern = "card"
)

// Patterns in the order they are tried: a value counts for the first that matches.
var Patterns = []Pattern{PatternEmail, PatternIBAN, PatternCard, PatternIPv4, PatternIPv6, PatternPhone}

var patternNames = map[Pattern]string{
	PatternEmail: "e-mail addresses", PatternPhone: "phone numbers", PatternIPv4: "IPv4 addresses",
	PatternIPv6: "IPv6 addresses", PatternIBAN: "IBANs (valid checksum)", PatternCard: "card numbers (valid Luhn checksum)",
}

// Stats counts how many sampled values of a column matched each pattern.
// It holds counts only, never a value.
type Stats struct {
	Sampled int
	Matches map[Pattern]int
}

// Add matches one value and counts it; the value is not kept.
func (s *Stats) Add(v string) {
	if s.Matches == nil {
		s.Matches = map[Pattern]int{}
	}
	s.Sampled++
	if p, ok := Match(v); ok {
		s.Matches[p]++
	}
}

// minSample is how many values a column needs before its sample is evidence.
const minSample = 3

// Dominant is the pattern at least 80% of the sampled values match.
func (s *Stats) Dominant() (Pattern, bool) {
	if s == nil || s.Sampled < minSample {
		return "", false
	}
	for _, p := range Patterns {
		if s.Matches[p]*5 >= s.Sampled*4 {
			return p, true
		}
	}
	return "", false
}

// Describe says what the sample showed, in counts.
func (s *Stats) Describe(p Pattern) string {
	return fmt.Sprintf("%d of %d sampled values look like %s", s.Matches[p], s.Sampled, patternNames[p])
}

var (
	emailRe = regexp.MustCompile(`^[^@\s]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
	phoneRe = regexp.MustCompile(`^\+?[0-9 ().\-/]{7,24}$`)
	ibanRe  = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)
)

// Match reports the first pattern v matches.
func Match(v string) (Pattern, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 320 {
		return "", false
	}
	switch {
	case emailRe.MatchString(v):
		return PatternEmail, true
	case isIBAN(v):
		return PatternIBAN, true
	case isCard(v):
		return PatternCard, true
	}
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Is4() {
			return PatternIPv4, true
		}
		return PatternIPv6, true
	}
	if isPhone(v) {
		return PatternPhone, true
	}
	return "", false
}

func digitsOf(v string) string {
	var b strings.Builder
	for _, r := range v {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isPhone(v string) bool {
	if !phoneRe.MatchString(v) {
		return false
	}
	d := digitsOf(v)
	// A plain run of digits without a + or separators is as likely a number
	// of another kind: it needs at least one separator or a leading +.
	separated := strings.HasPrefix(v, "+") || strings.ContainsAny(v, " ().-/")
	return len(d) >= 7 && len(d) <= 15 && separated
}

// isIBAN: the ISO 13616 shape and the mod-97 check.
func isIBAN(v string) bool {
	s := strings.ToUpper(strings.ReplaceAll(v, " ", ""))
	if !ibanRe.MatchString(s) {
		return false
	}
	r := s[4:] + s[:4]
	var num strings.Builder
	for _, c := range r {
		if c >= 'A' && c <= 'Z' {
			fmt.Fprintf(&num, "%d", c-'A'+10)
		} else {
			num.WriteRune(c)
		}
	}
	n, ok := new(big.Int).SetString(num.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}

// isCard: 13 to 19 digits, optionally grouped by spaces or dashes, with a
// valid Luhn checksum.
func isCard(v string) bool {
	for _, r := range v {
		if (r < '0' || r > '9') && r != ' ' && r != '-' {
			return false
		}
	}
	d := digitsOf(v)
	if len(d) < 13 || len(d) > 19 {
		return false
	}
	return Luhn(d)
}

// Luhn reports whether a string of digits has a valid Luhn check digit.
func Luhn(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
