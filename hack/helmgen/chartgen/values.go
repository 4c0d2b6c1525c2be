package chartgen

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// docMarker starts a value's description: the comment lines right above its
// key, "# -- what it does", continued by further "# " lines.
const docMarker = "-- "

// Row is one documented value.
type Row struct {
	Key, Type, Default, Description string
}

// ValueRows returns the documented values of a values.yaml, in file order. A
// key with a description is one row (a map with one is documented whole); a
// map without one is documented through its keys. A value with no
// description anywhere is an error, and so is a description inside a map
// documented whole.
func ValueRows(values []byte) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("values are not a map")
	}
	var rows []Row
	if err := walk(doc.Content[0], "", &rows); err != nil {
		return nil, err
	}
	return rows, nil
}

func walk(m *yaml.Node, prefix string, rows *[]Row) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + k.Value
		desc, ok := description(k.HeadComment)
		if !ok {
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				if err := walk(v, key+".", rows); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("%s has no %q description", key, "# "+docMarker)
		}
		if v.Kind == yaml.MappingNode {
			if inner := describedInside(v); inner != "" {
				return fmt.Errorf("%s is documented whole, but %s.%s has a description of its own", key, key, inner)
			}
		}
		typ, def, err := typeAndDefault(v)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*rows = append(*rows, Row{Key: key, Type: typ, Default: def, Description: desc})
	}
	return nil
}

// description reads a "# -- ..." comment block; the last such block counts,
// so a section comment may stand above it.
func description(comment string) (string, bool) {
	lines := strings.Split(comment, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "# "+docMarker) {
			start = i
		}
	}
	if start < 0 {
		return "", false
	}
	var parts []string
	for i, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if i == 0 {
			l = strings.TrimPrefix(l, "# "+docMarker)
		} else {
			l = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		}
		if l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " "), true
}

func describedInside(m *yaml.Node) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if _, ok := description(m.Content[i].HeadComment); ok {
			return m.Content[i].Value
		}
		if m.Content[i+1].Kind == yaml.MappingNode {
			if inner := describedInside(m.Content[i+1]); inner != "" {
				return m.Content[i].Value + "." + inner
			}
		}
	}
	return ""
}

func typeAndDefault(v *yaml.Node) (typ, def string, err error) {
	var val any
	if err := v.Decode(&val); err != nil {
		return "", "", err
	}
	switch x := val.(type) {
	case nil:
		return "null", "`null`", nil
	case string:
		return "string", "`" + fmt.Sprintf("%q", x) + "`", nil
	case bool:
		return "bool", fmt.Sprintf("`%t`", x), nil
	case int:
		return "int", fmt.Sprintf("`%d`", x), nil
	case float64:
		return "float", fmt.Sprintf("`%v`", x), nil
	case []any:
		typ = "list"
	case map[string]any:
		typ = "object"
	default:
		return "", "", fmt.Errorf("unexpected value of type %T", val)
	}
	j, err := json.Marshal(val)
	if err != nil {
		return "", "", err
	}
	return typ, "`" + string(j) + "`", nil
}

// ValuesTable renders the documented values as a Markdown table.
func ValuesTable(values []byte) (string, error) {
	rows, err := ValueRows(values)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.Key, r.Type, cell(r.Default), cell(r.Description))
	}
	return b.String(), nil
}
