package postgres

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Plan resolves the subject's rows and reports, per collection, what Apply
// would do, in a read-only snapshot. Apply counts with the same statements'
// WHERE clauses, so the numbers agree when nothing changed in between.
func (s *Store) Plan(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := s.validate(req); err != nil {
		return stores.Result{}, err
	}
	var res stores.Result
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		var err error
		res, err = s.run(ctx, tx, req, false)
		return err
	})
	return res, err
}

// Apply carries out an Erasure or a Rectification in one transaction: the
// subject's rows are locked as they are resolved, then changed children
// first, one statement per collection. Any failure rolls everything back.
func (s *Store) Apply(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := s.validate(req); err != nil {
		return stores.Result{}, err
	}
	if req.Kind == stores.KindAccess {
		return stores.Result{}, fmt.Errorf("%w: an Access request is exported, not applied", stores.ErrInvalid)
	}
	var res stores.Result
	err := s.inTx(ctx, readWrite, func(tx pgx.Tx) error {
		var err error
		res, err = s.run(ctx, tx, req, true)
		return err
	})
	if err != nil {
		return stores.Result{}, err
	}
	return res, nil
}

// step is one collection's part of a request: the statement that carries it
// out (nil when nothing changes) and the statement that counts, for a plan,
// the rows it would change (nil when the resolved keys already say).
type step struct {
	result stores.CollectionResult
	exec   *statement
	count  *statement
}

type statement struct {
	sql  string
	args []any
}

// run checks the schema, resolves the subject's rows, and counts (plan) or
// carries out (apply) the request's steps.
func (s *Store) run(ctx context.Context, tx pgx.Tx, req stores.Request, apply bool) (stores.Result, error) {
	live, err := s.matchingSchema(ctx, tx)
	if err != nil {
		return stores.Result{}, err
	}
	rows, err := s.resolve(ctx, tx, live, req.Subject, apply)
	if err != nil {
		return stores.Result{}, err
	}
	var steps []step
	var res stores.Result
	switch req.Kind {
	case stores.KindErasure:
		steps, res.Held, err = s.erasureSteps(ctx, tx, live, rows, req)
	case stores.KindRectification:
		steps = s.rectificationSteps(live, rows, req)
	default:
		steps = s.accessSteps(rows, req.Scope)
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
func perform(ctx context.Context, tx pgx.Tx, st *step, apply bool) error {
	var err error
	switch {
	case apply && st.exec != nil:
		var tag pgconn.CommandTag
		tag, err = tx.Exec(ctx, st.exec.sql, st.exec.args...)
		st.result.Rows = tag.RowsAffected()
	case !apply && st.count != nil:
		err = tx.QueryRow(ctx, st.count.sql, st.count.args...).Scan(&st.result.Rows)
	}
	if err != nil {
		return dbError(fmt.Sprintf("%s in collection %q", st.result.Action, st.result.Collection), err)
	}
	return nil
}

func (s *Store) accessSteps(rows subjectRows, scope datamap.Scope) []step {
	var steps []step
	for _, c := range s.m.Collections {
		if scope.InScope(c) {
			steps = append(steps, step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionExport, Rows: int64(len(rows[c]))}})
		}
	}
	return steps
}

// validate refuses, before any query, a request no store could carry out
// safely. Its errors name identity types, never values.
func (s *Store) validate(req stores.Request) error {
	if err := s.validateSubject(req.Subject); err != nil {
		return err
	}
	switch req.Kind {
	case stores.KindAccess, stores.KindErasure:
	case stores.KindRectification:
		if len(req.Rectification) == 0 {
			return fmt.Errorf("%w: a Rectification request needs values", stores.ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown request kind %q", stores.ErrInvalid, req.Kind)
	}
	for _, h := range req.Holds {
		if _, ok := s.m.Get(h.Collection); h.Collection != "" && !ok {
			return fmt.Errorf("%w: legal hold %s names collection %q, which the data map does not have", stores.ErrInvalid, h.Name, h.Collection)
		}
	}
	for _, e := range req.Exemptions {
		if _, ok := s.m.Get(e.Collection); !ok {
			return fmt.Errorf("%w: retention rule %s names collection %q, which the data map does not have", stores.ErrInvalid, e.Rule, e.Collection)
		}
	}
	return nil
}

// validateSubject refuses an empty identity value (it would match every row
// whose column is empty), and a subject none of whose identity types this
// store maps; identity types that only other stores map are ignored.
func (s *Store) validateSubject(subject map[string]string) error {
	types := sortedKeys(subject)
	if len(types) == 0 {
		return fmt.Errorf("%w: the request has no subject identity", stores.ErrInvalid)
	}
	for _, t := range types {
		if strings.TrimSpace(subject[t]) == "" {
			return fmt.Errorf("%w: identity %s has an empty value", stores.ErrInvalid, t)
		}
	}
	known := s.identityTypes()
	if !slices.ContainsFunc(types, func(t string) bool { return slices.Contains(known, t) }) {
		return fmt.Errorf("%w: none of the subject's identity types (%s) is mapped in this store, which knows %s",
			stores.ErrInvalid, strings.Join(types, ", "), strings.Join(known, ", "))
	}
	return nil
}

func (s *Store) identityTypes() []string {
	set := map[string]string{}
	for _, c := range s.m.Collections {
		for t := range c.Identity {
			set[t] = t
		}
	}
	return sortedKeys(set)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
