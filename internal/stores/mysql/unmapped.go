package mysql

import (
	"context"
	"database/sql"
	"sort"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

var _ sqlcore.UnmappedEngine[liveSchema, *sql.Tx] = engine{}

// UnmappedTables returns the mapped tables of live and the tables a foreign
// key links to them (either way) that no collection maps, for
// sqlcore.UnmappedColumns. The mapped tables' columns are those the check
// read; one information_schema query finds the foreign keys, and
// readColumns (the check's own) reads the linked tables' columns. Names are
// compared as the server compares them (lower_case_table_names). No row is
// read.
func (e engine) UnmappedTables(ctx context.Context, tx *sql.Tx, live *liveSchema) ([]sqlcore.UnmappedTable, error) {
	key := func(schema, name string) string { return live.key(schema) + "." + live.key(name) }
	mapped := map[string]*table{}
	collections := map[string][]*datamap.Collection{}
	var names []tableName
	for _, c := range e.s.m.Collections {
		t := live.tables[c.Name]
		if t == nil {
			continue
		}
		k := key(t.schema, t.name)
		if mapped[k] == nil {
			mapped[k] = t
			names = append(names, tableName{t.schema, t.name})
		}
		collections[k] = append(collections[k], c)
	}
	if len(names) == 0 {
		return nil, nil
	}
	children, childArgs := inNames("TABLE_SCHEMA", "TABLE_NAME", names)
	parents, parentArgs := inNames("REFERENCED_TABLE_SCHEMA", "REFERENCED_TABLE_NAME", names)
	rows, err := tx.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE REFERENCED_TABLE_NAME IS NOT NULL AND ((`+children+`) OR (`+parents+`))`, append(childArgs, parentArgs...)...)
	if err != nil {
		return nil, dbError("reading the tables linked to the mapped ones", err)
	}
	keys := map[string][]string{}
	linked := map[string]*table{}
	var linkedNames []tableName
	link := func(schema, name string) {
		if k := key(schema, name); mapped[k] == nil && linked[k] == nil {
			linked[k] = &table{schema: schema, name: name, columns: map[string]column{}}
			linkedNames = append(linkedNames, tableName{schema, name})
		}
	}
	err = scanEach(rows, func(r *sql.Rows) error {
		var schema, name, col, refSchema, refName string
		if err := r.Scan(&schema, &name, &col, &refSchema, &refName); err != nil {
			return err
		}
		child, parent := key(schema, name), key(refSchema, refName)
		if mapped[child] == nil && mapped[parent] == nil {
			return nil // the IN lists' cross product, or a case variant of a mapped name
		}
		keys[child] = append(keys[child], col)
		link(schema, name)
		link(refSchema, refName)
		return nil
	})
	if err != nil {
		return nil, dbError("reading the tables linked to the mapped ones", err)
	}
	if len(linkedNames) > 0 {
		if err := readColumns(ctx, tx, live, linkedNames, linked); err != nil {
			return nil, err
		}
	}
	display := func(t *table) string {
		if live.key(t.schema) == live.key(live.database) {
			return t.name
		}
		return t.schema + "." + t.name
	}
	var out []sqlcore.UnmappedTable
	add := func(k string, t *table) {
		ut := sqlcore.UnmappedTable{Name: display(t), Bare: t.name, Collections: collections[k], Keys: keys[k], FoldCase: true}
		for _, col := range t.columns {
			ut.Columns = append(ut.Columns, col)
		}
		out = append(out, ut)
	}
	for k, t := range mapped {
		add(k, t)
	}
	for k, t := range linked {
		add(k, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
