package datamap_test

import (
	"fmt"
	"slices"
	"strings"
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

// Batched erasure deletes rows without listing them: only a leaf collection
// that deletes, in a SQL store, may opt into it.
func TestErasureBatchSizeNeedsADeletingLeaf(t *testing.T) {
	spec := func(engine privacyv1.Engine, batched string, onErasure privacyv1.ErasureAction) privacyv1.DataStoreSpec {
		cs := []privacyv1.Collection{
			{Name: "accounts", PrimaryKey: "id", Identity: map[string]privacyv1.Identifier{"userId": "id"}},
			{Name: "devices", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}}},
			{Name: "tokens", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "device_id", Collection: "devices"}}},
			{Name: "notes", PrimaryKey: "id", References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"},
				{Field: "author_id", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}}},
		}
		for i := range cs {
			if string(cs[i].Name) == batched {
				cs[i].ErasureBatchSize, cs[i].OnErasure = 1000, onErasure
			}
		}
		return privacyv1.DataStoreSpec{Engine: engine, Collections: cs}
	}
	for _, c := range []struct {
		engine    privacyv1.Engine
		batched   string
		onErasure privacyv1.ErasureAction
		problem   string
	}{
		{privacyv1.EnginePostgres, "tokens", privacyv1.ErasureDelete, ""},
		{privacyv1.EngineMySQL, "tokens", privacyv1.ErasureDelete, ""},
		{privacyv1.EnginePostgres, "devices", privacyv1.ErasureDelete, `collection "devices": erasureBatchSize needs a collection no other refers to`},
		{privacyv1.EnginePostgres, "notes", privacyv1.ErasureDelete, `collection "notes": erasureBatchSize needs a collection no other refers to and with no setNull reference`},
		{privacyv1.EnginePostgres, "tokens", privacyv1.ErasureAnonymize, `collection "tokens": erasureBatchSize needs onErasure delete`},
		{privacyv1.EngineRedis, "tokens", privacyv1.ErasureDelete, `collection "tokens": erasureBatchSize is for the postgres and mysql engines`},
	} {
		_, err := datamap.Build(spec(c.engine, c.batched, c.onErasure))
		switch {
		case c.problem == "" && err != nil:
			t.Errorf("%s %s: %v, want it admitted", c.engine, c.batched, err)
		case c.problem != "" && (err == nil || !strings.Contains(err.Error(), c.problem)):
			t.Errorf("%s %s %s: %v, want %q", c.engine, c.batched, c.onErasure, err, c.problem)
		}
	}
}

// A MongoDB document always has an _id: it is the primary key a reference
// defaults to when the collection names none.
func TestMongoDBPrimaryKeyDefaultsToID(t *testing.T) {
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EngineMongoDB, Collections: []privacyv1.Collection{
		{Name: "accounts", Identity: map[string]privacyv1.Identifier{"email": "contact.email"}},
		{Name: "sessions", References: []privacyv1.Reference{{Field: "owner.accountId", Collection: "accounts"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sessions, _ := m.Get("sessions")
	if e := sessions.Parents[0]; e.ParentField != "_id" || e.Parent.PrimaryKey != "_id" || sessions.PrimaryKey != "_id" {
		t.Fatalf("edge %+v, primary keys %q %q", e, e.Parent.PrimaryKey, sessions.PrimaryKey)
	}
	if _, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EngineRedis, Collections: []privacyv1.Collection{
		{Name: "accounts", KeyPattern: "a:{email}", Identity: map[string]privacyv1.Identifier{"email": "email"}},
		{Name: "sessions", KeyPattern: "s:*", References: []privacyv1.Reference{{Field: "account", Collection: "accounts"}}},
	}}); err == nil {
		t.Fatal("a reference to a redis collection without primaryKey was accepted")
	}
}
