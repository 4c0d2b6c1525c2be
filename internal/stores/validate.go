package stores

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
)

// Validate refuses, before any query, a request no store could carry out
// safely; every engine calls it first, so all refuse alike. Its errors name
// identity types and collections, never values.
func Validate(m *datamap.Map, req Request) error {
	if err := ValidateSubject(m, req.Subject); err != nil {
		return err
	}
	switch req.Kind {
	case KindAccess, KindErasure:
	case KindRectification:
		if len(req.Rectification) == 0 {
			return fmt.Errorf("%w: a Rectification request needs values", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown request kind %q", ErrInvalid, req.Kind)
	}
	for _, h := range req.Holds {
		if _, ok := m.Get(h.Collection); h.Collection != "" && !ok {
			return fmt.Errorf("%w: legal hold %s names collection %q, which the data map does not have", ErrInvalid, h.Name, h.Collection)
		}
	}
	for _, e := range req.Exemptions {
		if _, ok := m.Get(e.Collection); !ok {
			return fmt.Errorf("%w: retention rule %s names collection %q, which the data map does not have", ErrInvalid, e.Rule, e.Collection)
		}
	}
	return nil
}

// ValidateApply is Validate for Apply, which carries out erasures and
// rectifications: an Access request is exported instead.
func ValidateApply(m *datamap.Map, req Request) error {
	if err := Validate(m, req); err != nil {
		return err
	}
	if req.Kind == KindAccess {
		return fmt.Errorf("%w: an Access request is exported, not applied", ErrInvalid)
	}
	return nil
}

// ValidateSubject refuses an empty identity value (it would match every row
// whose column is empty), and a subject none of whose identity types the map
// knows; identity types only other stores map are ignored.
func ValidateSubject(m *datamap.Map, subject map[string]string) error {
	types := slices.Sorted(maps.Keys(subject))
	if len(types) == 0 {
		return fmt.Errorf("%w: the request has no subject identity", ErrInvalid)
	}
	for _, t := range types {
		if strings.TrimSpace(subject[t]) == "" {
			return fmt.Errorf("%w: identity %s has an empty value", ErrInvalid, t)
		}
	}
	known := IdentityTypes(m)
	if !slices.ContainsFunc(types, func(t string) bool { return slices.Contains(known, t) }) {
		return fmt.Errorf("%w: none of the subject's identity types (%s) is mapped in this store, which knows %s",
			ErrInvalid, strings.Join(types, ", "), strings.Join(known, ", "))
	}
	return nil
}

// IdentityTypes lists, sorted, the identity types any collection of m maps.
func IdentityTypes(m *datamap.Map) []string {
	set := map[string]string{}
	for _, c := range m.Collections {
		for t := range c.Identity {
			set[t] = t
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// ErasureAction decides what erasure does to a collection, for every engine.
// A collection mapped delete whose fields the scope covers only in part is
// anonymized instead, masking only the fields in scope: deleting the rows
// would erase data the request does not cover. Anonymizing with no masked
// field in scope is impossible, and an error rather than a silent skip. whole
// is true when the scope covers every field of the collection.
func ErasureAction(c *datamap.Collection, scope datamap.Scope) (action Action, whole bool, err error) {
	if c.OnErasure == privacyv1.ErasureRetain {
		return ActionRetain, false, nil
	}
	var unmasked []string
	covered, masked := 0, 0
	for _, f := range c.Fields {
		if !scope.Covers(f.Category) {
			continue
		}
		covered++
		if f.Masking != nil {
			masked++
		} else {
			unmasked = append(unmasked, f.Name)
		}
	}
	whole = covered == len(c.Fields)
	if c.OnErasure == privacyv1.ErasureDelete && whole {
		return ActionDelete, true, nil
	}
	if masked == 0 {
		return "", whole, fmt.Errorf("%w: collection %q: none of its fields in the request's scope (%s) has masking, so they can be neither anonymized nor deleted without erasing data outside the scope; add masking to them or widen the scope",
			ErrInvalid, c.Name, strings.Join(unmasked, ", "))
	}
	return ActionAnonymize, whole, nil
}
