package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Check compares the data map with the live schema. Problems make requests
// refuse to run; warnings are foreign keys that would make some erasures fail
// or delete rows outside the plan. It always reads the schema, and renews
// (or drops) the one requests and sweeps use.
func (s *Store) Check(ctx context.Context) (stores.CheckResult, error) {
	var res stores.CheckResult
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
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

// warnings reports foreign keys to collections whose rows erasure deletes,
// when the data map does not account for them: undeclared ones (erasure fails,
// or PostgreSQL cascades into rows no plan counted), and declared ones from a
// collection that keeps its rows (erasure fails).
func (s *Store) warnings(live *liveSchema) []string {
	var out []string
	for _, fk := range live.foreignKeys {
		for _, parent := range s.collectionsOfTable(live, fk.refOID) {
			if parent.OnErasure != privacyv1.ErasureDelete {
				continue
			}
			core := sqlcore.ForeignKey{Name: fk.name, Table: fk.table, Columns: fk.columns, OnDelete: onDelete(fk.onDelete)}
			if w := sqlcore.ForeignKeyWarning(core, parent, s.declaredEdge(live, fk, parent)); w != "" {
				out = append(out, w)
			}
		}
	}
	return out
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

func (s *Store) collectionsOfTable(live *liveSchema, oid uint32) []*datamap.Collection {
	var out []*datamap.Collection
	for _, c := range s.m.Collections {
		if t := live.tables[c.Name]; t != nil && t.oid == oid {
			out = append(out, c)
		}
	}
	return out
}

// declaredEdge returns the map's reference that fk implements, if any.
func (s *Store) declaredEdge(live *liveSchema, fk foreignKey, parent *datamap.Collection) *datamap.Edge {
	for _, e := range append(slices.Clone(parent.Children), parent.Referrers...) {
		t := live.tables[e.Child.Name]
		if t != nil && t.oid == fk.tableOID && slices.Contains(fk.columns, e.ChildField) {
			return e
		}
	}
	return nil
}
