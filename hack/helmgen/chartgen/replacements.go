package chartgen

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// replacement is one target of a kustomize replacement in config/default
// whose source is the manager's ServiceAccount: in the chart the value is the
// release's (namespace, or ServiceAccount name).
type replacement struct {
	policy, field string // the target policy (prefixed name) and field path
	sentinel      string
	delimiter     string
	index         int
	wholeValue    bool
	applied       bool
}

type replacements []*replacement

// serviceAccountReplacements reads config/default's replacements. Only those
// this generator knows how to carry into the chart are accepted: anything else
// fails, so a new replacement cannot be silently dropped from the chart.
func serviceAccountReplacements(kustomization *yaml.Node, prefix string) (replacements, error) {
	var out replacements
	list := get(kustomization, "replacements")
	if list == nil {
		return nil, nil
	}
	for _, r := range list.Content {
		src := get(r, "source")
		if scalar(get(src, "kind")) != "ServiceAccount" || scalar(get(src, "name")) != prefix+"controller-manager" {
			return nil, fmt.Errorf("config/default/kustomization.yaml: a replacement from %s %s: hack/helmgen only knows the manager's ServiceAccount", scalar(get(src, "kind")), scalar(get(src, "name")))
		}
		var sentinel string
		switch fp := scalar(get(src, "fieldPath")); fp {
		case "metadata.namespace":
			sentinel = "__LETHE_NAMESPACE__"
		case "metadata.name":
			sentinel = "__LETHE_SERVICE_ACCOUNT__"
		default:
			return nil, fmt.Errorf("config/default/kustomization.yaml: a replacement from the ServiceAccount's %s: hack/helmgen knows only metadata.namespace and metadata.name", fp)
		}
		targets := get(r, "targets")
		if targets == nil {
			continue
		}
		for _, tg := range targets.Content {
			sel := get(tg, "select")
			if kind := scalar(get(sel, "kind")); kind != "ValidatingAdmissionPolicy" {
				return nil, fmt.Errorf("config/default/kustomization.yaml: a replacement into a %s: hack/helmgen carries only those into admission policies", kind)
			}
			opts := get(tg, "options")
			delim := scalar(get(opts, "delimiter"))
			index := 0
			if s := scalar(get(opts, "index")); s != "" {
				i, err := strconv.Atoi(s)
				if err != nil {
					return nil, fmt.Errorf("config/default/kustomization.yaml: replacement index %q", s)
				}
				index = i
			}
			fields := get(tg, "fieldPaths")
			if fields == nil {
				return nil, fmt.Errorf("config/default/kustomization.yaml: a replacement target without fieldPaths")
			}
			for _, f := range fields.Content {
				out = append(out, &replacement{
					policy: scalar(get(sel, "name")), field: f.Value, sentinel: sentinel,
					delimiter: delim, index: index, wholeValue: delim == "",
				})
			}
		}
	}
	return out, nil
}

// apply applies the replacements that target the policy named name (with the
// kustomize prefix) to its document.
func (rs replacements) apply(name string, doc *yaml.Node) error {
	for _, r := range rs {
		if r.policy != name {
			continue
		}
		n, err := fieldAt(doc, r.field)
		if err != nil {
			return fmt.Errorf("replacement into %s %s: %w", name, r.field, err)
		}
		if r.wholeValue {
			n.Value = r.sentinel
		} else {
			parts := strings.Split(n.Value, r.delimiter)
			if r.index < 0 || r.index >= len(parts) {
				return fmt.Errorf("replacement into %s %s: no part %d delimited by %q", name, r.field, r.index, r.delimiter)
			}
			parts[r.index] = r.sentinel
			n.Value = strings.Join(parts, r.delimiter)
		}
		r.applied = true
	}
	return nil
}

// fieldAt follows a kustomize field path: keys, and [key=value] to select a
// list element.
func fieldAt(n *yaml.Node, path string) (*yaml.Node, error) {
	for _, seg := range strings.Split(path, ".") {
		if strings.HasPrefix(seg, "[") && strings.HasSuffix(seg, "]") {
			k, v, ok := strings.Cut(seg[1:len(seg)-1], "=")
			if !ok || n == nil || n.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("cannot select %s", seg)
			}
			var found *yaml.Node
			for _, el := range n.Content {
				if scalar(get(el, k)) == v {
					found = el
					break
				}
			}
			if found == nil {
				return nil, fmt.Errorf("no element %s", seg)
			}
			n = found
			continue
		}
		n = get(n, seg)
		if n == nil {
			return nil, fmt.Errorf("no field %s", seg)
		}
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("not a scalar")
	}
	return n, nil
}
