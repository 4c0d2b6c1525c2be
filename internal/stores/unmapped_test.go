package stores

import (
	"reflect"
	"testing"
)

func TestUnmappedIgnorePatterns(t *testing.T) {
	l, invalid := ParseUnmappedIgnore("accounts.[phone, ,.x, y.\nAudit.*, *.legacy_email\n crm.notes ")
	if !reflect.DeepEqual(invalid, []string{"accounts.[phone", ".x", "y."}) {
		t.Errorf("invalid = %q", invalid)
	}
	for _, tt := range []struct {
		table, column string
		ignored       bool
	}{
		{"accounts", "phone", false}, // only named by the invalid pattern
		{"audit", "ip", true},
		{"AUDIT", "Ip", true},
		{"audit_log", "ip", false},
		{"billing.audit", "ip", false},
		{"users", "legacy_email", true},
		{"billing.users", "legacy_email", true},
		{"crm.notes", "body", true},
		{"crm.notes_archive", "body", false},
	} {
		if got := l.Ignores(UnmappedColumn{Table: tt.table, Column: tt.column}); got != tt.ignored {
			t.Errorf("%s.%s ignored = %v, want %v", tt.table, tt.column, got, tt.ignored)
		}
	}
	none, _ := ParseUnmappedIgnore("")
	if got := none.Filter([]UnmappedColumn{{Table: "a", Column: "b"}}); len(got) != 1 {
		t.Errorf("an empty list filtered %v", got)
	}
}
