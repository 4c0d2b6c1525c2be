// Package scaffold introspects a live PostgreSQL or MySQL/MariaDB database
// and drafts a DataStore from it: one collection per table, references from
// foreign keys, identity columns, and a category and masking strategy per
// column guessed from its name, type and constraints, and optionally from
// counts of sampled values matching patterns. It is the engine of
// kubectl lethe scaffold (docs/scaffold.md).
//
// Sampled values are personal data: they are matched against patterns as
// they are read and dropped; only the counts of matches are kept. No value
// is ever returned, printed, logged or stored.
package scaffold

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the mysql driver
	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
)

// Column is one live column.
type Column struct {
	// Info is what the masking checks see: kind, nullability, uniqueness
	// (part of any unique index, as the store checks it), length.
	masking.ColumnInfo
	// UniqueAlone: a unique index or the primary key is on this column alone.
	UniqueAlone bool
	// Generated: computed from other columns, cannot be written.
	Generated bool
}

// ForeignKey is a foreign key of a table.
type ForeignKey struct {
	Name                string
	Columns             []string
	RefSchema, RefTable string
	RefColumns          []string
	// OnDelete is the rule: CASCADE, SET NULL, SET DEFAULT, RESTRICT or NO ACTION.
	OnDelete string
}

// Table is one live table.
type Table struct {
	Schema, Name string
	Columns      []Column
	PrimaryKey   []string
	ForeignKeys  []ForeignKey
	// Unmappable says why Lethe cannot act on the table ("" when it can).
	Unmappable string
}

// Column looks a column up by name.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Schema is what introspection found.
type Schema struct {
	Engine privacyv1.Engine
	// Database is the connection's database.
	Database string
	// DefaultSchema is where unqualified table names resolve (PostgreSQL's
	// current_schema(), MySQL's current database); tables elsewhere get a
	// qualified table name.
	DefaultSchema string
	Tables        []*Table
}

// Find looks a table up.
func (s *Schema) Find(schema, name string) *Table {
	for _, t := range s.Tables {
		if t.Schema == schema && t.Name == name {
			return t
		}
	}
	return nil
}

// DB is an open connection to the database being scaffolded.
type DB struct {
	engine privacyv1.Engine
	db     *sql.DB
}

// Open connects to the database. dsn is a PostgreSQL URL or keyword string,
// or a go-sql-driver DSN. Errors never carry the DSN.
func Open(ctx context.Context, engine privacyv1.Engine, dsn string) (*DB, error) {
	var driver string
	switch engine {
	case privacyv1.EnginePostgres:
		driver = "pgx"
	case privacyv1.EngineMySQL:
		driver = "mysql"
	default:
		return nil, fmt.Errorf("engine %q: scaffold supports postgres and mysql", engine)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("the DSN is not a valid %s connection string", engine)
	}
	db.SetMaxOpenConns(1)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	return &DB{engine: engine, db: db}, nil
}

// Close closes the connection.
func (d *DB) Close() error { return d.db.Close() }

// Introspect reads the tables of the schemas (PostgreSQL schemas, MySQL
// databases); none: the connection's current one.
func (d *DB) Introspect(ctx context.Context, schemas []string) (*Schema, error) {
	if d.engine == privacyv1.EnginePostgres {
		return introspectPostgres(ctx, d.db, schemas)
	}
	return introspectMySQL(ctx, d.db, schemas)
}

// quote quotes an identifier for the engine.
func (d *DB) quote(name string) string {
	if d.engine == privacyv1.EngineMySQL {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Sample reads up to n non-NULL values of a text column and calls match
// with each; the value is not kept by Sample. It returns how many values
// were read.
func (d *DB) Sample(ctx context.Context, t *Table, column string, n int, match func(string)) (int, error) {
	placeholder := "$1"
	if d.engine == privacyv1.EngineMySQL {
		placeholder = "?"
	}
	col := d.quote(column)
	q := fmt.Sprintf("SELECT %s FROM %s.%s WHERE %s IS NOT NULL LIMIT %s", col, d.quote(t.Schema), d.quote(t.Name), col, placeholder)
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := d.db.QueryContext(qctx, q, n)
	if err != nil {
		return 0, fmt.Errorf("sampling %s.%s(%s): %w", t.Schema, t.Name, column, err)
	}
	defer rows.Close()
	read := 0
	for rows.Next() {
		var v sql.RawBytes
		if err := rows.Scan(&v); err != nil {
			return read, fmt.Errorf("sampling %s.%s(%s): cannot read a value as text", t.Schema, t.Name, column)
		}
		match(string(v))
		read++
	}
	if err := rows.Err(); err != nil {
		return read, fmt.Errorf("sampling %s.%s(%s): %w", t.Schema, t.Name, column, err)
	}
	return read, nil
}
