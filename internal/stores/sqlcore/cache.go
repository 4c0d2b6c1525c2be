package sqlcore

import (
	"errors"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/internal/stores"
)

// DefaultSchemaTTL is how long a store trusts the live schema it last found
// matching its data map: the DataStore controller's default check interval,
// whose Check reads it again anyway.
const DefaultSchemaTTL = 5 * time.Minute

// SchemaCache keeps the live schema a store last found matching its data map,
// so that requests and sweep batches do not read the catalog each time. A
// schema that changed meanwhile makes a statement fail; Do then reads it again
// and reports the drift precisely. The zero value caches nothing.
type SchemaCache[S any] struct {
	TTL time.Duration

	mu   sync.Mutex
	live *S
	at   time.Time
}

// Get returns the cached schema, or nil when there is none younger than TTL.
func (c *SchemaCache[S]) Get() *S {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live == nil || time.Since(c.at) >= c.TTL {
		return nil
	}
	return c.live
}

// Put caches live, a schema just found matching the data map.
func (c *SchemaCache[S]) Put(live *S) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live, c.at = live, time.Now()
}

// Forget drops the cached schema.
func (c *SchemaCache[S]) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = nil
}

// Do calls run with the cached schema, or with nil: run then reads the schema,
// checks it, and returns it to be cached (nil when it does not match). When
// run fails as invalid on a cached schema, the schema may have changed since:
// it is forgotten and run called once more, so the error reported is the
// drift rather than a failed statement.
func (c *SchemaCache[S]) Do(run func(cached *S) (*S, error)) error {
	cached := c.Get()
	live, err := run(cached)
	if err != nil && cached != nil && errors.Is(err, stores.ErrInvalid) {
		c.Forget()
		cached = nil
		live, err = run(nil)
	}
	if live != nil && live != cached {
		c.Put(live)
	}
	return err
}

// With calls fn with the live schema: the cached one, or one read by read
// (in a transaction of its own: the caller then runs several).
func (c *SchemaCache[S]) With(read func() (*S, error), fn func(*S) error) error {
	return c.Do(func(live *S) (*S, error) {
		if live == nil {
			var err error
			if live, err = read(); err != nil {
				return nil, err
			}
		}
		return live, fn(live)
	})
}

// Checked records a schema Check just read: cached when it has no problems,
// forgotten otherwise.
func (c *SchemaCache[S]) Checked(live *S, problems []stores.SchemaProblem) {
	if len(problems) == 0 {
		c.Put(live)
	} else {
		c.Forget()
	}
}

// InTxWithSchema runs fn in a transaction begun by inTx, with the live
// schema: the cached one, or one read (and checked) by read in that
// transaction.
func InTxWithSchema[S, Tx any](c *SchemaCache[S], inTx func(func(Tx) error) error, read func(Tx) (*S, error), fn func(Tx, *S) error) error {
	return c.Do(func(live *S) (*S, error) {
		err := inTx(func(tx Tx) error {
			if live == nil {
				var err error
				if live, err = read(tx); err != nil {
					return err
				}
			}
			return fn(tx, live)
		})
		return live, err
	})
}
