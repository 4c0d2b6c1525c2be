package scaffold

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
)

// transactional storage engines: Lethe refuses the others (internal/stores/mysql).
var transactionalEngines = []string{"innodb", "rocksdb", "tokudb"}

// introspectMySQL reads the base tables of the databases from
// information_schema.
func introspectMySQL(ctx context.Context, db *sql.DB, schemas []string) (*Schema, error) {
	s := &Schema{Engine: privacyv1.EngineMySQL}
	var current sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&current); err != nil {
		return nil, fmt.Errorf("reading the current database: %w", err)
	}
	s.Database, s.DefaultSchema = current.String, current.String
	if len(schemas) == 0 {
		if s.DefaultSchema == "" {
			return nil, fmt.Errorf("the DSN names no database: add one to it or name one with --schema")
		}
		schemas = []string{s.DefaultSchema}
	}
	in, args := mysqlIn(schemas)
	rows, err := db.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(ENGINE, '') FROM information_schema.TABLES WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND TABLE_SCHEMA IN ("+in+") ORDER BY TABLE_SCHEMA, TABLE_NAME", args...)
	if err != nil {
		return nil, fmt.Errorf("reading the tables: %w", err)
	}
	byName := map[string]*Table{}
	for rows.Next() {
		t := &Table{}
		var engine string
		if err := rows.Scan(&t.Schema, &t.Name, &engine); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the tables: %w", err)
		}
		if !slices.Contains(transactionalEngines, strings.ToLower(engine)) {
			t.Unmappable = fmt.Sprintf("storage engine %s cannot roll back; convert it to InnoDB first", engine)
		}
		byName[t.Schema+"."+t.Name] = t
		s.Tables = append(s.Tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the tables: %w", err)
	}
	// Order by the order of --schema.
	slices.SortStableFunc(s.Tables, func(a, b *Table) int {
		return slices.Index(schemas, a.Schema) - slices.Index(schemas, b.Schema)
	})
	if err := mysqlColumns(ctx, db, in, args, byName); err != nil {
		return nil, err
	}
	if err := mysqlForeignKeys(ctx, db, in, args, byName); err != nil {
		return nil, err
	}
	return s, nil
}

func mysqlIn(schemas []string) (string, []any) {
	args := make([]any, len(schemas))
	for i, s := range schemas {
		args[i] = s
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(schemas)), ", "), args
}

func mysqlColumns(ctx context.Context, db *sql.DB, in string, args []any, byName map[string]*Table) error {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE = 'YES',
	COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0),
	COALESCE(GENERATION_EXPRESSION, '') <> ''
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (`+in+`) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`, args...)
	if err != nil {
		return fmt.Errorf("reading the columns: %w", err)
	}
	for rows.Next() {
		var schema, table, dataType string
		var maxLength, precision, scale int64
		var c Column
		if err := rows.Scan(&schema, &table, &c.Name, &dataType, &c.Type, &c.Nullable, &maxLength, &precision, &scale, &c.Generated); err != nil {
			rows.Close()
			return fmt.Errorf("reading the columns: %w", err)
		}
		t := byName[schema+"."+table]
		if t == nil {
			continue // a view
		}
		info := masking.MySQLColumnInfo(dataType, maxLength, precision, scale)
		c.Kind, c.MaxLength, c.IntDigits = info.Kind, info.MaxLength, info.IntDigits
		t.Columns = append(t.Columns, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the columns: %w", err)
	}
	// Unique indexes (the primary key included): which columns they cover,
	// and which cover one column alone.
	rows, err = db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME
FROM information_schema.STATISTICS WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA IN (`+in+`)
ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`, args...)
	if err != nil {
		return fmt.Errorf("reading the unique indexes: %w", err)
	}
	type index struct {
		t    *Table
		name string
		cols []string
	}
	var indexes []*index
	for rows.Next() {
		var schema, table, name, col string
		if err := rows.Scan(&schema, &table, &name, &col); err != nil {
			rows.Close()
			return fmt.Errorf("reading the unique indexes: %w", err)
		}
		t := byName[schema+"."+table]
		if t == nil {
			continue
		}
		if n := len(indexes); n > 0 && indexes[n-1].t == t && indexes[n-1].name == name {
			indexes[n-1].cols = append(indexes[n-1].cols, col)
		} else {
			indexes = append(indexes, &index{t: t, name: name, cols: []string{col}})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the unique indexes: %w", err)
	}
	for _, ix := range indexes {
		for i := range ix.t.Columns {
			c := &ix.t.Columns[i]
			if slices.ContainsFunc(ix.cols, func(n string) bool { return strings.EqualFold(n, c.Name) }) {
				c.Unique = true
				if len(ix.cols) == 1 {
					c.UniqueAlone = true
				}
			}
		}
		if ix.name == "PRIMARY" {
			ix.t.PrimaryKey = ix.cols
		}
	}
	return nil
}

func mysqlForeignKeys(ctx context.Context, db *sql.DB, in string, args []any, byName map[string]*Table) error {
	rows, err := db.QueryContext(ctx, `SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME,
	k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, rc.DELETE_RULE
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.REFERENTIAL_CONSTRAINTS rc
	ON rc.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND rc.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND rc.TABLE_NAME = k.TABLE_NAME
WHERE k.REFERENCED_TABLE_NAME IS NOT NULL AND k.TABLE_SCHEMA IN (`+in+`)
ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`, args...)
	if err != nil {
		return fmt.Errorf("reading the foreign keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, table, name, col, refSchema, refTable, refCol, rule string
		if err := rows.Scan(&schema, &table, &name, &col, &refSchema, &refTable, &refCol, &rule); err != nil {
			return fmt.Errorf("reading the foreign keys: %w", err)
		}
		t := byName[schema+"."+table]
		if t == nil {
			continue
		}
		if n := len(t.ForeignKeys); n > 0 && t.ForeignKeys[n-1].Name == name {
			fk := &t.ForeignKeys[n-1]
			fk.Columns, fk.RefColumns = append(fk.Columns, col), append(fk.RefColumns, refCol)
			continue
		}
		t.ForeignKeys = append(t.ForeignKeys, ForeignKey{Name: name, Columns: []string{col}, RefSchema: refSchema, RefTable: refTable, RefColumns: []string{refCol}, OnDelete: rule})
	}
	return rows.Err()
}
