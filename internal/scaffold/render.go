package scaffold

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// keyOrder puts the keys a reviewer reads first first.
var keyOrder = []string{"apiVersion", "kind", "metadata", "spec", "name", "namespace", "engine", "connection", "maskingKeySecretRef",
	"collections", "table", "primaryKey", "identity", "references", "field", "collection", "collectionField", "onParentErasure",
	"fields", "category", "masking", "strategy", "onErasure"}

// YAML renders the draft: the DataStore as sigs.k8s.io/yaml marshals it,
// with each suggestion's reason as a comment and the review list at the end.
func (d *Draft) YAML() ([]byte, error) {
	raw, err := sigsyaml.Marshal(d.Store)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	root := doc.Content[0]
	drop(root, "status")
	if meta := get(root, "metadata"); meta != nil {
		drop(meta, "creationTimestamp")
	}
	order(root)
	root.HeadComment = comment(d.header)
	spec := get(root, "spec")
	if k := key(spec, "maskingKeySecretRef"); k != nil {
		k.HeadComment = comment(d.notes["maskingKey"])
	}
	if colls := get(spec, "collections"); colls != nil {
		for _, c := range colls.Content {
			cname := get(c, "name").Value
			path := "c/" + cname
			c.HeadComment = comment(d.notes[path])
			if k := key(c, "onErasure"); k != nil {
				k.HeadComment = comment(d.notes[path+"/onErasure"])
			}
			if ids := get(c, "identity"); ids != nil {
				for i := 0; i < len(ids.Content); i += 2 {
					ids.Content[i].HeadComment = comment(d.notes[path+"/i/"+ids.Content[i].Value])
				}
			}
			if refs := get(c, "references"); refs != nil {
				for _, r := range refs.Content {
					r.HeadComment = comment(d.notes[path+"/r/"+get(r, "field").Value])
				}
			}
			if fields := get(c, "fields"); fields != nil {
				for _, f := range fields.Content {
					f.HeadComment = comment(d.notes[path+"/f/"+get(f, "name").Value])
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if len(d.Review) > 0 {
		buf.WriteString("\n# For review: what the scaffold could not decide.\n")
		for _, r := range d.Review {
			fmt.Fprintf(&buf, "# - %s\n", strings.TrimPrefix(r, "  "))
		}
	}
	return buf.Bytes(), nil
}

// comment turns lines into a YAML comment, wrapped at about 100 columns.
func comment(lines []string) string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "  ") { // a command line: kept whole
			out = append(out, "#"+l)
			continue
		}
		for _, w := range wrap(l, 96) {
			out = append(out, "# "+w)
		}
	}
	return strings.Join(out, "\n")
}

func wrap(s string, width int) []string {
	words := strings.Fields(s)
	var lines []string
	cur := ""
	for _, w := range words {
		if cur != "" && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = w
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func key(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i]
		}
	}
	return nil
}

func get(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return nil
}

func drop(m *yaml.Node, k string) {
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}

// order sorts every mapping's keys by keyOrder (unknown keys last, in
// their order), recursively.
func order(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		type pair struct{ k, v *yaml.Node }
		var pairs []pair
		for i := 0; i < len(n.Content); i += 2 {
			pairs = append(pairs, pair{n.Content[i], n.Content[i+1]})
		}
		rank := func(k string) int {
			if i := slices.Index(keyOrder, k); i >= 0 {
				return i
			}
			return len(keyOrder)
		}
		slices.SortStableFunc(pairs, func(a, b pair) int { return rank(a.k.Value) - rank(b.k.Value) })
		n.Content = n.Content[:0]
		for _, p := range pairs {
			n.Content = append(n.Content, p.k, p.v)
		}
	}
	for _, c := range n.Content {
		order(c)
	}
}
