package datamap_test

import (
	"fmt"
	"slices"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
)

func TestCollectionsBelowFollowTheMap(t *testing.T) {
	ref := func(field, to string, setNull bool) privacyv1.Reference {
		r := privacyv1.Reference{Field: privacyv1.Identifier(field), Collection: privacyv1.Identifier(to)}
		if setNull {
			r.OnParentErasure = privacyv1.ParentSetNull
		}
		return r
	}
	col := func(name string, refs ...privacyv1.Reference) privacyv1.Collection {
		c := privacyv1.Collection{Name: privacyv1.Identifier(name), PrimaryKey: "id", References: refs}
		if name == "accounts" {
			c.Identity = map[string]privacyv1.Identifier{"userId": "id"}
		}
		return c
	}
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres, Collections: []privacyv1.Collection{
		col("accounts", ref("referred_by", "accounts", true)),
		col("invoices", ref("account_id", "accounts", false)),
		col("invoice_lines", ref("invoice_id", "invoices", false)),
		col("disputes", ref("line_id", "invoice_lines", true), ref("account_id", "accounts", false)),
		col("line_notes", ref("line_id", "invoice_lines", false)),
		col("access_logs", ref("account_id", "accounts", false)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"invoices":      {"invoice_lines", "disputes", "line_notes"},
		"invoice_lines": {"disputes", "line_notes"},
		"access_logs":   nil,
		"unknown":       nil,
	} {
		got := m.Below(name)
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
			t.Errorf("below %s: %v, want %v", name, got, want)
		}
	}
	below := m.Below("accounts")
	for _, c := range below {
		if c == "accounts" {
			t.Errorf("below accounts lists accounts itself: %v", below)
		}
	}
	if len(below) != 5 {
		t.Errorf("below accounts: %v, want the 5 other collections", below)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
