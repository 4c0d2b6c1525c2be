package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/audit"
	"github.com/lethe-dev/lethe/internal/connector"
)

// LegalHoldReconciler reports whether each LegalHold is in force, whose data it
// holds (as a keyed digest) and which requests wait on it. The holding itself is
// done where data is erased or swept: the DataSubjectRequest and
// RetentionPolicy controllers read the active holds before every change.
//
// Ready is True while the hold is in force (reason Succeeded) and after it
// expired (reason Expired, status.active false): in both cases the object is in
// the state its spec asks for. A hold whose subject Secret cannot be read is
// Ready=False, Reconciling=True (SecretNotFound): requests and sweeps that
// might touch its data wait meanwhile, so it holds anyway.
type LegalHoldReconciler struct {
	client.Client
	// APIReader reads the Secrets of subjects.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Now       func() time.Time
	// DigestKey keys the subject digest, as for requests: equal digests mean the same subject.
	DigestKey []byte
}

// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=legalholds,verbs=get;list;watch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=legalholds/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=privacy.lethe.dev,resources=datasubjectrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// SetupWithManager registers the controller. Requests starting or ending to
// wait on a hold update the holds of their namespace.
func (r *LegalHoldReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		return errNoClock
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&privacyv1.LegalHold{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&privacyv1.DataSubjectRequest{}, handler.EnqueueRequestsFromMapFunc(r.holdsOfNamespace), builder.WithPredicates(waitingOnHoldChanged)).
		Named("legalhold").
		Complete(r)
}

func (r *LegalHoldReconciler) holdsOfNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	list := &privacyv1.LegalHoldList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// waitingOnHoldChanged passes request events that may change a hold's
// blockedRequests: a request starting or ending to wait on a hold, or deleted.
var waitingOnHoldChanged = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool { return waitsOnHold(e.Object) },
	DeleteFunc: func(event.DeleteEvent) bool { return true },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return waitsOnHold(e.ObjectOld) != waitsOnHold(e.ObjectNew) || !slices.Equal(holdsWaitedOn(e.ObjectOld), holdsWaitedOn(e.ObjectNew))
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

func waitsOnHold(obj client.Object) bool {
	dsr, ok := obj.(*privacyv1.DataSubjectRequest)
	return ok && !isComplete(dsr) && apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionOnLegalHold)
}

// holdChanged passes the LegalHold events that may release (or newly hold)
// data: a hold created or deleted, its spec changed, or its expiry observed.
// Requests waiting on holds are woken by them (DataSubjectRequest controller).
var holdChanged = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return true },
	DeleteFunc: func(event.DeleteEvent) bool { return true },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*privacyv1.LegalHold)
		n, ok2 := e.ObjectNew.(*privacyv1.LegalHold)
		return !ok1 || !ok2 || o.Generation != n.Generation || o.Status.Active != n.Status.Active
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// Reconcile updates one hold's status.
func (r *LegalHoldReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	h := &privacyv1.LegalHold{}
	if err := r.Get(ctx, req.NamespacedName, h); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	before := h.DeepCopy()
	result, err := r.observe(ctx, h)
	h.Status.ObservedGeneration = h.Generation
	recordConditionTransitions(r.Recorder, h, before.Status.Conditions, h.Status.Conditions)
	if perr := patchStatus(ctx, r.Client, h, before); perr != nil {
		return reconcile.Result{}, perr
	}
	return result, err
}

func (r *LegalHoldReconciler) observe(ctx context.Context, h *privacyv1.LegalHold) (reconcile.Result, error) {
	now := r.Now()
	conds, gen := &h.Status.Conditions, h.Generation
	h.Status.Active = HoldActive(h, now)

	if h.Spec.Subject != nil {
		ids, err := resolveIdentities(ctx, r.APIReader, h.Namespace, *h.Spec.Subject)
		switch {
		case errors.Is(err, connector.ErrSecret):
			markProgressing(conds, gen, privacyv1.ReasonSecretNotFound,
				err.Error()+"; requests and sweeps that might touch the subject's data wait until it can be read")
			return reconcile.Result{RequeueAfter: storeRetryInterval}, nil
		case errors.Is(err, errInvalidSubject):
			markStalled(conds, gen, privacyv1.ReasonInvalidSubject, err.Error())
			return reconcile.Result{RequeueAfter: recheckStalled}, nil
		case err != nil:
			return reconcile.Result{}, err
		}
		h.Status.SubjectDigest = audit.SubjectDigest(r.DigestKey, ids)
	} else {
		h.Status.SubjectDigest = ""
	}

	h.Status.BlockedRequests = nil
	if h.Status.Active {
		blocked, err := r.blockedRequests(ctx, h)
		if err != nil {
			return reconcile.Result{}, err
		}
		h.Status.BlockedRequests = blocked
	}

	if !h.Status.Active {
		if h.Spec.ExpiresAt != nil && !now.Before(h.Spec.ExpiresAt.Time) {
			markReady(conds, gen, privacyv1.ReasonExpired, fmt.Sprintf("expired at %s: the hold holds nothing any more", timeText(h.Spec.ExpiresAt.Time)))
		}
		return reconcile.Result{}, nil // otherwise being deleted: released
	}
	until := "until it is deleted"
	var result reconcile.Result
	if h.Spec.ExpiresAt != nil {
		until = "until " + timeText(h.Spec.ExpiresAt.Time)
		result.RequeueAfter = h.Spec.ExpiresAt.Sub(now) + time.Second
	}
	msg := fmt.Sprintf("in force %s on %s; %d request(s) wait on it", until, holdScope(h), len(h.Status.BlockedRequests))
	markReady(conds, gen, privacyv1.ReasonSucceeded, msg)
	return result, nil
}

func holdScope(h *privacyv1.LegalHold) string {
	var parts []string
	for _, c := range h.Spec.Collections {
		if c.Collection == "" {
			parts = append(parts, "store "+string(c.Store))
		} else {
			parts = append(parts, string(c.Store)+"/"+string(c.Collection))
		}
	}
	what := "every store of the namespace"
	if len(parts) > 0 {
		what = strings.Join(parts, ", ")
	}
	if h.Spec.Subject != nil {
		return "the subject's data in " + what
	}
	return "all data in " + what
}

// blockedRequests names the unfinished requests of the hold's namespace that
// wait on it: a store's engine reported that this hold keeps some of the
// subject's rows (status.stores[].heldBy), as it decided by rows.
func (r *LegalHoldReconciler) blockedRequests(ctx context.Context, h *privacyv1.LegalHold) ([]string, error) {
	list := &privacyv1.DataSubjectRequestList{}
	if err := r.List(ctx, list, client.InNamespace(h.Namespace)); err != nil {
		return nil, err
	}
	var out []string
	for i := range list.Items {
		if dsr := &list.Items[i]; waitsOnHold(dsr) && heldBy(dsr, h.Name) {
			out = append(out, dsr.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// holdsWaitedOn lists the holds the stores of a request report, in store order.
func holdsWaitedOn(obj client.Object) []string {
	dsr, ok := obj.(*privacyv1.DataSubjectRequest)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range dsr.Status.Stores {
		out = append(out, s.HeldBy...)
	}
	return out
}

// heldBy reports whether a store of the request waits on the named hold.
func heldBy(dsr *privacyv1.DataSubjectRequest, hold string) bool {
	for _, s := range dsr.Status.Stores {
		if s.Phase == privacyv1.StoreOnLegalHold && slices.Contains(s.HeldBy, hold) {
			return true
		}
	}
	return false
}
