package postgres

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// crdPatterns reads the identifier and table patterns the API server enforces
// from the generated DataStore CRD, so the fuzz oracle is the CRD itself, not
// a copy of it.
func crdPatterns(tb testing.TB) (identifier, table *regexp.Regexp) {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "privacy.lethe.dev_datastores.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		tb.Fatal(err)
	}
	coll := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["collections"].Items.Schema.Properties
	return regexp.MustCompile(coll["name"].Pattern), regexp.MustCompile(coll["table"].Pattern)
}

// unquoteIdentifier reverses SQL identifier quoting: "a""b" -> a"b. ok is
// false when q is not exactly one quoted identifier (an unescaped quote inside
// would end it early and let the rest be parsed as SQL).
func unquoteIdentifier(q string) (string, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	inner := q[1 : len(q)-1]
	if strings.Count(strings.ReplaceAll(inner, `""`, ""), `"`) != 0 {
		return "", false
	}
	return strings.ReplaceAll(inner, `""`, `"`), true
}

// safeQuoted is what a validated identifier looks like once quoted: no
// whitespace, semicolon, comment marker or second quote pair.
var safeQuoted = regexp.MustCompile(`^"[A-Za-z_][A-Za-z0-9_$]*"$`)

// FuzzIdentifierQuoting checks, for any string: the Go validator agrees with
// the CRD's pattern (what admission lets through is exactly what Lethe
// expects); quoting any string yields one identifier token that unquotes to
// the string (NUL, which PostgreSQL cannot store, is dropped); and a validated
// identifier or table quotes to a plain "name" (or "schema"."name") with
// nothing that could end the token or start a comment.
func FuzzIdentifierQuoting(f *testing.F) {
	identRE, tableRE := crdPatterns(f)
	for _, s := range []string{"users", `a"b`, "x; DROP TABLE y; --", "public.users", "id/*x*/", "\x00", "а", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		runes := utf8.RuneCountInString(s)
		crdIdent := identRE.MatchString(s) && runes >= 1 && runes <= privacyv1.IdentifierMaxLength
		if got := privacyv1.ValidateIdentifier(s) == nil; got != crdIdent {
			t.Fatalf("ValidateIdentifier(%q) = %v, the CRD admits %v", s, got, crdIdent)
		}
		crdTable := tableRE.MatchString(s) && runes <= privacyv1.TableMaxLength
		if got := privacyv1.ValidateTable(s) == nil; got != crdTable {
			t.Fatalf("ValidateTable(%q) = %v, the CRD admits %v", s, got, crdTable)
		}

		q := quote(s)
		back, ok := unquoteIdentifier(q)
		if !ok || back != strings.ReplaceAll(s, "\x00", "") {
			t.Fatalf("quote(%q) = %s, which is not one identifier token for it (unquotes to %q, %v)", s, q, back, ok)
		}
		if crdIdent && (q != `"`+s+`"` || !safeQuoted.MatchString(q)) {
			t.Fatalf("validated identifier %q quoted as %s", s, q)
		}
		if crdTable {
			ref := tableRef(&datamap.Collection{Table: s})
			parts := strings.Split(ref, ".")
			names := strings.Split(s, ".")
			if len(parts) != len(names) {
				t.Fatalf("table %q quoted as %s: %d parts, want %d", s, ref, len(parts), len(names))
			}
			for i, p := range parts {
				if !safeQuoted.MatchString(p) || p != `"`+names[i]+`"` {
					t.Fatalf("table %q quoted as %s", s, ref)
				}
			}
		}
	})
}

// TestQuotedIdentifiersRoundTripThroughPostgres asks the real parser: every
// hostile name, quoted, is one column alias whose name is exactly the input.
// Admission refuses all of these; quoting is the second line of defence.
func TestQuotedIdentifiersRoundTripThroughPostgres(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testdb.NewPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	names := []string{
		"users", `a"b`, `"`, `""`, `x"; DROP TABLE pg_class; --`, "id/*x*/", "a b", "a.b", "a;b", "a--b",
		"a`b", "a'b", `a\b`, "а", "e\u0301", "\u202eevil", "😀", "$1", "select", "a\nb", strings.Repeat("x", 63),
	}
	for _, n := range names {
		sql := "SELECT 1 AS " + quote(n)
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Errorf("%q: %s: %v", n, sql, err)
			continue
		}
		fields := rows.FieldDescriptions()
		rows.Close()
		if len(fields) != 1 || fields[0].Name != n {
			t.Errorf("%q: %s returned columns %v", n, sql, fields)
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
}
