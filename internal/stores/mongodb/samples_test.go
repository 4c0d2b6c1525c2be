package mongodb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"sigs.k8s.io/yaml"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// The sample is what users copy: it fits the engine, and its erasure
// anonymizes the profile and deletes the sessions.
func TestSampleFitsTheEngine(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "samples", "datastore_mongodb_profiles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds privacyv1.DataStore
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatal(err)
	}
	if ds.Spec.Engine != privacyv1.EngineMongoDB {
		t.Fatalf("engine %q", ds.Spec.Engine)
	}
	db := testdb.NewMongo(t)
	insert(t, db, "profiles", bson.D{{Key: "_id", Value: "p1"}, {Key: "userId", Value: "u1"},
		{Key: "contact", Value: bson.D{{Key: "email", Value: "ada@x.io"}, {Key: "phone", Value: "+33612345678"}}},
		{Key: "displayName", Value: "Ada"},
		{Key: "addresses", Value: bson.A{
			bson.D{{Key: "line1", Value: "1 rue de la Paix"}, {Key: "city", Value: "Paris"}},
			bson.D{{Key: "line1", Value: "2 quai Kléber"}, {Key: "city", Value: "Strasbourg"}},
		}}})
	insert(t, db, "sessions", bson.D{{Key: "_id", Value: "s1"}, {Key: "userId", Value: "u1"}, {Key: "ip", Value: "192.0.2.1"},
		{Key: "client", Value: bson.D{{Key: "userAgent", Value: "x"}}}})
	s := open(t, db, ds.Spec)
	res, err := s.Check(context.Background())
	if err != nil || len(res.Problems) > 0 {
		t.Fatalf("Check = %+v, %v", res, err)
	}
	out, err := s.Apply(context.Background(), stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": "ada@x.io", "userId": "u1"}, RequestID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Collections) != 2 || out.Collections[0].Collection != "sessions" || out.Collections[0].Rows != 1 ||
		out.Collections[1].Action != stores.ActionAnonymize || out.Collections[1].Rows != 1 {
		t.Fatalf("outcome %+v, want sessions deleted 1 then profiles anonymized 1", out.Collections)
	}
	p := get(t, db, "profiles", "p1")
	contact, _ := p["contact"].(bson.M)
	if p["displayName"] != "[redacted]" || contact["phone"] != "**********78" || p["userId"] != "u1" ||
		contact["email"] == "ada@x.io" || !strings.HasSuffix(contact["email"].(string), "@erased.invalid") {
		t.Errorf("profile after erasure = %v", p)
	}
	addresses, _ := p["addresses"].(bson.A)
	if len(addresses) != 2 {
		t.Fatalf("addresses after erasure = %v", p["addresses"])
	}
	for _, a := range addresses {
		a := a.(bson.M)
		if _, has := a["city"]; has || a["line1"] != "[redacted]" {
			t.Errorf("address after erasure = %v", a)
		}
	}
	if left := ids(t, db, "sessions"); len(left) != 0 {
		t.Errorf("sessions left: %v", left)
	}
}
