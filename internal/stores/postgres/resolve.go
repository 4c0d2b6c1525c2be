package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
)

// subjectRows are the primary keys of the subject's rows per collection, as
// text (uniform for every key type), in key order.
type subjectRows map[*datamap.Collection][]string

// resolve finds the subject's rows, parents first: in each collection the
// rows where any mapped identity present in the subject equals its value
// exactly, and the rows whose cascade reference points at a subject's row of
// the parent. lock takes row locks (Apply), so the rows cannot change between
// resolution and the statements that act on their keys.
func (s *Store) resolve(ctx context.Context, tx pgx.Tx, live *liveSchema, subject map[string]string, lock bool) (subjectRows, error) {
	rows := subjectRows{}
	for _, c := range s.m.Collections {
		p := masking.NewParams(masking.Postgres)
		var conditions []string
		types, columns := c.IdentityColumns(subject)
		for i, t := range types {
			if cond, ok := identityCondition(live.column(c, columns[i]), subject[t], p); ok {
				conditions = append(conditions, cond)
			}
		}
		for _, e := range c.Parents {
			if keys := rows[e.Parent]; len(keys) > 0 {
				conditions = append(conditions, referencesRows(live, e, keys, p))
			}
		}
		if len(conditions) == 0 {
			continue
		}
		sql := fmt.Sprintf("SELECT CAST(%[1]s AS text) FROM %[2]s WHERE (%[3]s) ORDER BY %[1]s",
			quote(c.PrimaryKey), tableRef(c), strings.Join(conditions, ") OR ("))
		if lock {
			sql += " FOR UPDATE"
		}
		keys, err := queryKeys(ctx, tx, sql, p.Values())
		if err != nil {
			return nil, dbError(fmt.Sprintf("finding the subject's rows in collection %q", c.Name), err)
		}
		rows[c] = keys
	}
	return rows, nil
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

// without returns keys minus drop, keeping order.
func without(keys, drop []string) []string {
	if len(drop) == 0 {
		return keys
	}
	skip := make(map[string]bool, len(drop))
	for _, k := range drop {
		skip[k] = true
	}
	var out []string
	for _, k := range keys {
		if !skip[k] {
			out = append(out, k)
		}
	}
	return out
}
