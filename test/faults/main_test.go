//go:build faults

// Package faults runs the manager binary as a real process against a real
// control plane and real databases, and breaks things: SIGKILL at random
// moments under load, a database stopped mid-run, two managers electing a
// leader. It is slow (a few minutes): `make test-faults` runs it (build tag
// faults), and so does .ci/run.
//
// The manager runs as its ServiceAccount (impersonated) bound to
// config/rbac: the shipped RBAC is all it has.
package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

const (
	operatorNamespace = "lethe-system"
	serviceAccount    = "lethe-controller-manager"
)

var (
	env *testenv.Env
	k8s client.Client
	// managerBin is the manager binary under test (go build -o ... .).
	managerBin string
	// kubeconfig makes the binary act as the manager's ServiceAccount.
	kubeconfig string
	rng        = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	work, err := os.MkdirTemp("", "lethe-faults-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	if managerBin = os.Getenv("LETHE_MANAGER_BIN"); managerBin == "" {
		managerBin = filepath.Join(work, "manager")
		build := exec.Command("go", "build", "-o", managerBin, ".")
		build.Dir = testenv.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("go build -o bin/manager .: %v\n%s", err, out)
		}
	}
	if env, err = testenv.Start(); err != nil {
		return 0, fmt.Errorf("cannot start envtest (run `make envtest`): %w", err)
	}
	defer env.Stop()
	k8s = env.Client
	if err := installRBAC(context.Background()); err != nil {
		return 0, err
	}
	kubeconfig = filepath.Join(work, "kubeconfig")
	if err := writeKubeconfig(kubeconfig); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// installRBAC applies config/rbac's role and leader-election role, bound to
// the manager's ServiceAccount as config/default deploys them.
func installRBAC(ctx context.Context) error {
	root := filepath.Join(testenv.RepoRoot(), "config", "rbac")
	role := &rbacv1.ClusterRole{}
	if err := readYAML(filepath.Join(root, "role.yaml"), role); err != nil {
		return err
	}
	election := &rbacv1.Role{}
	if err := readYAML(filepath.Join(root, "leader_election_role.yaml"), election); err != nil {
		return err
	}
	role.Name, election.Name, election.Namespace = "lethe-manager-role", "lethe-leader-election-role", operatorNamespace
	sa := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: operatorNamespace}}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}},
		role, election,
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "lethe-manager-rolebinding"},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}, Subjects: sa},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "lethe-leader-election-rolebinding", Namespace: operatorNamespace},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: election.Name}, Subjects: sa},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
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

// writeKubeconfig writes the admin credentials of envtest impersonating the
// manager's ServiceAccount.
func writeKubeconfig(path string) error {
	cfg := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["manager"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
		Impersonate:       "system:serviceaccount:" + operatorNamespace + ":" + serviceAccount,
		ImpersonateGroups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
	}
	kc.Contexts["manager"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "manager"}
	kc.CurrentContext = "manager"
	return clientcmd.WriteToFile(*kc, path)
}

// manager is the manager binary run as a process, restartable.
type manager struct {
	t      *testing.T
	name   string
	args   []string
	logDir string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
	logs   []string
}

// newManager prepares a manager process; extra flags are appended to the defaults.
func newManager(t *testing.T, name string, extra ...string) *manager {
	// V(10) would include client-go's body dumps: the manager must cap it (internal/logging).
	level := "10"
	m := &manager{t: t, name: name, logDir: t.TempDir(), args: append([]string{
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--egress-allow=127.0.0.0/8",
		"--operator-namespace=" + operatorNamespace, "--zap-log-level=" + level,
	}, extra...)}
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("%s: last log lines:\n%s", m.name, tail(m.lastLog(), 40))
		}
	})
	return m
}

// start starts the process; the manager must not be running.
func (m *manager) start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.starts++
	path := filepath.Join(m.logDir, fmt.Sprintf("%s-%02d.log", m.name, m.starts))
	f, err := os.Create(path)
	if err != nil {
		m.t.Fatal(err)
	}
	cmd := exec.Command(managerBin, m.args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		m.t.Fatalf("starting the manager: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	m.logs = append(m.logs, path)
}

// kill sends SIGKILL and waits for the process to be gone. No-op when not running.
func (m *manager) kill() {
	m.signal(syscall.SIGKILL, 0)
}

// stop sends SIGTERM, and SIGKILL if the manager is still up after 20s.
func (m *manager) stop() {
	m.signal(syscall.SIGTERM, 20*time.Second)
}

func (m *manager) signal(sig syscall.Signal, grace time.Duration) {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-exited:
			return
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-exited
}

// running reports whether the process is up (it may have exited on its own).
func (m *manager) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// allLogs is every log of every start.
func (m *manager) allLogs() string {
	m.mu.Lock()
	paths := append([]string(nil), m.logs...)
	m.mu.Unlock()
	var b strings.Builder
	for _, p := range paths {
		raw, _ := os.ReadFile(p)
		b.Write(raw)
	}
	return b.String()
}

func (m *manager) lastLog() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.logs) == 0 {
		return ""
	}
	raw, _ := os.ReadFile(m.logs[len(m.logs)-1])
	return string(raw)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, cond)
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
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

// erasureRequest erases the subject whose identities are in Secret subjectSecret.
func erasureRequest(ns, name, subjectSecret string) *privacyv1.DataSubjectRequest {
	return &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataSubjectRequestSpec{
			Type:    privacyv1.RequestErasure,
			Subject: privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: subjectSecret}}},
		},
	}
}

// readyState summarizes the requests of a namespace: how many are Ready
// (Completed), and the Ready reasons of the others.
func readyState(t *testing.T, ns string) (ready int, others map[string]int, list []privacyv1.DataSubjectRequest) {
	t.Helper()
	l := &privacyv1.DataSubjectRequestList{}
	if err := k8s.List(context.Background(), l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	others = map[string]int{}
	for _, r := range l.Items {
		c := apimeta.FindStatusCondition(r.Status.Conditions, privacyv1.ConditionReady)
		switch {
		case c != nil && c.Status == metav1.ConditionTrue && r.Status.CompletionTime != nil:
			ready++
		case c == nil:
			others["(none)"]++
		default:
			others[c.Reason]++
		}
	}
	return ready, others, l.Items
}

// waitAllReady waits until the namespace has n requests, all Ready=True Completed.
func waitAllReady(t *testing.T, ns string, n int, timeout time.Duration) []privacyv1.DataSubjectRequest {
	t.Helper()
	var items []privacyv1.DataSubjectRequest
	eventually(t, timeout, func() error {
		ready, others, list := readyState(t, ns)
		items = list
		if ready != n || len(list) != n {
			return fmt.Errorf("%d of %d requests Ready; others: %v", ready, n, others)
		}
		return nil
	})
	for _, r := range items {
		if c := apimeta.FindStatusCondition(r.Status.Conditions, privacyv1.ConditionReady); c.Reason != privacyv1.ReasonCompleted {
			t.Errorf("%s: Ready reason %s, want Completed", r.Name, c.Reason)
		}
	}
	return items
}

// waitStoreReady waits until a DataStore is Ready.
func waitStoreReady(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, 90*time.Second, func() error {
		ds := &privacyv1.DataStore{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ds); err != nil {
			return err
		}
		if c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("DataStore %s not Ready: %+v", name, c)
		}
		return nil
	})
}

// namespace creates a namespace for one test.
func namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// randomBetween returns a random duration in [lo, hi).
func randomBetween(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// assertNoSubjectInLogs fails if any subject's email (1..n) is in m's logs.
// The manager runs at V(10), where client-go would dump API bodies if main.go
// did not cap verbosity (internal/logging).
func assertNoSubjectInLogs(t *testing.T, m *manager, n int) {
	t.Helper()
	logs := m.allLogs()
	if os.Getenv("LETHE_DUMP_LOGS") != "" {
		_ = os.WriteFile("/tmp/faults-"+m.name+".log", []byte(logs), 0o600)
	}
	if len(logs) < 1000 {
		t.Errorf("%s: %d bytes of logs: the check would be vacuous", m.name, len(logs))
	}
	logs += "\n" + hexDumpText(logs)
	for i := 1; i <= n; i++ {
		if strings.Contains(logs, subjectEmail(i)) {
			t.Errorf("%s logged subject %d's email", m.name, i)
			return
		}
	}
}

// hexDumpGutter is the text column of a hex.Dump line, as logged inside a
// JSON string: client-go logs binary (protobuf) bodies as hex dumps, where a
// value is split across lines.
var hexDumpGutter = regexp.MustCompile(`  \|([^|]{1,32})\|(?:\\n|\n)`)

// hexDumpText joins the text columns of every hex dump in logs, so a value
// split across dump lines can be searched for.
func hexDumpText(logs string) string {
	var b strings.Builder
	for _, m := range hexDumpGutter.FindAllStringSubmatch(logs, -1) {
		b.WriteString(m[1])
	}
	return b.String()
}
