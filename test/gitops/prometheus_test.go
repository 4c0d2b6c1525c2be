package gitops_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var metricName = regexp.MustCompile(`lethe_[a-z_]+`)

// definedMetrics are the lethe_ metric names written in internal/metrics.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(testenv.RepoPath("internal", "metrics", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no internal/metrics sources: %v", err)
	}
	names := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"(lethe_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	return names
}

type promRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type promRuleSpec struct {
	Groups []struct {
		Name  string     `json:"name"`
		Rules []promRule `json:"rules"`
	} `json:"groups"`
}

func TestPrometheusMonitorAndAlerts(t *testing.T) {
	cmd := exec.Command(testenv.KubectlPath(t), "kustomize", testenv.RepoPath("config", "prometheus"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/prometheus: %v", err)
	}
	objs := decodeManifests(t, out)
	if len(objs) != 2 {
		t.Fatalf("%d objects in config/prometheus, want a ServiceMonitor and a PrometheusRule", len(objs))
	}

	// The ServiceMonitor scrapes the metrics Service of config/default.
	svc := one[corev1.Service](t, decodeManifests(t, renderInstall(t)), "Service")
	monitors := byKind(objs, "ServiceMonitor")
	if len(monitors) != 1 {
		t.Fatal("no ServiceMonitor")
	}
	sm := monitors[0]
	if sm.GetNamespace() != svc.Namespace {
		t.Errorf("the ServiceMonitor is in %q, the metrics Service in %q", sm.GetNamespace(), svc.Namespace)
	}
	var spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port string `json:"port"`
			Path string `json:"path"`
		} `json:"endpoints"`
	}
	raw, _ := yaml.Marshal(sm.Object["spec"])
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Selector.MatchLabels) == 0 {
		t.Error("the ServiceMonitor selects every Service")
	}
	for k, v := range spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s; the metrics Service has labels %v", k, v, svc.Labels)
		}
	}
	if len(spec.Endpoints) != 1 || spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port %q path /metrics", spec.Endpoints, svc.Spec.Ports[0].Name)
	}

	// Every alert uses metrics that exist, and says where to look.
	rules := byKind(objs, "PrometheusRule")
	if len(rules) != 1 {
		t.Fatal("no PrometheusRule")
	}
	var rs promRuleSpec
	raw, _ = yaml.Marshal(rules[0].Object["spec"])
	if err := yaml.UnmarshalStrict(raw, &rs); err != nil {
		t.Fatal(err)
	}
	defined := definedMetrics(t)
	alerts := map[string]bool{}
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				if !defined[m] {
					t.Errorf("alert %s uses %s, which internal/metrics does not define", r.Alert, m)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" || r.Annotations["runbook_url"] == "" {
				t.Errorf("alert %s lacks a severity, summary, description or runbook_url", r.Alert)
			}
		}
	}
	for _, want := range []string{"LetheRequestDeadlineMissed", "LetheRequestStalled", "LetheDataStoreNotReady", "LetheRowsPastRetention"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}

	// The PromQL itself, with promtool when it is installed (apt-get install prometheus).
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: the alerts' PromQL and their unit tests (config/prometheus/tests) were not run")
		return
	}
	rulesFile := "/tmp/lethe-rules.yaml" // the path config/prometheus/tests/alerts.promtool.yaml loads
	if err := os.WriteFile(rulesFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", testenv.RepoPath("config", "prometheus", "tests", "alerts.promtool.yaml")},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Metric names documented in docs/operations.md are the ones defined.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(testenv.RepoPath("docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for m := range definedMetrics(t) {
		if !strings.Contains(string(doc), m) {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/operations.md does not describe %s", strings.Join(missing, ", "))
	}
}
