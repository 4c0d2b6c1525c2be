package postgres

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// retained is a set of the subject's rows erasure leaves in place, and why.
type retained struct {
	reason string
	// via is the parent collection the rows are kept with; empty when they are
	// kept for themselves.
	via   string
	held  bool
	until *time.Time
	keys  []string
}

func (r retained) result(collection string) stores.CollectionResult {
	reason := r.reason
	if r.via != "" {
		reason += fmt.Sprintf(" (kept with the rows of %s they belong to)", r.via)
	}
	return stores.CollectionResult{Collection: collection, Action: stores.ActionRetain, Rows: int64(len(r.keys)), Reason: reason, RetainedUntil: r.until}
}

// retainedRows decides, parents first, which of the subject's rows erasure
// leaves: rows under a legal hold, rows inside an exemption's legal minimum
// period, and rows that belong (through cascade references) to rows kept for
// either reason, as an invoice's lines stay with the invoice. Each row is
// kept for the first reason found, in that order.
func (s *Store) retainedRows(ctx context.Context, tx pgx.Tx, live *liveSchema, rows subjectRows, req stores.Request) (map[*datamap.Collection][]retained, error) {
	out := map[*datamap.Collection][]retained{}
	for _, c := range s.m.Collections {
		remaining := rows[c]
		var kept []retained
		keep := func(r retained) {
			if len(r.keys) > 0 {
				kept = append(kept, r)
				remaining = without(remaining, r.keys)
			}
		}
		if reason := holdReason(req.Holds, c.Name); reason != "" {
			keep(retained{reason: reason, held: true, keys: remaining})
		}
		for _, e := range c.Parents {
			for _, parentKept := range out[e.Parent] {
				if len(remaining) == 0 {
					break
				}
				keys, err := childrenOf(ctx, tx, live, e, parentKept.keys, remaining)
				if err != nil {
					return nil, err
				}
				keep(retained{reason: parentKept.reason, via: e.Parent.Name, held: parentKept.held, until: parentKept.until, keys: keys})
			}
		}
		for _, ex := range req.Exemptions {
			if ex.Collection != c.Name || len(remaining) == 0 {
				continue
			}
			r, err := exempted(ctx, tx, live, c, ex, remaining)
			if err != nil {
				return nil, err
			}
			keep(r)
		}
		out[c] = kept
	}
	return out, nil
}

// holdReason names the holds on a collection (or on the whole store).
func holdReason(holds []stores.Hold, collection string) string {
	var reasons []string
	for _, h := range holds {
		if h.Collection == "" || h.Collection == collection {
			reasons = append(reasons, fmt.Sprintf("legal hold %s: %s", h.Name, h.Reason))
		}
	}
	return strings.Join(reasons, "; ")
}

// childrenOf returns which of the child keys among refer to the parent keys through e.
func childrenOf(ctx context.Context, tx pgx.Tx, live *liveSchema, e *datamap.Edge, parentKeys, among []string) ([]string, error) {
	p := masking.NewParams(masking.Postgres)
	sql := fmt.Sprintf("SELECT CAST(%[1]s AS text) FROM %[2]s WHERE %[3]s AND %[4]s ORDER BY %[1]s",
		quote(e.Child.PrimaryKey), tableRef(e.Child), keyIn(live, e.Child, among, p), referencesRows(live, e, parentKeys, p))
	keys, err := queryKeys(ctx, tx, sql, p.Values())
	if err != nil {
		return nil, dbError(fmt.Sprintf("finding rows of collection %q kept with %q", e.Child.Name, e.Parent.Name), err)
	}
	return keys, nil
}

// exempted returns the rows among whose exemption field is after the cutoff,
// kept until the newest of them leaves its period.
func exempted(ctx context.Context, tx pgx.Tx, live *liveSchema, c *datamap.Collection, ex stores.Exemption, among []string) (retained, error) {
	col, ok := live.tables[c.Name].columns[ex.Field]
	if !ok || (col.Kind != masking.KindDate && col.Kind != masking.KindTimestamp && col.Kind != masking.KindTimestampTZ) {
		return retained{}, fmt.Errorf("%w: retention rule %s: collection %q has no date or timestamp column %q", stores.ErrInvalid, ex.Rule, c.Name, ex.Field)
	}
	p := masking.NewParams(masking.Postgres)
	sql := fmt.Sprintf("SELECT CAST(%[1]s AS text), %[2]s FROM %[3]s WHERE %[4]s AND %[2]s > %[5]s ORDER BY %[1]s",
		quote(c.PrimaryKey), quote(ex.Field), tableRef(c), keyIn(live, c, among, p), p.Add(ex.Cutoff.UTC()))
	rows, err := tx.Query(ctx, sql, p.Values()...)
	if err != nil {
		return retained{}, dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
	}
	r := retained{reason: fmt.Sprintf("retention rule %s (legal basis: %s) keeps these rows for %s", ex.Rule, ex.LegalBasis, ex.Period)}
	var key string
	var newest, at time.Time
	_, err = pgx.ForEachRow(rows, []any{&key, &at}, func() error {
		r.keys = append(r.keys, key)
		if at.After(newest) {
			newest = at
		}
		return nil
	})
	if err != nil {
		return retained{}, dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
	}
	if until, ok := addPeriod(newest, ex.Period); ok && len(r.keys) > 0 {
		r.until = &until
	}
	return r, nil
}

var periodPattern = regexp.MustCompile(`^([1-9][0-9]{0,5})(h|d|w|mo|y)$`)

// addPeriod adds a human period (12h, 30d, 2w, 6mo, 10y) to t, months and
// years in calendar arithmetic: 10y from 2016-02-29 ends on 2026-03-01.
func addPeriod(t time.Time, period string) (time.Time, bool) {
	m := periodPattern.FindStringSubmatch(period)
	if m == nil {
		return time.Time{}, false
	}
	n, _ := strconv.Atoi(m[1]) // the pattern allows only small numbers
	switch m[2] {
	case "h":
		return t.Add(time.Duration(n) * time.Hour), true
	case "d":
		return t.AddDate(0, 0, n), true
	case "w":
		return t.AddDate(0, 0, 7*n), true
	case "mo":
		return t.AddDate(0, n, 0), true
	default:
		return t.AddDate(n, 0, 0), true
	}
}
