package sqlcore

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
)

// Partition sweeps. A table partitioned by range on a rule's field loses its
// expired rows a partition at a time: one catalog change, no row written to
// the WAL or the binary log, no dead row left for VACUUM. What is shared is
// the decision; the engines read their catalogs and remove partitions:
//
//   - which partitions are wholly past the cutoff: the engine compares each
//     partition's upper bound with the cutoff in the database
//     (RangePartitions); a straddling partition, a DEFAULT or MAXVALUE one
//     and an unpartitioned table are left to row batches;
//   - which of those are kept, and why: every one when the rule has where
//     conditions (a partition may hold rows that do not meet them) or
//     anonymizes, or when another table refers to the table (a foreign key,
//     or a collection of the data map whose rows follow their parents through
//     row batches); otherwise a partition holding a held key or a row an
//     exemption still keeps;
//   - the check again just before the partition goes, where no other
//     transaction can write to it any more (DropPartitions calls it), so a
//     held row written in between is never dropped;
//   - what an interrupted sweep left half done is put back first
//     (PartitionRecoverer), except in a dry run, which changes nothing.
//
// Row counts are exact (count(*)) unless the catalog estimates more than
// ExactCountLimit rows: counting a large partition would read all of it, the
// very work dropping it saves, so the estimate is reported, flagged so (for
// a partition never analyzed, PostgreSQL's planner estimate from its size).

// ExactCountLimit is the largest catalog estimate of a partition's rows
// for which its rows are counted rather than estimated.
const ExactCountLimit = 10000

// RangePartition is one partition of a table partitioned by range on a
// rule's field, as the engine's catalog describes it.
type RangePartition struct {
	// Name as the catalog spells it (an identifier, never data).
	Name string
	// From is the quoted FROM clause reading this partition's rows only.
	From string
	// Expired: its whole range lies before the rule's cutoff (its upper
	// bound, compared in the database, is at most the cutoff).
	Expired bool
	// Estimate is the catalog's estimate of its rows; negative when unknown.
	Estimate int64
}

// RangeTable is a table's partitioning by range on a rule's field.
type RangeTable struct {
	// Partitioned: the table is partitioned by range on the rule's field
	// alone; otherwise partitions sweeps leave it alone.
	Partitioned bool
	Partitions  []RangePartition
	// ReferencedBy names the foreign keys of the database that refer to the
	// table or one of its partitions ("constraint on table").
	ReferencedBy []string
}

// PartitionEngine is what an engine supplies to partition sweeps.
type PartitionEngine[L any] interface {
	// RangePartitions reads sw's table's partitioning from the catalog.
	RangePartitions(ctx context.Context, live *L, sw Sweep) (RangeTable, error)
	// DropPartitions removes parts of sw's table, each after check, run in
	// the engine's transaction where no other transaction can write to the
	// partition any more, found nothing to keep it for: a kept partition is
	// left (or put back) as it was. It returns what it dropped and kept, up
	// to an error.
	DropPartitions(ctx context.Context, live *L, sw Sweep, parts []RangePartition, check PartitionCheck) (dropped, kept []stores.PartitionOutcome, err error)
}

// PartitionRecoverer is a PartitionEngine whose drops take more than one
// transaction, so that an interrupted sweep can leave a partition half
// removed (PostgreSQL: detached, not dropped).
type PartitionRecoverer[L any] interface {
	// RecoverPartitions puts back as they were the partitions of sw's table
	// an interrupted sweep left half removed, before a sweep reads them.
	RecoverPartitions(ctx context.Context, live *L, sw Sweep) error
}

// PartitionCheck is the last check of a partition in tx: its outcome (rows
// counted; Reason set when it must be kept) and whether to keep it.
type PartitionCheck func(ctx context.Context, tx Tx, p RangePartition) (o stores.PartitionOutcome, keep bool, err error)

// SweepRangePartitions carries out stores.PartitionSweeper for an engine:
// see the comment at the top of this file. On an error, the result still
// lists the partitions dropped before it.
func (c *Core[L, T]) SweepRangePartitions(ctx context.Context, pe PartitionEngine[L], rule stores.SweepRule, dryRun bool) (stores.PartitionSweep, error) {
	var out stores.PartitionSweep
	var dropped []stores.PartitionOutcome // survives a run again on a fresh schema
	err := c.withCheckedSchema(ctx, func(live *L) error {
		out = stores.PartitionSweep{Dropped: dropped}
		q, err := c.sweepQuery(live, rule)
		if err != nil {
			return err
		}
		if err := q.checkExemptions(c.engine.Schema(live)); err != nil {
			return err
		}
		if r, ok := pe.(PartitionRecoverer[L]); ok && !dryRun {
			if err := r.RecoverPartitions(ctx, live, q.Sweep); err != nil {
				return err
			}
		}
		t, err := pe.RangePartitions(ctx, live, q.Sweep)
		if err != nil || !t.Partitioned {
			return err
		}
		var expired []RangePartition
		for _, p := range t.Partitions {
			if p.Expired {
				expired = append(expired, p)
			}
		}
		if len(expired) == 0 {
			return nil
		}
		whole := q.keepAll(t)
		var candidates []RangePartition
		var planned []stores.PartitionOutcome
		err = c.inTx(ctx, SweepCount, live, func(s *Session) error {
			for _, p := range expired {
				o, keep, err := q.checkPartition(ctx, s, p, whole, dryRun)
				if err != nil {
					return err
				}
				if keep {
					out.Kept = append(out.Kept, o)
				} else {
					candidates = append(candidates, p)
					planned = append(planned, o)
				}
			}
			return nil
		})
		if err != nil || len(candidates) == 0 {
			return err
		}
		if dryRun {
			out.Dropped = planned
			return nil
		}
		check := func(ctx context.Context, tx Tx, p RangePartition) (stores.PartitionOutcome, bool, error) {
			s := &Session{Map: c.m, Dialect: c.dialect, Schema: c.engine.Schema(live), Tx: tx, Errors: c.engine, Key: c.key}
			return q.checkPartition(ctx, s, p, "", true)
		}
		done, kept, err := pe.DropPartitions(ctx, live, q.Sweep, candidates, check)
		dropped = append(dropped, done...)
		out.Dropped = dropped
		out.Kept = append(out.Kept, kept...)
		return err
	})
	return out, err
}

// checkExemptions refuses exemptions of the rule's collection whose field is
// not a date or timestamp of the table, as erasure does (Session.Exempted).
func (q *sweepQuery) checkExemptions(schema Schema) error {
	for _, ex := range q.Rule.Exemptions {
		if ex.Collection != q.C.Name {
			continue
		}
		if col := schema.Column(q.C, ex.Field); !IsTemporal(col.Kind) {
			return fmt.Errorf("%w: retention rule %s: collection %q has no date or timestamp column %q", stores.ErrInvalid, ex.Rule, q.C.Name, ex.Field)
		}
	}
	return nil
}

// keepAll says why every expired partition of t goes through row batches,
// or "".
func (q *sweepQuery) keepAll(t RangeTable) string {
	switch {
	case q.Rule.Action != stores.ActionDelete:
		return "the rule anonymizes: its rows are masked in row batches, not dropped"
	case len(q.Rule.Where) > 0:
		return "the rule has where conditions: the partition may hold rows that do not meet them"
	}
	var referrers []string
	for _, e := range q.C.Children {
		referrers = append(referrers, e.Child.Name)
	}
	for _, e := range q.C.Referrers {
		referrers = append(referrers, e.Child.Name)
	}
	if len(referrers) > 0 {
		sort.Strings(referrers)
		referrers = compactStrings(referrers)
		return fmt.Sprintf("collection(s) %s refer to this one in the data map: their rows follow the expired ones through row batches", strings.Join(referrers, ", "))
	}
	if len(t.ReferencedBy) > 0 {
		return fmt.Sprintf("foreign key(s) %s refer to the table", strings.Join(t.ReferencedBy, ", "))
	}
	return ""
}

func compactStrings(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// checkPartition decides whether p is kept: for the whole table's reason
// (whole), or because it holds a held key or a row an exemption of the
// collection still keeps. It counts the rows of a kept partition, and of the
// others when count is set (a dry run, the last check before the drop): a
// count reads the partition, so it is not done twice.
func (q *sweepQuery) checkPartition(ctx context.Context, s *Session, p RangePartition, whole string, count bool) (stores.PartitionOutcome, bool, error) {
	o := stores.PartitionOutcome{Name: p.Name}
	reason, err := q.keepReason(ctx, s, p, whole)
	if err != nil {
		return o, false, err
	}
	o.Reason = reason
	if reason != "" || count {
		if o.Rows, o.Estimated, err = q.partitionRows(ctx, s, p); err != nil {
			return o, false, err
		}
	}
	return o, reason != "", nil
}

// keepReason says why p is kept, or "".
func (q *sweepQuery) keepReason(ctx context.Context, s *Session, p RangePartition, whole string) (string, error) {
	if whole != "" {
		return whole, nil
	}
	held, err := q.heldIn(ctx, s, p)
	if err != nil {
		return "", err
	}
	if held > 0 {
		return fmt.Sprintf("holds %d row(s) under a legal hold", held), nil
	}
	for _, ex := range q.Rule.Exemptions {
		if ex.Collection != q.C.Name {
			continue
		}
		exempt, err := q.exemptIn(ctx, s, p, ex)
		if err != nil {
			return "", err
		}
		if exempt {
			return fmt.Sprintf("holds rows retention rule %s (legal basis: %s) keeps for %s", ex.Rule, ex.LegalBasis, ex.Period), nil
		}
	}
	return "", nil
}

// partitionRows counts p's rows, or takes the catalog's estimate when it is
// above ExactCountLimit.
func (q *sweepQuery) partitionRows(ctx context.Context, s *Session, p RangePartition) (int64, bool, error) {
	if p.Estimate > ExactCountLimit {
		return p.Estimate, true, nil
	}
	n, err := s.queryCount(ctx, Statement{SQL: "SELECT count(*) FROM " + p.From})
	if err != nil {
		return 0, false, s.dbError(q.partitionWhat(p, "counting the rows of"), err)
	}
	return n, false, nil
}

// heldIn counts the rows of p whose key is held.
func (q *sweepQuery) heldIn(ctx context.Context, s *Session, p RangePartition) (int64, error) {
	var held int64
	for _, batch := range KeyBatches(q.d, q.Rule.HeldKeys) {
		params := s.Params()
		n, err := s.queryCount(ctx, Statement{"SELECT count(*) FROM " + p.From + " WHERE " + s.KeyIn(q.C, batch, params), params.Values()})
		if err != nil {
			return 0, s.dbError(q.partitionWhat(p, "finding held rows in"), err)
		}
		held += n
	}
	return held, nil
}

// exemptIn reports whether p holds a row ex still keeps (ex.Field after
// ex.Cutoff); it stops at the first.
func (q *sweepQuery) exemptIn(ctx context.Context, s *Session, p RangePartition, ex stores.Exemption) (bool, error) {
	params := s.Params()
	sql := fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s > %s LIMIT 1) AS exempt",
		p.From, q.d.Quote(ex.Field), params.Add(ex.Cutoff.UTC()))
	n, err := s.queryCount(ctx, Statement{sql, params.Values()})
	if err != nil {
		return false, s.dbError(q.partitionWhat(p, "finding exempted rows in"), err)
	}
	return n > 0, nil
}

func (q *sweepQuery) partitionWhat(p RangePartition, doing string) string {
	return fmt.Sprintf("%s partition %q of collection %q", doing, p.Name, q.C.Name)
}
