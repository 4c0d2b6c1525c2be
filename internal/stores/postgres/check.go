package postgres

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Check compares the data map with the live schema. Problems make requests
// refuse to run; warnings are foreign keys that would make some erasures fail
// or delete rows outside the plan.
func (s *Store) Check(ctx context.Context) (stores.CheckResult, error) {
	var res stores.CheckResult
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		live, err := s.introspect(ctx, tx)
		if err != nil {
			return err
		}
		res = stores.CheckResult{Problems: s.problems(live), Warnings: s.warnings(live)}
		return nil
	})
	return res, err
}

// problems lists every difference between the data map and the live schema.
func (s *Store) problems(live *liveSchema) []stores.SchemaProblem {
	var out []stores.SchemaProblem
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
			out = append(out, s.columnProblems(c, t, live)...)
		}
	}
	return out
}

func (s *Store) columnProblems(c *datamap.Collection, t *table, live *liveSchema) []stores.SchemaProblem {
	var out []stores.SchemaProblem
	add := func(field, problem string) {
		out = append(out, stores.SchemaProblem{Collection: c.Name, Field: field, Problem: problem})
	}
	for _, r := range requiredColumns(c, s.m) {
		if _, ok := t.columns[r.name]; !ok {
			add(r.name, fmt.Sprintf("%s %q does not exist in table %s; add the column or correct the data map", r.role, r.name, t.name))
		}
	}
	for _, f := range c.Fields {
		col, ok := t.columns[f.Name]
		if !ok || f.Masking == nil {
			continue
		}
		if err := masking.Check(f.Masking, col.ColumnInfo); err != nil {
			add(f.Name, err.Error())
		} else if masking.NeedsKey(f.Masking) && len(s.key) == 0 {
			add(f.Name, fmt.Sprintf("masking %s needs a masking key; set the DataStore's maskingKeySecretRef", f.Masking.Strategy))
		}
	}
	for _, e := range edgesFrom(c, s.m) {
		col, ok := t.columns[e.ChildField]
		if e.SetNull && ok && !col.Nullable {
			add(e.ChildField, fmt.Sprintf("onParentErasure setNull clears this column when a %s row is erased, but it is NOT NULL; allow NULL in it or use cascade", e.Parent.Name))
		}
		if pt := live.tables[e.Parent.Name]; pt != nil && e.ParentField != e.Parent.PrimaryKey {
			if _, ok := pt.columns[e.ParentField]; !ok {
				add(e.ChildField, fmt.Sprintf("the reference's collectionField %q does not exist in table %s", e.ParentField, pt.name))
			}
		}
	}
	return out
}

type requiredColumn struct{ name, role string }

// requiredColumns lists the columns the map uses in c, each once, with the
// first role it plays: primary key, identity, reference, mapped field.
func requiredColumns(c *datamap.Collection, m *datamap.Map) []requiredColumn {
	var out []requiredColumn
	seen := map[string]bool{}
	add := func(name, role string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, requiredColumn{name, role})
		}
	}
	add(c.PrimaryKey, "primary key column")
	types := make([]string, 0, len(c.Identity))
	for t := range c.Identity {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		add(c.Identity[t], fmt.Sprintf("identity column (identity type %s)", t))
	}
	for _, e := range edgesFrom(c, m) {
		add(e.ChildField, fmt.Sprintf("reference field (to %s)", e.Parent.Name))
	}
	for _, f := range c.Fields {
		add(f.Name, "mapped field")
	}
	return out
}

// edgesFrom returns the references c declares, cascade and setNull.
func edgesFrom(c *datamap.Collection, m *datamap.Map) []*datamap.Edge {
	edges := slices.Clone(c.Parents)
	for _, p := range m.Collections {
		for _, e := range p.Referrers {
			if e.Child == c {
				edges = append(edges, e)
			}
		}
	}
	return edges
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
			edge := s.declaredEdge(live, fk, parent)
			if w := fkWarning(fk, parent, edge); w != "" {
				out = append(out, w)
			}
		}
	}
	return out
}

func fkWarning(fk foreignKey, parent *datamap.Collection, edge *datamap.Edge) string {
	blocks := fk.onDelete == "a" || fk.onDelete == "r"
	cols := strings.Join(fk.columns, ", ")
	switch {
	case edge == nil && blocks:
		return fmt.Sprintf("foreign key %s on %s(%s) refers to collection %s, whose onErasure is delete, but the data map does not declare it: erasing a subject who has rows in %s fails; map %s as a collection with a reference to %s",
			fk.name, fk.table, cols, parent.Name, fk.table, fk.table, parent.Name)
	case edge == nil && fk.onDelete == "c":
		return fmt.Sprintf("foreign key %s on %s(%s) refers to collection %s with ON DELETE CASCADE, but the data map does not declare it: erasing a %s row also deletes rows of %s that no plan or receipt counts; map %s as a collection with a reference to %s",
			fk.name, fk.table, cols, parent.Name, parent.Name, fk.table, fk.table, parent.Name)
	case edge != nil && !edge.SetNull && blocks && !clearsReference(edge):
		return fmt.Sprintf("collection %s keeps its rows on erasure (onErasure %s) but its foreign key %s to %s, whose onErasure is delete, then blocks the delete: erasing a subject who has rows in %s fails; delete them too, or mask %s with nullify",
			edge.Child.Name, edge.Child.OnErasure, fk.name, parent.Name, edge.Child.Name, edge.ChildField)
	}
	return ""
}

// clearsReference reports whether erasing the child's rows removes its
// reference to the parent: it deletes them, or anonymizes the field to NULL.
func clearsReference(e *datamap.Edge) bool {
	if e.Child.OnErasure == privacyv1.ErasureDelete {
		return true
	}
	f, ok := e.Child.Field(e.ChildField)
	return e.Child.OnErasure == privacyv1.ErasureAnonymize && ok && f.Masking != nil && f.Masking.Strategy == privacyv1.MaskNullify
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
