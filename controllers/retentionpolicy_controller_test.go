package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connector"
)

func TestSweepDeletesAndAnonymizesExactlyTheRowsPastTheirPeriod(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	oldAccessLogs(t, db, 2, 5000, 1000, 366) // past 1y
	oldAccessLogs(t, db, 3, 6000, 100, 200)  // within it
	exec(t, db, `UPDATE accounts SET created_at = now() - INTERVAL '3 years' WHERE id IN (4, 5)`)
	deleted := make([]int, 0, 1000)
	for id := 5000; id < 6000; id++ {
		deleted = append(deleted, id)
	}
	others := map[string]string{
		"access_logs": fingerprint(t, db, "access_logs", deleted...),
		"accounts":    fingerprint(t, db, "accounts", 4, 5),
	}
	untouched := map[string]string{}
	for _, tbl := range []string{"billing_profiles", "invoices", "invoice_lines", "applications"} {
		untouched[tbl] = fingerprint(t, db, tbl)
	}

	logs := rule("access-logs-1y", "access_logs", "at", "1y", privacyv1.RetentionDelete)
	logs.BatchSize = int32p(128)
	dormant := rule("dormant-accounts-2y", "accounts", "created_at", "2y", privacyv1.RetentionAnonymize)
	p := policy(ns, "retention", logs, dormant)
	createCleaned(t, p)
	waitPolicy(t, p, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	if p.Status.NextRunTime == nil || p.Status.LastRunTime != nil {
		t.Fatalf("before its first hour: next %v, last %v", p.Status.NextRunTime, p.Status.LastRunTime)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 5000 AND id < 6000`); n != 1000 {
		t.Fatalf("swept before the schedule said so: %d of 1000 old logs left", n)
	}

	runSweep(t, p)
	if got := ruleStatus(p, "access-logs-1y"); got.RowsAffected != 1000 || got.RowsPastPeriod != 0 || got.RowsHeld != 0 {
		t.Errorf("access-logs-1y: %+v, want 1000 rows affected and no gap", got)
	}
	if got := ruleStatus(p, "dormant-accounts-2y"); got.RowsAffected != 2 || got.RowsPastPeriod != 0 {
		t.Errorf("dormant-accounts-2y: %+v, want 2 rows anonymized and no gap", got)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 5000 AND id < 6000`); n != 0 {
		t.Errorf("%d logs past their period left", n)
	}
	if got := fingerprint(t, db, "access_logs", deleted...); got != others["access_logs"] {
		t.Error("access logs within their period changed")
	}
	if got := fingerprint(t, db, "accounts", 4, 5); got != others["accounts"] {
		t.Error("accounts within their period changed")
	}
	for tbl, fp := range untouched {
		if fingerprint(t, db, tbl) != fp {
			t.Errorf("%s changed", tbl)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE id IN (4, 5) AND email LIKE 'erased-%@erased.invalid' AND name = '[redacted]' AND phone IS NULL`); n != 2 {
		t.Errorf("%d of the 2 dormant accounts anonymized", n)
	}
	if p.Status.Sweep != nil || p.Status.NextRunTime == nil || !p.Status.NextRunTime.After(p.Status.LastRunTime.Time) {
		t.Errorf("after the run: sweep %+v, last %v, next %v", p.Status.Sweep, p.Status.LastRunTime, p.Status.NextRunTime)
	}
	eventNote(t, p, privacyv1.ReasonSucceeded, "swept 1002 row(s) in 2 rule(s)")
	labels := map[string]string{"namespace": ns, "policy": "retention", "rule": "access-logs-1y"}
	if v := metricValue(t, "lethe_retention_rows_total", labels); v != 1000 {
		t.Errorf("lethe_retention_rows_total{rule=access-logs-1y} = %v, want 1000", v)
	}
	if v := metricValue(t, "lethe_retention_rows_past_period", labels); v != 0 {
		t.Errorf("lethe_retention_rows_past_period = %v, want 0", v)
	}
	if v := metricValue(t, "lethe_retention_last_success_timestamp_seconds", map[string]string{"namespace": ns, "policy": "retention"}); v != float64(p.Status.LastSuccessfulRunTime.Unix()) {
		t.Errorf("lethe_retention_last_success_timestamp_seconds = %v, want %d", v, p.Status.LastSuccessfulRunTime.Unix())
	}

	// The next run finds nothing to do.
	before := allFingerprints(t, db)
	runSweep(t, p)
	if got := ruleStatus(p, "access-logs-1y"); got.RowsAffected != 0 {
		t.Errorf("second run: %+v", got)
	}
	if fmt.Sprint(allFingerprints(t, db)) != fmt.Sprint(before) {
		t.Error("the second run changed the database")
	}
}

func TestDryRunCountsAndChangesNothing(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	oldAccessLogs(t, db, 2, 5000, 40, 400)
	before := allFingerprints(t, db)
	p := policy(ns, "retention", rule("access-logs-1y", "access_logs", "at", "1y", privacyv1.RetentionDelete))
	p.Spec.DryRun = true
	createCleaned(t, p)
	runSweep(t, p)
	if fmt.Sprint(allFingerprints(t, db)) != fmt.Sprint(before) {
		t.Fatal("a dry run changed the database")
	}
	got := ruleStatus(p, "access-logs-1y")
	if got.RowsAffected != 40 || got.RowsPastPeriod != 40 || !strings.Contains(got.Message, "dry run: 40 row(s) would be deleted") {
		t.Errorf("dry run: %+v", got)
	}
	if v := metricValue(t, "lethe_retention_rows_total", map[string]string{"namespace": ns}); v != 0 {
		t.Errorf("a dry run counted %v rows as swept", v)
	}

	// Turning the dry run off strengthens the policy: no justification needed.
	p.Spec.DryRun = false
	if err := k8s.Update(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	runSweep(t, p)
	if got := ruleStatus(p, "access-logs-1y"); got.RowsAffected != 40 || got.RowsPastPeriod != 0 {
		t.Errorf("after the dry run: %+v", got)
	}
}

// statusRecorder keeps every status a reconciler wrote.
type statusRecorder struct {
	mu     sync.Mutex
	status []privacyv1.RetentionPolicyStatus
}

func (s *statusRecorder) client() client.Client { return recordingClient{Client: k8s, rec: s} }

// recordingClient records the RetentionPolicy statuses it writes.
type recordingClient struct {
	client.Client
	rec *statusRecorder
}

func (c recordingClient) Status() client.SubResourceWriter {
	return recordingWriter{SubResourceWriter: c.Client.Status(), rec: c.rec}
}

type recordingWriter struct {
	client.SubResourceWriter
	rec *statusRecorder
}

func (w recordingWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	err := w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
	if p, ok := obj.(*privacyv1.RetentionPolicy); ok && err == nil {
		w.rec.mu.Lock()
		w.rec.status = append(w.rec.status, *p.Status.DeepCopy())
		w.rec.mu.Unlock()
	}
	return err
}

func (s *statusRecorder) last() privacyv1.RetentionPolicyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status[len(s.status)-1]
}

func TestSweepResumesWhereAStoppedOperatorLeftIt(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	oldAccessLogs(t, db, 2, 5000, 250, 400)
	exec(t, db, `INSERT INTO accounts (id, email, created_at) SELECT g, 'dormant' || g || '@x.io', now() - INTERVAL '3 years' FROM generate_series(100, 399) g`)
	logs := rule("access-logs-1y", "access_logs", "at", "1y", privacyv1.RetentionDelete)
	logs.BatchSize = int32p(100)
	dormant := rule("dormant-accounts-2y", "accounts", "created_at", "2y", privacyv1.RetentionAnonymize)
	dormant.BatchSize = int32p(100)
	p := policy(ns, "retention", logs, dormant)
	createCleaned(t, p)
	waitPolicy(t, p, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	// A first operator, two hours later, does one bounded slice of the run and
	// is stopped: 4 batches, the 3 of the first rule and 1 of the second.
	firstConn := connector.New(k8s, connector.Engines{Network: testdb.Loopback}.Open)
	defer firstConn.Close()
	rec := &statusRecorder{}
	first := &controllers.RetentionPolicyReconciler{
		Client: rec.client(), APIReader: k8s, Connector: firstConn,
		Now: func() time.Time { return clock.Now().Add(2 * time.Hour) }, MaxBatchesPerReconcile: 4,
	}
	eventually(t, 20*time.Second, func() error { // a conflict with the manager's first write is retried
		res, err := first.Reconcile(t.Context(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "retention"}})
		if err == nil && res.RequeueAfter > time.Second {
			return fmt.Errorf("the slice did not ask to continue at once: %+v", res)
		}
		return err
	})
	slice := rec.last()
	sw := slice.Sweep
	if sw == nil || len(sw.Completed) != 1 || sw.Completed[0].RowsAffected != 250 || sw.Rule != "dormant-accounts-2y" || sw.RowsAffected != 100 || sw.Cursor == "" {
		t.Fatalf("progress saved by the stopped operator: %+v", sw)
	}
	if strings.Contains(sw.Cursor, "dormant") || strings.Contains(sw.Cursor, "199") {
		t.Errorf("the cursor %q shows a key", sw.Cursor)
	}
	if c := apimeta.FindStatusCondition(slice.Conditions, privacyv1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue ||
		!strings.Contains(c.Message, "sweeping rule dormant-accounts-2y (2 of 2): 100 row(s) so far") {
		t.Errorf("Reconciling while the sweep is under way: %+v", c)
	}

	// The restarted operator (the suite's manager, on its own clock and
	// connections) resumes the same run from status.sweep: the first rule is
	// not run again, and the second continues after its cursor.
	poke(t, p)
	waitRunFinished(t, p)
	if !p.Status.LastSuccessfulRunTime.Equal(&sw.StartedAt) || !p.Status.LastRunTime.Equal(&sw.StartedAt) {
		t.Errorf("the run was restarted: started %v, finished run started %v", sw.StartedAt, p.Status.LastSuccessfulRunTime)
	}
	if got := ruleStatus(p, "access-logs-1y"); got.RowsAffected != 250 {
		t.Errorf("access-logs-1y: %+v, want the 250 rows the first operator deleted", got)
	}
	if got := ruleStatus(p, "dormant-accounts-2y"); got.RowsAffected != 300 || got.RowsPastPeriod != 0 {
		t.Errorf("dormant-accounts-2y: %+v, want 300 (100 before the stop, 200 after)", got)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 5000`); n != 0 {
		t.Errorf("%d old logs left", n)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE id >= 100 AND email NOT LIKE 'erased-%'`); n != 0 {
		t.Errorf("%d dormant accounts not anonymized", n)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE id < 100 AND email LIKE 'erased-%'`); n != 0 {
		t.Errorf("%d recent accounts anonymized", n)
	}
}

func TestErasureKeepsLegallyRetainedInvoicesAndSaysUntilWhen(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	for i := range ds.Spec.Collections {
		switch c := &ds.Spec.Collections[i]; c.Name {
		case "invoices", "invoice_lines": // erased, unless a legal minimum keeps them
			c.OnErasure, c.RetainReason = privacyv1.ErasureDelete, ""
		}
	}
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	invoices := rule("invoices-10y", "invoices", "issued_at", "10y", privacyv1.RetentionDelete)
	invoices.ExemptFromErasure, invoices.LegalBasis = true, "French Commercial Code, art. L123-22"
	createCleaned(t, policy(ns, "retention", invoices))
	var issued time.Time
	if err := db.QueryRow(`SELECT issued_at FROM invoices WHERE id = 10`).Scan(&issued); err != nil {
		t.Fatal(err)
	}

	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	// Invoice 10 (this year) is kept with its lines; invoice 11 (12 years old) is past its period.
	if got := count(t, db, `SELECT count(*) FROM invoices WHERE account_id = 1`); got != 1 || count(t, db, `SELECT count(*) FROM invoices WHERE id = 10`) != 1 {
		t.Errorf("invoices of the subject left: %d, want invoice 10 only", got)
	}
	if got := count(t, db, `SELECT count(*) FROM invoice_lines WHERE invoice_id IN (10, 11)`); got != 2 || count(t, db, `SELECT count(*) FROM invoice_lines WHERE id IN (10, 1010)`) != 2 {
		t.Errorf("invoice lines left: %d, want the 2 of invoice 10", got)
	}
	var kept *privacyv1.CollectionOutcome
	var deleted int64
	for _, s := range dsr.Status.Stores {
		for i, c := range s.Collections {
			switch {
			case c.Collection == "invoices" && c.Action == "retain":
				kept = &s.Collections[i]
			case c.Collection == "invoices" && c.Action == "delete":
				deleted += c.Rows
			}
		}
	}
	if kept == nil || kept.Rows != 1 || deleted != 1 {
		t.Fatalf("receipt for invoices: kept %+v, deleted %d; want 1 and 1", kept, deleted)
	}
	for _, want := range []string{"retention/invoices-10y", "French Commercial Code, art. L123-22", "10y"} {
		if !strings.Contains(kept.Reason, want) {
			t.Errorf("the receipt's reason %q does not say %q", kept.Reason, want)
		}
	}
	if until := issued.AddDate(10, 0, 0); kept.RetainedUntil == nil || !kept.RetainedUntil.Time.Equal(until.Truncate(time.Second)) {
		t.Errorf("retainedUntil = %v, want %v (issued + 10y)", kept.RetainedUntil, until)
	}
	assertNoPersonalData(t, dsr, "a_b@x.io", "Street 1")
}

func TestPolicyStatesInKstatusTerms(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)

	bad := policy(ns, "bad-schedule", rule("logs", "access_logs", "at", "1y", privacyv1.RetentionDelete))
	bad.Spec.Schedule = "61 3 * * *" // minute 61: well-formed, but no such time
	createCleaned(t, bad)
	waitPolicy(t, bad, metav1.ConditionFalse, privacyv1.ReasonInvalidSchedule)
	c := apimeta.FindStatusCondition(bad.Status.Conditions, privacyv1.ConditionStalled)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, `schedule "61 3 * * *" cannot be parsed`) {
		t.Errorf("Stalled = %+v", c)
	}
	bad.Spec.Schedule = "@hourly"
	if err := k8s.Update(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	waitPolicy(t, bad, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	if apimeta.FindStatusCondition(bad.Status.Conditions, privacyv1.ConditionStalled) != nil {
		t.Error("still Stalled once the schedule is fixed")
	}

	// suspend: Ready=True with reason Suspended (kstatus Current), nothing scheduled.
	suspended := policy(ns, "suspended", rule("logs", "access_logs", "at", "1y", privacyv1.RetentionDelete))
	suspended.Spec.Suspend = true
	createCleaned(t, suspended)
	waitPolicy(t, suspended, metav1.ConditionTrue, privacyv1.ReasonSuspended)
	if suspended.Status.NextRunTime != nil || suspended.Status.ObservedGeneration != suspended.Generation {
		t.Errorf("suspended: next %v, observed %d of %d", suspended.Status.NextRunTime, suspended.Status.ObservedGeneration, suspended.Generation)
	}
	runSweep(t, bad) // time passes; the suspended policy does not run
	poke(t, suspended)
	time.Sleep(time.Second) // a negative: give the controller a moment to (not) start a run
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(suspended), suspended); err != nil || suspended.Status.LastRunTime != nil {
		t.Errorf("a suspended policy ran: %v %v", suspended.Status.LastRunTime, err)
	}

	// A rule that does not fit the store stalls the policy and says why; the other rules run.
	mixed := policy(ns, "mixed",
		rule("sessions", "sessions", "at", "30d", privacyv1.RetentionDelete),
		rule("logs-by-ip", "access_logs", "ip", "30d", privacyv1.RetentionDelete),
		rule("logs", "access_logs", "at", "1y", privacyv1.RetentionDelete))
	createCleaned(t, mixed)
	advance(t, time.Hour+time.Minute)
	poke(t, mixed)
	waitPolicy(t, mixed, metav1.ConditionFalse, privacyv1.ReasonInvalidRule)
	c = apimeta.FindStatusCondition(mixed.Status.Conditions, privacyv1.ConditionReady)
	for _, want := range []string{"2 rule(s) cannot run", `no collection "sessions"`, `no date or timestamp column "ip"`} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("InvalidRule message %q does not say %q", c.Message, want)
		}
	}
	if !apimeta.IsStatusConditionTrue(mixed.Status.Conditions, privacyv1.ConditionStalled) || ruleStatus(mixed, "logs").Name != "logs" || mixed.Status.LastSuccessfulRunTime != nil {
		t.Errorf("mixed policy: %+v", mixed.Status)
	}
	assertEvent(t, mixed, privacyv1.ReasonInvalidRule)
}

// Admission (config/admission, tested in api/v1alpha1) decides what is weaker;
// the controller records each justification it let through, in status and in
// an Event, once.
func TestAcceptedWeakeningIsRecordedWithItsJustification(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	p := policy(ns, "retention", rule("access-logs-1y", "access_logs", "at", "1y", privacyv1.RetentionDelete))
	createCleaned(t, p)
	waitPolicy(t, p, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	p.Spec.Rules[0].After.Period = "2y"
	p.Spec.Rules[0].Action = privacyv1.RetentionAnonymize
	p.Spec.WeakeningJustification = "tax audit: logs kept 2 years, DPO ticket 17"
	if err := k8s.Update(t.Context(), p); err != nil {
		t.Fatalf("justified weakening refused: %v", err)
	}
	gen := p.Generation
	if note := eventNote(t, p, privacyv1.ReasonProtectionWeakened, fmt.Sprintf("generation %d accepted with a justification", gen)); !strings.Contains(note, "DPO ticket 17") {
		t.Errorf("event %q does not give the justification", note)
	}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if a := p.Status.AcceptedWeakenings; len(a) != 1 || a[0].Generation != gen || a[0].Justification != p.Spec.WeakeningJustification {
			return fmt.Errorf("acceptedWeakenings: %+v", a)
		}
		return nil
	})

	// A strengthening update keeps the justification: nothing new is recorded.
	p.Spec.Rules[0].After.Period = "6mo"
	if err := k8s.Update(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("generation %d not observed yet", p.Generation)
		}
		return nil
	})
	if a := p.Status.AcceptedWeakenings; len(a) != 1 {
		t.Errorf("a strengthening update was recorded as a weakening: %+v", a)
	}
}
