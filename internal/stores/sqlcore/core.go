package sqlcore

import (
	"context"
	"fmt"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// TxKind is what a transaction is for; each engine gives each kind its
// isolation, access mode and timeouts.
type TxKind int

const (
	// ReadOnly is a snapshot that cannot write: planning, checking and
	// exporting are safe by construction, and see one consistent state.
	ReadOnly TxKind = iota
	// ReadWrite is Apply's transaction; it locks the subject's rows as it
	// resolves them.
	ReadWrite
	// SweepRange is a sweep batch's first attempt: short, and failing fast
	// when a row of its range is locked.
	SweepRange
	// SweepByPosition is SweepRange for a batch by stored position (see
	// StorageOrderer), whose look-up reads the table in storage order.
	SweepByPosition
	// SweepLocking is a sweep batch that locks the rows it changes, skipping
	// the locked ones, after a lock timeout or by key.
	SweepLocking
	// SweepCount counts the rows still past their period.
	SweepCount
)

// Engine is what a SQL engine supplies to Core besides its Dialect: its
// transactions (the connection and its timeouts), its schema introspection
// and checks, and its error classification. L is its live schema, T its
// transaction.
type Engine[L, T any] interface {
	Errors
	// InTx runs fn in a transaction of kind, and commits if fn succeeds.
	InTx(ctx context.Context, kind TxKind, fn func(T) error) error
	// Introspect reads what the database says about the mapped tables.
	Introspect(ctx context.Context, tx T) (*L, error)
	// Problems lists every difference between the data map and live; a
	// request never acts on a schema with problems.
	Problems(live *L) []stores.SchemaProblem
	// Warnings lists what in live makes some erasures fail or delete rows
	// outside the plan (foreign keys the map does not account for).
	Warnings(live *L) []string
	// Schema is live as the shared statements look it up.
	Schema(live *L) Schema
	// Tx is tx as the shared statements run in it.
	Tx(tx T) Tx
}

// ResolvingEngine is an engine with its own way of finding a subject's rows
// (PostgreSQL: one statement, references compared in the database), used
// instead of the session's portable statements.
type ResolvingEngine interface {
	Resolver(s *Session) Resolver
}

// Core carries out requests, exports, checks and retention sweeps on a SQL
// engine, which supplies only what differs (Dialect and Engine). An engine's
// Store embeds it, so its methods are the Store's.
type Core[L, T any] struct {
	m       *datamap.Map
	key     []byte
	dialect Dialect
	engine  Engine[L, T]
	// schema is the live schema last found matching the map.
	schema SchemaCache[L]
	// journal records each request's changes in the store (see journal.go).
	journal journal
	// fanout sizes the batches of sweeps that follow the map (sweep.go).
	fanout fanouts
}

// NewCore returns the core of a store of m in the dialect d, keyed by
// maskingKey, with the options' schema TTL (how long it trusts the live
// schema it last found matching the map) and journal.
func NewCore[L, T any](m *datamap.Map, maskingKey []byte, d Dialect, engine Engine[L, T], o Options) *Core[L, T] {
	return &Core[L, T]{m: m, key: maskingKey, dialect: d, engine: engine, schema: SchemaCache[L]{TTL: o.SchemaTTL}, journal: journal{table: o.Journal}}
}

// session is tx over live.
func (c *Core[L, T]) session(tx T, live *L) *Session {
	s := &Session{Map: c.m, Dialect: c.dialect, Schema: c.engine.Schema(live), Tx: c.engine.Tx(tx), Errors: c.engine, Key: c.key}
	if r, ok := any(c.engine).(ResolvingEngine); ok {
		s.Resolver = r.Resolver(s)
	}
	return s
}

// Plan resolves the subject's rows and reports, per collection, what Apply
// would do, in a read-only snapshot. Apply counts with the same statements'
// conditions, so the numbers agree when nothing changed in between.
func (c *Core[L, T]) Plan(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := stores.Validate(c.m, req); err != nil {
		return stores.Result{}, err
	}
	var res stores.Result
	err := c.inTxWithSchema(ctx, ReadOnly, func(s *Session) error {
		var err error
		res, err = s.run(ctx, req, false)
		return err
	})
	return res, err
}

// Apply carries out an Erasure or a Rectification in one transaction: the
// subject's rows are locked as they are resolved, then changed children
// first, by primary key. Any failure rolls everything back.
func (c *Core[L, T]) Apply(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := stores.ValidateApply(c.m, req); err != nil {
		return stores.Result{}, err
	}
	withJournal := c.journalFor(ctx, req)
	if withJournal && req.Kind == stores.KindErasure {
		if err := c.eraseInBatches(ctx, req); err != nil {
			c.journal.forget()
			return stores.Result{}, err
		}
	}
	var res stores.Result
	err := c.inTxWithSchema(ctx, ReadWrite, func(s *Session) error {
		s.Lock = true
		pass := func() (stores.Result, error) { return s.run(ctx, req, true) }
		var err error
		if withJournal {
			res, err = s.journaled(ctx, c.journal.table, req, pass)
		} else {
			res, err = pass()
		}
		return err
	})
	if err != nil {
		if withJournal {
			c.journal.forget() // the table may be gone: the next pass makes sure
		}
		return stores.Result{}, err
	}
	return res, nil
}

// Verify checks an applied request after its transaction committed: the
// subject is resolved again in a fresh snapshot and every step counted as
// Plan counts it, with the holds and exemptions of req. What a step would
// still change is left (0 for each collection when the erasure is complete);
// anonymized fields whose strategy is not deterministic (randomize, hash) are
// checked only where they are identity columns, by their value no longer
// matching the subject's.
func (c *Core[L, T]) Verify(ctx context.Context, req stores.Request) (stores.Verification, error) {
	if err := stores.ValidateApply(c.m, req); err != nil {
		return stores.Verification{}, err
	}
	v := stores.Verification{Remaining: map[string]int64{}}
	err := c.inTxWithSchema(ctx, ReadOnly, func(s *Session) error {
		s.Verifying = true
		res, err := s.run(ctx, req, false)
		for _, r := range res.Collections {
			if r.Action.ChangesRows() {
				v.Remaining[r.Collection] += r.Rows
			}
		}
		return err
	})
	return v, err
}

// Export returns the subject's rows of every collection in scope, collected
// in memory from StreamExport (no budget: for tests and small exports).
func (c *Core[L, T]) Export(ctx context.Context, req stores.Request) (stores.Export, stores.Result, error) {
	return stores.CollectExport(func(w stores.ExportWriter) (stores.Result, error) { return c.StreamExport(ctx, req, w) })
}

// StreamExport writes the subject's rows of every collection in scope to w,
// as the cursor reads them: the primary key and the mapped fields in scope,
// as JSON-friendly values, keyed by their names in the data map. Collections
// where the subject has no row are left out of the export.
func (c *Core[L, T]) StreamExport(ctx context.Context, req stores.Request, w stores.ExportWriter) (stores.Result, error) {
	if err := stores.ValidateSubject(c.m, req.Subject); err != nil {
		return stores.Result{}, err
	}
	var res stores.Result
	counted := &countingWriter{w: w}
	err := c.inTxWithSchema(ctx, ReadOnly, func(s *Session) error {
		if counted.rows > 0 {
			// A stale cached schema is retried with a fresh one; rows already
			// written cannot be taken back, so the caller starts again.
			return fmt.Errorf("%w: the schema changed while the export was read; it is read again", stores.ErrUnavailable)
		}
		var err error
		res.Collections, err = s.export(ctx, req.Subject, req.Scope, counted)
		return err
	})
	if err != nil {
		return stores.Result{}, err
	}
	return res, nil
}

// Check compares the data map with the live schema. Problems make requests
// refuse to run; warnings are foreign keys that would make some erasures fail
// or delete rows outside the plan. It always reads the schema, and renews
// (or drops) the one requests and sweeps use. An engine that is an
// UnmappedEngine also reports the personal-looking columns the map leaves
// out (Unmapped), from the catalog only.
func (c *Core[L, T]) Check(ctx context.Context) (stores.CheckResult, error) {
	var res stores.CheckResult
	var checked *L
	err := c.engine.InTx(ctx, ReadOnly, func(tx T) error {
		live, err := c.engine.Introspect(ctx, tx)
		if err != nil {
			return err
		}
		res = stores.CheckResult{Problems: c.engine.Problems(live), Warnings: c.engine.Warnings(live)}
		c.schema.Checked(live, res.Problems)
		checked = live
		return nil
	})
	if err != nil {
		return res, err
	}
	if u, ok := any(c.engine).(UnmappedEngine[L, T]); ok {
		res.Unmapped = c.unmapped(ctx, u, checked) // unmapped.go
	}
	if _, ok := c.dialect.(JournalDialect); ok {
		st := c.EnsureJournal(ctx)
		res.Journal = &st
	}
	return res, nil
}

// SubjectKeys returns the primary keys (as text) of the subject's rows in
// each of collections, found as a hold finds the person it holds
// (PersonRows): through the identity columns and down the cascade
// references, widened once through the other identities those rows carry. A
// subject none of whose identity types this store maps has no rows here.
func (c *Core[L, T]) SubjectKeys(ctx context.Context, subject map[string]string, collections []string) (map[string][]string, error) {
	return SubjectKeys(c.m, subject, collections, func() (rows Rows, err error) {
		err = c.inTxWithSchema(ctx, ReadOnly, func(s *Session) error {
			var all bool
			rows, all, err = PersonRows(ctx, c.m, subject, s.resolver().Resolve, s.fieldValues)
			if all && err == nil {
				err = fmt.Errorf("%w: the held subject's rows carry more than %d other identities", stores.ErrInvalid, maxHoldIdentities)
			}
			return err
		})
		return rows, err
	})
}

// matchingSchema introspects the schema and refuses to go on when it does not
// match the data map: a request never acts on a schema that drifted.
func (c *Core[L, T]) matchingSchema(ctx context.Context, tx T) (*L, error) {
	live, err := c.engine.Introspect(ctx, tx)
	if err != nil {
		return nil, err
	}
	if problems := c.engine.Problems(live); len(problems) > 0 {
		return nil, SchemaError(problems)
	}
	return live, nil
}

// inTxWithSchema runs fn in a transaction of kind with the live schema: the
// cached one, or one read and checked in that transaction (see SchemaCache).
func (c *Core[L, T]) inTxWithSchema(ctx context.Context, kind TxKind, fn func(*Session) error) error {
	inTx := func(fn func(T) error) error { return c.engine.InTx(ctx, kind, fn) }
	read := func(tx T) (*L, error) { return c.matchingSchema(ctx, tx) }
	return InTxWithSchema(&c.schema, inTx, read, func(tx T, live *L) error { return fn(c.session(tx, live)) })
}

// inTx runs fn in a transaction of kind over live, a schema already checked.
func (c *Core[L, T]) inTx(ctx context.Context, kind TxKind, live *L, fn func(*Session) error) error {
	return c.engine.InTx(ctx, kind, func(tx T) error { return fn(c.session(tx, live)) })
}

// withCheckedSchema calls fn with the live schema checked against the data
// map: the cached one, or one read in a transaction of its own (fn may run
// several, as a sweep batch does).
func (c *Core[L, T]) withCheckedSchema(ctx context.Context, fn func(*L) error) error {
	return c.schema.With(func() (live *L, err error) {
		err = c.engine.InTx(ctx, ReadOnly, func(tx T) error {
			live, err = c.matchingSchema(ctx, tx)
			return err
		})
		return live, err
	}, fn)
}

// countingWriter counts the rows written through it.
type countingWriter struct {
	w    stores.ExportWriter
	rows int64
}

func (c *countingWriter) Row(collection string, row map[string]any) error {
	if err := c.w.Row(collection, row); err != nil {
		return err
	}
	c.rows++
	return nil
}
