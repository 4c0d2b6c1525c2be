// Package datamap is the store-independent model of a DataStore's data map: a
// graph of collections reached from identity columns through references, with
// categories, erasure actions and a traversal order. Engines plan and apply
// against it; they never read the API types directly.
package datamap

import (
	"fmt"
	"sort"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Field is one mapped column.
type Field struct {
	Name     string
	Category string
	Masking  *privacyv1.Masking
}

// Edge is a reference from a child collection's field to a parent collection's field.
type Edge struct {
	Child       *Collection
	ChildField  string
	Parent      *Collection
	ParentField string
	// SetNull edges do not carry ownership: the child's rows belong to others and
	// only ChildField is cleared when a parent row is deleted.
	SetNull bool
}

// Collection is one table, key pattern or endpoint of the map.
type Collection struct {
	Name         string
	Table        string // SQL table, possibly schema-qualified; empty for other engines
	KeyPattern   string // redis only
	PrimaryKey   string
	Identity     map[string]string // identity type -> column
	Fields       []Field
	OnErasure    privacyv1.ErasureAction
	RetainReason string
	// ErasureBatchSize > 0: an erasure deletes the subject's rows here in
	// batches of this many, each its own transaction (SQL engines).
	ErasureBatchSize int

	// Parents are the ownership edges this collection's rows are reached through.
	Parents []*Edge
	// Children are the ownership edges to collections whose rows belong to this one's.
	Children []*Edge
	// Referrers are setNull edges pointing at this collection.
	Referrers []*Edge
	// Clears are this collection's own setNull references, to the parents
	// whose erasure clears them.
	Clears []*Edge
}

// Leaf reports whether nothing is found through c's rows and no setNull
// reference links them: no children, no referrers, no references cleared.
// Its rows can be acted on without knowing their keys.
func (c *Collection) Leaf() bool {
	return len(c.Children) == 0 && len(c.Referrers) == 0 && len(c.Clears) == 0
}

// Field returns the mapped field named name.
func (c *Collection) Field(name string) (Field, bool) {
	for _, f := range c.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// IdentityColumns returns the identity columns for the identity types present in
// the subject, sorted by identity type so generated statements are stable.
func (c *Collection) IdentityColumns(subject map[string]string) (types []string, columns []string) {
	for t := range c.Identity {
		if _, ok := subject[t]; ok {
			types = append(types, t)
		}
	}
	sort.Strings(types)
	for _, t := range types {
		columns = append(columns, c.Identity[t])
	}
	return types, columns
}

// Map is a validated data map.
type Map struct {
	// Collections in traversal order: every parent before its children.
	// Erasure applies in reverse (children before parents).
	Collections []*Collection
	byName      map[string]*Collection
}

// Below lists, in traversal order, the collections below name: its children
// through ownership references and theirs, and the collections whose setNull
// references point at any of them (their rows only lose the link). name
// itself is not listed; an unknown name (or a nil map) has none.
func (m *Map) Below(name string) []string {
	if m == nil {
		return nil
	}
	root, ok := m.Get(name)
	if !ok {
		return nil
	}
	seen := map[*Collection]bool{root: true}
	below := map[string]bool{}
	queue := []*Collection{root}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		for _, e := range c.Referrers {
			below[e.Child.Name] = true
		}
		for _, e := range c.Children {
			below[e.Child.Name] = true
			if !seen[e.Child] {
				seen[e.Child] = true
				queue = append(queue, e.Child)
			}
		}
	}
	delete(below, name)
	var out []string
	for _, c := range m.Collections {
		if below[c.Name] {
			out = append(out, c.Name)
		}
	}
	return out
}

// Get returns the collection named name.
func (m *Map) Get(name string) (*Collection, bool) {
	c, ok := m.byName[name]
	return c, ok
}

// Index is the position of the collection named name in the traversal
// order; -1 when there is none.
func (m *Map) Index(name string) int {
	for i, c := range m.Collections {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Error lists every problem found in a data map.
type Error struct{ Problems []string }

func (e *Error) Error() string { return "invalid data map: " + strings.Join(e.Problems, "; ") }

// Build validates a DataStore spec and returns its data map. It reports unknown
// collections in references, ownership cycles, collections unreachable from any
// identity, and SQL collections without a primary key, all at once.
func Build(spec privacyv1.DataStoreSpec) (*Map, error) {
	m := &Map{byName: map[string]*Collection{}}
	var problems []string
	sqlEngine := spec.Engine == privacyv1.EnginePostgres || spec.Engine == privacyv1.EngineMySQL
	var all []*Collection
	for _, sc := range spec.Collections {
		name := string(sc.Name)
		if _, dup := m.byName[name]; dup {
			problems = append(problems, fmt.Sprintf("collection %q is declared twice", name))
			continue
		}
		c := &Collection{
			Name:             name,
			KeyPattern:       sc.KeyPattern,
			PrimaryKey:       string(sc.PrimaryKey),
			Identity:         map[string]string{},
			OnErasure:        sc.OnErasure,
			RetainReason:     sc.RetainReason,
			ErasureBatchSize: int(sc.ErasureBatchSize),
		}
		if c.OnErasure == "" {
			c.OnErasure = privacyv1.ErasureDelete
		}
		if spec.Engine == privacyv1.EngineMongoDB && c.PrimaryKey == "" {
			c.PrimaryKey = "_id" // every MongoDB document has one
		}
		if sqlEngine {
			c.Table = sc.Table
			if c.Table == "" {
				c.Table = name
			}
			if c.PrimaryKey == "" {
				problems = append(problems, fmt.Sprintf("collection %q has no primaryKey", name))
			}
		}
		for t, col := range sc.Identity {
			c.Identity[t] = string(col)
		}
		seen := map[string]bool{}
		for _, f := range sc.Fields {
			if seen[string(f.Name)] {
				problems = append(problems, fmt.Sprintf("collection %q maps field %q twice", name, f.Name))
			}
			seen[string(f.Name)] = true
			c.Fields = append(c.Fields, Field{Name: string(f.Name), Category: string(f.Category), Masking: f.Masking})
		}
		m.byName[name] = c
		all = append(all, c)
	}
	for _, sc := range spec.Collections {
		child := m.byName[string(sc.Name)]
		for _, r := range sc.References {
			parent, ok := m.byName[string(r.Collection)]
			if !ok {
				problems = append(problems, fmt.Sprintf("collection %q refers to unknown collection %q", sc.Name, r.Collection))
				continue
			}
			pf := string(r.CollectionField)
			if pf == "" {
				pf = parent.PrimaryKey
			}
			if pf == "" {
				problems = append(problems, fmt.Sprintf("collection %q refers to %q, which has no primaryKey; set collectionField", sc.Name, r.Collection))
				continue
			}
			e := &Edge{Child: child, ChildField: string(r.Field), Parent: parent, ParentField: pf, SetNull: r.OnParentErasure == privacyv1.ParentSetNull}
			if e.SetNull {
				parent.Referrers = append(parent.Referrers, e)
				child.Clears = append(child.Clears, e)
				continue
			}
			if parent == child {
				problems = append(problems, fmt.Sprintf("collection %q refers to itself with onParentErasure cascade; use setNull", sc.Name))
				continue
			}
			child.Parents = append(child.Parents, e)
			parent.Children = append(parent.Children, e)
		}
	}
	order, cycle := topoOrder(all)
	if cycle != nil {
		problems = append(problems, fmt.Sprintf("references form a cycle: %s", strings.Join(cycle, " -> ")))
	}
	for _, c := range all {
		if c.ErasureBatchSize > 0 {
			switch {
			case !sqlEngine:
				problems = append(problems, fmt.Sprintf("collection %q: erasureBatchSize is for the postgres and mysql engines", c.Name))
			case c.OnErasure != privacyv1.ErasureDelete:
				problems = append(problems, fmt.Sprintf("collection %q: erasureBatchSize needs onErasure delete", c.Name))
			case !c.Leaf():
				problems = append(problems, fmt.Sprintf("collection %q: erasureBatchSize needs a collection no other refers to and with no setNull reference: batches delete rows without listing them", c.Name))
			}
		}
		if !reachable(c, map[*Collection]bool{}) {
			problems = append(problems, fmt.Sprintf("collection %q is unreachable: it maps no identity and refers to no collection that does", c.Name))
		}
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	m.Collections = order
	return m, nil
}

// reachable reports whether c maps an identity or has an ancestor that does.
func reachable(c *Collection, visiting map[*Collection]bool) bool {
	if len(c.Identity) > 0 {
		return true
	}
	if visiting[c] {
		return false
	}
	visiting[c] = true
	for _, e := range c.Parents {
		if reachable(e.Parent, visiting) {
			return true
		}
	}
	return false
}

// topoOrder orders collections parents first (Kahn's algorithm, ties by
// declaration order). On a cycle it returns the collections on it.
func topoOrder(all []*Collection) ([]*Collection, []string) {
	indeg := map[*Collection]int{}
	for _, c := range all {
		indeg[c] = len(c.Parents)
	}
	var order []*Collection
	done := map[*Collection]bool{}
	for len(order) < len(all) {
		progressed := false
		for _, c := range all {
			if done[c] || indeg[c] > 0 {
				continue
			}
			done[c] = true
			order = append(order, c)
			progressed = true
			for _, e := range c.Children {
				indeg[e.Child]--
			}
		}
		if !progressed {
			var cycle []string
			for _, c := range all {
				if !done[c] {
					cycle = append(cycle, c.Name)
				}
			}
			return nil, cycle
		}
	}
	return order, nil
}

// CategoryCovers reports whether scope covers category: equal, or a dotted prefix.
func CategoryCovers(scope, category string) bool {
	return scope == category || strings.HasPrefix(category, scope+".")
}

// Scope decides which categories a request acts on.
type Scope struct {
	// Categories named by the request; empty means every category but customer.content.
	Categories []string
}

// Covers reports whether the scope includes category.
func (s Scope) Covers(category string) bool {
	if len(s.Categories) == 0 {
		return !CategoryCovers(string(privacyv1.CategoryCustomerContent), category)
	}
	for _, sc := range s.Categories {
		if CategoryCovers(sc, category) {
			return true
		}
	}
	return false
}

// InScope reports whether a collection is acted on: some mapped field is in
// scope. A collection without mapped fields is in scope unless the request
// names categories (its rows are the subject's, whatever they hold).
func (s Scope) InScope(c *Collection) bool {
	if len(c.Fields) == 0 {
		return len(s.Categories) == 0
	}
	for _, f := range c.Fields {
		if s.Covers(f.Category) {
			return true
		}
	}
	return false
}

// ContentOnly reports whether every mapped field of c is customer content, the
// data Lethe never touches unless a request names customer.content.
func (c *Collection) ContentOnly() bool {
	if len(c.Fields) == 0 {
		return false
	}
	for _, f := range c.Fields {
		if !CategoryCovers(string(privacyv1.CategoryCustomerContent), f.Category) {
			return false
		}
	}
	return true
}
