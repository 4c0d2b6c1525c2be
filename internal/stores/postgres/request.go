package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Plan resolves the subject's rows and reports, per collection, what Apply
// would do, in a read-only snapshot. Apply counts with the same statements'
// WHERE clauses, so the numbers agree when nothing changed in between.
func (s *Store) Plan(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := sqlcore.Validate(s.m, req); err != nil {
		return stores.Result{}, err
	}
	var res stores.Result
	err := s.inTxWithSchema(ctx, readOnly, func(tx pgx.Tx, live *liveSchema) error {
		var err error
		res, err = s.run(ctx, tx, live, req, false)
		return err
	})
	return res, err
}

// Apply carries out an Erasure or a Rectification in one transaction: the
// subject's rows are locked as they are resolved, then changed children
// first, one statement per collection, all sent in one batch. Any failure
// rolls everything back.
func (s *Store) Apply(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := sqlcore.ValidateApply(s.m, req); err != nil {
		return stores.Result{}, err
	}
	var res stores.Result
	err := s.inTxWithSchema(ctx, readWrite, func(tx pgx.Tx, live *liveSchema) error {
		var err error
		res, err = s.run(ctx, tx, live, req, true)
		return err
	})
	if err != nil {
		return stores.Result{}, err
	}
	return res, nil
}

// step is one collection's part of a request: the statements that carry it
// out (none when nothing changes) and the statements that count, for a plan,
// the rows they would change (none when the resolved keys already say).
type step struct {
	result stores.CollectionResult
	exec   []statement
	count  []statement
}

type statement struct {
	sql  string
	args []any
}

// run resolves the subject's rows, and counts (plan) or carries out (apply)
// the request's steps.
func (s *Store) run(ctx context.Context, tx pgx.Tx, live *liveSchema, req stores.Request, apply bool) (stores.Result, error) {
	rows, err := s.resolve(ctx, tx, live, req.Subject, apply)
	if err != nil {
		return stores.Result{}, err
	}
	var steps []step
	var res stores.Result
	switch req.Kind {
	case stores.KindErasure:
		steps, res.Held, err = s.erasureSteps(ctx, finder{tx: tx, live: live}, rows, req)
	case stores.KindRectification:
		steps = s.rectificationSteps(live, rows, req)
	default:
		for _, r := range sqlcore.AccessResults(s.m, rows, req.Scope) {
			steps = append(steps, reportStep(r))
		}
	}
	if err != nil {
		return stores.Result{}, err
	}
	if err := perform(ctx, tx, steps, apply); err != nil {
		return stores.Result{}, err
	}
	for _, st := range steps {
		res.Collections = append(res.Collections, st.result)
	}
	return res, nil
}

// perform carries out (apply) or counts (plan) the steps' statements, in
// order, as one batch: one round trip whatever their number. A step's rows
// are the sum of its statements' rows; a step without statements keeps the
// rows its keys gave it.
func perform(ctx context.Context, tx pgx.Tx, steps []step, apply bool) error {
	batch := &pgx.Batch{}
	var owners []*step // the step of each queued statement
	for i := range steps {
		st := &steps[i]
		statements := st.count
		if apply {
			statements = st.exec
		}
		if len(statements) > 0 {
			st.result.Rows = 0
		}
		for _, stmt := range statements {
			batch.Queue(stmt.sql, stmt.args...)
			owners = append(owners, st)
		}
	}
	if len(owners) == 0 {
		return nil
	}
	results := tx.SendBatch(ctx, batch)
	defer results.Close()
	for _, st := range owners {
		n, err := batchRows(results, apply)
		if err != nil {
			return dbError(fmt.Sprintf("%s in collection %q", st.result.Action, st.result.Collection), err)
		}
		st.result.Rows += n
	}
	if err := results.Close(); err != nil {
		return dbError("finishing the request's statements", err)
	}
	return nil
}

// batchRows reads the next statement's result: the rows it changed, or counted.
func batchRows(results pgx.BatchResults, apply bool) (int64, error) {
	if apply {
		tag, err := results.Exec()
		return tag.RowsAffected(), err
	}
	var n int64
	err := results.QueryRow().Scan(&n)
	return n, err
}

// reportStep is a step that only reports: nothing to carry out or count.
func reportStep(r stores.CollectionResult) step { return step{result: r} }
