package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
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
	// MaxExportBytes is the largest Access export written to a Secret: the API
	// server refuses Secrets over 1 MiB, and the object needs room for metadata.
	MaxExportBytes = 1000 * 1024
	// ExportKey is the data key of the export in the export Secret.
	ExportKey = "export.json"
	// RequestLabel marks objects Lethe creates for a request.
	RequestLabel = "privacy.lethe.dev/request"

	waitForStoreInterval = 30 * time.Second
	recheckStalled       = 5 * time.Minute
	maxRetryBackoff      = 5 * time.Minute
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
	dsr.Status.SubjectDigest = audit.SubjectDigest(run.r.DigestKey, subject)

	targets, waiting, err := run.r.storesInScope(ctx, dsr)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(waiting) > 0 {
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonStoreNotFound,
			fmt.Sprintf("waiting for DataStore(s) %s in namespace %q", strings.Join(waiting, ", "), dsr.Namespace))
		return reconcile.Result{RequeueAfter: waitForStoreInterval}, nil
	}
	if len(targets) == 0 {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonNoStoresInScope,
			fmt.Sprintf("no DataStore in namespace %q matches the request's scope", dsr.Namespace))
		return reconcile.Result{RequeueAfter: recheckStalled}, nil
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
		if out.Phase == privacyv1.StoreCompleted {
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
	store, sreq, wait := run.prepare(ctx, ds, out)
	if store == nil {
		return wait
	}
	var res stores.Result
	var err error
	if run.dsr.Spec.DryRun {
		res, err = store.Plan(ctx, sreq)
	} else {
		res, err = store.Apply(ctx, sreq)
	}
	if err != nil {
		return run.storeError(out, err)
	}
	out.Collections = collectionOutcomes(res)
	if res.Held && !run.dsr.Spec.DryRun {
		out.Phase = privacyv1.StoreOnLegalHold
		out.Message = "part of the subject's data is on legal hold; the rest is done, and it finishes when the hold ends"
		return waitForStoreInterval
	}
	out.Phase = privacyv1.StoreCompleted
	out.Message = ""
	now := metav1.NewTime(run.r.Now())
	out.CompletionTime = &now
	return 0
}

// prepare connects to ds and builds the engine request, counting the attempt.
// A nil store means "not now": the outcome says why and wait says for how long.
func (run *requestRun) prepare(ctx context.Context, ds *privacyv1.DataStore, out *privacyv1.StoreOutcome) (stores.Store, stores.Request, time.Duration) {
	if notReady := storeNotReadyReason(ds); notReady != "" {
		out.Phase, out.Message = privacyv1.StorePending, notReady
		return nil, stores.Request{}, waitForStoreInterval
	}
	out.Attempts++
	store, _, err := run.r.Connector.Store(ctx, ds)
	if err != nil {
		return nil, stores.Request{}, run.storeError(out, err)
	}
	sreq, err := run.r.storeRequest(ctx, run.dsr, ds, run.subject)
	if err != nil {
		return nil, stores.Request{}, run.storeError(out, err)
	}
	return store, sreq, 0
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
	var pending, failed, held []string
	for _, o := range dsr.Status.Stores {
		switch o.Phase {
		case privacyv1.StoreFailed:
			failed = append(failed, o.Store+": "+o.Message)
		case privacyv1.StoreOnLegalHold:
			held = append(held, o.Store)
		case privacyv1.StoreCompleted:
		default:
			pending = append(pending, o.Store+": "+o.Message)
		}
	}
	switch {
	case len(pending) > 0:
		apimeta.RemoveStatusCondition(run.conds(), privacyv1.ConditionOnLegalHold)
		markProgressing(run.conds(), run.gen(), privacyv1.ReasonStoreUnavailable,
			fmt.Sprintf("waiting for %d store(s): %s", len(pending), strings.Join(pending, "; ")))
		return reconcile.Result{RequeueAfter: retryAfter}
	case len(failed) > 0:
		markStalled(run.conds(), run.gen(), privacyv1.ReasonStoreFailed,
			fmt.Sprintf("%d store(s) refused the request: %s", len(failed), strings.Join(failed, "; ")))
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
	digest, err := audit.ReceiptDigest(receiptOf(dsr))
	if err == nil {
		dsr.Status.ReceiptDigest = digest
	}
	reason, msg := privacyv1.ReasonCompleted, completionMessage(dsr)
	if dsr.Spec.DryRun {
		reason = privacyv1.ReasonDryRunCompleted
	}
	markReady(run.conds(), run.gen(), reason, msg)
}

func completionMessage(dsr *privacyv1.DataSubjectRequest) string {
	var rows int64
	for _, o := range dsr.Status.Stores {
		for _, c := range o.Collections {
			if c.Action != string(stores.ActionRetain) && c.Rows > 0 {
				rows += c.Rows
			}
		}
	}
	verb := map[privacyv1.RequestType]string{
		privacyv1.RequestAccess: "exported", privacyv1.RequestErasure: "erased", privacyv1.RequestRectification: "rectified",
	}[dsr.Spec.Type]
	if dsr.Spec.DryRun {
		return fmt.Sprintf("dry run: %d row(s) would be %s in %d store(s); nothing was changed", rows, verb, len(dsr.Status.Stores))
	}
	return fmt.Sprintf("%d row(s) %s in %d store(s)", rows, verb, len(dsr.Status.Stores))
}

// receipt is what the receipt digest covers.
type receipt struct {
	Request        string                   `json:"request"`
	UID            string                   `json:"uid"`
	Type           string                   `json:"type"`
	DryRun         bool                     `json:"dryRun"`
	SubjectDigest  string                   `json:"subjectDigest"`
	StartTime      string                   `json:"startTime"`
	CompletionTime string                   `json:"completionTime"`
	Stores         []privacyv1.StoreOutcome `json:"stores"`
}

func receiptOf(dsr *privacyv1.DataSubjectRequest) receipt {
	return receipt{
		Request: dsr.Namespace + "/" + dsr.Name, UID: string(dsr.UID), Type: string(dsr.Spec.Type), DryRun: dsr.Spec.DryRun,
		SubjectDigest: dsr.Status.SubjectDigest,
		StartTime:     dsr.Status.StartTime.UTC().Format(time.RFC3339), CompletionTime: dsr.Status.CompletionTime.UTC().Format(time.RFC3339),
		Stores: dsr.Status.Stores,
	}
}

// export runs an Access request: every store's export goes into one Secret
// owned by the request. Exports are read-only, so a restart simply redoes them.
func (run *requestRun) export(ctx context.Context, targets []privacyv1.DataStore) (reconcile.Result, error) {
	all := map[string]stores.Export{}
	var retryAfter time.Duration
	for i := range targets {
		ds := &targets[i]
		out := findStoreOutcome(run.dsr, ds.Name)
		wait := run.exportOne(ctx, ds, out, all)
		if wait > 0 && (retryAfter == 0 || wait < retryAfter) {
			retryAfter = wait
		}
	}
	for _, o := range run.dsr.Status.Stores {
		if o.Phase != privacyv1.StoreCompleted && o.Phase != privacyv1.StoreFailed {
			return run.conclude(retryAfter), nil
		}
	}
	body, err := json.Marshal(all)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(body) > MaxExportBytes {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonExportTooLarge, fmt.Sprintf(
			"the export is %d bytes, more than the %d a Secret can hold; narrow spec.scope (stores or categories) and file one request per part",
			len(body), MaxExportBytes))
		return reconcile.Result{}, nil
	}
	if err := run.r.writeExport(ctx, run.dsr, body); err != nil {
		return reconcile.Result{}, err
	}
	run.dsr.Status.ExportSecretRef = &privacyv1.SecretReference{Name: exportSecretName(run.dsr)}
	return run.conclude(0), nil
}

func (run *requestRun) exportOne(ctx context.Context, ds *privacyv1.DataStore, out *privacyv1.StoreOutcome, all map[string]stores.Export) time.Duration {
	store, sreq, wait := run.prepare(ctx, ds, out)
	if store == nil {
		return wait
	}
	data, res, err := store.Export(ctx, sreq)
	if err != nil {
		return run.storeError(out, err)
	}
	all[ds.Name] = data
	out.Collections = collectionOutcomes(res)
	out.Phase, out.Message = privacyv1.StoreCompleted, ""
	now := metav1.NewTime(run.r.Now())
	out.CompletionTime = &now
	return 0
}

func exportSecretName(dsr *privacyv1.DataSubjectRequest) string { return dsr.Name + "-export" }

// writeExport creates (or, after a restart, updates) the export Secret, owned
// by the request so deleting the request deletes the export.
func (r *DataSubjectRequestReconciler) writeExport(ctx context.Context, dsr *privacyv1.DataSubjectRequest, body []byte) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: exportSecretName(dsr), Namespace: dsr.Namespace}}
	existing := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(sec), existing)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	default:
		if !metav1.IsControlledBy(existing, dsr) {
			return fmt.Errorf("secret %q exists and is not owned by this request; delete or rename it", sec.Name)
		}
		sec = existing
	}
	sec.Labels = map[string]string{RequestLabel: dsr.Name}
	sec.Type = corev1.SecretTypeOpaque
	sec.Data = map[string][]byte{ExportKey: body}
	if err := controllerutil.SetControllerReference(dsr, sec, r.Scheme()); err != nil {
		return err
	}
	if sec.ResourceVersion == "" {
		return r.Create(ctx, sec)
	}
	return r.Update(ctx, sec)
}

var errInvalidSubject = errors.New("invalid subject")

// resolveSubject returns the subject's identities, inline or from the Secret.
func (r *DataSubjectRequestReconciler) resolveSubject(ctx context.Context, dsr *privacyv1.DataSubjectRequest) (map[string]string, error) {
	return resolveIdentities(ctx, r.APIReader, dsr.Namespace, dsr.Spec.Subject)
}

func resolveIdentities(ctx context.Context, reader client.Reader, namespace string, s privacyv1.Subject) (map[string]string, error) {
	ids := map[string]string{}
	if s.IdentitiesFrom != nil {
		data, err := connector.ReadSecret(ctx, reader, namespace, s.IdentitiesFrom.SecretRef.Name)
		if err != nil {
			return nil, err
		}
		for k, v := range data {
			ids[k] = string(v)
		}
	} else {
		for k, v := range s.Identities {
			ids[k] = string(v)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: the subject has no identities", errInvalidSubject)
	}
	for k, v := range ids {
		if strings.TrimSpace(v) == "" {
			// Names the identity type only: the value is personal data.
			return nil, fmt.Errorf("%w: identity %q is empty", errInvalidSubject, k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("%w: identity %q contains a NUL character", errInvalidSubject, k)
		}
		if !utf8.ValidString(v) {
			// Engines would see U+FFFD instead: another person's identity.
			return nil, fmt.Errorf("%w: identity %q is not valid UTF-8", errInvalidSubject, k)
		}
	}
	return ids, nil
}

// storesInScope lists the request's DataStores: only in its own namespace,
// narrowed by name and label selector. Named stores that do not exist are
// returned in waiting.
func (r *DataSubjectRequestReconciler) storesInScope(ctx context.Context, dsr *privacyv1.DataSubjectRequest) (targets []privacyv1.DataStore, waiting []string, err error) {
	list := &privacyv1.DataStoreList{}
	opts := []client.ListOption{client.InNamespace(dsr.Namespace)}
	if sel := dsr.Spec.Scope.StoreSelector; sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: s})
	}
	if err := r.List(ctx, list, opts...); err != nil {
		return nil, nil, err
	}
	if len(dsr.Spec.Scope.Stores) == 0 {
		targets = list.Items
	} else {
		byName := map[string]privacyv1.DataStore{}
		for _, ds := range list.Items {
			byName[ds.Name] = ds
		}
		for _, n := range dsr.Spec.Scope.Stores {
			if ds, ok := byName[string(n)]; ok {
				targets = append(targets, ds)
			} else {
				waiting = append(waiting, string(n))
			}
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Name < targets[j].Name })
	return targets, waiting, nil
}

// unknownIdentityTypes explains, when none of the subject's identity types is
// mapped by any store in scope, which types the stores know.
func unknownIdentityTypes(subject map[string]string, targets []privacyv1.DataStore) string {
	known := map[string]bool{}
	for _, ds := range targets {
		for _, c := range ds.Spec.Collections {
			for t := range c.Identity {
				known[t] = true
			}
		}
	}
	for t := range subject {
		if known[t] {
			return ""
		}
	}
	var types, have []string
	for t := range known {
		types = append(types, t)
	}
	for t := range subject {
		have = append(have, t)
	}
	sort.Strings(types)
	sort.Strings(have)
	return fmt.Sprintf("no store in scope maps the subject's identity type(s) %s; they map %s", strings.Join(have, ", "), strings.Join(types, ", "))
}

// storeNotReadyReason explains why a DataStore cannot be used yet, or "".
func storeNotReadyReason(ds *privacyv1.DataStore) string {
	c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionReady)
	if c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == ds.Generation &&
		(c.Reason == privacyv1.ReasonSchemaDrift || c.Reason == privacyv1.ReasonInvalidDataMap) {
		return fmt.Sprintf("DataStore is not ready (%s); see its status", c.Reason)
	}
	return ""
}

// storeRequest builds what the engine needs: identities, scope, legal minimum
// retention from RetentionPolicies and holds from active LegalHolds.
func (r *DataSubjectRequestReconciler) storeRequest(ctx context.Context, dsr *privacyv1.DataSubjectRequest, ds *privacyv1.DataStore, subject map[string]string) (stores.Request, error) {
	req := stores.Request{
		Kind:      stores.Kind(dsr.Spec.Type),
		Subject:   subject,
		RequestID: string(dsr.UID),
	}
	for _, c := range dsr.Spec.Scope.Categories {
		req.Scope.Categories = append(req.Scope.Categories, string(c))
	}
	if dsr.Spec.Type == privacyv1.RequestRectification && dsr.Spec.Rectification != nil {
		values, err := r.rectificationValues(ctx, dsr)
		if err != nil {
			return req, err
		}
		req.Rectification = values
	}
	if dsr.Spec.Type != privacyv1.RequestErasure {
		return req, nil
	}
	var err error
	if req.Exemptions, err = r.exemptions(ctx, ds); err != nil {
		return req, err
	}
	if req.Holds, err = r.holds(ctx, ds, subject); err != nil {
		return req, err
	}
	return req, nil
}

func (r *DataSubjectRequestReconciler) rectificationValues(ctx context.Context, dsr *privacyv1.DataSubjectRequest) (map[string]string, error) {
	rect := dsr.Spec.Rectification
	if rect.ValuesFrom == nil {
		return rect.Values, nil
	}
	data, err := connector.ReadSecret(ctx, r.APIReader, dsr.Namespace, rect.ValuesFrom.Name)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	for k, v := range data {
		values[k] = string(v)
	}
	return values, nil
}

// exemptions turns exemptFromErasure rules of the store's RetentionPolicies
// into cutoffs: rows newer than now minus the period are kept.
func (r *DataSubjectRequestReconciler) exemptions(ctx context.Context, ds *privacyv1.DataStore) ([]stores.Exemption, error) {
	list := &privacyv1.RetentionPolicyList{}
	if err := r.List(ctx, list, client.InNamespace(ds.Namespace)); err != nil {
		return nil, err
	}
	var out []stores.Exemption
	for _, p := range list.Items {
		if string(p.Spec.StoreRef) != ds.Name {
			continue
		}
		for _, rule := range p.Spec.Rules {
			if !rule.ExemptFromErasure {
				continue
			}
			cutoff, err := rule.After.Period.Before(r.Now())
			if err != nil {
				return nil, fmt.Errorf("%w: RetentionPolicy %q rule %q: %w", stores.ErrInvalid, p.Name, rule.Name, err)
			}
			out = append(out, stores.Exemption{
				Collection: string(rule.Collection), Field: string(rule.After.Field), Cutoff: cutoff,
				Period: string(rule.After.Period), LegalBasis: rule.LegalBasis, Rule: p.Name + "/" + rule.Name,
			})
		}
	}
	return out, nil
}

// holds lists the active LegalHolds of the namespace that cover this store and,
// for holds on a subject, this request's subject (any shared identity).
func (r *DataSubjectRequestReconciler) holds(ctx context.Context, ds *privacyv1.DataStore, subject map[string]string) ([]stores.Hold, error) {
	// Uncached: a hold created a moment before the erasure must count.
	list := &privacyv1.LegalHoldList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(ds.Namespace)); err != nil {
		return nil, err
	}
	var out []stores.Hold
	for _, h := range list.Items {
		if !HoldActive(&h, r.Now()) {
			continue
		}
		if h.Spec.Subject != nil {
			held, err := resolveIdentities(ctx, r.APIReader, h.Namespace, *h.Spec.Subject)
			if err != nil {
				return nil, fmt.Errorf("LegalHold %q: %w", h.Name, err)
			}
			if !sharesIdentity(held, subject) {
				continue
			}
		}
		if len(h.Spec.Collections) == 0 {
			out = append(out, stores.Hold{Reason: h.Spec.Reason, Name: h.Name})
			continue
		}
		for _, hc := range h.Spec.Collections {
			if string(hc.Store) == ds.Name {
				out = append(out, stores.Hold{Collection: string(hc.Collection), Reason: h.Spec.Reason, Name: h.Name})
			}
		}
	}
	return out, nil
}

// HoldActive reports whether a LegalHold is in force at now.
func HoldActive(h *privacyv1.LegalHold, now time.Time) bool {
	return h.DeletionTimestamp == nil && (h.Spec.ExpiresAt == nil || now.Before(h.Spec.ExpiresAt.Time))
}

func sharesIdentity(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] == v {
			return true
		}
	}
	return false
}

func (r *DataSubjectRequestReconciler) deadline(dsr *privacyv1.DataSubjectRequest) metav1.Time {
	created := dsr.CreationTimestamp.Time
	if dsr.Spec.Deadline != "" {
		if t, err := dsr.Spec.Deadline.After(created); err == nil {
			return metav1.NewTime(t)
		}
	}
	d := r.OtherDeadline
	if dsr.Spec.Type == privacyv1.RequestErasure {
		d = r.ErasureDeadline
	}
	return metav1.NewTime(created.Add(d))
}

// trackDeadline sets DeadlineExceeded: True once the deadline passed without
// completion (or completion came late), False while within it.
func (r *DataSubjectRequestReconciler) trackDeadline(dsr *privacyv1.DataSubjectRequest) {
	if dsr.Status.Deadline == nil {
		return
	}
	deadline := dsr.Status.Deadline.Time
	conds := &dsr.Status.Conditions
	switch {
	case dsr.Status.CompletionTime != nil && dsr.Status.CompletionTime.After(deadline):
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonCompletedLate,
			fmt.Sprintf("completed %s after the deadline", dsr.Status.CompletionTime.Sub(deadline).Round(time.Second)))
	case dsr.Status.CompletionTime != nil:
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionFalse, privacyv1.ReasonWithinDeadline, "completed within the deadline")
	case r.Now().After(deadline):
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonDeadlineExceeded,
			fmt.Sprintf("the deadline %s has passed and the request is not complete", deadline.UTC().Format(time.RFC3339)))
	default:
		setCondition(conds, dsr.Generation, privacyv1.ConditionDeadlineExceeded, metav1.ConditionFalse, privacyv1.ReasonWithinDeadline, "within the deadline")
	}
}

// wakeAtDeadline makes sure an unfinished request is looked at when its
// deadline passes, so DeadlineExceeded is reported on time.
func (r *DataSubjectRequestReconciler) wakeAtDeadline(dsr *privacyv1.DataSubjectRequest, res reconcile.Result) reconcile.Result {
	if dsr.Status.Deadline == nil {
		return res
	}
	until := dsr.Status.Deadline.Sub(r.Now())
	if until > 0 && (res.RequeueAfter == 0 || until < res.RequeueAfter) {
		res.RequeueAfter = until + time.Second
	}
	return res
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

func collectionOutcomes(res stores.Result) []privacyv1.CollectionOutcome {
	out := make([]privacyv1.CollectionOutcome, 0, len(res.Collections))
	for _, c := range res.Collections {
		o := privacyv1.CollectionOutcome{Collection: c.Collection, Action: string(c.Action), Rows: c.Rows, Reason: c.Reason}
		if c.RetainedUntil != nil {
			t := metav1.NewTime(*c.RetainedUntil)
			o.RetainedUntil = &t
		}
		out = append(out, o)
	}
	return out
}

// recordConditionTransitions emits one Event per condition whose status or
// reason changed, with the condition's reason.
func recordConditionTransitions(rec events.EventRecorder, obj client.Object, before, after []metav1.Condition) {
	if rec == nil {
		return
	}
	for _, typ := range []string{privacyv1.ConditionReady, privacyv1.ConditionStalled, privacyv1.ConditionDeadlineExceeded, privacyv1.ConditionOnLegalHold} {
		a := apimeta.FindStatusCondition(after, typ)
		b := apimeta.FindStatusCondition(before, typ)
		if a == nil || (b != nil && b.Status == a.Status && b.Reason == a.Reason) {
			continue
		}
		if typ != privacyv1.ConditionReady && a.Status != metav1.ConditionTrue {
			continue // only the start of a domain condition is news
		}
		if typ == privacyv1.ConditionStalled {
			continue // Ready carries the same reason and message
		}
		evType := corev1.EventTypeNormal
		if a.Reason != privacyv1.ReasonProgressing && a.Reason != privacyv1.ReasonCompleted &&
			a.Reason != privacyv1.ReasonDryRunCompleted && a.Reason != privacyv1.ReasonSucceeded {
			evType = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, evType, a.Reason, typ, "%s", a.Message)
	}
}

// SetupWithManager registers the controller. A DataStore becoming Ready wakes
// the requests of its namespace that wait for it.
func (r *DataSubjectRequestReconciler) SetupWithManager(mgr manager.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.ControllerManagedBy(mgr).
		// Status writes must not retrigger a reconcile: retries are paced by RequeueAfter.
		For(&privacyv1.DataSubjectRequest{}, ctrl.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&privacyv1.DataStore{}, handler.EnqueueRequestsFromMapFunc(r.unfinishedRequestsOfNamespace)).
		Watches(&privacyv1.LegalHold{}, handler.EnqueueRequestsFromMapFunc(r.unfinishedRequestsOfNamespace), ctrl.WithPredicates(holdChanged)). // a released hold wakes the requests waiting on it
		Named("datasubjectrequest").
		Complete(r)
}

// unfinishedRequestsOfNamespace wakes the requests of a DataStore's namespace
// when the store changes (created, repaired, Ready again).
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
