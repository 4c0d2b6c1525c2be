package redis

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var identityName = regexp.MustCompile(`^[a-z][A-Za-z0-9]{0,62}$`)

// tokenKind is what one element of a key pattern is.
type tokenKind int

const (
	tokLiteral     tokenKind = iota // exact text
	tokStar                         // * : any run of bytes
	tokAny                          // ? : one byte
	tokPlaceholder                  // {identityType}
)

type token struct {
	kind tokenKind
	text string // literal text or identity type
	// segmentEnd, for a * right after a literal, is that literal's last byte
	// (the separator, ':' in session:{userId}:*). The * never matches it, so
	// the keys of user "4:x" (session:4:x:a) are not user "4"'s session "x:a".
	segmentEnd byte
}

// keyPattern is a parsed redis key pattern such as session:{userId}:*.
type keyPattern struct {
	raw    string
	tokens []token
}

// parsePattern parses a key pattern: {identityType} placeholders, the * and ?
// wildcards, and \x for a literal x (\{, \*, \[ ...). Character classes are
// refused: they would make the pattern hard to verify outside redis.
func parsePattern(s string) (keyPattern, error) {
	p := keyPattern{raw: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.tokens = append(p.tokens, token{kind: tokLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return keyPattern{}, errors.New("the key pattern ends with a lone \\")
			}
			i++
			lit.WriteByte(s[i])
		case '*', '?':
			var sep byte
			if lit.Len() > 0 {
				sep = lit.String()[lit.Len()-1]
			}
			flush()
			kind := tokStar
			if c == '?' {
				kind = tokAny
			}
			t := token{kind: kind}
			if kind == tokStar {
				t.segmentEnd = sep
			}
			p.tokens = append(p.tokens, t)
		case '[', ']':
			return keyPattern{}, errors.New("character classes ([...]) are not supported in key patterns; write \\[ for a literal bracket")
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return keyPattern{}, errors.New("unclosed {; write \\{ for a literal brace")
			}
			name := s[i+1 : i+end]
			if !identityName.MatchString(name) {
				return keyPattern{}, fmt.Errorf("invalid placeholder {%s}: identity types are camelCase names such as userId; write \\{ for a literal brace", name)
			}
			flush()
			p.tokens = append(p.tokens, token{kind: tokPlaceholder, text: name})
			i += end
		case '}':
			return keyPattern{}, errors.New("unopened }; write \\} for a literal brace")
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return p, nil
}

// identityTypes lists the placeholders, sorted and distinct.
func (p keyPattern) identityTypes() []string {
	var types []string
	for _, t := range p.tokens {
		if t.kind == tokPlaceholder && !slices.Contains(types, t.text) {
			types = append(types, t.text)
		}
	}
	slices.Sort(types)
	return types
}

// exact reports whether the pattern has no wildcard: its rendering is one key.
func (p keyPattern) exact() bool {
	return !slices.ContainsFunc(p.tokens, func(t token) bool { return t.kind == tokStar || t.kind == tokAny })
}

// wildcardNextToPlaceholder reports a placeholder adjacent to a wildcard, where
// the identity's boundary is lost: session:{userId}* with userId 4 matches the
// keys of user 42.
func (p keyPattern) wildcardNextToPlaceholder() bool {
	for i := 1; i < len(p.tokens); i++ {
		a, b := p.tokens[i-1].kind, p.tokens[i].kind
		wild := func(k tokenKind) bool { return k == tokStar || k == tokAny }
		if (a == tokPlaceholder && wild(b)) || (wild(a) && b == tokPlaceholder) {
			return true
		}
	}
	return false
}

// match is a pattern rendered for one subject.
type match struct {
	tokens []token // placeholders replaced by literals
}

// render substitutes identities; every placeholder's type must be in ids.
func (p keyPattern) render(ids map[string]string) match {
	out := make([]token, 0, len(p.tokens))
	for _, t := range p.tokens {
		if t.kind == tokPlaceholder {
			t = token{kind: tokLiteral, text: ids[t.text]}
		}
		out = append(out, t)
	}
	return match{tokens: out}
}

// glob is the SCAN MATCH pattern: literals (identities included) have every
// glob metacharacter escaped, so an identity can never widen the match.
func (m match) glob() string {
	var b strings.Builder
	for _, t := range m.tokens {
		switch t.kind {
		case tokStar:
			b.WriteByte('*')
		case tokAny:
			b.WriteByte('?')
		default:
			b.WriteString(escapeGlob(t.text))
		}
	}
	return b.String()
}

// exact reports whether the rendered pattern is a single key.
func (m match) exact() bool { return keyPattern{tokens: m.tokens}.exact() }

// key is the single key of an exact pattern.
func (m match) key() string {
	var b strings.Builder
	for _, t := range m.tokens {
		b.WriteString(t.text)
	}
	return b.String()
}

// escapeGlob escapes redis glob metacharacters: * ? [ ] and \ itself.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// matches checks a key returned by SCAN against the pattern in Go, byte by
// byte as redis does: a second guard, so a key is never acted on because of
// a server-side matching difference.
func (m match) matches(key string) bool {
	_, ok := m.capture(key)
	return ok
}

// capture matches key against m byte by byte, as redis matches, and returns
// the text each token of m matched (literals match themselves): rectification
// rebuilds a key's name from it.
func (m match) capture(key string) ([]string, bool) {
	parts := make([]string, len(m.tokens))
	return parts, captureTokens(m.tokens, key, parts)
}

func captureTokens(tokens []token, s string, parts []string) bool {
	for i, t := range tokens {
		switch t.kind {
		case tokLiteral:
			if !strings.HasPrefix(s, t.text) {
				return false
			}
			parts[i], s = t.text, s[len(t.text):]
		case tokAny:
			if s == "" {
				return false
			}
			parts[i], s = s[:1], s[1:]
		case tokStar:
			for j := 0; j <= len(s); j++ {
				if j > 0 && t.segmentEnd != 0 && s[j-1] == t.segmentEnd {
					return false // the * would cross its separator
				}
				if captureTokens(tokens[i+1:], s[j:], parts[i+1:]) {
					parts[i] = s[:j]
					return true
				}
			}
			return false
		}
	}
	return s == ""
}
