package sqlcore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// A request that finds rows on legal hold leaves them, and runs again when the
// hold ends to erase them. It can only erase what it finds again: held rows
// reached through their parents (cascade references) up to rows matching the
// subject's identities must still be reachable then. So the rows on those
// paths keep what they are found by until no held row is found through them:
// an anonymized row keeps its identity and reference columns (its other
// fields are masked), and a row its collection deletes is kept whole. The
// pass that finds no more held rows erases them as mapped.

// HeldPaths finds, children first, the subject's rows that rows on legal hold
// are found through: their parents, and those rows' parents, up to the
// collections found by identity. Only held rows an erasure would erase once
// the hold ends count (in scope, not retained by the map). Each path row is
// reported with the hold's reason and the child collection it leads to.
func HeldPaths(ctx context.Context, m *datamap.Map, rows Rows, kept Kept, scope datamap.Scope, f Finder) (Kept, error) {
	return PathsUp(ctx, m,
		func(c *datamap.Collection, paths []Retained) []Retained { return heldSources(c, kept[c], paths, scope) },
		func(p *datamap.Collection, paths Kept) []string { return candidates(p, rows, kept, paths, scope) }, f)
}

// PathsUp walks the cascade references up, children first, from rows that
// must keep the rows they are found through (held rows for an erasure; rows
// that keep their parents for a sweep): each collection's sources (given its
// rows found so far to lead to sources below, paths) are followed to their
// parents' rows among candidates, which are reported with the source's
// reason and holds, leading to the collection below.
func PathsUp(ctx context.Context, m *datamap.Map, sources func(c *datamap.Collection, paths []Retained) []Retained,
	candidates func(p *datamap.Collection, paths Kept) []string, f Finder) (Kept, error) {
	paths := Kept{}
	for i := len(m.Collections) - 1; i >= 0; i-- {
		c := m.Collections[i]
		srcs := sources(c, paths[c])
		for _, e := range c.Parents {
			for _, src := range srcs {
				among := candidates(e.Parent, paths)
				if len(among) == 0 {
					break
				}
				keys, err := f.ParentsOf(ctx, e, src.Keys, among)
				if err != nil {
					return nil, err
				}
				if len(keys) > 0 {
					paths[e.Parent] = append(paths[e.Parent], Retained{Reason: src.Reason, Leads: c.Name, Held: src.Held, Holds: src.Holds, Keys: keys})
				}
			}
		}
	}
	return paths, nil
}

// candidates are p's rows that may still be found to lead to held rows: not
// found so far, and not held rows whose parents HeldPaths looks for at p's
// turn anyway.
func candidates(p *datamap.Collection, rows Rows, kept, paths Kept, scope datamap.Scope) []string {
	known := append(keysOf(paths[p]), keysOf(heldSources(p, kept[p], nil, scope))...)
	return Without(rows[p], known)
}

// heldSources are c's rows whose parents must stay reachable: the rows held
// rows are found through, and the held rows an erasure would erase later.
func heldSources(c *datamap.Collection, kept, paths []Retained, scope datamap.Scope) []Retained {
	sources := slices.Clone(paths)
	if !scope.InScope(c) || c.OnErasure == privacyv1.ErasureRetain {
		return sources
	}
	for _, r := range kept {
		if keys := Without(r.Keys, keysOf(sources)); r.Held && len(keys) > 0 {
			r.Keys = keys
			sources = append(sources, r)
		}
	}
	return sources
}

func keysOf(rs []Retained) []string {
	var keys []string
	for _, r := range rs {
		keys = append(keys, r.Keys...)
	}
	return keys
}

// keepPaths applies HeldPaths to the erasures: a collection that deletes keeps
// its path rows (they are reported as kept, on hold); one that anonymizes masks
// in them only the fields a later pass does not find them by.
func keepPaths(erasures map[*datamap.Collection]Erasure, kept Kept, paths Kept, subject map[string]string) {
	for c, leads := range paths {
		e, ok := erasures[c]
		if !ok || e.Action == stores.ActionRetain {
			continue
		}
		var reasons, children []string
		for _, r := range leads {
			r.Keys = Intersect(Without(e.Keys, e.Paths), r.Keys)
			if len(r.Keys) == 0 {
				continue
			}
			if e.Action == stores.ActionDelete {
				kept[c] = append(kept[c], r)
				e.Keys = Without(e.Keys, r.Keys)
				continue
			}
			e.Paths = append(e.Paths, r.Keys...)
			children = append(children, r.Leads)
			reasons = append(reasons, fmt.Sprintf("%s (the held rows of %s are found through them)", r.Reason, r.Leads))
		}
		if len(e.Paths) > 0 {
			e = maskPaths(e, pathColumns(c, subject, children), reasons)
		}
		erasures[c] = e
	}
}

// maskPaths sets what anonymize masks in e's path rows: every field but the
// columns they are found by. When it masks none of those, path rows are
// anonymized as the others.
func maskPaths(e Erasure, found []string, reasons []string) Erasure {
	var unmasked []string
	e.PathFields = nil
	for _, f := range e.Fields {
		if slices.ContainsFunc(found, func(col string) bool { return strings.EqualFold(col, f.Name) }) {
			unmasked = append(unmasked, f.Name)
		} else {
			e.PathFields = append(e.PathFields, f)
		}
	}
	if len(unmasked) == 0 {
		e.Paths, e.PathFields = nil, nil
		return e
	}
	e.PathReason = fmt.Sprintf("%s left unmasked in %s until the hold ends: %s",
		strings.Join(unmasked, ", "), rowCount(len(e.Paths)), strings.Join(reasons, "; "))
	return e
}

func rowCount(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// pathColumns are the columns a later pass finds c's rows by, on their way
// to the held rows of children: the identity columns of the subject's
// identity types, the columns of c's references to its parents, and the
// columns those children refer to.
func pathColumns(c *datamap.Collection, subject map[string]string, children []string) []string {
	_, cols := c.IdentityColumns(subject)
	for _, e := range c.Parents {
		cols = append(cols, e.ChildField)
	}
	for _, e := range c.Children {
		if slices.Contains(children, e.Child.Name) {
			cols = append(cols, e.ParentField)
		}
	}
	return cols
}
