package sqlcore

import (
	"context"
	"fmt"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Erasure is what an erasure does to one collection.
type Erasure struct {
	Action stores.Action
	// Fields anonymize masks (Action anonymize).
	Fields []datamap.Field
	// Keys are the rows deleted or anonymized: the subject's rows minus the kept ones.
	Keys []string
}

// ErasureOf decides what erasure does to c. A collection mapped delete whose
// fields the scope covers only in part is anonymized instead, masking only
// the fields in scope: deleting the rows would erase data the request does
// not cover. Anonymizing with no masked field in scope is impossible, and an
// error rather than a silent skip.
func ErasureOf(c *datamap.Collection, scope datamap.Scope) (Erasure, error) {
	if c.OnErasure == privacyv1.ErasureRetain {
		return Erasure{Action: stores.ActionRetain}, nil
	}
	var fields []datamap.Field
	var unmasked []string
	covered := 0
	for _, f := range c.Fields {
		if !scope.Covers(f.Category) {
			continue
		}
		covered++
		if f.Masking != nil {
			fields = append(fields, f)
		} else {
			unmasked = append(unmasked, f.Name)
		}
	}
	if c.OnErasure == privacyv1.ErasureDelete && covered == len(c.Fields) {
		return Erasure{Action: stores.ActionDelete}, nil
	}
	if len(fields) == 0 {
		return Erasure{}, fmt.Errorf("%w: collection %q: none of its fields in the request's scope (%s) has masking, so they can be neither anonymized nor deleted without erasing data outside the scope; add masking to them or widen the scope",
			stores.ErrInvalid, c.Name, strings.Join(unmasked, ", "))
	}
	return Erasure{Action: stores.ActionAnonymize, Fields: fields}, nil
}

// ErasurePlans decides what erasure does to each collection in scope, and to
// which of the subject's rows (all but the kept ones).
func ErasurePlans(m *datamap.Map, rows Rows, kept Kept, scope datamap.Scope) (map[*datamap.Collection]Erasure, error) {
	plans := map[*datamap.Collection]Erasure{}
	for _, c := range m.Collections {
		if !scope.InScope(c) {
			continue
		}
		e, err := ErasureOf(c, scope)
		if err != nil {
			return nil, err
		}
		e.Keys = rows[c]
		for _, r := range kept[c] {
			e.Keys = Without(e.Keys, r.Keys)
		}
		plans[c] = e
	}
	return plans, nil
}

// SparedFromClearing are, per collection, the subject's rows whose setNull
// references are not cleared: rows this erasure deletes anyway, and rows it
// must leave unchanged (retained, held or exempted). A kept row whose foreign
// key then blocks the parent's delete fails the erasure rather than breaking
// the hold.
func SparedFromClearing(plans map[*datamap.Collection]Erasure, kept Kept) map[*datamap.Collection][]string {
	spared := map[*datamap.Collection][]string{}
	for c, e := range plans {
		if e.Action != stores.ActionAnonymize {
			spared[c] = append(spared[c], e.Keys...)
		}
	}
	for c, rs := range kept {
		for _, r := range rs {
			spared[c] = append(spared[c], r.Keys...)
		}
	}
	return spared
}

// ErasureSteps lists an erasure's steps children first: for each planned
// collection the engine's own steps (own), then one result per set of kept
// rows, made into a step by report. held reports whether a legal hold kept
// any row.
func ErasureSteps[S any](m *datamap.Map, plans map[*datamap.Collection]Erasure, kept Kept,
	own func(*datamap.Collection, Erasure) ([]S, error), report func(stores.CollectionResult) S) ([]S, bool, error) {
	var steps []S
	held := false
	for i := len(m.Collections) - 1; i >= 0; i-- {
		c := m.Collections[i]
		e, ok := plans[c]
		if !ok {
			continue
		}
		collectionSteps, err := own(c, e)
		if err != nil {
			return nil, false, err
		}
		steps = append(steps, collectionSteps...)
		if e.Action == stores.ActionRetain {
			continue
		}
		for _, r := range kept[c] {
			steps = append(steps, report(r.Result(c.Name)))
			held = held || r.Held
		}
	}
	return steps, held, nil
}

// RetainReason is the reason a collection retained by the map gives.
func RetainReason(c *datamap.Collection) string {
	if c.RetainReason != "" {
		return c.RetainReason
	}
	return "the data map retains this collection on erasure"
}

// RetainResult reports the subject's rows of a collection the map retains.
func RetainResult(c *datamap.Collection, rows int) stores.CollectionResult {
	return stores.CollectionResult{Collection: c.Name, Action: stores.ActionRetain, Rows: int64(rows), Reason: RetainReason(c)}
}

// SetNullReason explains a setNull step in a receipt.
func SetNullReason(e *datamap.Edge) string {
	return fmt.Sprintf("%s cleared where it referred to erased rows of %s", e.ChildField, e.Parent.Name)
}

// Retained is a set of the subject's rows erasure leaves in place, and why.
type Retained struct {
	Reason string
	// Via is the parent collection the rows are kept with; empty when they are
	// kept for themselves.
	Via   string
	Held  bool
	Until *time.Time
	Keys  []string
}

// Result reports r in a receipt.
func (r Retained) Result(collection string) stores.CollectionResult {
	reason := r.Reason
	if r.Via != "" {
		reason += fmt.Sprintf(" (kept with the rows of %s they belong to)", r.Via)
	}
	return stores.CollectionResult{Collection: collection, Action: stores.ActionRetain, Rows: int64(len(r.Keys)), Reason: reason, RetainedUntil: r.Until}
}

// Kept lists, per collection, the subject's rows erasure keeps.
type Kept map[*datamap.Collection][]Retained

// Finder answers the two questions about rows that deciding what to keep needs.
type Finder interface {
	// ChildrenOf returns which of the child keys among refer through e to the parent keys.
	ChildrenOf(ctx context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error)
	// Exempted returns which of c's keys among have ex.Field after ex.Cutoff,
	// and the newest of those times.
	Exempted(ctx context.Context, c *datamap.Collection, ex stores.Exemption, among []string) ([]string, time.Time, error)
}

// RetainedRows decides, parents first, which of the subject's rows erasure
// leaves: rows under a legal hold, rows inside an exemption's legal minimum
// period, and rows that belong (through cascade references) to rows kept for
// either reason, as an invoice's lines stay with the invoice. Each row is
// kept for the first reason found, in that order.
func RetainedRows(ctx context.Context, m *datamap.Map, rows Rows, req stores.Request, f Finder) (Kept, error) {
	out := Kept{}
	for _, c := range m.Collections {
		remaining := rows[c]
		var kept []Retained
		keep := func(r Retained) {
			if len(r.Keys) > 0 {
				kept = append(kept, r)
				remaining = Without(remaining, r.Keys)
			}
		}
		if reason := HoldReason(req.Holds, c.Name); reason != "" {
			keep(Retained{Reason: reason, Held: true, Keys: remaining})
		}
		for _, e := range c.Parents {
			for _, parentKept := range out[e.Parent] {
				if len(remaining) == 0 {
					break
				}
				keys, err := f.ChildrenOf(ctx, e, parentKept.Keys, remaining)
				if err != nil {
					return nil, err
				}
				keep(Retained{Reason: parentKept.Reason, Via: e.Parent.Name, Held: parentKept.Held, Until: parentKept.Until, Keys: keys})
			}
		}
		for _, ex := range req.Exemptions {
			if ex.Collection != c.Name || len(remaining) == 0 {
				continue
			}
			keys, newest, err := f.Exempted(ctx, c, ex, remaining)
			if err != nil {
				return nil, err
			}
			keep(exemptedRows(ex, keys, newest))
		}
		out[c] = kept
	}
	return out, nil
}

// exemptedRows are kept until the newest of them leaves its period.
func exemptedRows(ex stores.Exemption, keys []string, newest time.Time) Retained {
	r := Retained{Reason: fmt.Sprintf("retention rule %s (legal basis: %s) keeps these rows for %s", ex.Rule, ex.LegalBasis, ex.Period), Keys: keys}
	if until, err := privacyv1.Period(ex.Period).After(newest); err == nil && len(keys) > 0 {
		r.Until = &until
	}
	return r
}

// HoldReason names the holds on a collection (or on the whole store).
func HoldReason(holds []stores.Hold, collection string) string {
	var reasons []string
	for _, h := range holds {
		if h.Collection == "" || h.Collection == collection {
			reasons = append(reasons, fmt.Sprintf("legal hold %s: %s", h.Name, h.Reason))
		}
	}
	return strings.Join(reasons, "; ")
}
