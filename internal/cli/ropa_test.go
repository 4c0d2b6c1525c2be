package cli_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/lethe-dev/lethe/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files of internal/cli/testdata")

// applyFile creates every object of a YAML file, in namespace ns when the
// object names none (ns "" keeps the file's namespaces).
func applyFile(t *testing.T, path, ns string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding %s: %v", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if ns != "" {
			u.SetNamespace(ns)
		}
		if err := k8s.Create(t.Context(), u); err != nil {
			// The demo's fixed namespace outlives a test run (go test -count=2):
			// its objects are the same file's.
			if !(ns == "" && apierrors.IsAlreadyExists(err)) {
				t.Fatalf("create %s %s from %s: %v", u.GetKind(), u.GetName(), path, err)
			}
		}
		objs = append(objs, u)
	}
	return objs
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run TestRopa -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/cli -run TestRopa -update rewrites it); got:\n%s", path, got)
	}
}

// secretValues are every value of the Secrets among objs, as they are and
// base64-encoded: none may appear in the record.
func secretValues(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var vals []string
	for _, u := range objs {
		if u.GetKind() != "Secret" {
			continue
		}
		for _, field := range []string{"stringData", "data"} {
			m, _, _ := unstructured.NestedStringMap(u.Object, field)
			for _, v := range m {
				if field == "data" {
					if b, err := base64.StdEncoding.DecodeString(v); err == nil {
						vals = append(vals, string(b))
					}
				}
				vals = append(vals, v, base64.StdEncoding.EncodeToString([]byte(v)))
			}
		}
	}
	if len(vals) == 0 {
		t.Fatal("no Secret value to look for")
	}
	return vals
}

// The demo namespace as `make demo` applies it (the DataStore need not be
// Ready: the record is built from the objects only), with the subject's
// Secret and the demo's requests.
func TestRopaOfTheDemoNamespace(t *testing.T) {
	var objs []*unstructured.Unstructured
	for _, f := range []string{"namespace.yaml", "datastore.yaml", "retentionpolicy.yaml", "subject.yaml", "requests.yaml", "erasure.yaml"} {
		objs = append(objs, applyFile(t, testenv.RepoPath("hack", "demo", f), "")...)
	}
	leaks := append(secretValues(t, objs),
		// The subject's identities, the digest key's input, and the
		// Secrets' names' personal part.
		"jane.doe@example.com", "7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71", "jane", "Jane",
		// Request names are counted, never printed.
		"demo-erasure", "demo-access")

	md := lethe(t, "", "ropa", "-n", "lethe-demo")
	if md.code != 0 || md.stderr != "" {
		t.Fatalf("ropa:\n%s", md)
	}
	assertNoLeak(t, md, leaks...)
	golden(t, "ropa-demo.md", md.stdout)

	js := lethe(t, "", "ropa", "-n", "lethe-demo", "-o", "json")
	if js.code != 0 || js.stderr != "" {
		t.Fatalf("ropa -o json:\n%s", js)
	}
	assertNoLeak(t, js, leaks...)
	golden(t, "ropa-demo.json", js.stdout)

	// The JSON is the same record as the Markdown.
	var rec struct {
		Namespace         string `json:"namespace"`
		ControllerContact struct {
			Declared bool     `json:"declared"`
			Values   []string `json:"values"`
			Source   string   `json:"source"`
		} `json:"controllerContact"`
		ErasureDeadline struct {
			Default  string `json:"default"`
			Source   string `json:"source"`
			Requests []struct {
				Deadline string `json:"deadline"`
				Requests int    `json:"requests"`
			} `json:"requests"`
			RequestsWithDefault int `json:"requestsWithDefault"`
		} `json:"erasureDeadline"`
		Stores []struct {
			Name        string `json:"name"`
			Collections []struct {
				Name     string `json:"name"`
				Purposes struct {
					Declared bool   `json:"declared"`
					Source   string `json:"source"`
				} `json:"purposes"`
				Erasure struct {
					Action          string   `json:"action"`
					Deadline        string   `json:"deadline"`
					ExemptedBy      []string `json:"exemptedBy"`
					KeptWithParents []string `json:"keptWithParents"`
				} `json:"erasure"`
				Retention []struct {
					Rule   string `json:"rule"`
					Period string `json:"period"`
				} `json:"retention"`
			} `json:"collections"`
		} `json:"stores"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &rec); err != nil {
		t.Fatalf("ropa -o json is not JSON: %v", err)
	}
	if !rec.ControllerContact.Declared || !strings.Contains(rec.ControllerContact.Source, "Namespace lethe-demo") {
		t.Errorf("controller contact %+v, want declared on the Namespace", rec.ControllerContact)
	}
	d := rec.ErasureDeadline
	if d.Default != "24h" || !strings.Contains(d.Source, "--erasure-deadline") ||
		len(d.Requests) != 1 || d.Requests[0].Deadline != "24h" || d.Requests[0].Requests != 1 || d.RequestsWithDefault != 0 {
		t.Errorf("erasure deadline %+v: want the 24h default with its source, one request setting 24h, the dry run not counted", d)
	}
	if len(rec.Stores) != 1 || rec.Stores[0].Name != "platform-db" || len(rec.Stores[0].Collections) != 7 {
		t.Fatalf("stores %+v, want platform-db and its 7 collections", rec.Stores)
	}
	for _, c := range rec.Stores[0].Collections {
		if !c.Purposes.Declared || !strings.HasSuffix(c.Purposes.Source, "privacy.lethe.dev/purpose."+c.Name) {
			t.Errorf("collection %s: purposes %+v, want its own annotation", c.Name, c.Purposes)
		}
		switch c.Name {
		case "invoices":
			if c.Erasure.Action != "delete" || c.Erasure.Deadline != "24h" || len(c.Erasure.ExemptedBy) != 1 ||
				c.Erasure.ExemptedBy[0] != "platform-db-retention/invoices-10y" || len(c.Retention) != 1 || c.Retention[0].Period != "10y" {
				t.Errorf("invoices: %+v", c)
			}
		case "invoice_lines":
			if len(c.Erasure.KeptWithParents) != 1 || c.Erasure.KeptWithParents[0] != "platform-db-retention/invoices-10y" {
				t.Errorf("invoice_lines: %+v, want kept with the invoices of invoices-10y", c)
			}
		case "access_logs":
			if c.Erasure.Action != "retain" || c.Erasure.Deadline != "" || len(c.Retention) != 1 || c.Retention[0].Rule != "access-logs-1y" {
				t.Errorf("access_logs: %+v", c)
			}
		}
	}
	for _, want := range []string{"```mermaid\nflowchart LR\n", "-->|account_id|", "*not declared* |"} {
		if want == "*not declared* |" {
			// Everything is declared in the demo.
			if strings.Contains(md.stdout, want) {
				t.Errorf("the demo's record has something not declared:\n%s", md.stdout)
			}
			continue
		}
		if !strings.Contains(md.stdout, want) {
			t.Errorf("the Markdown has no %q", want)
		}
	}

	for _, args := range [][]string{{"-o", "yaml"}, {"--erasure-deadline", "3 days"}, {"extra-argument"}} {
		if r := lethe(t, "", append([]string{"ropa", "-n", "lethe-demo"}, args...)...); r.code != 1 || r.stdout != "" {
			t.Errorf("ropa %v: want exit 1 and no record:\n%s", args, r)
		}
	}

	// --erasure-deadline says the number comes from the user.
	r := lethe(t, "", "ropa", "-n", "lethe-demo", "-o", "json", "--erasure-deadline", "72h")
	if r.code != 0 || !strings.Contains(r.stdout, `"default": "72h"`) || !strings.Contains(r.stdout, "as given to kubectl lethe ropa --erasure-deadline") {
		t.Errorf("--erasure-deadline 72h:\n%s", r)
	}
}

// Processors: only the endpoint host of the connection URL is printed,
// never the URL's credentials, path or query, nor any other Secret value;
// an unreadable or malformed URL is reported without its value; and what
// is not declared says so.
func TestRopaProcessorsShowOnlyTheirHost(t *testing.T) {
	ns := env.Namespace(t)
	objs := applyFile(t, testenv.RepoPath("hack", "demo", "datastore.yaml"), ns)
	objs = append(objs, applyFile(t, testenv.RepoPath("config", "samples", "datastore_stripe.yaml"), ns)...)
	stripe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stripe"}, StringData: map[string]string{
		"url":           "https://rk_user:sk_live_urlpassword@API.Stripe.com/v1/base?token=querysecret",
		"authorization": "Bearer sk_live_authorizationsecret",
	}}
	create(t, stripe)
	// A second processor whose Secret holds no URL, a third whose Secret is missing.
	broken := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broken"}, StringData: map[string]string{
		"url": "not a url sk_live_notaurlsecret",
	}}
	create(t, broken)
	for _, name := range []string{"broken", "missing"} {
		u := objs[len(objs)-1].DeepCopy()
		u.SetName(name)
		u.SetResourceVersion("")
		u.SetAnnotations(map[string]string{"privacy.lethe.dev/recipient": "Example processor " + name})
		if err := unstructured.SetNestedField(u.Object, name, "spec", "connection", "secretRef", "name"); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Create(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	leaks := append(secretValues(t, objs), "rk_user", "sk_live", "urlpassword", "querysecret", "authorizationsecret",
		"notaurlsecret", "/v1/base", "API.Stripe.com")

	md := lethe(t, "", "ropa", "-n", ns)
	js := lethe(t, "", "ropa", "-n", ns, "-o", "json")
	for _, r := range []result{md, js} {
		if r.code != 0 {
			t.Fatalf("ropa:\n%s", r)
		}
		assertNoLeak(t, r, leaks...)
	}
	for _, want := range []string{
		"| `stripe` | *not declared* | `api.stripe.com` |",
		"| `broken` | Example processor broken (annotation on the DataStore) | not known: key url of connection Secret broken is not a URL with a host |",
		"| `missing` | Example processor missing (annotation on the DataStore) | not known: connection Secret missing could not be read (not found) |",
		// The demo DataStore's payment methods and Stripe's customers share the identity type customerId.
		"-.->|customerId|",
		"subgraph s3[\"stripe (processor: api.stripe.com)\"]",
		// Namespace annotations are absent here.
		"| Controller, name and contact (Art. 30(1)(a)) | *not declared* |",
		"| Categories of data subjects (Art. 30(1)(c)) | *not declared* |",
	} {
		if !strings.Contains(md.stdout, want) {
			t.Errorf("the Markdown has no %q:\n%s", want, md.stdout)
		}
	}
	if !strings.Contains(js.stdout, `"host": "api.stripe.com"`) {
		t.Errorf("the JSON has no processor host:\n%s", js.stdout)
	}
}
