// Package connector turns a DataStore into a connected stores.Store: it reads
// the connection Secret of the DataStore's own namespace, builds the data map
// and opens the engine. Open stores are cached and reused while neither the
// DataStore's spec nor its Secrets change.
package connector

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// ErrSecret reports a missing Secret or key; the message names them, never their data.
var ErrSecret = errors.New("secret not found")

// Opener opens an engine for a DataStore given its resolved secrets.
type Opener func(ctx context.Context, ds *privacyv1.DataStore, m *datamap.Map, s Secrets) (stores.Store, error)

// Secrets are the resolved secret values a DataStore refers to.
type Secrets struct {
	Connection    string
	MaskingKey    []byte
	Authorization string
	SigningKey    []byte
}

// Connector opens and caches stores, one per DataStore.
//
// Opening a store dials its server, which a tenant chooses and which may
// never answer; so no lock is held while a store opens. Callers asking for the
// same DataStore at once share one attempt (singleflight), callers of other
// DataStores never wait for it, and a store replaced (its spec or Secrets
// changed) or forgotten is closed in the background once the last caller
// using it has released its Lease.
type Connector struct {
	// Reader reads Secrets. Use an uncached reader (the API reader) so the
	// manager does not need to list and watch every Secret of the cluster.
	Reader client.Reader
	Open   Opener
	// OpenTimeout bounds one attempt to open a store (default 30s). The
	// attempt does not end with the context of the caller that started it:
	// other callers may be waiting for it.
	OpenTimeout time.Duration

	mu    sync.Mutex
	cache map[types.NamespacedName]*entry
}

// entry is one opened (or opening) store.
type entry struct {
	fingerprint [32]byte
	ready       chan struct{} // closed when the attempt to open has ended
	store       stores.Store
	dataMap     *datamap.Map
	err         error
	refs        int  // Leases not yet released
	retired     bool // no longer in the cache: close when refs reach 0
}

// Lease is a store lent to one caller. Release it when done; the store stays
// open for other callers.
type Lease struct {
	Store stores.Store
	Map   *datamap.Map

	c    *Connector
	e    *entry
	once sync.Once
}

// Release returns the lease. It is safe to call more than once, and on nil.
func (l *Lease) Release() {
	if l == nil || l.c == nil {
		return
	}
	l.once.Do(func() { l.c.release(l.e) })
}

// defaultOpenTimeout bounds one open when OpenTimeout is not set; engines
// bound each dial more tightly (10s by default).
const defaultOpenTimeout = 30 * time.Second

// New returns a Connector.
func New(reader client.Reader, open Opener) *Connector {
	return &Connector{Reader: reader, Open: open, cache: map[types.NamespacedName]*entry{}}
}

// Acquire returns a connected store for ds, opening it if needed. Release
// the Lease when done with it; never Close its store.
func (c *Connector) Acquire(ctx context.Context, ds *privacyv1.DataStore) (*Lease, error) {
	m, err := datamap.Build(ds.Spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", stores.ErrInvalid, err)
	}
	secrets, err := c.secrets(ctx, ds)
	if err != nil {
		return nil, err
	}
	key := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
	fp := fingerprint(ds, secrets)

	c.mu.Lock()
	e, ok := c.cache[key]
	if ok && e.fingerprint != fp {
		c.retireLocked(key, e)
		ok = false
	}
	opener := !ok
	if opener {
		e = &entry{fingerprint: fp, ready: make(chan struct{})}
		c.cache[key] = e
	}
	e.refs++
	c.mu.Unlock()

	if opener {
		c.open(ctx, key, e, ds, m, secrets)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		c.release(e)
		return nil, fmt.Errorf("%w: waiting for the connection: %w", stores.ErrUnavailable, ctx.Err())
	}
	if e.err != nil {
		c.release(e)
		return nil, e.err
	}
	return &Lease{Store: e.store, Map: e.dataMap, c: c, e: e}, nil
}

// open makes the one attempt to open e, outside any lock, and drops a failed
// entry so the next caller tries again.
func (c *Connector) open(ctx context.Context, key types.NamespacedName, e *entry, ds *privacyv1.DataStore, m *datamap.Map, secrets Secrets) {
	timeout := c.OpenTimeout
	if timeout <= 0 {
		timeout = defaultOpenTimeout
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	s, err := c.Open(octx, ds, m, secrets)
	if err != nil {
		s = nil // an engine's New returns a typed nil with its error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.store, e.dataMap, e.err = s, m, err
	if err != nil && c.cache[key] == e {
		delete(c.cache, key)
		e.retired = true
	}
	close(e.ready)
	if e.retired && e.store != nil && e.refs == 0 {
		go e.store.Close()
	}
}

// release drops one reference; the last one of a retired entry closes its
// store in the background (closing a pool may wait on its connections).
func (c *Connector) release(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	if e.retired && e.refs == 0 && e.store != nil {
		go e.store.Close()
	}
}

// retireLocked removes e from the cache; its store closes once unused.
func (c *Connector) retireLocked(key types.NamespacedName, e *entry) {
	if c.cache[key] == e {
		delete(c.cache, key)
	}
	e.retired = true
	select {
	case <-e.ready:
		if e.refs == 0 && e.store != nil {
			go e.store.Close()
		}
	default: // still opening: open closes it when it ends, if unused
	}
}

// Forget closes (once unused) and drops the cached store of a deleted DataStore.
func (c *Connector) Forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cache[key]; ok {
		c.retireLocked(key, e)
	}
}

// Close retires every cached store.
func (c *Connector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.cache {
		c.retireLocked(k, e)
	}
}

func (c *Connector) secrets(ctx context.Context, ds *privacyv1.DataStore) (Secrets, error) {
	var s Secrets
	conn, err := ReadSecretKey(ctx, c.Reader, ds.Namespace, ds.Spec.Connection.SecretRef)
	if err != nil {
		return s, err
	}
	s.Connection = string(conn)
	if ref := ds.Spec.MaskingKeySecretRef; ref != nil {
		if s.MaskingKey, err = ReadSecretKey(ctx, c.Reader, ds.Namespace, *ref); err != nil {
			return s, err
		}
	}
	if h := ds.Spec.Connection.HTTP; h != nil {
		if ref := h.AuthorizationSecretRef; ref != nil {
			v, err := ReadSecretKey(ctx, c.Reader, ds.Namespace, *ref)
			if err != nil {
				return s, err
			}
			s.Authorization = string(v)
		}
		if ref := h.SigningSecretRef; ref != nil {
			if s.SigningKey, err = ReadSecretKey(ctx, c.Reader, ds.Namespace, *ref); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

// ReadSecretKey reads one key of a Secret in namespace. Errors name the Secret
// and key, never the value.
func ReadSecretKey(ctx context.Context, r client.Reader, namespace string, ref privacyv1.SecretKeySelector) ([]byte, error) {
	data, err := ReadSecret(ctx, r, namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	v, ok := data[ref.Key]
	if !ok || len(v) == 0 {
		return nil, fmt.Errorf("%w: Secret %q has no key %q (or it is empty)", ErrSecret, ref.Name, ref.Key)
	}
	return v, nil
}

// ReadSecret reads a whole Secret in namespace.
func ReadSecret(ctx context.Context, r client.Reader, namespace, name string) (map[string][]byte, error) {
	sec := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %q not found in namespace %q", ErrSecret, name, namespace)
		}
		return nil, err
	}
	return sec.Data, nil
}

// fingerprint changes whenever the spec or any secret value changes, so a
// rotated password or edited data map reopens the store.
func fingerprint(ds *privacyv1.DataStore, s Secrets) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s/%d\x00", ds.UID, ds.Generation)
	parts := []string{s.Connection, string(s.MaskingKey), s.Authorization, string(s.SigningKey)}
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
