package v1alpha1_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Protection never decreases without saying why: the admission policy
// lethe-retentionpolicy-protection (config/admission) refuses an update of a
// RetentionPolicy that keeps data longer or weakens what happens to it, unless
// the update carries a new justification.

// weakening is one update and whether it decreases protection.
type weakening struct {
	name   string
	change func(*v1.RetentionPolicy)
	// want is part of the refusal; empty when the change must be accepted as is.
	want string
}

func TestWeakeningAPolicyNeedsAJustification(t *testing.T) {
	const justify = "set spec.weakeningJustification to a new explanation to accept it"
	cases := []weakening{
		{"lengthen a period", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Period = "2y" }, "lengthening a retention period keeps data longer"},
		{"lengthen a period in another unit", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Period = "400d" }, "lengthening a retention period"},
		{"30 days into a calendar month", func(p *v1.RetentionPolicy) { p.Spec.Rules[1].After.Period = "1mo" }, "lengthening a retention period"},
		{"remove a rule", func(p *v1.RetentionPolicy) { p.Spec.Rules = p.Spec.Rules[1:] }, "removing a rule (or renaming it, or moving it"},
		{"rename a rule", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].Name = "logs" }, "removing a rule"},
		{"move a rule to another collection", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].Collection = "audit_logs" }, "removing a rule"},
		{"move a rule to another field", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Field = "updated_at" }, "removing a rule"},
		{"delete into anonymize", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].Action = v1.RetentionAnonymize }, "turning a rule's action from delete into anonymize"},
		{"add a where condition", func(p *v1.RetentionPolicy) {
			p.Spec.Rules[0].Where = []v1.RetentionCondition{{Field: "closed_at", IsNull: ptr.To(false)}}
		}, "adding where conditions"},
		{"exempt from erasure", func(p *v1.RetentionPolicy) {
			p.Spec.Rules[0].ExemptFromErasure, p.Spec.Rules[0].LegalBasis = true, "LCEN"
		}, "turning on exemptFromErasure"},
		{"another store", func(p *v1.RetentionPolicy) { p.Spec.StoreRef = "other-db" }, "changing storeRef or turning on suspend or dryRun"},
		{"suspend", func(p *v1.RetentionPolicy) { p.Spec.Suspend = true }, "changing storeRef or turning on suspend or dryRun"},
		{"dry run", func(p *v1.RetentionPolicy) { p.Spec.DryRun = true }, "changing storeRef or turning on suspend or dryRun"},

		// Changes that keep or increase protection need no justification.
		{"shorten a period", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Period = "6mo" }, ""},
		{"shorten a period in another unit", func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Period = "364d" }, ""},
		{"add a rule", func(p *v1.RetentionPolicy) {
			p.Spec.Rules = append(p.Spec.Rules, v1.RetentionRule{Name: "sessions", Collection: "sessions", After: v1.RetentionAfter{Field: "at", Period: "30d"}})
		}, ""},
		{"remove a where condition", func(p *v1.RetentionPolicy) { p.Spec.Rules[1].Where = nil }, ""},
		{"anonymize into delete", func(p *v1.RetentionPolicy) { p.Spec.Rules[1].Action = v1.RetentionDelete }, ""},
		{"no longer exempt from erasure", func(p *v1.RetentionPolicy) { p.Spec.Rules[1].ExemptFromErasure = false }, ""},
		{"another schedule and batch size", func(p *v1.RetentionPolicy) {
			p.Spec.Schedule, p.Spec.Rules[0].BatchSize = "@hourly", ptr.To(int32(100))
		}, ""},
	}
	ns := env.Namespace(t)
	awaitRetentionProtection(t, ns)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := weakeningBase()
			p.Namespace, p.Name = ns, fmt.Sprintf("weaken-%d", i)
			if err := env.Client.Create(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			tc.change(p)
			err := env.Client.Update(t.Context(), p)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("a change that keeps protection was refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted without a justification, want a refusal mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), justify) {
				t.Fatalf("refused with %q, want it to mention %q and how to accept it", err, tc.want)
			}

			// With a justification the same change is accepted...
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
				t.Fatal(err)
			}
			tc.change(p)
			p.Spec.WeakeningJustification = "DPO approval 2026-07: " + tc.name
			if err := env.Client.Update(t.Context(), p); err != nil {
				t.Fatalf("refused with a justification: %v", err)
			}
		})
	}
}

func TestAJustificationCannotBeReused(t *testing.T) {
	ns := env.Namespace(t)
	awaitRetentionProtection(t, ns)
	p := weakeningBase()
	p.Namespace, p.Name = ns, "reuse"
	if err := env.Client.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Rules[0].After.Period = "2y"
	p.Spec.WeakeningJustification = "tax audit 2026: logs kept 2 years (DPO ticket 17)"
	if err := env.Client.Update(t.Context(), p); err != nil {
		t.Fatalf("justified weakening refused: %v", err)
	}
	// A later weakening cannot ride on the justification of the previous one.
	p.Spec.Rules[0].After.Period = "3y"
	err := env.Client.Update(t.Context(), p)
	if err == nil || !strings.Contains(err.Error(), "lengthening a retention period") {
		t.Fatalf("second weakening with the same justification: got %v, want a refusal", err)
	}
	// An empty justification is none.
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Rules[0].After.Period = "3y"
	p.Spec.WeakeningJustification = ""
	if err := env.Client.Update(t.Context(), p); err == nil {
		t.Fatal("weakening with an empty justification accepted")
	}
	// Strengthening changes go through whatever the justification says.
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Rules[0].After.Period = "1y"
	if err := env.Client.Update(t.Context(), p); err != nil {
		t.Fatalf("shortening refused: %v", err)
	}
}

// awaitRetentionProtection installs the admission policies and waits until the
// API server enforces the RetentionPolicy one (a new policy takes a moment).
func awaitRetentionProtection(t *testing.T, ns string) {
	t.Helper()
	requirePolicies(t)
	p := weakeningBase()
	p.Namespace, p.Name = ns, "probe"
	if err := env.Client.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	eventuallyRefused(t, func() error {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		p.Spec.Rules[0].After.Period = "2y"
		return env.Client.Update(t.Context(), p, client.DryRunAll)
	})
}

// weakeningBase has a delete rule of 1y and an anonymize rule with a condition.
func weakeningBase() *v1.RetentionPolicy {
	return &v1.RetentionPolicy{
		Spec: v1.RetentionPolicySpec{
			StoreRef: "app-db",
			Schedule: "0 3 * * *",
			Rules: []v1.RetentionRule{
				{Name: "access-logs", Collection: "access_logs", After: v1.RetentionAfter{Field: "created_at", Period: "1y"}},
				{
					Name: "closed-accounts", Collection: "accounts", After: v1.RetentionAfter{Field: "closed_at", Period: "30d"},
					Action: v1.RetentionAnonymize, ExemptFromErasure: true, LegalBasis: "GDPR art. 5(1)(e)",
					Where: []v1.RetentionCondition{{Field: "closed_at", IsNull: ptr.To(false)}},
				},
			},
		},
	}
}
