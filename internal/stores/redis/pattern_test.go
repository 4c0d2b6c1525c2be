package redis

import (
	"strings"
	"testing"
)

func TestParsePattern(t *testing.T) {
	cases := []struct {
		in    string
		types string
		exact bool
		err   string
	}{
		{in: "session:{userId}:*", types: "userId"},
		{in: "user:{email}", types: "email", exact: true},
		{in: "t:{tenantId}:u:{userId}:?", types: "tenantId,userId"},
		{in: `lit:\{tag\}:\*:{userId}`, types: "userId", exact: true},
		{in: "static:key", exact: true},
		{in: "s:[ab]:{userId}", err: "character classes"},
		{in: "s:{user_id}", err: "invalid placeholder"},
		{in: "s:{userId", err: "unclosed"},
		{in: "s:}", err: "unopened"},
		{in: `s:\`, err: "lone"},
	}
	for _, tc := range cases {
		p, err := parsePattern(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := strings.Join(p.identityTypes(), ","); got != tc.types || p.exact() != tc.exact {
			t.Errorf("%q: types %q exact %v, want %q %v", tc.in, got, p.exact(), tc.types, tc.exact)
		}
	}
}

func TestGlobEscapesEveryMetacharacterOfIdentities(t *testing.T) {
	p, err := parsePattern(`s:{userId}:*`)
	if err != nil {
		t.Fatal(err)
	}
	m := p.render(map[string]string{"userId": `a*b?c[d-e]f\g`})
	if got, want := m.glob(), `s:a\*b\?c\[d-e\]f\\g:*`; got != want {
		t.Errorf("glob = %q, want %q", got, want)
	}
}

func TestMatchesIsByteExact(t *testing.T) {
	p, _ := parsePattern("s:{userId}:?:*")
	m := p.render(map[string]string{"userId": "[a-z]*"})
	for key, want := range map[string]bool{
		"s:[a-z]*:x:":      true,
		"s:[a-z]*:x:yz":    true,
		"s:[a-z]*:é:":      false, // ? is one byte, é two
		"s:b:x:":           false,
		"s:[a-z]*x:x:":     false,
		"s:[a-z]*::":       false,
		"s:[a-z]*:x":       false,
		"prefix:s:[a-z]*:": false,
	} {
		if got := m.matches(key); got != want {
			t.Errorf("matches(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestWildcardNextToPlaceholder(t *testing.T) {
	for in, want := range map[string]bool{
		"s:{userId}:*": false,
		"s:{userId}*":  true,
		"s:*{userId}":  true,
		"s:?{userId}:": true,
		"s:{userId}":   false,
	} {
		p, _ := parsePattern(in)
		if got := p.wildcardNextToPlaceholder(); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}
