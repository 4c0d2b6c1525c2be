package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// freshPostgres creates the database lethe_bench_<part>_<random> on the
// server of adminDSN and returns its DSN and a function that drops it (WITH
// (FORCE): connections left open do not keep it alive).
func freshPostgres(ctx context.Context, adminDSN, part string) (string, func(), error) {
	u, err := url.Parse(adminDSN)
	if err != nil || u.Scheme == "" {
		return "", nil, fmt.Errorf("the PostgreSQL DSN must be a postgres:// URL")
	}
	name := "lethe_bench_" + part + "_" + randomSuffix()
	if err := pgAdmin(ctx, adminDSN, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_ = pgAdmin(ctx, adminDSN, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

func pgAdmin(ctx context.Context, dsn, stmt string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, stmt)
	return err
}

// freshMySQL creates the database lethe_bench_<part>_<random> on the MariaDB
// server of adminDSN and returns a DSN to it, an open pool and a function that
// closes the pool and drops the database.
func freshMySQL(ctx context.Context, adminDSN, part string) (string, *sql.DB, func(), error) {
	cfg, err := mysql.ParseDSN(adminDSN)
	if err != nil {
		return "", nil, nil, fmt.Errorf("the MariaDB DSN cannot be parsed (want user@tcp(host:port)/)")
	}
	name := "lethe_bench_" + part + "_" + randomSuffix()
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return "", nil, nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		return "", nil, nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.MultiStatements = true
	dsn := cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return "", nil, nil, err
	}
	drop := func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		if a, err := sql.Open("mysql", adminDSN); err == nil {
			_, _ = a.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
			_ = a.Close()
		}
	}
	return dsn, db, drop, nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// settleMariaDB waits (at most two minutes) until InnoDB has purged the undo
// history of the rows just loaded, as each PostgreSQL side starts after
// VACUUM and CHECKPOINT: a side measured while purge still works on the
// table waits for it (a DROP PARTITION took about 1 s instead of 20 ms), so
// whichever side came first after its load was slowed at random.
func settleMariaDB(ctx context.Context, db *sql.DB) error {
	const q = "SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'"
	var history int64
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if err := db.QueryRowContext(ctx, q).Scan(&history); err != nil {
			return fmt.Errorf("reading InnoDB's purge history: %w", err)
		}
		if history == 0 {
			return nil
		}
	}
	return fmt.Errorf("InnoDB still has %d undo log(s) to purge after two minutes", history)
}
