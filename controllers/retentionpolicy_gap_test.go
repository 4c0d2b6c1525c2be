package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// Run now, the exact compliance gap, children swept with their parents, and
// rows without a date.

// runNow sets the run-now annotation to value and waits until the run it
// starts has finished (whatever its outcome).
func runNow(t *testing.T, p *privacyv1.RetentionPolicy, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, privacyv1.AnnotationRunNow, value)
	if err := k8s.Patch(t.Context(), p, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("run-now %s: %v", p.Name, err)
	}
	eventually(t, 90*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if p.Status.LastRunNowValue != value || p.Status.Sweep != nil {
			return fmt.Errorf("run-now %q not done: handled %q, sweep %+v", value, p.Status.LastRunNowValue, p.Status.Sweep)
		}
		return nil
	})
}

// metricSeries counts the series of a metric whose labels include want.
func metricSeries(t *testing.T, name string, want map[string]string) int {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				if labelsInclude(m, want) {
					n++
				}
			}
		}
	}
	return n
}

// policyEvents lists the Events of a policy with reason.
func policyEvents(t *testing.T, p *privacyv1.RetentionPolicy, reason string) []eventsv1.Event {
	t.Helper()
	evs := &eventsv1.EventList{}
	if err := k8s.List(t.Context(), evs, client.InNamespace(p.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range evs.Items {
		if e.Regarding.Name == p.Name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func TestRetentionRunNowRunsOncePerValue(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	oldAccessLogs(t, db, 2, 5000, 20, 400)
	p := policy(ns, "retention", rule("access-logs-1y", "access_logs", "at", "1y", privacyv1.RetentionDelete))
	p.Spec.Schedule = "0 3 1 1 *" // once a year: only run-now runs it in this test
	createCleaned(t, p)
	waitPolicy(t, p, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	if p.Status.LastRunTime != nil {
		t.Fatalf("ran before its schedule: %v", p.Status.LastRunTime)
	}
	next := p.Status.NextRunTime.DeepCopy()

	runNow(t, p, "first")
	if got := ruleStatus(p, "access-logs-1y"); got.RowsAffected != 20 || got.RowsPastPeriod != 0 {
		t.Errorf("after run-now: %+v, want 20 rows deleted", got)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 5000`); n != 0 {
		t.Errorf("%d old logs left after run-now", n)
	}
	if p.Status.NextRunTime == nil || !p.Status.NextRunTime.Equal(next) {
		t.Errorf("run-now moved the schedule: next %v, was %v", p.Status.NextRunTime, next)
	}
	first := p.Status.LastRunTime.DeepCopy()

	// The same value again, reconciled directly (synchronously): no new run.
	oldAccessLogs(t, db, 2, 6000, 5, 400)
	conn := connector.New(k8s, connector.Engines{Network: testdb.Loopback}.Open)
	defer conn.Close()
	direct := &controllers.RetentionPolicyReconciler{
		Client: k8s, APIReader: k8s, Connector: conn, Now: func() time.Time { return clock.Now().Add(time.Minute) },
	}
	eventually(t, 20*time.Second, func() error { // a conflict with the manager's write is retried
		_, err := direct.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		return err
	})
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	if !p.Status.LastRunTime.Equal(first) || p.Status.Sweep != nil {
		t.Errorf("the same run-now value ran again: last run %v (was %v), sweep %+v", p.Status.LastRunTime, first, p.Status.Sweep)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 6000`); n != 5 {
		t.Errorf("the same run-now value swept again: %d of 5 new old logs left", n)
	}

	// A new value runs again.
	advance(t, time.Minute)
	runNow(t, p, "second")
	if p.Status.LastRunTime == nil || !p.Status.LastRunTime.After(first.Time) {
		t.Errorf("a new run-now value did not start a run: last run %v, first %v", p.Status.LastRunTime, first)
	}
	if got := ruleStatus(p, "access-logs-1y"); got.RowsAffected != 5 {
		t.Errorf("second run-now: %+v, want the 5 new old logs deleted", got)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 5000`); n != 0 {
		t.Errorf("%d old logs left after the second run-now", n)
	}
}

// TestRetentionGapEqualsASQLCountInEveryState: a rule that fails (a trigger
// refuses its deletes), held rows, a whole collection held, a rule that
// cannot be counted, then the same rules once they can run.
func TestRetentionGapEqualsASQLCountInEveryState(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	oldAccessLogs(t, db, 1, 7000, 10, 400) // the held subject's
	oldAccessLogs(t, db, 2, 7100, 30, 400) // someone else's
	exec(t, db, `UPDATE accounts SET created_at = now() - INTERVAL '3 years' WHERE id IN (4, 5)`)
	exec(t, db, `CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'logs are archived first' USING ERRCODE = 'check_violation'; END $$`)
	exec(t, db, `CREATE TRIGGER archive_first BEFORE DELETE ON access_logs FOR EACH ROW EXECUTE FUNCTION refuse_delete()`)
	create(t, secret(ns, "held-subject", map[string]string{"email": "a_b@x.io"}))
	onSubject := holdOn(ns, "on-subject", "held-subject", privacyv1.HeldCollection{Store: "app-db", Collection: "access_logs"})
	onAccounts := holdOn(ns, "on-accounts", "", privacyv1.HeldCollection{Store: "app-db", Collection: "accounts"})
	createCleaned(t, onSubject)
	createCleaned(t, onAccounts)

	p := policy(ns, "retention",
		rule("access-logs-1y", "access_logs", "at", "1y", privacyv1.RetentionDelete),
		rule("dormant-accounts-2y", "accounts", "created_at", "2y", privacyv1.RetentionAnonymize),
		rule("sessions-30d", "sessions", "at", "30d", privacyv1.RetentionDelete))
	p.Spec.Schedule = "0 3 1 1 *"
	createCleaned(t, p)
	waitPolicy(t, p, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	pastLogs := `SELECT count(*) FROM access_logs WHERE at < now() - INTERVAL '1 year'`
	heldLogs := `SELECT count(*) FROM access_logs WHERE at < now() - INTERVAL '1 year' AND account_id = 1`
	pastAccounts := `SELECT count(*) FROM accounts WHERE created_at < now() - INTERVAL '2 years'`
	labels := func(rule string) map[string]string {
		return map[string]string{"namespace": ns, "policy": "retention", "rule": rule}
	}

	runNow(t, p, "failing")
	waitPolicy(t, p, metav1.ConditionFalse, privacyv1.ReasonInvalidRule)
	logs := ruleStatus(p, "access-logs-1y")
	if want := int64(count(t, db, pastLogs)); want != 40 || logs.RowsPastPeriod != want || logs.CountedAt == nil {
		t.Errorf("failing rule: %+v, want rowsPastPeriod = %d (SQL), counted", logs, want)
	}
	if want := int64(count(t, db, heldLogs)); logs.RowsHeld != want || want != 10 {
		t.Errorf("failing rule: rowsHeld %d, want %d (SQL)", logs.RowsHeld, want)
	}
	if !strings.HasPrefix(logs.Message, "not run: ") || !strings.Contains(logs.Message, "check violation") {
		t.Errorf("failing rule's message: %q", logs.Message)
	}
	if v := metricValue(t, "lethe_retention_rows_past_period", labels("access-logs-1y")); v != 40 {
		t.Errorf("lethe_retention_rows_past_period of the failing rule = %v, want 40", v)
	}
	accounts := ruleStatus(p, "dormant-accounts-2y")
	if want := int64(count(t, db, pastAccounts)); want != 2 || accounts.RowsPastPeriod != want || accounts.RowsHeld != want {
		t.Errorf("whole collection held: %+v, want %d past their period, all held", accounts, want)
	}
	sessions := ruleStatus(p, "sessions-30d")
	if sessions.CountedAt != nil || !strings.Contains(sessions.Message, "not counted") {
		t.Errorf("a rule that cannot be counted: %+v, want no count and a message saying so", sessions)
	}
	if n := metricSeries(t, "lethe_retention_rows_past_period", labels("sessions-30d")); n != 0 {
		t.Errorf("a gap nobody counted is exported (%d series)", n)
	}
	if v := metricValue(t, "lethe_retention_policy_stalled", map[string]string{"namespace": ns, "policy": "retention"}); v != 1 {
		t.Errorf("lethe_retention_policy_stalled = %v, want 1", v)
	}

	// The same failure again: a Warning with the failure's reason, and never Succeeded.
	advance(t, time.Minute)
	runNow(t, p, "failing-again")
	eventNote(t, p, privacyv1.ReasonInvalidRule, "run started "+p.Status.LastRunTime.UTC().Format(time.RFC3339))
	for _, e := range policyEvents(t, p, privacyv1.ReasonSucceeded) {
		if strings.Contains(e.Note, "swept") {
			t.Errorf("a run in which a rule failed is reported Succeeded: %q", e.Note)
		}
	}

	// The failure fixed and the unknown rule removed: the gap is what the
	// holds keep, still equal to SQL.
	exec(t, db, `DROP TRIGGER archive_first ON access_logs`)
	eventually(t, 20*time.Second, func() error { // retried over the manager's status writes
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		p.Spec.Rules = p.Spec.Rules[:2]
		p.Spec.WeakeningJustification = "sessions are not in this store"
		return k8s.Update(t.Context(), p)
	})
	advance(t, time.Minute)
	runNow(t, p, "fixed")
	waitPolicy(t, p, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	logs = ruleStatus(p, "access-logs-1y")
	if want := int64(count(t, db, pastLogs)); want != 10 || logs.RowsAffected != 30 || logs.RowsPastPeriod != want || logs.RowsHeld != want {
		t.Errorf("after the fix: %+v, want 30 deleted and the %d held rows as the gap", logs, want)
	}
	if v := metricValue(t, "lethe_retention_rows_past_period", labels("access-logs-1y")); v != 10 {
		t.Errorf("lethe_retention_rows_past_period = %v, want 10 (held)", v)
	}
	if n := metricSeries(t, "lethe_retention_rows_past_period", labels("sessions-30d")); n != 0 {
		t.Errorf("the removed rule still has %d series", n)
	}
	if v := metricValue(t, "lethe_retention_policy_stalled", map[string]string{"namespace": ns, "policy": "retention"}); v != 0 {
		t.Errorf("lethe_retention_policy_stalled = %v, want 0", v)
	}
	eventNote(t, p, privacyv1.ReasonSucceeded, "swept 30 row(s) in 2 rule(s)")
}

func TestRetentionRowsWithoutDateAreCounted(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	exec(t, db, `ALTER TABLE accounts ADD COLUMN closed_at timestamptz`)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	exec(t, db, `UPDATE accounts SET closed_at = now() - INTERVAL '40 days' WHERE id = 4`)
	exec(t, db, `UPDATE accounts SET closed_at = now() - INTERVAL '10 days' WHERE id = 5`)
	p := policy(ns, "retention", rule("closed-accounts-30d", "accounts", "closed_at", "30d", privacyv1.RetentionAnonymize))
	createCleaned(t, p)
	runSweep(t, p)
	got := ruleStatus(p, "closed-accounts-30d")
	if want := int64(count(t, db, `SELECT count(*) FROM accounts WHERE closed_at IS NULL`)); want != 3 || got.RowsWithoutDate != want {
		t.Errorf("rowsWithoutDate = %d, want %d (SQL)", got.RowsWithoutDate, want)
	}
	if got.RowsAffected != 1 || got.RowsPastPeriod != 0 {
		t.Errorf("closed-accounts-30d: %+v, want 1 anonymized and no gap", got)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE closed_at IS NULL AND email LIKE 'erased-%'`); n != 0 {
		t.Errorf("%d accounts without a date were anonymized", n)
	}
	if v := metricValue(t, "lethe_retention_rows_without_date", map[string]string{"namespace": ns, "rule": "closed-accounts-30d"}); v != 3 {
		t.Errorf("lethe_retention_rows_without_date = %v, want 3", v)
	}
	c := apimeta.FindStatusCondition(p.Status.Conditions, privacyv1.ConditionReady)
	if c == nil || !strings.Contains(c.Message, "3 row(s) without a date") {
		t.Errorf("Ready does not mention the rows without a date: %+v", c)
	}
}

// invoiceStore is the fixture with invoices and their lines erased (not
// retained), lines as linesAction says.
func invoiceStore(t *testing.T, ns string, linesAction privacyv1.ErasureAction) *privacyv1.DataStore {
	t.Helper()
	ds := fixtureStore(ns, "app-db", "app-db")
	for i := range ds.Spec.Collections {
		switch c := &ds.Spec.Collections[i]; c.Name {
		case "invoices":
			c.OnErasure, c.RetainReason = privacyv1.ErasureDelete, ""
		case "invoice_lines":
			c.OnErasure, c.RetainReason = linesAction, ""
			if linesAction == privacyv1.ErasureRetain {
				c.RetainReason = "lines are kept for the tax audit"
			}
		}
	}
	return ds
}

// TestRetentionParentRuleSweepsItsChildren: invoices past 10 years go with
// their lines, counted per collection in status, the counts surviving an
// operator stopped mid-run; a held line keeps its invoice, and says why.
func TestRetentionParentRuleSweepsItsChildren(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := invoiceStore(t, ns, privacyv1.ErasureDelete)
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	create(t, secret(ns, "held-subject", map[string]string{"email": "a_b@x.io"}))
	createCleaned(t, holdOn(ns, "lines-of-a-b", "held-subject", privacyv1.HeldCollection{Store: "app-db", Collection: "invoice_lines"}))

	invoices := rule("invoices-10y", "invoices", "issued_at", "10y", privacyv1.RetentionDelete)
	invoices.BatchSize = int32p(2)
	p := policy(ns, "retention", invoices)
	createCleaned(t, p)
	waitPolicy(t, p, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	expired := `SELECT count(*) FROM invoices WHERE issued_at < now() - INTERVAL '10 years'`
	if n := count(t, db, expired); n != 5 {
		t.Fatalf("fixture: %d expired invoices, want 5", n)
	}

	// A first operator does one batch (2 invoices, 4 lines) and stops.
	firstConn := connector.New(k8s, connector.Engines{Network: testdb.Loopback}.Open)
	defer firstConn.Close()
	rec := &statusRecorder{}
	first := &controllers.RetentionPolicyReconciler{
		Client: rec.client(), APIReader: k8s, Connector: firstConn,
		Now: func() time.Time { return clock.Now().Add(2 * time.Hour) }, MaxBatchesPerReconcile: 1,
	}
	eventually(t, 20*time.Second, func() error {
		_, err := first.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		return err
	})
	sw := rec.last().Sweep
	if sw == nil || sw.RowsAffected < 1 || sw.RowsAffected > 2 || sw.BatchesDone || len(sw.Children) != 1 ||
		sw.Children[0] != (privacyv1.ChildRows{Collection: "invoice_lines", Action: "delete", Rows: 2 * sw.RowsAffected}) {
		t.Fatalf("progress of the stopped operator after one batch of 2: %+v", sw)
	}

	// The manager resumes the run.
	advance(t, 2*time.Hour)
	poke(t, p)
	waitRunFinished(t, p)
	got := ruleStatus(p, "invoices-10y")
	if got.RowsAffected != 4 {
		t.Errorf("invoices-10y: %+v, want 4 invoices deleted (the held subject's kept)", got)
	}
	if len(got.Children) != 1 || got.Children[0] != (privacyv1.ChildRows{Collection: "invoice_lines", Action: "delete", Rows: 8}) {
		t.Errorf("children: %+v, want the 8 lines of the 4 invoices deleted", got.Children)
	}
	if len(got.Kept) != 1 || got.Kept[0].Rows != 1 || !strings.Contains(got.Kept[0].Reason, "invoice_lines") {
		t.Errorf("kept: %+v, want the held subject's invoice, naming invoice_lines", got.Kept)
	}
	if want := int64(count(t, db, expired)); want != 1 || got.RowsPastPeriod != want {
		t.Errorf("rowsPastPeriod %d, want %d (SQL)", got.RowsPastPeriod, want)
	}
	if n := count(t, db, `SELECT count(*) FROM invoice_lines WHERE invoice_id = 11`); n != 2 {
		t.Errorf("held lines deleted: %d of 2 left", n)
	}
	if n := count(t, db, `SELECT count(*) FROM invoice_lines l WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = l.invoice_id)`); n != 0 {
		t.Errorf("%d orphan lines", n)
	}
	if n := count(t, db, `SELECT count(*) FROM invoices`); n != 6 {
		t.Errorf("%d invoices left, want the 5 recent ones and the held one", n)
	}
}

// TestRetentionRetainedChildKeepsItsParent: lines the map retains keep their
// invoices; the status says so and the gap counts them.
func TestRetentionRetainedChildKeepsItsParent(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := invoiceStore(t, ns, privacyv1.ErasureRetain)
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	before := allFingerprints(t, db)
	p := policy(ns, "retention", rule("invoices-10y", "invoices", "issued_at", "10y", privacyv1.RetentionDelete))
	createCleaned(t, p)
	runSweep(t, p)
	got := ruleStatus(p, "invoices-10y")
	if got.RowsAffected != 0 || len(got.Children) != 0 {
		t.Errorf("invoices-10y: %+v, want nothing deleted", got)
	}
	if len(got.Kept) != 1 || got.Kept[0].Rows != 5 || !strings.Contains(got.Kept[0].Reason, "invoice_lines") {
		t.Errorf("kept: %+v, want the 5 invoices kept for their retained lines", got.Kept)
	}
	if got.RowsPastPeriod != 5 {
		t.Errorf("rowsPastPeriod %d, want 5", got.RowsPastPeriod)
	}
	if fmt.Sprint(allFingerprints(t, db)) != fmt.Sprint(before) {
		t.Error("the database changed")
	}
}

// partitionedSchema: events partitioned by range on at. January 2020 lies
// wholly before any cutoff of a year; February 2020 too, but holds a held
// subject's row; the rest straddles every cutoff.
const partitionedSchema = `
CREATE TABLE events (id bigint NOT NULL, user_id bigint NOT NULL, note text, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2020_01 PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
CREATE TABLE events_2020_02 PARTITION OF events FOR VALUES FROM ('2020-02-01') TO ('2020-03-01');
CREATE TABLE events_later PARTITION OF events FOR VALUES FROM ('2020-03-01') TO ('2200-01-01');
INSERT INTO events SELECT g, g, 'n', timestamptz '2020-01-10' FROM generate_series(1, 5) g;
INSERT INTO events VALUES (6, 6, 'n', '2020-02-10'), (7, 7, 'n', '2020-02-11');
INSERT INTO events SELECT g, g, 'n', timestamptz '2021-06-01' FROM generate_series(8, 10) g;
INSERT INTO events SELECT g, g, 'n', now() FROM generate_series(11, 12) g;
`

func TestRetentionDropsWholePartitionsAndSaysWhichItKept(t *testing.T) {
	ns := env.Namespace(t)
	dsn := testdb.NewPostgres(t)
	db := openDB(t, dsn)
	exec(t, db, partitionedSchema)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-db"},
		Spec: privacyv1.DataStoreSpec{
			Engine:              privacyv1.EnginePostgres,
			Connection:          privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "app-db", Key: "dsn"}},
			MaskingKeySecretRef: &privacyv1.SecretKeySelector{Name: "app-db", Key: "maskingKey"},
			Collections: []privacyv1.Collection{{
				Name: "events", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields:   []privacyv1.Field{{Name: "note", Category: "user.notes", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}}},
			}},
		},
	}
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	create(t, secret(ns, "held-subject", map[string]string{"userId": "7"}))
	createCleaned(t, holdOn(ns, "user-7", "held-subject", privacyv1.HeldCollection{Store: "app-db", Collection: "events"}))

	p := policy(ns, "retention", rule("events-1y", "events", "at", "1y", privacyv1.RetentionDelete))
	createCleaned(t, p)
	runSweep(t, p)
	got := ruleStatus(p, "events-1y")
	parts := got.Partitions
	if parts == nil || parts.DroppedCount != 1 || len(parts.Dropped) != 1 || parts.Dropped[0].Name != "events_2020_01" || parts.DroppedRows != 5 {
		t.Fatalf("partitions: %+v, want events_2020_01 (5 rows) dropped", parts)
	}
	if parts.KeptCount != 1 || len(parts.Kept) != 1 || parts.Kept[0].Name != "events_2020_02" || parts.Kept[0].Reason == "" {
		t.Errorf("kept partitions: %+v, want events_2020_02 with a reason", parts.Kept)
	}
	if n := count(t, db, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass AND inhrelid = 'events_2020_02'::regclass`); n != 1 {
		t.Error("the partition with a held row was detached")
	}
	// 5 rows dropped with their partition, 4 by row batches (6, and 8 to 10).
	if got.RowsAffected != 9 {
		t.Errorf("rowsAffected %d, want 9", got.RowsAffected)
	}
	if want := int64(count(t, db, `SELECT count(*) FROM events WHERE at < now() - INTERVAL '1 year'`)); want != 1 || got.RowsPastPeriod != want || got.RowsHeld != 1 {
		t.Errorf("gap %d (%d held), want %d (SQL), the held row", got.RowsPastPeriod, got.RowsHeld, want)
	}
	if n := count(t, db, `SELECT count(*) FROM events WHERE id IN (7, 11, 12)`); n != 3 {
		t.Errorf("%d of the held and recent rows left, want 3", n)
	}
	labels := map[string]string{"namespace": ns, "policy": "retention", "rule": "events-1y"}
	if v := metricValue(t, "lethe_retention_partitions_dropped_total", labels); v != 1 {
		t.Errorf("lethe_retention_partitions_dropped_total = %v, want 1", v)
	}
	if got.Table == nil {
		t.Errorf("no table health for a PostgreSQL table: %+v", got)
	} else if n := metricSeries(t, "lethe_retention_table_dead_rows", labels); n != 1 {
		t.Errorf("lethe_retention_table_dead_rows has %d series, want 1", n)
	}
}
