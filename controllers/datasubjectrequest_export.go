package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// export runs an Access request: every store's export goes into one Secret
// owned by the request. Exports are read-only, so a restart simply redoes them.
func (run *requestRun) export(ctx context.Context, targets []privacyv1.DataStore) (reconcile.Result, error) {
	// A key the export cannot be encrypted to stops the request before any
	// store is read: nothing personal is fetched for an answer that cannot go out.
	recipients, err := exportRecipients(run.dsr)
	if err != nil {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidExportRecipient, err.Error())
		return reconcile.Result{}, nil
	}
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
	key := ExportKey
	if len(recipients) > 0 {
		if body, err = encryptExport(body, recipients); err != nil {
			return reconcile.Result{}, err
		}
		key = ExportAgeKey
	}
	if len(body) > MaxExportBytes {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonExportTooLarge, fmt.Sprintf(
			"the export is %d bytes, more than the %d a Secret can hold; narrow spec.scope (stores or categories) and file one request per part",
			len(body), MaxExportBytes))
		return reconcile.Result{}, nil
	}
	expires, err := exportExpiry(run.dsr, run.r.Now())
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := run.r.writeExport(ctx, run.dsr, key, body, expires); err != nil {
		return reconcile.Result{}, err
	}
	run.dsr.Status.ExportSecretRef = &privacyv1.SecretReference{Name: exportSecretName(run.dsr)}
	run.dsr.Status.ExportEncrypted = len(recipients) > 0
	run.dsr.Status.ExportExpiresAt = &expires
	return run.conclude(0), nil
}

func (run *requestRun) exportOne(ctx context.Context, ds *privacyv1.DataStore, out *privacyv1.StoreOutcome, all map[string]stores.Export) time.Duration {
	lease, sreq, wait := run.prepare(ctx, ds, out)
	if lease == nil {
		return wait
	}
	defer lease.Release()
	data, res, err := lease.Store.Export(ctx, sreq)
	if err != nil {
		return run.storeError(out, err)
	}
	all[ds.Name] = data
	out.Collections = collectionOutcomes(res.Collections)
	out.Phase, out.Message = privacyv1.StoreCompleted, ""
	now := metav1.NewTime(run.r.Now())
	out.CompletionTime = &now
	return 0
}

func exportSecretName(dsr *privacyv1.DataSubjectRequest) string { return dsr.Name + "-export" }

const (
	// ExportAgeKey is the data key of an export encrypted to spec.export.recipients (age, binary format).
	ExportAgeKey = "export.json.age"
	// ExportExpiresAnnotation on the export Secret says when Lethe deletes it (RFC 3339).
	ExportExpiresAnnotation = "privacy.lethe.dev/expires-at"
)

// exportRecipients parses spec.export.recipients. The error says which key is
// wrong by its index only: the key identifies the requester.
func exportRecipients(dsr *privacyv1.DataSubjectRequest) ([]age.Recipient, error) {
	if dsr.Spec.Export == nil || len(dsr.Spec.Export.Recipients) == 0 {
		return nil, nil
	}
	out := make([]age.Recipient, 0, len(dsr.Spec.Export.Recipients))
	for i, key := range dsr.Spec.Export.Recipients {
		var rcpt age.Recipient
		var err error
		if strings.HasPrefix(string(key), "age1pq1") {
			rcpt, err = age.ParseHybridRecipient(string(key))
		} else {
			rcpt, err = age.ParseX25519Recipient(string(key))
		}
		if err != nil {
			return nil, fmt.Errorf("spec.export.recipients[%d] is not a valid age public key (wrong length or checksum: copy it again from age-keygen's output); nothing was read from the stores: file a new request with the right key", i)
		}
		out = append(out, rcpt)
	}
	// age refuses to mix post-quantum and classic recipients: find out now.
	w, err := age.Encrypt(io.Discard, out...)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("spec.export.recipients cannot be used together (age cannot encrypt to post-quantum age1pq1 and classic age1 keys at once); nothing was read from the stores: file a new request with keys of one kind")
	}
	return out, nil
}

// encryptExport encrypts the export to the recipients (age binary format).
func encryptExport(body []byte, recipients []age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return nil, fmt.Errorf("encrypting the export: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("encrypting the export: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypting the export: %w", err)
	}
	return buf.Bytes(), nil
}

// writeExport creates (or, after a restart, updates) the export Secret, owned
// by the request so deleting the request deletes the export. It holds the
// export under key (export.json, or export.json.age when encrypted) and says
// when it expires.
func (r *DataSubjectRequestReconciler) writeExport(ctx context.Context, dsr *privacyv1.DataSubjectRequest, key string, body []byte, expires metav1.Time) error {
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
	sec.Annotations = map[string]string{ExportExpiresAnnotation: expires.UTC().Format(time.RFC3339)}
	sec.Type = corev1.SecretTypeOpaque
	sec.Data = map[string][]byte{key: body}
	if err := controllerutil.SetControllerReference(dsr, sec, r.Scheme()); err != nil {
		return err
	}
	if sec.ResourceVersion == "" {
		return r.Create(ctx, sec)
	}
	return r.Update(ctx, sec)
}
