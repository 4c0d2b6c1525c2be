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

// Connector opens and caches stores.
type Connector struct {
	// Reader reads Secrets. Use an uncached reader (the API reader) so the
	// manager does not need to list and watch every Secret of the cluster.
	Reader client.Reader
	Open   Opener

	mu    sync.Mutex
	cache map[types.NamespacedName]cached
}

type cached struct {
	fingerprint [32]byte
	store       stores.Store
	dataMap     *datamap.Map
}

// New returns a Connector.
func New(reader client.Reader, open Opener) *Connector {
	return &Connector{Reader: reader, Open: open, cache: map[types.NamespacedName]cached{}}
}

// DataMap builds and validates ds's data map; errors are data-map problems.
func DataMap(ds *privacyv1.DataStore) (*datamap.Map, error) {
	return datamap.Build(ds.Spec)
}

// Store returns a connected store for ds. The returned store is shared: callers
// must not Close it.
func (c *Connector) Store(ctx context.Context, ds *privacyv1.DataStore) (stores.Store, *datamap.Map, error) {
	m, err := DataMap(ds)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", stores.ErrInvalid, err)
	}
	secrets, err := c.secrets(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	key := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
	fp := fingerprint(ds, secrets)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cache[key]; ok {
		if e.fingerprint == fp {
			return e.store, e.dataMap, nil
		}
		e.store.Close()
		delete(c.cache, key)
	}
	s, err := c.Open(ctx, ds, m, secrets)
	if err != nil {
		return nil, nil, err
	}
	c.cache[key] = cached{fingerprint: fp, store: s, dataMap: m}
	return s, m, nil
}

// Forget closes and drops the cached store of a deleted DataStore.
func (c *Connector) Forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cache[key]; ok {
		e.store.Close()
		delete(c.cache, key)
	}
}

// Close closes every cached store.
func (c *Connector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.cache {
		e.store.Close()
		delete(c.cache, k)
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
