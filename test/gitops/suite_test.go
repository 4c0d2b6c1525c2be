package gitops_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// The suite runs one control plane. The in-process manager only watches
// liveNS, where the live tests let the real controllers drive objects through
// their states; the other tests write status themselves, in namespaces no
// controller of this process looks at.

const liveNS = "gitops-live"

var (
	env   *testenv.Env
	k8s   client.Client
	clock = &testClock{}
)

// testClock is real time plus an offset the tests can move forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func TestMain(m *testing.M) {
	level := zapcore.Level(2) // errors only; tests assert, logs are for debugging
	if os.Getenv("LETHE_TEST_VERBOSE") != "" {
		level = -1
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	testenv.Main(m, func(ctx context.Context, e *testenv.Env) (<-chan struct{}, error) {
		env, k8s = e, e.Client
		return startManager(ctx)
	})
}

func startManager(ctx context.Context) (<-chan struct{}, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: liveNS}}
	if err := k8s.Create(ctx, ns); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{liveNS: {}}},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, err
	}
	conn := connector.New(mgr.GetAPIReader(), connector.Engines{Network: testdb.Loopback}.Open)
	if err := controllers.SetupAll(mgr, controllers.Options{
		Connector: conn, DigestKey: []byte("gitops-suite-digest-key-0123456789"),
		ErasureDeadline: 24 * time.Hour, OtherDeadline: 30 * 24 * time.Hour,
		RetryBase: 200 * time.Millisecond, Now: clock.Now,
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

// ---- helpers -------------------------------------------------------------------

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, cond)
}

// waitCondition waits until obj (re-read into itself) has condition typ with
// status and, if not empty, reason.
func waitCondition(t *testing.T, obj client.Object, conds func() []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	testenv.WaitForCondition(t, k8s, obj, conds, typ, status, reason)
}

func newNamespace(t *testing.T) string {
	t.Helper()
	return env.Namespace(t)
}

// live reads obj from the API server as Argo CD and kstatus see it: unstructured.
func live(t *testing.T, obj client.Object) *unstructured.Unstructured {
	t.Helper()
	gvk, err := k8s.GroupVersionKindFor(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), u); err != nil {
		t.Fatalf("get %s %s: %v", gvk.Kind, obj.GetName(), err)
	}
	return u
}

// readManifests decodes every object of the YAML files (multi-document).
func readManifests(t *testing.T, paths ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decodeManifests(t, data)...)
	}
	return out
}

func decodeManifests(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err == io.EOF {
				return out
			}
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// kubeconfig writes a kubeconfig for cfg, acting as user asUser (impersonated)
// when not empty, and returns its path.
func kubeconfig(t *testing.T, cfg *rest.Config, asUser string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken, Impersonate: asUser,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// offsetNow is the clock's current offset.
func (c *testClock) offsetNow() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}
