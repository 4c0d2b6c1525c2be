package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	"github.com/jackc/pgx/v5/pgxpool"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
)

// Part 2: a retention sweep of SweepRows expired rows (plus one fresh row in
// eleven, interleaved) through the engine's Sweeper, SweepBatch after
// SweepBatch with the RetentionPolicy's default batch size, against one
// single DELETE / UPDATE over the same rows: the limit, which holds its locks
// for the whole run. Each side gets the table freshly generated.

// sweepCutoff separates the expired rows (2020) from the fresh ones (2025).
var sweepCutoff = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

// sweepTotalRows is how many rows to generate so that exactly expired are
// expired: every eleventh row (id % 11 = 0) is fresh.
func sweepTotalRows(expired int) int {
	total := expired + expired/10
	for total-total/11 < expired {
		total++
	}
	for total-total/11 > expired {
		total--
	}
	return total
}

const pgSweepSchema = `DROP TABLE IF EXISTS events;
CREATE TABLE events (
	id bigint PRIMARY KEY, user_id bigint NOT NULL, email text, ip text, created_at timestamptz NOT NULL)`

const pgSweepData = `INSERT INTO events
SELECT g, g % 50000, 'user' || g % 50000 || '@example.com', '10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256,
	CASE WHEN g % 11 = 0 THEN timestamptz '2025-01-01 00:00:00+00' ELSE timestamptz '2020-01-01 00:00:00+00' END + g * interval '1 second'
FROM generate_series(1, $1::bigint) g`

// sweepSpec maps the swept table: anonymizing redacts the email and clears the IP.
func sweepSpec(engine privacyv1.Engine) privacyv1.DataStoreSpec {
	return privacyv1.DataStoreSpec{
		Engine: engine,
		Collections: []privacyv1.Collection{{
			Name: "events", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
			Fields: []privacyv1.Field{
				{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
				{Name: "ip", Category: "user.technical.ip", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
			},
		}},
	}
}

func sweepRule(action stores.Action, batch int) stores.SweepRule {
	return stores.SweepRule{Collection: "events", Field: "created_at", Cutoff: sweepCutoff, Action: action, BatchSize: batch}
}

// sweepRun is one side's sweep.
type sweepRun struct {
	Rows    int64
	Elapsed time.Duration
	Batches durations
}

func (r sweepRun) rate() float64 { return rate(r.Rows, r.Elapsed) }

// sweepLoop runs SweepBatch until Done, timing each batch (one transaction).
func sweepLoop(ctx context.Context, sw stores.Sweeper, rule stores.SweepRule, expected int64) (sweepRun, error) {
	var run sweepRun
	cursor := ""
	maxBatches := expected/int64(max(rule.BatchSize, 1))*2 + 10
	start := time.Now()
	for i := int64(0); ; i++ {
		if i > maxBatches {
			return run, fmt.Errorf("no end after %d batches (%d rows)", i, run.Rows)
		}
		t := time.Now()
		b, err := sw.SweepBatch(ctx, rule, cursor)
		run.Batches = append(run.Batches, time.Since(t))
		if err != nil {
			return run, fmt.Errorf("batch %d: %w", i+1, err)
		}
		run.Rows += b.Rows
		cursor = b.Cursor
		if b.Done {
			break
		}
	}
	run.Elapsed = time.Since(start)
	return run, nil
}

// RunPostgresSweep runs part 2.
func RunPostgresSweep(ctx context.Context, cfg Config) Part {
	p := Part{Name: "postgres-sweep", Details: map[string]any{}}
	dsn, drop, err := freshPostgres(ctx, cfg.PostgresDSN, "sweep")
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer pool.Close()
	m, err := datamap.Build(sweepSpec(privacyv1.EnginePostgres))
	if err != nil {
		p.Error = err.Error()
		return p
	}
	store, err := postgres.New(ctx, dsn, m, erasureMaskingKey, testdb.Loopback)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer store.Close()
	sw, ok := any(store).(stores.Sweeper)
	if !ok {
		p.Error = "the PostgreSQL engine does not implement stores.Sweeper yet"
		return p
	}
	total := sweepTotalRows(cfg.SweepRows)
	load := func() (int64, error) {
		if _, err := pool.Exec(ctx, pgSweepSchema); err != nil {
			return 0, err
		}
		if _, err := pool.Exec(ctx, pgSweepData, total); err != nil {
			return 0, err
		}
		for _, q := range []string{"CREATE INDEX ON events (created_at)", "VACUUM ANALYZE events", "CHECKPOINT"} {
			if _, err := pool.Exec(ctx, q); err != nil {
				return 0, fmt.Errorf("%s: %w", q, err)
			}
		}
		var expired int64
		err := pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE created_at < $1", sweepCutoff).Scan(&expired)
		return expired, err
	}
	singles := map[stores.Action]string{
		stores.ActionDelete:    "DELETE FROM events WHERE created_at < $1",
		stores.ActionAnonymize: "UPDATE events SET email = '[redacted]', ip = NULL WHERE created_at < $1",
	}
	// verify checks the expired rows are all gone (or masked) and the fresh ones untouched.
	verify := func(action stores.Action, want int64) error {
		var left, fresh int64
		q := "SELECT count(*) FILTER (WHERE created_at < $1), count(*) FILTER (WHERE created_at >= $1 AND email LIKE 'user%' AND ip IS NOT NULL) FROM events"
		if action == stores.ActionAnonymize {
			q = "SELECT count(*) FILTER (WHERE created_at < $1 AND (email <> '[redacted]' OR ip IS NOT NULL)), count(*) FILTER (WHERE created_at >= $1 AND email LIKE 'user%' AND ip IS NOT NULL) FROM events"
		}
		if err := pool.QueryRow(ctx, q, sweepCutoff).Scan(&left, &fresh); err != nil {
			return err
		}
		if left != 0 || fresh != int64(total)-want {
			return fmt.Errorf("%s left %d expired rows and %d of %d fresh rows intact", action, left, fresh, int64(total)-want)
		}
		return nil
	}
	for i, action := range []stores.Action{stores.ActionDelete, stores.ActionAnonymize} {
		var limit, lethe sweepRun
		sides := []string{"limit", "lethe"}
		if i%2 == 1 {
			sides = []string{"lethe", "limit"}
		}
		for _, side := range sides {
			cfg.logf("postgres sweep: %s, %s: generating %d rows", action, side, total)
			expired, err := load()
			if err != nil {
				p.Error = fmt.Sprintf("generating the sweep data: %v", err)
				return p
			}
			cfg.logf("postgres sweep: %s, %s: %d expired rows", action, side, expired)
			if side == "limit" {
				start := time.Now()
				tag, err := pool.Exec(ctx, singles[action], sweepCutoff)
				limit = sweepRun{Rows: tag.RowsAffected(), Elapsed: time.Since(start)}
				limit.Batches = durations{limit.Elapsed}
				if err != nil {
					p.Error = fmt.Sprintf("single %s: %v", action, err)
					return p
				}
			} else {
				lethe, err = sweepLoop(ctx, sw, sweepRule(action, cfg.BatchSize), expired)
				if err != nil {
					p.Error = fmt.Sprintf("Lethe's %s sweep: %v", action, err)
					return p
				}
			}
			if err := verify(action, expired); err != nil {
				p.Error = fmt.Sprintf("%s side: %v", side, err)
				return p
			}
		}
		p.Rows = append(p.Rows, sweepRows(fmt.Sprintf("2. PostgreSQL sweep, %s %s expired rows", action, count(lethe.Rows)),
			"single "+map[stores.Action]string{stores.ActionDelete: "DELETE", stores.ActionAnonymize: "UPDATE"}[action],
			lethe, limit, 0.5, cfg.BatchSize, true)...)
		p.Details[string(action)] = map[string]any{
			"lethe": sweepDetails(lethe), "limit": sweepDetails(limit),
		}
	}
	return p
}

// sweepRows renders a sweep's rows/s against its baseline, and its longest batch.
func sweepRows(label, baseline string, lethe, base sweepRun, goal float64, batch int, batchGoal bool) []Row {
	ratio := lethe.rate() / base.rate()
	goalText := fmt.Sprintf("≥ %.1f", goal)
	ok := ratio >= goal
	if goal == 1 {
		goalText, ok = "> 1", ratio > 1
	}
	rows := []Row{{
		Benchmark: label, Lethe: fmtRate(lethe.rate(), "rows/s"), Baseline: fmtRate(base.rate(), "rows/s") + " " + baseline,
		Ratio: fmtRatio(ratio), RatioValue: ratio, Goal: goalText, Met: met(ok),
		LetheValue: lethe.rate(), BaselineValue: base.rate(), Unit: "rows/s",
	}}
	longest := Row{
		Benchmark: fmt.Sprintf("   longest batch transaction (batch %d, %d batches)", batch, len(lethe.Batches)),
		Lethe:     fmtMS(lethe.Batches.max()), Baseline: fmtMS(base.Batches.max()) + " (" + baseline + ")",
		LetheValue: ms(lethe.Batches.max()), BaselineValue: ms(base.Batches.max()), Unit: "ms", Met: "-",
	}
	if batchGoal {
		longest.Goal = "≤ 250 ms"
		longest.Met = met(lethe.Batches.max() <= 250*time.Millisecond)
	}
	return append(rows, longest)
}

func sweepDetails(r sweepRun) map[string]any {
	return map[string]any{
		"rows": r.Rows, "seconds": r.Elapsed.Seconds(), "rowsPerSecond": r.rate(), "batches": len(r.Batches),
		"batch_p50_ms": ms(r.Batches.quantile(0.5)), "batch_p99_ms": ms(r.Batches.quantile(0.99)), "batch_max_ms": ms(r.Batches.max()),
	}
}

func count(n int64) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
