package testdb

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reused databases of this test binary. Creating a PostgreSQL database
// costs most of a second (it copies and syncs template1); emptying one costs
// a few milliseconds. Suites that open hundreds of small fixtures take their
// databases here.
var postgresPool struct {
	sync.Mutex
	free []string // DSNs of emptied databases
	all  []string // names of every database created, for DropReusedPostgres
}

// ReusedPostgres returns a database of the server of LETHE_TEST_POSTGRES_DSN
// that is the test's alone until it ends: an empty one left by an earlier
// test of this binary, or a new one. When the test ends its schemas (and
// with them extensions and collations) are dropped and the database goes
// back to the pool. The test must close its connections by then (register
// their cleanups after calling ReusedPostgres). Call DropReusedPostgres from
// TestMain once the tests have run.
func ReusedPostgres(t testing.TB) string {
	t.Helper()
	postgresPool.Lock()
	var dsn string
	if n := len(postgresPool.free); n > 0 {
		dsn = postgresPool.free[n-1]
		postgresPool.free = postgresPool.free[:n-1]
	}
	postgresPool.Unlock()
	if dsn == "" {
		dsn = createReusable(t)
	}
	t.Cleanup(func() {
		if err := emptyDatabase(dsn); err != nil {
			t.Errorf("emptying a reused test database: %v", err)
			return // not reused: DropReusedPostgres drops it
		}
		postgresPool.Lock()
		postgresPool.free = append(postgresPool.free, dsn)
		postgresPool.Unlock()
	})
	return dsn
}

func createReusable(t testing.TB) string {
	t.Helper()
	_, name, dsn := createPostgres(t, "lethe_reused_")
	postgresPool.Lock()
	postgresPool.all = append(postgresPool.all, name)
	postgresPool.Unlock()
	return dsn
}

// emptyDatabase drops every schema of the database but the system's, and
// creates public again as a new database has it.
func emptyDatabase(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DO $$
DECLARE s text;
BEGIN
	FOR s IN SELECT nspname FROM pg_namespace
		WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_%'
	LOOP
		EXECUTE format('DROP SCHEMA %I CASCADE', s);
	END LOOP;
	CREATE SCHEMA public AUTHORIZATION pg_database_owner;
	GRANT USAGE ON SCHEMA public TO PUBLIC;
END $$`)
	return err
}

// DropReusedPostgres drops every database ReusedPostgres created. Call it
// from TestMain after m.Run.
func DropReusedPostgres() {
	base := os.Getenv("LETHE_TEST_POSTGRES_DSN")
	if base == "" {
		base = DefaultPostgresDSN
	}
	postgresPool.Lock()
	names := postgresPool.all
	postgresPool.all, postgresPool.free = nil, nil
	postgresPool.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, n := range names {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}
