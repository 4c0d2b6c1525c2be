package sqlcore

import (
	"context"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Statement is one SQL statement and its bound parameters.
type Statement struct {
	SQL  string
	Args []any
}

// Tx runs statements in one of an engine's transactions. Its errors are the
// driver's own: callers describe them with Errors.DBError, which never
// repeats a value.
type Tx interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, s Statement) (int64, error)
	// Query runs a query, scanning each row into dest and calling each.
	Query(ctx context.Context, s Statement, dest []any, each func() error) error
	// ExportRows runs a query and calls each with every row's values made
	// JSON-friendly, the i-th as a column of kinds[i].
	ExportRows(ctx context.Context, s Statement, kinds []masking.Kind, each func(values []any) error) error
}

// Batcher is a Tx that sends many statements in one round trip (PostgreSQL's
// pipeline): a request's statements then cost one round trip whatever their
// number.
type Batcher interface {
	// Batch runs the statements in order and returns what each changed (exec)
	// or counted (a query of one integer). On failure, failed is the index of
	// the statement that failed, or len(statements) when finishing the batch did.
	Batch(ctx context.Context, statements []Statement, exec bool) (rows []int64, failed int, err error)
}

// Errors classifies an engine's driver errors.
type Errors interface {
	// DBError turns err into an error safe to log and to put in a status:
	// what failed and the database's codes and object names, never a value.
	// Errors retrying may fix wrap stores.ErrUnavailable; errors of the data
	// or the map wrap stores.ErrInvalid.
	DBError(what string, err error) error
	// LockTimedOut reports whether err is a wait for a row lock that timed out.
	LockTimedOut(err error) bool
}

// Session is one transaction of an engine over the live schema it checked:
// what the shared statements are rendered with, and run in.
type Session struct {
	Map     *datamap.Map
	Dialect Dialect
	Schema  Schema
	Tx      Tx
	Errors  Errors
	// Key is the masking key of the hash and uniqueEmail strategies.
	Key []byte
	// Lock takes row locks on the subject's rows as they are resolved
	// (Apply), so they cannot change before the statements acting on their keys.
	Lock bool
	// Verifying counts, after an apply committed, what is left to change
	// (Core.Verify): anonymized fields are compared with their masked values
	// only where the strategy is deterministic, and otherwise, for identity
	// columns, with the subject's value.
	Verifying bool
	// subject is the request's subject while a request runs.
	subject map[string]string
	// selecting are the collections the request being resolved names by a
	// condition (see Selection): its Resolve leaves them out.
	selecting map[*datamap.Collection]bool
	// batch is the collection a batched erasure's pass deletes a batch of
	// (see eraseInBatches); the pass changes nothing else.
	batch *datamap.Collection
	// Resolver is the engine's own way of finding rows, if it has one
	// (PostgreSQL's one-statement resolution); nil: the session's statements.
	Resolver Resolver
}

// Resolver finds a subject's rows, and what erasure keeps of them and
// clears around them. *Session is the portable one: a statement per
// collection and identity, references compared exactly (see Session.Resolve).
type Resolver interface {
	Finder
	// Resolve finds the subject's rows, parents first: in each collection
	// the rows where any mapped identity present in the subject equals its
	// value exactly, and the rows whose cascade reference points at a
	// subject's row of the parent. Keys are text, in key order.
	Resolve(ctx context.Context, subject map[string]string) (Rows, error)
	// Descend finds, as Resolve does below the identities, the rows of from
	// given by keys and every row below them down the cascade references
	// (a retention sweep's batch and what belongs to it), locking them when
	// the session locks. Collections without such rows have none.
	Descend(ctx context.Context, from *datamap.Collection, keys []string) (Rows, error)
	// Refers names the rows of e's child that refer to the parent rows of
	// parentKeys, by a condition (nil when no row can match).
	Refers(ctx context.Context, e *datamap.Edge, parentKeys []string) (Selection, error)
	// ClearReferences is the step that sets e's field to NULL in the rows
	// referring to the parent rows of parentKeys, about to be deleted (those
	// rows belong to others), except in the spared rows.
	ClearReferences(ctx context.Context, e *datamap.Edge, parentKeys, spared []string) (Step, error)
}

// resolver is the session's Resolver: the engine's, or its own statements.
func (s *Session) resolver() Resolver {
	if s.Resolver != nil {
		return s.Resolver
	}
	return s
}

// Params returns an empty parameter list of the session's dialect.
func (s *Session) Params() *masking.Params { return masking.NewParams(s.Dialect) }

func (s *Session) quote(name string) string { return s.Dialect.Quote(name) }

func (s *Session) tableRef(c *datamap.Collection) string { return TableRef(s.Dialect, c) }

// primaryKey is c's live primary key column.
func (s *Session) primaryKey(c *datamap.Collection) Column { return s.Schema.Column(c, c.PrimaryKey) }

// KeyIn selects c's rows by primary key among keys.
func (s *Session) KeyIn(c *datamap.Collection, keys []string, p *masking.Params) string {
	return s.Dialect.KeyIn(s.primaryKey(c), s.quote(c.PrimaryKey), keys, p)
}

// QueryKeys runs a query of one text column.
func (s *Session) QueryKeys(ctx context.Context, st Statement) ([]string, error) {
	var out []string
	var key string
	err := s.Tx.Query(ctx, st, []any{&key}, func() error {
		out = append(out, key)
		return nil
	})
	return out, err
}

// queryCount runs a query of one integer.
func (s *Session) queryCount(ctx context.Context, st Statement) (int64, error) {
	var n int64
	err := s.Tx.Query(ctx, st, []any{&n}, func() error { return nil })
	return n, err
}

// dbError is Errors.DBError, and nil for nil.
func (s *Session) dbError(what string, err error) error {
	if err == nil {
		return nil
	}
	return s.Errors.DBError(what, err)
}

// Step is one collection's part of a request: the statements that carry it
// out (none when nothing changes) and, for a plan, the statements that count
// the rows they would change (none when the resolved keys already say).
type Step struct {
	Result stores.CollectionResult
	Exec   []Statement
	Count  []Statement
}

// ReportStep is a step that only reports: nothing to carry out or count.
func ReportStep(r stores.CollectionResult) Step { return Step{Result: r} }
