package gitops_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// config/default, as `make build-installer` renders it, checked against a real
// API server: it must be accepted (kubectl apply --dry-run=server), pass the
// restricted Pod Security Standard, and its RBAC must let the real manager
// binary do its job while denying it everything else.

const testImage = "registry.example.com/lethe/manager:v0.0.0-test"

// kubectl runs kubectl against the test control plane as its admin.
func kubectl(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(testenv.KubectlPath(t), append([]string{"--kubeconfig", adminKubeconfig(t)}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

var adminKubeconfigPath string

func adminKubeconfig(t *testing.T) string {
	if adminKubeconfigPath == "" {
		dir, err := os.MkdirTemp("", "lethe-gitops-")
		if err != nil {
			t.Fatal(err)
		}
		p := kubeconfig(t, env.Config, "")
		adminKubeconfigPath = filepath.Join(dir, "kubeconfig")
		if err := os.Rename(p, adminKubeconfigPath); err != nil {
			t.Fatal(err)
		}
	}
	return adminKubeconfigPath
}

// renderInstall renders config/default the way `make build-installer` does.
func renderInstall(t *testing.T) []byte {
	t.Helper()
	return renderOverlay(t, "default")
}

// renderOverlay renders config/<overlay> with the test image.
func renderOverlay(t *testing.T, overlay string) []byte {
	t.Helper()
	cmd := exec.Command(testenv.KubectlPath(t), "kustomize", testenv.RepoPath("config", overlay))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/%s: %v\n%s", overlay, err, errb.String())
	}
	if n := bytes.Count(out, []byte("image: controller:latest")); n != 1 {
		t.Fatalf("%d manager image placeholders (image: controller:latest) in the rendered output, want 1", n)
	}
	return bytes.ReplaceAll(out, []byte("image: controller:latest"), []byte("image: "+testImage))
}

func byKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func one[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) *T {
	t.Helper()
	found := byKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("%d %s objects in the installation, want 1", len(found), kind)
	}
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(found[0].Object, v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInstallationIsWhatItClaims(t *testing.T) {
	objs := decodeManifests(t, renderInstall(t))
	if n := len(byKind(objs, "CustomResourceDefinition")); n != 4 {
		t.Errorf("%d CRDs, want 4", n)
	}
	// config/admission: inline identities, DataStore weakening, the manager's Secret deletions.
	if p, b := len(byKind(objs, "ValidatingAdmissionPolicy")), len(byKind(objs, "ValidatingAdmissionPolicyBinding")); p != 4 || b != 4 {
		t.Errorf("%d admission policies and %d bindings, want 4 and 4", p, b)
	}
	ns := one[corev1.Namespace](t, objs, "Namespace")
	if ns.Name != "lethe-system" || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s with labels %v, want lethe-system enforcing the restricted Pod Security Standard", ns.Name, ns.Labels)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding": // cluster-scoped
		default:
			if o.GetNamespace() != "lethe-system" {
				t.Errorf("%s %s is in namespace %q, want lethe-system", o.GetKind(), o.GetName(), o.GetNamespace())
			}
		}
	}
	sa := one[corev1.ServiceAccount](t, objs, "ServiceAccount")
	dep := one[appsv1.Deployment](t, objs, "Deployment")
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("the Deployment runs as %q, the ServiceAccount is %q", pod.ServiceAccountName, sa.Name)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != testImage {
		t.Errorf("image %q, want %q", c.Image, testImage)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8080", "--operator-namespace=$(POD_NAMESPACE)"} {
		if !strings.Contains(args, want) {
			t.Errorf("manager args %q lack %s", args, want)
		}
	}
	podNS := false
	for _, e := range c.Env {
		podNS = podNS || (e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace")
	}
	if !podNS {
		t.Error("POD_NAMESPACE is not set from the downward API (metadata.namespace)")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("no /healthz liveness probe")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("no /readyz readiness probe")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("resource requests %v, want cpu and memory", c.Resources.Requests)
	}
	sc := c.SecurityContext
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("the pod does not require a non-root user")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context %+v, want a read-only root filesystem, no privilege escalation, all capabilities dropped", sc)
	}
	svc := one[corev1.Service](t, objs, "Service")
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the metrics Service selects %s=%s, which the manager's pods do not carry", k, v)
		}
	}
	portNames := map[string]bool{}
	for _, p := range c.Ports {
		portNames[p.Name] = true
	}
	if len(svc.Spec.Ports) != 1 || !portNames[svc.Spec.Ports[0].TargetPort.StrVal] {
		t.Errorf("the metrics Service targets %v, not a named port of the manager %v", svc.Spec.Ports, portNames)
	}
}

func TestInstallationIsAcceptedAndItsRBACIsLeastPrivilege(t *testing.T) {
	rendered := renderInstall(t)
	objs := decodeManifests(t, rendered)

	// The namespace first, for real, so its Pod Security labels apply to the dry run.
	nsYAML, err := yaml.Marshal(byKind(objs, "Namespace")[0].Object)
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := kubectl(t, nsYAML, "apply", "-f", "-"); err != nil {
		t.Fatalf("applying the namespace: %v\n%s", err, stderr)
	}

	t.Run("kubectl apply --dry-run=server accepts every object, without Pod Security warnings", func(t *testing.T) {
		stdout, stderr, err := kubectl(t, rendered, "apply", "--dry-run=server", "-f", "-")
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, stderr)
		}
		if n := strings.Count(stdout, "(server dry run)"); n != len(objs) {
			t.Errorf("%d objects accepted in the dry run, want %d:\n%s", n, len(objs), stdout)
		}
		if strings.Contains(stderr, "PodSecurity") {
			t.Errorf("the manager violates the restricted Pod Security Standard:\n%s", stderr)
		}
		// The check above can fail: a privileged pod in the same namespace is warned about.
		bad := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"privileged","namespace":"lethe-system"},
"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
"spec":{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}}}}`)
		_, stderr, err = kubectl(t, bad, "apply", "--dry-run=server", "-f", "-")
		if err != nil || !strings.Contains(stderr, "PodSecurity") {
			t.Errorf("a privileged Deployment was not warned about (err %v): %s", err, stderr)
		}
	})

	if _, stderr, err := kubectl(t, rendered, "apply", "--server-side", "--force-conflicts", "--field-manager=lethe-gitops-test", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply --server-side: %v\n%s", err, stderr)
	}
	sa := one[corev1.ServiceAccount](t, objs, "ServiceAccount")
	user := fmt.Sprintf("system:serviceaccount:%s:%s", sa.Namespace, sa.Name)
	tenant := newNamespace(t)

	t.Run("the manager's ServiceAccount may do exactly what the manager needs", func(t *testing.T) {
		type check struct {
			verb, group, resource, subresource, namespace string
			allowed                                       bool
		}
		privacy := privacyv1.GroupVersion.Group
		checks := []check{
			// Its own digest key, in its namespace (main.go: read, or create at first start).
			{"get", "", "secrets", "", "lethe-system", true},
			{"create", "", "secrets", "", "lethe-system", true},
			// Connection and subject Secrets are read by name; Access exports are written.
			{"get", "", "secrets", "", tenant, true},
			{"create", "", "secrets", "", tenant, true},
			{"update", "", "secrets", "", tenant, true},
			// Completed requests' input Secrets and expired exports are deleted
			// (RBAC cannot narrow delete by label: the lethe-manager-secret-deletion
			// admission policy does, see test/security) ...
			{"delete", "", "secrets", "", tenant, true},
			// ... but Secrets are never listed or watched, anywhere.
			{"list", "", "secrets", "", "", false},
			{"list", "", "secrets", "", tenant, false},
			{"watch", "", "secrets", "", "lethe-system", false},
			{"deletecollection", "", "secrets", "", tenant, false},
			// Lethe's objects: read everywhere, only their status written.
			{"list", privacy, "datastores", "", "", true},
			{"watch", privacy, "datasubjectrequests", "", "", true},
			{"list", privacy, "retentionpolicies", "", "", true},
			{"list", privacy, "legalholds", "", "", true},
			{"patch", privacy, "datasubjectrequests", "status", tenant, true},
			{"patch", privacy, "datastores", "status", tenant, true},
			{"update", privacy, "datasubjectrequests", "", tenant, false},
			{"create", privacy, "datasubjectrequests", "", tenant, false},
			{"delete", privacy, "datastores", "", tenant, false},
			{"update", privacy, "datastores", "", tenant, false},
			// Events for every state change.
			{"create", "events.k8s.io", "events", "", tenant, true},
			// Leader election, only in its own namespace.
			{"update", "coordination.k8s.io", "leases", "", "lethe-system", true},
			{"create", "coordination.k8s.io", "leases", "", tenant, false},
			// Nothing else.
			{"get", "", "pods", "", tenant, false},
			{"list", "", "configmaps", "", "", false},
			{"create", "apps", "deployments", "", tenant, false},
			{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", false},
			{"create", "rbac.authorization.k8s.io", "rolebindings", "", tenant, false},
		}
		for _, c := range checks {
			if allowed := testenv.CanI(t, k8s, user, sa.Namespace, c.verb, c.group, c.resource, c.subresource, c.namespace); allowed != c.allowed {
				where := c.namespace
				if where == "" {
					where = "all namespaces"
				}
				t.Errorf("%s %s/%s %s in %s: allowed=%v, want %v", c.verb, c.group, c.resource, c.subresource, where, allowed, c.allowed)
			}
		}
	})

	t.Run("the manager binary runs with these permissions alone", func(t *testing.T) {
		runManagerAs(t, user, sa.Namespace, one[appsv1.Deployment](t, objs, "Deployment"), tenant)
	})
}

// runManagerAs builds the manager and runs it as user (impersonated) with the
// Deployment's arguments and POD_NAMESPACE, then checks that it starts, leads,
// creates its digest key and carries out a real Access request in tenant,
// without a single forbidden request.
func runManagerAs(t *testing.T, user, namespace string, dep *appsv1.Deployment, tenant string) {
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = testenv.RepoPath()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	probe := testenv.FreePort(t)
	var args []string
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		switch {
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=127.0.0.1:" + probe
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=0"
		}
		args = append(args, strings.ReplaceAll(a, "$(POD_NAMESPACE)", namespace))
	}
	// The demo database listens on loopback, which the default egress policy refuses.
	args = append(args, "--egress-allow=127.0.0.0/8")
	cfg := kubeconfig(t, env.Config, user)
	addServiceAccountGroups(t, cfg, namespace)
	var logs bytes.Buffer
	cmd := exec.Command(bin, append(args, "--kubeconfig", cfg)...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+namespace)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the manager exited with %v on SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the manager did not stop within 30s of SIGTERM")
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("manager output:\n%s", logs.String())
		}
	}()

	eventually(t, 60*time.Second, func() error {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("the manager exited: %v", err)
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
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "lethe.privacy.lethe.dev"}, lease); err != nil {
			return fmt.Errorf("no leader election Lease yet: %w", err)
		}
		key := &corev1.Secret{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "lethe-digest-key"}, key); err != nil {
			return fmt.Errorf("no digest key Secret yet: %w", err)
		}
		if len(key.Data["key"]) < 16 {
			return fmt.Errorf("the digest key is %d bytes", len(key.Data["key"]))
		}
		return nil
	})

	// A real request in a tenant namespace: read Secrets, check the store, write status, Events and the export.
	dsn := demoDatabase(t)
	objs := readManifests(t, demoFile("datastore.yaml"), demoFile("subject.yaml"))
	objs = append(objs, readManifests(t, demoFile("requests.yaml"))[0]) // demo-access
	for _, o := range objs {
		o.SetNamespace(tenant)
	}
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "demo-db"}, StringData: map[string]string{"dsn": dsn}}); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	access := &privacyv1.DataSubjectRequest{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "demo-access"}}
	waitCondition(t, access, func() []metav1.Condition { return access.Status.Conditions }, privacyv1.ConditionReady, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if access.Status.ExportSecretRef == nil {
		t.Fatal("the Access request has no export Secret")
	}
	export := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: tenant, Name: access.Status.ExportSecretRef.Name}, export); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(export.Data["export.json"]), "jane.doe@example.com") {
		t.Error("the export does not hold the subject's data")
	}
	stop()
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("the manager was refused something it needs:\n%s", logs.String())
	}
}

// addServiceAccountGroups makes the impersonated user carry the groups a
// ServiceAccount token carries.
func addServiceAccountGroups(t *testing.T, path, namespace string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("    as: "), []byte(fmt.Sprintf("    as-groups:\n    - system:serviceaccounts\n    - system:serviceaccounts:%s\n    as: ", namespace)), 1)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The argocd-cm snippet merges into an existing argocd-cm as its comment says.
func TestArgoCDConfigMapPatchMerges(t *testing.T) {
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "argocd-cm"}, Data: map[string]string{"url": "https://argocd.example.com"}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := kubectl(t, nil, "-n", "argocd", "patch", "configmap", "argocd-cm", "--type", "merge",
		"--patch-file", testenv.RepoPath("config", "argocd", "argocd-cm.yaml")); err != nil {
		t.Fatalf("kubectl patch: %v\n%s", err, stderr)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["url"] != "https://argocd.example.com" {
		t.Error("the patch removed an existing key")
	}
	for _, kind := range healthKinds {
		if cm.Data[argoKey(kind)] != healthScript(t, kind) {
			t.Errorf("%s is not the content of config/argocd/health/%s.lua after the patch", argoKey(kind), kind)
		}
	}
}
