package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultMySQLDSN is the local MariaDB server tests use unless LETHE_TEST_MYSQL_DSN says otherwise.
const DefaultMySQLDSN = "root@tcp(127.0.0.1:3306)/"

// NewMySQL creates a fresh database lethe_<random> on the MySQL or MariaDB
// server of LETHE_TEST_MYSQL_DSN (a go-sql-driver DSN; default
// DefaultMySQLDSN), returns a DSN naming it, and drops it when the test ends.
// It fails the test when the server cannot be reached: these tests are about
// the real server.
func NewMySQL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("LETHE_TEST_MYSQL_DSN")
	if base == "" {
		base = DefaultMySQLDSN
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("LETHE_TEST_MYSQL_DSN must be a go-sql-driver DSN such as %s", DefaultMySQLDSN)
	}
	cfg.DBName = ""
	admin := cfg.FormatDSN()
	name := "lethe_" + mysqlToken()
	// The name is letters, digits and _: it needs no quoting beyond backticks.
	mysqlAdminExec(t, admin, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4")
	t.Cleanup(func() { mysqlAdminExec(t, admin, "DROP DATABASE IF EXISTS `"+name+"`") })
	cfg.DBName = name
	return cfg.FormatDSN()
}

// mysqlAdminExec runs one statement without a current database. It uses its
// own context: the test's is already cancelled when cleanups run.
func mysqlAdminExec(t testing.TB, dsn, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("opening the test MySQL server: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s on the test MySQL server: %v", stmt, err)
	}
}

func mysqlToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
