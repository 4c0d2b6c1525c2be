// Package testdb gives each test its own database on the local servers and
// drops it when the test ends.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresDSN is the local server tests use unless LETHE_TEST_POSTGRES_DSN says otherwise.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// NewPostgres creates a fresh database lethe_<random> on the PostgreSQL server
// of LETHE_TEST_POSTGRES_DSN (a URL; default DefaultPostgresDSN), returns its
// DSN, and drops it (WITH (FORCE), so open connections do not keep it alive)
// when the test ends. It fails the test when the server cannot be reached:
// these tests are about the real server.
func NewPostgres(t testing.TB) string {
	t.Helper()
	base, name, dsn := createPostgres(t, "lethe_")
	t.Cleanup(func() {
		adminExec(t, base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return dsn
}

// createPostgres creates a database prefix<random> on the server of
// LETHE_TEST_POSTGRES_DSN and returns that server's DSN, the name, and the
// new database's DSN.
func createPostgres(t testing.TB, prefix string) (base, name, dsn string) {
	t.Helper()
	base = os.Getenv("LETHE_TEST_POSTGRES_DSN")
	if base == "" {
		base = DefaultPostgresDSN
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		t.Fatalf("LETHE_TEST_POSTGRES_DSN must be a postgres:// URL")
	}
	name = prefix + randomSuffix()
	adminExec(t, base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	u.Path = "/" + name
	return base, name, u.String()
}

// adminExec runs one statement on the server's maintenance database. It uses
// its own context: the test's is already cancelled when cleanups run.
func adminExec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
