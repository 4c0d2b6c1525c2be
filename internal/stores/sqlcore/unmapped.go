package sqlcore

import (
	"context"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/scaffold"
	"github.com/lethe-dev/lethe/internal/stores"
)

// UnmappedTable is a live table the unmapped-columns look covers: a mapped
// table, or an unmapped one a foreign key links to a mapped one.
type UnmappedTable struct {
	// Name as the report shows it (see stores.UnmappedColumn.Table).
	Name string
	// Bare is the table's own name, unqualified: the classifier reads its
	// words (a column "name" of "customers" is a person's name).
	Bare string
	// Collections mapping the table; none when only a foreign key links it.
	Collections []*datamap.Collection
	// Columns of the table, in any order.
	Columns []Column
	// Keys are the table's columns in a foreign key between it and a mapped
	// table (either side): links, not data.
	Keys []string
	// FoldCase: column names are case-insensitive (MySQL).
	FoldCase bool
}

// UnmappedEngine is an engine whose Check also looks for personal-looking
// columns the data map leaves out.
type UnmappedEngine[L, T any] interface {
	// UnmappedTables returns the mapped tables of live with their columns,
	// and the tables a foreign key links to them that no collection maps,
	// with theirs. It reads the catalog only, never a row.
	UnmappedTables(ctx context.Context, tx T, live *L) ([]UnmappedTable, error)
}

// unmapped takes the look in a read-only transaction of its own, after the
// check's: a failure is reported in the result (the look is a warning), and
// never aborts the check's own transaction.
func (c *Core[L, T]) unmapped(ctx context.Context, u UnmappedEngine[L, T], live *L) *stores.UnmappedReport {
	var tables []UnmappedTable
	err := c.engine.InTx(ctx, ReadOnly, func(tx T) error {
		var err error
		tables, err = u.UnmappedTables(ctx, tx, live)
		return err
	})
	if err != nil {
		return &stores.UnmappedReport{Error: err.Error()}
	}
	return &stores.UnmappedReport{Columns: UnmappedColumns(c.m, tables)}
}

// UnmappedColumns lists the columns of tables that look personal (the
// scaffold classifier's guess by name, type and table name, of high or
// medium confidence) and that no collection of m uses: not a primary key,
// identity, reference or field of a collection mapping the table, nor a
// foreign key column linking the table to a mapped one. Sorted by table
// then column.
func UnmappedColumns(m *datamap.Map, tables []UnmappedTable) []stores.UnmappedColumn {
	var out []stores.UnmappedColumn
	for _, t := range tables {
		norm := func(name string) string {
			if t.FoldCase {
				return strings.ToLower(name)
			}
			return name
		}
		used := map[string]bool{}
		for _, c := range t.Collections {
			for _, r := range RequiredColumns(c, m) {
				used[norm(r.Name)] = true
			}
		}
		keys := map[string]bool{}
		for _, k := range t.Keys {
			keys[norm(k)] = true
		}
		st := &scaffold.Table{Name: t.Bare}
		for _, col := range t.Columns {
			st.Columns = append(st.Columns, scaffold.Column{ColumnInfo: col.ColumnInfo, Generated: col.Generated})
		}
		for _, col := range st.Columns {
			if used[norm(col.Name)] {
				continue
			}
			g := scaffold.Classify(st, col, keys[norm(col.Name)], nil) // nil: no value is sampled
			if g.Category == "" || g.Confidence == scaffold.Low {
				continue
			}
			out = append(out, stores.UnmappedColumn{Table: t.Name, Column: col.Name, Category: g.Category,
				Confidence: string(g.Confidence), TableMapped: len(t.Collections) > 0})
		}
	}
	slices.SortFunc(out, func(a, b stores.UnmappedColumn) int {
		if c := strings.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		return strings.Compare(a.Column, b.Column)
	})
	return slices.CompactFunc(out, func(a, b stores.UnmappedColumn) bool { return a.Table == b.Table && a.Column == b.Column })
}
