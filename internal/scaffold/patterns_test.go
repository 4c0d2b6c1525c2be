package scaffold_test

import (
	"testing"

	"github.com/lethe-dev/lethe/internal/scaffold"
)

func TestScaffoldPatterns(t *testing.T) {
	for v, want := range map[string]scaffold.Pattern{
		"jane.doe@example.com":              scaffold.PatternEmail,
		"+33 6 12 34 56 78":                 scaffold.PatternPhone,
		"(555) 123-4567":                    scaffold.PatternPhone,
		"203.0.113.7":                       scaffold.PatternIPv4,
		"2001:db8::42":                      scaffold.PatternIPv6,
		"FR76 3000 6000 0112 3456 7890 189": scaffold.PatternIBAN,
		"DE89370400440532013000":            scaffold.PatternIBAN,
		"4111 1111 1111 1111":               scaffold.PatternCard,
		"5500-0000-0000-0004":               scaffold.PatternCard,
		"4111 1111 1111 1112":               "", // Luhn fails (and it is no phone: too many digits)
		"DE89370400440532013001":            "", // mod 97 fails
		"1234567":                           "", // bare digits: no separator, no +
		"hello world":                       "",
		"not@an email":                      "",
	} {
		got, ok := scaffold.Match(v)
		if (want == "") == ok || got != want {
			t.Errorf("Match(%q) = %q, %v; want %q", v, got, ok, want)
		}
	}
	if !scaffold.Luhn("79927398713") || scaffold.Luhn("79927398710") {
		t.Error("Luhn")
	}
	var s scaffold.Stats
	for _, v := range []string{"a@b.io", "c@d.io", "e@f.io", "x", "y@z.io"} {
		s.Add(v)
	}
	if p, ok := s.Dominant(); !ok || p != scaffold.PatternEmail || s.Describe(p) != "4 of 5 sampled values look like e-mail addresses" {
		t.Errorf("Dominant = %q %v, %s", p, ok, s.Describe(p))
	}
}

func TestScaffoldTokens(t *testing.T) {
	for in, want := range map[string]string{"firstName": "first name", "billing_address_line1": "billing address line1", "HTTPUserAgent": "http user agent", "e-mail": "e mail"} {
		if got := scaffold.Tokens(in); join(got) != want {
			t.Errorf("Tokens(%q) = %q, want %q", in, got, want)
		}
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
