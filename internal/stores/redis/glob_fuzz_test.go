package redis

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// redisGlob is redis's own glob matcher (stringmatchlen in src/util.c,
// case-sensitive), ported line by line: the oracle for what SCAN MATCH
// returns. C's char is signed, so range bounds compare as int8.
func redisGlob(pattern, s string) bool {
	skip := false
	return redisGlobImpl(pattern, s, &skip)
}

func redisGlobImpl(p, s string, skipLonger *bool) bool {
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if redisGlobImpl(p[1:], s, skipLonger) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if len(p) >= 2 && p[0] == '\\' {
					p = p[1:]
					if p[0] == s[0] {
						match = true
					}
				} else if len(p) > 0 && p[0] == ']' {
					break
				} else if len(p) == 0 {
					// Unterminated class: redis steps back onto the last byte.
					p = " " // a placeholder byte consumed below, ending the pattern
					break
				} else if len(p) >= 3 && p[1] == '-' {
					lo, hi, c := int8(p[0]), int8(p[2]), int8(s[0])
					if lo > hi {
						lo, hi = hi, lo
					}
					p = p[2:]
					if c >= lo && c <= hi {
						match = true
					}
				} else if p[0] == s[0] {
					match = true
				}
				p = p[1:]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

func TestRedisGlobOracle(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"session:*", "session:1", true}, {"session:*", "sessio", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{`a\*c`, "a*c", true}, {`a\*c`, "abc", false}, {`a\?`, "a?", true}, {`a\\`, `a\`, true}, {`\[x\]`, "[x]", true},
		{"[abc]", "b", true}, {"[^abc]", "b", false}, {"[a-c]x", "bx", true}, {"*", "", false}, {"", "", true},
		{"a*", "a", true}, {"*b", "ab", true}, {"**b", "xxb", true},
	}
	for _, c := range cases {
		if got := redisGlob(c.p, c.s); got != c.want {
			t.Errorf("redisGlob(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

// FuzzGlobEscaping renders key patterns with an arbitrary identity and checks
// that the escaped SCAN MATCH glob matches the subject's own keys, and
// another identity's keys only where the other key literally starts with the
// subject's prefix (the glob's literal part): no metacharacter in an identity
// ever widens the match. The engine's Go re-check (match.matches) must agree
// with redis's matcher on every key, and so must path.Match where it applies.
func FuzzGlobEscaping(f *testing.F) {
	for _, s := range []string{"42", "*", "?", "[a-z]", `\`, `a\*`, "^", "]", "%", "_", "\x00", "é", "\xff", "4:2"} {
		f.Add(s, "4", "x")
	}
	prefix, err := parsePattern("session:{userId}:*")
	if err != nil {
		f.Fatal(err)
	}
	exact, err := parsePattern("user:{userId}")
	if err != nil {
		f.Fatal(err)
	}
	middle, err := parsePattern(`s\[{userId}\]?:*`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, other, suffix string) {
		ids := map[string]string{"userId": id}

		m := prefix.render(ids)
		glob := m.glob()
		own := "session:" + id + ":" + suffix
		if !redisGlob(glob, own) {
			t.Fatalf("glob %q does not match the subject's own key %q", glob, own)
		}
		// The Go re-check is stricter than redis by design: the * after "id:"
		// stays within its segment, so it never crosses a ':'.
		if m.matches(own) != !strings.Contains(suffix, ":") {
			t.Fatalf("Go re-check on the subject's own key %q: %v", own, m.matches(own))
		}
		theirs := "session:" + other + ":" + suffix
		want := strings.HasPrefix(theirs, "session:"+id+":")
		if got := redisGlob(glob, theirs); got != want {
			t.Fatalf("glob %q for %q matches %q: %v, want %v", glob, id, theirs, got, want)
		}
		wantGo := want && !strings.Contains(strings.TrimPrefix(theirs, "session:"+id+":"), ":")
		if m.matches(theirs) != wantGo {
			t.Fatalf("Go re-check on %q for glob %q = %v, want %v", theirs, glob, m.matches(theirs), wantGo)
		}
		if utf8.ValidString(glob) && utf8.ValidString(theirs) && !strings.Contains(glob+theirs, "/") {
			if got, err := path.Match(glob, theirs); err != nil || got != want {
				t.Fatalf("path.Match(%q, %q) = %v, %v; want %v", glob, theirs, got, err, want)
			}
		}

		e := exact.render(ids)
		if !e.exact() || e.key() != "user:"+id {
			t.Fatalf("exact pattern for %q: exact %v key %q", id, e.exact(), e.key())
		}
		if g := e.glob(); !redisGlob(g, "user:"+id) || (other != id && redisGlob(g, "user:"+other)) {
			t.Fatalf("exact glob %q matches another identity %q", g, other)
		}

		mm := middle.render(ids)
		g := mm.glob()
		for _, key := range []string{"s[" + id + "]x:" + suffix, "s[" + other + "]x:" + suffix, "s[" + id + "]:" + suffix} {
			// As above, the Go re-check also keeps the final * within its
			// segment: what it matches (after "s[id]?:") holds no ':'.
			want := redisGlob(g, key) && !strings.Contains(key[len("s[")+len(id)+len("]?:"):], ":")
			if mm.matches(key) != want {
				t.Fatalf("Go re-check on %q for glob %q = %v, want %v", key, g, mm.matches(key), want)
			}
		}
		if !redisGlob(g, "s["+id+"]x:"+suffix) {
			t.Fatalf("glob %q does not match the subject's key", g)
		}
	})
}
