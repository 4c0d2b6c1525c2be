package postgres

import (
	"fmt"
	"slices"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// problems lists every difference between the data map and the live schema.
func (s *Store) problems(live *liveSchema) []stores.SchemaProblem {
	var out []stores.SchemaProblem
	parent := func(c *datamap.Collection) (sqlcore.Table, bool) {
		if t := live.tables[c.Name]; t != nil {
			return t.sqlcoreTable(), true
		}
		return sqlcore.Table{}, false
	}
	for _, c := range s.m.Collections {
		t := live.tables[c.Name]
		switch {
		case t == nil:
			out = append(out, stores.SchemaProblem{Collection: c.Name,
				Problem: fmt.Sprintf("table %s does not exist; create it, or set the collection's table to the right (schema-qualified) name", c.Table)})
		case t.kind != "r" && t.kind != "p":
			out = append(out, stores.SchemaProblem{Collection: c.Name,
				Problem: fmt.Sprintf("%s is not a table (a view or another relation); map the table that holds the rows", t.name)})
		default:
			out = append(out, sqlcore.ColumnProblems(s.m, c, t.sqlcoreTable(), parent, s.key)...)
		}
	}
	return out
}

// warnings reports the foreign keys that make some erasures fail or delete
// rows outside the plan (see sqlcore.ForeignKeyWarnings). Tables are
// identified by OID.
func (s *Store) warnings(live *liveSchema) []string {
	fks := make([]sqlcore.ForeignKey, len(live.foreignKeys))
	for i, fk := range live.foreignKeys {
		fks[i] = sqlcore.ForeignKey{Name: fk.name, Table: fk.table, Columns: fk.columns, OnDelete: onDelete(fk.onDelete),
			RefersTo: func(c *datamap.Collection) bool {
				t := live.tables[c.Name]
				return t != nil && t.oid == fk.refOID
			},
			Implements: func(e *datamap.Edge) bool {
				t := live.tables[e.Child.Name]
				return t != nil && t.oid == fk.tableOID && slices.Contains(fk.columns, e.ChildField)
			}}
	}
	return sqlcore.ForeignKeyWarnings(s.m, fks)
}

// onDelete maps pg_constraint.confdeltype: a no action, r restrict, c cascade,
// n set null, d set default.
func onDelete(confdeltype string) sqlcore.OnDelete {
	switch confdeltype {
	case "a", "r":
		return sqlcore.OnDeleteBlocks
	case "c":
		return sqlcore.OnDeleteCascade
	}
	return sqlcore.OnDeleteOther
}
