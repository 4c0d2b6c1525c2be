// Command manager runs Lethe's controllers.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/logging"
)

func main() {
	var (
		metricsAddr, probeAddr         string
		leaderElect                    bool
		erasureDeadline, otherDeadline time.Duration
		digestKeySecret, operatorNS    string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables it)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader, so only one replica acts at a time")
	flag.DurationVar(&erasureDeadline, "erasure-deadline", 24*time.Hour, "default deadline of Erasure requests")
	flag.DurationVar(&otherDeadline, "default-deadline", 30*24*time.Hour, "default deadline of Access and Rectification requests")
	flag.StringVar(&operatorNS, "operator-namespace", envOr("POD_NAMESPACE", "default"), "namespace of the operator's own Secrets")
	flag.StringVar(&digestKeySecret, "digest-key-secret", "lethe-digest-key", "Secret (in --operator-namespace) holding the key of subject digests; created if missing")
	var forgetKeySecret string
	flag.StringVar(&forgetKeySecret, "forget-key-secret", controllers.DefaultForgetKeySecret, "Secret (in --operator-namespace) holding the age identity that encrypts the DataStores' forget lists (identities kept for replaying erasures after a restore, spec.backupRetention); created on first use")
	var discardIdentitiesAfter time.Duration
	flag.DurationVar(&discardIdentitiesAfter, "discard-identities-after", 0, "how long after a request completes Lethe deletes the Secrets that handed it the subject's identities and rectified values (those labelled privacy.lethe.dev/consume=true or owned by the request); 0 deletes them at once")
	var maxExportBytes int64
	flag.Int64Var(&maxExportBytes, "max-export-bytes", controllers.DefaultMaxExportBytes, "budget of one Access export's JSON in bytes: an export that would pass it stops as ExportTooLarge before the manager holds more; exports over 900 KiB are split across several Secrets")
	var maxConcurrentReconciles int
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", 16, "objects each controller reconciles at once (requests mostly wait on the API server and databases)")
	var net networkFlags
	flag.Var(&net.allow, "egress-allow", "CIDR, IP address, host name or *.suffix the manager may connect to although the defaults refuse it (repeatable, or comma-separated); e.g. 127.0.0.0/8 for a local dev cluster")
	flag.Var(&net.deny, "egress-deny", "CIDR, IP address, host name or *.suffix the manager never connects to (repeatable, or comma-separated); the most specific entry wins")
	flag.BoolVar(&net.requireTLS, "require-tls", false, "refuse DataStore connections that would travel in plaintext (PostgreSQL sslmode below require, MySQL without tls=true, redis://, http://)")
	var watchNamespaces stringList
	flag.Var(&watchNamespaces, "watch-namespaces", "serve only these namespaces (comma-separated); empty serves every namespace. With a namespace-scoped install the manager has Roles only there")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	// Capped below client-go's request/response body dumps, which would log
	// identities and exports at --zap-log-level 8 and above.
	logger := logging.Cap(zap.New(zap.UseFlagOptions(&opts)), logging.MaxVerbosity)
	ctrl.SetLogger(logger)
	klog.SetLogger(logger) // client-go logs through klog too
	log := ctrl.Log.WithName("setup")

	if err := run(runOptions{
		metricsAddr: metricsAddr, probeAddr: probeAddr, leaderElect: leaderElect,
		erasureDeadline: erasureDeadline, otherDeadline: otherDeadline,
		operatorNS: operatorNS, digestKeySecret: digestKeySecret, workers: maxConcurrentReconciles,
		network: net, watchNamespaces: watchNamespaces, discardIdentitiesAfter: discardIdentitiesAfter,
		maxExportBytes: maxExportBytes, forgetKeySecret: forgetKeySecret,
	}); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

type runOptions struct {
	metricsAddr, probeAddr         string
	leaderElect                    bool
	erasureDeadline, otherDeadline time.Duration
	operatorNS, digestKeySecret    string
	forgetKeySecret                string
	workers                        int
	maxExportBytes                 int64
	network                        networkFlags
	watchNamespaces                []string
	discardIdentitiesAfter         time.Duration
}

func run(o runOptions) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := privacyv1.AddToScheme(scheme); err != nil {
		return err
	}
	restConfig := ctrl.GetConfigOrDie()
	cacheOptions := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if len(o.watchNamespaces) > 0 {
		// Only these namespaces are listed and watched, so Roles there suffice.
		cacheOptions.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.watchNamespaces {
			cacheOptions.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       "lethe.privacy.lethe.dev",
		// The Lease lives beside the digest key, where the RBAC Role allows it;
		// setting it also lets the manager elect a leader when run out of cluster.
		LeaderElectionNamespace: o.operatorNS,
		Controller:              config.Controller{MaxConcurrentReconciles: o.workers},
		// managedFields are never read; dropping them keeps 10k requests in ~50 MiB of heap.
		Cache: cacheOptions,
		// Secrets are read directly when needed, never cached cluster-wide.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	key, err := digestKey(ctx, mgr.GetAPIReader(), mgr.GetClient(), o.operatorNS, o.digestKeySecret)
	if err != nil {
		return err
	}
	network, err := o.network.build(ctx, restConfig.Host)
	if err != nil {
		return err
	}
	conn := connector.New(mgr.GetAPIReader(), connector.Engines{Network: network}.Open)
	defer conn.Close()
	if err := controllers.SetupAll(mgr, controllers.Options{
		Connector: conn, DigestKey: key, ErasureDeadline: o.erasureDeadline, OtherDeadline: o.otherDeadline,
		DiscardIdentitiesAfter: o.discardIdentitiesAfter, MaxExportBytes: o.maxExportBytes,
		OperatorNamespace: o.operatorNS, ForgetKeySecret: o.forgetKeySecret,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// digestKey returns the key of subject digests, creating it on first start.
// Losing it only means new digests no longer match old ones; it never exposes data.
func digestKey(ctx context.Context, reader client.Reader, c client.Client, namespace, name string) ([]byte, error) {
	const dataKey = "key"
	sec := &corev1.Secret{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sec)
	if err == nil {
		if k := sec.Data[dataKey]; len(k) >= 16 {
			return k, nil
		}
		return nil, fmt.Errorf("secret %s/%s has no key %q of at least 16 bytes", namespace, name, dataKey)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading the digest key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/name": "lethe"}},
		Data:       map[string][]byte{dataKey: k},
	}
	if err := c.Create(ctx, sec); err != nil {
		if apierrors.IsAlreadyExists(err) { // another replica won the race
			return digestKey(ctx, reader, c, namespace, name)
		}
		return nil, fmt.Errorf("creating the digest key Secret %s/%s: %w", namespace, name, err)
	}
	return k, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
