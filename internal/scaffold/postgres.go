package scaffold

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
)

// introspectPostgres reads ordinary and partitioned tables (not partitions)
// of the schemas, their columns, primary keys, unique indexes and foreign keys.
func introspectPostgres(ctx context.Context, db *sql.DB, schemas []string) (*Schema, error) {
	s := &Schema{Engine: privacyv1.EnginePostgres}
	var current sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT current_database(), current_schema()").Scan(&s.Database, &current); err != nil {
		return nil, fmt.Errorf("reading the current database: %w", err)
	}
	s.DefaultSchema = current.String
	if len(schemas) == 0 {
		if s.DefaultSchema == "" {
			return nil, fmt.Errorf("no schema on the search_path: name one with --schema")
		}
		schemas = []string{s.DefaultSchema}
	}
	list := "{" + pgArray(schemas) + "}"
	byOID := map[uint32]*Table{}
	rows, err := db.QueryContext(ctx, `SELECT c.oid, n.nspname::text, c.relname::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY ($1::text[])
ORDER BY array_position($1::text[], n.nspname::text), c.relname`, list)
	if err != nil {
		return nil, fmt.Errorf("reading the tables: %w", err)
	}
	var oids []string
	for rows.Next() {
		var oid uint32
		t := &Table{}
		if err := rows.Scan(&oid, &t.Schema, &t.Name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the tables: %w", err)
		}
		byOID[oid] = t
		s.Tables = append(s.Tables, t)
		oids = append(oids, fmt.Sprint(oid))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the tables: %w", err)
	}
	for _, sc := range schemas {
		found := false
		for _, t := range s.Tables {
			found = found || t.Schema == sc
		}
		if !found {
			var exists bool
			if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", sc).Scan(&exists); err == nil && !exists {
				return nil, fmt.Errorf("schema %q does not exist", sc)
			}
		}
	}
	if len(oids) == 0 {
		return s, nil
	}
	oidList := "{" + strings.Join(oids, ",") + "}"
	if err := pgColumns(ctx, db, oidList, byOID); err != nil {
		return nil, err
	}
	if err := pgForeignKeys(ctx, db, oidList, byOID); err != nil {
		return nil, err
	}
	return s, nil
}

func pgArray(items []string) string {
	quoted := make([]string, len(items))
	for i, it := range items {
		quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(it) + `"`
	}
	return strings.Join(quoted, ",")
}

// pgColumns reads the columns (domains resolved to their base type, as the
// store does), which are unique (a key column of any unique index), which
// are unique alone, and the primary keys.
func pgColumns(ctx context.Context, db *sql.DB, oids string, byOID map[uint32]*Table) error {
	rows, err := db.QueryContext(ctx, `SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod),
	bt.typname::text,
	CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
	NOT (a.attnotnull OR t.typnotnull),
	EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique
		AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])),
	EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indpred IS NULL
		AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum),
	EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
		AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])),
	a.attgenerated <> ''
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return fmt.Errorf("reading the columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			oid                  uint32
			name, typ, base      string
			typmod               int32
			nullable, unique     bool
			uniqueAlone, primary bool
			generated            bool
		)
		if err := rows.Scan(&oid, &name, &typ, &base, &typmod, &nullable, &unique, &uniqueAlone, &primary, &generated); err != nil {
			return fmt.Errorf("reading the columns: %w", err)
		}
		t := byOID[oid]
		info := masking.PostgresColumnInfo(base, typmod)
		info.Name, info.Type, info.Nullable, info.Unique = name, typ, nullable, unique
		t.Columns = append(t.Columns, Column{ColumnInfo: info, UniqueAlone: uniqueAlone, Generated: generated})
		if primary {
			t.PrimaryKey = append(t.PrimaryKey, name)
		}
	}
	return rows.Err()
}

// pgForeignKeys reads the foreign keys of the tables, with their columns
// in order and ON DELETE rule.
func pgForeignKeys(ctx context.Context, db *sql.DB, oids string, byOID map[uint32]*Table) error {
	rows, err := db.QueryContext(ctx, `SELECT con.conrelid, con.conname::text, rn.nspname::text, rc.relname::text, con.confdeltype::text,
	array_to_string(ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord), chr(1)),
	array_to_string(ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord), chr(1))
FROM pg_constraint con
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND con.conrelid = ANY ($1::oid[]) AND con.conparentid = 0
ORDER BY con.conrelid, con.conname`, oids)
	if err != nil {
		return fmt.Errorf("reading the foreign keys: %w", err)
	}
	defer rows.Close()
	rules := map[string]string{"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
	for rows.Next() {
		var oid uint32
		var fk ForeignKey
		var rule, cols, refCols string
		if err := rows.Scan(&oid, &fk.Name, &fk.RefSchema, &fk.RefTable, &rule, &cols, &refCols); err != nil {
			return fmt.Errorf("reading the foreign keys: %w", err)
		}
		fk.OnDelete = rules[rule]
		fk.Columns, fk.RefColumns = strings.Split(cols, "\x01"), strings.Split(refCols, "\x01")
		byOID[oid].ForeignKeys = append(byOID[oid].ForeignKeys, fk)
	}
	return rows.Err()
}
