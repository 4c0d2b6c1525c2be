package sqlcore

import (
	"context"
	"fmt"
	"slices"

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
	// Paths are the rows of Keys that held rows are found through (Action
	// anonymize): they keep the columns they are found by (see HeldPaths).
	Paths []string
	// PathFields are the Fields masked in Paths.
	PathFields []datamap.Field
	// PathReason explains, for the receipt, why Paths keep some columns.
	PathReason string
	// Whole is true when the request's scope covers every field of the
	// collection: the rows are erased as persons, and others' setNull links
	// to them are cleared even when they are anonymized.
	Whole bool
}

// Mask is one anonymization: Fields masked in the rows of Keys, or in the
// rows Sel names.
type Mask struct {
	Fields []datamap.Field
	Keys   []string
	Sel    Selection
}

func (m Mask) rows() rowSet { return rowSet{keys: m.Keys, sel: m.Sel} }

// Masks lists what anonymizing e masks: every field in the rows no held row
// is found through, and the fields no later pass finds them by in the others.
func (e Erasure) Masks() []Mask {
	out := []Mask{{Fields: e.Fields, Keys: Without(e.Keys, e.Paths)}}
	if len(e.Paths) > 0 && len(e.PathFields) > 0 {
		out = append(out, Mask{Fields: e.PathFields, Keys: e.Paths})
	}
	return out
}

// ErasureOf decides what erasure does to c (stores.ErasureAction), with the
// fields anonymizing masks: those in the request's scope that have masking.
func ErasureOf(c *datamap.Collection, scope datamap.Scope) (Erasure, error) {
	action, whole, err := stores.ErasureAction(c, scope)
	if err != nil || action != stores.ActionAnonymize {
		return Erasure{Action: action, Whole: whole}, err
	}
	var fields []datamap.Field
	for _, f := range c.Fields {
		if scope.Covers(f.Category) && f.Masking != nil {
			fields = append(fields, f)
		}
	}
	return Erasure{Action: action, Fields: fields, Whole: whole}, nil
}

// ErasurePlan is what an erasure does to a store: each collection in scope's
// erasure, the rows it keeps, and the rows whose setNull references it leaves.
type ErasurePlan struct {
	Erasures map[*datamap.Collection]Erasure
	Kept     Kept
	Spared   map[*datamap.Collection][]string
}

// PlanErasure decides an erasure of the subject's rows: which rows are kept
// (holds, legal minimums, the rows belonging to those, and the rows held rows
// are found through) and what happens to the others.
func PlanErasure(ctx context.Context, m *datamap.Map, rows Rows, req stores.Request, held HeldRows, f Finder) (ErasurePlan, error) {
	kept, err := RetainedRows(ctx, m, rows, req, held, f)
	if err != nil {
		return ErasurePlan{}, err
	}
	paths, err := HeldPaths(ctx, m, rows, kept, req.Scope, f)
	if err != nil {
		return ErasurePlan{}, err
	}
	erasures, err := ErasurePlans(m, rows, kept, req.Scope)
	if err != nil {
		return ErasurePlan{}, err
	}
	keepPaths(erasures, kept, paths, findingTypes(req))
	return ErasurePlan{Erasures: erasures, Kept: kept, Spared: SparedFromClearing(erasures, kept)}, nil
}

// findingTypes are the identity types rows are found by in a later pass: the
// request's, and those of the holds' subjects, which must still find the rows
// they hold when the request runs again.
func findingTypes(req stores.Request) map[string]string {
	types := map[string]string{}
	for t := range req.Subject {
		types[t] = t
	}
	for _, h := range req.Holds {
		for t := range h.Subject {
			types[t] = t
		}
	}
	return types
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

// EraseSteps plans an erasure (PlanErasure) and lists its steps (ErasureSteps);
// own also gets the rows whose setNull references stay.
func EraseSteps[S any](ctx context.Context, m *datamap.Map, rows Rows, req stores.Request, held HeldRows, f Finder,
	own func(c *datamap.Collection, e Erasure, spared map[*datamap.Collection][]string) ([]S, error), report func(stores.CollectionResult) S) ([]S, []string, error) {
	plan, err := PlanErasure(ctx, m, rows, req, held, f)
	if err != nil {
		return nil, nil, err
	}
	return ErasureSteps(m, plan, func(c *datamap.Collection, e Erasure) ([]S, error) { return own(c, e, plan.Spared) }, report)
}

// ErasureSteps lists an erasure's steps children first: for each planned
// collection the engine's own steps (own), then one result per set of kept
// rows, made into a step by report. heldBy names, sorted, the legal holds
// that kept any row.
func ErasureSteps[S any](m *datamap.Map, plan ErasurePlan,
	own func(*datamap.Collection, Erasure) ([]S, error), report func(stores.CollectionResult) S) ([]S, []string, error) {
	var steps []S
	var heldBy []string
	for i := len(m.Collections) - 1; i >= 0; i-- {
		c := m.Collections[i]
		e, ok := plan.Erasures[c]
		if !ok {
			continue
		}
		collectionSteps, err := own(c, e)
		if err != nil {
			return nil, nil, err
		}
		steps = append(steps, collectionSteps...)
		if e.Action == stores.ActionRetain {
			continue
		}
		for _, r := range plan.Kept[c] {
			steps = append(steps, report(r.Result(c.Name)))
			for _, name := range r.Holds {
				if !slices.Contains(heldBy, name) {
					heldBy = append(heldBy, name)
				}
			}
		}
	}
	slices.Sort(heldBy)
	return steps, heldBy, nil
}

// RetainReason is the reason a collection retained by the map gives.
func RetainReason(c *datamap.Collection) string {
	if c.RetainReason != "" {
		return c.RetainReason
	}
	return "the data map retains this collection on erasure"
}

// RetainResult reports the subject's rows of a collection the map retains.
func RetainResult(c *datamap.Collection, rows int64) stores.CollectionResult {
	return stores.CollectionResult{Collection: c.Name, Action: stores.ActionRetain, Rows: rows, Reason: RetainReason(c)}
}

// SetNullReason explains a setNull step in a receipt.
func SetNullReason(e *datamap.Edge) string {
	return fmt.Sprintf("%s cleared where it referred to erased rows of %s", e.ChildField, e.Parent.Name)
}
