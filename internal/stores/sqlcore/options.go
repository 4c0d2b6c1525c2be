package sqlcore

import "time"

// Default timeouts of the transactions a SQL store runs: waiting for a lock
// fails fast (another writer holds the subject's rows: retry later), and no
// statement may run for long.
const (
	DefaultLockTimeout      = 5 * time.Second
	DefaultStatementTimeout = 60 * time.Second
)

// Options are a SQL store's settings.
type Options struct {
	// LockTimeout and StatementTimeout bound the lock waits and statements of
	// every transaction (sweeps' are shorter still).
	LockTimeout, StatementTimeout time.Duration
	// SchemaTTL is how long requests and sweeps trust the live schema last
	// found matching the map; Check always reads it again.
	SchemaTTL time.Duration
	// Journal is the journal table (see JournalTable).
	Journal JournalTable
}

// Option sets one of a SQL store's options.
type Option func(*Options)

// WithTimeouts sets the lock wait and statement timeouts of every transaction.
func WithTimeouts(lock, statement time.Duration) Option {
	return func(o *Options) { o.LockTimeout, o.StatementTimeout = lock, statement }
}

// WithSchemaTTL sets how long requests and sweeps trust the live schema last
// found matching the map (default DefaultSchemaTTL). Use the DataStore's
// check interval.
func WithSchemaTTL(ttl time.Duration) Option {
	return func(o *Options) { o.SchemaTTL = ttl }
}

// WithJournal sets the journal table, or disables it.
func WithJournal(j JournalTable) Option {
	return func(o *Options) { o.Journal = j }
}

// NewOptions returns the defaults, changed by opts.
func NewOptions(opts []Option) Options {
	o := Options{LockTimeout: DefaultLockTimeout, StatementTimeout: DefaultStatementTimeout, SchemaTTL: DefaultSchemaTTL}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
