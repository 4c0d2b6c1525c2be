// Package security tests Lethe against hostile input, across namespaces, with
// the least privilege its RBAC grants, and for leaks of the personal data it
// handles. It runs its own manager (the real controllers) against its own
// control plane, as the manager's ServiceAccount bound to config/rbac, with
// verbose logs captured so tests can search them.
package security

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/logging"
	"github.com/lethe-dev/lethe/internal/testenv"
)

const (
	// managerNamespace and managerServiceAccount are where config/default
	// deploys the manager (namespace lethe-system, names prefixed lethe-).
	managerNamespace      = "lethe-system"
	managerServiceAccount = "lethe-controller-manager"
)

var (
	env *testenv.Env
	// k8s is an admin client for setting up and inspecting.
	k8s client.Client
	// managerLogs holds every log line of the manager (all V levels).
	managerLogs = &syncBuffer{}
	digestKey   = []byte("security-digest-key-0123456789ab")
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMain(m *testing.M) {
	var out io.Writer = managerLogs
	if os.Getenv("LETHE_TEST_VERBOSE") != "" {
		out = io.MultiWriter(managerLogs, os.Stderr)
	}
	// Verbose: every V level the manager allows (logging.Cap, which main.go
	// must apply too: client-go dumps API bodies, Secrets included, at V(8)).
	logger := logging.Cap(zap.New(zap.WriteTo(out), zap.Level(zapcore.Level(-10))), logging.MaxVerbosity)
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	testenv.Main(m, func(ctx context.Context, e *testenv.Env) (<-chan struct{}, error) {
		env, k8s = e, e.Client
		return startManager(ctx)
	})
}

// managerConfig is the admin config impersonating the manager's
// ServiceAccount, which is bound to config/rbac/role.yaml only: the manager
// in these tests has exactly the permissions Lethe ships with.
func managerConfig() *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + managerNamespace + ":" + managerServiceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + managerNamespace, "system:authenticated"},
	}
	return cfg
}

// installManagerRBAC applies role.yaml and binds it to the manager's
// ServiceAccount, as config/rbac's kustomization does.
func installManagerRBAC(ctx context.Context) error {
	role := &rbacv1.ClusterRole{}
	if err := readYAML(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"), role); err != nil {
		return err
	}
	role.Name = "lethe-" + role.Name
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lethe-manager-rolebinding"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: managerServiceAccount, Namespace: managerNamespace}},
	}
	for _, obj := range []client.Object{ns, role, binding} {
		if err := k8s.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

func readYAML(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(raw, into)
}

func startManager(ctx context.Context) (<-chan struct{}, error) {
	if err := installManagerRBAC(ctx); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(managerConfig(), ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, err
	}
	conn := connector.New(mgr.GetAPIReader(), connector.Engines{Network: testdb.Loopback}.Open)
	if err := controllers.SetupAll(mgr, controllers.Options{
		Connector: conn, DigestKey: digestKey,
		ErasureDeadline: 24 * time.Hour, OtherDeadline: 30 * 24 * time.Hour,
		RetryBase: 200 * time.Millisecond,
	}); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return done, nil
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, cond)
}

// waitReady waits until obj's Ready condition has status and reason.
func waitReady(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var found *metav1.Condition
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		c := apimeta.FindStatusCondition(conditionsOf(obj), privacyv1.ConditionReady)
		if c == nil {
			return fmt.Errorf("no Ready condition yet")
		}
		if c.Status != status || c.Reason != reason {
			return fmt.Errorf("Ready=%s (%s: %s), want %s %s", c.Status, c.Reason, c.Message, status, reason)
		}
		found = c
		return nil
	})
	return found
}

func conditionsOf(obj client.Object) []metav1.Condition {
	switch o := obj.(type) {
	case *privacyv1.DataSubjectRequest:
		return o.Status.Conditions
	case *privacyv1.DataStore:
		return o.Status.Conditions
	}
	return nil
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(t.Context(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func request(ns, name string, typ privacyv1.RequestType, subjectSecret string) *privacyv1.DataSubjectRequest {
	return &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataSubjectRequestSpec{
			Type:    typ,
			Subject: privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: subjectSecret}}},
		},
	}
}
