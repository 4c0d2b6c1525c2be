package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
