package cli_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/cli"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/testdb"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// The CLI runs in-process against a real kube-apiserver and etcd (envtest),
// with Lethe's reconcilers running in the same process on the machine's real
// PostgreSQL, as in controllers/suite_test.go. It reaches the API server
// through a kubeconfig file and --kubeconfig, as a user would.

var (
	env *testenv.Env
	k8s client.Client
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	testenv.Main(m, func(ctx context.Context, e *testenv.Env) (<-chan struct{}, error) {
		env, k8s = e, e.Client
		return startManager(ctx)
	})
}

func zapLevel() zapcore.Level {
	if os.Getenv("LETHE_TEST_VERBOSE") != "" {
		return -1
	}
	return 2
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
		Connector: conn, DigestKey: []byte("cli-suite-digest-key-0123456789ab"),
		ErasureDeadline: 24 * time.Hour, OtherDeadline: 30 * 24 * time.Hour,
		RetryBase: 200 * time.Millisecond, Now: time.Now,
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

// kubeconfigFile writes a kubeconfig for the test control plane.
func kubeconfigFile(t *testing.T) string {
	t.Helper()
	cfg := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// result is one run of kubectl-lethe.
type result struct {
	code        int
	stdout      string
	stderr      string
	args        []string
	interactive bool
}

func (r result) String() string {
	return fmt.Sprintf("kubectl lethe %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// lethe runs the CLI with stdin and args against the test control plane.
func lethe(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return letheWith(t, false, stdin, args...)
}

// letheWith runs the CLI; terminal says whether its standard error is a terminal.
func letheWith(t *testing.T, terminal bool, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"--kubeconfig", kubeconfigFile(t)}, args...)
	code := cli.Run(t.Context(), full, cli.Streams{
		In: strings.NewReader(stdin), Out: &out, Err: &errOut,
		Terminal: func() bool { return terminal },
	})
	return result{code: code, stdout: out.String(), stderr: errOut.String(), args: args, interactive: terminal}
}

// assertNoLeak fails when any value appears in the run's output or errors.
func assertNoLeak(t *testing.T, r result, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(r.stdout, v) || strings.Contains(r.stderr, v) {
			t.Errorf("personal data %q printed by kubectl lethe %s:\n%s", v, strings.Join(r.args, " "), r)
		}
	}
}

// The fixture: accounts (anonymized: retained invoices refer to them),
// orders (deleted) and invoices (retained for accounting).
const fixtureSchema = `
CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text
);
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  note text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE invoices (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  billing_address text
);
INSERT INTO accounts VALUES (1, 'jane@example.com', 'Jane Doe'), (2, 'john@example.com', 'John Roe');
INSERT INTO orders (id, account_id, note) VALUES (10, 1, 'ring the bell'), (11, 1, 'leave at the door'), (20, 2, 'none'), (21, 2, 'none');
INSERT INTO invoices VALUES (100, 1, '1 rue de Jane'), (200, 2, '2 rue de John');
`

// readyStore creates the fixture database, its Secret and DataStore
// "app-db" in ns, and waits for it to be Ready.
func readyStore(t *testing.T, ns string) *sql.DB {
	t.Helper()
	dsn := testdb.NewPostgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(fixtureSchema); err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-db"},
		StringData: map[string]string{"dsn": dsn, "maskingKey": "cli-test-masking-key"}})
	ds := &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-db"},
		Spec: privacyv1.DataStoreSpec{
			Engine:              privacyv1.EnginePostgres,
			Connection:          privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "app-db", Key: "dsn"}},
			MaskingKeySecretRef: &privacyv1.SecretKeySelector{Name: "app-db", Key: "maskingKey"},
			Collections: []privacyv1.Collection{
				{
					Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize,
					Identity: map[string]privacyv1.Identifier{"email": "email"},
					Fields: []privacyv1.Field{
						{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}},
						{Name: "name", Category: "user.contact.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					},
				},
				{
					Name: "orders", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields:     []privacyv1.Field{{Name: "note", Category: "user.orders.note"}},
				},
				{
					Name: "invoices", PrimaryKey: "id", OnErasure: privacyv1.ErasureRetain,
					RetainReason: "invoices are kept 10 years for accounting",
					References:   []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields:       []privacyv1.Field{{Name: "billing_address", Category: "user.billing.address"}},
				},
			},
		},
	}
	create(t, ds)
	testenv.WaitForCondition(t, k8s, ds, func() []metav1.Condition { return ds.Status.Conditions },
		privacyv1.ConditionReady, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	return db
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(t.Context(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// createdRequest is the request a run says it created.
func createdRequest(t *testing.T, r result) string {
	t.Helper()
	const prefix = "datasubjectrequest.privacy.lethe.dev/"
	for _, line := range strings.Split(r.stdout+r.stderr, "\n") {
		if name, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSuffix(name, " created")
		}
	}
	t.Fatalf("no request created:\n%s", r)
	return ""
}
