package storetest

import (
	"fmt"
	"strings"
)

// Insert is one INSERT of fixture rows, for SQL engines.
type Insert struct {
	SQL  string
	Args []any
}

// SQLDialect is how a SQL engine's harness writes the fixture.
type SQLDialect struct {
	// Table is the table of a collection, quoted ("billing"."invoices").
	Table func(collection string) string
	// Quote quotes a column name.
	Quote func(name string) string
	// Placeholder is the n-th (1-based) parameter: $1, ?.
	Placeholder func(n int) string
	// Value converts fixture data (an ID, an int...) to a driver argument.
	Value func(v any) any
}

// Inserts renders the rows of the fixture's collections as multi-row
// INSERTs, parents first (at most 200 rows each).
func (f Fixture) Inserts(d SQLDialect) []Insert {
	var out []Insert
	for _, c := range f.Collections() {
		cols := make([]string, len(c.Columns))
		for i, col := range c.Columns {
			cols[i] = d.Quote(col)
		}
		head := fmt.Sprintf("INSERT INTO %s (%s) VALUES ", d.Table(string(c.Spec.Name)), strings.Join(cols, ", "))
		for start := 0; start < len(c.Rows); start += 200 {
			var tuples []string
			var args []any
			for _, row := range c.Rows[start:min(start+200, len(c.Rows))] {
				ph := make([]string, len(row))
				for i, v := range row {
					args = append(args, d.Value(v))
					ph[i] = d.Placeholder(len(args))
				}
				tuples = append(tuples, "("+strings.Join(ph, ", ")+")")
			}
			out = append(out, Insert{SQL: head + strings.Join(tuples, ", "), Args: args})
		}
	}
	return out
}

// PrimaryKey is the primary key column of the fixture's collection or
// extra table named name.
func (f Fixture) PrimaryKey(name string) string {
	f.Subscribers = true
	for _, c := range f.all() {
		if string(c.Spec.Name) == name {
			return string(c.Spec.PrimaryKey)
		}
	}
	return "id"
}
