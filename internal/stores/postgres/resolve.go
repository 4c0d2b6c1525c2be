package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// resolve finds the subject's rows, parents first: in each collection the
// rows where any mapped identity present in the subject equals its value
// exactly, and the rows whose cascade reference points at a subject's row of
// the parent. Keys are text, in key order. lock takes row locks (Apply), so
// the rows cannot change between resolution and the statements that act on
// their keys.
func (s *Store) resolve(ctx context.Context, tx pgx.Tx, live *liveSchema, subject map[string]string, lock bool) (sqlcore.Rows, error) {
	q := s.resolution(live, subject, lock)
	rows := sqlcore.Rows{}
	if len(q.collections) == 0 {
		return rows, nil
	}
	keys := make([][]string, len(q.collections))
	dest := make([]any, len(keys))
	for i := range keys {
		dest[i] = &keys[i]
	}
	if err := tx.QueryRow(ctx, q.sql, q.args...).Scan(dest...); err != nil {
		return nil, dbError("finding the subject's rows", err)
	}
	for i, c := range q.collections {
		rows[c] = keys[i]
	}
	return rows, nil
}

// resolution is resolve's one statement, and the collection of each array it returns.
type resolution struct {
	sql         string
	args        []any
	collections []*datamap.Collection
}

// resolution renders the whole walk as one statement, so it takes one round
// trip and sees one snapshot: children are found from exactly the parent rows
// found (and locked). Each collection is a CTE selecting its key and the
// fields its children refer to; the result is one text array per collection.
// A collection with neither an identity of the subject nor a parent with rows
// has no CTE, and no rows.
func (s *Store) resolution(live *liveSchema, subject map[string]string, lock bool) resolution {
	p := masking.NewParams(masking.Postgres)
	var r resolution
	ctes := map[*datamap.Collection]string{}
	var withs, arrays []string
	for _, c := range s.m.Collections {
		conditions := identityConditions(live, c, subject, p)
		for _, e := range c.Parents {
			if parent, ok := ctes[e.Parent]; ok {
				conditions = append(conditions, fmt.Sprintf("%s IN (SELECT %s.%s FROM %[2]s)", quote(e.ChildField), parent, quote(e.ParentField)))
			}
		}
		if len(conditions) == 0 {
			continue
		}
		// Quoted names with a hyphen: no admitted table name can be shadowed.
		name := quote(fmt.Sprintf("lethe-%d", len(r.collections)))
		ctes[c] = name
		cte := fmt.Sprintf("%s AS (SELECT %s FROM %s WHERE (%s)", name, strings.Join(resolvedColumns(c), ", "), tableRef(c), strings.Join(conditions, ") OR ("))
		if lock {
			cte += " FOR UPDATE"
		}
		withs = append(withs, cte+")")
		// ORDER BY the CTE's column: the bare name would be the text output column.
		arrays = append(arrays, fmt.Sprintf("ARRAY(SELECT CAST(%[1]s.%[2]s AS text) FROM %[1]s ORDER BY %[1]s.%[2]s)", name, quote(c.PrimaryKey)))
		r.collections = append(r.collections, c)
	}
	r.sql = "WITH " + strings.Join(withs, ", ") + " SELECT " + strings.Join(arrays, ", ")
	r.args = p.Values()
	return r
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
func identityConditions(live *liveSchema, c *datamap.Collection, subject map[string]string, p *masking.Params) []string {
	var conditions []string
	types, columns := c.IdentityColumns(subject)
	for i, t := range types {
		if cond, ok := identityCondition(live.column(c, columns[i]), subject[t], p); ok {
			conditions = append(conditions, cond)
		}
	}
	return conditions
}

// identityCondition matches col exactly against an identity value, bound as
// a parameter. Integer columns compare with the value parsed in Go (an index
// still serves, and a value that is not a canonical integer matches nothing
// rather than failing the cast); other non-text columns compare as text.
func identityCondition(col column, value string, p *masking.Params) (string, bool) {
	ref := quote(col.Name)
	switch col.Kind {
	case masking.KindText:
		return ref + " = " + p.Add(value), true
	case masking.KindInteger:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != value {
			return "", false
		}
		return ref + " = " + p.Add(n), true
	default:
		return "CAST(" + ref + " AS text) = " + p.Add(value), true
	}
}

// referencesRows selects the child rows of e that refer to the given parent rows.
func referencesRows(live *liveSchema, e *datamap.Edge, parentKeys []string, p *masking.Params) string {
	return fmt.Sprintf("%s IN (SELECT %s FROM %s WHERE %s)",
		quote(e.ChildField), quote(e.ParentField), tableRef(e.Parent), keyIn(live, e.Parent, parentKeys, p))
}

// keyIn selects c's rows by primary key: the keys are bound as one text array
// and cast to the key's type, so the primary key index serves.
func keyIn(live *liveSchema, c *datamap.Collection, keys []string, p *masking.Params) string {
	return fmt.Sprintf("%s = ANY (CAST(CAST(%s AS text[]) AS %s[]))",
		quote(c.PrimaryKey), p.Add(keys), live.column(c, c.PrimaryKey).castType)
}

func queryKeys(ctx context.Context, tx pgx.Tx, sql string, args []any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// finder answers sqlcore's questions about the subject's rows in one transaction.
type finder struct {
	tx   pgx.Tx
	live *liveSchema
}

var _ sqlcore.Finder = finder{}

// ChildrenOf returns which of the child keys among refer through e to the parent keys.
func (f finder) ChildrenOf(ctx context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error) {
	p := masking.NewParams(masking.Postgres)
	sql := fmt.Sprintf("SELECT CAST(t.%[1]s AS text) FROM %[2]s AS t WHERE %[3]s AND %[4]s ORDER BY t.%[1]s",
		quote(e.Child.PrimaryKey), tableRef(e.Child), keyIn(f.live, e.Child, among, p), referencesRows(f.live, e, parentKeys, p))
	keys, err := queryKeys(ctx, f.tx, sql, p.Values())
	if err != nil {
		return nil, dbError(fmt.Sprintf("finding rows of collection %q kept with %q", e.Child.Name, e.Parent.Name), err)
	}
	return keys, nil
}

// ParentsOf returns which of the parent keys among the child keys refer to through e.
func (f finder) ParentsOf(ctx context.Context, e *datamap.Edge, childKeys, among []string) ([]string, error) {
	p := masking.NewParams(masking.Postgres)
	sql := fmt.Sprintf("SELECT CAST(t.%[1]s AS text) FROM %[2]s AS t WHERE %[3]s AND t.%[4]s IN (SELECT %[5]s FROM %[6]s WHERE %[7]s) ORDER BY t.%[1]s",
		quote(e.Parent.PrimaryKey), tableRef(e.Parent), keyIn(f.live, e.Parent, among, p),
		quote(e.ParentField), quote(e.ChildField), tableRef(e.Child), keyIn(f.live, e.Child, childKeys, p))
	keys, err := queryKeys(ctx, f.tx, sql, p.Values())
	if err != nil {
		return nil, dbError(fmt.Sprintf("finding the rows of collection %q that held rows of %q are found through", e.Parent.Name, e.Child.Name), err)
	}
	return keys, nil
}

// Exempted returns the rows among whose exemption field is after the cutoff,
// and the newest of those times.
func (f finder) Exempted(ctx context.Context, c *datamap.Collection, ex stores.Exemption, among []string) ([]string, time.Time, error) {
	col, ok := f.live.tables[c.Name].columns[ex.Field]
	if !ok || !sqlcore.IsTemporal(col.Kind) {
		return nil, time.Time{}, fmt.Errorf("%w: retention rule %s: collection %q has no date or timestamp column %q", stores.ErrInvalid, ex.Rule, c.Name, ex.Field)
	}
	p := masking.NewParams(masking.Postgres)
	sql := fmt.Sprintf("SELECT CAST(t.%[1]s AS text), t.%[2]s FROM %[3]s AS t WHERE %[4]s AND t.%[2]s > %[5]s ORDER BY t.%[1]s",
		quote(c.PrimaryKey), quote(ex.Field), tableRef(c), keyIn(f.live, c, among, p), p.Add(ex.Cutoff.UTC()))
	rows, err := f.tx.Query(ctx, sql, p.Values()...)
	if err != nil {
		return nil, time.Time{}, dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
	}
	var keys []string
	var key string
	var newest, at time.Time
	_, err = pgx.ForEachRow(rows, []any{&key, &at}, func() error {
		keys = append(keys, key)
		if at.After(newest) {
			newest = at
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
	}
	return keys, newest, nil
}
