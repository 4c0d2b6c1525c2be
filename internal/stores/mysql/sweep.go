package mysql

import (
	"context"
	"database/sql"
	"time"
)

// Retention sweeps are sqlcore's (see sqlcore.Core.SweepBatch). InnoDB waits
// at least a second for a row lock; a batch that times out is redone locking
// the range's rows with FOR UPDATE SKIP LOCKED (MariaDB 10.6, MySQL 8.0) and
// changing them by key, leaving the locked rows for the next run.

// Sweep transactions are short, and fail rather than queue behind a lock.
const (
	// fastLockTimeout is InnoDB's shortest lock wait: a range statement
	// waiting longer is redone skipping locked rows.
	fastLockTimeout       = time.Second
	sweepLockTimeout      = 2 * time.Second
	sweepStatementTimeout = 30 * time.Second
	// maxInlineHeld bounds the held keys a range statement binds (a prepared
	// statement takes at most 65,535 parameters); a rule holding more is
	// swept by key.
	maxInlineHeld = 10000
)

// lockWaitTimeout is MySQL error 1205, raised when innodb_lock_wait_timeout expires.
const lockWaitTimeout = 1205

// inSweepTx is inTx with the sweep's short timeouts (never longer than the store's).
func (s *Store) inSweepTx(ctx context.Context, opts *sql.TxOptions, lockTimeout time.Duration, fn func(*sql.Tx) error) error {
	return s.inTxWithTimeouts(ctx, opts, min(s.opts.LockTimeout, lockTimeout), min(s.opts.StatementTimeout, sweepStatementTimeout), fn)
}
