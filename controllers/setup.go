// Package controllers holds one thin reconciler per kind. They read objects,
// call engines through internal/connector, and write status; no SQL lives here.
package controllers

import (
	"context"
	"errors"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/lethe-dev/lethe/internal/connector"
)

// Options configure every controller.
type Options struct {
	Connector       *connector.Connector
	DigestKey       []byte
	ErasureDeadline time.Duration
	OtherDeadline   time.Duration
	// RetryBase is the first retry wait for unavailable stores (default 5s).
	RetryBase time.Duration
	// Now is the one clock of every controller; tests move it instead of
	// sleeping. SetupAll defaults it to time.Now.
	Now func() time.Time
	// DiscardIdentitiesAfter is how long after a request completes the
	// Secrets that handed it the subject's identities and rectified values
	// are deleted (0: at once). See FootprintReconciler.
	DiscardIdentitiesAfter time.Duration
	// MaxExportBytes is the budget of one Access export (default
	// DefaultMaxExportBytes); ExportPartBytes the most one export Secret
	// holds (default ExportPartBytes).
	MaxExportBytes  int64
	ExportPartBytes int
	// OperatorNamespace and ForgetKeySecret locate the age identity that
	// encrypts the forget lists (default "default" and
	// DefaultForgetKeySecret); it is created on first use.
	OperatorNamespace, ForgetKeySecret string
}

// errNoClock refuses a reconciler built without its clock: every controller
// reads time from Options.Now, so tests can move it, and none falls back to
// the wall clock on its own.
var errNoClock = errors.New("controllers: the reconciler has no clock (Now); SetupAll sets it from Options.Now")

// SetupAll registers every controller with the manager.
func SetupAll(mgr ctrl.Manager, o Options) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := setupIndexes(context.Background(), mgr); err != nil {
		return err
	}
	rec := mgr.GetEventRecorder("lethe")
	forget := &ForgetList{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), KeyNamespace: o.OperatorNamespace, KeySecret: o.ForgetKeySecret}
	if err := (&DataStoreReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Forget: forget, Connector: o.Connector, Recorder: rec, Now: o.Now,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := setupRetentionAndHolds(mgr, o, rec); err != nil { // RetentionPolicy and LegalHold controllers
		return err
	}
	if err := (&FootprintReconciler{ // what a completed request leaves of the subject: input Secrets, the export
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec, Now: o.Now, DiscardAfter: o.DiscardIdentitiesAfter,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&DataSubjectRequestReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Connector: o.Connector, Recorder: rec, Now: o.Now,
		DigestKey: o.DigestKey, ErasureDeadline: o.ErasureDeadline, OtherDeadline: o.OtherDeadline, RetryBase: o.RetryBase,
		MaxExportBytes: o.MaxExportBytes, ExportPartBytes: o.ExportPartBytes, Forget: forget,
	}).SetupWithManager(mgr)
}
