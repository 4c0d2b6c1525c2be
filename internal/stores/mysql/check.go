package mysql

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// transactionalEngines can roll a request back; on any other storage engine
// (MyISAM, Aria, MEMORY...) a failure would leave it half done.
var transactionalEngines = []string{"innodb", "rocksdb", "tokudb"}

// problems lists every difference between the data map and the live schema.
func (s *Store) problems(live *liveSchema) []stores.SchemaProblem {
	var out []stores.SchemaProblem
	add := func(c *datamap.Collection, problem string) {
		out = append(out, stores.SchemaProblem{Collection: c.Name, Problem: problem})
	}
	parent := func(c *datamap.Collection) (sqlcore.Table, bool) {
		t := live.tables[c.Name]
		if t == nil {
			return sqlcore.Table{}, false
		}
		return t.sqlcoreTable(c.Table), true
	}
	for _, c := range s.m.Collections {
		t := live.tables[c.Name]
		switch {
		case t == nil && live.database == "" && !strings.Contains(c.Table, "."):
			add(c, fmt.Sprintf("table %s cannot be found: the DSN names no database; add one to the DSN or qualify the table (database.%s)", c.Table, c.Table))
		case t == nil:
			add(c, fmt.Sprintf("table %s does not exist; create it, or set the collection's table to the right (database-qualified) name", c.Table))
		case t.kind != "BASE TABLE" && t.kind != "SYSTEM VERSIONED":
			add(c, fmt.Sprintf("%s is not a table (%s); map the table that holds the rows", c.Table, strings.ToLower(t.kind)))
		case !slices.Contains(transactionalEngines, strings.ToLower(t.engine)):
			add(c, fmt.Sprintf("table %s uses the %s storage engine, which cannot roll back: a failed request would be left half done; convert it (ALTER TABLE ... ENGINE=InnoDB)", c.Table, t.engine))
		default:
			out = append(out, sqlcore.ColumnProblems(s.m, c, t.sqlcoreTable(c.Table), parent, s.key)...)
			out = append(out, generatedProblems(c, t)...)
		}
	}
	return out
}

// generatedProblems reports masked fields held in generated columns, which
// cannot be written: their value comes from other columns.
func generatedProblems(c *datamap.Collection, t *table) []stores.SchemaProblem {
	var out []stores.SchemaProblem
	for _, f := range c.Fields {
		if col, ok := t.column(f.Name); ok && col.Generated && f.Masking != nil {
			out = append(out, stores.SchemaProblem{Collection: c.Name, Field: f.Name,
				Problem: fmt.Sprintf("column %q is generated from other columns and cannot be masked; map and mask the columns it is computed from", col.Name)})
		}
	}
	return out
}

// warnings reports the foreign keys that make some erasures fail or delete
// rows outside the plan (see sqlcore.ForeignKeyWarnings). Tables are
// identified by name as the server compares them; column names are
// case-insensitive.
func (s *Store) warnings(live *liveSchema) []string {
	fks := make([]sqlcore.ForeignKey, len(live.foreignKeys))
	for i, fk := range live.foreignKeys {
		fks[i] = sqlcore.ForeignKey{Name: fk.name, Table: fk.display, Columns: fk.columns, OnDelete: onDelete(fk.onDelete),
			RefersTo: func(c *datamap.Collection) bool {
				return live.sameTable(live.tables[c.Name], fk.refSchema, fk.refTable)
			},
			Implements: func(e *datamap.Edge) bool {
				return live.sameTable(live.tables[e.Child.Name], fk.schema, fk.table) &&
					slices.ContainsFunc(fk.columns, func(col string) bool { return strings.EqualFold(col, e.ChildField) })
			}}
	}
	return sqlcore.ForeignKeyWarnings(s.m, fks)
}

func onDelete(rule string) sqlcore.OnDelete {
	switch rule {
	case "CASCADE":
		return sqlcore.OnDeleteCascade
	case "NO ACTION", "RESTRICT":
		return sqlcore.OnDeleteBlocks
	}
	return sqlcore.OnDeleteOther
}
