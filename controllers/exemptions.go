package controllers

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// storeExemptions turns the exemptFromErasure rules of a store's
// RetentionPolicies into cutoffs at now: rows newer than now minus the period
// are kept. Erasure requests keep those rows; retention sweeps keep a parent
// row while such a row below it is kept.
func storeExemptions(ctx context.Context, reader client.Reader, ds *privacyv1.DataStore, now time.Time) ([]stores.Exemption, error) {
	list := &privacyv1.RetentionPolicyList{}
	if err := reader.List(ctx, list, client.InNamespace(ds.Namespace)); err != nil {
		return nil, err
	}
	var out []stores.Exemption
	for _, p := range list.Items {
		if string(p.Spec.StoreRef) != ds.Name {
			continue
		}
		for _, rule := range p.Spec.Rules {
			if !rule.ExemptFromErasure {
				continue
			}
			if err := rule.ValidateForEngine(ds.Spec.Engine); err != nil {
				return nil, fmt.Errorf("%w: RetentionPolicy %q rule %q: %w", stores.ErrInvalid, p.Name, rule.Name, err)
			}
			cutoff, err := rule.After.Period.Before(now)
			if err != nil {
				return nil, fmt.Errorf("%w: RetentionPolicy %q rule %q: %w", stores.ErrInvalid, p.Name, rule.Name, err)
			}
			out = append(out, stores.Exemption{
				Collection: string(rule.Collection), Field: string(rule.After.Field), Cutoff: cutoff,
				Period: string(rule.After.Period), LegalBasis: rule.LegalBasis, Rule: exemptionRule(p.Name, rule.Name),
			})
		}
	}
	return out, nil
}

// exemptionRule names a rule in an exemption (and in receipts): policy/rule.
func exemptionRule(policy, rule string) string { return policy + "/" + rule }
