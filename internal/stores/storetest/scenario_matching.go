package storetest

import (
	"errors"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
)

func nl(n int) any { return newsletterID(n) }

// lookAlike is one erasure of a subject close to the fixture's, and the rows
// it must change (fixture keys by collection) and nothing else.
type lookAlike struct {
	name    string
	subject map[string]string
	want    map[string][]any
}

// eraseInTurn erases each subject in turn from one store and checks that
// exactly its rows changed. A subject the engine refuses (ErrInvalid) must
// change nothing.
func eraseInTurn(t T, x *fx, cases []lookAlike, refusable bool) {
	t.Helper()
	for _, c := range cases {
		before := x.Snapshot(t)
		_, err := x.Store().Apply(ctx, erasure(c.subject))
		if err != nil && !(refusable && errors.Is(err, stores.ErrInvalid)) {
			t.Fatalf("%s: Apply: %v", c.name, err)
		}
		after := x.Snapshot(t)
		exp := x.want(c.want)
		if got := Changed(before, after); !equalChanges(got, exp) {
			t.Errorf("%s: changed rows = %v, want %v", c.name, got, exp)
		}
	}
}

func equalChanges(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// Identity values match exactly, whatever the column's collation: case,
// accents, leading and trailing spaces, a suffix or one character never
// widen the match. Each look-alike is erased in turn from the same store,
// down its references, and changes only its own rows.
func lookAlikeSubjectsMatchExactly(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	eraseInTurn(t, x, []lookAlike{
		{"upper case", map[string]string{"email": "A_B@x.io"}, map[string][]any{"newsletter": {nl(4)}, "contacts": {3}}},
		{"trailing space", map[string]string{"email": "a_b@x.io "}, map[string][]any{"newsletter": {nl(5), nl(7)}, "contacts": {4}}},
		{"accent", map[string]string{"email": "á_b@x.io"}, map[string][]any{"newsletter": {nl(6)}, "contacts": {5}}},
		{"suffix", map[string]string{"email": "a_b@x.io.au"}, map[string][]any{"contacts": {6}}},
		{"leading space", map[string]string{"email": " a_b@x.io"}, map[string][]any{"contacts": {7}}},
		{"one character", map[string]string{"email": "axb@x.io"}, map[string][]any{
			"accounts": {ID(2), ID(4)}, // 4 was referred by 2: only its link is cleared
			"invoices": {12}, "invoice_lines": {103}, "tickets": {4}, "newsletter": {nl(2)}, "contacts": {2},
		}},
		{"not in latin1", map[string]string{"email": "a_b@x.io✓"}, nil},
	}, false)
	// Not UTF-8: matches nothing, or is refused.
	eraseInTurn(t, x, []lookAlike{{"not UTF-8", map[string]string{"email": "a_b@x.io\xff"}, nil}}, true)

	snap := x.Snapshot(t)
	if x.holds("accounts") {
		if _, ok := snap["accounts"][x.Key("accounts", ID(1))]; !ok {
			t.Error("the subject's account was erased by a look-alike")
		}
	}
	for _, k := range []int{1, 8} {
		if _, ok := snap["contacts"][x.Key("contacts", k)]; !ok {
			t.Errorf("the subject's contact %d was erased by a look-alike", k)
		}
	}
}

// Every glob, LIKE and quoting metacharacter is a plain character of the
// identity: each hostile e-mail erases exactly its own rows, in turn.
func hostileIdentitiesMatchOnlyThemselves(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	var cases []lookAlike
	for _, c := range hostileContacts {
		want := map[string][]any{"contacts": {c.id}}
		switch c.email {
		case "a%b@x.io":
			want["accounts"], want["invoices"], want["invoice_lines"] = []any{ID(3)}, []any{13}, []any{104}
		case "o'brien@x.io":
			want["accounts"] = []any{ID(4)}
		case "ünïcödé@x.io":
			want["accounts"] = []any{ID(5)}
		case "*?[a-z]@x.io":
			want["accounts"] = []any{ID(6)}
		case `a\b@x.io`:
			want["accounts"] = []any{ID(7)}
		}
		cases = append(cases, lookAlike{c.email, map[string]string{"email": c.email}, want})
	}
	eraseInTurn(t, x, cases, false)
	left := x.Snapshot(t)["contacts"]
	for _, c := range lookAlikeContacts {
		if _, ok := left[x.Key("contacts", c.id)]; !ok {
			t.Errorf("contact %d (%q) was erased with the hostile identities", c.id, c.email)
		}
	}
}

// User ids match canonical values only: user 11 is not user 1, and
// 011, 1 with a space, a sign or a wildcard match nobody.
func userIDLookAlikesMatchNothing(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	var cases []lookAlike
	id := x.id(1)
	for _, v := range []string{"0" + id, id + " ", " " + id, "+" + id, id + "*", id + "%", "*", "?", "%", "_", "[" + id + "]", id + "\\"} {
		cases = append(cases, lookAlike{"userId " + v, map[string]string{"userId": v}, nil})
	}
	eraseInTurn(t, x, cases, true)
}

// A uuid is the same whatever the case of its hex digits (RFC 4122: case
// insensitive on input): an identity written in upper case finds user 11's
// rows, and only them.
func uuidIdentitiesMatchInAnyCase(t T, e *env) {
	x := e.mustOpen(t, Fixture{})
	upper := strings.ToUpper(x.id(11))
	eraseInTurn(t, x, []lookAlike{{"upper-case uuid", map[string]string{"userId": upper}, map[string][]any{
		"accounts": {ID(11)}, "invoices": {14}, "invoice_lines": {105}, "newsletter": {nl(7)},
		"devices": {DeviceKey(0xb1)}, "device_tokens": {503}, "profiles": {ID(11)},
	}}}, false)
}
