package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// liveSchema is what information_schema says about the mapped tables.
type liveSchema struct {
	// database is the connection's current database ("" when the DSN names none).
	database string
	// tables by collection name; no entry when the table does not exist.
	tables map[string]*table
	// foreignKeys referring to a mapped table.
	foreignKeys []foreignKey
	// foldNames: table names are case-insensitive (lower_case_table_names > 0).
	foldNames bool
}

type table struct {
	schema, name string
	kind         string // information_schema.TABLES.TABLE_TYPE
	engine       string
	// columns by lower-case name: MySQL column names are case-insensitive.
	columns map[string]column
}

// column is a live column; its Charset decides exact matching.
type column = sqlcore.Column

type foreignKey struct {
	name                string
	schema, table       string // referring table
	columns             []string
	refSchema, refTable string
	refColumns          []string // the referenced columns, in the order of columns
	onDelete            string   // DELETE_RULE: CASCADE, SET NULL, RESTRICT, NO ACTION, SET DEFAULT
	display             string   // referring table as messages show it
}

var _ sqlcore.Schema = (*liveSchema)(nil)

func (l *liveSchema) column(c *datamap.Collection, name string) column {
	return l.tables[c.Name].columns[strings.ToLower(name)]
}

// Column is c's column name; MySQL column names are case-insensitive.
func (l *liveSchema) Column(c *datamap.Collection, name string) sqlcore.Column {
	return l.column(c, name)
}

// Table is c's table as a retention rule's columns are looked up in: only
// names admission would accept, since rules name columns the map may not.
func (l *liveSchema) Table(c *datamap.Collection) sqlcore.Table {
	t := l.tables[c.Name]
	return sqlcore.Table{Name: c.Table, Column: func(name string) (masking.ColumnInfo, bool) {
		col, ok := t.column(name)
		return col.ColumnInfo, ok && identifierPattern.MatchString(name)
	}}
}

func (t *table) column(name string) (column, bool) {
	col, ok := t.columns[strings.ToLower(name)]
	return col, ok
}

// sqlcoreTable is t as the shared checks see it.
func (t *table) sqlcoreTable(display string) sqlcore.Table {
	return sqlcore.Table{Name: display, Column: func(name string) (masking.ColumnInfo, bool) {
		col, ok := t.column(name)
		return col.ColumnInfo, ok
	}}
}

// tableName is a collection's table split into database and name.
type tableName struct{ schema, name string }

func (s *Store) tableName(c *datamap.Collection, database string) tableName {
	if schema, name, ok := strings.Cut(c.Table, "."); ok {
		return tableName{schema, name}
	}
	return tableName{database, c.Table}
}

// key normalizes a table or database name as the server compares them.
func (l *liveSchema) key(name string) string {
	if l.foldNames {
		return strings.ToLower(name)
	}
	return name
}

// introspect reads the mapped tables, their columns and unique indexes, and
// the foreign keys referring to them. information_schema compares names
// case-insensitively, so rows are matched to collections again in Go, as the
// server resolves names.
func (s *Store) introspect(ctx context.Context, tx *sql.Tx) (*liveSchema, error) {
	live := &liveSchema{tables: map[string]*table{}}
	var database sql.NullString
	var lowerCaseNames int
	if err := tx.QueryRowContext(ctx, "SELECT DATABASE(), @@lower_case_table_names").Scan(&database, &lowerCaseNames); err != nil {
		return nil, dbError("reading the current database", err)
	}
	live.database, live.foldNames = database.String, lowerCaseNames > 0
	names := make([]tableName, 0, len(s.m.Collections))
	for _, c := range s.m.Collections {
		if n := s.tableName(c, live.database); n.schema != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return live, nil
	}
	byName, err := s.readTables(ctx, tx, live, names)
	if err != nil {
		return nil, err
	}
	if err := readColumns(ctx, tx, live, names, byName); err != nil {
		return nil, err
	}
	if err := readUnique(ctx, tx, live, names, byName); err != nil {
		return nil, err
	}
	if live.foreignKeys, err = readForeignKeys(ctx, tx, live, names, byName); err != nil {
		return nil, err
	}
	return live, nil
}

// inNames renders (TABLE_SCHEMA IN (...) AND TABLE_NAME IN (...)) over names,
// a superset information_schema can narrow with its own indexes.
func inNames(schemaCol, nameCol string, names []tableName) (string, []any) {
	var schemas, tables []any
	for _, n := range names {
		schemas = append(schemas, n.schema)
		tables = append(tables, n.name)
	}
	return fmt.Sprintf("%s IN (%s) AND %s IN (%s)", schemaCol, placeholders(len(schemas)), nameCol, placeholders(len(tables))), append(schemas, tables...)
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// readTables finds each collection's table; it returns the tables by their
// normalized "schema.name".
func (s *Store) readTables(ctx context.Context, tx *sql.Tx, live *liveSchema, names []tableName) (map[string]*table, error) {
	where, args := inNames("TABLE_SCHEMA", "TABLE_NAME", names)
	rows, err := tx.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, '') FROM information_schema.TABLES WHERE "+where, args...)
	if err != nil {
		return nil, dbError("reading the mapped tables", err)
	}
	defer rows.Close()
	byName := map[string]*table{}
	for rows.Next() {
		t := &table{columns: map[string]column{}}
		if err := rows.Scan(&t.schema, &t.name, &t.kind, &t.engine); err != nil {
			return nil, dbError("reading the mapped tables", err)
		}
		byName[live.key(t.schema)+"."+live.key(t.name)] = t
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("reading the mapped tables", err)
	}
	for _, c := range s.m.Collections {
		n := s.tableName(c, live.database)
		if t, ok := byName[live.key(n.schema)+"."+live.key(n.name)]; ok {
			live.tables[c.Name] = t
		}
	}
	return byName, nil
}

// readColumns reads every column of the tables.
func readColumns(ctx context.Context, tx *sql.Tx, live *liveSchema, names []tableName, byName map[string]*table) error {
	where, args := inNames("TABLE_SCHEMA", "TABLE_NAME", names)
	const q = `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE = 'YES',
	COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0),
	COALESCE(CHARACTER_SET_NAME, ''), COALESCE(GENERATION_EXPRESSION, '') <> ''
FROM information_schema.COLUMNS WHERE `
	rows, err := tx.QueryContext(ctx, q+where, args...)
	if err != nil {
		return dbError("reading the mapped columns", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, name, dataType string
		var maxLength, precision, scale int64
		var col column
		if err := rows.Scan(&schema, &name, &col.Name, &dataType, &col.Type, &col.Nullable, &maxLength, &precision, &scale, &col.Charset, &col.Generated); err != nil {
			return dbError("reading the mapped columns", err)
		}
		t, ok := byName[live.key(schema)+"."+live.key(name)]
		if !ok {
			continue // a case variant of a mapped table's name
		}
		info := masking.MySQLColumnInfo(dataType, maxLength, precision, scale)
		col.Kind, col.MaxLength, col.IntDigits = info.Kind, info.MaxLength, info.IntDigits
		t.columns[strings.ToLower(col.Name)] = col
	}
	if err := rows.Err(); err != nil {
		return dbError("reading the mapped columns", err)
	}
	return nil
}

// readUnique marks the columns that are part of a unique index (the primary
// key included), and gives each column that a unique index covers alone the
// name of that index (PRIMARY first).
func readUnique(ctx context.Context, tx *sql.Tx, live *liveSchema, names []tableName, byName map[string]*table) error {
	where, args := inNames("TABLE_SCHEMA", "TABLE_NAME", names)
	rows, err := tx.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, INDEX_NAME FROM information_schema.STATISTICS WHERE NON_UNIQUE = 0 AND "+where, args...)
	if err != nil {
		return dbError("reading unique indexes", err)
	}
	defer rows.Close()
	type index struct {
		t       *table
		name    string
		columns []string
	}
	var indexes []*index
	byIndex := map[string]*index{}
	for rows.Next() {
		var schema, name, colName, indexName string
		if err := rows.Scan(&schema, &name, &colName, &indexName); err != nil {
			return dbError("reading unique indexes", err)
		}
		t, ok := byName[live.key(schema)+"."+live.key(name)]
		if !ok {
			continue
		}
		if col, ok := t.column(colName); ok {
			col.Unique = true
			t.columns[strings.ToLower(colName)] = col
		}
		id := live.key(schema) + "." + live.key(name) + "." + indexName
		if byIndex[id] == nil {
			byIndex[id] = &index{t: t, name: indexName}
			indexes = append(indexes, byIndex[id])
		}
		byIndex[id].columns = append(byIndex[id].columns, colName)
	}
	if err := rows.Err(); err != nil {
		return dbError("reading unique indexes", err)
	}
	for _, ix := range indexes {
		if len(ix.columns) != 1 {
			continue
		}
		if col, ok := ix.t.column(ix.columns[0]); ok && (col.KeyIndex == "" || ix.name == "PRIMARY") {
			col.KeyIndex = ix.name
			ix.t.columns[strings.ToLower(ix.columns[0])] = col
		}
	}
	return nil
}

// readForeignKeys reads the foreign keys referring to the mapped tables, in
// the order of the referring table's name and the constraint's.
func readForeignKeys(ctx context.Context, tx *sql.Tx, live *liveSchema, names []tableName, byName map[string]*table) ([]foreignKey, error) {
	where, args := inNames("k.REFERENCED_TABLE_SCHEMA", "k.REFERENCED_TABLE_NAME", names)
	const q = `SELECT k.CONSTRAINT_NAME, k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME,
	k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, rc.DELETE_RULE
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.REFERENTIAL_CONSTRAINTS rc
	ON rc.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND rc.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND rc.TABLE_NAME = k.TABLE_NAME
WHERE `
	rows, err := tx.QueryContext(ctx, q+where+" ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION", args...)
	if err != nil {
		return nil, dbError("reading foreign keys", err)
	}
	defer rows.Close()
	var fks []foreignKey
	for rows.Next() {
		var fk foreignKey
		var col, refCol string
		if err := rows.Scan(&fk.name, &fk.schema, &fk.table, &col, &fk.refSchema, &fk.refTable, &refCol, &fk.onDelete); err != nil {
			return nil, dbError("reading foreign keys", err)
		}
		if _, ok := byName[live.key(fk.refSchema)+"."+live.key(fk.refTable)]; !ok {
			continue // a case variant of a mapped table's name
		}
		if n := len(fks); n > 0 && fks[n-1].name == fk.name && fks[n-1].schema == fk.schema && fks[n-1].table == fk.table {
			fks[n-1].columns = append(fks[n-1].columns, col)
			fks[n-1].refColumns = append(fks[n-1].refColumns, refCol)
			continue
		}
		fk.columns, fk.refColumns = []string{col}, []string{refCol}
		fk.display = fk.table
		if fk.schema != live.database {
			fk.display = fk.schema + "." + fk.table
		}
		fks = append(fks, fk)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("reading foreign keys", err)
	}
	slices.SortStableFunc(fks, func(a, b foreignKey) int {
		return strings.Compare(a.display+"\x00"+a.name, b.display+"\x00"+b.name)
	})
	return fks, nil
}

// Linked reports whether a foreign key of one column links e's child field
// to its parent field: the database then decides which rows refer to which,
// by the columns' collation, and Lethe follows the reference as it does.
func (l *liveSchema) Linked(e *datamap.Edge) bool {
	child, parent := l.tables[e.Child.Name], l.tables[e.Parent.Name]
	if child == nil || parent == nil {
		return false
	}
	for _, fk := range l.foreignKeys {
		if len(fk.columns) == 1 && l.sameTable(child, fk.schema, fk.table) && l.sameTable(parent, fk.refSchema, fk.refTable) &&
			strings.EqualFold(fk.columns[0], e.ChildField) && strings.EqualFold(fk.refColumns[0], e.ParentField) {
			return true
		}
	}
	return false
}

// sameTable reports whether (schema, name) is t, as the server compares names.
func (l *liveSchema) sameTable(t *table, schema, name string) bool {
	return t != nil && l.key(t.schema) == l.key(schema) && l.key(t.name) == l.key(name)
}
