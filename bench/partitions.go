package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	mysqlstore "github.com/lethe-dev/lethe/internal/stores/mysql"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// Part "partitions": a table in monthly partitions over 24 months (2022 and
// 2023), the first 12 past retention (cutoff sweepCutoff, 1 January 2023),
// on PostgreSQL and MariaDB. Lethe's partition sweep (stores.PartitionSweeper)
// against one DELETE of the same rows (and, on MariaDB, pt-archiver when
// installed), each side on freshly generated data; the dead tuples each
// leaves (PostgreSQL, stores.TableHealthReporter); then, with one subject
// held (its one row in May 2022), every expired partition but that one
// must be dropped.
//
// The goal size is 10,000,000 rows; generating them takes minutes
// per side on a 2-core machine (three sides per engine), so the default is
// partitionBenchRows, scaled down with --sweep-rows for the smoke test, and
// LETHE_BENCH_PARTITION_ROWS sets it (10000000 for the goal).

const partitionBenchRows = 2000000

// heldUser is the subject whose single row, in an expired partition, is held.
const heldUser = 999999999

func partitionRows(cfg Config) int {
	if v, err := strconv.Atoi(os.Getenv("LETHE_BENCH_PARTITION_ROWS")); err == nil && v > 0 {
		return v
	}
	return min(partitionBenchRows, 10*cfg.SweepRows)
}

// months are the partitions' lower bounds, 2022-01 to 2024-01 (the last is
// the upper bound of December 2023).
func months() []time.Time {
	var out []time.Time
	for i := 0; i <= 24; i++ {
		out = append(out, time.Date(2022, time.Month(1+i), 1, 0, 0, 0, 0, time.UTC))
	}
	return out
}

func partitionSpec(engine privacyv1.Engine) privacyv1.DataStoreSpec {
	spec := sweepSpec(engine)
	spec.Collections[0].Fields = spec.Collections[0].Fields[:1]
	return spec
}

func partitionRule() stores.SweepRule {
	return stores.SweepRule{Collection: "events", Field: "created_at", Cutoff: sweepCutoff, Action: stores.ActionDelete}
}

// partitionSide is one side's figures.
type partitionSide struct {
	Rows     int64
	Elapsed  time.Duration
	DeadRows int64 // -1: unknown
	Dropped  int
	Kept     int
	Estimate bool
}

func (s partitionSide) details() map[string]any {
	return map[string]any{"rows": s.Rows, "seconds": s.Elapsed.Seconds(), "rowsPerSecond": rate(s.Rows, s.Elapsed),
		"deadRows": s.DeadRows, "dropped": s.Dropped, "kept": s.Kept, "estimatedCounts": s.Estimate}
}

// sweepSide runs SweepPartitions and checks what it dropped.
func sweepSide(ctx context.Context, ps stores.PartitionSweeper, rule stores.SweepRule, wantDropped int) (partitionSide, error) {
	start := time.Now()
	res, err := ps.SweepPartitions(ctx, rule, false)
	side := partitionSide{Elapsed: time.Since(start), Dropped: len(res.Dropped), Kept: len(res.Kept), DeadRows: -1}
	if err != nil {
		return side, err
	}
	for _, o := range res.Dropped {
		side.Rows += o.Rows
		side.Estimate = side.Estimate || o.Estimated
	}
	if side.Dropped != wantDropped || side.Dropped+side.Kept != 12 {
		return side, fmt.Errorf("dropped %d partitions and kept %d, want %d dropped of 12", side.Dropped, side.Kept, wantDropped)
	}
	return side, nil
}

// RunPartitions runs the part on both engines.
func RunPartitions(ctx context.Context, cfg Config) Part {
	p := Part{Name: "partitions", Details: map[string]any{}}
	n := partitionRows(cfg)
	p.Details["rows"] = n
	if rows, err := pgPartitions(ctx, cfg, n, p.Details); err != nil {
		p.Error = "PostgreSQL: " + err.Error()
	} else {
		p.Rows = append(p.Rows, rows...)
	}
	rows, err := mariaDBPartitions(ctx, cfg, n, p.Details)
	if err != nil {
		p.Error = strings.TrimPrefix(p.Error+"; MariaDB: "+err.Error(), "; ")
	}
	p.Rows = append(p.Rows, rows...)
	return p
}

// partitionRowsOf renders one engine's rows of the table.
func partitionRowsOf(engine string, n int, lethe, del, held partitionSide, extra []Row) []Row {
	ratio := rate(del.Rows, del.Elapsed)
	if ratio > 0 {
		ratio = rate(del.Rows, lethe.Elapsed) / ratio
	}
	counts := "exact counts"
	if lethe.Estimate {
		counts = "estimated counts"
	}
	rows := []Row{{
		Benchmark: fmt.Sprintf("5. %s partition sweep, %s rows in 24 monthly partitions, 12 expired (%s)", engine, count(int64(n)), counts),
		Lethe:     fmtMS(lethe.Elapsed), Baseline: fmtMS(del.Elapsed) + " single DELETE",
		Ratio: fmtRatio(ratio), RatioValue: ratio, Goal: "≥ 100× faster", Met: met(ratio >= 100),
		LetheValue: ms(lethe.Elapsed), BaselineValue: ms(del.Elapsed), Unit: "ms",
	}}
	rows = append(rows, extra...)
	if lethe.DeadRows >= 0 {
		rows = append(rows, Row{
			Benchmark: "   dead tuples left", Lethe: strconv.FormatInt(lethe.DeadRows, 10), Baseline: strconv.FormatInt(del.DeadRows, 10) + " (single DELETE)",
			Goal: "0", Met: met(lethe.DeadRows == 0), LetheValue: float64(lethe.DeadRows), BaselineValue: float64(del.DeadRows), Unit: "rows",
		})
	}
	rows = append(rows, Row{
		Benchmark: "   one subject held: expired partitions dropped", Lethe: fmt.Sprintf("%d of 12 (%d kept)", held.Dropped, held.Kept),
		Goal: "11 of 12", Met: met(held.Dropped == 11 && held.Kept == 1), LetheValue: float64(held.Dropped), Unit: "partitions",
	})
	return rows
}

// ---- PostgreSQL -------------------------------------------------------------

func pgPartitionSchema() string {
	b := strings.Builder{}
	b.WriteString(`DROP TABLE IF EXISTS events;
CREATE TABLE events (id bigint NOT NULL, user_id bigint NOT NULL, email text, created_at timestamptz NOT NULL,
	PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
`)
	m := months()
	for i := 0; i < 24; i++ {
		fmt.Fprintf(&b, "CREATE TABLE events_%s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s');\n",
			m[i].Format("2006_01"), m[i].Format(time.RFC3339), m[i+1].Format(time.RFC3339))
	}
	return b.String()
}

// pgPartitionData spreads $1 rows evenly over the 730 days of 2022-2023, and
// adds the held subject's one row.
const pgPartitionData = `INSERT INTO events
SELECT g, g % 50000 + 1, 'user' || g % 50000 || '@example.com',
	timestamptz '2022-01-01 00:00:00+00' + (g * 63072000 / ($1::bigint + 1)) * interval '1 second'
FROM generate_series(1, $1::bigint) g;
INSERT INTO events VALUES (0, ` + "999999999" + `, 'held@example.com', '2022-05-15 00:00:00+00')`

func pgPartitions(ctx context.Context, cfg Config, n int, details map[string]any) ([]Row, error) {
	dsn, drop, err := freshPostgres(ctx, cfg.PostgresDSN, "partitions")
	if err != nil {
		return nil, err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	m, err := datamap.Build(partitionSpec(privacyv1.EnginePostgres))
	if err != nil {
		return nil, err
	}
	store, err := postgres.New(ctx, dsn, m, erasureMaskingKey, testdb.Loopback)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	load := func(side string) (int64, error) {
		cfg.logf("postgres partitions: %s: generating %d rows", side, n)
		if _, err := pool.Exec(ctx, pgPartitionSchema()); err != nil {
			return 0, err
		}
		for _, q := range strings.Split(pgPartitionData, ";\n") {
			var args []any
			if strings.Contains(q, "$1") {
				args = []any{n}
			}
			if _, err := pool.Exec(ctx, q, args...); err != nil {
				return 0, err
			}
		}
		for _, q := range []string{"VACUUM ANALYZE events", "CHECKPOINT"} {
			if _, err := pool.Exec(ctx, q); err != nil {
				return 0, fmt.Errorf("%s: %w", q, err)
			}
		}
		var expired int64
		err := pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE created_at < $1", sweepCutoff).Scan(&expired)
		return expired, err
	}
	// verify checks the expired rows are all gone and the others all there.
	verify := func(side string, expired int64) error {
		var left, fresh int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE created_at < $1), count(*) FILTER (WHERE created_at >= $1) FROM events", sweepCutoff).Scan(&left, &fresh); err != nil {
			return err
		}
		if left != 0 || fresh != int64(n)+1-expired {
			return fmt.Errorf("%s left %d expired rows and %d of %d fresh ones", side, left, fresh, int64(n)+1-expired)
		}
		return nil
	}
	// dead waits (at most 10 s) for the statistics to show the dead rows.
	dead := func() int64 {
		var h stores.TableHealth
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if h, err = store.TableHealth(ctx, "events"); err != nil || h.DeadRows > 0 {
				break
			}
		}
		return h.DeadRows
	}

	var del, lethe, held partitionSide
	expired, err := load("single DELETE")
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	tag, err := conn.Exec(ctx, "DELETE FROM events WHERE created_at < $1", sweepCutoff)
	del = partitionSide{Rows: tag.RowsAffected(), Elapsed: time.Since(start)}
	if err == nil {
		// Statistics are flushed asynchronously: this backend flushes at once.
		_, err = conn.Exec(ctx, "SELECT pg_stat_force_next_flush()")
	}
	conn.Release()
	if err != nil {
		return nil, fmt.Errorf("single DELETE: %w", err)
	}
	if del.Rows != expired {
		return nil, fmt.Errorf("the single DELETE removed %d rows, want %d", del.Rows, expired)
	}
	del.DeadRows = dead()
	if err := verify("single DELETE", expired); err != nil {
		return nil, err
	}

	if expired, err = load("lethe"); err != nil {
		return nil, err
	}
	if lethe, err = sweepSide(ctx, store, partitionRule(), 12); err != nil {
		return nil, fmt.Errorf("Lethe's partition sweep: %w", err)
	}
	time.Sleep(time.Second) // what the statistics would show has had time to arrive
	h, err := store.TableHealth(ctx, "events")
	if err != nil {
		return nil, err
	}
	lethe.DeadRows = h.DeadRows
	if err := verify("Lethe", expired); err != nil {
		return nil, err
	}

	byHand, err := dropByHand(load, func(names string) error {
		_, err := pool.Exec(ctx, "DROP TABLE "+names)
		return err
	}, verify, "events_")
	if err != nil {
		return nil, err
	}

	if _, err := load("lethe, one subject held"); err != nil {
		return nil, err
	}
	rule := partitionRule()
	if rule.HeldKeys, err = heldUserKeys(ctx, store); err != nil {
		return nil, err
	}
	if held, err = sweepSide(ctx, store, rule, 11); err != nil {
		return nil, fmt.Errorf("Lethe's partition sweep with a subject held: %w", err)
	}
	details["postgres"] = map[string]any{"lethe": lethe.details(), "singleDelete": del.details(), "byHand": byHand.details(), "held": held.details()}
	return partitionRowsOf("PostgreSQL", n, lethe, del, held, []Row{droppedByHandRow("DROP TABLE", lethe, byHand, del)}), nil
}

// ---- MariaDB ----------------------------------------------------------------

func mariaDBPartitionSchema() string {
	var parts []string
	m := months()
	for i := 0; i < 24; i++ {
		parts = append(parts, fmt.Sprintf("PARTITION p%s VALUES LESS THAN ('%s')", m[i].Format("2006_01"), m[i+1].Format("2006-01-02")))
	}
	return `DROP TABLE IF EXISTS events;
CREATE TABLE events (id BIGINT NOT NULL, user_id BIGINT NOT NULL, email VARCHAR(255), created_at DATETIME(6) NOT NULL,
	PRIMARY KEY (id, created_at)) ENGINE=InnoDB PARTITION BY RANGE COLUMNS(created_at) (` + strings.Join(parts, ", ") + `)`
}

// mariaDBPartitionData is pgPartitionData in MariaDB's words; %[1]d is the row
// count (a sequence table name cannot be a parameter).
const mariaDBPartitionData = `INSERT INTO events
SELECT seq, seq %% 50000 + 1, CONCAT('user', seq %% 50000, '@example.com'),
	TIMESTAMP'2022-01-01 00:00:00' + INTERVAL (seq * 63072000 DIV (%[1]d + 1)) SECOND
FROM seq_1_to_%[1]d;
INSERT INTO events VALUES (0, 999999999, 'held@example.com', '2022-05-15 00:00:00')`

func mariaDBPartitions(ctx context.Context, cfg Config, n int, details map[string]any) ([]Row, error) {
	dsn, db, drop, err := freshMySQL(ctx, cfg.MySQLDSN, "partitions")
	if err != nil {
		return nil, err
	}
	defer drop()
	m, err := datamap.Build(partitionSpec(privacyv1.EngineMySQL))
	if err != nil {
		return nil, err
	}
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	c.MultiStatements, c.ParseTime = false, false // the engine gets the DSN without the benchmark's options
	store, err := mysqlstore.New(ctx, c.FormatDSN(), m, erasureMaskingKey, testdb.Loopback)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	cutoff := sweepCutoff.Format("2006-01-02 15:04:05")
	load := func(side string) (int64, error) {
		cfg.logf("mariadb partitions: %s: generating %d rows", side, n)
		if _, err := db.ExecContext(ctx, mariaDBPartitionSchema()); err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf(mariaDBPartitionData, n)); err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, "ANALYZE TABLE events"); err != nil {
			return 0, err
		}
		if err := settleMariaDB(ctx, db); err != nil {
			return 0, err
		}
		var expired int64
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE created_at < ?", cutoff).Scan(&expired)
		return expired, err
	}
	verify := func(side string) error {
		var left, fresh sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT SUM(created_at < ?), SUM(created_at >= ?) FROM events", cutoff, cutoff).Scan(&left, &fresh); err != nil {
			return err
		}
		if left.Int64 != 0 || fresh.Int64 == 0 {
			return fmt.Errorf("%s left %d expired rows and %d fresh ones", side, left.Int64, fresh.Int64)
		}
		return nil
	}

	expired, err := load("single DELETE")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := db.ExecContext(ctx, "DELETE FROM events WHERE created_at < ?", cutoff)
	if err != nil {
		return nil, fmt.Errorf("single DELETE: %w", err)
	}
	del := partitionSide{Elapsed: time.Since(start), DeadRows: -1}
	del.Rows, _ = res.RowsAffected()
	if del.Rows != expired {
		return nil, fmt.Errorf("the single DELETE removed %d rows, want %d", del.Rows, expired)
	}
	if err := verify("single DELETE"); err != nil {
		return nil, err
	}

	var extra []Row
	if bin, err := exec.LookPath(cfg.PTArchiver); err != nil {
		extra = append(extra, Row{Benchmark: "   pt-archiver --purge", Lethe: "-", Baseline: "n/a", Met: "-",
			Note: "pt-archiver not found: run hack/bench-deps.sh (apt-get install percona-toolkit)"})
	} else {
		expired, err := load("pt-archiver")
		if err != nil {
			return nil, err
		}
		pt, err := runPTArchiver(ctx, cfg, bin, dsn, expired)
		if err != nil {
			return nil, err
		}
		details["mariadbPTArchiver"] = sweepDetails(pt)
		extra = append(extra, Row{Benchmark: "   against pt-archiver --purge", Baseline: fmtMS(pt.Elapsed) + " pt-archiver", Unit: "ms",
			BaselineValue: ms(pt.Elapsed), Met: "-"})
	}

	if _, err := load("lethe"); err != nil {
		return nil, err
	}
	lethe, err := sweepSide(ctx, store, partitionRule(), 12)
	if err != nil {
		return nil, fmt.Errorf("Lethe's partition sweep: %w", err)
	}
	if err := verify("Lethe"); err != nil {
		return nil, err
	}
	for i := range extra {
		if extra[i].BaselineValue > 0 {
			r := extra[i].BaselineValue / ms(lethe.Elapsed)
			extra[i].Lethe, extra[i].LetheValue, extra[i].Ratio, extra[i].RatioValue = fmtMS(lethe.Elapsed), ms(lethe.Elapsed), fmtRatio(r), r
			extra[i].Goal, extra[i].Met = "≥ 100× faster", met(r >= 100)
		}
	}

	byHand, err := dropByHand(load, func(names string) error {
		_, err := db.ExecContext(ctx, "ALTER TABLE events DROP PARTITION "+names)
		return err
	}, func(side string, _ int64) error { return verify(side) }, "p")
	if err != nil {
		return nil, err
	}
	extra = append(extra, droppedByHandRow("ALTER TABLE … DROP PARTITION", lethe, byHand, del))

	if _, err := load("lethe, one subject held"); err != nil {
		return nil, err
	}
	rule := partitionRule()
	if rule.HeldKeys, err = heldUserKeys(ctx, store); err != nil {
		return nil, err
	}
	held, err := sweepSide(ctx, store, rule, 11)
	if err != nil {
		return nil, fmt.Errorf("Lethe's partition sweep with a subject held: %w", err)
	}
	details["mariadb"] = map[string]any{"lethe": lethe.details(), "singleDelete": del.details(), "byHand": byHand.details(), "held": held.details()}
	return partitionRowsOf("MariaDB", n, lethe, del, held, extra), nil
}

// dropByHand loads fresh data and drops the 12 expired partitions (named
// prefix + month) in one statement, drop(names joined), timed, then checks
// the expired rows are gone and the others there.
func dropByHand(load func(side string) (int64, error), drop func(names string) error, verify func(side string, expired int64) error, prefix string) (partitionSide, error) {
	const side = "the partitions dropped by hand"
	expired, err := load(side)
	if err != nil {
		return partitionSide{}, err
	}
	var names []string
	for _, m := range months()[:12] {
		names = append(names, prefix+m.Format("2006_01"))
	}
	start := time.Now()
	if err := drop(strings.Join(names, ", ")); err != nil {
		return partitionSide{}, fmt.Errorf("%s: %w", side, err)
	}
	byHand := partitionSide{Rows: expired, Elapsed: time.Since(start)}
	return byHand, verify(side, expired)
}

// droppedByHandRow compares Lethe's sweep with the same 12 partitions
// dropped by hand in one statement, without a check: the physical limit
// (on PostgreSQL, mostly the file system freeing the partitions' files), so
// the ratio says how close to it Lethe's checks and its detach, one
// partition at a time, come. Its note says how much faster than the single
// DELETE (del) the drop by hand is: the most any partition sweep could be.
func droppedByHandRow(statement string, lethe, byHand, del partitionSide) Row {
	r := ms(byHand.Elapsed) / ms(lethe.Elapsed)
	return Row{Benchmark: "   against the 12 partitions dropped by hand (one " + statement + ", no check)",
		Lethe: fmtMS(lethe.Elapsed), LetheValue: ms(lethe.Elapsed), Baseline: fmtMS(byHand.Elapsed) + " by hand", BaselineValue: ms(byHand.Elapsed),
		Ratio: fmtRatio(r), RatioValue: r, Unit: "ms", Goal: "-", Met: "-",
		Note: fmt.Sprintf("the drop by hand, the physical limit (drops vary by tens of ms between runs), is %s× faster than the single DELETE", fmtRatio(ms(del.Elapsed)/ms(byHand.Elapsed)))}
}

// heldUserKeys are the held subject's keys in events.
func heldUserKeys(ctx context.Context, store stores.Sweeper) ([]string, error) {
	keys, err := store.SubjectKeys(ctx, map[string]string{"userId": strconv.Itoa(heldUser)}, []string{"events"})
	return keys["events"], err
}
