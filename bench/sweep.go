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

// sweepLoop runs SweepBatch until Done, timing each batch (one transaction),
// and counts every row a batch removes: its own and the rows below them. A
// batch that keeps rows is an error: both sides must remove the same rows.
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
		if len(b.Kept) > 0 {
			return run, fmt.Errorf("batch %d kept rows: %+v", i+1, b.Kept)
		}
		run.Rows += b.Rows
		for _, c := range b.Children {
			run.Rows += c.Rows
		}
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
		var limit, lethe, byHand sweepRun
		sides := []string{"limit", "lethe"}
		if i%2 == 1 {
			sides = []string{"lethe", "limit"}
		}
		if action == stores.ActionDelete {
			sides = append(sides, "by hand")
		}
		for _, side := range sides {
			cfg.logf("postgres sweep: %s, %s: generating %d rows", action, side, total)
			expired, err := load()
			if err != nil {
				p.Error = fmt.Sprintf("generating the sweep data: %v", err)
				return p
			}
			cfg.logf("postgres sweep: %s, %s: %d expired rows", action, side, expired)
			switch side {
			case "by hand":
				if byHand, err = pgDeleteByHand(ctx, pool, cfg.BatchSize); err != nil {
					p.Error = err.Error()
					return p
				}
			case "limit":
				start := time.Now()
				tag, err := pool.Exec(ctx, singles[action], sweepCutoff)
				limit = sweepRun{Rows: tag.RowsAffected(), Elapsed: time.Since(start)}
				limit.Batches = durations{limit.Elapsed}
				if err != nil {
					p.Error = fmt.Sprintf("single %s: %v", action, err)
					return p
				}
			default:
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
			lethe, limit, 0.7, cfg.BatchSize, true)...)
		details := map[string]any{"lethe": sweepDetails(lethe), "limit": sweepDetails(limit)}
		if byHand.Rows > 0 {
			row := byHandRow("look-up by ctid + DELETE of the ctid range", lethe, byHand)
			row.Note = fmt.Sprintf("the same statements by hand reach %s of the single DELETE", fmtRatio(byHand.rate()/limit.rate()))
			p.Rows = append(p.Rows, row)
			details["byHand"] = sweepDetails(byHand)
		}
		p.Details[string(action)] = details
	}
	rows, details, err := runPostgresChainSweep(ctx, cfg, dsn, pool)
	if err != nil {
		p.Error = fmt.Sprintf("children swept per batch: %v", err)
		return p
	}
	p.Rows = append(p.Rows, rows...)
	p.Details["children"] = details
	return p
}

// sweepRows renders a sweep's rows/s against its baseline, and its longest batch.
func sweepRows(label, baseline string, lethe, base sweepRun, goal float64, batch int, batchGoal bool) []Row {
	ratio := lethe.rate() / base.rate()
	goalText := fmt.Sprintf("≥ %.1f", goal)
	ok := ratio >= goal
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

// Part 2, children swept per batch: a delete rule on the parent of a
// three-level chain (orders → order_lines → line_taxes, two children a row,
// foreign keys on each level). Each batch deletes its expired orders and
// every row below them, children first, in its transaction, as the data map
// says. The baseline is the same deletes written by hand, children first,
// in one transaction: the limit.

const pgChainSchema = `DROP TABLE IF EXISTS line_taxes, order_lines, orders;
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE order_lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id), label text NOT NULL);
CREATE TABLE line_taxes (id bigint PRIMARY KEY, line_id bigint NOT NULL REFERENCES order_lines (id), rate numeric NOT NULL)`

// pgChainData: order g has lines 2g-1 and 2g, line l has taxes 2l-1 and 2l;
// every eleventh order is fresh, as in pgSweepData.
var pgChainData = []string{
	`INSERT INTO orders SELECT g, g % 50000,
		CASE WHEN g % 11 = 0 THEN timestamptz '2025-01-01 00:00:00+00' ELSE timestamptz '2020-01-01 00:00:00+00' END + g * interval '1 second'
	FROM generate_series(1, $1::bigint) g`,
	`INSERT INTO order_lines SELECT g, (g + 1) / 2, 'line ' || g FROM generate_series(1, 2 * $1::bigint) g`,
	`INSERT INTO line_taxes SELECT g, (g + 1) / 2, 0.2 FROM generate_series(1, 4 * $1::bigint) g`,
}

// pgChainByHand is the baseline: the chain's deletes, children first.
var pgChainByHand = []string{
	`DELETE FROM line_taxes WHERE line_id IN (SELECT l.id FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE o.created_at < $1)`,
	`DELETE FROM order_lines WHERE order_id IN (SELECT id FROM orders WHERE created_at < $1)`,
	`DELETE FROM orders WHERE created_at < $1`,
}

// chainSpec maps the chain: order_lines belong to orders, line_taxes to lines.
func chainSpec(engine privacyv1.Engine) privacyv1.DataStoreSpec {
	return privacyv1.DataStoreSpec{
		Engine: engine,
		Collections: []privacyv1.Collection{
			{Name: "orders", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"userId": "user_id"}},
			{Name: "order_lines", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "order_id", Collection: "orders"}},
				Fields:     []privacyv1.Field{{Name: "label", Category: "user.billing.item"}}},
			{Name: "line_taxes", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "line_id", Collection: "order_lines"}}},
		},
	}
}

// chainOrders is how many expired orders the chain sweep removes: a tenth
// of SweepRows, so that the rows removed (seven per order) stay comparable.
func chainOrders(cfg Config) int { return max(cfg.SweepRows/10, 100) }

// runPostgresChainSweep measures the chain sweep against the hand-written
// deletes; rows are every row removed, orders, lines and taxes.
func runPostgresChainSweep(ctx context.Context, cfg Config, dsn string, pool *pgxpool.Pool) ([]Row, map[string]any, error) {
	m, err := datamap.Build(chainSpec(privacyv1.EnginePostgres))
	if err != nil {
		return nil, nil, err
	}
	store, err := postgres.New(ctx, dsn, m, erasureMaskingKey, testdb.Loopback)
	if err != nil {
		return nil, nil, err
	}
	defer store.Close()
	sw, ok := any(store).(stores.Sweeper)
	if !ok {
		return nil, nil, fmt.Errorf("the PostgreSQL engine does not implement stores.Sweeper")
	}
	total := sweepTotalRows(chainOrders(cfg))
	load := func() (int64, error) {
		if _, err := pool.Exec(ctx, pgChainSchema); err != nil {
			return 0, err
		}
		for _, q := range pgChainData {
			if _, err := pool.Exec(ctx, q, total); err != nil {
				return 0, err
			}
		}
		for _, q := range []string{"CREATE INDEX ON order_lines (order_id)", "CREATE INDEX ON line_taxes (line_id)", "CREATE INDEX ON orders (created_at)",
			"VACUUM ANALYZE orders", "VACUUM ANALYZE order_lines", "VACUUM ANALYZE line_taxes", "CHECKPOINT"} {
			if _, err := pool.Exec(ctx, q); err != nil {
				return 0, fmt.Errorf("%s: %w", q, err)
			}
		}
		var expired int64
		err := pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE created_at < $1", sweepCutoff).Scan(&expired)
		return expired, err
	}
	// verify checks every expired order is gone with its rows below, and every fresh one is intact.
	verify := func(side string, expired int64) error {
		fresh := int64(total) - expired
		var orders, lines, taxes int64
		err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM orders WHERE created_at >= $1), (SELECT count(*) FROM order_lines), (SELECT count(*) FROM line_taxes)",
			sweepCutoff).Scan(&orders, &lines, &taxes)
		if err != nil {
			return err
		}
		var left int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE created_at < $1", sweepCutoff).Scan(&left); err != nil {
			return err
		}
		if left != 0 || orders != fresh || lines != 2*fresh || taxes != 4*fresh {
			return fmt.Errorf("%s side left %d expired orders, and %d orders, %d lines, %d taxes of %d, %d, %d fresh",
				side, left, orders, lines, taxes, fresh, 2*fresh, 4*fresh)
		}
		return nil
	}
	var byHand, lethe sweepRun
	for _, side := range []string{"lethe", "by hand"} {
		cfg.logf("postgres chain sweep: %s: generating %d orders, %d rows below them", side, total, 6*total)
		expired, err := load()
		if err != nil {
			return nil, nil, fmt.Errorf("generating the chain data: %w", err)
		}
		if side == "by hand" {
			start := time.Now()
			tx, err := pool.Begin(ctx)
			if err != nil {
				return nil, nil, err
			}
			for _, q := range pgChainByHand {
				tag, err := tx.Exec(ctx, q, sweepCutoff)
				if err != nil {
					_ = tx.Rollback(ctx)
					return nil, nil, fmt.Errorf("the hand-written deletes: %w", err)
				}
				byHand.Rows += tag.RowsAffected()
			}
			if err := tx.Commit(ctx); err != nil {
				return nil, nil, err
			}
			byHand.Elapsed = time.Since(start)
			byHand.Batches = durations{byHand.Elapsed}
		} else {
			rule := stores.SweepRule{Collection: "orders", Field: "created_at", Cutoff: sweepCutoff, Action: stores.ActionDelete, BatchSize: cfg.BatchSize}
			// The batch size counts the rows below too: 7 rows an order.
			lethe, err = sweepLoop(ctx, sw, rule, 7*expired)
			if err != nil {
				return nil, nil, fmt.Errorf("Lethe's chain sweep: %w", err)
			}
		}
		if err := verify(side, expired); err != nil {
			return nil, nil, err
		}
	}
	rows := sweepRows(fmt.Sprintf("2. PostgreSQL sweep, children swept per batch: delete %s expired orders with their lines and taxes (%s rows)",
		count(lethe.Rows/7), count(lethe.Rows)), "deletes by hand, children first, one transaction", lethe, byHand, 0.7, cfg.BatchSize, true)
	return rows, map[string]any{"lethe": sweepDetails(lethe), "byHand": sweepDetails(byHand)}, nil
}
