package postgres

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

var _ sqlcore.UnmappedEngine[liveSchema, pgx.Tx] = engine{}

// UnmappedTables returns the mapped tables of live and the tables a foreign
// key links to them (either way; partitions are their partitioned table)
// that no collection maps, for sqlcore.UnmappedColumns. The mapped tables'
// columns are those the check read; one catalog query finds the linked
// tables, their names and key columns, and readColumns (the check's own)
// reads their columns. No row is read.
func (e engine) UnmappedTables(ctx context.Context, tx pgx.Tx, live *liveSchema) ([]sqlcore.UnmappedTable, error) {
	var oids []uint32
	mapped := map[uint32]*table{}
	collections := map[uint32][]*datamap.Collection{}
	for _, c := range e.s.m.Collections {
		t := live.tables[c.Name]
		if t == nil {
			continue
		}
		if mapped[t.oid] == nil {
			oids = append(oids, t.oid)
			mapped[t.oid] = t
		}
		collections[t.oid] = append(collections[t.oid], c)
	}
	if len(oids) == 0 {
		return nil, nil
	}
	const q = `WITH links AS (
	SELECT con.conrelid AS child, con.confrelid AS parent, con.conkey
	FROM pg_constraint con
	WHERE con.contype = 'f' AND con.conparentid = 0
		AND (con.conrelid = ANY ($1::oid[]) OR con.confrelid = ANY ($1::oid[]))
)
SELECT c.oid, c.relname::text,
	CASE WHEN pg_table_is_visible(c.oid) THEN c.relname::text ELSE n.nspname::text || '.' || c.relname::text END,
	ARRAY(SELECT DISTINCT a.attname::text FROM links l CROSS JOIN LATERAL unnest(l.conkey) AS k(attnum)
		JOIN pg_attribute a ON a.attrelid = l.child AND a.attnum = k.attnum
		WHERE l.child = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY ($1::oid[])
	OR (c.oid IN (SELECT child FROM links UNION SELECT parent FROM links)
		AND c.relkind IN ('r', 'p') AND NOT c.relispartition)
ORDER BY 3`
	rows, err := tx.Query(ctx, q, oids)
	if err != nil {
		return nil, dbError("reading the tables linked to the mapped ones", err)
	}
	type found struct {
		t  *table
		ut sqlcore.UnmappedTable
	}
	var (
		all          []found
		linked       []uint32
		linkedTables = map[uint32][]*table{}
		oid          uint32
		bare, name   string
		keys         []string
	)
	_, err = pgx.ForEachRow(rows, []any{&oid, &bare, &name, &keys}, func() error {
		t := mapped[oid]
		if t == nil {
			t = &table{oid: oid, name: name, columns: map[string]column{}}
			linked = append(linked, oid)
			linkedTables[oid] = []*table{t}
		}
		all = append(all, found{t, sqlcore.UnmappedTable{Name: name, Bare: bare, Collections: collections[oid], Keys: slices.Clone(keys)}})
		return nil
	})
	if err != nil {
		return nil, dbError("reading the tables linked to the mapped ones", err)
	}
	if len(linked) > 0 {
		if err := readColumns(ctx, tx, linked, linkedTables); err != nil {
			return nil, err
		}
	}
	out := make([]sqlcore.UnmappedTable, len(all))
	for i, f := range all {
		out[i] = f.ut
		for _, col := range f.t.columns {
			out[i].Columns = append(out[i].Columns, col)
		}
	}
	return out, nil
}
