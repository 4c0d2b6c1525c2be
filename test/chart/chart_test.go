package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/lethe-dev/lethe/hack/helmgen/chartgen"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// The files make helm writes are what it would write now: the chart's
// _config.tpl is config/ as it is, and the README's values table is values.yaml.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := chartgen.Generate(testenv.RepoPath())
	if err != nil {
		t.Fatalf("make helm would fail: %v", err)
	}
	if stale := chartgen.Stale(testenv.RepoPath(), files); len(stale) > 0 {
		slices.Sort(stale)
		t.Errorf("not up to date, run `make helm`: %s", strings.Join(stale, ", "))
	}
}

func TestChartLintsClean(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"default values":    nil,
		"every value set":   everything(),
		"namespace-scoped":  {"watchNamespaces": []any{"team-a"}},
		"nothing optional":  {"crds": map[string]any{"install": false}, "rbac": map[string]any{"create": false}, "serviceAccount": map[string]any{"create": false, "name": "existing"}, "metrics": map[string]any{"enabled": false}},
		"image by its name": {"image": map[string]any{"repository": "registry.example.com/lethe/manager", "tag": "v1.2.3"}},
	} {
		t.Run(name, func(t *testing.T) {
			if msgs := lint(t, values); len(msgs) > 0 {
				t.Errorf("helm lint --strict:\n%s", strings.Join(msgs, "\n"))
			}
		})
	}
}

// With its default values, installed as release "lethe" in lethe-system, the
// chart renders what config/default renders: the same CRDs, RBAC, Deployment
// (arguments, probes, security contexts, resources, volumes) and metrics
// Service. The Namespace, which a Helm release does not own by default,
// comes with namespace.create.
func TestDefaultRenderingIsConfigDefault(t *testing.T) {
	want := kustomize(t, "default")
	got := mustRender(t, "lethe", "lethe-system", nil)
	compareObjects(t, "default values vs config/default", got, without(want, "Namespace"))

	got = mustRender(t, "lethe", "lethe-system", map[string]any{"namespace": map[string]any{"create": true}})
	compareObjects(t, "namespace.create vs config/default", byKind(got, "Namespace"), byKind(want, "Namespace"))

	// The comparison can fail: a changed default is a difference.
	got = mustRender(t, "lethe", "lethe-system", map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "1Gi"}}})
	if len(differences(byKind(got, "Deployment"), byKind(want, "Deployment"))) == 0 {
		t.Error("a Deployment with other resource limits compared equal to config/default's")
	}
}

// watchNamespaces [team-a] renders what config/namespaced renders: no
// ClusterRoleBinding, a RoleBinding in team-a and in the release namespace,
// and --watch-namespaces=team-a.
func TestNamespacedRenderingIsConfigNamespaced(t *testing.T) {
	want := kustomize(t, "namespaced")
	got := mustRender(t, "lethe", "lethe-system", map[string]any{"watchNamespaces": []any{"team-a"}})
	compareObjects(t, "watchNamespaces vs config/namespaced", got, without(want, "Namespace"))

	// Serving its own namespace too binds the rules there once.
	got = mustRender(t, "lethe", "lethe-system", map[string]any{"watchNamespaces": []any{"team-a", "lethe-system"}})
	var where []string
	for _, rb := range byKind(got, "RoleBinding") {
		if rb.GetName() == "lethe-manager-rolebinding" {
			where = append(where, rb.GetNamespace())
		}
	}
	if slices.Sort(where); !slices.Equal(where, []string{"lethe-system", "team-a"}) {
		t.Errorf("the manager's RoleBindings are in %v, want lethe-system and team-a once each", where)
	}
}

// admission.allowInlineIdentities is config/default with the component
// config/components/allow-inline-identities; admission.enabled=false leaves
// every policy out.
func TestAdmissionSwitches(t *testing.T) {
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, testenv.RepoPath("config"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := fmt.Sprintf("resources:\n  - %s/default\ncomponents:\n  - %s/components/allow-inline-identities\n", rel, rel)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	want := kustomize(t, dir)
	got := mustRender(t, "lethe", "lethe-system", map[string]any{"admission": map[string]any{"allowInlineIdentities": true}})
	compareObjects(t, "allowInlineIdentities vs config/default + allow-inline-identities", got, without(want, "Namespace"))

	got = mustRender(t, "lethe", "lethe-system", map[string]any{"admission": map[string]any{"enabled": false}})
	if n := len(byKind(got, "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")); n != 0 {
		t.Errorf("admission.enabled=false renders %d admission objects", n)
	}
	if n := len(byKind(mustRender(t, "lethe", "lethe-system", nil), "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")); n < 2 {
		t.Errorf("the default values render %d admission objects", n)
	}
}

// serviceMonitor and prometheusRule render config/prometheus; the alert on a
// missing manager watches the job of the release's own metrics Service.
func TestMonitoringIsConfigPrometheus(t *testing.T) {
	want := kustomize(t, "prometheus")
	on := map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}}
	got := mustRender(t, "lethe", "lethe-system", on)
	compareObjects(t, "monitoring vs config/prometheus", byKind(got, "ServiceMonitor", "PrometheusRule"), want)
	if n := len(byKind(mustRender(t, "lethe", "lethe-system", nil), "ServiceMonitor", "PrometheusRule")); n != 0 {
		t.Errorf("%d Prometheus Operator objects with the default values, want none (their CRDs may not exist)", n)
	}

	other := mustRender(t, "billing", "privacy", on)
	svc := byKind(other, "Service")
	if len(svc) != 1 {
		t.Fatalf("%d Services, want the metrics Service", len(svc))
	}
	rules := byKind(other, "PrometheusRule")
	text, _, _ := unstructured.NestedSlice(rules[0].Object, "spec", "groups")
	if s := toYAML(t, rules); !strings.Contains(string(s), `up{job="`+svc[0].GetName()+`"}`) || len(text) == 0 {
		t.Errorf("the alerts of release billing do not watch job %q:\n%s", svc[0].GetName(), s)
	}
	// Prometheus templates in annotations survive Helm's templating.
	if s := toYAML(t, rules); !strings.Contains(string(s), "{{ $labels.namespace }}") {
		t.Errorf("the alerts lost their Prometheus templates:\n%s", s)
	}

	// The ServiceMonitor selects the metrics Service of its release, on its port.
	sm := byKind(other, "ServiceMonitor")[0]
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc[0].GetLabels()[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s; the metrics Service has %v", k, v, svc[0].GetLabels())
		}
	}
	ports, _, _ := unstructured.NestedSlice(svc[0].Object, "spec", "ports")
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(ports) != 1 || len(eps) != 1 || ports[0].(map[string]any)["name"] != eps[0].(map[string]any)["port"] {
		t.Errorf("ServiceMonitor endpoints %v do not name the Service's port %v", eps, ports)
	}
}

// The Argo CD health checks are those of config/argocd.
func TestArgoCDHealthChecksAreConfigArgoCD(t *testing.T) {
	got := mustRender(t, "lethe", "lethe-system", map[string]any{"argocd": map[string]any{"healthChecks": map[string]any{"enabled": true, "namespace": "argocd"}}})
	cms := byKind(got, "ConfigMap")
	if len(cms) != 1 || cms[0].GetNamespace() != "argocd" {
		t.Fatalf("want one ConfigMap in namespace argocd, got %d", len(cms))
	}
	want := configObject(t, "argocd/argocd-cm.yaml")
	gd, _, _ := unstructured.NestedStringMap(cms[0].Object, "data")
	wd, _, _ := unstructured.NestedStringMap(want.Object, "data")
	if d := diff(wd, gd); d != "" || len(wd) != 4 {
		t.Errorf("health checks differ from config/argocd/argocd-cm.yaml (%d keys):\n%s", len(wd), d)
	}
}

func configObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(testenv.RepoPath("config", path))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, data)
	if len(objs) != 1 {
		t.Fatalf("config/%s: %d objects, want 1", path, len(objs))
	}
	return objs[0]
}

// Values that cannot work are refused with a message, before anything is applied.
func TestImpossibleValuesAreRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"replicas without leader election", map[string]any{"replicaCount": 2, "leaderElection": map[string]any{"enabled": false}}, "needs leaderElection.enabled"},
		{"ServiceMonitor without metrics", map[string]any{"metrics": map[string]any{"enabled": false}, "serviceMonitor": map[string]any{"enabled": true}}, "needs metrics.enabled"},
		{"a namespace that is not a name", map[string]any{"watchNamespaces": []any{"Team_A"}}, "watchNamespaces"},
		{"a comma-separated list as one namespace", map[string]any{"watchNamespaces": "team-a,team-b"}, "watchNamespaces"},
		{"an unknown value (a typo)", map[string]any{"watchNamespace": []any{"team-a"}}, "watchNamespace"},
		{"workers as text", map[string]any{"workers": "many"}, "workers"},
		{"a deadline that is not a duration", map[string]any{"deadlines": map[string]any{"erasure": "1 day"}}, "erasure"},
		{"two egress entries in one", map[string]any{"egress": map[string]any{"allow": []any{"10.0.0.0/8,192.168.0.0/16"}}}, "allow"},
		{"no digest key Secret", map[string]any{"digestKeySecret": ""}, "digestKeySecret"},
		{"an existing ServiceAccount without a name", map[string]any{"serviceAccount": map[string]any{"create": false}}, "serviceAccount.name"},
		{"a log level the manager does not know", map[string]any{"logging": map[string]any{"level": "verbose"}}, "level"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, "lethe", "lethe-system", c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("rendering with %v: error %v, want one mentioning %q", c.values, err, c.want)
			}
		})
	}
}

// The README shows how to install, and documents every value (its table is
// generated: TestGeneratedFilesAreCurrent).
func TestReadmeShowsTheInstallCommand(t *testing.T) {
	readme, err := os.ReadFile(testenv.RepoPath("charts", "lethe", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "helm install lethe charts/lethe -n lethe-system --create-namespace") {
		t.Error("the chart's README does not show `helm install lethe charts/lethe -n lethe-system --create-namespace`")
	}
	rows, err := chartgen.ValueRows(mustRead(t, testenv.RepoPath("charts", "lethe", "values.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if !strings.Contains(string(readme), "| `"+r.Key+"` |") {
			t.Errorf("the README's values table lacks %s", r.Key)
		}
	}
}

// The values table generator refuses a value without a description, so the
// table cannot silently miss one.
func TestUndocumentedValuesAreRefused(t *testing.T) {
	for _, bad := range []string{
		"# -- documented\na: 1\nb: 2\n",
		"outer:\n  # -- documented\n  a: 1\n  inner:\n    b: true\n",
		"# -- documented whole\nm:\n  # -- but this too\n  a: 1\n",
		"empty: {}\n",
	} {
		if _, err := chartgen.ValueRows([]byte(bad)); err == nil {
			t.Errorf("ValueRows accepted\n%s", bad)
		}
	}
	rows, err := chartgen.ValueRows([]byte("# Section.\n\n# -- the a\n# on two lines\na: x\nm:\n  # -- the b\n  b: [1]\n"))
	if err != nil || len(rows) != 2 || rows[0] != (chartgen.Row{Key: "a", Type: "string", Default: "`\"x\"`", Description: "the a on two lines"}) || rows[1].Key != "m.b" || rows[1].Default != "`[1]`" {
		t.Errorf("ValueRows = %+v, %v", rows, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	deps := byKind(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deps))
	}
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(deps[0].Object, d); err != nil {
		t.Fatal(err)
	}
	return d
}
