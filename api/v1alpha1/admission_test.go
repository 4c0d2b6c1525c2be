package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// These tests run against a real kube-apiserver: what they prove is what a
// user's `kubectl apply` gets, including the CEL rules.

var env *testenv.Env

func TestMain(m *testing.M) {
	// Admission only: no manager runs in this suite.
	testenv.Main(m, func(_ context.Context, e *testenv.Env) (<-chan struct{}, error) {
		env = e
		return nil, nil
	})
}

func validStore() *v1.DataStore {
	return &v1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Name: "app-db"},
		Spec: v1.DataStoreSpec{
			Engine:     v1.EnginePostgres,
			Connection: v1.ConnectionSpec{SecretRef: v1.SecretKeySelector{Name: "app-db", Key: "dsn"}},
			Collections: []v1.Collection{
				{
					Name: "accounts", Table: "public.accounts", PrimaryKey: "id",
					Identity: map[string]v1.Identifier{"email": "email", "userId": "id"},
					Fields: []v1.Field{
						{Name: "email", Category: "user.contact.email", Masking: &v1.Masking{Strategy: v1.MaskUniqueEmail}},
						{Name: "name", Category: "user.contact.name", Masking: &v1.Masking{Strategy: v1.MaskRedact}},
					},
					References: []v1.Reference{{Field: "referred_by", Collection: "accounts", OnParentErasure: v1.ParentSetNull}},
					OnErasure:  v1.ErasureAnonymize,
				},
				{
					Name: "invoices", PrimaryKey: "id",
					References: []v1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields:     []v1.Field{{Name: "billing_address", Category: "user.billing.address"}},
					OnErasure:  v1.ErasureRetain, RetainReason: "accounting law: 10 years",
				},
			},
		},
	}
}

func validRequest() *v1.DataSubjectRequest {
	return &v1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "erase-1"},
		Spec: v1.DataSubjectRequestSpec{
			Type:     v1.RequestErasure,
			Subject:  v1.Subject{IdentitiesFrom: &v1.IdentitiesSource{SecretRef: v1.SecretReference{Name: "subject-1"}}},
			Scope:    v1.RequestScope{Stores: []v1.StoreName{"app-db"}, Categories: []v1.Category{"user"}},
			Deadline: "24h",
		},
	}
}

func validPolicy() *v1.RetentionPolicy {
	return &v1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "billing"},
		Spec: v1.RetentionPolicySpec{
			StoreRef: "app-db",
			Schedule: "0 3 * * *",
			Rules: []v1.RetentionRule{
				{Name: "access-logs", Collection: "access_logs", After: v1.RetentionAfter{Field: "created_at", Period: "1y"}},
				{
					Name: "invoices", Collection: "invoices", After: v1.RetentionAfter{Field: "issued_at", Period: "10y"},
					ExemptFromErasure: true, LegalBasis: "French Commercial Code L123-22",
					Where: []v1.RetentionCondition{{Field: "closed_at", IsNull: ptr.To(false)}},
				},
			},
		},
	}
}

func validHold() *v1.LegalHold {
	return &v1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Name: "case-42"},
		Spec: v1.LegalHoldSpec{
			Reason:      "Tribunal judiciaire de Strasbourg, case 42",
			Subject:     &v1.Subject{Identities: v1.Identities{"email": "someone@example.com"}},
			Collections: []v1.HeldCollection{{Store: "app-db", Collection: "invoices"}},
			ExpiresAt:   &metav1.Time{Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
	}
}

func TestValidObjectsOfEveryKindAreAccepted(t *testing.T) {
	ns := env.Namespace(t)
	for _, obj := range []client.Object{validStore(), validRequest(), validPolicy(), validHold()} {
		obj.SetNamespace(ns)
		if err := env.Client.Create(t.Context(), obj); err != nil {
			t.Errorf("%T rejected: %v", obj, err)
		}
	}
	// Defaults are applied by the API server.
	got := &v1.DataStore{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "app-db"}, got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Collections[1].References[0].OnParentErasure != v1.ParentCascade {
		t.Errorf("onParentErasure default = %q, want cascade", got.Spec.Collections[1].References[0].OnParentErasure)
	}
}

// invalidCase mutates a valid object into an invalid one; the API server must
// refuse it with a message containing want.
type invalidCase struct {
	name   string
	object func() client.Object
	want   string
}

func storeWith(mutate func(*v1.DataStore)) func() client.Object {
	return func() client.Object { s := validStore(); mutate(s); return s }
}

func requestWith(mutate func(*v1.DataSubjectRequest)) func() client.Object {
	return func() client.Object { r := validRequest(); mutate(r); return r }
}

func policyWith(mutate func(*v1.RetentionPolicy)) func() client.Object {
	return func() client.Object { p := validPolicy(); mutate(p); return p }
}

func holdWith(mutate func(*v1.LegalHold)) func() client.Object {
	return func() client.Object { h := validHold(); mutate(h); return h }
}

func TestInvalidSpecsAreRejectedWithAClearMessage(t *testing.T) {
	cases := []invalidCase{
		{"unknown engine", storeWith(func(s *v1.DataStore) { s.Spec.Engine = "oracle" }), `Unsupported value: "oracle"`},
		{"SQL injection as table name", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Table = "users; drop table x" }), "spec.collections[0].table"},
		{"quote in column name", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Name = `email"--` }), "spec.collections[0].fields[0].name"},
		{"comment in primary key", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].PrimaryKey = "id/*x*/" }), "spec.collections[0].primaryKey"},
		{"reference to an unknown collection", storeWith(func(s *v1.DataStore) { s.Spec.Collections[1].References[0].Collection = "acounts" }), "a reference names a collection that is not in this DataStore"},
		{"no collection", storeWith(func(s *v1.DataStore) { s.Spec.Collections = nil }), "spec.collections"},
		{"SQL collection without primary key", storeWith(func(s *v1.DataStore) { s.Spec.Collections[1].PrimaryKey = "" }), "every SQL collection needs a primaryKey"},
		{"retain without a reason", storeWith(func(s *v1.DataStore) { s.Spec.Collections[1].RetainReason = "" }), "retainReason is required when onErasure is retain"},
		{"unknown masking strategy", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[1].Masking.Strategy = "shuffle" }), `Unsupported value: "shuffle"`},
		{"partial without keepLast", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[1].Masking.Strategy = v1.MaskPartial }), "masking.keepLast is required for the partial strategy"},
		{"bad category", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Category = "User Contact" }), "spec.collections[0].fields[0].category"},
		{"no identity anywhere", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Identity = nil }), "at least one collection must map an identity"},
		{"self-reference that cascades", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].References[0].OnParentErasure = v1.ParentCascade }), "a self-reference must use onParentErasure setNull"},
		{"keyPattern on postgres", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].KeyPattern = "user:{email}" }), "keyPattern applies only to the redis engine"},
		{"empty identity value", requestWith(func(r *v1.DataSubjectRequest) {
			r.Spec.Subject = v1.Subject{Identities: v1.Identities{"email": ""}}
		}), "identity values must not be empty or only whitespace"},
		{"whitespace identity value", requestWith(func(r *v1.DataSubjectRequest) {
			r.Spec.Subject = v1.Subject{Identities: v1.Identities{"email": " \t "}}
		}), "identity values must not be empty or only whitespace"},
		{"both inline and secret identities", requestWith(func(r *v1.DataSubjectRequest) {
			r.Spec.Subject.Identities = v1.Identities{"email": "a@x.io"}
		}), "set exactly one of subject.identities and subject.identitiesFrom"},
		{"no identities at all", requestWith(func(r *v1.DataSubjectRequest) { r.Spec.Subject = v1.Subject{} }), "set exactly one of subject.identities and subject.identitiesFrom"},
		{"unknown request type", requestWith(func(r *v1.DataSubjectRequest) { r.Spec.Type = "Forget" }), `Unsupported value: "Forget"`},
		{"deadline in words", requestWith(func(r *v1.DataSubjectRequest) { r.Spec.Deadline = "30 days" }), "spec.deadline"},
		{"store in another namespace", requestWith(func(r *v1.DataSubjectRequest) { r.Spec.Scope.Stores = []v1.StoreName{"other-ns/app-db"} }), "spec.scope.stores[0]"},
		{"rectification without values", requestWith(func(r *v1.DataSubjectRequest) { r.Spec.Type = v1.RequestRectification }), "rectification is required for, and only for, type Rectification"},
		{"period in words", policyWith(func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Period = "30 days" }), "spec.rules[0].after.period"},
		{"zero period", policyWith(func(p *v1.RetentionPolicy) { p.Spec.Rules[0].After.Period = "0d" }), "spec.rules[0].after.period"},
		{"schedule every second", policyWith(func(p *v1.RetentionPolicy) { p.Spec.Schedule = "@every 1s" }), "schedule must not run more often than every minute"},
		{"schedule every 59s", policyWith(func(p *v1.RetentionPolicy) { p.Spec.Schedule = "@every 59s" }), "schedule must not run more often than every minute"},
		{"check every millisecond", storeWith(func(d *v1.DataStore) { d.Spec.CheckInterval = &metav1.Duration{Duration: time.Millisecond} }), "checkInterval must be at least 30s"},
		{"statement timeout of 1ms", storeWith(func(d *v1.DataStore) { d.Spec.StatementTimeout = &metav1.Duration{Duration: time.Millisecond} }), "statementTimeout must be between 100ms and 1h"},
		{"statement timeout of a day", storeWith(func(d *v1.DataStore) { d.Spec.StatementTimeout = &metav1.Duration{Duration: 24 * time.Hour} }), "statementTimeout must be between 100ms and 1h"},
		{"cron with four fields", policyWith(func(p *v1.RetentionPolicy) { p.Spec.Schedule = "0 3 * *" }), "schedule must be a five-field cron expression"},
		{"exempt from erasure without legal basis", policyWith(func(p *v1.RetentionPolicy) { p.Spec.Rules[1].LegalBasis = "" }), "legalBasis is required when exemptFromErasure is true"},
		{"unknown retention action", policyWith(func(p *v1.RetentionPolicy) { p.Spec.Rules[0].Action = "archive" }), `Unsupported value: "archive"`},
		{"hold on nothing", holdWith(func(h *v1.LegalHold) { h.Spec.Subject = nil; h.Spec.Collections = nil }), "a legal hold needs a subject, collections, or both"},
		{"hold without reason", holdWith(func(h *v1.LegalHold) { h.Spec.Reason = "" }), "spec.reason"},
	}
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.object()
			obj.SetNamespace(ns)
			obj.SetName(fmt.Sprintf("invalid-%d", i))
			err := env.Client.Create(t.Context(), obj)
			if err == nil {
				t.Fatalf("accepted, want a rejection mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("rejected with %q, want it to mention %q", err, tc.want)
			}
		})
	}
	if len(cases) < 15 {
		t.Fatalf("only %d invalid cases", len(cases))
	}
}

// The floors refuse hot loops, not reasonable settings at the boundary.
func TestFloorsAcceptTheirBoundary(t *testing.T) {
	ns := env.Namespace(t)
	objects := []client.Object{
		storeWith(func(d *v1.DataStore) { d.Spec.CheckInterval = &metav1.Duration{Duration: 30 * time.Second} })(),
		policyWith(func(p *v1.RetentionPolicy) { p.Spec.Schedule = "@every 1m" })(),
		policyWith(func(p *v1.RetentionPolicy) { p.Spec.Schedule = "@every 1h30m" })(),
		policyWith(func(p *v1.RetentionPolicy) { p.Spec.Schedule = "* * * * *" })(),
	}
	for i, obj := range objects {
		obj.SetNamespace(ns)
		obj.SetName(fmt.Sprintf("boundary-%d", i))
		if err := env.Client.Create(t.Context(), obj); err != nil {
			t.Errorf("object %d refused: %v", i, err)
		}
	}
}

func TestRequestSpecIsImmutable(t *testing.T) {
	ns := env.Namespace(t)
	r := validRequest()
	r.Namespace = ns
	if err := env.Client.Create(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	r.Spec.Subject.IdentitiesFrom.SecretRef.Name = "someone-else"
	err := env.Client.Update(t.Context(), r)
	if err == nil || !strings.Contains(err.Error(), "a DataSubjectRequest is immutable") {
		t.Fatalf("update of spec: got %v, want an immutability error", err)
	}
}

// mongoStore is a mongodb DataStore mapping document paths: nested
// (owner.userId), inside arrays (addresses[].line1) and a reference by path.
func mongoStore() *v1.DataStore {
	return &v1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Name: "profiles"},
		Spec: v1.DataStoreSpec{
			Engine:     v1.EngineMongoDB,
			Connection: v1.ConnectionSpec{SecretRef: v1.SecretKeySelector{Name: "profiles", Key: "url"}},
			Collections: []v1.Collection{
				{
					Name:     "accounts",
					Identity: map[string]v1.Identifier{"userId": "owner.userId", "email": "contact.email"},
					Fields: []v1.Field{
						{Name: "contact.email", Category: "user.contact.email", Masking: &v1.Masking{Strategy: v1.MaskUniqueEmail}},
						{Name: "addresses[].line1", Category: "user.location.address", Masking: &v1.Masking{Strategy: v1.MaskRedact}},
						{Name: "tags[]", Category: "user.preferences", Masking: &v1.Masking{Strategy: v1.MaskNullify}},
					},
					OnErasure: v1.ErasureAnonymize,
				},
				{
					Name: "sessions", PrimaryKey: "_id",
					References: []v1.Reference{{Field: "owner.accountId", Collection: "accounts", CollectionField: "_id"}},
					Fields:     []v1.Field{{Name: "client.ip", Category: "user.technical.ip"}},
				},
			},
		},
	}
}

func TestMongoDBDocumentPathsAreAdmitted(t *testing.T) {
	ns := env.Namespace(t)
	s := mongoStore()
	s.Namespace = ns
	if err := env.Client.Create(t.Context(), s); err != nil {
		t.Fatalf("mongodb DataStore with document paths rejected: %v", err)
	}
	// The longest path admission accepts: 255 characters.
	long := v1.Identifier(strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 63))
	s = mongoStore()
	s.Name, s.Namespace = "long-path", ns
	s.Spec.Collections[0].Fields[0].Name = long
	if err := env.Client.Create(t.Context(), s); err != nil {
		t.Fatalf("255-character path rejected: %v", err)
	}
}

func mongoWith(mutate func(*v1.DataStore)) func() client.Object {
	return func() client.Object { s := mongoStore(); mutate(s); return s }
}

// Document paths are for mongodb only: SQL (and redis, http) column names
// keep the identifier rule, with a message saying why. For mongodb a path
// is never an operator, an empty segment or a second array.
func TestDocumentPathsAreRefusedOutsideMongoDB(t *testing.T) {
	sqlOnly := "document paths such as owner.userId or addresses[].line1 are only for engine mongodb"
	pathRule := "$ is refused: a path is never an operator"
	pattern := "should match"
	cases := []invalidCase{
		{"nested identity on postgres", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Identity["userId"] = "owner.userId" }), "engine postgres: identity values must be column names"},
		{"array field on postgres", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[1].Name = "addresses[].line1" }), "engine postgres: fields[].name must be column names"},
		{"nested field on postgres", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[1].Name = "owner.name" }), sqlOnly},
		{"nested primary key on postgres", storeWith(func(s *v1.DataStore) { s.Spec.Collections[0].PrimaryKey = "meta.id" }), "engine postgres: primaryKey must be a column name"},
		{"nested reference on postgres", storeWith(func(s *v1.DataStore) { s.Spec.Collections[1].References[0].Field = "owner.accountId" }), "engine postgres: references[].field and collectionField must be column names"},
		{"mongodb sample paths on mysql", mongoWith(func(s *v1.DataStore) {
			s.Spec.Engine = v1.EngineMySQL
			s.Spec.Collections[0].PrimaryKey = "id"
		}), "engine mysql: identity values must be column names"},
		{"nested field on redis", mongoWith(func(s *v1.DataStore) {
			s.Spec.Engine = v1.EngineRedis
			s.Spec.Collections[0].KeyPattern = "user:{userId}"
			s.Spec.Collections[1].KeyPattern = "session:{userId}:*"
		}), "engine redis: fields[].name must be column names"},
		{"$where on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Name = "$where" }), pattern},
		{"$where identity on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[0].Identity["userId"] = "$where" }), pattern},
		{"empty segment on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Name = "a..b" }), pattern},
		{"array of arrays on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Name = "a[][]" }), pattern},
		{"two arrays on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Name = "a[].b[]" }), pattern},
		{"operator segment on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Name = "a.$b" }), pattern},
		{"$ inside a name on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[0].Fields[0].Name = "price$" }), pathRule},
		{"$ inside a reference on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[1].References[0].Field = "owner$" }), pathRule},
		{"array primary key on mongodb", mongoWith(func(s *v1.DataStore) { s.Spec.Collections[1].PrimaryKey = "ids[]" }), pathRule},
		{"path of 256 characters", mongoWith(func(s *v1.DataStore) {
			s.Spec.Collections[0].Fields[0].Name = v1.Identifier(strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61) + ".aa")
		}), "spec.collections[0].fields[0].name"},
		{"segment of 64 characters", mongoWith(func(s *v1.DataStore) {
			s.Spec.Collections[0].Fields[0].Name = v1.Identifier("a." + strings.Repeat("b", 64))
		}), pattern},
		{"dotted collection name on mongodb", mongoWith(func(s *v1.DataStore) {
			s.Spec.Collections[1].Name = "app.sessions"
		}), "spec.collections[1].name"},
	}
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.object()
			obj.SetNamespace(ns)
			obj.SetName(fmt.Sprintf("path-%d", i))
			err := env.Client.Create(t.Context(), obj)
			if err == nil {
				t.Fatalf("accepted, want a rejection mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("rejected with %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// The samples are what users copy: the API server admits every Lethe object
// of config/samples as it is.
func TestSamplesAreAdmitted(t *testing.T) {
	ns := env.Namespace(t)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	admitted := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			if u.GroupVersionKind().Group != v1.GroupVersion.Group {
				continue
			}
			u.SetNamespace(ns)
			if err := env.Client.Create(t.Context(), u); err != nil {
				t.Errorf("%s: %s %s rejected: %v", filepath.Base(f), u.GetKind(), u.GetName(), err)
				continue
			}
			admitted++
		}
	}
	if admitted == 0 {
		t.Fatal("no Lethe object in config/samples")
	}
}
