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

// Retained is a set of the subject's rows erasure leaves in place, and why.
type Retained struct {
	Reason string
	// Via is the parent collection the rows are kept with; empty when they are
	// kept for themselves.
	Via string
	// Leads is the child collection whose held rows are found through these
	// rows; empty unless they are kept only for that (see HeldPaths).
	Leads string
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
	if r.Leads != "" {
		reason += fmt.Sprintf(" (kept until the hold ends: the held rows of %s are found through them)", r.Leads)
	}
	return stores.CollectionResult{Collection: collection, Action: stores.ActionRetain, Rows: int64(len(r.Keys)), Reason: reason, RetainedUntil: r.Until}
}

// Kept lists, per collection, the subject's rows erasure keeps.
type Kept map[*datamap.Collection][]Retained

// Finder answers the questions about rows that deciding what to keep needs.
type Finder interface {
	// ChildrenOf returns which of the child keys among refer through e to the parent keys.
	ChildrenOf(ctx context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error)
	// ParentsOf returns which of the parent keys among the child keys refer to through e.
	ParentsOf(ctx context.Context, e *datamap.Edge, childKeys, among []string) ([]string, error)
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
