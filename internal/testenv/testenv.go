// Package testenv starts a real control plane (kube-apiserver and etcd, built
// from source by `make envtest`) with Lethe's CRDs installed, for tests.
package testenv

import (
	"context"
	"fmt"
	"net"
	"time"

	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Env is a running control plane and a direct (uncached) client to it.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	env    *envtest.Environment
}

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme returns a scheme with the core kinds and Lethe's kinds.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := privacyv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Start starts a control plane for m's tests. Call it from TestMain and Stop
// it before exiting. It fails loudly when the binaries are missing, because a
// skipped envtest suite would hide untested behaviour.
func Start() (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		home, _ := os.UserHomeDir()
		os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(home, ".local/share/kubebuilder-envtest/k8s/1.37.2-linux-amd64"))
	}
	e := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := e.Start()
	if err != nil {
		// Start may fail after launching etcd and the API server (a CRD the
		// server refuses): stop them, or they outlive the test binary.
		_ = e.Stop()
		return nil, err
	}
	s := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = e.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: s, env: e}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Namespace creates a fresh namespace for one test.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.GenerateName = "t-"
	if err := e.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// Eventually polls cond until it returns nil, failing the test with the last
// error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = cond(); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", timeout, last)
}

// WaitForCondition re-reads obj through c until conds() holds condition typ
// with status and, when reason is not empty, that reason.
func WaitForCondition(t testing.TB, c client.Client, obj client.Object, conds func() []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	Eventually(t, 60*time.Second, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		cond := apimeta.FindStatusCondition(conds(), typ)
		if cond == nil {
			return fmt.Errorf("no %s condition yet", typ)
		}
		if cond.Status != status || (reason != "" && cond.Reason != reason) {
			return fmt.Errorf("%s=%s (%s: %s), want %s %s", typ, cond.Status, cond.Reason, cond.Message, status, reason)
		}
		return nil
	})
}

// Main is a suite's TestMain: it starts a control plane, calls setup (which
// starts the suite's manager and returns a channel closed when it stopped),
// runs the tests, stops both, and exits with the tests' code.
func Main(m *testing.M, setup func(ctx context.Context, e *Env) (stopped <-chan struct{}, err error)) {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start envtest (run `make envtest`):", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped, err := setup(ctx, e)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the manager:", err)
		cancel()
		_ = e.Stop()
		os.Exit(1)
	}
	code := m.Run()
	cancel()
	if stopped != nil {
		<-stopped
	}
	_ = e.Stop()
	os.Exit(code)
}

// RepoPath joins parts to the repository root.
func RepoPath(parts ...string) string {
	return filepath.Join(append([]string{RepoRoot()}, parts...)...)
}

// KubectlPath is the kubectl built beside the test control plane.
func KubectlPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("kubectl not found in KUBEBUILDER_ASSETS (run `make envtest`): %v", err)
	}
	return p
}

// FreePort is a loopback TCP port nothing listens on now.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// CanI asks the API server (SubjectAccessReview, through c) whether the
// ServiceAccount user of saNamespace may verb group/resource[/sub] in namespace.
func CanI(t testing.TB, c client.Client, user, saNamespace, verb, group, resource, sub, namespace string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + saNamespace, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: namespace,
		},
	}}
	if err := c.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}
