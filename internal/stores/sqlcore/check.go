package sqlcore

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Table is what an engine's introspection found for one mapped table.
type Table struct {
	// Name as messages show it.
	Name string
	// Column looks a column up as the database resolves names.
	Column func(name string) (masking.ColumnInfo, bool)
	// StorageOrdered: the table holds its rows itself, so that a
	// StorageOrderer dialect can sweep them in the order they are stored
	// (PostgreSQL: a plain table without inheritance children, whose ctid
	// names one row).
	StorageOrdered bool
}

// ColumnProblems lists how a collection's existing table differs from the
// map: missing columns, masking strategies that do not fit their column (or
// lack a key), setNull references on NOT NULL columns, and collectionFields
// missing from the parent. parent looks up another collection's table.
func ColumnProblems(m *datamap.Map, c *datamap.Collection, t Table, parent func(*datamap.Collection) (Table, bool), key []byte) []stores.SchemaProblem {
	var out []stores.SchemaProblem
	add := func(field, problem string) {
		out = append(out, stores.SchemaProblem{Collection: c.Name, Field: field, Problem: problem})
	}
	for _, r := range RequiredColumns(c, m) {
		if _, ok := t.Column(r.Name); !ok {
			add(r.Name, fmt.Sprintf("%s %q does not exist in table %s; add the column or correct the data map", r.Role, r.Name, t.Name))
		}
	}
	for _, f := range c.Fields {
		col, ok := t.Column(f.Name)
		if !ok || f.Masking == nil {
			continue
		}
		if err := masking.Check(f.Masking, col); err != nil {
			add(f.Name, err.Error())
		} else if masking.NeedsKey(f.Masking) && len(key) == 0 {
			add(f.Name, fmt.Sprintf("masking %s needs a masking key; set the DataStore's maskingKeySecretRef", f.Masking.Strategy))
		}
	}
	for _, e := range EdgesFrom(c, m) {
		col, ok := t.Column(e.ChildField)
		if e.SetNull && ok && !col.Nullable {
			add(e.ChildField, fmt.Sprintf("onParentErasure setNull clears this column when a %s row is erased, but it is NOT NULL; allow NULL in it or use cascade", e.Parent.Name))
		}
		if pt, ok := parent(e.Parent); ok && e.ParentField != e.Parent.PrimaryKey {
			if _, ok := pt.Column(e.ParentField); !ok {
				add(e.ChildField, fmt.Sprintf("the reference's collectionField %q does not exist in table %s", e.ParentField, pt.Name))
			}
		}
	}
	return out
}

// RequiredColumn is a column the map uses, and the first role it plays.
type RequiredColumn struct{ Name, Role string }

// RequiredColumns lists the columns the map uses in c, each once, with the
// first role it plays: primary key, identity, reference, mapped field.
func RequiredColumns(c *datamap.Collection, m *datamap.Map) []RequiredColumn {
	var out []RequiredColumn
	seen := map[string]bool{}
	add := func(name, role string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, RequiredColumn{name, role})
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
	for _, e := range EdgesFrom(c, m) {
		add(e.ChildField, fmt.Sprintf("reference field (to %s)", e.Parent.Name))
	}
	for _, f := range c.Fields {
		add(f.Name, "mapped field")
	}
	return out
}

// EdgesFrom returns the references c declares, cascade and setNull.
func EdgesFrom(c *datamap.Collection, m *datamap.Map) []*datamap.Edge {
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

// ClearsReference reports whether erasing the child's rows removes its
// reference to the parent: it deletes them, or anonymizes the field to NULL.
func ClearsReference(e *datamap.Edge) bool {
	if e.Child.OnErasure == privacyv1.ErasureDelete {
		return true
	}
	f, ok := e.Child.Field(e.ChildField)
	return e.Child.OnErasure == privacyv1.ErasureAnonymize && ok && f.Masking != nil && f.Masking.Strategy == privacyv1.MaskNullify
}

// OnDelete is a foreign key's referential action on delete.
type OnDelete int

const (
	// OnDeleteBlocks: NO ACTION or RESTRICT; the parent's delete fails.
	OnDeleteBlocks OnDelete = iota
	// OnDeleteCascade deletes the referring rows.
	OnDeleteCascade
	// OnDeleteOther: SET NULL or SET DEFAULT.
	OnDeleteOther
)

// ForeignKey is a foreign key referring to a mapped table.
type ForeignKey struct {
	Name string
	// Table is the referring table, as messages show it.
	Table    string
	Columns  []string
	OnDelete OnDelete
	// RefersTo reports whether the key refers to c's table, as the engine
	// identifies tables.
	RefersTo func(c *datamap.Collection) bool
	// Implements reports whether the key implements e, a reference of the
	// map: it is on e's child table, and e's field is one of its columns.
	Implements func(e *datamap.Edge) bool
}

// ForeignKeyWarnings reports the foreign keys to collections whose rows
// erasure deletes, when the data map does not account for them: undeclared
// ones (erasure fails, or the database cascades into rows no plan counted),
// and declared ones from a collection that keeps its rows (erasure fails).
func ForeignKeyWarnings(m *datamap.Map, fks []ForeignKey) []string {
	var out []string
	for _, fk := range fks {
		for _, parent := range m.Collections {
			if !fk.RefersTo(parent) || parent.OnErasure != privacyv1.ErasureDelete {
				continue
			}
			var declared *datamap.Edge
			for _, e := range append(slices.Clone(parent.Children), parent.Referrers...) {
				if fk.Implements(e) {
					declared = e
					break
				}
			}
			if w := ForeignKeyWarning(fk, parent, declared); w != "" {
				out = append(out, w)
			}
		}
	}
	return out
}

// ForeignKeyWarning explains how fk, referring to parent (whose onErasure is
// delete), makes erasure fail or delete rows no plan counts; "" when it does
// not. edge is the map's reference fk implements, nil when undeclared.
func ForeignKeyWarning(fk ForeignKey, parent *datamap.Collection, edge *datamap.Edge) string {
	blocks := fk.OnDelete == OnDeleteBlocks
	cols := strings.Join(fk.Columns, ", ")
	switch {
	case edge == nil && blocks:
		return fmt.Sprintf("foreign key %s on %s(%s) refers to collection %s, whose onErasure is delete, but the data map does not declare it: erasing a subject who has rows in %s fails; map %s as a collection with a reference to %s",
			fk.Name, fk.Table, cols, parent.Name, fk.Table, fk.Table, parent.Name)
	case edge == nil && fk.OnDelete == OnDeleteCascade:
		return fmt.Sprintf("foreign key %s on %s(%s) refers to collection %s with ON DELETE CASCADE, but the data map does not declare it: erasing a %s row also deletes rows of %s that no plan or receipt counts; map %s as a collection with a reference to %s",
			fk.Name, fk.Table, cols, parent.Name, parent.Name, fk.Table, fk.Table, parent.Name)
	case edge != nil && !edge.SetNull && blocks && !ClearsReference(edge):
		return fmt.Sprintf("collection %s keeps its rows on erasure (onErasure %s) but its foreign key %s to %s, whose onErasure is delete, then blocks the delete: erasing a subject who has rows in %s fails; delete them too, or mask %s with nullify",
			edge.Child.Name, edge.Child.OnErasure, fk.Name, parent.Name, edge.Child.Name, edge.ChildField)
	}
	return ""
}

// SchemaError refuses to act on a schema that drifted from the map.
func SchemaError(problems []stores.SchemaProblem) error {
	texts := make([]string, 0, len(problems))
	for _, p := range problems {
		texts = append(texts, fmt.Sprintf("collection %q field %q: %s", p.Collection, p.Field, p.Problem))
	}
	return fmt.Errorf("%w: the schema does not match the data map: %s", stores.ErrInvalid, strings.Join(texts, "; "))
}
