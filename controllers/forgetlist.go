package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// The forget list: the identities of the subjects an erasure removed from a
// SQL store, kept so that the erasure can be replayed if a restore from
// backup undoes it, and only for the DataStore's spec.backupRetention.
//
// Each DataStore's list is sharded over forgetShards Secrets
// (lethe-forget-<name>-<0..f>, owned by the DataStore so they go with it),
// each entry in the shard its request's UID hashes to: concurrent erasures
// seldom write the same Secret, and the list holds forgetShards times what
// one Secret's 1 MiB can. An entry is the request's UID as the key, and as
// the value an age file (X25519) of the identities and the entry's dates. The age identity (private key) lives in an operator-owned
// Secret of the operator's namespace, created on first use: reading a
// tenant namespace's Secrets is not enough to read the list. Nothing about
// an entry (errors, events, status) ever shows the identities.

const (
	// DefaultForgetKeySecret is the Secret (in the operator's namespace)
	// holding the forget list's age identity.
	DefaultForgetKeySecret = "lethe-forget-list-key"
	// forgetKeyData is the key of the identity in that Secret.
	forgetKeyData = "identity"
	// ForgetListLabel marks a forget-list Secret with its DataStore's name.
	ForgetListLabel  = "privacy.lethe.dev/forget-list"
	forgetListPrefix = "lethe-forget-"
)

// errForgetList wraps forget-list failures; their messages name objects only.
var errForgetList = errors.New("forget list")

// ForgetList keeps and reads the encrypted identities replays need.
type ForgetList struct {
	// Client writes the Secrets; Reader reads them past the cache.
	Client client.Client
	Reader client.Reader
	// KeyNamespace and KeySecret locate the age identity (default
	// "default" and DefaultForgetKeySecret).
	KeyNamespace, KeySecret string

	mu       sync.Mutex
	identity *age.X25519Identity
}

// forgetEntry is one request's entry, as encrypted.
type forgetEntry struct {
	Identities  map[string]string `json:"identities"`
	CompletedAt time.Time         `json:"completedAt"`
	ExpiresAt   time.Time         `json:"expiresAt"`
}

// forgetShards is how many Secrets a DataStore's forget list is spread over.
const forgetShards = 16

// ForgetListNames are the forget-list Secrets of a DataStore, one per shard:
// lethe-forget-<name>-<shard>, or, for a name too long for that, a prefix of
// it and a digest of the whole.
func ForgetListNames(store string) []string {
	base := forgetListPrefix + store
	if len(base)+2 > 253 {
		sum := sha256.Sum256([]byte(store))
		base = forgetListPrefix + store[:200] + "-" + hex.EncodeToString(sum[:8])
	}
	names := make([]string, forgetShards)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%x", base, i)
	}
	return names
}

// forgetShard is the shard of the forget list that keeps uid's entry.
func forgetShard(store, uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return ForgetListNames(store)[int(sum[0])%forgetShards]
}

// keepsReplayData reports whether erasures in ds keep replay data: a SQL
// store with spec.backupRetention.
func keepsReplayData(ds *privacyv1.DataStore) bool {
	return ds.Spec.BackupRetention != "" && (ds.Spec.Engine == privacyv1.EnginePostgres || ds.Spec.Engine == privacyv1.EngineMySQL)
}

// key returns the age identity, reading or creating its Secret.
func (f *ForgetList) key(ctx context.Context) (*age.X25519Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.identity != nil {
		return f.identity, nil
	}
	ns, name := f.KeyNamespace, f.KeySecret
	if ns == "" {
		ns = "default"
	}
	if name == "" {
		name = DefaultForgetKeySecret
	}
	for range 2 {
		sec := &corev1.Secret{}
		err := f.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sec)
		if err == nil {
			id, perr := age.ParseX25519Identity(string(bytes.TrimSpace(sec.Data[forgetKeyData])))
			if perr != nil {
				return nil, fmt.Errorf("%w: Secret %s/%s has no valid age identity under key %q", errForgetList, ns, name, forgetKeyData)
			}
			f.identity = id
			return id, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: reading its key Secret %s/%s: %s", errForgetList, ns, name, apierrors.ReasonForError(err))
		}
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/name": "lethe"}},
			Data:       map[string][]byte{forgetKeyData: []byte(id.String())},
		}
		err = f.Client.Create(ctx, sec)
		if err == nil {
			f.identity = id
			return id, nil
		}
		if !apierrors.IsAlreadyExists(err) { // else another replica won the race: read its key
			return nil, fmt.Errorf("%w: creating its key Secret %s/%s: %s", errForgetList, ns, name, apierrors.ReasonForError(err))
		}
	}
	return nil, fmt.Errorf("%w: its key Secret %s/%s could not be read or created", errForgetList, ns, name)
}

// Keep records the identities of request uid's subject, whose erasure in ds
// completed at completedAt, until spec.backupRetention after it.
func (f *ForgetList) Keep(ctx context.Context, ds *privacyv1.DataStore, uid string, subject map[string]string, completedAt time.Time) error {
	expires, err := ds.Spec.BackupRetention.After(completedAt)
	if err != nil {
		return fmt.Errorf("%w: spec.backupRetention: %w", errForgetList, err)
	}
	id, err := f.key(ctx)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(forgetEntry{Identities: subject, CompletedAt: completedAt.UTC(), ExpiresAt: expires.UTC()})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, id.Recipient())
	if err != nil {
		return fmt.Errorf("%w: encrypting an entry failed", errForgetList)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("%w: encrypting an entry failed", errForgetList)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%w: encrypting an entry failed", errForgetList)
	}
	clear(plain)
	name := forgetShard(ds.Name, uid)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sec := &corev1.Secret{}
		err := f.Reader.Get(ctx, client.ObjectKey{Namespace: ds.Namespace, Name: name}, sec)
		if apierrors.IsNotFound(err) {
			sec = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: ds.Namespace, Name: name,
					Labels: map[string]string{ForgetListLabel: labelValue(ds.Name), "app.kubernetes.io/managed-by": "lethe"},
					OwnerReferences: []metav1.OwnerReference{{
						APIVersion: privacyv1.GroupVersion.String(), Kind: "DataStore", Name: ds.Name, UID: ds.UID,
					}},
				},
				Type: corev1.SecretTypeOpaque,
				Data: map[string][]byte{uid: buf.Bytes()},
			}
			err = f.Client.Create(ctx, sec)
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("secrets"), name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if !ownedBy(sec, ds) {
			return fmt.Errorf("%w: Secret %s exists but is not owned by DataStore %s; Lethe does not write into it", errForgetList, name, ds.Name)
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[uid] = buf.Bytes()
		return f.Client.Update(ctx, sec)
	})
	if apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) {
		// A Secret holds at most 1 MiB: about 2,500 entries per shard.
		return fmt.Errorf("%w: Secret %s is full (a Secret holds at most 1 MiB, about %d erasures across the list's %d shards): shorten spec.backupRetention, or erasures wait until entries expire",
			errForgetList, name, forgetShards*2500, forgetShards)
	}
	if err != nil && !errors.Is(err, errForgetList) {
		return fmt.Errorf("%w: writing Secret %s: %s", errForgetList, name, apierrors.ReasonForError(err))
	}
	return err
}

// labelValue is name if it is a valid label value, else a digest of it.
func labelValue(name string) string {
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

func ownedBy(sec *corev1.Secret, ds *privacyv1.DataStore) bool {
	for _, o := range sec.OwnerReferences {
		if o.UID == ds.UID {
			return true
		}
	}
	return false
}

// forgetState is a DataStore's forget list, decrypted, after its purge.
type forgetState struct {
	entries map[string]forgetEntry
	// next is when the next entry expires (zero: none left).
	next time.Time
	// purged is how many entries were removed.
	purged int
}

// Load decrypts ds's forget list and purges what is due at now: entries past
// their expiry or spec.backupRetention after their completion (whichever is
// first; every entry when backupRetention is unset), and entries that
// cannot be decrypted (another key). A shard that cannot be read or purged
// is an error after the others are read: what they hold is still returned.
func (f *ForgetList) Load(ctx context.Context, ds *privacyv1.DataStore, now time.Time) (forgetState, error) {
	st := forgetState{entries: map[string]forgetEntry{}}
	var errs []error
	for _, name := range ForgetListNames(ds.Name) {
		if err := f.loadShard(ctx, ds, name, now, &st); err != nil {
			errs = append(errs, err)
		}
	}
	return st, errors.Join(errs...)
}

// loadShard adds the entries of one shard to st, purging what is due.
func (f *ForgetList) loadShard(ctx context.Context, ds *privacyv1.DataStore, name string, now time.Time, st *forgetState) error {
	sec := &corev1.Secret{}
	if err := f.Reader.Get(ctx, client.ObjectKey{Namespace: ds.Namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%w: reading Secret %s: %s", errForgetList, name, apierrors.ReasonForError(err))
	}
	if !ownedBy(sec, ds) {
		return fmt.Errorf("%w: Secret %s exists but is not owned by DataStore %s; Lethe neither reads nor purges it", errForgetList, name, ds.Name)
	}
	if len(sec.Data) == 0 {
		return nil
	}
	id, err := f.key(ctx)
	if err != nil {
		return err
	}
	var drop []string
	kept := 0
	for uid, cipher := range sec.Data {
		e, ok := decryptEntry(id, cipher)
		if !ok {
			drop = append(drop, uid) // unreadable: of no use, and not to be kept
			continue
		}
		expires := e.ExpiresAt
		if ds.Spec.BackupRetention == "" {
			expires = now
		} else if at, err := ds.Spec.BackupRetention.After(e.CompletedAt); err == nil && at.Before(expires) {
			expires = at // the window was shortened since
		}
		if !now.Before(expires) {
			clear(e.Identities)
			drop = append(drop, uid)
			continue
		}
		st.entries[uid] = e
		kept++
		if st.next.IsZero() || expires.Before(st.next) {
			st.next = expires
		}
	}
	if len(drop) == 0 {
		return nil
	}
	st.purged += len(drop)
	if kept == 0 {
		return f.emptyList(ctx, sec)
	}
	for _, uid := range drop {
		delete(sec.Data, uid)
	}
	// Exactly the version read: an entry written meanwhile is purged at the next check.
	if err := f.Client.Update(ctx, sec); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("%w: purging Secret %s: %s", errForgetList, name, apierrors.ReasonForError(err))
	}
	return nil
}

// emptyList removes every entry. The Secret itself stays (empty) until its
// DataStore is deleted: the admission policy lethe-manager-secret-deletion
// lets the manager delete only Secrets handed over to requests, and the
// garbage collector removes it with its owner.
func (f *ForgetList) emptyList(ctx context.Context, sec *corev1.Secret) error {
	if len(sec.Data) == 0 {
		return nil
	}
	sec.Data = nil
	// Exactly the version read: an entry written meanwhile is purged at the next check if due.
	if err := f.Client.Update(ctx, sec); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: purging Secret %s: %s", errForgetList, sec.Name, apierrors.ReasonForError(err))
	}
	return nil
}

// decryptEntry opens one entry; ok is false for one this key cannot read.
func decryptEntry(id *age.X25519Identity, cipher []byte) (forgetEntry, bool) {
	r, err := age.Decrypt(bytes.NewReader(cipher), id)
	if err != nil {
		return forgetEntry{}, false
	}
	plain, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return forgetEntry{}, false
	}
	defer clear(plain)
	var e forgetEntry
	if json.Unmarshal(plain, &e) != nil || len(e.Identities) == 0 {
		return forgetEntry{}, false
	}
	return e, true
}

// keepForReplay records the subject in the forget list when an erasure's
// part in a store that keeps replay data completes (journaled: only those
// can be told apart after a restore). It returns false, with the wait before
// retrying, when the list cannot be written: the part stays pending, as the
// identities are needed for as long as a restore may undo it.
func (run *requestRun) keepForReplay(ctx context.Context, ds *privacyv1.DataStore, out *privacyv1.StoreOutcome, now time.Time) (time.Duration, bool) {
	dsr := run.dsr
	if run.r.Forget == nil || dsr.Spec.Type != privacyv1.RequestErasure || dsr.Spec.DryRun || !out.Journaled || !keepsReplayData(ds) {
		return 0, true
	}
	if err := run.r.Forget.Keep(ctx, ds, string(dsr.UID), run.subject, now); err != nil {
		out.Phase = privacyv1.StorePending
		out.Message = fmt.Sprintf("the erasure is done, but keeping the subject's identities for replays (spec.backupRetention) failed: %v; retrying", err)
		return storeRetryInterval, false
	}
	return 0, true
}
