package gitops_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// config/namespaced against a real API server: nothing cluster-wide is bound
// to the manager, it may act only in the namespaces it serves (and its own),
// and the real manager binary, started with these permissions alone and the
// overlay's --watch-namespaces, carries out a request in a served namespace.
func TestNamespacedInstallationGrantsOnlyTheServedNamespaces(t *testing.T) {
	served, other := newNamespace(t), newNamespace(t)
	const operatorNS = "lethe-nsmode"
	rendered := renderOverlay(t, "namespaced")
	if !bytes.Contains(rendered, []byte("--watch-namespaces=team-a")) || !bytes.Contains(rendered, []byte("namespace: team-a")) {
		t.Fatal("config/namespaced no longer serves team-a: update this test")
	}
	// Installed beside config/default's installation: another operator
	// namespace, and a served namespace of this test's own.
	rendered = bytes.ReplaceAll(rendered, []byte("lethe-system"), []byte(operatorNS))
	rendered = bytes.ReplaceAll(rendered, []byte("team-a"), []byte(served))
	objs := decodeManifests(t, rendered)
	if n := len(byKind(objs, "ClusterRoleBinding")); n != 0 {
		t.Fatalf("the namespaced installation has %d ClusterRoleBinding(s), want none", n)
	}
	if _, stderr, err := kubectl(t, rendered, "apply", "--server-side", "--force-conflicts", "--field-manager=lethe-gitops-namespaced", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply --server-side: %v\n%s", err, stderr)
	}
	sa := one[corev1.ServiceAccount](t, objs, "ServiceAccount")
	user := fmt.Sprintf("system:serviceaccount:%s:%s", sa.Namespace, sa.Name)
	privacy := privacyv1.GroupVersion.Group
	checks := []struct {
		verb, group, resource, namespace string
		allowed                          bool
	}{
		{"get", "", "secrets", served, true},
		{"create", "", "secrets", served, true},
		{"list", privacy, "datasubjectrequests", served, true},
		{"patch", privacy, "datasubjectrequests", served, false}, // only status
		{"get", "", "secrets", operatorNS, true},                 // its digest key
		{"get", "", "secrets", other, false},
		{"list", privacy, "datastores", other, false},
		{"list", privacy, "datastores", "", false}, // nothing cluster-wide
		{"watch", privacy, "datasubjectrequests", "", false},
		{"create", "events.k8s.io", "events", other, false},
	}
	for _, c := range checks {
		where := c.namespace
		if where == "" {
			where = "all namespaces"
		}
		if got := testenv.CanI(t, k8s, user, sa.Namespace, c.verb, c.group, c.resource, "", c.namespace); got != c.allowed {
			t.Errorf("%s %s/%s in %s: allowed=%v, want %v", c.verb, c.group, c.resource, where, got, c.allowed)
		}
	}
	dep := one[appsv1.Deployment](t, objs, "Deployment")
	if args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--watch-namespaces="+served) {
		t.Fatalf("the Deployment does not pass --watch-namespaces: %s", args)
	}
	runManagerAs(t, user, sa.Namespace, dep, served)
}
