package v1alpha1_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	v1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// path255 and path256 are document paths of 255 and 256 characters, every
// segment of at most 63.
var (
	path255 = strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 63)
	path256 = strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61) + ".aa"
)

// The fields of retention rules (after.field, where[].field) take a column
// name or, for a MongoDB store, a document path outside arrays: the policy
// does not know its store's engine, so admission takes both, and the run
// refuses a dotted path on another engine (controllers, InvalidRule).
func TestRetentionFieldsAcceptDocumentPaths(t *testing.T) {
	ns := env.Namespace(t)
	accepted := map[string]func(*v1.RetentionPolicy){
		"nested date": func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Field = "meta.createdAt" },
		"nested where": func(p *v1.RetentionPolicy) {
			p.Spec.Rules[1].Where = []v1.RetentionCondition{{Field: "meta.deletedAt", IsNull: ptr.To(false)}}
		},
		"deep path of 255 characters": func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Field = v1.Identifier(path255) },
		"column with a $":             func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Field = "created$at" },
		"column of 63 characters":     func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Field = v1.Identifier(strings.Repeat("a", 63)) },
	}
	i := 0
	for name, mutate := range accepted {
		p := validPolicy()
		mutate(p)
		p.Namespace, p.Name = ns, fmt.Sprintf("path-%d", i)
		i++
		if err := env.Client.Create(t.Context(), p); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

func TestRetentionFieldsRefuseWhatIsNotAPath(t *testing.T) {
	after := func(f string) func(*v1.RetentionPolicy) {
		return func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Field = v1.Identifier(f) }
	}
	where := func(f string) func(*v1.RetentionPolicy) {
		return func(p *v1.RetentionPolicy) { p.Spec.Rules[1].Where[0].Field = v1.Identifier(f) }
	}
	cases := []invalidCase{
		{"empty segment", policyWith(after("a..b")), "spec.rules[0].after.field"},
		{"operator", policyWith(after("$x")), "spec.rules[0].after.field"},
		{"operator in a segment", policyWith(after("meta.$x")), "spec.rules[0].after.field"},
		{"$ in a path", policyWith(after("meta.created$at")), "spec.rules[0].after.field"},
		{"array", policyWith(after("a[].b")), "spec.rules[0].after.field"},
		{"array at the end", policyWith(after("dates[]")), "spec.rules[0].after.field"},
		{"leading dot", policyWith(after(".a")), "spec.rules[0].after.field"},
		{"trailing dot", policyWith(after("a.")), "spec.rules[0].after.field"},
		{"segment starting with a digit", policyWith(after("a.1b")), "spec.rules[0].after.field"},
		{"quote", policyWith(after(`created_at"--`)), "spec.rules[0].after.field"},
		{"too long", policyWith(after(path256)), "spec.rules[0].after.field"},
		{"segment too long", policyWith(after(strings.Repeat("a", 64) + ".b")), "spec.rules[0].after.field"},
		{"column too long", policyWith(after(strings.Repeat("a", 64))), "spec.rules[0].after.field"},
		{"where: empty segment", policyWith(where("a..b")), "spec.rules[1].where[0].field"},
		{"where: operator", policyWith(where("$x")), "spec.rules[1].where[0].field"},
		{"where: array", policyWith(where("a[].b")), "spec.rules[1].where[0].field"},
		{"where: too long", policyWith(where(path256)), "spec.rules[1].where[0].field"},
	}
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.object()
			obj.SetNamespace(ns)
			obj.SetName(fmt.Sprintf("bad-path-%d", i))
			err := env.Client.Create(t.Context(), obj)
			if err == nil {
				t.Fatalf("accepted, want a rejection mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("rejected with %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// A rule moved to a nested field is moved to another field: the protection
// policy asks for a justification, as for any other field.
func TestMovingARuleToANestedFieldNeedsAJustification(t *testing.T) {
	ns := env.Namespace(t)
	awaitRetentionProtection(t, ns)
	p := weakeningBase()
	p.Namespace, p.Name = ns, "nested"
	p.Spec.Rules[0].After.Field = "meta.createdAt"
	if err := env.Client.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Rules[0].After.Field = "meta.updatedAt"
	err := env.Client.Update(t.Context(), p)
	if err == nil || !strings.Contains(err.Error(), "removing a rule") {
		t.Fatalf("moving a rule to another nested field: got %v, want a refusal", err)
	}
	// Shortening its period needs none.
	p.Spec.Rules[0].After.Field = "meta.createdAt"
	p.Spec.Rules[0].After.Period = "6mo"
	if err := env.Client.Update(t.Context(), p); err != nil {
		t.Fatalf("shortening a nested rule's period refused: %v", err)
	}
}
