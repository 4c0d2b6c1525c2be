package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/stores"
)

// What an engine is given for a request: the subject, the stores in scope,
// rectified values, legal minimum retention and legal holds.

var errInvalidSubject = errors.New("invalid subject")

// resolveSubject returns the subject's identities, inline or from the Secret.
func (r *DataSubjectRequestReconciler) resolveSubject(ctx context.Context, dsr *privacyv1.DataSubjectRequest) (map[string]string, error) {
	return resolveIdentities(ctx, r.APIReader, dsr.Namespace, dsr.Spec.Subject)
}

// secretValue is an identity as written in a Secret, less one trailing line
// break: `kubectl create secret --from-file` and `echo >` add one, and with it
// the identity matches nobody. Nothing else is changed (inline identities are
// taken exactly): "a@x.io " and "A@x.io" stay other people.
func secretValue(v []byte) string {
	s := strings.TrimSuffix(string(v), "\n")
	return strings.TrimSuffix(s, "\r")
}

func resolveIdentities(ctx context.Context, reader client.Reader, namespace string, s privacyv1.Subject) (map[string]string, error) {
	ids := map[string]string{}
	if s.IdentitiesFrom != nil {
		data, err := connector.ReadSecret(ctx, reader, namespace, s.IdentitiesFrom.SecretRef.Name)
		if err != nil {
			return nil, err
		}
		for k, v := range data {
			ids[k] = secretValue(v)
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
		(c.Reason == privacyv1.ReasonSchemaDrift || c.Reason == privacyv1.ReasonInvalidDataMap ||
			c.Reason == privacyv1.ReasonEgressRefused || c.Reason == privacyv1.ReasonConnectionRefused) {
		return fmt.Sprintf("DataStore is not ready (%s); see its status", c.Reason)
	}
	return ""
}

// storeRequest builds what the engine needs: identities, scope, legal minimum
// retention from RetentionPolicies and holds from active LegalHolds.
func (r *DataSubjectRequestReconciler) storeRequest(ctx context.Context, dsr *privacyv1.DataSubjectRequest, ds *privacyv1.DataStore, subject map[string]string) (stores.Request, error) {
	return requestInputs{cached: r.Client, direct: r.APIReader, now: r.Now}.storeRequest(ctx, dsr, ds, subject)
}

// requestInputs builds engine requests from a request, its store and the
// policies and holds in force now: the one place that does, for requests and
// for the replays of erasures a restore undid (datastore_replay.go).
type requestInputs struct {
	// cached reads RetentionPolicies; direct reads Secrets and LegalHolds.
	cached, direct client.Reader
	now            func() time.Time
	// policies, when set, are the exemptions and holds to use instead of
	// reading them (a replay check reads them once for many replays).
	policies *erasurePolicies
}

// erasurePolicies are what keeps rows from an erasure in a store: the legal
// minimum retention of its RetentionPolicies and the active LegalHolds.
type erasurePolicies struct {
	exemptions []stores.Exemption
	holds      []stores.Hold
}

// erasurePolicies reads the exemptions and holds in force in ds at now.
func (in requestInputs) erasurePolicies(ctx context.Context, ds *privacyv1.DataStore) (erasurePolicies, error) {
	var p erasurePolicies
	var err error
	now := in.now()
	if p.exemptions, err = storeExemptions(ctx, in.cached, ds, now); err != nil {
		return p, err
	}
	if p.holds, err = (holdResolver{in.direct}).forRequest(ctx, ds.Namespace, ds.Name, now); err != nil {
		return p, err
	}
	return p, nil
}

// storeRequest builds what the engine needs: identities, scope, legal minimum
// retention from RetentionPolicies and holds from active LegalHolds, at now.
func (in requestInputs) storeRequest(ctx context.Context, dsr *privacyv1.DataSubjectRequest, ds *privacyv1.DataStore, subject map[string]string) (stores.Request, error) {
	req := stores.Request{
		Kind:      stores.Kind(dsr.Spec.Type),
		Subject:   subject,
		RequestID: string(dsr.UID),
	}
	for _, c := range dsr.Spec.Scope.Categories {
		req.Scope.Categories = append(req.Scope.Categories, string(c))
	}
	if dsr.Spec.Type == privacyv1.RequestRectification && dsr.Spec.Rectification != nil {
		values, err := rectificationValues(ctx, in.direct, dsr)
		if err != nil {
			return req, err
		}
		req.Rectification = values
	}
	if dsr.Spec.Type != privacyv1.RequestErasure {
		return req, nil
	}
	p := in.policies
	if p == nil {
		read, err := in.erasurePolicies(ctx, ds)
		if err != nil {
			return req, err
		}
		p = &read
	}
	req.Exemptions, req.Holds = p.exemptions, p.holds
	return req, nil
}

func rectificationValues(ctx context.Context, reader client.Reader, dsr *privacyv1.DataSubjectRequest) (map[string]string, error) {
	rect := dsr.Spec.Rectification
	if rect.ValuesFrom == nil {
		return rect.Values, nil
	}
	data, err := connector.ReadSecret(ctx, reader, dsr.Namespace, rect.ValuesFrom.Name)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	for k, v := range data {
		values[k] = string(v)
	}
	return values, nil
}

// exemptions are the legal minimum retention of the store (storeExemptions).
func (r *DataSubjectRequestReconciler) exemptions(ctx context.Context, ds *privacyv1.DataStore) ([]stores.Exemption, error) {
	return storeExemptions(ctx, r, ds, r.Now())
}
