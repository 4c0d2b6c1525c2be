// Package redis is the engine for Redis: a collection is a key pattern with
// identity placeholders (session:{userId}:*, user:{email}) and its fields, if
// mapped, are hash fields.
//
// A subject's keys are found with SCAN MATCH (or a single TYPE when the pattern
// has no wildcard), never KEYS, with every glob metacharacter of an identity
// escaped, and each key found is matched again in Go before anything is done
// to it. Erasure UNLINKs keys or masks hash fields; rectification sets hash
// fields; all writes of a request run in one MULTI/EXEC, guarded by WATCH on
// every key read, so the store's part of a request is all or nothing.
//
// Rows are keys. Key names, identities and values never appear in errors or
// results.
package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

const (
	// scanCount is the COUNT hint of each SCAN call.
	scanCount = 1000
	// txAttempts bounds the optimistic transaction retries when watched keys change.
	txAttempts = 3
	// unlinkBatch is how many keys one UNLINK names.
	unlinkBatch = 500
)

// collection is a data-map collection with its parsed key pattern.
type collection struct {
	*datamap.Collection
	pattern keyPattern
	valid   bool
}

// Store is a connected Redis database. It is safe for concurrent use.
type Store struct {
	rdb        *goredis.Client
	m          *datamap.Map
	maskingKey []byte
	colls      map[string]*collection
	problems   []stores.SchemaProblem
	warnings   []string

	// beforeExec, in tests, runs between the reads and EXEC of a transaction.
	beforeExec func()
}

var _ stores.Store = (*Store)(nil)

// New connects to the Redis URL (redis:// or rediss://, with the database
// number as its path) through network's dialer only and parses the key patterns of m. Pattern problems do
// not fail New: Check reports them, and Plan, Apply and Export refuse to act
// while there are any. maskingKey is the key of the hash and uniqueEmail strategies.
func New(ctx context.Context, url string, m *datamap.Map, maskingKey []byte, network stores.Network) (*Store, error) {
	opts, err := clientOptions(url, network)
	if err != nil {
		return nil, err
	}
	s := &Store{rdb: goredis.NewClient(opts), m: m, maskingKey: maskingKey}
	s.colls, s.problems, s.warnings = compile(m, maskingKey)
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.rdb.Close()
		return nil, classify("connecting", err)
	}
	return s, nil
}

// compile parses every key pattern and reports how the data map does not fit redis.
func compile(m *datamap.Map, maskingKey []byte) (map[string]*collection, []stores.SchemaProblem, []string) {
	colls := map[string]*collection{}
	var problems []stores.SchemaProblem
	var warnings []string
	for _, c := range m.Collections {
		report := func(field, format string, args ...any) {
			problems = append(problems, stores.SchemaProblem{Collection: c.Name, Field: field, Problem: fmt.Sprintf(format, args...)})
		}
		coll := &collection{Collection: c}
		colls[c.Name] = coll
		if len(c.Parents)+len(c.Children)+len(c.Referrers) > 0 {
			report("", "references are not supported by the redis engine: keys are found by the identities in their pattern")
		}
		for _, f := range c.Fields {
			if f.Masking != nil && masking.NeedsKey(f.Masking) && len(maskingKey) == 0 {
				report(f.Name, "masking %s needs the DataStore's maskingKeySecretRef", f.Masking.Strategy)
			}
		}
		p, err := parsePattern(c.KeyPattern)
		if err != nil {
			report("", "keyPattern: %v", err)
			continue
		}
		before := len(problems)
		checkPattern(p, c, func(msg string) { report("", "keyPattern: %s", msg) })
		coll.pattern, coll.valid = p, len(problems) == before
		if c.OnErasure == privacyv1.ErasureAnonymize && len(p.identityTypes()) > 0 {
			warnings = append(warnings, fmt.Sprintf("collection %q: anonymize keeps the keys, whose names hold the subject's identity; prefer delete", c.Name))
		}
	}
	return colls, problems, warnings
}

// checkPattern makes sure the pattern addresses one subject: it has an
// identity placeholder, maps every placeholder, and keeps each identity's
// boundary (no wildcard right next to a placeholder).
func checkPattern(p keyPattern, c *datamap.Collection, report func(string)) {
	types := p.identityTypes()
	if len(types) == 0 {
		report("it has no identity placeholder, so it would match every subject's keys")
	}
	for _, t := range types {
		if _, ok := c.Identity[t]; !ok {
			report(fmt.Sprintf("placeholder {%s} is not an identity type this collection maps", t))
		}
	}
	if p.wildcardNextToPlaceholder() {
		report("a wildcard next to a placeholder loses the identity's boundary ({userId}* with 4 matches 42); put a separator between them")
	}
}

// Check pings the server and reports the data map's problems. Redis has no
// schema: a key of an unexpected type is reported when a request meets it.
func (s *Store) Check(ctx context.Context) (stores.CheckResult, error) {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return stores.CheckResult{}, classify("ping", err)
	}
	return stores.CheckResult{Problems: s.problems, Warnings: s.warnings}, nil
}

// Close closes the connection pool.
func (s *Store) Close() { _ = s.rdb.Close() }

// Plan resolves the subject's keys and reports what Apply would do.
func (s *Store) Plan(ctx context.Context, req stores.Request) (stores.Result, error) {
	if err := stores.Validate(s.m, req); err != nil {
		return stores.Result{}, err
	}
	r, err := s.resolve(ctx, s.rdb, req)
	if err != nil {
		return stores.Result{}, err
	}
	return r.result(), nil
}

// Apply erases or rectifies the subject's keys in one MULTI/EXEC. WATCH on
// every key read makes a concurrent change abort the transaction, which is
// then resolved and tried again.
func (s *Store) Apply(ctx context.Context, req stores.Request) (stores.Result, error) {
	if req.Kind != stores.KindErasure && req.Kind != stores.KindRectification {
		return stores.Result{}, fmt.Errorf("%w: Apply carries out erasure and rectification; %s is an export", stores.ErrInvalid, req.Kind)
	}
	if err := stores.Validate(s.m, req); err != nil {
		return stores.Result{}, err
	}
	for range txAttempts {
		res, err := s.applyOnce(ctx, req)
		if !errors.Is(err, goredis.TxFailedErr) {
			return res, err
		}
	}
	return stores.Result{}, fmt.Errorf("%w: the subject's keys kept changing during the transaction", stores.ErrUnavailable)
}

func (s *Store) applyOnce(ctx context.Context, req stores.Request) (stores.Result, error) {
	pre, err := s.resolve(ctx, s.rdb, req)
	if err != nil {
		return stores.Result{}, err
	}
	watched := pre.keys()
	if len(watched) == 0 {
		return pre.result(), nil
	}
	var final *resolution
	err = s.rdb.Watch(ctx, func(tx *goredis.Tx) error {
		// Resolve again under WATCH: what is written depends only on watched keys.
		r, err := s.resolve(ctx, tx, req)
		if err != nil {
			return err
		}
		if !slices.Equal(r.keys(), watched) {
			return goredis.TxFailedErr // a key appeared or vanished: watch the new set
		}
		final = r
		if s.beforeExec != nil {
			s.beforeExec()
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for _, w := range r.writes {
				w(ctx, p)
			}
			return nil
		})
		return err
	}, watched...)
	switch {
	case errors.Is(err, goredis.TxFailedErr):
		return stores.Result{}, err
	case errors.Is(err, stores.ErrInvalid) || errors.Is(err, stores.ErrUnavailable):
		return stores.Result{}, err
	case err != nil:
		return stores.Result{}, classify("applying", err)
	}
	return final.result(), nil
}

// Export returns the subject's keys in scope, collected in memory from
// StreamExport.
func (s *Store) Export(ctx context.Context, req stores.Request) (stores.Export, stores.Result, error) {
	return stores.CollectExport(func(w stores.ExportWriter) (stores.Result, error) { return s.StreamExport(ctx, req, w) })
}

// StreamExport writes the subject's keys in scope to w: strings, hashes (only
// the mapped fields in scope, when the collection maps fields), lists, sets,
// sorted sets and streams, each as {"key", "type", "value"}. A collection's
// keys are read in one pipeline and then written, collections in name order,
// so w's budget bounds the export as it does for SQL engines.
func (s *Store) StreamExport(ctx context.Context, req stores.Request, w stores.ExportWriter) (stores.Result, error) {
	req.Kind = stores.KindAccess
	if err := stores.ValidateSubject(s.m, req.Subject); err != nil {
		return stores.Result{}, err
	}
	r, err := s.resolve(ctx, s.rdb, req)
	if err != nil {
		return stores.Result{}, err
	}
	for _, name := range slices.Sorted(maps.Keys(r.export)) {
		for _, row := range r.export[name] {
			if err := w.Row(name, row); err != nil {
				return stores.Result{}, err
			}
		}
		delete(r.export, name) // written: let it go
	}
	return r.result(), nil
}

// classify wraps a redis or network error without its text when that text
// could quote arguments (keys, identities): server errors keep only their code.
func classify(op string, err error) error {
	var netErr net.Error
	var srvErr goredis.Error
	if refused := stores.EgressRefusal(err); refused != nil {
		return refused
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: redis %s: %w", stores.ErrUnavailable, op, err)
	case errors.As(err, &srvErr):
		code, _, _ := strings.Cut(srvErr.Error(), " ")
		if code == "WRONGTYPE" {
			return fmt.Errorf("%w: redis %s: a key holds another type than the data map says", stores.ErrInvalid, op)
		}
		return fmt.Errorf("%w: redis %s: server error %s", stores.ErrUnavailable, op, code)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: redis %s: timed out", stores.ErrUnavailable, op)
	default:
		return fmt.Errorf("%w: redis %s: connection failed", stores.ErrUnavailable, op)
	}
}
