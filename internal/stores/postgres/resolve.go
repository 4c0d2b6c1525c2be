package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// inDatabase finds rows with PostgreSQL's own statements rather than the
// session's portable ones: the whole resolution in one statement, and
// references compared by the database in subqueries (by the columns'
// equality, so under their collation), never read back and matched in Go.
// Exemptions are found by the session's statements.
type inDatabase struct{ *sqlcore.Session }

var _ sqlcore.Resolver = inDatabase{}

// Resolve finds the subject's rows, parents first: in each collection the
// rows where any mapped identity present in the subject equals its value
// exactly, and the rows whose cascade reference points at a subject's row of
// the parent. Keys are text, in key order. In Apply it takes row locks, so
// the rows cannot change between resolution and the statements that act on
// their keys.
func (r inDatabase) Resolve(ctx context.Context, subject map[string]string) (sqlcore.Rows, error) {
	q := r.resolution(subject)
	rows := sqlcore.Rows{}
	if len(q.collections) == 0 {
		return rows, nil
	}
	keys := make([][]string, len(q.collections))
	dest := make([]any, len(keys))
	for i := range keys {
		dest[i] = &keys[i]
	}
	if err := r.Tx.Query(ctx, q.statement, dest, func() error { return nil }); err != nil {
		return nil, dbError("finding the subject's rows", err)
	}
	for i, c := range q.collections {
		rows[c] = keys[i]
	}
	return rows, nil
}

// resolution is Resolve's one statement, and the collection of each array it returns.
type resolution struct {
	statement   sqlcore.Statement
	collections []*datamap.Collection
}

// resolution renders the whole walk as one statement, so it takes one round
// trip and sees one snapshot: children are found from exactly the parent rows
// found (and locked). Each collection is a CTE selecting its key and the
// fields its children refer to; the result is one text array per collection.
// A collection with neither an identity of the subject nor a parent with rows
// has no CTE, and no rows.
func (r inDatabase) resolution(subject map[string]string) resolution {
	p := r.Params()
	var q resolution
	ctes := map[*datamap.Collection]string{}
	var withs, arrays []string
	for _, c := range r.Map.Collections {
		if r.Selecting(c) {
			continue // named by a condition, never listed (sqlcore.Selection)
		}
		conditions := r.identityConditions(c, subject, p)
		for _, e := range c.Parents {
			if parent, ok := ctes[e.Parent]; ok {
				conditions = append(conditions, refersTo(r.Schema.Column(c, e.ChildField), quote(e.ChildField), parent+"."+quote(e.ParentField), parent))
			}
		}
		if len(conditions) == 0 {
			continue
		}
		// Quoted names with a hyphen: no admitted table name can be shadowed.
		name := quote(fmt.Sprintf("lethe-%d", len(q.collections)))
		ctes[c] = name
		cte := fmt.Sprintf("%s AS (SELECT %s FROM %s WHERE (%s)", name, strings.Join(resolvedColumns(c), ", "), tableRef(c), strings.Join(conditions, ") OR ("))
		if r.Lock {
			cte += " FOR UPDATE"
		}
		withs = append(withs, cte+")")
		// ORDER BY the CTE's column: the bare name would be the text output column.
		arrays = append(arrays, fmt.Sprintf("ARRAY(SELECT CAST(%[1]s.%[2]s AS text) FROM %[1]s ORDER BY %[1]s.%[2]s)", name, quote(c.PrimaryKey)))
		q.collections = append(q.collections, c)
	}
	q.statement = sqlcore.Statement{SQL: "WITH " + strings.Join(withs, ", ") + " SELECT " + strings.Join(arrays, ", "), Args: p.Values()}
	return q
}

// resolvedColumns are the columns of c a resolution selects: the primary key,
// and the fields c's children refer to.
func resolvedColumns(c *datamap.Collection) []string {
	columns := []string{quote(c.PrimaryKey)}
	seen := map[string]bool{c.PrimaryKey: true}
	for _, e := range c.Children {
		if !seen[e.ParentField] {
			seen[e.ParentField] = true
			columns = append(columns, quote(e.ParentField))
		}
	}
	return columns
}

// identityConditions match c's identity columns against the subject's values.
func (r inDatabase) identityConditions(c *datamap.Collection, subject map[string]string, p *masking.Params) []string {
	var conditions []string
	types, columns := c.IdentityColumns(subject)
	for i, t := range types {
		col := r.Schema.Column(c, columns[i])
		if cond, ok := r.Dialect.Match(col, quote(col.Name), []string{subject[t]}, masking.KindText, p); ok {
			conditions = append(conditions, cond)
		}
	}
	return conditions
}

// referencesRows selects the child rows of e that refer to the given parent rows.
func (r inDatabase) referencesRows(e *datamap.Edge, parentKeys []string, p *masking.Params) string {
	return refersTo(r.Schema.Column(e.Child, e.ChildField), quote(e.ChildField), quote(e.ParentField),
		tableRef(e.Parent)+" WHERE "+r.KeyIn(e.Parent, parentKeys, p))
}

// Refers names the rows of e's child that refer to the parent rows of
// parentKeys by a subquery, as Resolve finds them.
func (r inDatabase) Refers(_ context.Context, e *datamap.Edge, parentKeys []string) (sqlcore.Selection, error) {
	return func(p *masking.Params) string { return r.referencesRows(e, parentKeys, p) }, nil
}

// ChildrenOf returns which of the child keys among refer through e to the parent keys.
func (r inDatabase) ChildrenOf(ctx context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error) {
	p := r.Params()
	sql := fmt.Sprintf("SELECT CAST(t.%[1]s AS text) FROM %[2]s AS t WHERE %[3]s AND %[4]s ORDER BY t.%[1]s",
		quote(e.Child.PrimaryKey), tableRef(e.Child), r.KeyIn(e.Child, among, p), r.referencesRows(e, parentKeys, p))
	keys, err := r.QueryKeys(ctx, sqlcore.Statement{SQL: sql, Args: p.Values()})
	if err != nil {
		return nil, dbError(fmt.Sprintf("finding rows of collection %q kept with %q", e.Child.Name, e.Parent.Name), err)
	}
	return keys, nil
}

// ParentsOf returns which of the parent keys among the child keys refer to through e.
func (r inDatabase) ParentsOf(ctx context.Context, e *datamap.Edge, childKeys, among []string) ([]string, error) {
	p := r.Params()
	sql := fmt.Sprintf("SELECT CAST(t.%s AS text) FROM %s AS t WHERE %s AND %s ORDER BY t.%[1]s",
		quote(e.Parent.PrimaryKey), tableRef(e.Parent), r.KeyIn(e.Parent, among, p),
		refersTo(r.Schema.Column(e.Parent, e.ParentField), "t."+quote(e.ParentField), quote(e.ChildField), tableRef(e.Child)+" WHERE "+r.KeyIn(e.Child, childKeys, p)))
	keys, err := r.QueryKeys(ctx, sqlcore.Statement{SQL: sql, Args: p.Values()})
	if err != nil {
		return nil, dbError(fmt.Sprintf("finding the rows of collection %q that held rows of %q are found through", e.Parent.Name, e.Child.Name), err)
	}
	return keys, nil
}

// ClearReferences sets ref's field to NULL in the rows referring to parent
// rows about to be deleted (those rows belong to others), except in the
// spared rows, with one UPDATE whose subquery finds them.
func (r inDatabase) ClearReferences(_ context.Context, ref *datamap.Edge, parentKeys, spared []string) (sqlcore.Step, error) {
	where := func(p *masking.Params) string {
		w := r.referencesRows(ref, parentKeys, p)
		if len(spared) > 0 {
			w += " AND NOT (" + r.KeyIn(ref.Child, spared, p) + ")"
		}
		return w
	}
	p, cp := r.Params(), r.Params()
	return sqlcore.Step{
		Result: stores.CollectionResult{Collection: ref.Child.Name, Action: stores.ActionSetNull,
			Reason: sqlcore.SetNullReason(ref)},
		Exec:  []sqlcore.Statement{{SQL: fmt.Sprintf("UPDATE %s SET %s = NULL WHERE %s", tableRef(ref.Child), quote(ref.ChildField), where(p)), Args: p.Values()}},
		Count: []sqlcore.Statement{{SQL: fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(ref.Child), where(cp)), Args: cp.Values()}},
	}, nil
}
