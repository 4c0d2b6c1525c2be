package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// finder resolves rows in one transaction. lock takes row locks (Apply), so
// the rows cannot change between resolution and the statements that act on
// their keys.
type finder struct {
	s    *Store
	tx   *sql.Tx
	live *liveSchema
	lock bool
}

var _ sqlcore.Finder = finder{}

// resolve finds the subject's rows, parents first: in each collection the
// rows where any mapped identity present in the subject equals its value
// exactly, and the rows whose cascade reference points at a subject's row of
// the parent.
func (f finder) resolve(ctx context.Context, subject map[string]string) (sqlcore.Rows, error) {
	rows := sqlcore.Rows{}
	for _, c := range f.s.m.Collections {
		keys, err := f.byIdentity(ctx, c, subject)
		if err != nil {
			return nil, err
		}
		for _, e := range c.Parents {
			children, err := f.referring(ctx, e, rows[e.Parent])
			if err != nil {
				return nil, err
			}
			keys = append(keys, children...)
		}
		rows[c] = f.distinctSorted(c, keys)
	}
	return rows, nil
}

// byIdentity selects c's rows matching any identity of the subject it maps,
// one query per identity column, so each can use that column's index.
func (f finder) byIdentity(ctx context.Context, c *datamap.Collection, subject map[string]string) ([]string, error) {
	var keys []string
	types, columns := c.IdentityColumns(subject)
	for i, t := range types {
		p := masking.NewParams(masking.MySQL)
		cond, ok := matchValues(f.live.column(c, columns[i]), quote(columns[i]), []string{subject[t]}, false, p)
		if !ok {
			continue
		}
		found, err := f.selectKeys(ctx, c, cond, p)
		if err != nil {
			return nil, dbError(fmt.Sprintf("finding the subject's rows in collection %q", c.Name), err)
		}
		keys = append(keys, found...)
	}
	return keys, nil
}

// referring selects the rows of e's child that refer to the given parent rows.
func (f finder) referring(ctx context.Context, e *datamap.Edge, parentKeys []string) ([]string, error) {
	if len(parentKeys) == 0 {
		return nil, nil
	}
	values, err := f.fieldValues(ctx, e.Parent, e.ParentField, parentKeys)
	if err != nil {
		return nil, err
	}
	hex := f.live.column(e.Parent, e.ParentField).Kind == masking.KindBytes
	childCol := f.live.column(e.Child, e.ChildField)
	var keys []string
	for _, chunk := range chunks(values) {
		p := masking.NewParams(masking.MySQL)
		cond, ok := matchValues(childCol, quote(e.ChildField), chunk, hex, p)
		if !ok {
			continue
		}
		found, err := f.selectKeys(ctx, e.Child, cond, p)
		if err != nil {
			return nil, dbError(fmt.Sprintf("finding the rows of collection %q that refer to %q", e.Child.Name, e.Parent.Name), err)
		}
		keys = append(keys, found...)
	}
	return keys, nil
}

// fieldValues are the distinct values of field in c's rows of keys: the keys
// themselves when field is the primary key.
func (f finder) fieldValues(ctx context.Context, c *datamap.Collection, field string, keys []string) ([]string, error) {
	if strings.EqualFold(field, c.PrimaryKey) {
		return keys, nil
	}
	pk := f.live.column(c, c.PrimaryKey)
	col := f.live.column(c, field)
	var values []string
	for _, chunk := range chunks(keys) {
		p := masking.NewParams(masking.MySQL)
		q := fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s AND %s IS NOT NULL",
			textOf(col, quote(field)), tableRef(c), keyIn(pk, quote(c.PrimaryKey), chunk, p), quote(field))
		found, err := queryStrings(ctx, f.tx, q, p.Values())
		if err != nil {
			return nil, dbError(fmt.Sprintf("reading field %q of collection %q", field, c.Name), err)
		}
		values = append(values, found...)
	}
	return values, nil
}

// selectKeys returns the keys of c's rows meeting where, locking them when f
// locks. There is no ORDER BY (keys are sorted in Go), so nothing draws the
// optimizer away from the index of the condition's column.
func (f finder) selectKeys(ctx context.Context, c *datamap.Collection, where string, p *masking.Params) ([]string, error) {
	pk := f.live.column(c, c.PrimaryKey)
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", textOf(pk, quote(c.PrimaryKey)), tableRef(c), where)
	if f.lock {
		q += " FOR UPDATE"
	}
	return queryStrings(ctx, f.tx, q, p.Values())
}

// distinctSorted removes the keys found twice (by identity and by reference).
func (f finder) distinctSorted(c *datamap.Collection, keys []string) []string {
	if len(keys) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sortKeys(f.live.column(c, c.PrimaryKey), out)
	return out
}

// ChildrenOf returns which of the child keys among refer through e to the parent keys.
func (f finder) ChildrenOf(ctx context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error) {
	referring, err := f.referring(ctx, e, parentKeys)
	if err != nil {
		return nil, err
	}
	return sqlcore.Intersect(among, referring), nil
}

// ParentsOf returns which of the parent keys among the child keys refer to
// through e. It reads without locking: the rows among were locked as the
// subject's when Apply resolved them.
func (f finder) ParentsOf(ctx context.Context, e *datamap.Edge, childKeys, among []string) ([]string, error) {
	values, err := f.fieldValues(ctx, e.Child, e.ChildField, childKeys)
	if err != nil {
		return nil, err
	}
	hex := f.live.column(e.Child, e.ChildField).Kind == masking.KindBytes
	pk, parentCol := f.live.column(e.Parent, e.Parent.PrimaryKey), f.live.column(e.Parent, e.ParentField)
	var keys []string
	for _, parents := range chunks(among) {
		for _, chunk := range chunks(values) {
			p := masking.NewParams(masking.MySQL)
			where := keyIn(pk, quote(e.Parent.PrimaryKey), parents, p)
			cond, ok := matchValues(parentCol, quote(e.ParentField), chunk, hex, p)
			if !ok {
				continue
			}
			q := fmt.Sprintf("SELECT %s FROM %s WHERE %s AND %s", textOf(pk, quote(e.Parent.PrimaryKey)), tableRef(e.Parent), where, cond)
			found, err := queryStrings(ctx, f.tx, q, p.Values())
			if err != nil {
				return nil, dbError(fmt.Sprintf("finding the rows of collection %q that held rows of %q are found through", e.Parent.Name, e.Child.Name), err)
			}
			keys = append(keys, found...)
		}
	}
	return f.distinctSorted(e.Parent, keys), nil
}

// Exempted returns the rows among whose exemption field is after the cutoff,
// and the newest of those times.
func (f finder) Exempted(ctx context.Context, c *datamap.Collection, ex stores.Exemption, among []string) ([]string, time.Time, error) {
	col, ok := f.live.tables[c.Name].column(ex.Field)
	if !ok || !sqlcore.IsTemporal(col.Kind) {
		return nil, time.Time{}, fmt.Errorf("%w: retention rule %s: collection %q has no date or timestamp column %q", stores.ErrInvalid, ex.Rule, c.Name, ex.Field)
	}
	pk := f.live.column(c, c.PrimaryKey)
	var keys []string
	var newest time.Time
	for _, chunk := range chunks(among) {
		p := masking.NewParams(masking.MySQL)
		q := fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s AND %s > %s ORDER BY %s",
			textOf(pk, quote(c.PrimaryKey)), quote(ex.Field), tableRef(c), keyIn(pk, quote(c.PrimaryKey), chunk, p), quote(ex.Field), p.Add(ex.Cutoff.UTC()), quote(c.PrimaryKey))
		rows, err := f.tx.QueryContext(ctx, q, p.Values()...)
		if err != nil {
			return nil, time.Time{}, dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
		}
		err = scanEach(rows, func(r *sql.Rows) error {
			var key string
			var at time.Time
			if err := r.Scan(&key, &at); err != nil {
				return err
			}
			keys = append(keys, key)
			if at.After(newest) {
				newest = at
			}
			return nil
		})
		if err != nil {
			return nil, time.Time{}, dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
		}
	}
	return keys, newest, nil
}

// queryStrings runs a query of one text column.
func queryStrings(ctx context.Context, tx *sql.Tx, q string, args []any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []string
	err = scanEach(rows, func(r *sql.Rows) error {
		var s string
		if err := r.Scan(&s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// scanEach calls fn for every row and closes rows.
func scanEach(rows *sql.Rows, fn func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
