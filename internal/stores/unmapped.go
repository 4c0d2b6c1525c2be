package stores

import (
	"fmt"
	"path"
	"strings"
)

// UnmappedReport is what a store's check found about personal-looking
// columns the data map leaves out: columns of mapped tables that no
// collection uses, and columns of the unmapped tables a foreign key links to
// a mapped one (in either direction). Columns are judged by their name, type
// and the name of their table only, with kubectl lethe scaffold's classifier:
// no value is read.
type UnmappedReport struct {
	// Columns that look personal, sorted by table then column.
	Columns []UnmappedColumn
	// Error says why the look could not be taken ("" when it was); never a value.
	Error string
}

// UnmappedColumn is one column that looks personal and is not in the data map.
type UnmappedColumn struct {
	// Table as the store names it: unqualified in the connection's default
	// schema (PostgreSQL: visible on the search_path; MySQL: the DSN's
	// database), schema-qualified otherwise.
	Table  string
	Column string
	// Category is the classifier's guess, such as user.contact.phone.
	Category string
	// Confidence of the guess: high or medium (low guesses are not reported).
	Confidence string
	// TableMapped is false when no collection maps the table: it is reported
	// because a foreign key links it to a mapped table.
	TableMapped bool
}

// Name is table.column.
func (c UnmappedColumn) Name() string { return c.Table + "." + c.Column }

// String is the column as the DataStore condition lists it: names and the
// guessed category only.
func (c UnmappedColumn) String() string {
	if !c.TableMapped {
		return fmt.Sprintf("%s (%s; table not mapped)", c.Name(), c.Category)
	}
	return fmt.Sprintf("%s (%s)", c.Name(), c.Category)
}

// UnmappedIgnore is a list of patterns whose columns are left out of the
// report on purpose (the DataStore's privacy.lethe.dev/ignore-unmapped
// annotation). A pattern is a path.Match glob (*, ?, [...]; * matches dots
// too), compared case-insensitively with table.column (accounts.phone,
// *.phone, audit.*) or with the table alone, which ignores all its columns
// (crm.notes). Tables are named as UnmappedColumn.Table names them.
type UnmappedIgnore struct {
	patterns []string
}

// ParseUnmappedIgnore reads a comma- or newline-separated list of patterns.
// Invalid patterns are returned apart, as written, and ignore nothing: a
// typo never hides a column.
func ParseUnmappedIgnore(list string) (ignore UnmappedIgnore, invalid []string) {
	for _, p := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '\n' }) {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
			invalid = append(invalid, p)
			continue
		}
		ignore.patterns = append(ignore.patterns, strings.ToLower(p))
	}
	return ignore, invalid
}

// Ignores reports whether a pattern of the list matches c.
func (l UnmappedIgnore) Ignores(c UnmappedColumn) bool {
	table, column := strings.ToLower(c.Table), strings.ToLower(c.Column)
	for _, p := range l.patterns {
		if ok, _ := path.Match(p, table+"."+column); ok {
			return true
		}
		if ok, _ := path.Match(p, table); ok {
			return true
		}
	}
	return false
}

// Filter returns the columns the list does not ignore, in their order.
func (l UnmappedIgnore) Filter(columns []UnmappedColumn) []UnmappedColumn {
	var out []UnmappedColumn
	for _, c := range columns {
		if !l.Ignores(c) {
			out = append(out, c)
		}
	}
	return out
}
