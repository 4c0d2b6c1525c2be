package v1alpha1_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// crdSchemas reads a generated CRD and returns every schema node by its path
// (spec.collections[].fields[].name, spec.collections[].identity{} for map
// values, ...).
func crdSchemas(t *testing.T, file string) map[string]apiextensionsv1.JSONSchemaProps {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", file))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	out := map[string]apiextensionsv1.JSONSchemaProps{}
	var walk func(path string, s apiextensionsv1.JSONSchemaProps)
	walk = func(path string, s apiextensionsv1.JSONSchemaProps) {
		out[path] = s
		for name, p := range s.Properties {
			walk(strings.TrimPrefix(path+"."+name, "."), p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(path+"[]", *s.Items.Schema)
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			walk(path+"{}", *s.AdditionalProperties.Schema)
		}
	}
	walk("", *crd.Spec.Versions[0].Schema.OpenAPIV3Schema)
	return out
}

// TestValidatorsMirrorTheCRDs proves the Go validators use the very patterns
// and lengths the API server enforces: if a marker changes and the validator
// does not (or the reverse), this fails.
func TestValidatorsMirrorTheCRDs(t *testing.T) {
	stores := crdSchemas(t, "privacy.lethe.dev_datastores.yaml")
	identifiers := []string{
		"spec.collections[].name",
		"spec.collections[].references[].collection",
	}
	for _, p := range identifiers {
		s, ok := stores[p]
		if !ok {
			t.Errorf("%s: not in the DataStore CRD", p)
			continue
		}
		if s.Pattern != v1.IdentifierPattern || s.MaxLength == nil || *s.MaxLength != v1.IdentifierMaxLength || s.MinLength == nil || *s.MinLength != 1 {
			t.Errorf("%s: pattern %q maxLength %v minLength %v; the validator uses %q, 1..%d", p, s.Pattern, s.MaxLength, s.MinLength, v1.IdentifierPattern, v1.IdentifierMaxLength)
		}
	}
	// Column names, which for mongodb are document paths.
	fieldNames := []string{
		"spec.collections[].primaryKey",
		"spec.collections[].identity{}",
		"spec.collections[].fields[].name",
		"spec.collections[].references[].field",
		"spec.collections[].references[].collectionField",
	}
	for _, p := range fieldNames {
		s, ok := stores[p]
		if !ok {
			t.Errorf("%s: not in the DataStore CRD", p)
			continue
		}
		if s.Pattern != v1.FieldNamePattern || s.MaxLength == nil || *s.MaxLength != v1.FieldNameMaxLength || s.MinLength == nil || *s.MinLength != 1 {
			t.Errorf("%s: pattern %q maxLength %v minLength %v; the validator uses %q, 1..%d", p, s.Pattern, s.MaxLength, s.MinLength, v1.FieldNamePattern, v1.FieldNameMaxLength)
		}
	}
	// The engine rules ValidateFieldName applies beside the pattern.
	for _, rule := range []string{"self.engine == 'mongodb' || self.collections.all(c, !has(c.fields) || c.fields.all(f, !(f.name.contains('.') || f.name.contains('['))))",
		"c.fields.all(f, !f.name.contains('$'))"} {
		if !hasRule(stores["spec"], rule) {
			t.Errorf("spec: no rule %s; update ValidateFieldName with the rules", rule)
		}
	}
	// The fields of retention rules: a column name or a path outside arrays.
	policies := crdSchemas(t, "privacy.lethe.dev_retentionpolicies.yaml")
	for _, p := range []string{"spec.rules[].after.field", "spec.rules[].where[].field"} {
		s, ok := policies[p]
		if !ok {
			t.Errorf("%s: not in the RetentionPolicy CRD", p)
			continue
		}
		if s.Pattern != v1.RetentionFieldPattern || s.MaxLength == nil || *s.MaxLength != v1.RetentionFieldMaxLength || s.MinLength == nil || *s.MinLength != 1 {
			t.Errorf("%s: pattern %q maxLength %v minLength %v; the validator uses %q, 1..%d", p, s.Pattern, s.MaxLength, s.MinLength, v1.RetentionFieldPattern, v1.RetentionFieldMaxLength)
		}
	}
	// Every identifier-shaped field of every CRD has the same rule.
	for _, file := range []string{"privacy.lethe.dev_datastores.yaml", "privacy.lethe.dev_retentionpolicies.yaml", "privacy.lethe.dev_legalholds.yaml"} {
		for p, s := range crdSchemas(t, file) {
			if s.Pattern == v1.IdentifierPattern && (s.MaxLength == nil || *s.MaxLength != v1.IdentifierMaxLength) {
				t.Errorf("%s %s: identifier without maxLength %d", file, p, v1.IdentifierMaxLength)
			}
		}
	}
	if s := stores["spec.collections[].table"]; s.Pattern != v1.TablePattern || s.MaxLength == nil || *s.MaxLength != v1.TableMaxLength {
		t.Errorf("table: pattern %q maxLength %v; the validator uses %q, %d", s.Pattern, s.MaxLength, v1.TablePattern, v1.TableMaxLength)
	}
	if s := stores["spec.collections[].fields[].category"]; s.Pattern != v1.CategoryPattern || s.MaxLength == nil || *s.MaxLength != v1.CategoryMaxLength {
		t.Errorf("category: pattern %q maxLength %v; the validator uses %q, %d", s.Pattern, s.MaxLength, v1.CategoryPattern, v1.CategoryMaxLength)
	}
	wantRule := "k.matches('" + v1.IdentityTypePattern + "')"
	if !hasRule(stores["spec.collections[].identity"], wantRule) {
		t.Errorf("spec.collections[].identity: no rule %s", wantRule)
	}
	requests := crdSchemas(t, "privacy.lethe.dev_datasubjectrequests.yaml")
	ids := requests["spec.subject.identities"]
	if !hasRule(ids, wantRule) {
		t.Errorf("spec.subject.identities: no rule %s", wantRule)
	}
	if !hasRule(ids, `self[k].matches('\\S')`) {
		t.Errorf("spec.subject.identities: the non-blank rule changed; update ValidateIdentityValue")
	}
	if v := requests["spec.subject.identities{}"]; v.MaxLength == nil || *v.MaxLength != v1.IdentityValueMaxLength {
		t.Errorf("identity value maxLength %v, the validator uses %d", v.MaxLength, v1.IdentityValueMaxLength)
	}
}

func hasRule(s apiextensionsv1.JSONSchemaProps, rule string) bool {
	for _, r := range s.XValidations {
		if strings.Contains(r.Rule, rule) {
			return true
		}
	}
	return false
}

// TestValidatorsAgreeWithTheCRDPatterns compiles the patterns as the API
// server does (Go regexp, lengths in characters) and compares verdicts on
// hostile and ordinary names.
func TestValidatorsAgreeWithTheCRDPatterns(t *testing.T) {
	stores := crdSchemas(t, "privacy.lethe.dev_datastores.yaml")
	admits := func(s apiextensionsv1.JSONSchemaProps, v string) bool {
		n := int64(utf8.RuneCountInString(v))
		return regexp.MustCompile(s.Pattern).MatchString(v) &&
			(s.MaxLength == nil || n <= *s.MaxLength) && (s.MinLength == nil || n >= *s.MinLength)
	}
	names := []string{
		"", "a", "_", "$", "a$", "1a", "users", "Users", "user_id", "users; drop table x", `email"--`, "id/*x*/",
		"a b", "a.b", "a-b", "a`b", "a'b", "a\\b", "a\x00", "а", "ä", "e\u0301", "\u202eevil", "a\n", "a;",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "public.users", "public.users.x", ".users", "users.",
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), strings.Repeat("a", 64) + ".b",
	}
	// For a SQL engine the pattern and the rule refusing . and [ admit
	// exactly the identifiers; for mongodb the pattern and the rule refusing $.
	paths := []string{"owner.userId", "addresses[].line1", "tags[]", "a.b[].c.d", "$where", "a..b", "a[][]", "a[].b[]", "a.$b",
		"a$", "a.b$", "a[", "a[]]", "[]", ".a", "a.", "a.1b", "a-b", "a b.c", "a.b\n", "a\u0000.b",
		strings.Repeat("a", 63) + ".b", strings.Repeat("a", 64) + ".b", strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 63), // 255 characters
		strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61) + ".aa"} // 256
	field := stores["spec.collections[].fields[].name"]
	for _, n := range append(paths, names...) {
		sqlWant := admits(field, n) && !strings.ContainsAny(n, ".[")
		if got := v1.ValidateFieldName(v1.EnginePostgres, n, true) == nil; got != sqlWant {
			t.Errorf("ValidateFieldName(postgres, %q) = %v, the CRD admits %v", n, got, sqlWant)
		}
		if sqlWant != (v1.ValidateIdentifier(n) == nil) {
			t.Errorf("%q: the CRD admits %v as a SQL column, ValidateIdentifier disagrees", n, sqlWant)
		}
		mongoWant := admits(field, n) && !strings.Contains(n, "$")
		if got := v1.ValidateFieldName(v1.EngineMongoDB, n, true) == nil; got != mongoWant {
			t.Errorf("ValidateFieldName(mongodb, %q) = %v, the CRD admits %v", n, got, mongoWant)
		}
	}
	for _, n := range []string{"owner.userId", "addresses[].line1", "tags[]", "a.b[].c.d"} {
		if v1.ValidateFieldName(v1.EngineMongoDB, n, true) != nil {
			t.Errorf("path %q refused for mongodb", n)
		}
	}
	for _, n := range []string{"$where", "a..b", "a[][]", "a.$b", "a$", "a[].b[]"} {
		if v1.ValidateFieldName(v1.EngineMongoDB, n, true) == nil {
			t.Errorf("path %q accepted for mongodb", n)
		}
	}
	// Retention fields: admission takes a column name or a path outside
	// arrays; a run holds the rule to its store's engine.
	policies := crdSchemas(t, "privacy.lethe.dev_retentionpolicies.yaml")
	for _, p := range []string{"spec.rules[].after.field", "spec.rules[].where[].field"} {
		schema := policies[p]
		for _, n := range append(paths, names...) {
			want := admits(schema, n)
			if got := v1.ValidateRetentionFieldSyntax(n) == nil; got != want {
				t.Errorf("ValidateRetentionFieldSyntax(%q) = %v, the CRD's %s admits %v", n, got, p, want)
			}
			// What admission takes and the engine runs on: mongodb the
			// DataStore's paths outside arrays, the SQL engines their columns.
			mongoWant := want && v1.ValidateFieldName(v1.EngineMongoDB, n, false) == nil
			if got := v1.ValidateRetentionField(v1.EngineMongoDB, n) == nil; got != mongoWant {
				t.Errorf("ValidateRetentionField(mongodb, %q) = %v, want %v", n, got, mongoWant)
			}
			for _, e := range []v1.Engine{v1.EnginePostgres, v1.EngineMySQL} {
				if got, sqlWant := v1.ValidateRetentionField(e, n) == nil, want && v1.ValidateIdentifier(n) == nil; got != sqlWant {
					t.Errorf("ValidateRetentionField(%s, %q) = %v, want %v", e, n, got, sqlWant)
				}
			}
		}
	}
	for _, n := range []string{"meta.createdAt", "a.b.c", "created_at"} {
		if err := v1.ValidateRetentionField(v1.EngineMongoDB, n); err != nil {
			t.Errorf("retention field %q refused for mongodb: %v", n, err)
		}
	}
	for _, n := range []string{"a..b", "$x", "a[].b", "tags[]", "created$at", path256} {
		if v1.ValidateRetentionField(v1.EngineMongoDB, n) == nil {
			t.Errorf("retention field %q accepted for mongodb", n)
		}
	}
	if err := v1.ValidateRetentionField(v1.EnginePostgres, "meta.createdAt"); err == nil || !strings.Contains(err.Error(), "engine postgres") || !strings.Contains(err.Error(), "only engine mongodb") {
		t.Errorf("ValidateRetentionField(postgres, meta.createdAt) = %v, want a refusal naming the engine", err)
	}
	rule := v1.RetentionRule{After: v1.RetentionAfter{Field: "created_at"}, Where: []v1.RetentionCondition{{Field: "created_at"}, {Field: "meta.deletedAt"}}}
	if err := rule.ValidateForEngine(v1.EngineMySQL); err == nil || !strings.HasPrefix(err.Error(), "where[1].field: ") || !strings.Contains(err.Error(), "engine mysql") {
		t.Errorf("ValidateForEngine(mysql) = %v, want where[1].field refused naming the engine", err)
	}
	if err := rule.ValidateForEngine(v1.EngineMongoDB); err != nil {
		t.Errorf("ValidateForEngine(mongodb) = %v", err)
	}

	for _, n := range names {
		if got, want := v1.ValidateIdentifier(n) == nil, admits(stores["spec.collections[].name"], n); got != want {
			t.Errorf("ValidateIdentifier(%q) = %v, CRD admits %v", n, got, want)
		}
		if got, want := v1.ValidateTable(n) == nil, admits(stores["spec.collections[].table"], n); got != want {
			t.Errorf("ValidateTable(%q) = %v, CRD admits %v", n, got, want)
		}
		if got, want := v1.ValidateCategory(n) == nil, admits(stores["spec.collections[].fields[].category"], n); got != want {
			t.Errorf("ValidateCategory(%q) = %v, CRD admits %v", n, got, want)
		}
	}
}
