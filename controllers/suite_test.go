package controllers_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// The suite runs the real manager against a real kube-apiserver and etcd
// (envtest) and the machine's real PostgreSQL. Assertions read through a
// direct, uncached client.

var (
	env   *testenv.Env
	k8s   client.Client
	clock = &testClock{}
	// digestKey is the suite's subject-digest key.
	digestKey = []byte("suite-digest-key-0123456789abcdef")
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
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	testenv.Main(m, func(ctx context.Context, e *testenv.Env) (<-chan struct{}, error) {
		env, k8s = e, e.Client
		return startManager(ctx)
	})
}

func startManager(ctx context.Context) (<-chan struct{}, error) {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
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
		RetryBase: 200 * time.Millisecond, Now: clock.Now,
		// Small, so tests split exports of a few hundred KiB and refuse one of 1 MiB.
		MaxExportBytes: 1 << 20, ExportPartBytes: testExportPartBytes,
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

func zapLevel() zapcore.Level {
	if os.Getenv("LETHE_TEST_VERBOSE") != "" {
		return -1
	}
	return 2 // errors only; the tests assert, logs are for debugging
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, cond)
}

// waitForCondition waits until obj has condition typ with status (and reason, if not empty).
func waitForCondition(t *testing.T, obj client.Object, conds func() []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	testenv.WaitForCondition(t, k8s, obj, conds, typ, status, reason)
}

func waitRequest(t *testing.T, dsr *privacyv1.DataSubjectRequest, status metav1.ConditionStatus, reason string) {
	t.Helper()
	waitForCondition(t, dsr, func() []metav1.Condition { return dsr.Status.Conditions }, privacyv1.ConditionReady, status, reason)
}

func waitStore(t *testing.T, ds *privacyv1.DataStore, status metav1.ConditionStatus, reason string) {
	t.Helper()
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionReady, status, reason)
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(t.Context(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	return s
}
