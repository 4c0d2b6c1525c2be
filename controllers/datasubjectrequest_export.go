package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
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

// export runs an Access request: every store's export is encoded, as its
// rows are read, into one JSON document (age-encrypted as it is written when
// the request names recipients), within the --max-export-bytes budget, and
// written to Secrets owned by the request: one when it fits, else parts of at
// most ExportPartBytes. Exports are read-only, so a restart simply redoes them.
func (run *requestRun) export(ctx context.Context, targets []privacyv1.DataStore) (reconcile.Result, error) {
	// A key the export cannot be encrypted to stops the request before any
	// store is read: nothing personal is fetched for an answer that cannot go out.
	recipients, err := exportRecipients(run.dsr)
	if err != nil {
		markStalled(run.conds(), run.gen(), privacyv1.ReasonInvalidExportRecipient, err.Error())
		return reconcile.Result{}, nil
	}
	// Stores in name order: the document reads as json.Marshal of a map would.
	sorted := slices.Clone(targets)
	slices.SortFunc(sorted, func(a, b privacyv1.DataStore) int { return strings.Compare(a.Name, b.Name) })
	// A store that fails after part of its data went into the document (and
	// through age, which cannot take it back) makes the document start again
	// without it; each store fails at most once, so this ends.
	failed := map[string]bool{}
	var out *exportOutput
	var retryAfter time.Duration
	for {
		out, err = run.newExportOutput(recipients)
		if err != nil {
			return reconcile.Result{}, err
		}
		restart := false
		retryAfter = 0
		for i := range sorted {
			ds := &sorted[i]
			if failed[ds.Name] {
				continue
			}
			wait, dirty, err := run.exportOne(ctx, ds, findStoreOutcome(run.dsr, ds.Name), out.doc)
			if errors.Is(err, stores.ErrExportTooLarge) {
				return run.exportTooLarge(err), nil
			}
			if err != nil {
				return reconcile.Result{}, err
			}
			if dirty {
				failed[ds.Name], restart = true, true
				break
			}
			if wait > 0 && (retryAfter == 0 || wait < retryAfter) {
				retryAfter = wait
			}
		}
		if !restart {
			break
		}
	}
	for _, o := range run.dsr.Status.Stores {
		if o.Phase != privacyv1.StoreCompleted && o.Phase != privacyv1.StoreFailed {
			return run.conclude(retryAfter), nil
		}
	}
	if err := out.close(); errors.Is(err, stores.ErrExportTooLarge) {
		return run.exportTooLarge(err), nil
	} else if err != nil {
		return reconcile.Result{}, err
	}
	expires, err := exportExpiry(run.dsr, run.r.Now())
	if err != nil {
		return reconcile.Result{}, err
	}
	key := ExportKey
	if len(recipients) > 0 {
		key = ExportAgeKey
	}
	names, err := run.r.writeExport(ctx, run.dsr, key, out.parts.parts, expires)
	if err != nil {
		return reconcile.Result{}, err
	}
	run.dsr.Status.ExportSecretRef = &privacyv1.SecretReference{Name: names[0]}
	run.dsr.Status.ExportParts = nil
	for _, n := range names {
		run.dsr.Status.ExportParts = append(run.dsr.Status.ExportParts, privacyv1.SecretReference{Name: n})
	}
	run.dsr.Status.ExportBytes = out.doc.Size()
	run.dsr.Status.ExportEncrypted = len(recipients) > 0
	run.dsr.Status.ExportExpiresAt = &expires
	return run.conclude(0), nil
}

// exportTooLarge stops a request whose export would pass the budget; err
// names the sizes and the collection, never a value.
func (run *requestRun) exportTooLarge(err error) reconcile.Result {
	markStalled(run.conds(), run.gen(), privacyv1.ReasonExportTooLarge, fmt.Sprintf(
		"%v (the manager's --max-export-bytes); nothing was written: narrow spec.scope (stores or categories) and file one request per part", err))
	return reconcile.Result{}
}

// exportOutput is where an export goes: the document, through age when
// encrypted, into Secret-sized parts held in memory (at most the budget).
type exportOutput struct {
	doc   *stores.Document
	enc   io.WriteCloser // nil in clear
	parts *exportParts
}

func (run *requestRun) newExportOutput(recipients []age.Recipient) (*exportOutput, error) {
	limit := run.r.MaxExportBytes
	if limit <= 0 {
		limit = DefaultMaxExportBytes
	}
	size := run.r.ExportPartBytes
	if size <= 0 {
		size = ExportPartBytes
	}
	out := &exportOutput{parts: &exportParts{size: size}}
	var sink io.Writer = out.parts
	if len(recipients) > 0 {
		enc, err := age.Encrypt(out.parts, recipients...)
		if err != nil {
			return nil, fmt.Errorf("encrypting the export: %w", err)
		}
		out.enc, sink = enc, enc
	}
	out.doc = stores.NewDocument(sink, limit)
	return out, nil
}

// close ends the document and, when encrypted, the age stream.
func (o *exportOutput) close() error {
	if err := o.doc.Close(); err != nil {
		return err
	}
	if o.enc != nil {
		if err := o.enc.Close(); err != nil {
			return fmt.Errorf("encrypting the export: %w", err)
		}
	}
	return nil
}

// exportParts cuts what is written into parts of at most size bytes.
type exportParts struct {
	size  int
	parts [][]byte
}

func (p *exportParts) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if len(p.parts) == 0 || len(p.parts[len(p.parts)-1]) == p.size {
			p.parts = append(p.parts, make([]byte, 0, min(p.size, 64<<10)))
		}
		last := &p.parts[len(p.parts)-1]
		k := min(len(b), p.size-len(*last))
		*last = append(*last, b[:k]...)
		b = b[k:]
	}
	return n, nil
}

// exportOne writes one store's export into doc. dirty reports a store that
// failed after some of its data was written; err is a failure of the
// document itself (ErrExportTooLarge: the budget is spent).
func (run *requestRun) exportOne(ctx context.Context, ds *privacyv1.DataStore, out *privacyv1.StoreOutcome, doc *stores.Document) (wait time.Duration, dirty bool, err error) {
	lease, sreq, wait := run.prepare(ctx, ds, out)
	if lease == nil {
		return wait, false, nil
	}
	defer lease.Release()
	section := doc.Store(ds.Name)
	res, err := streamExport(ctx, lease.Store, sreq, section)
	if err == nil {
		err = section.End()
	}
	if errors.Is(err, stores.ErrExportTooLarge) {
		out.Phase, out.Message = privacyv1.StoreFailed, err.Error()
		return 0, false, err
	}
	if err != nil {
		wait := run.storeError(out, err)
		return wait, section.Started() && out.Phase == privacyv1.StoreFailed, nil
	}
	out.Collections = collectionOutcomes(res.Collections)
	out.Phase, out.Message = privacyv1.StoreCompleted, ""
	now := metav1.NewTime(run.r.Now())
	out.CompletionTime = &now
	return 0, false, nil
}

// streamExport exports through w, streaming when the engine can.
func streamExport(ctx context.Context, s stores.Store, req stores.Request, w stores.ExportWriter) (stores.Result, error) {
	if st, ok := s.(stores.ExportStreamer); ok {
		return st.StreamExport(ctx, req, w)
	}
	data, res, err := s.Export(ctx, req)
	if err != nil {
		return res, err
	}
	for _, c := range slices.Sorted(maps.Keys(data)) {
		for _, row := range data[c] {
			if err := w.Row(c, row); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func exportSecretName(dsr *privacyv1.DataSubjectRequest) string { return dsr.Name + "-export" }

const (
	// ExportAgeKey is the data key of an export encrypted to spec.export.recipients (age, binary format).
	ExportAgeKey = "export.json.age"
	// ExportExpiresAnnotation on the export Secret says when Lethe deletes it (RFC 3339).
	ExportExpiresAnnotation = "privacy.lethe.dev/expires-at"
	// ExportPartAnnotation on each Secret of a split export is its index
	// (from 0), ExportPartsAnnotation the number of parts.
	ExportPartAnnotation  = "privacy.lethe.dev/export-part"
	ExportPartsAnnotation = "privacy.lethe.dev/export-parts"
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

// writeExport creates (or, after a restart, updates) the export Secrets,
// owned by the request so deleting the request deletes the export, and
// returns their names in order. One part is <request>-export; more are
// <request>-export-0, -1, …, each under the same key (export.json, or
// export.json.age when encrypted) and annotated with its index and the count.
// Every Secret says when it expires.
func (r *DataSubjectRequestReconciler) writeExport(ctx context.Context, dsr *privacyv1.DataSubjectRequest, key string, parts [][]byte, expires metav1.Time) ([]string, error) {
	if len(parts) == 0 {
		parts = [][]byte{nil} // an empty encrypted export cannot be; keep one Secret
	}
	names := make([]string, len(parts))
	for i, body := range parts {
		names[i] = exportPartName(dsr, i, len(parts))
		ann := map[string]string{ExportExpiresAnnotation: expires.UTC().Format(time.RFC3339)}
		if len(parts) > 1 {
			ann[ExportPartAnnotation] = strconv.Itoa(i)
			ann[ExportPartsAnnotation] = strconv.Itoa(len(parts))
		}
		if err := r.writeExportSecret(ctx, dsr, names[i], ann, key, body); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// exportPartName names part i of n.
func exportPartName(dsr *privacyv1.DataSubjectRequest, i, n int) string {
	if n == 1 {
		return exportSecretName(dsr)
	}
	return fmt.Sprintf("%s-%d", exportSecretName(dsr), i)
}

func (r *DataSubjectRequestReconciler) writeExportSecret(ctx context.Context, dsr *privacyv1.DataSubjectRequest, name string, ann map[string]string, key string, body []byte) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: dsr.Namespace}}
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
	sec.Annotations = ann
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
