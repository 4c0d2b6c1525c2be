package security

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// TestHostileIdentitiesInlineAreRefusedOrActOnlyOnTheirSubject files every
// hostile value as an inline Erasure request against a real PostgreSQL store
// through the manager. Each is refused by the API server with a clear message
// (matching ValidateIdentityValue), refused by the controller (InvalidSubject,
// Stalled, nothing called), or completes; afterwards exactly the subjects of
// completed requests are gone. Values that are not UTF-8 cannot be written in
// JSON and are covered through Secrets by the engine test.
func TestHostileIdentitiesInlineAreRefusedOrActOnlyOnTheirSubject(t *testing.T) {
	ns := env.Namespace(t)
	values := hostileValues()
	emails := map[int64]string{}
	for i, b := range bystanders {
		emails[int64(i+1)] = b
	}
	for i, v := range values {
		if v.pgStorable {
			emails[int64(100+i)] = v.value
		}
	}
	conn, dsn := peopleDB(t, emails)
	create(t, secret(ns, "pg", map[string]string{"dsn": dsn}))
	ds := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: peopleStoreSpec()}
	ds.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: "pg", Key: "dsn"}
	create(t, ds)
	waitReady(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	before := peopleSnapshot(t, conn)

	type filed struct {
		v   hostileValue
		dsr *privacyv1.DataSubjectRequest
	}
	var admitted []filed
	counts := map[string]int{}
	for i, v := range values {
		if !utf8.ValidString(v.value) {
			continue
		}
		if got, want := privacyv1.ValidateIdentityValue(v.value) == nil, v.admission == ""; got != want {
			t.Errorf("%s: ValidateIdentityValue says admitted=%v, the table says %v", v.name, got, want)
		}
		dsr := &privacyv1.DataSubjectRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("hostile-%d", i)},
			Spec: privacyv1.DataSubjectRequestSpec{
				Type:    privacyv1.RequestErasure,
				Subject: privacyv1.Subject{Identities: privacyv1.Identities{v.idType(): privacyv1.IdentityValue(v.value)}},
			},
		}
		err := k8s.Create(t.Context(), dsr)
		switch {
		case v.admission == "" && err != nil:
			t.Errorf("%s: refused at admission: %v", v.name, err)
		case v.admission != "" && err == nil:
			t.Errorf("%s: admitted, want a refusal mentioning %q", v.name, v.admission)
		case v.admission != "" && !strings.Contains(err.Error(), v.admission):
			t.Errorf("%s: refused with %q, want it to mention %q", v.name, err, v.admission)
		case v.admission != "":
			counts["refused at admission"]++
			if tv := strings.TrimSpace(v.value); len(tv) >= 3 && strings.Contains(err.Error(), tv) {
				t.Errorf("%s: the refusal quotes the value", v.name)
			}
		default:
			admitted = append(admitted, filed{v, dsr})
		}
	}
	for _, f := range admitted {
		if f.v.controller == refusedByController {
			c := waitReady(t, f.dsr, metav1.ConditionFalse, privacyv1.ReasonInvalidSubject)
			if !apimeta.IsStatusConditionTrue(f.dsr.Status.Conditions, privacyv1.ConditionStalled) {
				t.Errorf("%s: InvalidSubject without Stalled", f.v.name)
			}
			if !strings.Contains(c.Message, "identity \""+f.v.idType()+"\"") {
				t.Errorf("%s: message %q does not name the identity type", f.v.name, c.Message)
			}
			if len(f.dsr.Status.Stores) != 0 {
				t.Errorf("%s: a refused subject reached a store: %+v", f.v.name, f.dsr.Status.Stores)
			}
			counts["refused by the controller"]++
			continue
		}
		// A value nobody has completes as SubjectNotFound, never as an erasure.
		want := privacyv1.ReasonSubjectNotFound
		for id, e := range emails {
			if (f.v.idType() == "email" && e == f.v.value) || (f.v.idType() == "userId" && fmt.Sprint(id) == f.v.value) {
				want = privacyv1.ReasonCompleted
			}
		}
		waitReady(t, f.dsr, metav1.ConditionTrue, want)
		counts["completed"]++
	}

	// Exactly the subjects of completed requests are gone.
	after := peopleSnapshot(t, conn)
	gone := map[int64]bool{}
	for _, f := range admitted {
		if f.v.controller == refusedByController {
			continue
		}
		for id, e := range emails {
			if (f.v.idType() == "email" && e == f.v.value) || (f.v.idType() == "userId" && fmt.Sprint(id) == f.v.value) {
				gone[id] = true
			}
		}
	}
	for id := range emails {
		units := []string{fmt.Sprintf("people/%d", id), fmt.Sprintf("orders/%d", id*10), fmt.Sprintf("orders/%d", id*10+1)}
		for _, u := range units {
			_, present := after[u]
			switch {
			case gone[id] && present:
				t.Errorf("%s was not erased by its subject's request", u)
			case !gone[id] && after[u] != before[u]:
				t.Errorf("%s changed, but its subject filed no completed request", u)
			}
		}
	}
	t.Logf("%d hostile values filed inline: %v (plus %d not UTF-8, Secret only)", len(values), counts, len(values)-len(admitted)-counts["refused at admission"])
	if counts["completed"] < 40 || counts["refused at admission"] < 8 || counts["refused by the controller"] < 5 {
		t.Errorf("unexpected spread of outcomes: %v", counts)
	}
}

// hostileStoreCase mutates a valid DataStore into a hostile one; the API
// server must refuse it with a message mentioning want.
type hostileStoreCase struct {
	name   string
	mutate func(*privacyv1.DataStore)
	want   string
}

func baseStore() *privacyv1.DataStore {
	spec := peopleStoreSpec()
	spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: "pg", Key: "dsn"}
	spec.Collections[0].Table = "public.people"
	spec.Collections[0].Fields[1].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskRedact, Value: ptr.To("[redacted]")}
	return &privacyv1.DataStore{Spec: spec}
}

func people(s *privacyv1.DataStore) *privacyv1.Collection { return &s.Spec.Collections[0] }
func orders(s *privacyv1.DataStore) *privacyv1.Collection { return &s.Spec.Collections[1] }

func httpStore() *privacyv1.DataStore {
	return &privacyv1.DataStore{Spec: privacyv1.DataStoreSpec{
		Engine:     privacyv1.EngineHTTP,
		Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "stripe", Key: "url"}},
		Collections: []privacyv1.Collection{{
			Name: "customers", Identity: map[string]privacyv1.Identifier{"customerId": "id"}, OnErasure: privacyv1.ErasureDelete,
			HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{
				Method: privacyv1.HTTPDelete, Path: "/v1/customers/{customerId}",
				Headers: map[string]privacyv1.HTTPHeaderValue{"Stripe-Version": "2024-06-20"},
				Body:    &apiextensionsv1.JSON{Raw: []byte(`{"id":"{customerId}"}`)},
			}},
		}},
	}}
}

// TestHostileDataStoresAreRefusedAtAdmission: names with quotes, semicolons,
// comments, backticks, unicode, or too long, and hostile paths, headers and
// Secret references never reach the controller. Valid but unusual names are
// accepted, so the refusals are not vacuous.
func TestHostileDataStoresAreRefusedAtAdmission(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := []hostileStoreCase{
		{"table with a quote", func(s *privacyv1.DataStore) { people(s).Table = `people"; DROP TABLE x; --` }, "spec.collections[0].table"},
		{"table with a semicolon", func(s *privacyv1.DataStore) { people(s).Table = "people;drop" }, "spec.collections[0].table"},
		{"table with a line comment", func(s *privacyv1.DataStore) { people(s).Table = "people--" }, "spec.collections[0].table"},
		{"table with a block comment", func(s *privacyv1.DataStore) { people(s).Table = "people/**/" }, "spec.collections[0].table"},
		{"table with backticks", func(s *privacyv1.DataStore) { people(s).Table = "`people`" }, "spec.collections[0].table"},
		{"table with an accent", func(s *privacyv1.DataStore) { people(s).Table = "péople" }, "spec.collections[0].table"},
		{"table with a Cyrillic look-alike", func(s *privacyv1.DataStore) { people(s).Table = "p\u0435ople" }, "spec.collections[0].table"},
		{"table with a space", func(s *privacyv1.DataStore) { people(s).Table = "my people" }, "spec.collections[0].table"},
		{"table with a newline", func(s *privacyv1.DataStore) { people(s).Table = "people\n" }, "spec.collections[0].table"},
		{"table with three parts", func(s *privacyv1.DataStore) { people(s).Table = "db.public.people" }, "spec.collections[0].table"},
		{"table part too long", func(s *privacyv1.DataStore) { people(s).Table = "public." + long }, "spec.collections[0].table"},
		{"column with a quote", func(s *privacyv1.DataStore) { people(s).Fields[0].Name = `email"` }, "spec.collections[0].fields[0].name"},
		{"column with a semicolon", func(s *privacyv1.DataStore) { people(s).Fields[0].Name = "email;" }, "spec.collections[0].fields[0].name"},
		{"column with a comment", func(s *privacyv1.DataStore) { people(s).Fields[0].Name = "email--x" }, "spec.collections[0].fields[0].name"},
		{"column with backticks", func(s *privacyv1.DataStore) { people(s).Fields[0].Name = "`email`" }, "spec.collections[0].fields[0].name"},
		{"column with unicode", func(s *privacyv1.DataStore) { people(s).Fields[0].Name = "émail" }, "spec.collections[0].fields[0].name"},
		{"column too long", func(s *privacyv1.DataStore) { people(s).Fields[0].Name = privacyv1.Identifier(long) }, "spec.collections[0].fields[0].name"},
		{"empty column", func(s *privacyv1.DataStore) { people(s).Fields[0].Name = "" }, "spec.collections[0].fields[0].name"},
		{"primary key with a comment", func(s *privacyv1.DataStore) { people(s).PrimaryKey = "id; --" }, "spec.collections[0].primaryKey"},
		{"identity column with SQL", func(s *privacyv1.DataStore) { people(s).Identity["email"] = "email) OR (1=1" }, "spec.collections[0].identity"},
		{"identity type with a dash", func(s *privacyv1.DataStore) { people(s).Identity["e-mail"] = "email" }, "identity types must be camelCase names"},
		{"identity type capitalised", func(s *privacyv1.DataStore) { people(s).Identity["Email"] = "email" }, "identity types must be camelCase names"},
		{"reference field with a quote", func(s *privacyv1.DataStore) { orders(s).References[0].Field = "person_id'" }, "spec.collections[1].references[0].field"},
		{"reference to a quoted collection", func(s *privacyv1.DataStore) { orders(s).References[0].Collection = `people"` }, "spec.collections[1].references[0].collection"},
		{"reference column with a comment", func(s *privacyv1.DataStore) { orders(s).References[0].CollectionField = "id/*" }, "spec.collections[1].references[0].collectionField"},
		{"collection name with a dot", func(s *privacyv1.DataStore) { people(s).Name = "public.people" }, "spec.collections[0].name"},
		{"category with SQL", func(s *privacyv1.DataStore) { people(s).Fields[0].Category = "user.contact; drop" }, "spec.collections[0].fields[0].category"},
		{"redact value too long", func(s *privacyv1.DataStore) { people(s).Fields[1].Masking.Value = ptr.To(strings.Repeat("r", 257)) }, "spec.collections[0].fields[1].masking.value"},
		{"masking domain with a quote", func(s *privacyv1.DataStore) {
			people(s).Fields[0].Masking = &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail, Domain: "x.io'; --"}
		}, "spec.collections[0].fields[0].masking.domain"},
		{"connection Secret in another namespace", func(s *privacyv1.DataStore) { s.Spec.Connection.SecretRef.Name = "other-ns/pg" }, "spec.connection.secretRef.name"},
		{"connection Secret path traversal", func(s *privacyv1.DataStore) { s.Spec.Connection.SecretRef.Name = "../pg" }, "spec.connection.secretRef.name"},
		{"Secret key with a slash", func(s *privacyv1.DataStore) { s.Spec.Connection.SecretRef.Key = "a/b" }, "spec.connection.secretRef.key"},
	}
	httpCases := []hostileStoreCase{
		{"path to another host", func(s *privacyv1.DataStore) { s.Spec.Collections[0].HTTP.Erasure.Path = "//evil.example/{customerId}" }, "spec.collections[0].http.erasure.path"},
		{"path with a fragment", func(s *privacyv1.DataStore) { s.Spec.Collections[0].HTTP.Erasure.Path = "/v1/{customerId}#x" }, "spec.collections[0].http.erasure.path"},
		{"path with CRLF", func(s *privacyv1.DataStore) {
			s.Spec.Collections[0].HTTP.Erasure.Path = "/v1/{customerId}\r\nHost: evil"
		}, "spec.collections[0].http.erasure.path"},
		{"header value with CRLF", func(s *privacyv1.DataStore) {
			s.Spec.Collections[0].HTTP.Erasure.Headers["Stripe-Version"] = "1\r\nX-Evil: 1"
		}, "spec.collections[0].http.erasure.headers"},
		{"header name with CRLF", func(s *privacyv1.DataStore) { s.Spec.Collections[0].HTTP.Erasure.Headers["X-A\r\nX-B"] = "1" }, "header names must be HTTP tokens"},
		{"Authorization header", func(s *privacyv1.DataStore) { s.Spec.Collections[0].HTTP.Erasure.Headers["authorization"] = "Bearer x" }, "this header is set by Lethe"},
		{"Idempotency-Key header", func(s *privacyv1.DataStore) { s.Spec.Collections[0].HTTP.Erasure.Headers["Idempotency-Key"] = "fixed" }, "this header is set by Lethe"},
		{"keyPattern on http", func(s *privacyv1.DataStore) { s.Spec.Collections[0].KeyPattern = "*" }, "keyPattern applies only to the redis engine"},
	}
	ns := env.Namespace(t)
	run := func(base func() *privacyv1.DataStore, cases []hostileStoreCase, offset int) {
		for i, tc := range cases {
			s := base()
			tc.mutate(s)
			s.Namespace, s.Name = ns, fmt.Sprintf("hostile-%d", offset+i)
			err := k8s.Create(t.Context(), s)
			if err == nil {
				t.Errorf("%s: admitted, want a refusal mentioning %q", tc.name, tc.want)
				continue
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: refused with %q, want it to mention %q", tc.name, err, tc.want)
			}
		}
	}
	run(baseStore, cases, 0)
	run(httpStore, httpCases, len(cases))

	// Controls: the bases and valid but unusual names are admitted.
	controls := map[string]func(*privacyv1.DataStore){
		"base":                    func(*privacyv1.DataStore) {},
		"dollar in a name":        func(s *privacyv1.DataStore) { people(s).Fields[0].Name = "e$mail$$" },
		"underscore-led names":    func(s *privacyv1.DataStore) { people(s).Table = "_private._people" },
		"63-character identifier": func(s *privacyv1.DataStore) { people(s).Fields[1].Name = privacyv1.Identifier(long[:63]) },
	}
	i := 0
	for name, mutate := range controls {
		s := baseStore()
		mutate(s)
		s.Namespace, s.Name = ns, fmt.Sprintf("control-%d", i)
		i++
		if err := k8s.Create(t.Context(), s); err != nil {
			t.Errorf("control %q refused: %v", name, err)
		}
	}
	h := httpStore()
	h.Namespace, h.Name = ns, "control-http"
	if err := k8s.Create(t.Context(), h); err != nil {
		t.Errorf("control http store refused: %v", err)
	}
	t.Logf("%d hostile DataStore specs refused at admission, %d controls admitted", len(cases)+len(httpCases), len(controls)+1)
	if len(cases)+len(httpCases) < 30 {
		t.Fatalf("only %d hostile specs", len(cases)+len(httpCases))
	}
}
