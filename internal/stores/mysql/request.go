package mysql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Plan resolves the subject's rows and reports, per collection, what Apply
// would do, in a read-only snapshot. Apply's statements use the same
// conditions, so the numbers agree when nothing changed in between.
func (s *Store) Plan(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := sqlcore.Validate(s.m, req); err != nil {
		return stores.Result{}, err
	}
	var res stores.Result
	err := s.inTxWithSchema(ctx, readOnly, func(tx *sql.Tx, live *liveSchema) error {
		var err error
		res, err = s.run(ctx, tx, live, req, false)
		return err
	})
	return res, err
}

// Apply carries out an Erasure or a Rectification in one transaction: the
// subject's rows are locked as they are resolved, then changed children
// first, by primary key. Any failure rolls everything back.
func (s *Store) Apply(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := sqlcore.ValidateApply(s.m, req); err != nil {
		return stores.Result{}, err
	}
	var res stores.Result
	err := s.inTxWithSchema(ctx, readWrite, func(tx *sql.Tx, live *liveSchema) error {
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
// out (one per batch of keys; none when nothing changes) and, for a plan, the
// statements that count the rows they would change (none when the resolved
// keys already say).
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
func (s *Store) run(ctx context.Context, tx *sql.Tx, live *liveSchema, req stores.Request, apply bool) (stores.Result, error) {
	f := finder{s: s, tx: tx, live: live, lock: apply}
	rows, err := f.resolve(ctx, req.Subject)
	if err != nil {
		return stores.Result{}, err
	}
	var steps []step
	var res stores.Result
	switch req.Kind {
	case stores.KindErasure:
		steps, res.Held, err = s.erasureSteps(ctx, f, rows, req)
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
	for _, st := range steps {
		if err := perform(ctx, tx, &st, apply); err != nil {
			return stores.Result{}, err
		}
		res.Collections = append(res.Collections, st.result)
	}
	return res, nil
}

// perform carries out (apply) or counts (plan) one step, recording its rows.
// Affected rows are the rows actually changed (the connection does not ask
// for found rows), so a row already in its final state counts as nothing.
func perform(ctx context.Context, tx *sql.Tx, st *step, apply bool) error {
	statements := st.count
	if apply {
		statements = st.exec
	}
	if len(statements) == 0 {
		return nil
	}
	var rows int64
	for _, stmt := range statements {
		n, err := runStatement(ctx, tx, stmt, apply)
		if err != nil {
			return dbError(fmt.Sprintf("%s in collection %q", st.result.Action, st.result.Collection), err)
		}
		rows += n
	}
	st.result.Rows = rows
	return nil
}

func runStatement(ctx context.Context, tx *sql.Tx, stmt statement, exec bool) (int64, error) {
	if !exec {
		var n int64
		err := tx.QueryRowContext(ctx, stmt.sql, stmt.args...).Scan(&n)
		return n, err
	}
	res, err := tx.ExecContext(ctx, stmt.sql, stmt.args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// reportStep is a step that only reports: nothing to carry out or count.
func reportStep(r stores.CollectionResult) step { return step{result: r} }
