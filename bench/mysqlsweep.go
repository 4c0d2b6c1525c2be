package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	"github.com/go-sql-driver/mysql"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Part 3: the delete sweep on MariaDB, through the mysql engine's Sweeper as
// the connector opens it, against pt-archiver --purge (the tool DBAs use for
// exactly this) with the same batch: --limit = batch size, a commit per batch,
// bulk deletes, primary key ascending, only the key fetched. Each side gets
// the table freshly generated from MariaDB's sequence engine.

const mysqlSweepSchema = `DROP TABLE IF EXISTS events;
CREATE TABLE events (
	id BIGINT NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL, email VARCHAR(255), ip VARCHAR(64),
	created_at DATETIME(6) NOT NULL, KEY created_at (created_at)) ENGINE=InnoDB`

// mysqlSweepData fills events like pgSweepData; %d is the row count (a
// sequence table name cannot be a parameter).
const mysqlSweepData = `INSERT INTO events
SELECT seq, seq %% 50000, CONCAT('user', seq %% 50000, '@example.com'),
	CONCAT('10.', (seq DIV 65536) %% 256, '.', (seq DIV 256) %% 256, '.', seq %% 256),
	IF(seq %% 11 = 0, TIMESTAMP'2025-01-01 00:00:00', TIMESTAMP'2020-01-01 00:00:00') + INTERVAL seq SECOND
FROM seq_1_to_%d`

// RunMySQLSweep runs part 3.
func RunMySQLSweep(ctx context.Context, cfg Config) Part {
	p := Part{Name: "mysql-sweep", Details: map[string]any{}}
	ptArchiver, ptErr := exec.LookPath(cfg.PTArchiver)
	dsn, db, drop, err := freshMySQL(ctx, cfg.MySQLDSN, "sweep")
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer drop()
	total := sweepTotalRows(cfg.SweepRows)
	load := func(side string) (int64, error) {
		cfg.logf("mariadb sweep: %s: generating %d rows", side, total)
		if _, err := db.ExecContext(ctx, mysqlSweepSchema); err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf(mysqlSweepData, total)); err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, "ANALYZE TABLE events"); err != nil {
			return 0, err
		}
		if err := settleMariaDB(ctx, db); err != nil {
			return 0, err
		}
		var expired int64
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE created_at < ?", sweepCutoff.Format("2006-01-02 15:04:05")).Scan(&expired)
		return expired, err
	}
	verify := func(side string, expired int64) error {
		var left, fresh int64
		err := db.QueryRowContext(ctx, "SELECT COALESCE(SUM(created_at < ?), 0), COALESCE(SUM(created_at >= ?), 0) FROM events",
			sweepCutoff.Format("2006-01-02 15:04:05"), sweepCutoff.Format("2006-01-02 15:04:05")).Scan(&left, &fresh)
		if err != nil {
			return err
		}
		if left != 0 || fresh != int64(total)-expired {
			return fmt.Errorf("%s left %d expired rows and %d of %d fresh rows", side, left, fresh, int64(total)-expired)
		}
		return nil
	}

	var base, lethe sweepRun
	var notes []string
	// pt-archiver first.
	if ptErr != nil {
		notes = append(notes, fmt.Sprintf("pt-archiver not found (%v): run hack/bench-deps.sh (apt-get install percona-toolkit)", ptErr))
	} else {
		expired, err := load("pt-archiver")
		if err != nil {
			p.Error = fmt.Sprintf("generating the sweep data: %v", err)
			return p
		}
		base, err = runPTArchiver(ctx, cfg, ptArchiver, dsn, expired)
		if err != nil {
			p.Error = err.Error()
			return p
		}
		if err := verify("pt-archiver", expired); err != nil {
			p.Error = err.Error()
			return p
		}
		p.Details["ptArchiver"] = sweepDetails(base)
	}
	// Then Lethe, through the connector as the RetentionPolicy controller opens it.
	sw, closeStore, err := openMySQLSweeper(ctx, dsn)
	if err != nil {
		notes = append(notes, err.Error())
	} else {
		defer closeStore()
		expired, err := load("lethe")
		if err != nil {
			p.Error = fmt.Sprintf("generating the sweep data: %v", err)
			return p
		}
		cfg.logf("mariadb sweep: lethe: %d expired rows", expired)
		lethe, err = sweepLoop(ctx, sw, sweepRule(stores.ActionDelete, cfg.BatchSize), expired)
		if err != nil {
			p.Error = fmt.Sprintf("Lethe's delete sweep on MariaDB: %v", err)
			return p
		}
		if err := verify("lethe", expired); err != nil {
			p.Error = err.Error()
			return p
		}
		p.Details["lethe"] = sweepDetails(lethe)
	}
	// And the same statements by hand.
	var byHand sweepRun
	if lethe.Rows > 0 {
		expired, err := load("the same statements by hand")
		if err != nil {
			p.Error = fmt.Sprintf("generating the sweep data: %v", err)
			return p
		}
		if byHand, err = mariaDBDeleteByHand(ctx, db, cfg.BatchSize); err != nil {
			p.Error = err.Error()
			return p
		}
		if err := verify("the same statements by hand", expired); err != nil {
			p.Error = err.Error()
			return p
		}
		p.Details["byHand"] = sweepDetails(byHand)
	}
	label := fmt.Sprintf("3. MariaDB sweep, delete %s expired rows", count(int64(cfg.SweepRows)))
	switch {
	case lethe.Rows > 0 && base.Rows > 0:
		p.Rows = sweepRows(label, "pt-archiver --purge", lethe, base, 2, cfg.BatchSize, false)
		// pt-archiver does not time its batches: only Lethe's longest is known.
		p.Rows[1].Baseline, p.Rows[1].BaselineValue = "", 0
		row := byHandRow("look-up through the primary key + DELETE of the key range", lethe, byHand)
		row.Note = fmt.Sprintf("the same statements by hand reach %s× pt-archiver", fmtRatio(byHand.rate()/base.rate()))
		p.Rows = append(p.Rows, row)
	case base.Rows > 0:
		p.Rows = []Row{{Benchmark: label, Lethe: "n/a", Baseline: fmtRate(base.rate(), "rows/s") + " pt-archiver --purge",
			BaselineValue: base.rate(), Unit: "rows/s", Goal: "≥ 2.0", Met: "-", Note: strings.Join(notes, "; ")}}
	case lethe.Rows > 0:
		p.Rows = []Row{{Benchmark: label, Lethe: fmtRate(lethe.rate(), "rows/s"), Baseline: "n/a",
			LetheValue: lethe.rate(), Unit: "rows/s", Goal: "≥ 2.0", Met: "-", Note: strings.Join(notes, "; ")}}
	default:
		p.Rows = []Row{{Benchmark: label, Lethe: "n/a", Baseline: "n/a", Goal: "≥ 2.0", Met: "-", Note: strings.Join(notes, "; ")}}
	}
	return p
}

// openMySQLSweeper opens the mysql engine the way the connector does for a
// DataStore; it fails (with a note for the table) while the engine is not
// part of this build or has no Sweeper.
func openMySQLSweeper(ctx context.Context, dsn string) (stores.Sweeper, func(), error) {
	spec := sweepSpec(privacyv1.EngineMySQL)
	m, err := datamap.Build(spec)
	if err != nil {
		return nil, nil, err
	}
	ds := &privacyv1.DataStore{Spec: spec}
	ds.Name, ds.Namespace = "bench", "bench"
	// The engine gets the DSN without the benchmark's own driver options.
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, nil, err
	}
	cfg.MultiStatements, cfg.ParseTime = false, false
	store, err := connector.Engines{Network: testdb.Loopback}.Open(ctx, ds, m, connector.Secrets{Connection: cfg.FormatDSN(), MaskingKey: erasureMaskingKey})
	if err != nil {
		return nil, nil, fmt.Errorf("the mysql engine is not available in this build: %v", err)
	}
	sw, ok := store.(stores.Sweeper)
	if !ok {
		store.Close()
		return nil, nil, fmt.Errorf("the mysql engine does not implement stores.Sweeper yet")
	}
	return sw, store.Close, nil
}

var ptDeleted = regexp.MustCompile(`(?m)^DELETE\s+(\d+)`)

// runPTArchiver purges the expired rows with pt-archiver, timed from start to exit.
func runPTArchiver(ctx context.Context, cfg Config, bin, dsn string, expired int64) (sweepRun, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return sweepRun{}, err
	}
	host, port := c.Addr, "3306"
	if i := strings.LastIndex(c.Addr, ":"); i >= 0 {
		host, port = c.Addr[:i], c.Addr[i+1:]
	}
	source := fmt.Sprintf("h=%s,P=%s,u=%s,D=%s,t=events,i=PRIMARY,A=utf8mb4", host, port, c.User, c.DBName)
	if c.Passwd != "" {
		source += ",p=" + c.Passwd
	}
	args := []string{
		"--source", source, "--purge",
		"--where", "created_at < '" + sweepCutoff.Format("2006-01-02 15:04:05") + "'",
		"--limit", strconv.Itoa(cfg.BatchSize), "--commit-each", "--bulk-delete", "--primary-key-only",
		"--no-safe-auto-increment", "--no-version-check", "--statistics",
	}
	cfg.logf("mariadb sweep: pt-archiver %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return sweepRun{}, fmt.Errorf("pt-archiver: %v: %s", err, tail(out.String(), 800))
	}
	run := sweepRun{Elapsed: elapsed}
	if m := ptDeleted.FindStringSubmatch(out.String()); m != nil {
		run.Rows, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if run.Rows != expired {
		return run, fmt.Errorf("pt-archiver deleted %d rows, want %d: %s", run.Rows, expired, tail(out.String(), 800))
	}
	// pt-archiver does not time its batches; its statistics give the totals.
	run.Batches = durations{elapsed}
	return run, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
