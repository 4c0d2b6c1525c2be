package bench

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// Part 6: restore replay. A PostgreSQL store of 2 × ReplayErasures accounts
// with 5 orders each, a DataStore with spec.backupRetention (so completed
// erasures keep their identities in the forget list), the manager as a
// process. The database is dumped (pg_dump -Fc), ReplayErasures erasure
// requests for distinct subjects are filed and all get Ready (each
// journaled), then the dump is restored over the database (drop, re-create,
// pg_restore): the erased subjects are back and the journal is empty. The
// replay-check annotation is set to a new value, and the benchmark times
// from that moment until every journal row is back, status.replay shows
// nothing pending and ErasuresReplayed is True/RestoreDetected. SQL then
// checks the subjects are gone again and the bystanders untouched. There is
// no baseline: nothing else re-applies erasures after a restore.

const (
	// rpOrdersPerAccount is the child table's rows per account.
	rpOrdersPerAccount = 5
	// rpGoal is the replay throughput goal, in replays/s.
	rpGoal = 100.0
	// rpStore names the DataStore (and, with -db, its Secret).
	rpStore = "shop"
	// rpJournal is the store's journal table (the default name).
	rpJournal = "lethe_journal"
)

const rpSchema = `
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text, created_at timestamptz NOT NULL);
CREATE TABLE orders (
	id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id),
	shipping_address text, amount numeric(10,2), placed_at timestamptz NOT NULL);`

// rpData fills accounts 1..$1 (emails as subjectEmail) and their orders.
var rpData = []string{
	`INSERT INTO accounts SELECT s, 'user' || s || '@example.com', 'User ' || s,
		timestamptz '2020-01-01 00:00:00+00' + s * interval '1 minute' FROM generate_series(1, $1::bigint) s`,
	`INSERT INTO orders SELECT s * 5 + k, s, s || ' Main Street', 9.99 + k,
		timestamptz '2021-01-01 00:00:00+00' + (s * 5 + k) * interval '1 minute' FROM generate_series(1, $1::bigint) s, generate_series(0, 4) k`,
	`CREATE INDEX ON orders (account_id)`,
	`VACUUM ANALYZE`,
}

// rpFingerprint digests every row of both tables, optionally only those of
// accounts past $1 (the bystanders).
const rpFingerprint = `SELECT coalesce(md5(string_agg(x, '|' ORDER BY x)), '') FROM (
	SELECT a::text x FROM accounts a WHERE id > $1
	UNION ALL SELECT o::text FROM orders o WHERE account_id > $1) s`

// replaySpec maps the two tables: an account is found by its email or id
// (erasureRequest's identities), its orders through their reference.
func replaySpec() privacyv1.DataStoreSpec {
	field := func(name, category string) privacyv1.Field {
		return privacyv1.Field{Name: privacyv1.Identifier(name), Category: privacyv1.Category(category)}
	}
	return privacyv1.DataStoreSpec{
		Engine:          privacyv1.EnginePostgres,
		BackupRetention: "30d",
		Collections: []privacyv1.Collection{
			{Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email", "userId": "id"},
				Fields:   []privacyv1.Field{field("email", "user.contact.email"), field("name", "user.identity.name")}},
			{Name: "orders", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
				Fields:     []privacyv1.Field{field("shipping_address", "user.contact.address")}},
		},
	}
}

// RunReplay runs part 6.
func RunReplay(ctx context.Context, cfg Config) Part {
	p := Part{Name: "replay", Details: map[string]any{}}
	if err := runReplay(ctx, cfg, &p); err != nil {
		p.Error = err.Error()
	}
	return p
}

// rpState is what SQL says of the store.
type rpState struct {
	subjectAccounts, subjectOrders     int64
	bystanderAccounts, bystanderOrders int64
	journaled                          int64
	bystanders, all                    string // fingerprints
}

func rpRead(ctx context.Context, pool *pgxpool.Pool, n int) (rpState, error) {
	var s rpState
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM accounts WHERE id <= $1), (SELECT count(*) FROM orders WHERE account_id <= $1),
		(SELECT count(*) FROM accounts WHERE id > $1), (SELECT count(*) FROM orders WHERE account_id > $1)`, n).
		Scan(&s.subjectAccounts, &s.subjectOrders, &s.bystanderAccounts, &s.bystanderOrders)
	if err != nil {
		return s, err
	}
	if s.journaled, err = rpJournaled(ctx, pool); err != nil {
		return s, err
	}
	if err := pool.QueryRow(ctx, rpFingerprint, n).Scan(&s.bystanders); err != nil {
		return s, err
	}
	return s, pool.QueryRow(ctx, rpFingerprint, 0).Scan(&s.all)
}

// rpJournaled counts the erasures the store's journal holds (0 before
// Lethe created it).
func rpJournaled(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, rpJournal).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	err := pool.QueryRow(ctx, `SELECT count(DISTINCT request_uid) FROM `+rpJournal+` WHERE kind = 'Erasure'`).Scan(&n)
	return n, err
}

func runReplay(ctx context.Context, cfg Config, p *Part) error {
	n := cfg.ReplayErasures
	if n <= 0 {
		return fmt.Errorf("--replay-erasures must be positive")
	}
	accounts := 2 * n // 1..n are erased, n+1..2n are bystanders
	p.Details["erasures"], p.Details["accounts"], p.Details["ordersPerAccount"] = n, accounts, rpOrdersPerAccount
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			p.Rows = append(p.Rows, Row{Benchmark: rpLabel(n), Lethe: "n/a", Met: "-", Note: tool + " is not installed (postgresql-client)"})
			return nil
		}
	}

	dsn, drop, err := freshPostgres(ctx, cfg.PostgresDSN, "replay")
	if err != nil {
		return err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { pool.Close() }()
	cfg.logf("replay: %d accounts with %d orders each", accounts, rpOrdersPerAccount)
	if _, err := pool.Exec(ctx, rpSchema); err != nil {
		return fmt.Errorf("creating the replay schema: %w", err)
	}
	for _, q := range rpData {
		var args []any
		if containsParam(q) {
			args = []any{accounts}
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("loading the replay data set: %w", err)
		}
	}
	initial, err := rpRead(ctx, pool, n)
	if err != nil {
		return err
	}

	cfg.logf("replay: starting kube-apiserver and etcd")
	plane, err := startPlane(cfg, "envtest-replay.kubeconfig")
	if err != nil {
		return err
	}
	defer plane.stop()
	env, restCfg, k8s, kubeconfig := plane.env, plane.restCfg, plane.k8s, plane.kubeconfig

	// applyRequests files erasureRequest(1..n) in cpNamespace.
	ns := cpNamespace
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rpStore + "-db"},
		StringData: map[string]string{"dsn": dsn, "maskingKey": string(erasureMaskingKey)},
	}); err != nil {
		return err
	}
	ds := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rpStore}, Spec: replaySpec()}
	ds.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: rpStore + "-db", Key: "dsn"}
	ds.Spec.MaskingKeySecretRef = &privacyv1.SecretKeySelector{Name: rpStore + "-db", Key: "maskingKey"}
	if err := k8s.Create(ctx, ds); err != nil {
		return err
	}
	p.Details["workers"] = cfg.Workers
	mgr, err := startManager(ctx, cfg, env, kubeconfig, "replay")
	if err != nil {
		return err
	}
	defer mgr.stop()
	p.Details["manager"] = mgr.describe()
	// Ready with its journal: the journal table exists, so the dump holds it (empty).
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(ds.Status.Conditions, privacyv1.ConditionReady) &&
			apimeta.IsStatusConditionTrue(ds.Status.Conditions, privacyv1.ConditionJournal), nil
	}); err != nil {
		return fmt.Errorf("the DataStore did not become Ready with its journal: %w (manager log: %s)", err, mgr.logPath)
	}

	dump := filepath.Join(cfg.WorkDir, "replay-"+randomSuffix()+".pgc")
	defer os.Remove(dump)
	t0 := time.Now()
	if err := rpTool(ctx, "pg_dump", "--format=custom", "--no-owner", "--file="+dump, "--dbname="+dsn); err != nil {
		return err
	}
	dumpTime := time.Since(t0)

	cfg.logf("replay: %d erasure requests", n)
	eraseAPIBefore, _ := apiserverRequests(ctx, restCfg)
	tp, err := applyRequests(ctx, cfg, k8s, n)
	if err != nil {
		return err
	}
	eraseAPIAfter, _ := apiserverRequests(ctx, restCfg)
	p.Details["erasurePhase"] = map[string]any{"ready": tp.ready, "seconds": tp.elapsed.Seconds(), "requestsPerSecond": tp.rate(),
		"latency": summary(tp.latencies), "apiCallsPerRequest": perRequest(eraseAPIBefore, eraseAPIAfter, n)}
	if tp.ready < n {
		return fmt.Errorf("only %d of %d erasure requests were Ready within the time limit; the others: %s (manager log: %s)",
			tp.ready, n, rpWaiting(ctx, k8s, ns), mgr.logPath)
	}
	erased, err := rpRead(ctx, pool, n)
	if err != nil {
		return err
	}
	if erased.subjectAccounts != 0 || erased.subjectOrders != 0 || erased.bystanders != initial.bystanders || erased.journaled != int64(n) {
		return fmt.Errorf("after the erasures: %d subject accounts and %d orders left (want 0), bystanders changed: %t, %d erasures journaled (want %d)",
			erased.subjectAccounts, erased.subjectOrders, erased.bystanders != initial.bystanders, erased.journaled, n)
	}
	forgetEntries, forgetBytes, forgetShards := 0, 0, 0
	for _, name := range controllers.ForgetListNames(rpStore) {
		forget := &corev1.Secret{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, forget); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("the forget list: %w", err)
		}
		forgetShards++
		forgetEntries += len(forget.Data)
		for _, v := range forget.Data {
			forgetBytes += len(v)
		}
	}
	if forgetEntries != n {
		return fmt.Errorf("the forget list holds %d entries, want %d", forgetEntries, n)
	}
	p.Details["forgetList"] = map[string]any{"entries": forgetEntries, "bytes": forgetBytes, "secrets": forgetShards}

	cfg.logf("replay: restoring the dump taken before the erasures")
	pool.Close() // the restore ends every connection to the database
	t0 = time.Now()
	if err := rpRestore(ctx, cfg.PostgresDSN, dsn, dump); err != nil {
		return err
	}
	restoreTime := time.Since(t0)
	if pool, err = pgxpool.New(ctx, dsn); err != nil {
		return err
	}
	restored, err := rpRead(ctx, pool, n)
	if err != nil {
		return err
	}
	if restored.all != initial.all || restored.journaled != 0 {
		return fmt.Errorf("the restore did not bring the data back as dumped (%d subject accounts, %d erasures journaled): the part proves nothing",
			restored.subjectAccounts, restored.journaled)
	}

	// What one LegalHold list costs (a replay check makes one a second, past the cache):
	// a consistent list, as the manager's API reader makes it, and one
	// served from the API server's watch cache as it stands.
	// And a consistent one while another resource is being written, as the
	// replays' status patches do: the API server then waits until its
	// LegalHold cache is known to be as fresh as etcd's revision.
	listMs := map[string]float64{
		"consistent": rpTimeList(ctx, k8s, ns, nil), "resourceVersion0": rpTimeList(ctx, k8s, ns, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}),
	}
	if stop, err := rpWriteLoop(ctx, k8s, ns); err == nil {
		listMs["consistentWhileWriting"] = rpTimeList(ctx, k8s, ns, nil)
		stop()
	}
	p.Details["legalHoldListMs"] = listMs

	// The replay, timed from the annotation.
	cfg.logf("replay: asking for a replay check")
	apiBefore, _ := apiserverRequests(ctx, restCfg)
	latBefore, _ := rpAPILatency(ctx, restCfg)
	mgrBefore, _ := mgr.scrape(ctx)
	value := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, privacyv1.ReplayCheckAnnotation, value)
	start := time.Now()
	if err := k8s.Patch(ctx, ds, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		return err
	}
	var elapsed, firstRow, firstStatus time.Duration
	var lastJournaled int64 = -1
	var timeline [][2]float64 // seconds since the annotation, journaled erasures
	var statusSeen []map[string]any
	var lastStatus string
	waitErr := waitFor(ctx, 150*time.Second, func() (bool, error) {
		journaled, err := rpJournaled(ctx, pool)
		if err != nil {
			return false, err
		}
		at := time.Since(start)
		if journaled != lastJournaled {
			timeline = append(timeline, [2]float64{at.Seconds(), float64(journaled)})
			lastJournaled = journaled
			if journaled > 0 && firstRow == 0 {
				firstRow = at
			}
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
			return false, err
		}
		rs := ds.Status.Replay
		c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionErasuresReplayed)
		if rs == nil || rs.ObservedCheckRequest != value {
			return false, nil
		}
		if firstStatus == 0 {
			firstStatus = at
		}
		var checked int64
		if rs.LastCheckTime != nil {
			checked = rs.LastCheckTime.UnixNano()
		}
		if s := fmt.Sprintf("%d/%d/%d", rs.Replayed, len(rs.Pending), checked); s != lastStatus {
			lastStatus = s
			e := map[string]any{"seconds": at.Seconds(), "replayed": rs.Replayed, "pending": len(rs.Pending), "journaled": journaled}
			if c != nil {
				e["condition"] = string(c.Status) + "/" + c.Reason
			}
			statusSeen = append(statusSeen, e)
		}
		done := journaled == int64(n) && len(rs.Pending) == 0 && c != nil && c.Status == metav1.ConditionTrue && c.Reason == privacyv1.ReasonRestoreDetected
		if done {
			elapsed = at
		}
		return done, nil
	})
	apiAfter, _ := apiserverRequests(ctx, restCfg)
	latAfter, _ := rpAPILatency(ctx, restCfg)
	mgrAfter, _ := mgr.scrape(ctx)
	details := map[string]any{
		"apiMeanMs": rpMeanMs(latBefore, latAfter, n), "dataStoreEvents": rpEvents(ctx, k8s, ns),
		"firstJournalRowSeconds": firstRow.Seconds(), "firstStatusSeconds": firstStatus.Seconds(),
		"journalTimeline": timeline, "statusTimeline": statusSeen,
		"apiCallsPerReplay":   perRequest(apiBefore, apiAfter, n),
		"dataStoreReconciles": rpReconciles(mgrBefore, mgrAfter, "datastore"),
		"requestReconciles":   rpReconciles(mgrBefore, mgrAfter, "datasubjectrequest"),
	}
	cpu := map[string]float64{"apiserver": (apiAfter[cpuSeries] - apiBefore[cpuSeries]) * 1000 / float64(n)}
	if mgr.process {
		cpu["manager"] = (mgrAfter[cpuSeries] - mgrBefore[cpuSeries]) * 1000 / float64(n)
	}
	details["cpuMsPerReplay"] = cpu
	p.Details["replay"] = details
	p.Details["dumpSeconds"], p.Details["restoreSeconds"] = dumpTime.Seconds(), restoreTime.Seconds()
	if waitErr != nil {
		c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionErasuresReplayed)
		return fmt.Errorf("the replay did not finish: %w: %d of %d journal rows back, status.replay %+v, ErasuresReplayed %+v (manager log: %s)",
			waitErr, lastJournaled, n, ds.Status.Replay, c, mgr.logPath)
	}
	replayRate := rate(int64(n), elapsed)
	details["seconds"], details["replaysPerSecond"] = elapsed.Seconds(), replayRate
	cfg.logf("replay: %d erasures re-applied in %s", n, elapsed.Round(time.Millisecond))

	// The store is as the erasures left it, and every request records its replay.
	final, err := rpRead(ctx, pool, n)
	if err != nil {
		return err
	}
	if final.subjectAccounts != 0 || final.subjectOrders != 0 || final.bystanders != initial.bystanders || final.all != erased.all {
		return fmt.Errorf("after the replay: %d subject accounts and %d orders left (want 0), %d bystander accounts and %d orders (want %d and %d), bystanders changed: %t, state differs from after the erasures: %t",
			final.subjectAccounts, final.subjectOrders, final.bystanderAccounts, final.bystanderOrders, n, n*rpOrdersPerAccount,
			final.bystanders != initial.bystanders, final.all != erased.all)
	}
	list := &privacyv1.DataSubjectRequestList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		return err
	}
	var recorded, rows int64
	for _, dsr := range list.Items {
		for _, r := range dsr.Status.Replays {
			if r.Store == rpStore && r.Reason == privacyv1.ReasonRestoreDetected {
				recorded++
				rows += r.Rows
			}
		}
	}
	details["replaysRecorded"], details["rowsReplayed"] = recorded, rows
	if want := int64(n * (1 + rpOrdersPerAccount)); recorded != int64(n) || rows != want {
		return fmt.Errorf("the requests record %d replays of %d rows, want %d of %d", recorded, rows, n, want)
	}

	// Where the time goes: the same erasures re-applied by the engine alone
	// (Apply, then the journal read that confirms it, as replayOne does),
	// after the same restore, without the API server.
	cfg.logf("replay: the engine alone, after another restore")
	pool.Close()
	if err := rpRestore(ctx, cfg.PostgresDSN, dsn, dump); err != nil {
		return err
	}
	if pool, err = pgxpool.New(ctx, dsn); err != nil {
		return err
	}
	floor, err := rpEngineFloor(ctx, dsn, n)
	if err != nil {
		return fmt.Errorf("the engine alone: %w", err)
	}
	if again, err := rpRead(ctx, pool, n); err != nil || again.all != erased.all {
		return fmt.Errorf("the engine alone did not leave the state the erasures left (%v)", err)
	}
	details["engineAlone"] = map[string]any{"seconds": floor.Seconds(), "replaysPerSecond": rate(int64(n), floor),
		"msPerReplay": ms(floor) / float64(n)}

	p.Rows = append(p.Rows,
		Row{Benchmark: rpLabel(n), Lethe: fmtRate(replayRate, "replays/s"), LetheValue: replayRate, Unit: "replays/s",
			Baseline: "-", Goal: fmt.Sprintf("≥ %.0f/s", rpGoal), Met: met(replayRate >= rpGoal)},
		Row{Benchmark: "   annotation to all replayed; erasures before it (filed at once, to all Ready)",
			Lethe:      fmtSeconds(elapsed) + "; " + fmtRate(tp.rate(), "req/s"),
			LetheValue: elapsed.Seconds(), Unit: "s", Met: "-",
			Note: fmt.Sprintf("pg_dump %s, restore (drop, create, pg_restore) %s", fmtSeconds(dumpTime), fmtSeconds(restoreTime))},
		Row{Benchmark: "   the engine alone: the same erasures by Store.Apply + journal read, one after another, no API server",
			Lethe: fmtRate(rate(int64(n), floor), "replays/s"), LetheValue: rate(int64(n), floor), Unit: "replays/s", Met: "-"})
	return nil
}

// rpWaiting summarises why the requests not Ready wait: the store
// messages they show, most frequent first.
func rpWaiting(ctx context.Context, k8s client.Client, ns string) string {
	list := &privacyv1.DataSubjectRequestList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	counts := map[string]int{}
	for _, dsr := range list.Items {
		if apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionReady) {
			continue
		}
		msg := "no store outcome yet"
		for _, o := range dsr.Status.Stores {
			if o.Phase != privacyv1.StoreCompleted {
				msg = string(o.Phase) + ": " + o.Message
			}
		}
		counts[tail(msg, 300)]++
	}
	msgs := slices.Collect(maps.Keys(counts))
	slices.SortFunc(msgs, func(a, b string) int { return counts[b] - counts[a] })
	var parts []string
	for _, msg := range msgs {
		parts = append(parts, fmt.Sprintf("%d × %q", counts[msg], msg))
	}
	return strings.Join(parts, "; ")
}

// rpEngineFloor re-applies erasures 1..n through the PostgreSQL engine
// directly, as replayOne calls it (Apply, then JournalRequestIDs), and
// returns the time taken.
func rpEngineFloor(ctx context.Context, dsn string, n int) (time.Duration, error) {
	m, err := datamap.Build(replaySpec())
	if err != nil {
		return 0, err
	}
	store, err := postgres.New(ctx, dsn, m, erasureMaskingKey, testdb.Loopback)
	if err != nil {
		return 0, err
	}
	defer store.Close()
	start := time.Now()
	for i := 1; i <= n; i++ {
		id := "bench-replay-" + strconv.Itoa(i)
		if _, err := store.Apply(ctx, stores.Request{Kind: stores.KindErasure, Subject: subjectIdentities(int64(i)), RequestID: id}); err != nil {
			return 0, err
		}
		back, err := store.JournalRequestIDs(ctx, stores.KindErasure, []string{id})
		if err != nil {
			return 0, err
		}
		if !back[id] {
			return 0, fmt.Errorf("no journal row for %s", id)
		}
	}
	return time.Since(start), nil
}

// rpTimeList is the mean time of 20 lists of the namespace's LegalHolds, in ms.
func rpTimeList(ctx context.Context, k8s client.Client, ns string, extra *client.ListOptions) float64 {
	const rounds = 20
	start := time.Now()
	for range rounds {
		opts := []client.ListOption{client.InNamespace(ns)}
		if extra != nil {
			opts = append(opts, extra)
		}
		if err := k8s.List(ctx, &privacyv1.LegalHoldList{}, opts...); err != nil {
			return -1
		}
	}
	return ms(time.Since(start)) / rounds
}

// rpWriteLoop updates a ConfigMap of ns over and over until stop is called.
func rpWriteLoop(ctx context.Context, k8s client.Client, ns string) (stop func(), err error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench-write-loop"}, Data: map[string]string{"n": "0"}}
	if err := k8s.Create(ctx, cm); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; wctx.Err() == nil; i++ {
			cm.Data["n"] = strconv.Itoa(i)
			if k8s.Update(wctx, cm) != nil {
				_ = k8s.Get(wctx, client.ObjectKeyFromObject(cm), cm)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		_ = k8s.Delete(ctx, cm)
	}, nil
}

// rpLatency is the API server's request time (sum, count) by "VERB resource[/subresource]".
type rpLatency map[string][2]float64

var rpDurationSeries = regexp.MustCompile(`^apiserver_request_duration_seconds_(sum|count)\{(.*)\}$`)

func rpAPILatency(ctx context.Context, cfg *rest.Config) (rpLatency, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	body, err := dc.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := rpLatency{}
	for _, line := range strings.Split(string(body), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		m := rpDurationSeries.FindStringSubmatch(line[:i])
		if m == nil {
			continue
		}
		key, ok := requestKey(m[2])
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		e := out[key]
		if m[1] == "sum" {
			e[0] += v
		} else {
			e[1] += v
		}
		out[key] = e
	}
	return out, nil
}

// rpMeanMs is the mean time of each kind of API call made at least n/10
// times between the two readings, in milliseconds.
func rpMeanMs(before, after rpLatency, n int) map[string]float64 {
	out := map[string]float64{}
	for k, a := range after {
		b := before[k]
		if c := a[1] - b[1]; c >= float64(n)/10 && c > 0 {
			out[k] = math.Round((a[0]-b[0])/c*1e4) / 10
		}
	}
	return out
}

// rpEvents counts the DataStore's Events by reason, with the messages of
// the warnings (the first of each reason).
func rpEvents(ctx context.Context, k8s client.Client, ns string) map[string]any {
	evs := &eventsv1.EventList{}
	if err := k8s.List(ctx, evs, client.InNamespace(ns)); err != nil {
		return map[string]any{"error": err.Error()}
	}
	counts := map[string]int32{}
	warnings := map[string]string{}
	for _, e := range evs.Items {
		if e.Regarding.Kind != "DataStore" {
			continue
		}
		n := max(1, e.DeprecatedCount)
		if e.Series != nil {
			n = max(n, e.Series.Count)
		}
		counts[e.Reason] += n
		if e.Type == corev1.EventTypeWarning {
			if _, seen := warnings[e.Reason]; !seen {
				warnings[e.Reason] = tail(e.Note, 300)
			}
		}
	}
	return map[string]any{"byReason": counts, "warnings": warnings}
}

func rpLabel(n int) string {
	return fmt.Sprintf("6. restore replay, PostgreSQL: %s erasures undone by pg_restore, replay-check annotation to all journaled again", count(int64(n)))
}

// rpReconciles is one controller's reconciles and their time between two scrapes.
func rpReconciles(before, after map[string]float64, controller string) map[string]float64 {
	sel := `controller="` + controller + `"`
	n := sumMetric(after, "controller_runtime_reconcile_total", sel) - sumMetric(before, "controller_runtime_reconcile_total", sel)
	s := sumMetric(after, "controller_runtime_reconcile_time_seconds_sum", sel) - sumMetric(before, "controller_runtime_reconcile_time_seconds_sum", sel)
	return map[string]float64{"reconciles": n, "seconds": s}
}

// rpRestore drops the database of dsn (ending its connections), creates it
// again and restores the dump into it.
func rpRestore(ctx context.Context, adminDSN, dsn, dump string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	name := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	for _, q := range []string{"DROP DATABASE " + name + " WITH (FORCE)", "CREATE DATABASE " + name} {
		if err := pgAdmin(ctx, adminDSN, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return rpTool(ctx, "pg_restore", "--no-owner", "--exit-on-error", "--dbname="+dsn, dump)
}

func rpTool(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, tail(stderr.String(), 500))
	}
	return nil
}
