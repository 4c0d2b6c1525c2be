package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
)

// Part 1: erasure of one subject on a 10-collection map with a three-level
// chain (accounts -> orders -> order_lines), by Lethe's engine (Apply, which
// resolves the subject's rows and acts in one transaction, as the controller
// calls it) against the same changes written by hand as one transaction.

// erasureSchema creates the 10 tables, with the indexes a real schema has on
// its foreign keys and identity columns.
const erasureSchema = `
CREATE TABLE accounts (
	id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text, phone text, created_at timestamptz NOT NULL);
CREATE TABLE profiles (
	id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), bio text, avatar_url text);
CREATE TABLE addresses (
	id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), street text, city text);
CREATE TABLE orders (
	id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), shipping_address text, placed_at timestamptz NOT NULL);
CREATE TABLE order_lines (
	id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id), description text, amount numeric(10,2));
CREATE TABLE payments (
	id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), card_last4 text, amount numeric(10,2));
CREATE TABLE sessions (
	id bigint PRIMARY KEY, user_id bigint NOT NULL, ip text, user_agent text);
CREATE TABLE login_events (
	id bigint PRIMARY KEY, user_id bigint NOT NULL, ip text, at timestamptz NOT NULL);
CREATE TABLE newsletter (
	id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE support_tickets (
	id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), subject text, body text);
`

// erasureData fills the tables for subjects 1..$1: 37 rows per subject.
var erasureData = []string{
	`INSERT INTO accounts SELECT s, 'user' || s || '@example.com', 'User ' || s, '+33 6 ' || lpad(s::text, 8, '0'),
		timestamptz '2020-01-01 00:00:00+00' + s * interval '1 minute' FROM generate_series(1, $1::bigint) s`,
	`INSERT INTO profiles SELECT s, s, 'bio of ' || s, 'https://cdn.example.com/' || s FROM generate_series(1, $1::bigint) s`,
	`INSERT INTO addresses SELECT s * 2 + k, s, k || ' Main Street', 'City ' || s % 100
		FROM generate_series(1, $1::bigint) s, generate_series(0, 1) k`,
	`INSERT INTO orders SELECT s * 4 + k, s, s || ' Main Street', timestamptz '2021-01-01 00:00:00+00' + (s * 4 + k) * interval '1 minute'
		FROM generate_series(1, $1::bigint) s, generate_series(0, 3) k`,
	`INSERT INTO order_lines SELECT o.id * 3 + j, o.id, 'item ' || j, 9.99 + j FROM orders o, generate_series(0, 2) j`,
	`INSERT INTO payments SELECT s * 4 + k, s, lpad((s % 10000)::text, 4, '0'), 19.99 FROM generate_series(1, $1::bigint) s, generate_series(0, 3) k`,
	`INSERT INTO sessions SELECT s * 5 + k, s, '10.0.' || s % 256 || '.' || k, 'Firefox/' || k FROM generate_series(1, $1::bigint) s, generate_series(0, 4) k`,
	`INSERT INTO login_events SELECT s * 5 + k, s, '10.0.' || s % 256 || '.' || k, timestamptz '2024-01-01 00:00:00+00' + k * interval '1 hour'
		FROM generate_series(1, $1::bigint) s, generate_series(0, 4) k`,
	`INSERT INTO newsletter SELECT s, 'user' || s || '@example.com' FROM generate_series(1, $1::bigint) s`,
	`INSERT INTO support_tickets SELECT s * 2 + k, s, 'ticket ' || k, 'please help ' || s FROM generate_series(1, $1::bigint) s, generate_series(0, 1) k`,
	`CREATE INDEX ON profiles (account_id)`,
	`CREATE INDEX ON addresses (account_id)`,
	`CREATE INDEX ON orders (account_id)`,
	`CREATE INDEX ON order_lines (order_id)`,
	`CREATE INDEX ON payments (account_id)`,
	`CREATE INDEX ON sessions (user_id)`,
	`CREATE INDEX ON login_events (user_id)`,
	`CREATE INDEX ON newsletter (email)`,
	`CREATE INDEX ON support_tickets (account_id)`,
}

// rowsPerSubject is what erasure changes per subject: 30 rows deleted, 3
// anonymized (the account and two tickets); 5 login events are retained.
const rowsPerSubject = 37

// smallSubjectGoal is the bound on the ratio of medians.
const smallSubjectGoal = 1.3

// The bootstrap of the ratio of medians: a fixed seed, so a report can be
// reproduced from its samples.
const (
	bootstrapResamples = 2000
	bootstrapSeed      = 1
)

var erasureMaskingKey = []byte("lethe bench masking key 0123456789")

func erasureSpec() privacyv1.DataStoreSpec {
	mask := func(s privacyv1.MaskingStrategy) *privacyv1.Masking { return &privacyv1.Masking{Strategy: s} }
	field := func(name, category string, m *privacyv1.Masking) privacyv1.Field {
		return privacyv1.Field{Name: privacyv1.Identifier(name), Category: privacyv1.Category(category), Masking: m}
	}
	ref := func(field, collection string) []privacyv1.Reference {
		return []privacyv1.Reference{{Field: privacyv1.Identifier(field), Collection: privacyv1.Identifier(collection)}}
	}
	return privacyv1.DataStoreSpec{
		Engine: privacyv1.EnginePostgres,
		Collections: []privacyv1.Collection{
			{Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize,
				Identity: map[string]privacyv1.Identifier{"email": "email", "userId": "id"},
				Fields: []privacyv1.Field{
					field("email", "user.contact.email", mask(privacyv1.MaskUniqueEmail)),
					field("name", "user.identity.name", mask(privacyv1.MaskRedact)),
					field("phone", "user.contact.phone", mask(privacyv1.MaskNullify)),
				}},
			{Name: "profiles", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete, References: ref("account_id", "accounts"),
				Fields: []privacyv1.Field{field("bio", "user.profile.bio", nil), field("avatar_url", "user.profile.avatar", nil)}},
			{Name: "addresses", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete, References: ref("account_id", "accounts"),
				Fields: []privacyv1.Field{field("street", "user.contact.address", nil), field("city", "user.contact.address", nil)}},
			{Name: "orders", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete, References: ref("account_id", "accounts"),
				Fields: []privacyv1.Field{field("shipping_address", "user.contact.address", nil)}},
			{Name: "order_lines", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete, References: ref("order_id", "orders"),
				Fields: []privacyv1.Field{field("description", "user.purchase.item", nil)}},
			{Name: "payments", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete, References: ref("account_id", "accounts"),
				Fields: []privacyv1.Field{field("card_last4", "user.billing.card", nil)}},
			{Name: "sessions", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields:   []privacyv1.Field{field("ip", "user.technical.ip", nil), field("user_agent", "user.technical.agent", nil)}},
			{Name: "login_events", PrimaryKey: "id", OnErasure: privacyv1.ErasureRetain,
				RetainReason: "security logs are kept for a year (legitimate interest)",
				Identity:     map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields:       []privacyv1.Field{field("ip", "user.technical.ip", nil)}},
			{Name: "newsletter", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email"},
				Fields:   []privacyv1.Field{field("email", "user.contact.email", nil)}},
			{Name: "support_tickets", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize, References: ref("account_id", "accounts"),
				Fields: []privacyv1.Field{
					field("subject", "user.support.subject", mask(privacyv1.MaskRedact)),
					field("body", "user.support.body", mask(privacyv1.MaskNullify)),
				}},
		},
	}
}

func subjectEmail(s int64) string { return "user" + strconv.FormatInt(s, 10) + "@example.com" }

func subjectIdentities(s int64) map[string]string {
	return map[string]string{"email": subjectEmail(s), "userId": strconv.FormatInt(s, 10)}
}

// loadErasureData creates the schema and population subjects in db.
func loadErasureData(ctx context.Context, pool *pgxpool.Pool, population int) error {
	if _, err := pool.Exec(ctx, erasureSchema); err != nil {
		return fmt.Errorf("creating the erasure schema: %w", err)
	}
	for _, q := range erasureData {
		var args []any
		if containsParam(q) {
			args = []any{population}
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("loading the erasure data set: %w", err)
		}
	}
	_, err := pool.Exec(ctx, "VACUUM ANALYZE")
	return err
}

func containsParam(q string) bool {
	for i := 0; i+1 < len(q); i++ {
		if q[i] == '$' && q[i+1] == '1' {
			return true
		}
	}
	return false
}

// handErasure is the floor: the same changes, written by hand for this schema
// as one transaction of nine statements. The masked email is computed in Go
// with the same function Lethe's masking uses, so both sides write the same values.
func handErasure(ctx context.Context, pool *pgxpool.Pool, s int64) error {
	email := subjectEmail(s)
	masked, err := masking.MaskString(&privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}, erasureMaskingKey, strconv.FormatInt(s, 10), email)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		stmts := []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM newsletter WHERE email = $1`, []any{email}},
			{`DELETE FROM sessions WHERE user_id = $1`, []any{s}},
			{`UPDATE support_tickets SET subject = '[redacted]', body = NULL WHERE account_id = $1`, []any{s}},
			{`DELETE FROM payments WHERE account_id = $1`, []any{s}},
			{`DELETE FROM order_lines WHERE order_id IN (SELECT id FROM orders WHERE account_id = $1)`, []any{s}},
			{`DELETE FROM orders WHERE account_id = $1`, []any{s}},
			{`DELETE FROM addresses WHERE account_id = $1`, []any{s}},
			{`DELETE FROM profiles WHERE account_id = $1`, []any{s}},
			{`UPDATE accounts SET email = $2, name = '[redacted]', phone = NULL WHERE id = $1`, []any{s, masked}},
		}
		for _, st := range stmts {
			if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// RunErasure runs part 1.
func RunErasure(ctx context.Context, cfg Config) Part {
	p := Part{Name: "erasure", Details: map[string]any{}}
	n, population := cfg.ErasureSubjects, cfg.ErasurePopulation
	const warmup = 5
	need := 2 * (n + warmup)
	if population < need {
		population = need
	}
	dsn, drop, err := freshPostgres(ctx, cfg.PostgresDSN, "erasure")
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
	cfg.logf("erasure: loading %d subjects (%d rows)", population, population*rowsPerSubject)
	if err := loadErasureData(ctx, pool, population); err != nil {
		p.Error = err.Error()
		return p
	}
	m, err := datamap.Build(erasureSpec())
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

	// Subjects spread over the population; even picks go to Lethe, odd ones
	// to the floor. The samples interleave strictly (Lethe, floor, Lethe,
	// floor, ...) so a slow spell of a noisy machine lands on both sides, and
	// sample i of one side is paired with sample i of the other.
	stride := int64(population / need)
	subject := func(i int) int64 { return 1 + int64(i)*stride }
	lethe := func(s int64) (time.Duration, error) {
		start := time.Now()
		res, err := store.Apply(ctx, stores.Request{Kind: stores.KindErasure, Subject: subjectIdentities(s), RequestID: "bench-" + strconv.FormatInt(s, 10)})
		d := time.Since(start)
		if err == nil {
			err = checkErasureResult(res)
		}
		return d, err
	}
	floor := func(s int64) (time.Duration, error) {
		start := time.Now()
		err := handErasure(ctx, pool, s)
		return time.Since(start), err
	}
	var letheTimes, floorTimes durations
	var letheIDs, floorIDs []int64
	cfg.logf("erasure: %d subjects each side (+%d warm-up)", n, warmup)
	for i := 0; i < n+warmup; i++ {
		ls, fs := subject(2*i), subject(2*i+1)
		ld, lerr := lethe(ls)
		fd, ferr := floor(fs)
		if lerr != nil {
			p.Error = fmt.Sprintf("Lethe's erasure of subject %d: %v", ls, lerr)
			return p
		}
		if ferr != nil {
			p.Error = fmt.Sprintf("hand-written erasure of subject %d: %v", fs, ferr)
			return p
		}
		letheIDs, floorIDs = append(letheIDs, ls), append(floorIDs, fs)
		if i >= warmup {
			letheTimes, floorTimes = append(letheTimes, ld), append(floorTimes, fd)
		}
		if ctx.Err() != nil {
			p.Error = "timed out after " + strconv.Itoa(i) + " subjects"
			return p
		}
	}
	if err := verifyErasure(ctx, pool, letheIDs, floorIDs); err != nil {
		p.Error = err.Error()
		return p
	}

	lm, fm := letheTimes.quantile(0.5), floorTimes.quantile(0.5)
	l95, f95 := letheTimes.quantile(0.95), floorTimes.quantile(0.95)
	ratio := ms(lm) / ms(fm)
	lo, hi := bootstrapMedianRatio(letheTimes, floorTimes, bootstrapResamples, bootstrapSeed)
	label := fmt.Sprintf("1. erasure of 1 subject, 10 collections, %d rows (n=%d ABAB", rowsPerSubject, n)
	median := Row{Benchmark: label + ", ratio of medians, 95% CI)", Lethe: fmtMS(lm), Baseline: fmtMS(fm) + " hand-written tx",
		Ratio: fmt.Sprintf("%s [%s–%s]", fmtRatio(ratio), fmtRatio(lo), fmtRatio(hi)), RatioValue: ratio, RatioCI95: []float64{lo, hi},
		Goal: fmt.Sprintf("≤ %.1f", smallSubjectGoal), Met: met(ratio <= smallSubjectGoal),
		LetheValue: ms(lm), BaselineValue: ms(fm), Unit: "ms"}
	if lo <= smallSubjectGoal && smallSubjectGoal < hi {
		median.Note = fmt.Sprintf("the 95%% interval [%s, %s] spans the goal: more subjects (--erasure-subjects) would decide it", fmtRatio(lo), fmtRatio(hi))
	}
	p.Rows = []Row{
		median,
		{Benchmark: label + ", p95)", Lethe: fmtMS(l95), Baseline: fmtMS(f95) + " hand-written tx",
			Ratio: fmtRatio(ms(l95) / ms(f95)), RatioValue: ms(l95) / ms(f95), Goal: "≤ 1.5", Met: met(ms(l95)/ms(f95) <= 1.5),
			LetheValue: ms(l95), BaselineValue: ms(f95), Unit: "ms"},
	}
	p.Details["population"] = population
	p.Details["ratioOfMedians"] = map[string]any{"ratio": ratio, "ci95": []float64{lo, hi},
		"resamples": bootstrapResamples, "seed": bootstrapSeed, "order": "ABAB (Lethe, hand-written), pairs resampled"}
	p.Details["lethe"] = summary(letheTimes)
	p.Details["floor"] = summary(floorTimes)
	return p
}

func summary(d durations) map[string]float64 {
	return map[string]float64{
		"n": float64(len(d)), "p50_ms": ms(d.quantile(0.5)), "p90_ms": ms(d.quantile(0.9)),
		"p95_ms": ms(d.quantile(0.95)), "p99_ms": ms(d.quantile(0.99)), "max_ms": ms(d.max()),
		"mean_ms": ms(d.sum()) / float64(max(len(d), 1)),
	}
}

// checkErasureResult checks Lethe changed what the floor changes.
func checkErasureResult(res stores.Result) error {
	var changed int64
	for _, c := range res.Collections {
		if c.Action == stores.ActionDelete || c.Action == stores.ActionAnonymize {
			changed += c.Rows
		}
	}
	if changed != rowsPerSubject-5 {
		return fmt.Errorf("changed %d rows, want %d: %+v", changed, rowsPerSubject-5, res.Collections)
	}
	return nil
}

// verifyErasure checks both sides left their subjects in the same state:
// nothing left but the anonymized account and tickets and the retained logins.
func verifyErasure(ctx context.Context, pool *pgxpool.Pool, lethe, floor []int64) error {
	const q = `SELECT
	(SELECT count(*) FROM accounts WHERE id = ANY ($1) AND name = '[redacted]' AND phone IS NULL AND email LIKE 'erased-%'),
	(SELECT count(*) FROM profiles WHERE account_id = ANY ($1)) + (SELECT count(*) FROM addresses WHERE account_id = ANY ($1))
	  + (SELECT count(*) FROM orders WHERE account_id = ANY ($1)) + (SELECT count(*) FROM payments WHERE account_id = ANY ($1))
	  + (SELECT count(*) FROM sessions WHERE user_id = ANY ($1))
	  + (SELECT count(*) FROM order_lines WHERE order_id / 4 = ANY ($1))
	  + (SELECT count(*) FROM newsletter WHERE id = ANY ($1)),
	(SELECT count(*) FROM support_tickets WHERE account_id = ANY ($1) AND subject = '[redacted]' AND body IS NULL),
	(SELECT count(*) FROM login_events WHERE user_id = ANY ($1))`
	state := func(ids []int64) ([4]int64, error) {
		var s [4]int64
		err := pool.QueryRow(ctx, q, ids).Scan(&s[0], &s[1], &s[2], &s[3])
		return s, err
	}
	ls, err := state(lethe)
	if err != nil {
		return err
	}
	fs, err := state(floor)
	if err != nil {
		return err
	}
	n := int64(len(lethe))
	want := [4]int64{n, 0, 2 * n, 5 * n}
	if ls != want || fs != want {
		return fmt.Errorf("erased subjects differ from what was expected (accounts anonymized, rows left, tickets anonymized, logins kept): Lethe %v, hand-written %v, want %v", ls, fs, want)
	}
	// Same masked email on both sides: Lethe's, in SQL, and the floor's, in Go.
	var mismatched int64
	for _, s := range lethe[:min(len(lethe), 20)] {
		want, _ := masking.MaskString(&privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}, erasureMaskingKey, strconv.FormatInt(s, 10), "")
		var got string
		if err := pool.QueryRow(ctx, "SELECT email FROM accounts WHERE id = $1", s).Scan(&got); err != nil {
			return err
		}
		if got != want {
			mismatched++
		}
	}
	if mismatched > 0 {
		return fmt.Errorf("%d of Lethe's masked emails differ from the hand-written ones", mismatched)
	}
	return nil
}
