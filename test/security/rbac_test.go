package security

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// grant is one (API group, resource, verb) a role allows.
type grant struct{ group, resource, verb string }

func (g grant) String() string { return fmt.Sprintf("%s/%s:%s", g.group, g.resource, g.verb) }

func grantsOf(rules []rbacv1.PolicyRule) []grant {
	var out []grant
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, grant{g, res, v})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b grant) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

// managerNeeds is every permission the manager needs, and why. A new rule in
// role.yaml fails this test until it is added here with its reason.
var managerNeeds = []struct {
	rule rbacv1.PolicyRule
	why  string
}{
	{rbacv1.PolicyRule{APIGroups: []string{"privacy.lethe.dev"}, Resources: []string{"datastores", "datasubjectrequests", "retentionpolicies", "legalholds"}, Verbs: []string{"get", "list", "watch"}},
		"the controllers watch their kinds; requests read policies (exemptions) and holds"},
	{rbacv1.PolicyRule{APIGroups: []string{"privacy.lethe.dev"}, Resources: []string{"datastores/status", "datasubjectrequests/status", "retentionpolicies/status", "legalholds/status"}, Verbs: []string{"get", "update", "patch"}},
		"each controller writes its kind's status with optimistic-lock patches"},
	{rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update"}},
		"get: connection, masking-key and subject Secrets by name; create/update: Access exports and the digest key"},
	{rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"delete"}},
		"completed requests' input Secrets handed over for it, and expired exports (narrowed by the lethe-manager-secret-deletion admission policy)"},
	{rbacv1.PolicyRule{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		"an Event per state change"},
}

// TestManagerRoleGrantsOnlyWhatTheControllersNeed parses config/rbac/role.yaml
// and compares its permissions, one (group, resource, verb) at a time, with
// the explicit list above.
func TestManagerRoleGrantsOnlyWhatTheControllersNeed(t *testing.T) {
	role := &rbacv1.ClusterRole{}
	if err := readYAML(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"), role); err != nil {
		t.Fatal(err)
	}
	var want []rbacv1.PolicyRule
	for _, n := range managerNeeds {
		want = append(want, n.rule)
	}
	got, expected := grantsOf(role.Rules), grantsOf(want)
	for _, g := range got {
		if !slices.Contains(expected, g) {
			t.Errorf("role.yaml grants %s, which no controller is known to need", g)
		}
	}
	for _, g := range expected {
		if !slices.Contains(got, g) {
			t.Errorf("role.yaml lacks %s", g)
		}
	}
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("unexpected resourceNames or nonResourceURLs in %+v", r)
		}
	}
}

// TestNoRoleGrantsWildcardsOrSecretListing checks every role Lethe ships: no
// wildcard, secrets only get/create/update (never list or watch, which would
// expose every Secret of the cluster), and the manager deletes nothing but
// Secrets (completed requests' input Secrets and expired exports; the
// lethe-manager-secret-deletion admission policy narrows which, see
// footprint_test.go).
func TestNoRoleGrantsWildcardsOrSecretListing(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "rbac", "*role.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("role files: %v %v", files, err)
	}
	for _, f := range files {
		role := &rbacv1.ClusterRole{} // Role has the same rules field
		if err := readYAML(f, role); err != nil {
			t.Fatal(err)
		}
		for _, g := range grantsOf(role.Rules) {
			if g.group == "*" || g.resource == "*" || g.verb == "*" || strings.Contains(g.resource, "*") {
				t.Errorf("%s: wildcard %s", filepath.Base(f), g)
			}
			managerDeletesSecrets := filepath.Base(f) == "role.yaml" && g.group == "" && g.resource == "secrets" && g.verb == "delete"
			if g.group == "" && g.resource == "secrets" && !slices.Contains([]string{"get", "create", "update"}, g.verb) && !managerDeletesSecrets {
				t.Errorf("%s: secrets %s; only get, create and update are allowed (and delete for the manager)", filepath.Base(f), g.verb)
			}
			if filepath.Base(f) == "role.yaml" && !managerDeletesSecrets && (g.verb == "delete" || g.verb == "deletecollection" || g.verb == "escalate" || g.verb == "bind" || g.verb == "impersonate") {
				t.Errorf("role.yaml: %s; the manager never needs it", g)
			}
		}
	}
}

var rbacMarker = regexp.MustCompile(`^//\s*\+kubebuilder:rbac:groups=([^,]*),resources=([^,]*),verbs=(\S+)`)

// TestRoleMatchesTheControllersMarkers: role.yaml is exactly what the
// controllers' +kubebuilder:rbac markers generate, so `make manifests` was run
// and no rule was added by hand.
func TestRoleMatchesTheControllersMarkers(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "controllers", "*.go"))
	var rules []rbacv1.PolicyRule
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			m := rbacMarker.FindStringSubmatch(strings.TrimSpace(sc.Text()))
			if m == nil {
				continue
			}
			group := strings.Trim(m[1], `"`)
			rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{group}, Resources: strings.Split(m[2], ";"), Verbs: strings.Split(m[3], ";")})
		}
		fh.Close()
	}
	role := &rbacv1.ClusterRole{}
	if err := readYAML(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"), role); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(grantsOf(role.Rules)), fmt.Sprint(grantsOf(rules)); got != want {
		t.Errorf("role.yaml does not match the markers (run make manifests):\nrole.yaml %s\nmarkers   %s", got, want)
	}
}

// TestManagerIdentityIsDeniedEverythingElse asks the API server, as the
// manager's ServiceAccount (the identity this package's manager runs with):
// what the role does not grant is refused, so the tests in this package
// prove the shipped role is enough, and the role is all there is.
func TestManagerIdentityIsDeniedEverythingElse(t *testing.T) {
	requireSecretDeletionGuard(t) // deleting a Secret it is not entitled to is refused by admission, not RBAC
	c, err := client.New(managerConfig(), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	create(t, secret(ns, "db", map[string]string{"dsn": "postgres://u:p@h/db"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "nobody")
	create(t, dsr)
	ctx := t.Context()
	denied := map[string]error{
		"list secrets":              c.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)),
		"list secrets cluster-wide": c.List(ctx, &corev1.SecretList{}),
		"delete a secret":           c.Delete(ctx, secret(ns, "db", nil)),
		"delete a request":          c.Delete(ctx, &privacyv1.DataSubjectRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase"}}),
		"create a request":          c.Create(ctx, request(ns, "forged", privacyv1.RequestErasure, "nobody")),
		"create a DataStore":        c.Create(ctx, &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x"}}),
		"list namespaces":           c.List(ctx, &corev1.NamespaceList{}),
		"list pods":                 c.List(ctx, &corev1.PodList{}, client.InNamespace(ns)),
		"create a ClusterRole":      c.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "escalate"}}),
	}
	for what, err := range denied {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s as the manager: %v, want Forbidden", what, err)
		}
	}
	// What it needs works: get a Secret by name, list requests.
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &corev1.Secret{}); err != nil {
		t.Errorf("get a Secret by name as the manager: %v", err)
	}
	if err := c.List(ctx, &privacyv1.DataSubjectRequestList{}); err != nil {
		t.Errorf("list requests as the manager: %v", err)
	}
}
