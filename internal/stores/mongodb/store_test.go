package mongodb

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

var key = []byte("engine test masking key")

func open(t *testing.T, db *testdb.Mongo, spec privacyv1.DataStoreSpec) *Store {
	t.Helper()
	spec.Engine = privacyv1.EngineMongoDB
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), db.URL, m, key, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func insert(t *testing.T, db *testdb.Mongo, collection string, docs ...bson.D) {
	t.Helper()
	in := make([]any, len(docs))
	for i, d := range docs {
		in[i] = d
	}
	if _, err := db.DB.Collection(collection).InsertMany(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func ids(t *testing.T, db *testdb.Mongo, collection string) []string {
	t.Helper()
	cur, err := db.DB.Collection(collection).Find(context.Background(), bson.D{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range docs {
		out = append(out, d["_id"].(string))
	}
	return out
}

func get(t *testing.T, db *testdb.Mongo, collection, id string) bson.M {
	t.Helper()
	var d bson.M
	if err := db.DB.Collection(collection).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// Hostile identities are values: each erases exactly the documents holding
// that literal string in the identity path, never an operator's matches.
func TestHostileIdentitiesEraseExactlyTheirSubject(t *testing.T) {
	db := testdb.NewMongo(t)
	hostile := []string{`{"$ne": 1}`, `{"$gt": ""}`, "$where", `$where: function() { return true }`, "this.a == this.a",
		"a.b", "owner.email", "$ne", "$", ".", "$regex", ".*", "^a", `{"$exists": true}`, `a\u0000b`}
	var docs []bson.D
	for i, h := range hostile {
		docs = append(docs, bson.D{{Key: "_id", Value: "h" + string(rune('a'+i))}, {Key: "owner", Value: bson.D{{Key: "email", Value: h}}}, {Key: "name", Value: "x"}})
	}
	docs = append(docs,
		bson.D{{Key: "_id", Value: "plain"}, {Key: "owner", Value: bson.D{{Key: "email", Value: "a@x.io"}}}},
		bson.D{{Key: "_id", Value: "noowner"}, {Key: "name", Value: "y"}},
		bson.D{{Key: "_id", Value: "nested"}, {Key: "owner", Value: bson.D{{Key: "email", Value: bson.D{{Key: "ne", Value: int64(1)}}}}}},
		bson.D{{Key: "_id", Value: "number"}, {Key: "owner", Value: bson.D{{Key: "email", Value: int64(1)}}}},
	)
	insert(t, db, "profiles", docs...)
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{{
		Name: "profiles", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"email": "owner.email"},
		Fields:   []privacyv1.Field{{Name: "name", Category: "user.identity.name"}},
	}}})
	for i, h := range hostile {
		id := "h" + string(rune('a'+i))
		before := len(ids(t, db, "profiles"))
		res, err := s.Apply(context.Background(), stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": h}, RequestID: "r"})
		if err != nil {
			t.Fatalf("%q: %v", h, err)
		}
		if res.Collections[0].Rows != 1 {
			t.Errorf("%q: deleted %d documents, want 1", h, res.Collections[0].Rows)
		}
		left := ids(t, db, "profiles")
		if len(left) != before-1 || slicesContains(left, id) {
			t.Errorf("%q: left %v, want only %s deleted", h, left, id)
		}
	}
	left := ids(t, db, "profiles")
	for _, want := range []string{"plain", "noowner", "nested", "number"} {
		if !slicesContains(left, want) {
			t.Errorf("document %s was erased by a hostile identity; left %v", want, left)
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A household document holds several people's elements: anonymizing the
// subject masks only the elements whose userId is the subject's, with the
// same digests as internal/masking, and exports only theirs.
func TestNestedArrayMaskedOnlyForTheSubjectsElements(t *testing.T) {
	db := testdb.NewMongo(t)
	member := func(id any, email, line string) bson.D {
		return bson.D{{Key: "userId", Value: id}, {Key: "email", Value: email}, {Key: "address", Value: bson.D{{Key: "line1", Value: line}}}}
	}
	insert(t, db, "households",
		bson.D{{Key: "_id", Value: "h1"}, {Key: "plan", Value: "family"}, {Key: "members", Value: bson.A{
			member(int64(1), "ada@x.io", "1 Subject Street"), member(int64(2), "bob@x.io", "2 Other Street"), member("1", "ada2@x.io", "1b Subject Street"),
		}}},
		bson.D{{Key: "_id", Value: "h2"}, {Key: "members", Value: bson.A{member(int64(11), "eleven@x.io", "11 Other Street")}}},
	)
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{{
		Name: "households", OnErasure: privacyv1.ErasureAnonymize,
		Identity: map[string]privacyv1.Identifier{"userId": "members[].userId"},
		Fields: []privacyv1.Field{
			{Name: "members[].email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskHash}},
			{Name: "members[].address.line1", Category: "user.contact.address", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
		},
	}}})
	ctx := context.Background()
	req := stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"userId": "1"}, RequestID: "r"}

	exp, _, err := s.Export(ctx, stores.Request{Kind: stores.KindAccess, Subject: req.Subject})
	if err != nil {
		t.Fatal(err)
	}
	if rows := exp["households"]; len(rows) != 1 || strings.Join(toStrings(rows[0]["members[].email"]), ",") != "ada@x.io,ada2@x.io" {
		t.Fatalf("export = %v, want the subject's two elements only", exp)
	}

	plan, err := s.Plan(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Collections[0]; got.Action != stores.ActionAnonymize || got.Rows != 1 || plan.Collections[0] != got {
		t.Fatalf("Apply %+v, Plan %+v: want 1 document anonymized", got, plan.Collections[0])
	}
	h1 := get(t, db, "households", "h1")
	members := h1["members"].(bson.A)
	if len(members) != 3 || h1["plan"] != "family" {
		t.Fatalf("h1 = %v", h1)
	}
	for i, want := range []string{hmacHex(key, "ada@x.io"), "bob@x.io", hmacHex(key, "ada2@x.io")} {
		m := members[i].(bson.M)
		if m["email"] != want {
			t.Errorf("member %d email = %v, want %v", i, m["email"], want)
		}
		addr := m["address"].(bson.M)
		_, hasLine := addr["line1"]
		if subject := i != 1; hasLine == subject {
			t.Errorf("member %d address = %v: line1 present %v, want %v", i, addr, hasLine, !subject)
		}
	}
	if got := get(t, db, "households", "h2")["members"].(bson.A)[0].(bson.M)["email"]; got != "eleven@x.io" {
		t.Errorf("another household changed: %v", got)
	}

	// User 2's element is untouched, so Verify for user 2 still finds the
	// household to anonymize.
	v, err := s.Verify(ctx, stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"userId": "2"}, RequestID: "r2"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Remaining["households"] != 1 {
		t.Errorf("Verify for user 2 = %v, want 1 document left to anonymize", v.Remaining)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// Check reports a collection that does not exist and a mapped path no
// document holds, naming the path and never a value; delete with an
// identity inside an array and $ in paths are refused.
func TestCheckReportsDriftBySampling(t *testing.T) {
	db := testdb.NewMongo(t)
	insert(t, db, "users", bson.D{{Key: "_id", Value: "u1"}, {Key: "email", Value: "secret@x.io"}, {Key: "profile", Value: bson.D{{Key: "name", Value: "Secret Name"}}}})
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{
		{Name: "users", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"email": "email"},
			Fields: []privacyv1.Field{{Name: "profile.name", Category: "user.identity.name"}, {Name: "profile.phone", Category: "user.contact.phone"}}},
		{Name: "sessions", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"email": "email"}},
		{Name: "groups", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"userId": "members[].userId"},
			Fields: []privacyv1.Field{{Name: "$where", Category: "user.identity.name"}}},
	}})
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.Collection+"|"+p.Field+"|"+p.Problem)
		if strings.Contains(p.Problem, "secret") || strings.Contains(p.Problem, "Secret") {
			t.Errorf("problem quotes a value: %+v", p)
		}
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"users|profile.phone|no document holds the field path profile.phone",
		"sessions||the collection does not exist",
		"groups||an identity inside an array",
		"groups|$where|segment 1 of path",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems:\n%s\nwant one containing %q", all, want)
		}
	}
	if strings.Contains(all, "profile.name") {
		t.Errorf("profile.name is held by a document but reported:\n%s", all)
	}
	if _, err := s.Plan(context.Background(), stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": "secret@x.io"}}); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("Plan with problems: err = %v, want ErrInvalid", err)
	}
}

// A document changed between resolution and write fails its guarded
// update: Apply reports the store unavailable and the other subject's change
// stays; applying again finishes the erasure (no transactions: idempotent re-apply).
func TestConcurrentChangeFailsTheGuardAndReapplyFinishes(t *testing.T) {
	db := testdb.NewMongo(t)
	insert(t, db, "profiles", bson.D{{Key: "_id", Value: "p1"}, {Key: "userId", Value: "7"}, {Key: "name", Value: "Ada"}})
	insert(t, db, "sessions", bson.D{{Key: "_id", Value: "s1"}, {Key: "userId", Value: "7"}})
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{
		{Name: "profiles", OnErasure: privacyv1.ErasureAnonymize, Identity: map[string]privacyv1.Identifier{"userId": "userId"},
			Fields: []privacyv1.Field{{Name: "name", Category: "user.identity.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskPartial, KeepLast: ptr(int32(1))}}}},
		{Name: "sessions", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"userId": "userId"}},
	}})
	ctx := context.Background()
	req := stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"userId": "7"}, RequestID: "r"}
	s.beforeWrite = func() {
		if _, err := db.DB.Collection("profiles").UpdateOne(ctx, bson.D{{Key: "_id", Value: "p1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: "Adaline"}}}}); err != nil {
			t.Error(err)
		}
	}
	_, err := s.Apply(ctx, req)
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), `collection "profiles"`) || strings.Contains(err.Error(), "Ada") {
		t.Fatalf("Apply = %v, want ErrUnavailable naming profiles and no value", err)
	}
	if got := get(t, db, "profiles", "p1")["name"]; got != "Adaline" {
		t.Errorf("the concurrent change was overwritten: %v", got)
	}
	s.beforeWrite = nil
	if _, err := s.Apply(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, db, "profiles", "p1")["name"]; got != "******e" {
		t.Errorf("after re-applying, name = %v", got)
	}
	if left := ids(t, db, "sessions"); len(left) != 0 {
		t.Errorf("sessions left: %v", left)
	}
}

func ptr[V any](v V) *V { return &v }

// Connection settings are tenant input: schemes, parameters and mechanisms
// that would reach files, DNS or the manager's credentials are refused, and
// so is an address the egress policy denies, at once and without quoting it.
func TestConnectionRefusals(t *testing.T) {
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EngineMongoDB, Collections: []privacyv1.Collection{{
		Name: "users", Identity: map[string]privacyv1.Identifier{"email": "email"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ url, want string }{
		{"mongodb+srv://u:hunter2@cluster.example.com/app", "mongodb+srv"},
		{"mongodb://u:hunter2@127.0.0.1:27017/app?tlsCAFile=/etc/shadow", `"tlsCAFile"`},
		{"mongodb://u:hunter2@127.0.0.1:27017/app?tlsInsecure=true", `"tlsInsecure"`},
		{"mongodb://127.0.0.1:27017/app?authMechanism=MONGODB-AWS", "authMechanism"},
		{"mongodb://u:hunter2@127.0.0.1:27017/", "name the database"},
		{"mongodb://u:hunter2@127.0.0.1:27017/app?connectTimeoutMS=600000", "connectTimeoutMS"},
		{"mongodb://u:hunter2@%2Ftmp%2Fmongodb-27017.sock/app", "unix socket"},
		{"postgres://127.0.0.1/app", "mongodb://"},
	} {
		_, err := New(context.Background(), c.url, m, key, testdb.Loopback)
		if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: err = %v, want ErrInvalid containing %q", c.url, err, c.want)
		}
	}
	_, err = New(context.Background(), "mongodb://"+testdb.DeniedLoopback+":27017/app", m, key, testdb.Loopback)
	if !errors.Is(err, stores.ErrInvalid) || !errors.Is(err, egress.ErrRefused) || strings.Contains(err.Error(), testdb.DeniedLoopback) {
		t.Errorf("denied loopback: err = %v, want the egress refusal without the address", err)
	}
	_, err = New(context.Background(), "mongodb://127.0.0.1:27017/app?tls=false", m, key, stores.Network{Dial: testdb.Loopback.Dial, RequireTLS: true})
	if !errors.Is(err, stores.ErrConnectionSettings) {
		t.Errorf("plaintext with RequireTLS: err = %v", err)
	}
	if _, err := New(context.Background(), "mongodb://127.0.0.1:27017/app", m, key, stores.Network{}); !errors.Is(err, stores.ErrNoDialer) {
		t.Errorf("no dialer: err = %v", err)
	}
}

func hmacHex(key []byte, v string) string {
	s, err := masking.MaskString(&privacyv1.Masking{Strategy: privacyv1.MaskHash}, key, "", v)
	if err != nil {
		panic(err)
	}
	return s
}
