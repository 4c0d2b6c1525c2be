//go:build faults

package faults

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testdb"
)

const (
	crashRequests = 120
	crashAccounts = 160 // 40 bystanders
	minKills      = 12
)

// TestManagerKilledUnderLoad files 120 erasure requests over PostgreSQL,
// MariaDB and an HTTP processor while SIGKILLing the manager at random
// moments (at least 10 kills while requests are pending), restarting it each
// time. After every kill, before the restart, every account in both
// databases is either untouched or erased as mapped: nothing half-applied.
// In the end every request is Ready, every subject erased as mapped, every
// bystander row unchanged, and the processor saw each subject under exactly
// one Idempotency-Key (repeats after a kill carry the same key).
func TestManagerKilledUnderLoad(t *testing.T) {
	began := time.Now()
	ns := namespace(t, "crash")
	pg := loadShop(t, "postgres", pgDialect, testdb.NewPostgres(t), crashRequests, crashAccounts)
	maria := loadShop(t, "mariadb", mariaDialect, testdb.NewMySQL(t), crashRequests, crashAccounts)
	proc := newProcessor(t, 120*time.Millisecond)
	dbs := []*shopDB{pg, maria}
	bystanders := map[string]string{}
	for _, db := range dbs {
		bystanders[db.name] = db.bystanderFingerprint(t)
	}

	create(t, secret(ns, "pg", map[string]string{"dsn": pg.dsn, "maskingKey": "crash-masking-key"}))
	create(t, secret(ns, "maria", map[string]string{"dsn": maria.dsn, "maskingKey": "crash-masking-key"}))
	create(t, secret(ns, "crm", map[string]string{"url": proc.URL}))
	create(t, shopStore(ns, "pg", privacyv1.EnginePostgres, "pg"))
	create(t, shopStore(ns, "maria", privacyv1.EngineMySQL, "maria"))
	create(t, processorStore(ns, "crm", "crm"))

	// Two workers: slow enough that the kills land while requests are in
	// flight (with the default 16 they are all done within a few kills).
	mgr := newManager(t, "crash", "--max-concurrent-reconciles=2")
	mgr.start()
	for _, s := range []string{"pg", "maria", "crm"} {
		waitStoreReady(t, ns, s)
	}

	// File the requests while the manager is being killed.
	emailOf := map[string]string{}
	for i := 1; i <= crashRequests; i++ {
		emailOf[fmt.Sprintf("erase-%03d", i)] = subjectEmail(i)
	}
	var filing sync.WaitGroup
	filing.Add(1)
	go func() {
		defer filing.Done()
		for i := 1; i <= crashRequests; i++ {
			name := fmt.Sprintf("erase-%03d", i)
			if err := k8s.Create(t.Context(), secret(ns, name, map[string]string{"email": subjectEmail(i)})); err != nil {
				t.Errorf("create subject Secret: %v", err)
				return
			}
			if err := k8s.Create(t.Context(), erasureRequest(ns, name, name)); err != nil {
				t.Errorf("create request: %v", err)
				return
			}
			time.Sleep(40 * time.Millisecond) // a steady arrival rate, not a wait for a condition
		}
	}()

	type kill struct {
		after          time.Duration
		readyAtKill    int
		erasedAtKill   map[string]int
		pendingAtKill  int
		filedAtKill    int
		exitedUnasked  bool
		atomicityCheck string
	}
	var kills []kill
	effective := 0
	for len(kills) < 30 && effective < minKills {
		// A random moment: the whole point is not to choose it.
		up := randomBetween(300*time.Millisecond, 1800*time.Millisecond)
		time.Sleep(up)
		k := kill{after: up, exitedUnasked: !mgr.running(), erasedAtKill: map[string]int{}}
		mgr.kill()
		ready, _, list := readyState(t, ns)
		k.readyAtKill, k.filedAtKill, k.pendingAtKill = ready, len(list), len(list)-ready
		for _, db := range dbs {
			k.erasedAtKill[db.name] = db.checkAtomic(t) // nothing half-applied, before the restart
		}
		if k.pendingAtKill > 0 || k.filedAtKill < crashRequests {
			effective++
		}
		kills = append(kills, k)
		if k.exitedUnasked {
			t.Errorf("kill %d: the manager had exited on its own; see its log", len(kills))
		}
		mgr.start()
	}
	filing.Wait()
	if effective < minKills {
		t.Errorf("only %d kills landed while requests were pending", effective)
	}
	requests := waitAllReady(t, ns, crashRequests, 4*time.Minute)
	mgr.stop()

	for _, db := range dbs {
		db.checkAtomic(t)
		db.checkFinal(t, bystanders[db.name])
	}
	repeats := checkIdempotency(t, proc, requests, emailOf)
	journaled := checkReceiptsExact(t, requests, dbs)
	for _, r := range requests {
		for _, s := range r.Status.Stores {
			if s.Phase != privacyv1.StoreCompleted {
				t.Errorf("%s: store %s is %s", r.Name, s.Store, s.Phase)
			}
		}
		if len(r.Status.Stores) != 3 {
			t.Errorf("%s: %d stores in status, want 3", r.Name, len(r.Status.Stores))
		}
	}
	assertNoSubjectInLogs(t, mgr, crashRequests)

	var b strings.Builder
	for i, k := range kills {
		fmt.Fprintf(&b, "  kill %2d after %5s up: %3d filed, %3d Ready, %3d pending; erased so far pg %3d maria %3d; all accounts untouched or erased\n",
			i+1, k.after.Round(time.Millisecond), k.filedAtKill, k.readyAtKill, k.pendingAtKill, k.erasedAtKill["postgres"], k.erasedAtKill["mariadb"])
	}
	t.Logf("%d requests over postgres, mariadb and http; %d SIGKILLs (%d with requests pending), %d manager starts; processor calls %d (%d repeats under the same key); %d database receipts equal to the rows changed (journaled); %s total\n%s",
		crashRequests, len(kills), effective, len(kills)+1, len(proc.received()), repeats, journaled, time.Since(began).Round(time.Second), b.String())
	if os.Getenv("LETHE_TEST_VERBOSE") != "" {
		t.Log(tail(mgr.lastLog(), 50))
	}
}

// checkReceiptsExact compares every request's database receipts with the
// ground truth, whatever kill landed between a store's COMMIT and the status
// write: each subject had one account (anonymized), ordersPerAccount orders
// and their lines (deleted), all erased (checkFinal), so each receipt must say
// exactly that, read back from the store's journal, and verified. The
// journal holds one pass per request. It returns the receipts checked.
func checkReceiptsExact(t *testing.T, requests []privacyv1.DataSubjectRequest, dbs []*shopDB) int {
	t.Helper()
	want := map[string]int64{"accounts anonymize": 1, "orders delete": ordersPerAccount, "order_lines delete": ordersPerAccount * linesPerOrder}
	byStore := map[string]*shopDB{"pg": dbs[0], "maria": dbs[1]}
	checked := 0
	for _, r := range requests {
		for _, s := range r.Status.Stores {
			db, ok := byStore[s.Store]
			if !ok {
				continue
			}
			checked++
			got := map[string]int64{}
			for _, c := range s.Collections {
				got[c.Collection+" "+c.Action] += c.Rows
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("%s in %s: receipt says %s %d, the database changed %d", r.Name, s.Store, k, got[k], n)
				}
			}
			if !s.Journaled || s.Verified == nil || !*s.Verified {
				t.Errorf("%s in %s: journaled %v, verified %v", r.Name, s.Store, s.Journaled, s.Verified)
			}
			var passes int
			q := "SELECT count(*) FROM lethe_journal WHERE request_uid = " + db.d.ph(1)
			if err := db.db.QueryRow(q, string(r.UID)).Scan(&passes); err != nil || passes != 1 {
				t.Errorf("%s in %s: %d journal rows (%v), want 1", r.Name, s.Store, passes, err)
			}
		}
	}
	return checked
}
