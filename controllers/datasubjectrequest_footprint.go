package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// A request's footprint: what the cluster holds of the subject because of the
// request once it is complete. Lethe removes it: the Secrets that handed it
// the subject's identities and rectified values (only those it is entitled
// to delete, once the operator's window has passed), and the Access export
// (once its TTL has passed). The receipt (status) says what became of each
// and when.

// footprintRecheck is how often a request whose input Secret another object
// still reads looks again (the end of that request or hold wakes it first).
const footprintRecheck = 5 * time.Minute

// FootprintReconciler removes the personal data a completed request leaves
// in the cluster. It only acts on complete requests; the request controller
// never writes them again, so the two never write the same status.
type FootprintReconciler struct {
	client.Client
	// APIReader reads Secrets and the request directly, past the cache.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Now       func() time.Time
	// DiscardAfter is how long after completion the input Secrets are
	// deleted (0: at once), for operators who need a window (a backup restore
	// replaying erasures needs the identities).
	DiscardAfter time.Duration
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=delete

// footprintNote is an Event to record once the status is saved.
type footprintNote struct {
	typ, reason, action, msg string
}

// Reconcile deletes what is due of one completed request's footprint and
// requeues for the rest.
func (r *FootprintReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	dsr := &privacyv1.DataSubjectRequest{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, dsr); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !isComplete(dsr) || !footprintPending(dsr) {
		return reconcile.Result{}, nil
	}
	before := dsr.DeepCopy()
	now := r.Now()
	var notes []footprintNote
	var next time.Time
	due := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}

	if inputsPending(dsr) {
		if dsr.Status.IdentitiesDiscardAfter == nil {
			at := metav1.NewTime(dsr.Status.CompletionTime.Add(r.DiscardAfter))
			dsr.Status.IdentitiesDiscardAfter = &at
		}
		if at := dsr.Status.IdentitiesDiscardAfter.Time; now.Before(at) {
			due(at)
		} else {
			notes = append(notes, r.discardInputs(ctx, dsr, now)...)
			if inputsPending(dsr) {
				due(now.Add(footprintRecheck))
			}
		}
	}

	if exportPending(dsr) {
		if dsr.Status.ExportExpiresAt == nil { // exported by an operator without expiry
			at, err := exportExpiry(dsr, dsr.Status.CompletionTime.Time)
			if err != nil {
				return reconcile.Result{}, err
			}
			dsr.Status.ExportExpiresAt = &at
		}
		if at := dsr.Status.ExportExpiresAt.Time; now.Before(at) {
			due(at)
		} else {
			note, err := r.expireExport(ctx, dsr, now)
			if err != nil {
				return reconcile.Result{}, err
			}
			notes = append(notes, note)
		}
	}

	if err := patchStatus(ctx, r.Client, dsr, before); err != nil {
		return reconcile.Result{}, err
	}
	if r.Recorder != nil {
		for _, n := range notes {
			r.Recorder.Eventf(dsr, nil, n.typ, n.reason, n.action, "%s", n.msg)
		}
	}
	if next.IsZero() {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{RequeueAfter: max(next.Sub(now), time.Second)}, nil
}

// inputRef is one Secret a request read personal data from.
type inputRef struct {
	name    string
	purpose privacyv1.InputPurpose
}

// inputRefs lists the Secrets the request read the subject's identities and
// rectified values from, each once.
func inputRefs(dsr *privacyv1.DataSubjectRequest) []inputRef {
	var refs []inputRef
	if f := dsr.Spec.Subject.IdentitiesFrom; f != nil {
		refs = append(refs, inputRef{f.SecretRef.Name, privacyv1.InputSubject})
	}
	if rect := dsr.Spec.Rectification; rect != nil && rect.ValuesFrom != nil &&
		!slices.ContainsFunc(refs, func(in inputRef) bool { return in.name == rect.ValuesFrom.Name }) {
		refs = append(refs, inputRef{rect.ValuesFrom.Name, privacyv1.InputRectification})
	}
	return refs
}

// readsSecret reports whether a request reads the named Secret.
func readsSecret(dsr *privacyv1.DataSubjectRequest, name string) bool {
	return slices.ContainsFunc(inputRefs(dsr), func(in inputRef) bool { return in.name == name })
}

func findInput(dsr *privacyv1.DataSubjectRequest, name string) *privacyv1.InputSecretOutcome {
	for i := range dsr.Status.InputSecrets {
		if dsr.Status.InputSecrets[i].Name == name {
			return &dsr.Status.InputSecrets[i]
		}
	}
	return nil
}

// settled is a state nothing more is done about.
func settled(s privacyv1.InputSecretState) bool { return s != privacyv1.InputWaiting && s != "" }

// inputsPending: a non-dry-run request has input Secrets not yet settled.
// Dry runs keep their Secrets: the real request usually follows with the same one.
func inputsPending(dsr *privacyv1.DataSubjectRequest) bool {
	if dsr.Spec.DryRun {
		return false
	}
	for _, in := range inputRefs(dsr) {
		if o := findInput(dsr, in.name); o == nil || !settled(o.State) {
			return true
		}
	}
	return false
}

func exportPending(dsr *privacyv1.DataSubjectRequest) bool {
	return dsr.Status.ExportSecretRef != nil && dsr.Status.ExportDeletedAt == nil
}

// footprintPending: something of the request's footprint is still to be removed.
func footprintPending(dsr *privacyv1.DataSubjectRequest) bool {
	return inputsPending(dsr) || exportPending(dsr)
}

// discardInputs deletes every input Secret Lethe may delete and nothing else
// needs, records what became of each, and returns the Events to record.
func (r *FootprintReconciler) discardInputs(ctx context.Context, dsr *privacyv1.DataSubjectRequest, now time.Time) []footprintNote {
	var notes []footprintNote
	var deleted []string
	for _, in := range inputRefs(dsr) {
		out := findInput(dsr, in.name)
		if out != nil && settled(out.State) {
			continue
		}
		state, msg := r.discardOne(ctx, dsr, in.name)
		if out == nil {
			dsr.Status.InputSecrets = append(dsr.Status.InputSecrets, privacyv1.InputSecretOutcome{Name: in.name, Purpose: in.purpose})
			out = &dsr.Status.InputSecrets[len(dsr.Status.InputSecrets)-1]
		}
		if out.State != state || out.Message != msg {
			t := metav1.NewTime(now)
			out.State, out.Message, out.Time = state, msg, &t
		}
		switch state {
		case privacyv1.InputDeleted:
			deleted = append(deleted, in.name)
		case privacyv1.InputKept:
			notes = append(notes, footprintNote{corev1.EventTypeWarning, privacyv1.ReasonSecretKept, "Discard",
				fmt.Sprintf("Secret %s (%s) was not deleted: %s", in.name, strings.ToLower(string(in.purpose)), msg)})
		}
	}
	if inputsPending(dsr) {
		return notes
	}
	discarded := true
	for _, o := range dsr.Status.InputSecrets {
		discarded = discarded && o.State != privacyv1.InputKept
	}
	if discarded && dsr.Status.IdentitiesDiscardedAt == nil {
		t := metav1.NewTime(now)
		dsr.Status.IdentitiesDiscardedAt = &t
		msg := "no Secret handed to the request holds the subject's personal data any more"
		if len(deleted) > 0 {
			msg = fmt.Sprintf("deleted Secret(s) %s: %s", strings.Join(deleted, ", "), msg)
		}
		notes = append(notes, footprintNote{corev1.EventTypeNormal, privacyv1.ReasonIdentitiesDiscarded, "Discard", msg})
	}
	return notes
}

// discardOne deletes one input Secret if Lethe is entitled to and nothing
// else reads it. Messages name objects, never the Secret's content.
func (r *FootprintReconciler) discardOne(ctx context.Context, dsr *privacyv1.DataSubjectRequest, name string) (privacyv1.InputSecretState, string) {
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: dsr.Namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return privacyv1.InputGone, ""
		}
		return privacyv1.InputWaiting, "cannot read it (" + string(apierrors.ReasonForError(err)) + "); retried"
	}
	if !entitledToDelete(sec, dsr) {
		return privacyv1.InputKept, fmt.Sprintf("it has neither the label %s=true nor an owner reference to this request, so Lethe may not delete it; delete it yourself when it is no longer needed", privacyv1.ConsumeLabel)
	}
	if store, err := r.storeUsing(ctx, dsr.Namespace, name); err != nil {
		return privacyv1.InputWaiting, "cannot list the DataStores (" + string(apierrors.ReasonForError(err)) + "); retried"
	} else if store != "" {
		return privacyv1.InputKept, fmt.Sprintf("DataStore %s also uses it", store)
	}
	if reader, err := r.otherReader(ctx, dsr, name); err != nil {
		return privacyv1.InputWaiting, "cannot list the requests and holds (" + string(apierrors.ReasonForError(err)) + "); retried"
	} else if reader != "" {
		return privacyv1.InputWaiting, fmt.Sprintf("%s still reads it; it is deleted once nothing does", reader)
	}
	// Exactly the Secret checked above: a Secret replaced or relabelled since
	// is checked again on the next pass.
	err := r.Delete(ctx, sec, client.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion})
	switch {
	case err == nil:
		return privacyv1.InputDeleted, ""
	case apierrors.IsNotFound(err):
		return privacyv1.InputGone, ""
	default:
		return privacyv1.InputWaiting, "the API server refused to delete it (" + string(apierrors.ReasonForError(err)) + "); retried"
	}
}

// entitledToDelete: the Secret was handed over for this purpose, with the
// opt-in label or an owner reference to the request.
func entitledToDelete(sec *corev1.Secret, dsr *privacyv1.DataSubjectRequest) bool {
	if sec.Labels[privacyv1.ConsumeLabel] == "true" {
		return true
	}
	return slices.ContainsFunc(sec.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == dsr.UID })
}

// storeUsing names a DataStore of the namespace that uses the Secret, or "".
func (r *FootprintReconciler) storeUsing(ctx context.Context, namespace, name string) (string, error) {
	list := &privacyv1.DataStoreList{}
	if err := r.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return "", err
	}
	for _, ds := range list.Items {
		refs := []string{ds.Spec.Connection.SecretRef.Name}
		if k := ds.Spec.MaskingKeySecretRef; k != nil {
			refs = append(refs, k.Name)
		}
		if h := ds.Spec.Connection.HTTP; h != nil {
			if h.AuthorizationSecretRef != nil {
				refs = append(refs, h.AuthorizationSecretRef.Name)
			}
			if h.SigningSecretRef != nil {
				refs = append(refs, h.SigningSecretRef.Name)
			}
		}
		if slices.Contains(refs, name) {
			return ds.Name, nil
		}
	}
	return "", nil
}

// otherReader names another unfinished request, or a LegalHold, of the
// namespace that reads the Secret, or "".
func (r *FootprintReconciler) otherReader(ctx context.Context, dsr *privacyv1.DataSubjectRequest, name string) (string, error) {
	reqs := &privacyv1.DataSubjectRequestList{}
	if err := r.List(ctx, reqs, client.InNamespace(dsr.Namespace)); err != nil {
		return "", err
	}
	for i := range reqs.Items {
		o := &reqs.Items[i]
		if o.UID != dsr.UID && !isComplete(o) && o.DeletionTimestamp == nil && readsSecret(o, name) {
			return "request " + o.Name, nil
		}
	}
	holds := &privacyv1.LegalHoldList{}
	if err := r.List(ctx, holds, client.InNamespace(dsr.Namespace)); err != nil {
		return "", err
	}
	for _, h := range holds.Items {
		if s := h.Spec.Subject; s != nil && s.IdentitiesFrom != nil && s.IdentitiesFrom.SecretRef.Name == name {
			return "LegalHold " + h.Name, nil
		}
	}
	return "", nil
}

// exportTTL is the request's export TTL, or the default.
func exportTTL(dsr *privacyv1.DataSubjectRequest) privacyv1.Period {
	if e := dsr.Spec.Export; e != nil && e.TTL != "" {
		return e.TTL
	}
	return privacyv1.DefaultExportTTL
}

// exportExpiry is when an export written at t expires.
func exportExpiry(dsr *privacyv1.DataSubjectRequest, t time.Time) (metav1.Time, error) {
	at, err := exportTTL(dsr).After(t)
	if err != nil {
		return metav1.Time{}, fmt.Errorf("spec.export.ttl: %w", err)
	}
	return metav1.NewTime(at), nil
}

// expireExport deletes the export Secrets (every part of a split export),
// the TTL having passed.
func (r *FootprintReconciler) expireExport(ctx context.Context, dsr *privacyv1.DataSubjectRequest, now time.Time) (footprintNote, error) {
	names := []string{dsr.Status.ExportSecretRef.Name}
	if len(dsr.Status.ExportParts) > 0 {
		names = names[:0]
		for _, p := range dsr.Status.ExportParts {
			names = append(names, p.Name)
		}
	}
	var deleted, gone, others []string
	for _, name := range names {
		sec := &corev1.Secret{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: dsr.Namespace, Name: name}, sec)
		switch {
		case apierrors.IsNotFound(err):
			gone = append(gone, name)
		case err != nil:
			return footprintNote{}, err
		case !metav1.IsControlledBy(sec, dsr):
			// writeExport only ever writes a Secret the request controls: this
			// one is someone else's, created after the export was removed.
			others = append(others, name)
		default:
			if err := r.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); err != nil && !apierrors.IsNotFound(err) {
				return footprintNote{}, fmt.Errorf("deleting the expired export Secret %s: %w", name, err)
			}
			deleted = append(deleted, name)
		}
	}
	var said []string
	say := func(names []string, one, many string) {
		switch len(names) {
		case 0:
		case 1:
			said = append(said, fmt.Sprintf("Secret %s %s", names[0], one))
		default:
			said = append(said, fmt.Sprintf("Secrets %s %s", strings.Join(names, ", "), many))
		}
	}
	say(deleted, "was deleted", "were deleted")
	say(gone, "was already gone", "were already gone")
	say(others, "is no longer the request's export and was left alone", "are no longer the request's export and were left alone")
	msg := fmt.Sprintf("the export's TTL (%s) has passed: %s", exportTTL(dsr), strings.Join(said, "; "))
	t := metav1.NewTime(now)
	dsr.Status.ExportDeletedAt = &t
	return footprintNote{corev1.EventTypeNormal, privacyv1.ReasonExportExpired, "Expire", msg}, nil
}

// errNoFootprintClock: see errNoClock.
var errNoFootprintClock = errors.New("controllers: the footprint reconciler has no clock (Now)")

// SetupWithManager registers the controller. It sees a request once it is
// complete (the status write that completes it), and again when another
// request or a LegalHold changes, for the requests waiting until nothing else
// reads their Secret.
func (r *FootprintReconciler) SetupWithManager(mgr manager.Manager) error {
	if r.Now == nil {
		return errNoFootprintClock
	}
	pending := predicate.NewPredicateFuncs(func(o client.Object) bool {
		dsr, ok := o.(*privacyv1.DataSubjectRequest)
		return ok && isComplete(dsr) && footprintPending(dsr)
	})
	return builder.ControllerManagedBy(mgr).
		For(&privacyv1.DataSubjectRequest{}, builder.WithPredicates(pending)).
		Watches(&privacyv1.DataSubjectRequest{}, handler.EnqueueRequestsFromMapFunc(r.waitingRequests)).
		Watches(&privacyv1.LegalHold{}, handler.EnqueueRequestsFromMapFunc(r.waitingRequests)).
		Named("datasubjectrequest-footprint").
		Complete(r)
}

// waitingRequests are the completed requests of obj's namespace with an input
// Secret still waiting for another reader to finish.
func (r *FootprintReconciler) waitingRequests(ctx context.Context, obj client.Object) []reconcile.Request {
	list := &privacyv1.DataSubjectRequestList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexWaitingInput: "true"}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if dsr := &list.Items[i]; dsr.UID != obj.GetUID() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(dsr)})
		}
	}
	return reqs
}
