package datamap

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// specFromBytes decodes fuzz bytes into a DataStore spec of up to 8
// collections with arbitrary identities, primary keys, references (to known,
// unknown or the same collections, cascade or setNull) and duplicate names.
func specFromBytes(data []byte) privacyv1.DataStoreSpec {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	engines := []privacyv1.Engine{privacyv1.EnginePostgres, privacyv1.EngineMySQL, privacyv1.EngineRedis, privacyv1.EngineHTTP}
	spec := privacyv1.DataStoreSpec{Engine: engines[int(next())%len(engines)]}
	n := int(next()) % 9
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for i := range n {
		flags := next()
		name := names[i]
		if flags&0x80 != 0 && i > 0 {
			name = names[int(next())%i] // a duplicate
		}
		c := privacyv1.Collection{Name: privacyv1.Identifier(name), OnErasure: privacyv1.ErasureDelete}
		if flags&1 != 0 {
			c.Identity = map[string]privacyv1.Identifier{"email": "email"}
		}
		if flags&2 != 0 {
			c.PrimaryKey = "id"
		}
		for range int(flags>>2) % 4 {
			rb := next()
			target := names[int(rb)%len(names)] // may be unknown (beyond n)
			r := privacyv1.Reference{Field: "ref_" + privacyv1.Identifier(target), Collection: privacyv1.Identifier(target)}
			if rb&0x40 != 0 {
				r.OnParentErasure = privacyv1.ParentSetNull
			}
			if rb&0x20 != 0 {
				r.CollectionField = "key"
			}
			c.References = append(c.References, r)
		}
		spec.Collections = append(spec.Collections, c)
	}
	return spec
}

// expectValid is an independent oracle of Build's verdict: unique names,
// known references, primary keys where SQL or a reference needs them, no
// cascading self-reference, no ownership cycle, and every collection reaching
// an identity through its ownership parents.
func expectValid(spec privacyv1.DataStoreSpec) bool {
	sql := spec.Engine == privacyv1.EnginePostgres || spec.Engine == privacyv1.EngineMySQL
	byName := map[privacyv1.Identifier]privacyv1.Collection{}
	for _, c := range spec.Collections {
		if _, dup := byName[c.Name]; dup {
			return false
		}
		if sql && c.PrimaryKey == "" {
			return false
		}
		byName[c.Name] = c
	}
	parents := map[privacyv1.Identifier][]privacyv1.Identifier{}
	for _, c := range spec.Collections {
		for _, r := range c.References {
			p, ok := byName[r.Collection]
			if !ok || (r.CollectionField == "" && p.PrimaryKey == "") {
				return false
			}
			if r.OnParentErasure == privacyv1.ParentSetNull {
				continue
			}
			if r.Collection == c.Name {
				return false
			}
			parents[c.Name] = append(parents[c.Name], r.Collection)
		}
	}
	// Cycle: depth-first search over ownership edges.
	state := map[privacyv1.Identifier]int{}
	var cyclic func(n privacyv1.Identifier) bool
	cyclic = func(n privacyv1.Identifier) bool {
		switch state[n] {
		case 1:
			return true
		case 2:
			return false
		}
		state[n] = 1
		for _, p := range parents[n] {
			if cyclic(p) {
				return true
			}
		}
		state[n] = 2
		return false
	}
	for n := range byName {
		if cyclic(n) {
			return false
		}
	}
	var reaches func(n privacyv1.Identifier) bool
	reaches = func(n privacyv1.Identifier) bool {
		if len(byName[n].Identity) > 0 {
			return true
		}
		return slices.ContainsFunc(parents[n], reaches)
	}
	for n := range byName {
		if !reaches(n) {
			return false
		}
	}
	return true
}

// FuzzBuild feeds Build arbitrary data maps: it never panics, its verdict
// matches the oracle, a failure lists problems, and a success orders every
// collection once, parents before children, deterministically.
func FuzzBuild(f *testing.F) {
	f.Add([]byte{0, 3, 3, 2 | 4, 0, 2 | 4, 1})       // a <- b <- c chain
	f.Add([]byte{0, 2, 3 | 4, 1, 3 | 4, 0})          // a <-> b cycle
	f.Add([]byte{0, 1, 3 | 4, 0x40})                 // self-reference, setNull
	f.Add([]byte{0, 1, 3 | 4, 0})                    // self-reference, cascade
	f.Add([]byte{2, 3, 1, 0x80 | 1, 0, 2 | 4, 7})    // duplicate, unknown reference
	f.Add([]byte{0, 8, 3, 3, 3, 3, 3, 3, 3, 2 | 12}) // wide
	f.Fuzz(func(t *testing.T, data []byte) {
		spec := specFromBytes(data)
		m, err := Build(spec)
		if want := expectValid(spec); (err == nil) != want {
			t.Fatalf("Build verdict %v, oracle says valid=%v, for %+v", err, want, spec)
		}
		if err != nil {
			var mapErr *Error
			if !errors.As(err, &mapErr) || len(mapErr.Problems) == 0 {
				t.Fatalf("Build failed without listing problems: %v", err)
			}
			return
		}
		if len(m.Collections) != len(spec.Collections) {
			t.Fatalf("order has %d collections, spec %d", len(m.Collections), len(spec.Collections))
		}
		pos := map[*Collection]int{}
		for i, c := range m.Collections {
			if _, dup := pos[c]; dup {
				t.Fatalf("%s ordered twice", c.Name)
			}
			pos[c] = i
			if got, ok := m.Get(c.Name); !ok || got != c {
				t.Fatalf("Get(%s) does not return the ordered collection", c.Name)
			}
		}
		for _, c := range m.Collections {
			for _, e := range c.Parents {
				if e.Child != c || pos[e.Parent] >= pos[c] {
					t.Fatalf("parent %s is not before child %s", e.Parent.Name, c.Name)
				}
			}
			for _, e := range c.Children {
				if e.Parent != c || pos[e.Child] <= pos[c] {
					t.Fatalf("child %s is not after parent %s", e.Child.Name, c.Name)
				}
			}
		}
		again, _ := Build(spec)
		if fmt.Sprint(names(again)) != fmt.Sprint(names(m)) {
			t.Fatalf("order is not deterministic: %v then %v", names(m), names(again))
		}
	})
}

func names(m *Map) []string {
	var out []string
	for _, c := range m.Collections {
		out = append(out, c.Name)
	}
	return out
}
