package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// transactionalEngines can roll a request back; on any other storage engine
// (MyISAM, Aria, MEMORY...) a failure would leave it half done.
var transactionalEngines = []string{"innodb", "rocksdb", "tokudb"}

// Check compares the data map with the live schema. Problems make requests
// refuse to run; warnings are foreign keys that would make some erasures fail
// or delete rows outside the plan. It always reads the schema, and renews
// (or drops) the one requests and sweeps use.
func (s *Store) Check(ctx context.Context) (stores.CheckResult, error) {
	var res stores.CheckResult
	err := s.inTx(ctx, readOnly, func(tx *sql.Tx) error {
		live, err := s.introspect(ctx, tx)
		if err != nil {
			return err
		}
		res = stores.CheckResult{Problems: s.problems(live), Warnings: s.warnings(live)}
		s.schema.Checked(live, res.Problems)
		return nil
	})
	return res, err
}

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
		if col, ok := t.column(f.Name); ok && col.generated && f.Masking != nil {
			out = append(out, stores.SchemaProblem{Collection: c.Name, Field: f.Name,
				Problem: fmt.Sprintf("column %q is generated from other columns and cannot be masked; map and mask the columns it is computed from", col.Name)})
		}
	}
	return out
}

// warnings reports foreign keys to collections whose rows erasure deletes,
// when the data map does not account for them: undeclared ones (erasure fails,
// or InnoDB cascades into rows no plan counted), and declared ones from a
// collection that keeps its rows (erasure fails).
func (s *Store) warnings(live *liveSchema) []string {
	var out []string
	for _, fk := range live.foreignKeys {
		for _, parent := range s.collectionsOfTable(live, fk.refSchema, fk.refTable) {
			if parent.OnErasure != privacyv1.ErasureDelete {
				continue
			}
			core := sqlcore.ForeignKey{Name: fk.name, Table: fk.display, Columns: fk.columns, OnDelete: onDelete(fk.onDelete)}
			if w := sqlcore.ForeignKeyWarning(core, parent, s.declaredEdge(live, fk, parent)); w != "" {
				out = append(out, w)
			}
		}
	}
	return out
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

func (s *Store) collectionsOfTable(live *liveSchema, schema, name string) []*datamap.Collection {
	var out []*datamap.Collection
	for _, c := range s.m.Collections {
		if live.sameTable(live.tables[c.Name], schema, name) {
			out = append(out, c)
		}
	}
	return out
}

// declaredEdge returns the map's reference fk implements, if any.
func (s *Store) declaredEdge(live *liveSchema, fk foreignKey, parent *datamap.Collection) *datamap.Edge {
	for _, e := range append(slices.Clone(parent.Children), parent.Referrers...) {
		if !live.sameTable(live.tables[e.Child.Name], fk.schema, fk.table) {
			continue
		}
		if slices.ContainsFunc(fk.columns, func(col string) bool { return strings.EqualFold(col, e.ChildField) }) {
			return e
		}
	}
	return nil
}

// matchingSchema introspects the schema and refuses to go on when it does not
// match the data map: a request never acts on a schema that drifted.
func (s *Store) matchingSchema(ctx context.Context, tx *sql.Tx) (*liveSchema, error) {
	live, err := s.introspect(ctx, tx)
	if err != nil {
		return nil, err
	}
	if problems := s.problems(live); len(problems) > 0 {
		return nil, sqlcore.SchemaError(problems)
	}
	return live, nil
}

// inTxWithSchema runs fn in a transaction with the live schema: the cached
// one, or one read and checked in that transaction (see sqlcore.SchemaCache).
func (s *Store) inTxWithSchema(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx, *liveSchema) error) error {
	inTx := func(fn func(*sql.Tx) error) error { return s.inTx(ctx, opts, fn) }
	read := func(tx *sql.Tx) (*liveSchema, error) { return s.matchingSchema(ctx, tx) }
	return sqlcore.InTxWithSchema(&s.schema, inTx, read, fn)
}

// readSchema reads and checks the live schema in a transaction of its own.
func (s *Store) readSchema(ctx context.Context) (live *liveSchema, err error) {
	err = s.inTx(ctx, readOnly, func(tx *sql.Tx) error {
		live, err = s.matchingSchema(ctx, tx)
		return err
	})
	return live, err
}
