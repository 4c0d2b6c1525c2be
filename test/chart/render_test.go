package chart_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/pmezard/go-difflib/difflib"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/release"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// kubeVersion is the version of the test control plane, which rendering
// reports to the chart (.Capabilities.KubeVersion).
const kubeVersion = "v1.37.2"

var (
	loadOnce sync.Once
	loaded   *chartv2.Chart
	loadErr  error
)

func chart(t *testing.T) *chartv2.Chart {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = loader.Load(testenv.RepoPath("charts", "lethe")) })
	if loadErr != nil {
		t.Fatalf("loading charts/lethe: %v", loadErr)
	}
	return loaded
}

// render renders the chart as `helm template <release> charts/lethe -n <namespace>`
// does (client-side dry run of an install), values validated by the schema.
func render(t *testing.T, releaseName, namespace string, values map[string]any) (string, error) {
	t.Helper()
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.Replace = true
	install.IncludeCRDs = true
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	rel, err := install.Run(chart(t), copyValues(values))
	if err != nil {
		return "", err
	}
	acc, err := release.NewAccessor(rel)
	if err != nil {
		t.Fatal(err)
	}
	return acc.Manifest(), nil
}

// mustRender renders and decodes, failing the test on an error.
func mustRender(t *testing.T, releaseName, namespace string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	manifest, err := render(t, releaseName, namespace, values)
	if err != nil {
		t.Fatalf("rendering the chart with %v: %v", values, err)
	}
	return decode(t, []byte(manifest))
}

// copyValues deep-copies values through JSON, as Helm receives them from
// --values files (numbers as float64, no aliasing between tests).
func copyValues(v map[string]any) map[string]any {
	if v == nil {
		return map[string]any{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// lint runs `helm lint --strict` with values and returns its messages.
func lint(t *testing.T, values map[string]any) []string {
	t.Helper()
	l := action.NewLint()
	l.Strict = true
	l.Namespace = "lethe-system"
	kv, _ := common.ParseKubeVersion(kubeVersion)
	l.KubeVersion = kv
	res := l.Run([]string{testenv.RepoPath("charts", "lethe")}, copyValues(values))
	var msgs []string
	for _, err := range res.Errors {
		msgs = append(msgs, "error: "+err.Error())
	}
	for _, m := range res.Messages {
		if m.Severity < support.WarningSev {
			t.Logf("helm lint: %s", m.Error()) // informational, such as "icon is recommended"
			continue
		}
		msgs = append(msgs, m.Error())
	}
	return msgs
}

// ---- comparing the chart with config/ ------------------------------------------

// helmLabels are the labels Helm charts add and kustomize does not: release
// bookkeeping. They are removed from both sides of a comparison, and so is
// app.kubernetes.io/instance from selectors (the chart selects its own
// release's pods only).
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}

// normalize returns what must be equal between the chart's and config/'s
// rendering of an object: everything but Helm's bookkeeping labels, the
// `helm.sh/resource-policy` annotation, and the order of the manager's
// arguments. Every object of the chart is labelled app.kubernetes.io/name;
// config/ leaves it off the generated CRDs and ClusterRole.
func normalize(u *unstructured.Unstructured, image string) map[string]any {
	o := u.DeepCopy().Object
	if clusterScoped(u) {
		delete(mapAt(o, "metadata"), "namespace")
	}
	labels := mapAt(o, "metadata", "labels")
	if labels == nil {
		labels = map[string]any{}
		mapAt(o, "metadata")["labels"] = labels
	}
	for _, l := range helmLabels {
		delete(labels, l)
	}
	if _, ok := labels["app.kubernetes.io/name"]; !ok {
		labels["app.kubernetes.io/name"] = "lethe"
	}
	if ann := mapAt(o, "metadata", "annotations"); ann != nil {
		delete(ann, "helm.sh/resource-policy")
		if len(ann) == 0 {
			delete(mapAt(o, "metadata"), "annotations")
		}
	}
	for _, sel := range [][]string{
		{"spec", "selector", "matchLabels"}, // Deployment, ServiceMonitor
		{"spec", "template", "metadata", "labels"},
	} {
		if m := mapAt(o, sel...); m != nil {
			delete(m, "app.kubernetes.io/instance")
		}
	}
	if u.GetKind() == "Service" {
		if m := mapAt(o, "spec", "selector"); m != nil {
			delete(m, "app.kubernetes.io/instance")
		}
	}
	if u.GetKind() == "Deployment" {
		for _, c := range sliceAt(o, "spec", "template", "spec", "containers") {
			c := c.(map[string]any)
			if args, ok := c["args"].([]any); ok {
				sort.Slice(args, func(i, j int) bool { return fmt.Sprint(args[i]) < fmt.Sprint(args[j]) })
			}
			c["image"] = image
		}
	}
	return o
}

func mapAt(o map[string]any, path ...string) map[string]any {
	cur := o
	for _, p := range path {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

func sliceAt(o map[string]any, path ...string) []any {
	m := mapAt(o, path[:len(path)-1]...)
	if m == nil {
		return nil
	}
	s, _ := m[path[len(path)-1]].([]any)
	return s
}

func key(u *unstructured.Unstructured) string {
	ns := u.GetNamespace()
	if clusterScoped(u) {
		ns = ""
	}
	return fmt.Sprintf("%s %s %s/%s", u.GetAPIVersion(), u.GetKind(), ns, u.GetName())
}

// clusterScoped asks the API server (its discovery) whether u's kind is
// cluster-scoped. kustomize sets its namespace on cluster-scoped kinds it does
// not know (ValidatingAdmissionPolicy); the API server ignores it.
func clusterScoped(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	m, err := k8s.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	return err == nil && m.Scope.Name() == meta.RESTScopeNameRoot
}

// compareObjects fails the test with every difference between got and want.
func compareObjects(t *testing.T, what string, got, want []*unstructured.Unstructured) {
	t.Helper()
	for _, d := range differences(got, want) {
		t.Errorf("%s: %s", what, d)
	}
}

// differences lists every object of want that got lacks or renders
// differently (with a unified diff of the normalized YAML), and every object
// got has beyond want.
func differences(got, want []*unstructured.Unstructured) []string {
	var out []string
	index := func(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
		m := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			if _, dup := m[key(o)]; dup {
				out = append(out, key(o)+" is rendered twice")
			}
			m[key(o)] = o
		}
		return m
	}
	g, w := index(got), index(want)
	for _, k := range slices.Sorted(maps.Keys(w)) {
		o, ok := g[k]
		if !ok {
			out = append(out, "the chart does not render "+k)
			continue
		}
		if d := diff(normalize(w[k], "IMAGE"), normalize(o, "IMAGE")); d != "" {
			out = append(out, fmt.Sprintf("%s differs (- config/, + chart):\n%s", k, d))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g)) {
		if _, ok := w[k]; !ok {
			out = append(out, "the chart renders "+k+", which config/ does not")
		}
	}
	return out
}

// diff is a unified diff of a and b as YAML; "" when they are equal.
func diff(a, b any) string {
	ya, _ := yaml.Marshal(a)
	yb, _ := yaml.Marshal(b)
	if string(ya) == string(yb) {
		return ""
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(ya)), B: difflib.SplitLines(string(yb)), Context: 3,
	})
	return d
}

func byKind(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if slices.Contains(kinds, o.GetKind()) {
			out = append(out, o)
		}
	}
	return out
}

func without(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if !slices.Contains(kinds, o.GetKind()) {
			out = append(out, o)
		}
	}
	return out
}

func toYAML(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return []byte(b.String())
}
