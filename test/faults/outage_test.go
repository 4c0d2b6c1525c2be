//go:build faults

package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// privatePostgres is a PostgreSQL instance of this test alone (initdb and
// pg_ctl on a free port, its own data directory), so it can be stopped
// without touching the machine's shared server.
type privatePostgres struct {
	t       *testing.T
	bin     string
	dir     string
	port    int
	asOwner func(name string, args ...string) *exec.Cmd
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Fatal("no pg_ctl under /usr/lib/postgresql/*/bin: install postgresql")
	}
	slices.Sort(bins)
	p := &privatePostgres{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "lethe-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	p.asOwner = func(name string, args ...string) *exec.Cmd { return exec.Command(filepath.Join(p.bin, name), args...) }
	if os.Geteuid() == 0 { // initdb refuses to run as root: the data belongs to postgres
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root without a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.asOwner = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, name)}, args...)...)
		}
	}
	t.Cleanup(func() {
		_ = p.asOwner("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	p.run("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	p.start()
	return p
}

func (p *privatePostgres) data() string { return filepath.Join(p.dir, "data") }

func (p *privatePostgres) run(name string, args ...string) {
	p.t.Helper()
	if out, err := p.asOwner(name, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (p *privatePostgres) start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", p.port, p.dir)
	p.run("pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "log"), "-o", opts, "-w", "start")
}

// crash stops the server the hard way (no shutdown checkpoint): on restart
// it recovers from its WAL, as after a power cut.
func (p *privatePostgres) crash() { p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop") }

func (p *privatePostgres) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

const (
	outageSubjects = 30
	outageAccounts = 50
)

// TestStoreOutageWaitsAndRecovers erases over a private PostgreSQL that is
// crashed mid-run: requests not finished wait with Ready=False
// StoreUnavailable (Reconciling, not Stalled), new ones too; after the
// restart every account is untouched or fully erased (nothing half-applied),
// and all requests complete without help.
func TestStoreOutageWaitsAndRecovers(t *testing.T) {
	began := time.Now()
	pgsrv := startPrivatePostgres(t)
	admin, err := pgx.Connect(context.Background(), pgsrv.dsn("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE shop"); err != nil {
		t.Fatal(err)
	}
	admin.Close(context.Background())
	shop := loadShop(t, "private postgres", pgDialect, pgsrv.dsn("shop"), outageSubjects, outageAccounts)
	bystanders := shop.bystanderFingerprint(t)

	ns := namespace(t, "outage")
	create(t, secret(ns, "pg", map[string]string{"dsn": pgsrv.dsn("shop"), "maskingKey": "outage-key"}))
	create(t, shopStore(ns, "pg", privacyv1.EnginePostgres, "pg"))
	mgr := newManager(t, "outage")
	mgr.start()
	waitStoreReady(t, ns, "pg")

	file := func(from, to int) {
		for i := from; i <= to; i++ {
			name := fmt.Sprintf("erase-%03d", i)
			create(t, secret(ns, name, map[string]string{"email": subjectEmail(i)}))
			create(t, erasureRequest(ns, name, name))
		}
	}
	file(1, 20)
	eventually(t, time.Minute, func() error {
		if ready, _, _ := readyState(t, ns); ready < 3 {
			return fmt.Errorf("%d Ready", ready)
		}
		return nil
	})
	pgsrv.crash()
	crashedAt := time.Now()
	readyAtCrash, _, _ := readyState(t, ns)
	file(21, outageSubjects)

	// Every unfinished request waits with a clear reason; none gives up.
	eventually(t, 90*time.Second, func() error {
		ready, others, list := readyState(t, ns)
		for _, r := range list {
			if apimeta.IsStatusConditionTrue(r.Status.Conditions, privacyv1.ConditionStalled) {
				return fmt.Errorf("%s stalled during an outage: %+v", r.Name, r.Status.Conditions)
			}
		}
		if others[privacyv1.ReasonStoreUnavailable] != outageSubjects-ready {
			return fmt.Errorf("%d Ready, others %v; want every other request StoreUnavailable", ready, others)
		}
		return nil
	})
	_, _, list := readyState(t, ns)
	waiting := 0
	for _, r := range list {
		c := apimeta.FindStatusCondition(r.Status.Conditions, privacyv1.ConditionReady)
		if c.Status == metav1.ConditionTrue {
			continue
		}
		waiting++
		if !apimeta.IsStatusConditionTrue(r.Status.Conditions, privacyv1.ConditionReconciling) ||
			!strings.Contains(c.Message, "waiting for 1 store(s): pg: store unavailable") {
			t.Errorf("%s: Ready=False %s %q, Reconciling %v: want a clear waiting reason", r.Name, c.Reason, c.Message,
				apimeta.IsStatusConditionTrue(r.Status.Conditions, privacyv1.ConditionReconciling))
		}
	}
	eventually(t, 2*privacyv1.MinCheckInterval, func() error { // the next check sees the outage
		ds := &privacyv1.DataStore{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "pg"}, ds); err != nil {
			return err
		}
		if c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionReady); c == nil || c.Reason != privacyv1.ReasonStoreUnavailable {
			return fmt.Errorf("DataStore Ready = %+v, want StoreUnavailable", c)
		}
		return nil
	})
	down := time.Since(crashedAt)

	pgsrv.start()
	// Recovered from the crash: no account half-erased.
	erasedAfterRecovery := shop.checkAtomic(t)
	waitAllReady(t, ns, outageSubjects, 2*time.Minute)
	recovered := time.Since(crashedAt) - down
	mgr.stop()
	shop.checkFinal(t, bystanders)
	assertNoSubjectInLogs(t, mgr, outageSubjects)
	t.Logf("%d requests; private PostgreSQL crashed (pg_ctl -m immediate) with %d Ready; %d waited with StoreUnavailable (none Stalled) for %s; after restart %d accounts erased, none half-applied; all Ready %s after the restart; %s total",
		outageSubjects, readyAtCrash, waiting, down.Round(time.Second), erasedAfterRecovery, recovered.Round(time.Second), time.Since(began).Round(time.Second))
}
