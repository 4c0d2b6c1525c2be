package postgres

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// liveSchema is what the database says about the mapped tables.
type liveSchema struct {
	// tables by collection name; no entry when the table does not exist.
	tables map[string]*table
	// foreignKeys referring to a mapped table.
	foreignKeys []foreignKey
}

type table struct {
	oid  uint32
	name string // as PostgreSQL prints it, for messages
	kind string // pg_class.relkind
	// inherited: the table has inheritance children (or had: the flag is
	// cleared lazily), whose rows a statement on it reaches too.
	inherited bool
	columns   map[string]column
}

// column is a live column; its CastType is what text is cast to.
type column = sqlcore.Column

type foreignKey struct {
	name     string
	table    string // referencing table, as PostgreSQL prints it
	tableOID uint32
	columns  []string
	refOID   uint32
	onDelete string // pg_constraint.confdeltype (see onDelete)
}

var _ sqlcore.Schema = (*liveSchema)(nil)

func (l *liveSchema) column(c *datamap.Collection, name string) column {
	return l.tables[c.Name].columns[name]
}

// Column is c's column name (names are exact: the map's are quoted).
func (l *liveSchema) Column(c *datamap.Collection, name string) sqlcore.Column {
	return l.column(c, name)
}

// Table is c's table as the shared checks see it.
func (l *liveSchema) Table(c *datamap.Collection) sqlcore.Table {
	return l.tables[c.Name].sqlcoreTable()
}

// introspect reads the mapped tables, their columns and the foreign keys
// referring to them. Table names resolve as the statements will (search_path).
func (s *Store) introspect(ctx context.Context, tx pgx.Tx) (*liveSchema, error) {
	live := &liveSchema{tables: map[string]*table{}}
	if err := s.readTables(ctx, tx, live); err != nil {
		return nil, err
	}
	var oids []uint32
	byOID := map[uint32][]*table{}
	for _, t := range live.tables {
		if byOID[t.oid] == nil {
			oids = append(oids, t.oid)
		}
		byOID[t.oid] = append(byOID[t.oid], t)
	}
	if err := readColumns(ctx, tx, oids, byOID); err != nil {
		return nil, err
	}
	fks, err := readForeignKeys(ctx, tx, oids)
	live.foreignKeys = fks
	return live, err
}

func (s *Store) readTables(ctx context.Context, tx pgx.Tx, live *liveSchema) error {
	var names, refs []string
	for _, c := range s.m.Collections {
		names = append(names, c.Name)
		refs = append(refs, tableRef(c))
	}
	const q = `SELECT x.collection, c.oid, c.oid::regclass::text, c.relkind::text, c.relhassubclass
FROM unnest($1::text[], $2::text[]) AS x(collection, ref)
JOIN pg_class c ON c.oid = to_regclass(x.ref)`
	rows, err := tx.Query(ctx, q, names, refs)
	if err != nil {
		return dbError("reading the mapped tables", err)
	}
	var name string
	var t table
	_, err = pgx.ForEachRow(rows, []any{&name, &t.oid, &t.name, &t.kind, &t.inherited}, func() error {
		live.tables[name] = &table{oid: t.oid, name: t.name, kind: t.kind, inherited: t.inherited, columns: map[string]column{}}
		return nil
	})
	if err != nil {
		return dbError("reading the mapped tables", err)
	}
	return nil
}

// readColumns reads every column of the tables, resolving domains to their
// base type; a column is unique when it is a key column of any unique index
// (primary keys included).
func readColumns(ctx context.Context, tx pgx.Tx, oids []uint32, byOID map[uint32][]*table) error {
	const q = `SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),
	quote_ident(tn.nspname) || '.' || quote_ident(t.typname),
	bt.typname::text,
	CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
	NOT (a.attnotnull OR t.typnotnull),
	EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique
		AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]))
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_namespace tn ON tn.oid = t.typnamespace
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`
	rows, err := tx.Query(ctx, q, oids)
	if err != nil {
		return dbError("reading the mapped columns", err)
	}
	var (
		oid                     uint32
		name, sqlType, castType string
		baseType                string
		typmod                  int32
		nullable, unique        bool
	)
	_, err = pgx.ForEachRow(rows, []any{&oid, &name, &sqlType, &castType, &baseType, &typmod, &nullable, &unique}, func() error {
		info := masking.PostgresColumnInfo(baseType, typmod)
		info.Name, info.Type, info.Nullable, info.Unique = name, sqlType, nullable, unique
		for _, t := range byOID[oid] {
			t.columns[name] = column{ColumnInfo: info, CastType: castType}
		}
		return nil
	})
	if err != nil {
		return dbError("reading the mapped columns", err)
	}
	return nil
}

func readForeignKeys(ctx context.Context, tx pgx.Tx, oids []uint32) ([]foreignKey, error) {
	const q = `SELECT con.conname::text, con.conrelid, con.conrelid::regclass::text, con.confrelid, con.confdeltype::text,
	ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_constraint con
WHERE con.contype = 'f' AND con.confrelid = ANY ($1::oid[])
ORDER BY 3, 1`
	rows, err := tx.Query(ctx, q, oids)
	if err != nil {
		return nil, dbError("reading foreign keys", err)
	}
	var fks []foreignKey
	var fk foreignKey
	_, err = pgx.ForEachRow(rows, []any{&fk.name, &fk.tableOID, &fk.table, &fk.refOID, &fk.onDelete, &fk.columns}, func() error {
		scanned := fk
		scanned.columns = slices.Clone(fk.columns) // the scan target is reused for every row
		fks = append(fks, scanned)
		return nil
	})
	if err != nil {
		return nil, dbError("reading foreign keys", err)
	}
	return fks, nil
}

// sqlcoreTable is t as the shared checks see it.
func (t *table) sqlcoreTable() sqlcore.Table {
	return sqlcore.Table{Name: t.name, Column: func(name string) (masking.ColumnInfo, bool) {
		col, ok := t.columns[name]
		return col.ColumnInfo, ok
	}, StorageOrdered: t.kind == "r" && !t.inherited}
}
