// Package stores defines what every engine (postgres, mysql, redis, http) does
// for Lethe: check its live schema against the data map, plan a subject's
// request, apply it atomically, and export a subject's data. Controllers only
// talk to this interface; no SQL lives outside internal/stores/<engine>.
package stores

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lethe-dev/lethe/internal/datamap"
)

// Action is what a request does to one collection.
type Action string

const (
	ActionDelete    Action = "delete"
	ActionAnonymize Action = "anonymize"
	ActionRectify   Action = "rectify"
	ActionExport    Action = "export"
	ActionRetain    Action = "retain"
	// ActionSetNull clears references from other subjects' rows to deleted rows.
	ActionSetNull Action = "setNull"
)

// ChangesRows reports whether the action changes the rows it counts (rather
// than keeping or reading them).
func (a Action) ChangesRows() bool {
	switch a {
	case ActionDelete, ActionAnonymize, ActionRectify, ActionSetNull:
		return true
	}
	return false
}

// MergeRepeated is a request's receipt over passes of a store whose passes
// repeat every call (Result.Repeated): a repeated call is not a second change,
// and a repeat answered "nothing there" (after the first call did it) does not
// undo the first. So each collection and action keeps the result with the
// most rows (the latest on a tie), and the earlier changes a failed pass did
// not reach stay.
func MergeRepeated(earlier, pass []CollectionResult) []CollectionResult {
	type key struct {
		c string
		a Action
	}
	before := map[key]CollectionResult{}
	for _, r := range earlier {
		before[key{r.Collection, r.Action}] = r
	}
	out := make([]CollectionResult, 0, len(pass)+len(earlier))
	for _, r := range pass {
		k := key{r.Collection, r.Action}
		if e, ok := before[k]; ok && e.Rows > r.Rows {
			r = e
		}
		delete(before, k)
		out = append(out, r)
	}
	for _, r := range earlier {
		if _, left := before[key{r.Collection, r.Action}]; left {
			out = append(out, r)
		}
	}
	return out
}

// AddUp is a request's receipt over passes: pass's results, each change
// (ChangesRows) with the rows earlier passes changed in that collection by
// that action added, then the earlier changes pass has no result for. Rows a
// pass changed are gone from the next pass's resolution, so they must be
// added; rows retained describe the present, so the latest pass says them.
func AddUp(earlier, pass []CollectionResult) []CollectionResult {
	type key struct {
		c string
		a Action
	}
	done := map[key]int64{}
	var order []key
	for _, r := range earlier {
		if k := (key{r.Collection, r.Action}); r.Action.ChangesRows() {
			if _, seen := done[k]; !seen {
				order = append(order, k)
			}
			done[k] += r.Rows
		}
	}
	out := make([]CollectionResult, 0, len(pass)+len(order))
	for _, r := range pass {
		if k := (key{r.Collection, r.Action}); r.Action.ChangesRows() {
			r.Rows += done[k]
			delete(done, k)
		}
		out = append(out, r)
	}
	for _, k := range order {
		if rows, left := done[k]; left {
			out = append(out, CollectionResult{Collection: k.c, Action: k.a, Rows: rows})
		}
	}
	return out
}

// Kind is the kind of request an engine carries out.
type Kind string

const (
	KindAccess        Kind = "Access"
	KindErasure       Kind = "Erasure"
	KindRectification Kind = "Rectification"
)

// Exemption keeps a collection's rows from erasure while they are inside a legal
// minimum retention period (a RetentionPolicy rule with exemptFromErasure).
type Exemption struct {
	Collection string
	// Field holds the time the period runs from; rows with Field > Cutoff are kept.
	Field string
	// Cutoff is now minus the period: rows newer than it are still retained.
	Cutoff time.Time
	// Period as written (10y), for the receipt.
	Period     string
	LegalBasis string
	Rule       string
}

// Hold keeps a collection (or every collection of the store) from erasure:
// everyone's rows of it, or, with a Subject, the rows of the hold's subject.
type Hold struct {
	Collection string // empty: every collection of the store
	Reason     string
	Name       string // the LegalHold's name
	// Subject is the held person's identities (personal data, like a
	// request's); nil holds everyone's rows. An engine keeps the request's
	// rows that are also rows of this subject, found with the same traversal
	// as the request's own, in the same transaction: a hold by e-mail holds
	// the person's rows whichever identity the request names them by.
	Subject map[string]string
}

// Covers reports whether the hold applies to collection.
func (h Hold) Covers(collection string) bool {
	return h.Collection == "" || h.Collection == collection
}

// HoldsByIdentity decides a subject hold where rows cannot be compared (a
// processor's API, a key pattern the hold's identities cannot fill): the hold
// applies when it shares an identity value with the request's subject and,
// failing safe, when the two share no identity type at all, so nothing tells
// them apart. A hold without a subject always applies.
func (h Hold) HoldsByIdentity(subject map[string]string) bool {
	if h.Subject == nil {
		return true
	}
	sharedType := false
	for t, v := range h.Subject {
		if w, ok := subject[t]; ok {
			if w == v {
				return true
			}
			sharedType = true
		}
	}
	return !sharedType
}

// Request is one data-subject request as an engine sees it. Subject values are
// personal data: engines bind them as parameters and never log or return them.
type Request struct {
	Kind    Kind
	Subject map[string]string
	Scope   datamap.Scope
	// Rectification maps a category to its corrected value (Kind Rectification).
	Rectification map[string]string
	Exemptions    []Exemption
	Holds         []Hold
	// RequestID is stable per request (its UID); engines use it as an idempotency key.
	RequestID string
}

// CollectionResult is the plan or the outcome for one collection.
type CollectionResult struct {
	Collection string
	Action     Action
	Rows       int64
	// Reason explains retained or held rows; never contains personal data.
	Reason string
	// RetainedUntil is when the last retained row becomes erasable;
	// RetainedFrom when the first does, if that is earlier.
	RetainedUntil *time.Time
	RetainedFrom  *time.Time
}

// Result lists collection results in the order the engine acts (children first for erasure).
type Result struct {
	Collections []CollectionResult
	// Held is true when some rows were left because of a legal hold.
	Held bool
	// HeldBy names, sorted, the legal holds that kept some of the rows.
	HeldBy []string
	// Totals is, for a store that keeps a journal, the receipt of every pass
	// of this request (Request.RequestID) so far: the rows each pass changed,
	// summed from the journal read and written in this pass's transaction
	// (exact after any crash or retry), and this pass's retained rows. Nil
	// without a journal: Collections are this pass's changes only.
	Totals []CollectionResult
	// Repeated is true when every pass repeats the request's calls, each with
	// its idempotency key (processors): a collection's result in this pass
	// replaces the earlier one instead of adding to it. Such a store is not
	// atomic: Apply returns the results of the calls that succeeded with its
	// error, and they are kept as they happen.
	Repeated bool
}

// Verification is what checking an applied request found: per collection,
// the subject's rows its action would still change.
type Verification struct {
	Remaining map[string]int64
}

// Left reports the collections with rows left, sorted, as "name (n)".
func (v Verification) Left() []string {
	var out []string
	for c, n := range v.Remaining {
		if n > 0 {
			out = append(out, fmt.Sprintf("%s (%d)", c, n))
		}
	}
	sort.Strings(out)
	return out
}

// Verifier is implemented by engines that can check an applied request:
// after the transaction committed, resolve the subject again in a fresh
// snapshot and count what is left to change.
type Verifier interface {
	Verify(ctx context.Context, req Request) (Verification, error)
}

// Export is a subject's data: collection -> rows -> column -> value, only the
// mapped fields in scope (plus the primary key).
type Export map[string][]map[string]any

// SchemaProblem is one difference between the data map and the live schema.
type SchemaProblem struct {
	Collection string
	Field      string
	Problem    string
}

// CheckResult is the outcome of comparing the data map with the live schema.
type CheckResult struct {
	Problems []SchemaProblem
	Warnings []string
	// Journal is the state of the store's journal; nil for engines that keep none.
	Journal *JournalStatus
	// Unmapped lists the columns that look personal but are not in the data
	// map (see UnmappedReport); nil for engines that do not look (redis,
	// http, mongodb).
	Unmapped *UnmappedReport
}

// JournalStatus is whether a store's journal (a Lethe table recording each
// request's changes in the request's own transaction) can be used.
type JournalStatus struct {
	// Available: the table exists (or was created) and requests write to it.
	Available bool
	// Disabled by the DataStore.
	Disabled bool
	// Reason says why it is not available; never contains a value.
	Reason string
}

// Store is one connected engine for one DataStore.
type Store interface {
	// Check compares the data map with the live schema: every table and column
	// exists, and every masking strategy fits its column.
	Check(ctx context.Context) (CheckResult, error)
	// Plan resolves the subject's rows per collection and reports what Apply would
	// do, changing nothing. Apply uses the same resolution, so counts agree.
	Plan(ctx context.Context, req Request) (Result, error)
	// Apply carries out an Erasure or Rectification in one transaction: all or nothing.
	// Applying a finished request again changes nothing.
	Apply(ctx context.Context, req Request) (Result, error)
	// Export returns the subject's data in scope (Access).
	Export(ctx context.Context, req Request) (Export, Result, error)
	Close()
}

// ErrUnavailable wraps errors that retrying may fix: the store is down or busy.
var ErrUnavailable = errors.New("store unavailable")

// ErrStatementTimeout wraps, beside ErrUnavailable, a statement the database
// cancelled at the store's statement timeout: retrying may help (the store
// was busy), but a timeout that repeats means the subject's part is too large
// for one transaction within that timeout.
var ErrStatementTimeout = errors.New("statement timeout")

// ErrInvalid wraps errors that retrying cannot fix: the data map does not match
// the store, or the request cannot be expressed in it.
var ErrInvalid = errors.New("invalid for this store")

// Condition is a structural extra condition of a retention rule.
type Condition struct {
	Field  string
	IsNull bool
}

// SweepRule is one retention rule as an engine sees it: rows of Collection
// whose Field is before Cutoff (and that meet every Where) are past their period.
type SweepRule struct {
	Collection string
	Field      string
	Cutoff     time.Time
	Where      []Condition
	// Action is ActionDelete or ActionAnonymize.
	Action    Action
	BatchSize int
	// HeldKeys are primary keys (as text) the sweep must skip: rows of subjects
	// under a legal hold.
	HeldKeys []string
	// HeldChildKeys are, per collection below Collection in the data map
	// (children through references, and theirs), the primary keys of held
	// rows: an expired row with such a row below it is kept, with its path.
	HeldChildKeys map[string][]string
	// Exemptions are the legal minimums of other rules (exemptFromErasure):
	// an expired row with a row below it that an exemption still keeps is
	// kept too, as erasure keeps it.
	Exemptions []Exemption
}

// SweepBatch is the outcome of one bounded batch.
type SweepBatch struct {
	Rows int64
	// Children is what the batch did, in the same transaction and children
	// first, to the rows below the expired ones, as erasure does: deleted, or
	// their setNull reference cleared (Action ActionSetNull). One result per
	// collection and action, with rows counted.
	Children []CollectionResult
	// Kept are expired rows the batch left because of rows below them (a
	// collection the map retains, a held row, an exempted row): one result per
	// reason, Collection the swept one, Action ActionRetain, Reason naming the
	// collection below and why.
	Kept []CollectionResult
	// Cursor resumes the sweep after this batch (opaque, safe to store in status).
	Cursor string
	// Done is true when no row past its period remains after Cursor.
	Done bool
}

// PastPeriod counts a rule's rows that are past their period and still there.
type PastPeriod struct {
	// Rows past their period, not held: what the next run should remove (it
	// includes rows kept because of rows below them).
	Rows int64
	// Held rows past their period, kept for a legal hold (rule.HeldKeys).
	Held int64
	// WithoutDate are rows whose period field is NULL (and that meet every
	// Where): no sweep acts on an unknown date, so they are never past their
	// period; counted so that a NULL is seen, not silently ignored.
	WithoutDate int64
}

// Gap is every row past its period still there: Rows and Held.
func (p PastPeriod) Gap() int64 { return p.Rows + p.Held }

// PartitionSweeper is implemented by engines that remove whole partitions
// of a table partitioned by range on the rule's field.
type PartitionSweeper interface {
	// SweepPartitions removes, as units, the partitions of rule.Collection's
	// table whose whole range lies before rule.Cutoff, unless a partition holds
	// a held key or an exempted row, or another table references it (those,
	// straddling partitions and unpartitioned tables are left to SweepBatch).
	// dryRun reports what it would remove without changing anything. A table
	// that is not partitioned returns an empty PartitionSweep.
	SweepPartitions(ctx context.Context, rule SweepRule, dryRun bool) (PartitionSweep, error)
}

// PartitionSweep is what SweepPartitions did.
type PartitionSweep struct {
	// Dropped partitions (for a dry run: that would be dropped).
	Dropped []PartitionOutcome
	// Kept partitions wholly past the cutoff that go through row batches, with why.
	Kept []PartitionOutcome
}

// PartitionOutcome is one partition: its name (an identifier, never data),
// its rows, and whether that count is exact or the database's estimate.
type PartitionOutcome struct {
	Name      string
	Rows      int64
	Estimated bool
	// Reason a partition was kept, for humans.
	Reason string
}

// TableHealthReporter is implemented by engines that know whether deleted
// rows still take space (PostgreSQL: dead tuples until VACUUM).
type TableHealthReporter interface {
	// TableHealth reports on collection's table; Known is false when the
	// engine cannot tell.
	TableHealth(ctx context.Context, collection string) (TableHealth, error)
}

// TableHealth is how much of a table deleted rows still occupy.
type TableHealth struct {
	Known bool
	// DeadRows are deleted or updated row versions not yet reclaimed.
	DeadRows int64
	// LastVacuum is the last (auto)vacuum of the table; zero if never.
	LastVacuum time.Time
}

// Sweeper is implemented by engines that support retention sweeps.
type Sweeper interface {
	// SweepBatch deletes or anonymizes at most rule.BatchSize expired rows after
	// cursor ("" to start), in one short transaction.
	SweepBatch(ctx context.Context, rule SweepRule, cursor string) (SweepBatch, error)
	// CountPastPeriod counts rows still past their period (the compliance
	// gap): those not held, the held ones, and those without a date.
	CountPastPeriod(ctx context.Context, rule SweepRule) (PastPeriod, error)
	// SubjectKeys resolves a subject's primary keys (as text) in each of
	// collections, with one resolution, so sweeps can skip rows held for
	// that subject. A collection where the subject has no row has no entry.
	SubjectKeys(ctx context.Context, subject map[string]string, collections []string) (map[string][]string, error)
}
