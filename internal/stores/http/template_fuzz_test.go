package http

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPathTemplate renders /v1/customers/{customerId}/items?email={email}&x=1
// with arbitrary identities and checks that each stays in its place: the path
// has exactly its four segments, the identity's segment decodes to the
// identity and is never a dot segment, the query has exactly its two
// parameters, and net/http's own request parser reads the same URI back.
func FuzzPathTemplate(f *testing.F) {
	for _, s := range []string{"cus_123", "../admin", "a/b", "..", ".", "a?b=c#d", "a&email=x", "%2F", " ", "\x00", "é", "\xff"} {
		f.Add(s, s)
	}
	pt, err := parsePath("/v1/customers/{customerId}/items?email={email}&x=1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, email string) {
		uri, err := pt.render(values{identities: map[string]string{"customerId": id, "email": email}})
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(uri, "# \t\r\n\x00") || strings.ContainsFunc(uri, func(r rune) bool { return r > 0x7e || r < 0x21 }) {
			t.Fatalf("rendered URI holds a raw fragment marker, space, control or non-ASCII byte: %q", uri)
		}
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			t.Fatalf("rendered URI %q does not parse: %v", uri, err)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) != 5 || segs[1] != "v1" || segs[2] != "customers" || segs[4] != "items" {
			t.Fatalf("identity %q escaped its path segment: %q", id, u.EscapedPath())
		}
		if segs[3] == "." || segs[3] == ".." {
			t.Fatalf("identity %q became a dot segment", id)
		}
		if got, err := url.PathUnescape(segs[3]); err != nil || got != id {
			t.Fatalf("segment %q decodes to %q (%v), want %q", segs[3], got, err, id)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			t.Fatalf("query %q: %v", u.RawQuery, err)
		}
		if keys := slices.Sorted(maps.Keys(q)); !slices.Equal(keys, []string{"email", "x"}) || len(q["email"]) != 1 || q.Get("email") != email || q.Get("x") != "1" {
			t.Fatalf("identity %q escaped its query parameter: %q -> %v", email, u.RawQuery, q)
		}
		req, err := nethttp.ReadRequest(bufio.NewReader(strings.NewReader("DELETE " + uri + " HTTP/1.1\r\nHost: p\r\n\r\n")))
		if err != nil || req.RequestURI != uri {
			t.Fatalf("net/http reads %q as %v, %v", uri, req, err)
		}
	})
}

// jsonReplaced is s as encoding/json writes it: each byte that is not part of
// valid UTF-8 becomes U+FFFD.
func jsonReplaced(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// FuzzBodyTemplate renders a JSON body template with arbitrary identities and
// checks that each stays inside its JSON string: the document is valid, has
// the template's shape (same members, same array length, the number intact)
// and the strings decode to the identities. Bytes that are not UTF-8 are
// replaced by U+FFFD by encoding/json; they cannot break out either.
func FuzzBodyTemplate(f *testing.F) {
	for _, s := range []string{"cus_123", `","admin":true,"x":"`, `\`, `\"`, "}", "{email}", "\u2028", "\x00", "\xff", "</script>"} {
		f.Add(s, s)
	}
	body, err := parseBody([]byte(`{"customer":"{customerId}","meta":{"email":"mail:{email}","n":1},"list":["{customerId}","lit\\{x\\}"]}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, email string) {
		raw, _, err := body.render(values{identities: map[string]string{"customerId": id, "email": email}})
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(raw) {
			t.Fatalf("invalid JSON for %q, %q: %s", id, email, raw)
		}
		var doc struct {
			Customer string `json:"customer"`
			Meta     struct {
				Email string      `json:"email"`
				N     json.Number `json:"n"`
			} `json:"meta"`
			List []string `json:"list"`
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("identity escaped its string (%v): %s", err, raw)
		}
		want := jsonReplaced
		if doc.Customer != want(id) || doc.Meta.Email != "mail:"+want(email) || doc.Meta.N != "1" ||
			len(doc.List) != 2 || doc.List[0] != want(id) || doc.List[1] != "lit{x}" {
			t.Fatalf("body does not carry the identities in place: %s", raw)
		}
		// Byte for byte what encoding a document of that shape gives: no
		// duplicate member, nothing added.
		var expected bytes.Buffer
		enc := json.NewEncoder(&expected)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(map[string]any{
			"customer": id, "list": []any{id, "lit{x}"},
			"meta": map[string]any{"email": "mail:" + email, "n": json.Number("1")},
		})
		if got := strings.TrimSuffix(expected.String(), "\n"); string(raw) != got {
			t.Fatalf("body\n%s\nwant\n%s", raw, got)
		}
	})
}
