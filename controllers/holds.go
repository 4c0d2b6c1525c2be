package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// holdResolver is the one place that decides which LegalHolds are in force,
// for the three controllers that need to know: requests (which holds an
// engine must respect), sweeps (which rows of a collection to skip) and the
// LegalHold controller (which waiting requests a hold blocks: those whose
// engines reported it in heldBy). Holds are read uncached:
// a hold created a moment before an erasure or a sweep must hold already.
type holdResolver struct {
	reader client.Reader
}

// activeHold is a LegalHold in force, with its subject's identities read.
type activeHold struct {
	*privacyv1.LegalHold
	// subject is nil for a hold on collections, whoever's rows they hold.
	subject map[string]string
}

// HoldActive reports whether a LegalHold is in force at now.
func HoldActive(h *privacyv1.LegalHold, now time.Time) bool {
	return h.DeletionTimestamp == nil && (h.Spec.ExpiresAt == nil || now.Before(h.Spec.ExpiresAt.Time))
}

// active lists the holds of namespace in force at now, by name. A hold whose
// subject cannot be read is an error naming the hold: whatever would act on
// held data waits rather than act without knowing whom the hold protects.
func (hr holdResolver) active(ctx context.Context, namespace string, now time.Time) ([]activeHold, error) {
	list := &privacyv1.LegalHoldList{}
	if err := hr.reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var out []activeHold
	for i := range list.Items {
		h := &list.Items[i]
		if !HoldActive(h, now) {
			continue
		}
		a := activeHold{LegalHold: h}
		if h.Spec.Subject != nil {
			ids, err := resolveIdentities(ctx, hr.reader, namespace, *h.Spec.Subject)
			if err != nil {
				return nil, fmt.Errorf("LegalHold %q: %w", h.Name, err)
			}
			a.subject = ids
		}
		out = append(out, a)
	}
	return out, nil
}

// covers reports whether the hold applies to collection of store ("" for
// any collection of the store).
func (a activeHold) covers(store, collection string) bool {
	if len(a.Spec.Collections) == 0 {
		return true
	}
	for _, hc := range a.Spec.Collections {
		if string(hc.Store) == store && (hc.Collection == "" || collection == "" || string(hc.Collection) == collection) {
			return true
		}
	}
	return false
}

// storeHolds is the hold as the engine of store sees it: the whole store, or
// the collections of it the hold names, with the hold's subject.
func (a activeHold) storeHolds(store string) []stores.Hold {
	if len(a.Spec.Collections) == 0 {
		return []stores.Hold{{Reason: a.Spec.Reason, Name: a.Name, Subject: a.subject}}
	}
	var out []stores.Hold
	for _, hc := range a.Spec.Collections {
		if string(hc.Store) == store {
			out = append(out, stores.Hold{Collection: string(hc.Collection), Reason: a.Spec.Reason, Name: a.Name, Subject: a.subject})
		}
	}
	return out
}

// forRequest lists the holds an engine must respect in store: every active
// hold covering it. Whether a subject hold holds the request's subject is the
// engine's decision, by rows, in the request's own transaction (see
// stores.Hold): a hold by e-mail then holds an erasure by account id.
func (hr holdResolver) forRequest(ctx context.Context, namespace, store string, now time.Time) ([]stores.Hold, error) {
	active, err := hr.active(ctx, namespace, now)
	if err != nil {
		return nil, err
	}
	var out []stores.Hold
	for _, a := range active {
		out = append(out, a.storeHolds(store)...)
	}
	return out, nil
}

// heldRows are the legal holds on the collection a rule sweeps and on the
// collections below it in the data map.
type heldRows struct {
	whole []string // holds on every row of the swept collection
	keys  []string // keys of held subjects' rows in the swept collection
	names []string // holds on subjects, sorted, once each
	// wholeBelow are holds on every row of a collection below the swept one.
	wholeBelow []string
	// childKeys are, per collection below, the keys of held subjects' rows.
	childKeys map[string][]string
}

// forSweep finds the holds on collection and on the collections below it
// (below, see datamap.Map.Below): a hold without subject holds a whole
// collection; a hold with a subject holds that subject's rows, resolved by
// the store as erasure would find them.
func (hr holdResolver) forSweep(ctx context.Context, namespace, store, collection string, below []string, sweeper stores.Sweeper, now time.Time) (heldRows, error) {
	var out heldRows
	active, err := hr.active(ctx, namespace, now)
	if err != nil {
		return out, err
	}
	for _, a := range active {
		var covered []string
		for _, c := range append([]string{collection}, below...) {
			if a.covers(store, c) {
				covered = append(covered, c)
			}
		}
		switch {
		case len(covered) == 0:
			continue
		case a.subject == nil:
			for _, c := range covered {
				if c == collection {
					out.whole = append(out.whole, fmt.Sprintf("legal hold %s: %s", a.Name, a.Spec.Reason))
				} else {
					out.wholeBelow = append(out.wholeBelow, fmt.Sprintf("%s: legal hold %s: %s", c, a.Name, a.Spec.Reason))
				}
			}
			continue
		}
		// One resolution of the held subject for every collection it covers.
		keys, err := sweeper.SubjectKeys(ctx, a.subject, covered)
		if err != nil {
			return out, fmt.Errorf("LegalHold %q: %w", a.Name, err)
		}
		for c, ks := range keys {
			if c == collection {
				out.keys = append(out.keys, ks...)
				continue
			}
			if out.childKeys == nil {
				out.childKeys = map[string][]string{}
			}
			out.childKeys[c] = append(out.childKeys[c], ks...)
		}
		out.names = append(out.names, a.Name)
	}
	return out, nil
}
