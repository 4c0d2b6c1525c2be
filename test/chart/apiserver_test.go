package chart_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// Kinds whose CRDs (the Prometheus Operator's) the test control plane does not
// have; TestMonitoringIsConfigPrometheus checks them against config/prometheus.
var monitoringKinds = []string{"ServiceMonitor", "PrometheusRule"}

// install applies a rendering as `helm install` would, to the test control
// plane: the Namespace (if rendered) and CRDs for real, then every other
// object with `kubectl apply --dry-run=server`, which must accept each one
// without a Pod Security warning. With apply, the others are applied for real too.
func install(t *testing.T, objs []*unstructured.Unstructured, apply bool) {
	t.Helper()
	for _, ns := range byKind(objs, "Namespace") {
		serverSideApply(t, toYAML(t, []*unstructured.Unstructured{ns}))
	}
	crds := byKind(objs, "CustomResourceDefinition")
	if len(crds) > 0 {
		serverSideApply(t, toYAML(t, crds))
		if _, stderr, err := kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=30s", "crd", "-l", "app.kubernetes.io/part-of=lethe"); err != nil {
			t.Fatalf("the chart's CRDs are not established: %v\n%s", err, stderr)
		}
	}
	rest := without(objs, append([]string{"Namespace", "CustomResourceDefinition"}, monitoringKinds...)...)
	stdout, stderr, err := kubectl(t, toYAML(t, rest), "apply", "--server-side", "--force-conflicts", "--field-manager=helm", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, stderr)
	}
	if n := strings.Count(stdout, "(server dry run)"); n != len(rest) {
		t.Errorf("%d objects accepted in the dry run, want %d:\n%s", n, len(rest), stdout)
	}
	if strings.Contains(stderr, "PodSecurity") {
		t.Errorf("the manager violates the restricted Pod Security Standard:\n%s", stderr)
	}
	if apply {
		serverSideApply(t, toYAML(t, rest))
	}
}

func serverSideApply(t *testing.T, manifests []byte) {
	t.Helper()
	if _, stderr, err := kubectl(t, manifests, "apply", "--server-side", "--force-conflicts", "--field-manager=helm", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply --server-side: %v\n%s", err, stderr)
	}
}

func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// The default installation and the one with every value set are accepted by
// a real API server, the restricted Pod Security Standard enforced.
func TestAPIServerAcceptsTheChart(t *testing.T) {
	t.Run("default values", func(t *testing.T) {
		ensureNamespace(t, "lethe-system", map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"})
		install(t, mustRender(t, "lethe", "lethe-system", nil), false)
	})
	t.Run("every value set", func(t *testing.T) {
		for _, ns := range []string{"team-a", "team-b"} {
			ensureNamespace(t, ns, nil)
		}
		objs := mustRender(t, everyRelease, everyNamespace, everything())
		if ns := byKind(objs, "Namespace"); len(ns) != 1 || ns[0].GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Fatalf("namespace.create renders %d Namespaces, want one enforcing the restricted standard", len(ns))
		}
		install(t, objs, false)
	})
	t.Run("the dry run can fail", func(t *testing.T) {
		// A privileged container in the enforcing namespace is refused, so the
		// check above is not vacuous.
		values := everything()
		values["securityContext"] = map[string]any{"privileged": true}
		rest := without(mustRender(t, everyRelease, everyNamespace, values), append([]string{"Namespace", "CustomResourceDefinition"}, monitoringKinds...)...)
		_, stderr, err := kubectl(t, toYAML(t, rest), "apply", "--server-side", "--dry-run=server", "-f", "-")
		if err == nil && !strings.Contains(stderr, "PodSecurity") {
			t.Errorf("a privileged manager was neither refused nor warned about: %s", stderr)
		}
	})
}

// The namespace-scoped installation with two served namespaces, applied for
// real: its ServiceAccount may do what the manager needs there and in its own
// namespace, nothing elsewhere and nothing cluster-wide; and the real manager
// binary, run as that ServiceAccount with the chart's arguments (every value
// set), starts, leads and creates its digest key without being refused anything.
func TestNamespacedInstallationRunsTheManager(t *testing.T) {
	for _, ns := range []string{"team-a", "team-b"} {
		ensureNamespace(t, ns, nil)
	}
	other := "team-c"
	ensureNamespace(t, other, nil)
	objs := mustRender(t, everyRelease, everyNamespace, everything())
	if n := len(byKind(objs, "ClusterRoleBinding")); n != 0 {
		t.Fatalf("the namespace-scoped installation has %d ClusterRoleBinding(s), want none", n)
	}
	if n := len(byKind(objs, "RoleBinding")); n != 4 { // team-a, team-b, privacy-ops; leader election
		t.Errorf("%d RoleBindings, want 4", n)
	}
	install(t, objs, true)

	dep := deployment(t, objs)
	sa := dep.Spec.Template.Spec.ServiceAccountName
	user := fmt.Sprintf("system:serviceaccount:%s:%s", everyNamespace, sa)
	privacy := privacyv1.GroupVersion.Group
	for _, c := range []struct {
		verb, group, resource, sub, namespace string
		allowed                               bool
	}{
		{"get", "", "secrets", "", "team-a", true},
		{"create", "", "secrets", "", "team-b", true},
		{"list", privacy, "datasubjectrequests", "", "team-b", true},
		{"patch", privacy, "datasubjectrequests", "status", "team-a", true},
		{"patch", privacy, "datasubjectrequests", "", "team-a", false},
		{"get", "", "secrets", "", everyNamespace, true},
		{"update", "coordination.k8s.io", "leases", "", everyNamespace, true},
		{"get", "", "secrets", "", other, false},
		{"list", privacy, "datastores", "", other, false},
		{"list", privacy, "datastores", "", "", false},
		{"list", "", "secrets", "", "team-a", false},
		{"create", "coordination.k8s.io", "leases", "", "team-a", false},
	} {
		if got := testenv.CanI(t, k8s, user, everyNamespace, c.verb, c.group, c.resource, c.sub, c.namespace); got != c.allowed {
			where := c.namespace
			if where == "" {
				where = "all namespaces"
			}
			t.Errorf("%s %s/%s %s in %s: allowed=%v, want %v", c.verb, c.group, c.resource, c.sub, where, got, c.allowed)
		}
	}
	runManager(t, user, dep)
}

// runManager builds the manager and runs it as user with the Deployment's
// arguments (the probe on a free loopback port, metrics off), until it is
// ready, holds the Lease and has created its digest key.
func runManager(t *testing.T, user string, dep *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = testenv.RepoPath()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	probe := testenv.FreePort(t)
	var args []string
	digestKey := ""
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		switch {
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=127.0.0.1:" + probe
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=0"
		case strings.HasPrefix(a, "--digest-key-secret="):
			digestKey = strings.TrimPrefix(a, "--digest-key-secret=")
		}
		args = append(args, strings.ReplaceAll(a, "$(POD_NAMESPACE)", everyNamespace))
	}
	cfgPath := kubeconfig(t, user, "system:serviceaccounts", "system:serviceaccounts:"+everyNamespace, "system:authenticated")
	var logs bytes.Buffer
	cmd := exec.Command(bin, append(args, "--kubeconfig", cfgPath)...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+everyNamespace)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the manager did not stop within 30s of SIGTERM")
		}
		if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
			t.Errorf("the manager was refused something it needs")
		}
		if t.Failed() {
			t.Logf("manager %s\n%s", strings.Join(args, " "), logs.String())
		}
	}()
	testenv.Eventually(t, 60*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the manager exited: %v", err)
		default:
		}
		resp, err := http.Get("http://127.0.0.1:" + probe + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: everyNamespace, Name: "lethe.privacy.lethe.dev"}, lease); err != nil {
			return fmt.Errorf("no leader election Lease yet: %w", err)
		}
		key := &corev1.Secret{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: everyNamespace, Name: digestKey}, key); err != nil {
			return fmt.Errorf("no digest key Secret %q yet: %w", digestKey, err)
		}
		return nil
	})
}

// The command of the chart's README merges the rendered health checks into an
// existing argocd-cm, keeping its other keys.
func TestArgoCDMergeCommandOfTheReadme(t *testing.T) {
	readme := string(mustRead(t, testenv.RepoPath("charts", "lethe", "README.md")))
	m := regexp.MustCompile("(?s)```sh\n(kubectl -n argocd patch configmap argocd-cm.*?)\n```").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("the README has no kubectl patch command for argocd-cm")
	}
	ctx := context.Background()
	ensureNamespace(t, "argocd", nil)
	ensureNamespace(t, "lethe-system", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "argocd-cm"}, Data: map[string]string{"url": "https://argocd.example.com"}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	rendered := byKind(mustRender(t, "lethe", "lethe-system", map[string]any{"argocd": map[string]any{"healthChecks": map[string]any{"enabled": true}}}), "ConfigMap")
	serverSideApply(t, toYAML(t, rendered))

	script := fmt.Sprintf("set -euo pipefail\nkubectl() { %q --kubeconfig %q \"$@\"; }\n%s\n", testenv.KubectlPath(t), kubeconfig(t, ""), m[1])
	if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("the README's command failed: %v\n%s", err, out)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
		t.Fatal(err)
	}
	want, _, _ := unstructured.NestedStringMap(configObject(t, "argocd/argocd-cm.yaml").Object, "data")
	want["url"] = "https://argocd.example.com"
	if d := diff(want, cm.Data); d != "" {
		t.Errorf("argocd-cm after the README's command (- want, + got):\n%s", d)
	}
}
