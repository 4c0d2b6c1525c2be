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
	// Holds names the legal holds that keep the rows (Held).
	Holds []string
	// Until is when the last of the rows may be erased, From when the first may.
	Until, From *time.Time
	Keys        []string
	// Rows counts the rows when they are named by a condition, not listed
	// (a selected collection's, see Selection); 0 when Keys lists them.
	Rows int64
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
	rows := r.Rows
	if rows == 0 {
		rows = int64(len(r.Keys))
	}
	return stores.CollectionResult{Collection: collection, Action: stores.ActionRetain, Rows: rows, Reason: reason, RetainedUntil: r.Until, RetainedFrom: r.From}
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
	// and the oldest and newest of those times.
	Exempted(ctx context.Context, c *datamap.Collection, ex stores.Exemption, among []string) ([]string, Span, error)
}

// RetainedRows decides, parents first, which of the subject's rows erasure
// leaves: rows under a legal hold, rows inside an exemption's legal minimum
// period, and rows that belong (through cascade references) to rows kept for
// either reason, as an invoice's lines stay with the invoice. Each row is
// kept for the first reason found, in that order.
//
// held gives, per hold of the request, the subject's rows it holds (see
// HeldRows).
func RetainedRows(ctx context.Context, m *datamap.Map, rows Rows, req stores.Request, held HeldRows, f Finder) (Kept, error) {
	return retainedRows(ctx, m, rows, req, held, nil, f)
}

// KeptWithTheirRows is RetainedRows for rows kept for reasons decided
// beforehand (seed, per collection; a sweep's rows kept because of rows
// below them): those rows, and the rows that belong to them.
func KeptWithTheirRows(ctx context.Context, m *datamap.Map, rows Rows, seed Kept, f Finder) (Kept, error) {
	return retainedRows(ctx, m, rows, stores.Request{}, nil, seed, f)
}

func retainedRows(ctx context.Context, m *datamap.Map, rows Rows, req stores.Request, held HeldRows, seed Kept, f Finder) (Kept, error) {
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
		for _, r := range seed[c] {
			r.Keys = Intersect(remaining, r.Keys)
			keep(r)
		}
		if reason, names := wholeHolds(req.Holds, held, c.Name); reason != "" {
			keep(Retained{Reason: reason, Held: true, Holds: names, Keys: remaining})
		}
		for i, h := range req.Holds {
			if i < len(held) && held[i] != nil && h.Covers(c.Name) && len(remaining) > 0 {
				keep(Retained{Reason: holdReason(h), Held: true, Holds: []string{h.Name}, Keys: Intersect(remaining, held[i][c])})
			}
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
				keep(Retained{Reason: parentKept.Reason, Via: e.Parent.Name, Held: parentKept.Held, Holds: parentKept.Holds, Until: parentKept.Until, From: parentKept.From, Keys: keys})
			}
		}
		for _, ex := range req.Exemptions {
			if ex.Collection != c.Name || len(remaining) == 0 {
				continue
			}
			keys, span, err := f.Exempted(ctx, c, ex, remaining)
			if err != nil {
				return nil, err
			}
			r := ExemptedRows(ex, int64(len(keys)), span)
			r.Keys = keys
			keep(r)
		}
		out[c] = kept
	}
	return out, nil
}

// ExemptedRows are n rows kept until the newest of them leaves its period;
// the oldest leaves it first (From, when that is earlier).
func ExemptedRows(ex stores.Exemption, n int64, span Span) Retained {
	r := Retained{Reason: fmt.Sprintf("retention rule %s (legal basis: %s) keeps these rows for %s", ex.Rule, ex.LegalBasis, ex.Period)}
	if n == 0 {
		return r
	}
	period := privacyv1.Period(ex.Period)
	if until, err := period.After(span.Newest); err == nil {
		r.Until = &until
	}
	if from, err := period.After(span.Oldest); err == nil && r.Until != nil && from.Before(*r.Until) {
		r.From = &from
	}
	return r
}

// HeldRows are, per hold of a request (by index), the subject's rows the hold
// holds; nil: all of them, in the collections the hold covers (a hold on
// everyone's rows, or on a subject the store cannot tell apart from the
// request's, see ResolveHolds).
type HeldRows []Rows

// wholeHolds names the holds that keep all of the subject's rows of a
// collection, and their reasons.
func wholeHolds(holds []stores.Hold, held HeldRows, collection string) (reason string, names []string) {
	var reasons []string
	for i, h := range holds {
		if h.Covers(collection) && (i >= len(held) || held[i] == nil) {
			reasons = append(reasons, holdReason(h))
			names = append(names, h.Name)
		}
	}
	return strings.Join(reasons, "; "), names
}

func holdReason(h stores.Hold) string { return fmt.Sprintf("legal hold %s: %s", h.Name, h.Reason) }

// maxHoldIdentities bounds the identities a hold's subject is widened to
// (ResolveHolds); a hold reaching more is applied to all the request's rows.
const maxHoldIdentities = 64

// ResolveHolds finds the rows each subject hold of req holds, with the same
// traversal as the request's subject (resolve), so a hold on one identity of
// a person holds the person's rows whatever identity the request names:
//
//   - the hold's subject is resolved, then widened once: the other identity
//     columns of the rows found (an account's id for a hold by e-mail) are
//     the person's identities too, and their rows are the person's rows;
//   - a hold whose identity types this store does not map cannot be compared
//     by rows: it holds all the request's rows when Hold.HoldsByIdentity
//     says it may be the same person (failing safe), none otherwise.
//
// read returns the distinct values of a column in some rows.
func ResolveHolds(ctx context.Context, m *datamap.Map, req stores.Request,
	resolve func(context.Context, map[string]string) (Rows, error),
	read func(ctx context.Context, c *datamap.Collection, column string, keys []string) ([]string, error)) (HeldRows, error) {
	held := make(HeldRows, len(req.Holds))
	for i, h := range req.Holds {
		if h.Subject == nil {
			continue
		}
		here, err := SubjectHere(m, h.Subject)
		if err != nil {
			return nil, fmt.Errorf("legal hold %s: %w", h.Name, err)
		}
		if !here {
			if !h.HoldsByIdentity(req.Subject) {
				held[i] = Rows{}
			}
			continue
		}
		rows, all, err := PersonRows(ctx, m, h.Subject, resolve, read)
		if err != nil {
			return nil, err
		}
		if all {
			continue // held[i] stays nil: every row of the request is held
		}
		held[i] = rows
	}
	return held, nil
}

// PersonRows finds the rows of the person subject names: the subject's rows,
// and those of the other identities their identity columns carry (widened
// once). all is true when there are more than maxHoldIdentities of them: the
// caller then treats every row as the person's.
func PersonRows(ctx context.Context, m *datamap.Map, subject map[string]string,
	resolve func(context.Context, map[string]string) (Rows, error),
	read func(ctx context.Context, c *datamap.Collection, column string, keys []string) ([]string, error)) (rows Rows, all bool, err error) {
	if rows, err = resolve(ctx, subject); err != nil {
		return nil, false, err
	}
	widened, all, err := widen(ctx, m, subject, rows, read)
	if err != nil || all {
		return rows, all, err
	}
	for _, ids := range widened {
		more, err := resolve(ctx, ids)
		if err != nil {
			return nil, false, err
		}
		rows = union(m, rows, more)
	}
	return rows, false, nil
}

// widen lists the identities, beyond subject's, that the subject's rows
// carry in their identity columns, each as a subject of its own; all is true
// when there are more than maxHoldIdentities.
func widen(ctx context.Context, m *datamap.Map, subject map[string]string, rows Rows,
	read func(ctx context.Context, c *datamap.Collection, column string, keys []string) ([]string, error)) ([]map[string]string, bool, error) {
	seen := map[[2]string]bool{}
	for t, v := range subject {
		seen[[2]string{t, v}] = true
	}
	var out []map[string]string
	for _, c := range m.Collections {
		if len(rows[c]) == 0 {
			continue
		}
		for _, t := range SortedKeys(c.Identity) {
			values, err := read(ctx, c, c.Identity[t], rows[c])
			if err != nil {
				return nil, false, err
			}
			for _, v := range values {
				if strings.TrimSpace(v) == "" || seen[[2]string{t, v}] {
					continue
				}
				seen[[2]string{t, v}] = true
				if len(out) == maxHoldIdentities {
					return nil, true, nil
				}
				out = append(out, map[string]string{t: v})
			}
		}
	}
	return out, false, nil
}

// union adds more's rows to rows, per collection without repeats.
func union(m *datamap.Map, rows, more Rows) Rows {
	for _, c := range m.Collections {
		if extra := Without(more[c], rows[c]); len(extra) > 0 {
			rows[c] = append(rows[c], extra...)
		}
	}
	return rows
}
