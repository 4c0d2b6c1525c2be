package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// fieldPrefix marks a rectification placeholder: {fields.email} is the corrected
// value of the mapped field email.
const fieldPrefix = "fields."

var (
	identityName = regexp.MustCompile(`^[a-z][A-Za-z0-9]{0,62}$`)
	fieldName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
)

// part is a literal run of text or one placeholder of a template string.
type part struct {
	literal string
	name    string // identity type or field name; empty for a literal
	field   bool   // name is a {fields.name} placeholder
}

// text is a parsed template string.
type text []part

// parseText splits s into literals and placeholders. \{ and \} are literal
// braces; any other {...} must be a valid placeholder, so that a typo such as
// {customer_id} is reported rather than sent verbatim.
func parseText(s string) (text, error) {
	var out text
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, part{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '}'):
			lit.WriteByte(s[i+1])
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, errors.New("unclosed {; write \\{ for a literal brace")
			}
			p, err := parsePlaceholder(s[i+1 : i+end])
			if err != nil {
				return nil, err
			}
			flush()
			out = append(out, p)
			i += end
		case c == '}':
			return nil, errors.New("unopened }; write \\} for a literal brace")
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return out, nil
}

func parsePlaceholder(name string) (part, error) {
	if f, ok := strings.CutPrefix(name, fieldPrefix); ok {
		if !fieldName.MatchString(f) {
			return part{}, fmt.Errorf("invalid placeholder {%s}: field names are identifiers", name)
		}
		return part{name: f, field: true}, nil
	}
	if !identityName.MatchString(name) {
		return part{}, fmt.Errorf("invalid placeholder {%s}: identity types are camelCase names such as customerId; write \\{ for a literal brace", name)
	}
	return part{name: name}, nil
}

// String writes the template back with its placeholders, for receipts and errors.
func (t text) String() string {
	var b strings.Builder
	for _, p := range t {
		switch {
		case p.name == "":
			b.WriteString(strings.NewReplacer("{", `\{`, "}", `\}`).Replace(p.literal))
		case p.field:
			b.WriteString("{" + fieldPrefix + p.name + "}")
		default:
			b.WriteString("{" + p.name + "}")
		}
	}
	return b.String()
}

// values are what placeholders are replaced by.
type values struct {
	identities map[string]string
	fields     map[string]string // field name -> corrected value (rectification)
}

// errNoValue says a {fields.name} placeholder has no corrected value.
var errNoValue = errors.New("no value")

// render replaces placeholders, escaping each value with esc. Identities are
// always present (the caller checks), fields may be missing: errNoValue.
func (t text) render(v values, esc func(string) string) (string, error) {
	var b strings.Builder
	for _, p := range t {
		switch {
		case p.name == "":
			b.WriteString(p.literal)
		case p.field:
			val, ok := v.fields[p.name]
			if !ok {
				return "", errNoValue
			}
			b.WriteString(esc(val))
		default:
			b.WriteString(esc(v.identities[p.name]))
		}
	}
	return b.String(), nil
}

// visit calls f for every placeholder.
func (t text) visit(f func(part)) {
	for _, p := range t {
		if p.name != "" {
			f(p)
		}
	}
}

// pathTemplate is a request path with an optional query string.
type pathTemplate struct {
	path  text
	query text // nil without a query string
}

func parsePath(s string) (pathTemplate, error) {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return pathTemplate{}, errors.New("path must start with a single /")
	}
	if strings.ContainsAny(s, "# \t\r\n") {
		return pathTemplate{}, errors.New("path must not contain # or whitespace")
	}
	p, q, hasQuery := strings.Cut(s, "?")
	var pt pathTemplate
	var err error
	if pt.path, err = parseText(p); err != nil {
		return pathTemplate{}, err
	}
	if hasQuery {
		if pt.query, err = parseText(q); err != nil {
			return pathTemplate{}, err
		}
	}
	return pt, nil
}

func (pt pathTemplate) String() string {
	if pt.query == nil {
		return pt.path.String()
	}
	return pt.path.String() + "?" + pt.query.String()
}

func (pt pathTemplate) visit(f func(part)) {
	pt.path.visit(f)
	pt.query.visit(f)
}

// render returns the escaped request URI: identities are path-escaped in the
// path (a / stays inside its segment) and query-escaped in the query.
func (pt pathTemplate) render(v values) (string, error) {
	p, err := pt.path.render(v, escapePathValue)
	if err != nil {
		return "", err
	}
	if pt.query == nil {
		return p, nil
	}
	q, err := pt.query.render(v, url.QueryEscape)
	if err != nil {
		return "", err
	}
	return p + "?" + q, nil
}

// escapePathValue percent-encodes a value for a path segment. Values made only
// of dots are encoded too: "." and ".." would otherwise be dot segments, which
// servers and proxies resolve to another resource.
func escapePathValue(v string) string {
	if strings.Trim(v, ".") == "" {
		return strings.Repeat("%2E", len(v))
	}
	return url.PathEscape(v)
}

// bodyTemplate is a decoded JSON document whose strings may hold placeholders.
type bodyTemplate struct {
	doc any // decoded with UseNumber, so numbers are sent exactly as written
}

func parseBody(raw []byte) (*bodyTemplate, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, errors.New("body is not valid JSON")
	}
	if dec.More() {
		return nil, errors.New("body holds more than one JSON document")
	}
	b := &bodyTemplate{doc: doc}
	if err := b.walkStrings(func(string) error { return nil }); err != nil {
		return nil, err
	}
	return b, nil
}

// walkStrings checks every member name and parses every string value.
func (b *bodyTemplate) walkStrings(f func(string) error) error {
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if strings.ContainsAny(k, "{}") {
					return fmt.Errorf("body member name %q must not hold a placeholder or brace", k)
				}
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range v {
				if err := walk(e); err != nil {
					return err
				}
			}
		case string:
			if _, err := parseText(v); err != nil {
				return err
			}
			return f(v)
		}
		return nil
	}
	return walk(b.doc)
}

func (b *bodyTemplate) visit(f func(part)) {
	_ = b.walkStrings(func(s string) error {
		t, _ := parseText(s)
		t.visit(f)
		return nil
	})
}

// render builds the body by walking the decoded document: every string is
// rendered and re-encoded by encoding/json, so a value can never escape its
// string. Members and elements whose string needs a missing field value are
// left out. It reports how many field placeholders were filled.
func (b *bodyTemplate) render(v values) ([]byte, int, error) {
	filled := 0
	var walk func(x any) (any, bool)
	walk = func(x any) (any, bool) {
		switch x := x.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				if r, keep := walk(e); keep {
					out[k] = r
				}
			}
			return out, true
		case []any:
			out := make([]any, 0, len(x))
			for _, e := range x {
				if r, keep := walk(e); keep {
					out = append(out, r)
				}
			}
			return out, true
		case string:
			t, _ := parseText(x) // parsed in parseBody already
			s, err := t.render(v, func(s string) string { return s })
			if err != nil {
				return nil, false
			}
			t.visit(func(p part) {
				if p.field {
					filled++
				}
			})
			return s, true
		default:
			return x, true
		}
	}
	doc, _ := walk(b.doc)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, 0, errors.New("encoding the body failed")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), filled, nil
}
