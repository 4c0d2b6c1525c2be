package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/audit"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/stores"
)

const (
	// ExportPartBytes is the most export data one Secret holds: the API server
	// refuses Secrets over 1 MiB, and the object needs room for metadata.
	ExportPartBytes = 900 * 1024
	// DefaultMaxExportBytes is the default budget of an Access export
	// (--max-export-bytes): the manager never encodes more for one request.
	DefaultMaxExportBytes = 8 << 20
	// ExportKey is the data key of the export in the export Secret.
	ExportKey = "export.json"
	// RequestLabel marks objects Lethe creates for a request.
	RequestLabel = "privacy.lethe.dev/request"

	waitForStoreInterval = 30 * time.Second
	// heldRecheckInterval is the safety requeue of a request waiting on a
	// hold; the hold's release or expiry wakes it first.
	heldRecheckInterval = 10 * time.Minute
	recheckStalled      = 5 * time.Minute
	maxRetryBackoff     = 5 * time.Minute
)

// DataSubjectRequestReconciler carries out Access, Erasure and Rectification
// requests in every DataStore of the request's namespace that is in scope.
type DataSubjectRequestReconciler struct {
	client.Client
	// APIReader reads Secrets directly, without caching every Secret.
	APIReader client.Reader
	Connector *connector.Connector
	Recorder  events.EventRecorder
	Now       func() time.Time
	// DigestKey keys the subject digest; the operator keeps it in a Secret.
	DigestKey []byte
	// ErasureDeadline and OtherDeadline are the default deadlines.
	ErasureDeadline time.Duration
	OtherDeadline   time.Duration
	// RetryBase is the first wait before retrying an unavailable store; it
	// doubles per attempt up to maxRetryBackoff. Default 5s.
	RetryBase time.Duration
	// MaxExportBytes is the budget of an Access export's JSON; an export that
	// would pass it stops as ExportTooLarge. Default DefaultMaxExportBytes.
	MaxExportBytes int64
	// ExportPartBytes is the most one export Secret holds (default
	// ExportPartBytes); tests make it small to split small exports.
	ExportPartBytes int
	// Forget keeps the identities of erasures in stores with
	// spec.backupRetention, encrypted, for replays after a restore.
	Forget *ForgetList
}

// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=datasubjectrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=datasubjectrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=retentionpolicies;legalholds,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update

// Reconcile advances one request.
func (r *DataSubjectRequestReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	dsr := &privacyv1.DataSubjectRequest{}
	if err := r.Get(ctx, req.NamespacedName, dsr); err == nil && isComplete(dsr) {
		return reconcile.Result{}, nil // finished requests never need a fresh read
	}
	// Read past the cache: a stale copy could show a store as pending that a
	// previous reconcile already finished, and act on it a second time.
	if err := r.APIReader.Get(ctx, req.NamespacedName, dsr); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.RequestClosed(req.Namespace, req.Name) // metrics
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if isComplete(dsr) {
		return reconcile.Result{}, nil
	}
	run := &requestRun{r: r, dsr: dsr, before: dsr.DeepCopy()}
	initial := run.before // metrics: save replaces run.before, never changes it
	result, err := run.advance(ctx)
	dsr.Status.ObservedGeneration = dsr.Generation
	r.trackDeadline(dsr)
	if perr := run.save(ctx); perr != nil {
		return reconcile.Result{}, perr
	}
	recordRequestMetrics(initial, dsr) // metrics, once the status is saved
	if err == nil && !isComplete(dsr) {
		result = r.wakeAtDeadline(dsr, result)
	}
	return result, err
}

func isComplete(dsr *privacyv1.DataSubjectRequest) bool {
	return dsr.Status.CompletionTime != nil && apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionReady)
}

// requestRun is one reconcile of one request.
type requestRun struct {
	r       *DataSubjectRequestReconciler
	dsr     *privacyv1.DataSubjectRequest
	before  *privacyv1.DataSubjectRequest
	subject map[string]string
	// notReady names the stores skipped because their DataStore is not Ready.
	notReady map[string]bool
}

// save persists status progress (only if it changed) and records Events.
func (run *requestRun) save(ctx context.Context) error {
	recordConditionTransitions(run.r.Recorder, run.dsr, run.before.Status.Conditions, run.dsr.Status.Conditions)
	if err := patchStatus(ctx, run.r.Client, run.dsr, run.before); err != nil {
		return err
	}
	run.before = run.dsr.DeepCopy()
	return nil
}

func (run *requestRun) conds() *[]metav1.Condition { return &run.dsr.Status.Conditions }
func (run *requestRun) gen() int64                 { return run.dsr.Generation }

func (run *requestRun) advance(ctx context.Context) (reconcile.Result, error) {
	dsr := run.dsr
	now := run.r.Now()
	if dsr.Status.StartTime == nil {
		start := metav1.NewTime(now)
		dsr.Status.StartTime = &start
		deadline := run.r.deadline(dsr)
		dsr.Status.Deadline = &deadline
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonProgressing, "resolving the subject and the stores in scope")
	}

	subject, err := run.r.resolveSubject(ctx, dsr)
	if err != nil {
		return run.subjectError(err)
	}
	run.subject = subject
	digest := audit.SubjectDigest(run.r.DigestKey, subject)
	if dsr.Status.SubjectDigest != "" && dsr.Status.SubjectDigest != digest {
		// The Secret was edited mid-request: acting on it would erase (or
		// export) someone else in the stores not done yet.
		markStalled(run.conds(), run.gen(), privacyv1.ReasonSubjectChanged,
			"the subject's identities are not those the request started with (its Secret was changed); nothing more is done: create a new request for the new subject")
		return reconcile.Result{}, nil
	}
	dsr.Status.SubjectDigest = digest

	targets, waiting, err := run.r.storesInScope(ctx, dsr)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(waiting) > 0 {
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonStoreNotFound,
			fmt.Sprintf("waiting for DataStore(s) %s in namespace %q", strings.Join(waiting, ", "), dsr.Namespace))
		return reconcile.Result{RequeueAfter: waitForStoreInterval}, nil
	}
	markRemovedStores(dsr, targets)
	if len(targets) == 0 && len(dsr.Status.Stores) == 0 {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonNoStoresInScope,
			fmt.Sprintf("no DataStore in namespace %q matches the request's scope", dsr.Namespace))
		return reconcile.Result{RequeueAfter: recheckStalled}, nil
	}
	if len(targets) == 0 {
		return run.conclude(0), nil // every store it had is gone: say so
	}
	if msg := unknownIdentityTypes(subject, targets); msg != "" {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidSubject, msg)
		return reconcile.Result{RequeueAfter: recheckStalled}, nil
	}
	for _, ds := range targets {
		ensureStoreOutcome(dsr, ds.Name)
	}
	if dsr.Spec.Type == privacyv1.RequestAccess && !dsr.Spec.DryRun {
		return run.export(ctx, targets)
	}
	return run.applyEachStore(ctx, targets)
}

func (run *requestRun) subjectError(err error) (reconcile.Result, error) {
	if errors.Is(err, connector.ErrSecret) {
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonSecretNotFound, err.Error())
		return reconcile.Result{RequeueAfter: storeRetryInterval}, nil
	}
	if errors.Is(err, errInvalidSubject) {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidSubject, err.Error())
		return reconcile.Result{RequeueAfter: recheckStalled}, nil
	}
	return reconcile.Result{}, err
}

// applyEachStore plans (dry run) or applies the request store by store,
// saving progress after each so a restarted manager resumes where it stopped.
func (run *requestRun) applyEachStore(ctx context.Context, targets []privacyv1.DataStore) (reconcile.Result, error) {
	var retryAfter time.Duration
	for i := range targets {
		ds := &targets[i]
		out := findStoreOutcome(run.dsr, ds.Name)
		// Failed stores are tried again when the request is rechecked: the
		// fix (a migration, a corrected map) comes from outside the request.
		// A subject too large for the store is not: each try would run the
		// same statements into the same timeout.
		if out.Phase == privacyv1.StoreCompleted || out.Reason == privacyv1.ReasonSubjectTooLarge {
			continue
		}
		wait := run.applyOne(ctx, ds, out)
		if wait > 0 && (retryAfter == 0 || wait < retryAfter) {
			retryAfter = wait
		}
		if i == len(targets)-1 {
			break // Reconcile saves the last store's outcome with the conclusion
		}
		if err := run.save(ctx); err != nil {
			return reconcile.Result{}, err
		}
	}
	return run.conclude(retryAfter), nil
}

// applyOne carries out the request in one store and records the outcome. It
// returns how long to wait before retrying, or 0 when this store is finished.
func (run *requestRun) applyOne(ctx context.Context, ds *privacyv1.DataStore, out *privacyv1.StoreOutcome) time.Duration {
	lease, sreq, wait := run.prepare(ctx, ds, out)
	if lease == nil {
		return wait
	}
	defer lease.Release()
	store := lease.Store
	var res stores.Result
	var err error
	if run.dsr.Spec.DryRun {
		res, err = store.Plan(ctx, sreq)
	} else {
		res, err = store.Apply(ctx, sreq)
	}
	if errors.Is(err, stores.ErrStatementTimeout) {
		out.StatementTimeouts++
		if out.StatementTimeouts >= maxStatementTimeouts {
			run.tooLarge(ctx, store, sreq, out, err)
			return 0
		}
	} else {
		out.StatementTimeouts = 0
	}
	if err != nil {
		if res.Repeated && !run.dsr.Spec.DryRun && len(res.Collections) > 0 {
			// The calls that succeeded before the failure are done: keep them.
			out.Collections = collectionOutcomes(stores.MergeRepeated(earlierChanges(out.Collections), res.Collections))
		}
		return run.storeError(out, err)
	}
	out.HeldBy = res.HeldBy
	switch {
	case run.dsr.Spec.DryRun:
		out.Collections = collectionOutcomes(res.Collections)
	case res.Repeated:
		// Each pass repeats every call: its results replace the earlier ones.
		out.Collections = collectionOutcomes(stores.MergeRepeated(earlierChanges(out.Collections), res.Collections))
	case res.Totals != nil:
		// The store's journal says what every pass did: exact after a crash.
		out.Collections, out.Journaled = collectionOutcomes(res.Totals), true
	default:
		out.Collections, out.Journaled = collectionOutcomes(stores.AddUp(earlierChanges(out.Collections), res.Collections)), false
	}
	if !run.dsr.Spec.DryRun {
		if wait, done := run.verify(ctx, store, sreq, out); !done {
			return wait
		}
	}
	if res.Held && !run.dsr.Spec.DryRun {
		out.Phase = privacyv1.StoreOnLegalHold
		out.Message = "part of the subject's data is on legal hold; the rest is done, and it finishes when the hold ends"
		// A hold's release or expiry wakes the request (LegalHold watch);
		// this is only the safety net.
		return heldRecheckInterval
	}
	now := metav1.NewTime(run.r.Now())
	if wait, kept := run.keepForReplay(ctx, ds, out, now.Time); !kept {
		return wait
	}
	out.Phase = privacyv1.StoreCompleted
	out.Message = ""
	out.CompletionTime = &now
	return 0
}

// maxStatementTimeouts is how many attempts in a row may meet a store's
// statement timeout before the subject is declared too large for it.
const maxStatementTimeouts = 3

// tooLarge ends a store's part that met the statement timeout
// maxStatementTimeouts times in a row: the outcome fails with reason
// SubjectTooLarge, naming what timed out and, when a read-only plan can tell,
// the collection with the most rows of the subject and their count.
func (run *requestRun) tooLarge(ctx context.Context, store stores.Store, sreq stores.Request, out *privacyv1.StoreOutcome, err error) {
	largest := ""
	if plan, perr := store.Plan(ctx, sreq); perr == nil {
		var top stores.CollectionResult
		for _, c := range plan.Collections {
			if c.Action.ChangesRows() && c.Rows > top.Rows {
				top = c
			}
		}
		if top.Rows > 0 {
			largest = fmt.Sprintf("; its largest part is %d row(s) of collection %q (%s)", top.Rows, top.Collection, top.Action)
		}
	}
	out.Phase, out.Reason = privacyv1.StoreFailed, privacyv1.ReasonSubjectTooLarge
	out.Message = fmt.Sprintf("%s: %d attempts in a row met the store's statement timeout (%v)%s; the subject's part is too large for one transaction within it: raise the DataStore's spec.statementTimeout, or set erasureBatchSize on that collection, then create a new request (this one is not retried)",
		privacyv1.ReasonSubjectTooLarge, out.StatementTimeouts, err, largest)
}

// verify checks a committed part where the engine can (stores.Verifier):
// it records, per collection, what is left of the subject to change, and
// whether nothing is. A part with rows left (written since by an application)
// is not complete: it runs again after a short wait.
func (run *requestRun) verify(ctx context.Context, store stores.Store, sreq stores.Request, out *privacyv1.StoreOutcome) (time.Duration, bool) {
	v, ok := store.(stores.Verifier)
	if !ok {
		out.Verified = nil
		return 0, true
	}
	found, err := v.Verify(ctx, sreq)
	if err != nil {
		return run.storeError(out, err), false
	}
	for i := range out.Collections {
		c := &out.Collections[i]
		if stores.Action(c.Action).ChangesRows() {
			n := found.Remaining[c.Collection]
			c.Remaining = &n
		}
	}
	verified := len(found.Left()) == 0
	out.Verified = &verified
	if verified {
		return 0, true
	}
	out.Phase = privacyv1.StorePending
	out.Message = fmt.Sprintf("%s: after the %s committed, the subject still had rows to change in %s; doing it again",
		privacyv1.ReasonErasureNotVerified, strings.ToLower(verbOf(run.dsr.Spec.Type)), strings.Join(found.Left(), ", "))
	return storeRetryInterval, false
}

// prepare connects to ds and builds the engine request, counting the attempt.
// A nil lease means "not now": the outcome says why and wait says for how
// long. The caller releases the lease.
func (run *requestRun) prepare(ctx context.Context, ds *privacyv1.DataStore, out *privacyv1.StoreOutcome) (*connector.Lease, stores.Request, time.Duration) {
	if notReady := storeNotReadyReason(ds); notReady != "" {
		out.Phase, out.Message = privacyv1.StorePending, notReady
		if run.notReady == nil {
			run.notReady = map[string]bool{}
		}
		run.notReady[ds.Name] = true
		return nil, stores.Request{}, waitForStoreInterval
	}
	out.Attempts++
	lease, err := run.r.Connector.Acquire(ctx, ds)
	if err != nil {
		return nil, stores.Request{}, run.storeError(out, err)
	}
	sreq, err := run.r.storeRequest(ctx, run.dsr, ds, run.subject)
	if err != nil {
		lease.Release()
		return nil, stores.Request{}, run.storeError(out, err)
	}
	return lease, sreq, 0
}

// storeError classifies a store failure: unavailable stores and missing
// Secrets are retried with backoff; an invalid map or request fails the store.
func (run *requestRun) storeError(out *privacyv1.StoreOutcome, err error) time.Duration {
	switch {
	case errors.Is(err, stores.ErrInvalid):
		out.Phase = privacyv1.StoreFailed
		out.Message = err.Error()
		return 0
	case errors.Is(err, connector.ErrSecret):
		out.Phase = privacyv1.StorePending
		out.Message = err.Error()
	case errors.Is(err, stores.ErrUnavailable):
		out.Phase = privacyv1.StorePending
		out.Message = err.Error() + " (retrying)"
	default:
		out.Phase = privacyv1.StorePending
		out.Message = "store unavailable: " + err.Error() + " (retrying)"
	}
	base := run.r.RetryBase
	if base <= 0 {
		base = 5 * time.Second
	}
	backoff := base << min(out.Attempts, 6)
	return min(backoff, maxRetryBackoff)
}

// conclude sets the request's conditions from its stores' phases.
func (run *requestRun) conclude(retryAfter time.Duration) reconcile.Result {
	dsr := run.dsr
	var pending, failed, held, removed []string
	tooLarge := false
	pendingReason := privacyv1.ReasonStoreNotReady
	for _, o := range dsr.Status.Stores {
		switch o.Phase {
		case privacyv1.StoreFailed:
			failed = append(failed, o.Store+": "+o.Message)
			tooLarge = tooLarge || o.Reason == privacyv1.ReasonSubjectTooLarge
		case privacyv1.StoreOnLegalHold:
			held = append(held, o.Store)
		case privacyv1.StoreRemoved:
			removed = append(removed, o.Store)
		case privacyv1.StoreCompleted:
		default:
			pending = append(pending, o.Store+": "+o.Message)
			if !run.notReady[o.Store] {
				pendingReason = privacyv1.ReasonStoreUnavailable
			}
		}
	}
	switch {
	case len(pending) > 0:
		apimeta.RemoveStatusCondition(run.conds(), privacyv1.ConditionOnLegalHold)
		// StoreNotReady when every store waited on needs a fix to its DataStore
		// (drift, invalid map); StoreUnavailable when one is down or unreadable.
		markProgressing(run.conds(), run.gen(), pendingReason,
			fmt.Sprintf("waiting for %d store(s): %s", len(pending), strings.Join(pending, "; ")))
		return reconcile.Result{RequeueAfter: retryAfter}
	case len(failed) > 0 && tooLarge:
		markStalled(run.conds(), run.gen(), privacyv1.ReasonSubjectTooLarge,
			fmt.Sprintf("%d store(s) cannot carry out the request in one transaction: %s", len(failed), strings.Join(failed, "; ")))
		return reconcile.Result{RequeueAfter: recheckStalled} // other failed stores are rechecked; too large ones are not
	case len(failed) > 0:
		markStalled(run.conds(), run.gen(), privacyv1.ReasonStoreFailed,
			fmt.Sprintf("%d store(s) refused the request: %s", len(failed), strings.Join(failed, "; ")))
		return reconcile.Result{RequeueAfter: recheckStalled}
	case len(removed) > 0:
		apimeta.RemoveStatusCondition(run.conds(), privacyv1.ConditionOnLegalHold)
		markStalled(run.conds(), run.gen(), privacyv1.ReasonStoreRemoved,
			fmt.Sprintf("DataStore(s) %s were deleted or left the request's scope before its part was done there; the request is not complete: recreate them to finish, or file a new request", strings.Join(removed, ", ")))
		return reconcile.Result{RequeueAfter: recheckStalled}
	case len(held) > 0:
		msg := fmt.Sprintf("data in %s is on legal hold; everything else is done", strings.Join(held, ", "))
		setCondition(run.conds(), run.gen(), privacyv1.ConditionOnLegalHold, metav1.ConditionTrue, privacyv1.ReasonOnLegalHold, msg)
		// Waiting on a hold is not a failure: Ready=False, Reconciling, not Stalled.
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonOnLegalHold, msg)
		return reconcile.Result{RequeueAfter: retryAfter}
	}
	run.complete()
	return reconcile.Result{}
}

func (run *requestRun) complete() {
	dsr := run.dsr
	now := metav1.NewTime(run.r.Now())
	dsr.Status.CompletionTime = &now
	if apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionOnLegalHold) != nil {
		setCondition(run.conds(), run.gen(), privacyv1.ConditionOnLegalHold, metav1.ConditionFalse, privacyv1.ReasonCompleted, "no data is on legal hold any more")
	}
	digest, err := audit.ReceiptDigest(audit.ReceiptOf(dsr))
	if err == nil {
		dsr.Status.ReceiptDigest = digest
	}
	reason, msg := privacyv1.ReasonCompleted, completionMessage(dsr)
	switch {
	case dsr.Spec.DryRun:
		reason = privacyv1.ReasonDryRunCompleted
	case !subjectFound(dsr):
		// Done, but worth a look: a typo, a stray space or another e-mail
		// would end the same way, and the person's data would remain.
		reason = privacyv1.ReasonSubjectNotFound
		msg = fmt.Sprintf("no data of this subject in the %d store(s) in scope: nothing was %s; check the identities if the person should be known", len(dsr.Status.Stores), verbOf(dsr.Spec.Type))
	}
	markReady(run.conds(), run.gen(), reason, msg)
}

// markRemovedStores ends the outcome of every store the request had begun
// that is no longer in scope: it would otherwise stay Pending forever.
func markRemovedStores(dsr *privacyv1.DataSubjectRequest, targets []privacyv1.DataStore) {
	inScope := map[string]bool{}
	for _, ds := range targets {
		inScope[ds.Name] = true
	}
	for i := range dsr.Status.Stores {
		o := &dsr.Status.Stores[i]
		if inScope[o.Store] || o.Phase == privacyv1.StoreCompleted {
			continue
		}
		o.Phase = privacyv1.StoreRemoved
		o.Message = fmt.Sprintf("DataStore %q was deleted or left the request's scope before its part was done; nothing more was done there", o.Store)
	}
}

func ensureStoreOutcome(dsr *privacyv1.DataSubjectRequest, store string) {
	if findStoreOutcome(dsr, store) == nil {
		dsr.Status.Stores = append(dsr.Status.Stores, privacyv1.StoreOutcome{Store: store, Phase: privacyv1.StorePending})
	}
}

func findStoreOutcome(dsr *privacyv1.DataSubjectRequest, store string) *privacyv1.StoreOutcome {
	for i := range dsr.Status.Stores {
		if dsr.Status.Stores[i].Store == store {
			return &dsr.Status.Stores[i]
		}
	}
	return nil
}

// SetupWithManager registers the controller. A DataStore becoming Ready (or
// not) wakes the unfinished requests that may use it; its periodic check does not.
func (r *DataSubjectRequestReconciler) SetupWithManager(mgr manager.Manager) error {
	if r.Now == nil {
		return errNoClock
	}
	return builder.ControllerManagedBy(mgr).
		// Status writes must not retrigger a reconcile: retries are paced by RequeueAfter.
		For(&privacyv1.DataSubjectRequest{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&privacyv1.DataStore{}, handler.EnqueueRequestsFromMapFunc(r.requestsOfStore), builder.WithPredicates(storeReadinessChanged)).
		Watches(&privacyv1.LegalHold{}, handler.EnqueueRequestsFromMapFunc(r.unfinishedRequestsOfNamespace), builder.WithPredicates(holdChanged)). // a released hold wakes the requests waiting on it
		Named("datasubjectrequest").
		Complete(r)
}

// requestsOfStore wakes the unfinished requests that may use a DataStore.
func (r *DataSubjectRequestReconciler) requestsOfStore(ctx context.Context, obj client.Object) []reconcile.Request {
	return unfinishedRequestsOfStore(ctx, r.Client, obj.GetNamespace(), obj.GetName())
}

// unfinishedRequestsOfNamespace wakes the unfinished requests of a LegalHold's
// namespace when the hold is created, changed, released or expires.
func (r *DataSubjectRequestReconciler) unfinishedRequestsOfNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	list := &privacyv1.DataSubjectRequestList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if !isComplete(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
