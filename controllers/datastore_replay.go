package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Replays: a SQL store's journal is restored together with its data, so a
// completed erasure whose journal row is missing from the store was undone by
// a restore from backup. At each check the DataStore controller compares the
// journal with the completed erasures that touched the store, and re-applies
// the missing ones, oldest first, with the identities the forget list kept
// and the holds and exemptions in force now. Each replay is recorded in the
// request's status.replays (the original receipt never changes) and as an
// Event on the DataStore; it counts as done only once the journal row is
// back. Redis and processors keep no journal and are not replayed.

const (
	// maxReplaysPerCheck and replayCheckBudget bound the replays of one
	// reconcile; the rest follow at once in the next.
	maxReplaysPerCheck = 1000
	replayCheckBudget  = 10 * time.Second
	// replayRecorders is how many requests' status.replays are written at
	// once while the re-applies go on, in order: a status PATCH took twice
	// as long as the re-apply itself.
	replayRecorders = 8
	// maxReplayRecords is how many replays a request's status keeps.
	maxReplayRecords = 50
	// replayRetryInterval is the wait before retrying a failed replay.
	replayRetryInterval = storeRetryInterval
	// maxNamesInStatus bounds the request names a condition or status lists.
	maxNamesInStatus = 20
	// replayPoliciesFresh is how long the holds and exemptions read for one
	// replay serve the next ones of the same check. Reading LegalHolds past
	// the cache costs about 85 ms while requests' status writes move the API
	// server's revision; once per replay that bounded replays to 9 a second.
	replayPoliciesFresh = time.Second
)

// replayPolicies reads the holds and exemptions in force for the replays of
// one check, again once they are replayPoliciesFresh old (measured on the
// monotonic clock, not the injected one): a hold created during a long
// check holds the replays after that.
type replayPolicies struct {
	inputs requestInputs
	ds     *privacyv1.DataStore
	read   time.Time
	p      *erasurePolicies
}

func (rp *replayPolicies) get(ctx context.Context) (*erasurePolicies, error) {
	if rp.p != nil && time.Since(rp.read) < replayPoliciesFresh {
		return rp.p, nil
	}
	read := time.Now()
	p, err := rp.inputs.erasurePolicies(ctx, rp.ds)
	if err != nil {
		return nil, err
	}
	rp.p, rp.read = &p, read
	return rp.p, nil
}

// replayCandidate is a completed erasure that touched the store.
type replayCandidate struct {
	dsr       *privacyv1.DataSubjectRequest
	completed time.Time
	// heldReplay: the last replay left rows on legal hold.
	heldReplay bool
}

// replayCheck compares the store's journal with the completed erasures that
// touched it and replays the missing ones. It returns how soon to check
// again (0: at the normal interval).
func (r *DataStoreReconciler) replayCheck(ctx context.Context, ds *privacyv1.DataStore, store stores.Store, journal *stores.JournalStatus) time.Duration {
	conds := &ds.Status.Conditions
	jr, ok := store.(stores.JournalReader)
	if !ok || journal == nil || !journal.Available {
		ds.Status.Replay = nil
		apimeta.RemoveStatusCondition(conds, privacyv1.ConditionErasuresReplayed)
		return 0
	}
	now := r.Now()
	r.recordIdentity(ctx, ds, jr, now)
	rs := &privacyv1.ReplayStatus{ObservedCheckRequest: ds.Annotations[privacyv1.ReplayCheckAnnotation]}
	if prev := ds.Status.Replay; prev != nil {
		rs.LastCheckTime = prev.LastCheckTime
	}
	ds.Status.Replay = rs

	var wait time.Duration
	soon := func(d time.Duration) {
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	var forget forgetState
	var forgetErr error
	if r.Forget != nil {
		forget, forgetErr = r.Forget.Load(ctx, ds, now)
		if forget.purged > 0 {
			r.event(ds, corev1.EventTypeNormal, "ForgetListPurged", "Purge",
				fmt.Sprintf("purged %d forget-list entr(ies) past spec.backupRetention (%s): those erasures can no longer be replayed", forget.purged, retentionText(ds)))
		}
		rs.ForgetListEntries = int32(len(forget.entries))
		if !forget.next.IsZero() {
			rs.NextPurgeTime = &metav1.Time{Time: forget.next}
			soon(max(forget.next.Sub(now), time.Second))
		}
	}

	candidates, err := r.replayCandidates(ctx, ds)
	if err != nil {
		r.replayFailed(ds, "cannot list the requests: "+err.Error())
		return replayRetryInterval
	}
	rs.Erasures = int32(len(candidates))
	if len(candidates) == 0 {
		return wait
	}
	uids := make([]string, len(candidates))
	for i, c := range candidates {
		uids[i] = string(c.dsr.UID)
	}
	present, err := jr.JournalRequestIDs(ctx, stores.KindErasure, uids)
	if err != nil {
		r.replayFailed(ds, "cannot read the store's journal: "+err.Error())
		return replayRetryInterval
	}
	stamp := metav1.NewTime(now)
	rs.LastCheckTime = &stamp

	var todo []replayCandidate
	for _, c := range candidates {
		missing := !present[string(c.dsr.UID)]
		if !missing && !c.heldReplay {
			continue
		}
		if _, kept := forget.entries[string(c.dsr.UID)]; !kept {
			if missing {
				rs.Unreplayable = append(rs.Unreplayable, c.dsr.Name)
			}
			continue
		}
		todo = append(todo, c)
	}
	// Records a previous check could not write go first.
	recorder := newReplayRecorder(ctx, r, ds)
	if len(todo) == 0 && len(rs.Unreplayable) == 0 {
		if unrecorded := recorder.wait(); len(unrecorded) > 0 {
			r.replayFailed(ds, unrecordedMessage(unrecorded))
			return replayRetryInterval
		}
		if c := apimeta.FindStatusCondition(*conds, privacyv1.ConditionErasuresReplayed); c != nil && c.Status != metav1.ConditionTrue {
			// Every missing erasure is back (or its request is gone).
			setCondition(conds, ds.Generation, privacyv1.ConditionErasuresReplayed, metav1.ConditionTrue, privacyv1.ReasonRestoreDetected,
				"every completed erasure that touched the store is in its journal again")
		}
		return wait
	}

	replayed, rows := 0, int64(0)
	var failure string
	policies := &replayPolicies{inputs: requestInputs{cached: r.Client, direct: r.APIReader, now: r.Now}, ds: ds}
	started := time.Now()
	for i, c := range todo {
		if i == maxReplaysPerCheck || time.Since(started) > replayCheckBudget {
			soon(time.Millisecond)
			for _, rest := range todo[i:] {
				rs.Pending = append(rs.Pending, rest.dsr.Name)
			}
			break
		}
		entry := forget.entries[string(c.dsr.UID)]
		n, err := r.replayOne(ctx, ds, store, jr, policies, recorder, c, entry.Identities, !present[string(c.dsr.UID)])
		if err != nil {
			// In order: a later erasure waits for an earlier one.
			failure = fmt.Sprintf("re-applying erasure %s failed: %v", c.dsr.Name, err)
			for _, rest := range todo[i:] {
				rs.Pending = append(rs.Pending, rest.dsr.Name)
			}
			break
		}
		replayed++
		rows += n
	}
	if unrecorded := recorder.wait(); len(unrecorded) > 0 {
		if failure != "" {
			failure += "; "
		}
		failure += unrecordedMessage(unrecorded)
	}
	rs.Replayed = int32(replayed)
	rs.Pending = capNames(rs.Pending)
	unreplayable := len(rs.Unreplayable)
	rs.Unreplayable = capNames(rs.Unreplayable)
	if forgetErr != nil && unreplayable > 0 {
		// Not known to be unreplayable: the list that says could not be read.
		rs.Pending = capNames(append(rs.Pending, rs.Unreplayable...))
		rs.Unreplayable, unreplayable = nil, 0
		if failure != "" {
			failure += "; "
		}
		failure += "the forget list cannot be read: " + forgetErr.Error()
	}
	switch {
	case failure != "":
		r.replayFailed(ds, fmt.Sprintf("a restore undid completed erasures: %d re-applied (%d row(s)), then %s; the request's receipt is unchanged, and the replay is retried", replayed, rows, failure))
		return replayRetryInterval
	case unreplayable > 0:
		msg := fmt.Sprintf("%d completed erasure(s) are missing from the store's journal (a restore from a backup older than them), but their identities are no longer kept (spec.backupRetention: %s): %s; Lethe cannot re-apply them: file new Erasure requests for those subjects",
			unreplayable, retentionText(ds), strings.Join(rs.Unreplayable, ", "))
		if replayed > 0 {
			msg = fmt.Sprintf("%d erasure(s) re-applied (%d row(s)); but %s", replayed, rows, msg)
		}
		r.setReplayCondition(ds, metav1.ConditionFalse, privacyv1.ReasonRestoreTooOld, msg, corev1.EventTypeWarning)
	case replayed > 0:
		msg := fmt.Sprintf("a restore had undone %d completed erasure(s): re-applied at %s, in their original order (%d row(s)); see each request's status.replays",
			replayed, now.UTC().Format(time.RFC3339), rows)
		setCondition(conds, ds.Generation, privacyv1.ConditionErasuresReplayed, metav1.ConditionTrue, privacyv1.ReasonRestoreDetected, msg)
	}
	return wait
}

func retentionText(ds *privacyv1.DataStore) string {
	if ds.Spec.BackupRetention == "" {
		return "unset, no replay data is kept"
	}
	return string(ds.Spec.BackupRetention)
}

func capNames(names []string) []string {
	if len(names) > maxNamesInStatus {
		return append(names[:maxNamesInStatus:maxNamesInStatus], fmt.Sprintf("(and %d more)", len(names)-maxNamesInStatus))
	}
	return names
}

func (r *DataStoreReconciler) replayFailed(ds *privacyv1.DataStore, msg string) {
	r.setReplayCondition(ds, metav1.ConditionFalse, privacyv1.ReasonReplayFailed, msg, corev1.EventTypeWarning)
}

// setReplayCondition sets ErasuresReplayed, with an Event when its reason or
// message changes (a failure retried every few seconds is one Event).
func (r *DataStoreReconciler) setReplayCondition(ds *privacyv1.DataStore, status metav1.ConditionStatus, reason, msg, eventType string) {
	prev := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionErasuresReplayed)
	setCondition(&ds.Status.Conditions, ds.Generation, privacyv1.ConditionErasuresReplayed, status, reason, msg)
	if prev == nil || prev.Reason != reason || prev.Message != msg {
		r.event(ds, eventType, reason, "Replay", msg)
	}
}

func (r *DataStoreReconciler) event(ds *privacyv1.DataStore, typ, reason, action, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ds, nil, typ, reason, action, "%s", msg)
	}
}

// recordIdentity reports the store's server identity, with an Event when it
// changed (a failover, or a restore onto another instance).
func (r *DataStoreReconciler) recordIdentity(ctx context.Context, ds *privacyv1.DataStore, jr stores.JournalReader, now time.Time) {
	id, err := jr.StoreIdentity(ctx)
	if err != nil {
		return // informative only: the journal says what a restore undid
	}
	prev := ds.Status.StoreIdentity
	if prev != nil && prev.System == id.System && prev.Timeline == id.Timeline {
		return
	}
	since := metav1.NewTime(now)
	ds.Status.StoreIdentity = &privacyv1.StoreIdentity{System: id.System, Timeline: id.Timeline, Since: &since}
	if prev != nil {
		r.event(ds, corev1.EventTypeWarning, privacyv1.ReasonStoreIdentityChanged, "Check",
			fmt.Sprintf("the store's server identity changed from %s to %s (a failover or a restore): its journal is checked for erasures to replay", identityText(prev), identityText(ds.Status.StoreIdentity)))
	}
}

func identityText(id *privacyv1.StoreIdentity) string {
	if id.Timeline == "" {
		return id.System
	}
	return id.System + " timeline " + id.Timeline
}

// replayCandidates lists, oldest first, the completed erasures whose part in
// ds is complete and journaled (only those the journal can tell about).
func (r *DataStoreReconciler) replayCandidates(ctx context.Context, ds *privacyv1.DataStore) ([]replayCandidate, error) {
	list := &privacyv1.DataSubjectRequestList{}
	if err := r.List(ctx, list, client.InNamespace(ds.Namespace), client.MatchingFields{indexJournaledErasure: ds.Name}); err != nil {
		return nil, err
	}
	var out []replayCandidate
	for i := range list.Items {
		dsr := &list.Items[i]
		if dsr.Spec.Type != privacyv1.RequestErasure || dsr.Spec.DryRun || dsr.DeletionTimestamp != nil {
			continue
		}
		o := findStoreOutcome(dsr, ds.Name)
		if o == nil || o.Phase != privacyv1.StoreCompleted || !o.Journaled || o.CompletionTime == nil {
			continue
		}
		c := replayCandidate{dsr: dsr, completed: o.CompletionTime.Time}
		if last := lastReplay(dsr, ds.Name); last != nil && len(last.HeldBy) > 0 {
			c.heldReplay = true
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].completed.Equal(out[j].completed) {
			return out[i].completed.Before(out[j].completed)
		}
		if !out[i].dsr.CreationTimestamp.Equal(&out[j].dsr.CreationTimestamp) {
			return out[i].dsr.CreationTimestamp.Before(&out[j].dsr.CreationTimestamp)
		}
		return out[i].dsr.Name < out[j].dsr.Name
	})
	return out, nil
}

func lastReplay(dsr *privacyv1.DataSubjectRequest, store string) *privacyv1.Replay {
	for i := len(dsr.Status.Replays) - 1; i >= 0; i-- {
		if dsr.Status.Replays[i].Store == store {
			return &dsr.Status.Replays[i]
		}
	}
	return nil
}

// replayOne re-applies one erasure and records it; it returns the rows it
// changed. missing is false when it continues a replay a hold stopped.
func (r *DataStoreReconciler) replayOne(ctx context.Context, ds *privacyv1.DataStore, store stores.Store, jr stores.JournalReader,
	policies *replayPolicies, recorder *replayRecorder, c replayCandidate, subject map[string]string, missing bool) (int64, error) {
	inputs := policies.inputs
	var err error
	if inputs.policies, err = policies.get(ctx); err != nil {
		return 0, err
	}
	sreq, err := inputs.storeRequest(ctx, c.dsr, ds, subject)
	if err != nil {
		return 0, err
	}
	res, err := store.Apply(ctx, sreq)
	if err != nil {
		return 0, err
	}
	back, err := jr.JournalRequestIDs(ctx, stores.KindErasure, []string{string(c.dsr.UID)})
	if err != nil {
		return 0, fmt.Errorf("the erasure was re-applied, but the journal cannot be read to confirm it: %w", err)
	}
	if !back[string(c.dsr.UID)] {
		return 0, errors.New("the erasure was re-applied, but its journal row is not back in the store (is the journal writable?)")
	}
	var rows int64
	for _, cr := range res.Collections {
		if cr.Action.ChangesRows() {
			rows += cr.Rows
		}
	}
	if !missing && rows == 0 && sameNames(res.HeldBy, lastReplay(c.dsr, ds.Name).HeldBy) {
		return 0, nil // still held, nothing new: no record
	}
	rec := privacyv1.Replay{
		Store: ds.Name, Time: metav1.NewTime(r.Now()), Reason: privacyv1.ReasonRestoreDetected, Rows: rows,
		Collections: collectionOutcomes(res.Collections), HeldBy: res.HeldBy,
		Message: "the store's journal had lost this request's row (a restore from a backup older than the erasure); re-applied with the holds and exemptions in force now",
	}
	if !missing {
		rec.Reason = privacyv1.ReasonOnLegalHold
		rec.Message = "continuing a replay a legal hold had stopped"
	}
	if len(res.HeldBy) > 0 {
		rec.Message += fmt.Sprintf("; rows held by %s are kept, and erased at a later check once the hold ends", strings.Join(res.HeldBy, ", "))
	}
	recorder.record(ctx, c.dsr, rec)
	r.event(ds, corev1.EventTypeNormal, privacyv1.ReasonRestoreDetected, "Replay",
		fmt.Sprintf("re-applied erasure %s after a restore (%d row(s) changed)", c.dsr.Name, rows))
	return rows, nil
}

// replayRecorder writes replays into their requests' status.replays, up to
// replayRecorders at once, while the check goes on re-applying in order. A
// record that cannot be written is kept by the reconciler and written
// first at the next check: the journal row is back, so the replay itself
// is not repeated, and its record must not be lost.
type replayRecorder struct {
	r     *DataStoreReconciler
	store types.UID
	slots chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	failed []string // names of the requests whose record failed
}

func newReplayRecorder(ctx context.Context, r *DataStoreReconciler, ds *privacyv1.DataStore) *replayRecorder {
	rr := &replayRecorder{r: r, store: ds.UID, slots: make(chan struct{}, replayRecorders)}
	for _, u := range r.unrecorded.take(ds.UID) {
		rr.record(ctx, u.dsr, u.rec)
	}
	return rr
}

func (rr *replayRecorder) record(ctx context.Context, dsr *privacyv1.DataSubjectRequest, rec privacyv1.Replay) {
	rr.slots <- struct{}{}
	rr.wg.Add(1)
	go func() {
		defer func() { <-rr.slots; rr.wg.Done() }()
		err := rr.r.recordReplay(ctx, dsr, rec)
		if apierrors.IsNotFound(err) {
			return // the request is gone, and its receipt with it
		}
		if err != nil {
			rr.r.unrecorded.keep(rr.store, unrecordedReplay{dsr: dsr, rec: rec})
			rr.mu.Lock()
			rr.failed = append(rr.failed, dsr.Name)
			rr.mu.Unlock()
		}
	}()
}

// wait waits for every record and returns the requests whose failed.
func (rr *replayRecorder) wait() []string {
	rr.wg.Wait()
	sort.Strings(rr.failed)
	return rr.failed
}

func unrecordedMessage(requests []string) string {
	return fmt.Sprintf("%d re-applied erasure(s) could not be recorded in their request's status.replays (%s); recording is retried",
		len(requests), strings.Join(capNames(requests), ", "))
}

// unrecordedReplay is a replay done whose record is still to be written.
type unrecordedReplay struct {
	dsr *privacyv1.DataSubjectRequest
	rec privacyv1.Replay
}

// unrecordedReplays are, per DataStore, the replays whose record failed.
type unrecordedReplays struct {
	mu      sync.Mutex
	byStore map[types.UID][]unrecordedReplay
}

func (u *unrecordedReplays) keep(store types.UID, r unrecordedReplay) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byStore == nil {
		u.byStore = map[types.UID][]unrecordedReplay{}
	}
	u.byStore[store] = append(u.byStore[store], r)
}

func (u *unrecordedReplays) take(store types.UID) []unrecordedReplay {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.byStore[store]
	delete(u.byStore, store)
	return out
}

func sameNames(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// recordReplay appends rec to the request's status.replays, reading it again
// on a conflict with another writer.
// The first attempt patches the request as listed from the cache (the
// optimistic lock refuses it if the cache was behind).
func (r *DataStoreReconciler) recordReplay(ctx context.Context, dsr *privacyv1.DataSubjectRequest, rec privacyv1.Replay) error {
	cur := dsr.DeepCopy()
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			cur = &privacyv1.DataSubjectRequest{}
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(dsr), cur); err != nil {
				return err
			}
		}
		first = false
		before := cur.DeepCopy()
		cur.Status.Replays = append(cur.Status.Replays, rec)
		if n := len(cur.Status.Replays); n > maxReplayRecords {
			cur.Status.Replays = cur.Status.Replays[n-maxReplayRecords:]
		}
		if err := patchStatus(ctx, r.Client, cur, before); err != nil {
			return err
		}
		return nil
	})
}
