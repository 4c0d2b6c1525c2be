package sqlcore

import (
	"context"
	"fmt"
	"slices"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// A delete sweep follows the data map below the rows it deletes, with the
// erasure's traversal and steps: the batch's rows are resolved to keys, the
// rows below them found (Resolver.Descend), and each batch erases those as
// an erasure erases a subject's rows, children first, in the batch's
// transaction. A row below that must stay keeps the rows it is found
// through, up to the batch's (as a held row keeps its path in an erasure,
// see PathsUp), and a batch row kept so keeps everything below it (as an
// erasure keeps an invoice's lines with the invoice).
//
// An anonymize sweep changes only the rule's own rows: they stay, so what
// belongs to them and what refers to them stays as it is.

// SweepPlan is what a delete batch does to its rows and the rows below them.
type SweepPlan struct {
	// Erasure is each collection's part, as ErasureSteps lists it: the
	// swept collection's rows deleted, the rows below erased as mapped.
	Erasure ErasurePlan
	// Kept reports the batch's rows left because of rows below them: one
	// result per reason, Action retain.
	Kept []stores.CollectionResult

	m       *datamap.Map
	kept    Kept
	heldRow map[string][]string
}

// PlanSweepBatch decides what a delete batch of sw does: rows are the rows
// of the batch (sw.C) and those below them, as Resolver.Descend finds them.
//
//   - Rows below that stay keep their parents, up to the batch's rows: the
//     rows of a collection the map retains on erasure, held rows
//     (SweepRule.HeldChildKeys), and rows an exemption still keeps (its
//     field after its cutoff). The first reason found is reported.
//   - A batch row kept so keeps every row below it.
//   - The other batch rows are deleted, whatever the swept collection's
//     onErasure (the rule decides for it); the rows below them are deleted
//     or anonymized as the map says, every field of them (a sweep has no
//     scope); setNull references to deleted rows are cleared.
func PlanSweepBatch(ctx context.Context, m *datamap.Map, sw Sweep, rows Rows, f Finder) (SweepPlan, error) {
	sources, err := sweepSources(ctx, m, sw, rows, f)
	if err != nil {
		return SweepPlan{}, err
	}
	// Rows kept keep their parents, and a parent kept keeps every row below
	// it; a row below two parents (kept with one) keeps the other too: the
	// walks repeat until no row below a kept row is new.
	keep, kept := sources, Kept{}
	for {
		paths, err := PathsUp(ctx, m,
			func(c *datamap.Collection, paths []Retained) []Retained {
				return append(slices.Clone(keep[c]), paths...)
			},
			func(p *datamap.Collection, paths Kept) []string {
				return Without(rows[p], append(keysOf(paths[p]), keysOf(keep[p])...))
			}, f)
		if err != nil {
			return SweepPlan{}, err
		}
		seed := Kept{}
		for c := range rows {
			if rs := append(slices.Clone(keep[c]), paths[c]...); len(rs) > 0 {
				seed[c] = rs
			}
		}
		if kept, err = KeptWithTheirRows(ctx, m, rows, seed, f); err != nil {
			return SweepPlan{}, err
		}
		if keptRows(kept) == keptRows(seed) {
			break
		}
		keep = kept
	}
	everything := allCategories(m)
	erasures := map[*datamap.Collection]Erasure{}
	for _, c := range m.Collections {
		if len(rows[c]) == 0 {
			continue
		}
		e := Erasure{Action: stores.ActionDelete, Whole: true}
		if c != sw.C {
			if e, err = ErasureOf(c, everything); err != nil {
				return SweepPlan{}, err
			}
			if e.Action == stores.ActionRetain {
				continue // its rows are all kept, with the rows above them
			}
		}
		e.Keys = Without(rows[c], keysOf(kept[c]))
		erasures[c] = e
	}
	return SweepPlan{
		Erasure: ErasurePlan{Erasures: erasures, Kept: Kept{}},
		Kept:    keptResults(sw.C, kept[sw.C]),
		m:       m, kept: kept, heldRow: sw.Rule.HeldChildKeys,
	}, nil
}

// sweepSources are, per collection below the batch's, its rows that keep
// the rows above them, with the reason the sweep reports: retained by the
// map, held, or exempted; each row for the first of those.
func sweepSources(ctx context.Context, m *datamap.Map, sw Sweep, rows Rows, f Finder) (Kept, error) {
	sources := Kept{}
	for _, c := range m.Collections {
		remaining := rows[c]
		if c == sw.C || len(remaining) == 0 {
			continue
		}
		keep := func(r Retained) {
			if len(r.Keys) > 0 {
				sources[c] = append(sources[c], r)
				remaining = Without(remaining, r.Keys)
			}
		}
		if c.OnErasure == privacyv1.ErasureRetain {
			keep(Retained{Reason: fmt.Sprintf("kept: %s below are retained by the data map (%s)", c.Name, RetainReason(c)), Keys: remaining})
		}
		if held := sw.Rule.HeldChildKeys[c.Name]; len(held) > 0 && len(remaining) > 0 {
			keep(Retained{Reason: fmt.Sprintf("kept: %s below are on legal hold", c.Name), Held: true, Keys: Intersect(remaining, held)})
		}
		for _, ex := range sw.Rule.Exemptions {
			if ex.Collection != c.Name || len(remaining) == 0 {
				continue
			}
			keys, _, err := f.Exempted(ctx, c, ex, remaining)
			if err != nil {
				return nil, err
			}
			keep(Retained{Reason: fmt.Sprintf("kept: %s below are kept by retention rule %s (legal basis: %s) for %s", c.Name, ex.Rule, ex.LegalBasis, ex.Period), Keys: keys})
		}
	}
	return sources, nil
}

func keptRows(k Kept) int {
	n := 0
	for _, rs := range k {
		n += len(keysOf(rs))
	}
	return n
}

// keptResults reports the batch's kept rows, one result per reason.
func keptResults(c *datamap.Collection, kept []Retained) []stores.CollectionResult {
	var out []stores.CollectionResult
	var seen []string
	for _, r := range kept {
		keys := Without(r.Keys, seen)
		if len(keys) == 0 {
			continue
		}
		seen = append(seen, keys...)
		i := slices.IndexFunc(out, func(cr stores.CollectionResult) bool { return cr.Reason == r.Reason })
		if i < 0 {
			out = append(out, stores.CollectionResult{Collection: c.Name, Action: stores.ActionRetain, Reason: r.Reason})
			i = len(out) - 1
		}
		out[i].Rows += int64(len(keys))
	}
	return out
}

// SparedFrom are the rows referring through ref to rows the batch deletes
// whose link stays: kept rows, held rows, and rows the batch deletes anyway
// (those Unlinks names are unlinked first, uncounted). The setNull results
// then count only other rows, which lose the link and nothing else.
func (p SweepPlan) SparedFrom(ref *datamap.Edge) []string {
	spared := append(keysOf(p.kept[ref.Child]), p.heldRow[ref.Child.Name]...)
	if e, ok := p.Erasure.Erasures[ref.Child]; ok && e.Action == stores.ActionDelete {
		spared = append(spared, e.Keys...)
	}
	return spared
}

// Unlink is a setNull reference to clear in rows the batch deletes.
type Unlink struct {
	Ref  *datamap.Edge
	Keys []string
}

// Unlinks are the rows the batch deletes whose setNull reference may point
// at a row it deletes before them (a self-reference among the batch's rows,
// an ancestor's reference to a row below it): their links are cleared
// first, so that no foreign key, checked row by row (InnoDB) or at the end
// of each statement, refuses the earlier delete.
func (p SweepPlan) Unlinks() []Unlink {
	var out []Unlink
	for i, c := range p.m.Collections {
		if e, ok := p.Erasure.Erasures[c]; !ok || e.Action != stores.ActionDelete || len(e.Keys) == 0 {
			continue
		}
		for _, ref := range c.Referrers {
			child, ok := p.Erasure.Erasures[ref.Child]
			// Children first: a collection later in the map's order is deleted earlier.
			if ok && child.Action == stores.ActionDelete && len(child.Keys) > 0 && slices.Index(p.m.Collections, ref.Child) <= i {
				out = append(out, Unlink{Ref: ref, Keys: child.Keys})
			}
		}
	}
	return out
}

// allCategories is a scope covering every field of the map: a sweep erases
// the rows below its own whole.
func allCategories(m *datamap.Map) datamap.Scope {
	var scope datamap.Scope
	for _, c := range m.Collections {
		for _, f := range c.Fields {
			if !slices.Contains(scope.Categories, f.Category) {
				scope.Categories = append(scope.Categories, f.Category)
			}
		}
	}
	return scope
}

// AddResult adds r to results: to the result of the same collection and
// action, or as a new one.
func AddResult(results []stores.CollectionResult, r stores.CollectionResult) []stores.CollectionResult {
	for i := range results {
		if results[i].Collection == r.Collection && results[i].Action == r.Action {
			results[i].Rows += r.Rows
			return results
		}
	}
	return append(results, r)
}
