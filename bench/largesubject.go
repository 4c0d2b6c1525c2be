package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// Part 5: one large subject. Account 1 owns LargeSubjectRows access_logs rows
// (onErasure delete) among 1,000 other accounts with 5 rows each. Lethe's
// side is an erasure request through the real manager (a process, as in
// part 4), timed from its creation to Ready, with the manager's RSS sampled
// before and during it; the baseline is the same two deletes written by hand
// in one transaction, children first. Each side gets the data set generated
// fresh, in its own database.

const (
	// The data set's shape; the SQL below spells these numbers out.
	lsOthers       = 1000 // accounts around the subject
	lsRowsPerOther = 5
	lsSubject      = 1 // the subject's account id
	// lsRSSGoal is the bound on the manager's growth during the erasure.
	lsRSSGoal = 32.0
	// lsMemoryLimit is the manager Deployment's memory limit (config/manager).
	lsMemoryLimit = 256.0
	lsTimeGoal    = 1.5
	// The export measured after the erasure: account 2 with 50,000 more rows.
	lsExportSubject = 2
	lsExportRows    = 50000
	lsExportFirstID = 1_000_000_000
)

var lsSubjectEmail = subjectEmail(lsSubject)

// largeSubjectSpec maps the two tables: the account is found by its email,
// its access logs through their reference to it.
func largeSubjectSpec(engine privacyv1.Engine) privacyv1.DataStoreSpec {
	field := func(name, category string) privacyv1.Field {
		return privacyv1.Field{Name: privacyv1.Identifier(name), Category: privacyv1.Category(category)}
	}
	return privacyv1.DataStoreSpec{
		Engine: engine,
		Collections: []privacyv1.Collection{
			{Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email"},
				Fields:   []privacyv1.Field{field("email", "user.contact.email"), field("name", "user.identity.name")}},
			{Name: "access_logs", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
				Fields:     []privacyv1.Field{field("ip", "user.technical.ip"), field("user_agent", "user.technical.agent"), field("path", "user.technical.activity")}},
		},
	}
}

// lsDB is one side's freshly generated database.
type lsDB struct {
	// storeDSN is what the DataStore's Secret holds.
	storeDSN string
	// byHand is the baseline: the subject's rows deleted, children first, in one transaction.
	byHand func(ctx context.Context) error
	// state counts the subject's rows left and the other accounts' rows (logs and accounts).
	state func(ctx context.Context) (subject, others int64, err error)
	// addLogs gives account lsExportSubject lsExportRows more access_logs rows.
	addLogs func(ctx context.Context) error
	drop    func()
}

// lsEngine generates the data set on one kind of server.
type lsEngine struct {
	label, short string
	engine       privacyv1.Engine
	open         func(ctx context.Context, cfg Config, rows int) (*lsDB, error)
}

var lsEngines = []lsEngine{
	{label: "PostgreSQL", short: "pg", engine: privacyv1.EnginePostgres, open: openLargePostgres},
	{label: "MariaDB", short: "mariadb", engine: privacyv1.EngineMySQL, open: openLargeMariaDB},
}

const lsPGSchema = `
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text, created_at timestamptz NOT NULL);
CREATE TABLE access_logs (
	id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id),
	at timestamptz NOT NULL, path text, ip text, user_agent text);`

// lsPGData: $1 is the subject's row count; the other accounts' rows follow
// the subject's ids.
var lsPGData = []string{
	`INSERT INTO accounts SELECT s, 'user' || s || '@example.com', 'User ' || s,
		timestamptz '2020-01-01 00:00:00+00' + s * interval '1 minute' FROM generate_series(1, 1 + 1000) s`,
	`INSERT INTO access_logs SELECT g, 1, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', '/api/items/' || g % 1000,
		'10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256, 'Firefox/' || g % 100
		FROM generate_series(1, $1::bigint) g`,
	`INSERT INTO access_logs SELECT $1::bigint + (a - 2) * 5 + k + 1, a, timestamptz '2024-01-01 00:00:00+00' + k * interval '1 hour',
		'/api/items/' || k, '10.1.' || a % 256 || '.' || k, 'Firefox/' || k
		FROM generate_series(2, 1 + 1000) a, generate_series(0, 4) k`,
	`CREATE INDEX ON access_logs (account_id)`,
	`VACUUM ANALYZE`,
}

func openLargePostgres(ctx context.Context, cfg Config, rows int) (*lsDB, error) {
	dsn, drop, err := freshPostgres(ctx, cfg.PostgresDSN, "large")
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		drop()
		return nil, err
	}
	fail := func(err error) (*lsDB, error) {
		pool.Close()
		drop()
		return nil, fmt.Errorf("generating the large subject: %w", err)
	}
	if _, err := pool.Exec(ctx, lsPGSchema); err != nil {
		return fail(err)
	}
	for _, q := range lsPGData {
		var args []any
		if containsParam(q) {
			args = []any{rows}
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			return fail(err)
		}
	}
	return &lsDB{
		storeDSN: dsn,
		byHand: func(ctx context.Context) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `DELETE FROM access_logs WHERE account_id = $1`, lsSubject); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, lsSubject)
				return err
			})
		},
		state: func(ctx context.Context) (subject, others int64, err error) {
			err = pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM access_logs WHERE account_id = $1) + (SELECT count(*) FROM accounts WHERE id = $1),
				(SELECT count(*) FROM access_logs WHERE account_id <> $1) + (SELECT count(*) FROM accounts WHERE id <> $1)`, lsSubject).Scan(&subject, &others)
			return
		},
		addLogs: func(ctx context.Context) error {
			_, err := pool.Exec(ctx, `INSERT INTO access_logs SELECT $1::bigint + g, $2::bigint, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second',
				'/api/items/' || g % 1000, '10.2.' || (g / 256) % 256 || '.' || g % 256, 'Firefox/' || g % 100
				FROM generate_series(1, $3::bigint) g`, lsExportFirstID, lsExportSubject, lsExportRows)
			return err
		},
		drop: func() { pool.Close(); drop() },
	}, nil
}

var lsMariaDBSchema = []string{
	`CREATE TABLE accounts (id BIGINT NOT NULL PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name VARCHAR(255),
		created_at DATETIME(6) NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE access_logs (id BIGINT NOT NULL PRIMARY KEY, account_id BIGINT NOT NULL, at DATETIME(6) NOT NULL,
		path VARCHAR(255), ip VARCHAR(64), user_agent VARCHAR(255), KEY account_id (account_id),
		CONSTRAINT access_logs_account FOREIGN KEY (account_id) REFERENCES accounts (id)) ENGINE=InnoDB`,
}

// lsMariaDBData: %[1]d, where present, is the subject's row count (sequence
// table names cannot be parameters).
var lsMariaDBData = []string{
	`INSERT INTO accounts SELECT seq, CONCAT('user', seq, '@example.com'), CONCAT('User ', seq),
		TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_1001`,
	`INSERT INTO access_logs SELECT seq, 1, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, CONCAT('/api/items/', seq %% 1000),
		CONCAT('10.', (seq DIV 65536) %% 256, '.', (seq DIV 256) %% 256, '.', seq %% 256), CONCAT('Firefox/', seq %% 100)
		FROM seq_1_to_%[1]d`,
	`INSERT INTO access_logs SELECT %[1]d + (a.seq - 2) * 5 + k.seq + 1, a.seq, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL k.seq HOUR,
		CONCAT('/api/items/', k.seq), CONCAT('10.1.', a.seq %% 256, '.', k.seq), CONCAT('Firefox/', k.seq)
		FROM seq_2_to_1001 a, seq_0_to_4 k`,
	`ANALYZE TABLE accounts, access_logs`,
}

func openLargeMariaDB(ctx context.Context, cfg Config, rows int) (*lsDB, error) {
	dsn, db, drop, err := freshMySQL(ctx, cfg.MySQLDSN, "large")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*lsDB, error) {
		drop()
		return nil, fmt.Errorf("generating the large subject: %w", err)
	}
	for _, q := range lsMariaDBSchema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fail(err)
		}
	}
	for _, q := range lsMariaDBData {
		if strings.Contains(q, "%[1]d") {
			q = fmt.Sprintf(q, rows)
		}
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fail(err)
		}
	}
	// The engine gets the DSN without the benchmark's own driver options.
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fail(err)
	}
	mc.MultiStatements, mc.ParseTime = false, false
	return &lsDB{
		storeDSN: mc.FormatDSN(),
		byHand: func(ctx context.Context) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback() }()
			if _, err := tx.ExecContext(ctx, `DELETE FROM access_logs WHERE account_id = ?`, lsSubject); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, lsSubject); err != nil {
				return err
			}
			return tx.Commit()
		},
		state: func(ctx context.Context) (subject, others int64, err error) {
			err = db.QueryRowContext(ctx, `SELECT
				(SELECT count(*) FROM access_logs WHERE account_id = ?) + (SELECT count(*) FROM accounts WHERE id = ?),
				(SELECT count(*) FROM access_logs WHERE account_id <> ?) + (SELECT count(*) FROM accounts WHERE id <> ?)`,
				lsSubject, lsSubject, lsSubject, lsSubject).Scan(&subject, &others)
			return
		},
		addLogs: func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO access_logs SELECT %d + seq, %d, TIMESTAMP'2025-01-01 00:00:00' + INTERVAL seq SECOND,
				CONCAT('/api/items/', seq %% 1000), CONCAT('10.2.', (seq DIV 256) %% 256, '.', seq %% 256), CONCAT('Firefox/', seq %% 100)
				FROM seq_1_to_%d`, lsExportFirstID, lsExportSubject, lsExportRows))
			return err
		},
		drop: drop,
	}, nil
}

// RunLargeSubject runs part 5.
func RunLargeSubject(ctx context.Context, cfg Config) Part {
	p := Part{Name: "large-subject", Details: map[string]any{}}
	if err := runLargeSubject(ctx, cfg, &p); err != nil {
		p.Error = err.Error()
	}
	return p
}

func runLargeSubject(ctx context.Context, cfg Config, p *Part) error {
	rows := cfg.LargeSubjectRows
	wantSubject := int64(rows) + 1
	wantOthers := int64(lsOthers*lsRowsPerOther + lsOthers)
	p.Details["subjectRows"], p.Details["otherAccounts"], p.Details["otherRowsEach"] = rows, lsOthers, lsRowsPerOther

	cfg.logf("large subject: starting kube-apiserver and etcd")
	plane, err := startPlane(cfg, "envtest-large.kubeconfig")
	if err != nil {
		return err
	}
	defer plane.stop()
	env, k8s, kubeconfig := plane.env, plane.k8s, plane.kubeconfig

	for _, eng := range lsEngines {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		label := fmt.Sprintf("5. large subject, %s: 1 subject with %s access_logs rows among %s accounts, to Ready",
			eng.label, count(int64(rows)), count(lsOthers))
		details := map[string]any{}
		p.Details[eng.short] = details

		// The baseline first, on its own fresh data.
		cfg.logf("large subject: %s: generating %d rows for the hand-written transaction", eng.label, rows)
		base, err := eng.open(ctx, cfg, rows)
		if err != nil {
			p.Rows = append(p.Rows, Row{Benchmark: label, Lethe: "n/a", Met: "-", Note: err.Error()})
			continue
		}
		baseTime, err := lsTimeByHand(ctx, base, wantSubject, wantOthers)
		base.drop()
		if err != nil {
			return fmt.Errorf("%s, hand-written transaction: %w", eng.label, err)
		}
		details["baselineSeconds"] = baseTime.Seconds()

		cfg.logf("large subject: %s: generating %d rows for Lethe", eng.label, rows)
		db, err := eng.open(ctx, cfg, rows)
		if err != nil {
			return err
		}
		res, err := lsLethe(ctx, cfg, env, k8s, kubeconfig, eng, db, rows)
		if err == nil && res.ready {
			var subject, others int64
			want := wantOthers + lsExportRows // the export's subject got that many more (lsExport)
			if subject, others, err = db.state(ctx); err == nil && (subject != 0 || others != want) {
				err = fmt.Errorf("Lethe left %d of the subject's rows and %d of %d other rows", subject, others, want)
			}
		}
		db.drop()
		if err != nil {
			return fmt.Errorf("%s, Lethe: %w", eng.label, err)
		}
		details["lethe"] = res.details()
		p.Rows = append(p.Rows, res.rows(label, eng.label, baseTime)...)
	}
	return nil
}

// lsTimeByHand times the baseline and checks it left what Lethe must leave.
func lsTimeByHand(ctx context.Context, db *lsDB, wantSubject, wantOthers int64) (time.Duration, error) {
	subject, others, err := db.state(ctx)
	if err != nil {
		return 0, err
	}
	if subject != wantSubject || others != wantOthers {
		return 0, fmt.Errorf("generated %d subject rows and %d others, want %d and %d", subject, others, wantSubject, wantOthers)
	}
	start := time.Now()
	if err := db.byHand(ctx); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if subject, others, err = db.state(ctx); err != nil {
		return 0, err
	}
	if subject != 0 || others != wantOthers {
		return 0, fmt.Errorf("left %d of the subject's rows and %d of %d other rows", subject, others, wantOthers)
	}
	return d, nil
}

// lsResult is Lethe's side of one engine.
type lsResult struct {
	ready   bool
	elapsed time.Duration
	// stalled is the request's terminal condition when it stopped short of Ready.
	stalled string
	// rssBefore is the manager's RSS once the DataStore was Ready and it had
	// settled; peak is the highest RSS during the request (samples and VmHWM).
	rssBefore, peak float64
	samples         int
	process         bool
	counts          map[string]int64
	attempts        int32
	export          lsExportResult
}

func (r lsResult) growth() float64 { return r.peak - r.rssBefore }

func (r lsResult) details() map[string]any {
	return map[string]any{
		"ready": r.ready, "seconds": r.elapsed.Seconds(), "stalled": r.stalled,
		"rssBeforeMiB": r.rssBefore, "peakRssMiB": r.peak, "rssGrowthMiB": r.growth(), "rssSamples": r.samples,
		"managerProcess": r.process, "rows": r.counts, "attempts": r.attempts,
		"export": map[string]any{"ready": r.export.ready, "rows": r.export.rows, "parts": r.export.parts, "seconds": r.export.elapsed.Seconds(),
			"rssBeforeMiB": r.export.rssBefore, "peakRssMiB": r.export.peak, "stalled": r.export.stalled},
	}
}

func (r lsResult) rows(label, engine string, base time.Duration) []Row {
	t := Row{Benchmark: label, Baseline: fmtSeconds(base) + " hand-written tx", BaselineValue: base.Seconds(),
		Goal: fmt.Sprintf("≤ %.1f", lsTimeGoal), Unit: "s"}
	if r.ready {
		ratio := r.elapsed.Seconds() / base.Seconds()
		t.Lethe, t.LetheValue = fmtSeconds(r.elapsed), r.elapsed.Seconds()
		t.Ratio, t.RatioValue, t.Met = fmtRatio(ratio), ratio, met(ratio <= lsTimeGoal)
	} else {
		t.Lethe, t.Met = "not Ready", "NO"
		t.Note = fmt.Sprintf("the request was not Ready after %s: %s", fmtSeconds(r.elapsed), r.stalled)
	}
	mem := Row{Benchmark: "   manager RSS during the " + engine + " erasure: before → peak (growth)",
		Lethe:      fmt.Sprintf("%.0f → %.0f MiB (+%.0f MiB)", r.rssBefore, r.peak, r.growth()),
		LetheValue: r.growth(), Unit: "MiB", Goal: fmt.Sprintf("≤ +%.0f MiB", lsRSSGoal), Met: met(r.growth() <= lsRSSGoal)}
	switch {
	case !r.process:
		mem.Note = "manager ran in-process: RSS is the whole benchmark process's"
	case r.peak > lsMemoryLimit:
		mem.Note = fmt.Sprintf("peak RSS %.0f MiB passes the manager's %.0f MiB memory limit: in production it would be killed during this erasure", r.peak, lsMemoryLimit)
	}
	exp := Row{Benchmark: fmt.Sprintf("   manager RSS during the %s Access export of %s rows: before → peak (growth)", engine, count(lsExportRows+lsRowsPerOther+1)),
		Lethe:      fmt.Sprintf("%.0f → %.0f MiB (+%.0f MiB)", r.export.rssBefore, r.export.peak, r.export.peak-r.export.rssBefore),
		LetheValue: r.export.peak - r.export.rssBefore, Unit: "MiB", Goal: fmt.Sprintf("≤ +%.0f MiB", lsRSSGoal), Met: met(r.export.peak-r.export.rssBefore <= lsRSSGoal),
		Note: fmt.Sprintf("%s, %d Secret part(s)", fmtSeconds(r.export.elapsed), r.export.parts)}
	if !r.export.ready {
		exp.Lethe, exp.Met, exp.Note = "not Ready", "NO", "the export was not Ready: "+r.export.stalled
	}
	return []Row{t, mem, exp}
}

// lsLethe applies an erasure request for the subject through the manager and
// times it, sampling the manager's memory.
func lsLethe(ctx context.Context, cfg Config, env *testenv.Env, k8s client.WithWatch, kubeconfig string, eng lsEngine, db *lsDB, rows int) (lsResult, error) {
	ns := "bench-large-" + eng.short
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return lsResult{}, err
	}
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "logs-db"},
		StringData: map[string]string{"dsn": db.storeDSN, "maskingKey": string(erasureMaskingKey)},
	}); err != nil {
		return lsResult{}, err
	}
	ds := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "logs"}, Spec: largeSubjectSpec(eng.engine)}
	ds.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: "logs-db", Key: "dsn"}
	ds.Spec.MaskingKeySecretRef = &privacyv1.SecretKeySelector{Name: "logs-db", Key: "maskingKey"}
	if err := k8s.Create(ctx, ds); err != nil {
		return lsResult{}, err
	}
	// A manager of its own for each engine, so the RSS before is not what
	// the previous erasure left.
	mgr, err := startManager(ctx, cfg, env, kubeconfig, "large-"+eng.short)
	if err != nil {
		return lsResult{}, err
	}
	defer mgr.stop()
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(ds.Status.Conditions, privacyv1.ConditionReady), nil
	}); err != nil {
		return lsResult{}, fmt.Errorf("the DataStore did not become Ready: %w (manager log: %s)", err, mgr.logPath)
	}
	pid := os.Getpid()
	if mgr.process {
		pid = mgr.cmd.Process.Pid
	}
	// Settle: the manager has just synced its caches and checked the store.
	var before procMemory
	for range 20 {
		if before, err = readProcMemory(pid); err != nil {
			return lsResult{}, err
		}
		select {
		case <-ctx.Done():
			return lsResult{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	res := lsResult{rssBefore: before.RSS, process: mgr.process}
	stopSampling := sampleRSS(pid)

	dsr := &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase-large"},
		Spec: privacyv1.DataSubjectRequestSpec{Type: privacyv1.RequestErasure,
			Subject: privacyv1.Subject{Identities: privacyv1.Identities{"email": privacyv1.IdentityValue(lsSubjectEmail)}}},
	}
	cfg.logf("large subject: %s: erasure request for the %d-row subject", eng.label, rows)
	final, elapsed, err := lsWaitReady(ctx, k8s, dsr, 5*time.Minute)
	res.peak, res.samples = stopSampling()
	if err != nil {
		return res, err
	}
	after, _ := readProcMemory(pid)
	res.peak = max(res.peak, after.RSS)
	if after.HWM > before.HWM {
		// The kernel's high-water mark catches a peak between two samples.
		res.peak = max(res.peak, after.HWM)
	}
	res.elapsed = elapsed
	res.ready = apimeta.IsStatusConditionTrue(final.Status.Conditions, privacyv1.ConditionReady)
	res.counts = map[string]int64{}
	for _, s := range final.Status.Stores {
		res.attempts += s.Attempts
		for _, c := range s.Collections {
			res.counts[c.Collection] += c.Rows
		}
		if !res.ready && s.Phase != privacyv1.StoreCompleted {
			res.stalled = fmt.Sprintf("store %s %s %s: %s", s.Store, s.Phase, s.Reason, s.Message)
		}
	}
	if c := apimeta.FindStatusCondition(final.Status.Conditions, privacyv1.ConditionStalled); !res.ready && c != nil && c.Status == metav1.ConditionTrue {
		res.stalled = c.Reason + ": " + c.Message
	}
	if !res.ready && res.stalled == "" {
		res.stalled = "no terminal condition yet"
	}
	if res.ready && (res.counts["access_logs"] != int64(rows) || res.counts["accounts"] != 1) {
		return res, fmt.Errorf("the request reports %v rows, want %d access_logs and 1 account", res.counts, rows)
	}
	if res.ready {
		cfg.logf("large subject: %s: access export of a %d-row subject", eng.label, lsExportRows+lsRowsPerOther+1)
		res.export, err = lsExport(ctx, k8s, db, ns, pid)
	}
	return res, err
}

// sampleRSS samples the RSS of pid every 10 ms until the returned function
// is called, which returns the highest sample and how many there were: the
// peak of a few seconds' request is what matters.
func sampleRSS(pid int) (stop func() (peak float64, samples int)) {
	done := make(chan struct{})
	var sampled sync.WaitGroup
	var peak float64
	var n int
	sampled.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := readProcMemory(pid); err == nil {
				peak = max(peak, m.RSS)
				n++
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() (float64, int) {
		close(done)
		sampled.Wait()
		return peak, n
	}
}

// lsExportResult is an Access export of account lsExportSubject, measured
// on the manager that has just erased the large subject.
type lsExportResult struct {
	ready           bool
	rows            int64
	parts           int
	elapsed         time.Duration
	rssBefore, peak float64
	stalled         string
}

// lsExport gives account lsExportSubject lsExportRows more rows, then times
// its Access export and samples the manager's RSS during it (the kernel's
// high-water mark is the erasure's, so only samples count).
func lsExport(ctx context.Context, k8s client.WithWatch, db *lsDB, ns string, pid int) (lsExportResult, error) {
	if err := db.addLogs(ctx); err != nil {
		return lsExportResult{}, fmt.Errorf("adding the exported subject's rows: %w", err)
	}
	time.Sleep(time.Second) // let the heap the erasure used go back
	before, err := readProcMemory(pid)
	if err != nil {
		return lsExportResult{}, err
	}
	stop := sampleRSS(pid)
	dsr := &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "export-large"},
		Spec: privacyv1.DataSubjectRequestSpec{Type: privacyv1.RequestAccess,
			Subject: privacyv1.Subject{Identities: privacyv1.Identities{"email": privacyv1.IdentityValue(subjectEmail(lsExportSubject))}}},
	}
	final, elapsed, err := lsWaitReady(ctx, k8s, dsr, 5*time.Minute)
	peak, _ := stop()
	if err != nil {
		return lsExportResult{}, err
	}
	res := lsExportResult{elapsed: elapsed, rssBefore: before.RSS, peak: max(peak, before.RSS),
		ready: apimeta.IsStatusConditionTrue(final.Status.Conditions, privacyv1.ConditionReady), parts: len(final.Status.ExportParts)}
	for _, s := range final.Status.Stores {
		for _, c := range s.Collections {
			if c.Collection == "access_logs" {
				res.rows += c.Rows
			}
		}
		if !res.ready && s.Phase != privacyv1.StoreCompleted {
			res.stalled = fmt.Sprintf("store %s %s %s: %s", s.Store, s.Phase, s.Reason, s.Message)
		}
	}
	if want := int64(lsExportRows + lsRowsPerOther); res.ready && res.rows != want {
		return res, fmt.Errorf("the export reports %d access_logs rows, want %d", res.rows, want)
	}
	return res, nil
}

// lsWaitReady creates dsr and waits through a watch until it is Ready,
// Stalled, or limit passes; it returns the last state seen and the time from
// just before the creation.
func lsWaitReady(ctx context.Context, k8s client.WithWatch, dsr *privacyv1.DataSubjectRequest, limit time.Duration) (*privacyv1.DataSubjectRequest, time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	w, err := k8s.Watch(wctx, &privacyv1.DataSubjectRequestList{}, client.InNamespace(dsr.Namespace))
	if err != nil {
		return nil, 0, err
	}
	defer w.Stop()
	start := time.Now()
	if err := k8s.Create(ctx, dsr); err != nil {
		return nil, 0, err
	}
	last := dsr
	for {
		select {
		case <-wctx.Done():
			return last, time.Since(start), nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return last, time.Since(start), nil
			}
			got, isDSR := ev.Object.(*privacyv1.DataSubjectRequest)
			if !isDSR || got.Name != dsr.Name || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			last = got
			if apimeta.IsStatusConditionTrue(got.Status.Conditions, privacyv1.ConditionReady) ||
				apimeta.IsStatusConditionTrue(got.Status.Conditions, privacyv1.ConditionStalled) {
				return got, time.Since(start), nil
			}
		}
	}
}
