package controllers_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/audit"
)

var fixtureTables = []string{"accounts", "billing_profiles", "invoices", "invoice_lines", "access_logs", "applications"}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// readyStore creates the fixture database, its Secret and DataStore, and waits for Ready.
func readyStore(t *testing.T, ns string) (*sql.DB, *privacyv1.DataStore) {
	t.Helper()
	db, dsn := fixtureDB(t)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	return db, ds
}

func request(ns, name string, typ privacyv1.RequestType, subjectSecret string) *privacyv1.DataSubjectRequest {
	return &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataSubjectRequestSpec{
			Type:    typ,
			Subject: privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: subjectSecret}}},
		},
	}
}

func allFingerprints(t *testing.T, db *sql.DB) map[string]string {
	fps := map[string]string{}
	for _, tbl := range fixtureTables {
		fps[tbl] = fingerprint(t, db, tbl)
	}
	return fps
}

// outcome is a collection's outcome in a store: its own action (the links
// cleared in it, setNull, only when it has nothing else).
func outcome(dsr *privacyv1.DataSubjectRequest, store, collection string) privacyv1.CollectionOutcome {
	found := privacyv1.CollectionOutcome{Action: "absent"}
	for _, s := range dsr.Status.Stores {
		if s.Store != store {
			continue
		}
		for _, c := range s.Collections {
			if c.Collection == collection && c.Action != "setNull" {
				return c
			}
			if c.Collection == collection {
				found = c
			}
		}
	}
	return found
}

// accountsWithoutLinksTo fingerprints the other accounts as erasing account
// id must leave them: unchanged but for referred_by, cleared where it
// referred to id.
func accountsWithoutLinksTo(t *testing.T, db *sql.DB, id int) string {
	t.Helper()
	var fp string
	q := `SELECT md5(string_agg((a.id, a.email, a.name, a.phone, NULLIF(a.referred_by, $1))::text, '|' ORDER BY a.id)) FROM accounts a WHERE a.id <> $1`
	if err := db.QueryRow(q, id).Scan(&fp); err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestErasureChangesExactlyTheSubjectsRowsAndIsIdempotent(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	// Subject 1 owns: account 1, billing profile 1, invoices 10-11, lines 10,11,1010,1011, logs 100-102, application 1.
	links := count(t, db, `SELECT count(*) FROM accounts WHERE referred_by = 1 AND id <> 1`)
	others := map[string]string{
		"accounts":         accountsWithoutLinksTo(t, db, 1),
		"billing_profiles": fingerprint(t, db, "billing_profiles", 1),
		"invoices":         fingerprint(t, db, "invoices"),
		"invoice_lines":    fingerprint(t, db, "invoice_lines", 10, 11, 1010, 1011),
		"access_logs":      fingerprint(t, db, "access_logs", 100, 101, 102),
		"applications":     fingerprint(t, db, "applications"),
	}

	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	for tbl, fp := range others {
		except := map[string][]int{"billing_profiles": {1}, "invoice_lines": {10, 11, 1010, 1011}, "access_logs": {100, 101, 102}}[tbl]
		if tbl == "accounts" {
			if accountsWithoutLinksTo(t, db, 1) != fp {
				t.Errorf("other accounts: changed beyond their links to the erased account cleared")
			}
			continue
		}
		if fingerprint(t, db, tbl, except...) != fp {
			t.Errorf("rows of other subjects changed in %s", tbl)
		}
	}
	// The anonymized account is erased as a person: the accounts it referred
	// no longer link to it, and the receipt counts the links cleared.
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE referred_by = 1`); links == 0 || n != 0 {
		t.Errorf("links to the erased account: %d before, %d left", links, n)
	}
	for _, c := range dsr.Status.Stores[0].Collections {
		if c.Collection == "accounts" && c.Action == "setNull" && c.Rows != int64(links) {
			t.Errorf("receipt: accounts setNull %d, want %d", c.Rows, links)
		}
	}
	// anonymize: the account row stays, its personal fields are masked.
	var email, name string
	var phone sql.NullString
	if err := db.QueryRow(`SELECT email, name, phone FROM accounts WHERE id = 1`).Scan(&email, &name, &phone); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^erased-[0-9a-f]+@erased\.invalid$`).MatchString(email) || name != "[redacted]" || phone.Valid {
		t.Errorf("account 1 after erasure: email=%q name=%q phone=%v", email, name, phone)
	}
	// delete: billing profile and access logs gone; retain: invoices kept; customer content untouched.
	if n := count(t, db, `SELECT count(*) FROM billing_profiles WHERE account_id = 1`); n != 0 {
		t.Errorf("billing profile of the subject not deleted (%d left)", n)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != 0 {
		t.Errorf("access logs of the subject not deleted (%d left)", n)
	}
	if n := count(t, db, `SELECT count(*) FROM invoices WHERE account_id = 1`); n != 2 {
		t.Errorf("retained invoices: %d, want 2", n)
	}
	if n := count(t, db, `SELECT count(*) FROM invoice_lines WHERE invoice_id IN (10, 11) AND description = '[redacted]'`); n != 4 {
		t.Errorf("anonymized invoice lines (three levels down): %d, want 4", n)
	}
	if n := count(t, db, `SELECT count(*) FROM applications WHERE account_id = 1`); n != 1 {
		t.Errorf("customer content touched: %d application rows left, want 1", n)
	}

	// The receipt says what happened, per collection, and why rows were kept.
	want := map[string]struct {
		action string
		rows   int64
	}{
		"accounts": {"anonymize", 1}, "billing_profiles": {"delete", 1}, "invoices": {"retain", 2},
		"invoice_lines": {"anonymize", 4}, "access_logs": {"delete", 3},
	}
	for coll, w := range want {
		got := outcome(dsr, "app-db", coll)
		if got.Action != w.action || got.Rows != w.rows {
			t.Errorf("receipt for %s: %s %d rows, want %s %d", coll, got.Action, got.Rows, w.action, w.rows)
		}
	}
	if r := outcome(dsr, "app-db", "invoices").Reason; !strings.Contains(r, "accounting") {
		t.Errorf("retained invoices reason = %q", r)
	}
	if got := outcome(dsr, "app-db", "applications"); got.Action != "absent" && got.Rows != 0 {
		t.Errorf("customer content in the receipt: %+v", got)
	}
	if want := audit.SubjectDigest(digestKey, map[string]string{"email": "a_b@x.io"}); dsr.Status.SubjectDigest != want {
		t.Errorf("subjectDigest = %q, want %q", dsr.Status.SubjectDigest, want)
	}
	if !strings.HasPrefix(dsr.Status.ReceiptDigest, "sha256:") || dsr.Status.CompletionTime == nil || dsr.Status.Deadline == nil {
		t.Errorf("receipt incomplete: %+v", dsr.Status)
	}
	if c := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionDeadlineExceeded); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("DeadlineExceeded = %+v, want False", c)
	}
	assertNoPersonalData(t, dsr, "a_b@x.io", "Name a_b@x.io", "Strasbourg 1")
	assertEvent(t, dsr, privacyv1.ReasonCompleted)

	// The same erasure again changes nothing: the person is no longer
	// there to be found, and the request says so.
	before := allFingerprints(t, db)
	again := request(ns, "erase-again", privacyv1.RequestErasure, "subject")
	create(t, again)
	waitRequest(t, again, metav1.ConditionTrue, privacyv1.ReasonSubjectNotFound)
	if after := allFingerprints(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("second erasure changed the database:\nbefore %v\nafter  %v", before, after)
	}
}

func TestDryRunChangesNothingAndPredictsTheApply(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	before := allFingerprints(t, db)
	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io"}))

	plan := request(ns, "plan", privacyv1.RequestErasure, "subject")
	plan.Spec.DryRun = true
	create(t, plan)
	waitRequest(t, plan, metav1.ConditionTrue, privacyv1.ReasonDryRunCompleted)
	if after := allFingerprints(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("dry run changed the database")
	}

	apply := request(ns, "apply", privacyv1.RequestErasure, "subject")
	create(t, apply)
	waitRequest(t, apply, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	for _, coll := range []string{"accounts", "billing_profiles", "invoices", "invoice_lines", "access_logs"} {
		p, a := outcome(plan, "app-db", coll), outcome(apply, "app-db", coll)
		if p.Rows != a.Rows || p.Action != a.Action || a.Rows == 0 {
			t.Errorf("%s: planned %s %d, applied %s %d", coll, p.Action, p.Rows, a.Action, a.Rows)
		}
	}
}

func TestAccessExportsOnlyTheSubjectsRowsToAnOwnedSecret(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io"}))
	dsr := request(ns, "access", privacyv1.RequestAccess, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	if dsr.Status.ExportSecretRef == nil {
		t.Fatal("no exportSecretRef")
	}
	sec := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: dsr.Status.ExportSecretRef.Name}, sec); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(sec, dsr) {
		t.Error("export Secret is not owned by the request")
	}
	var export map[string]map[string][]map[string]any
	if err := json.Unmarshal(sec.Data[controllers.ExportKey], &export); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	store := export["app-db"]
	if len(store["accounts"]) != 1 || store["accounts"][0]["email"] != "axb@x.io" {
		t.Errorf("accounts export = %v, want only axb@x.io's row", store["accounts"])
	}
	if len(store["access_logs"]) != 3 || len(store["invoices"]) != 2 || len(store["invoice_lines"]) != 4 {
		t.Errorf("export sizes: logs %d invoices %d lines %d", len(store["access_logs"]), len(store["invoices"]), len(store["invoice_lines"]))
	}
	raw := string(sec.Data[controllers.ExportKey])
	for _, other := range []string{"a_b@x.io", "A_B@x.io", "zoë@x.io", "git@example.com"} {
		if strings.Contains(raw, other) {
			t.Errorf("export contains %q, which is not the subject's (or is customer content)", other)
		}
	}
	assertNoPersonalData(t, dsr, "axb@x.io", "Name axb@x.io")
}

func TestRectificationUpdatesOnlyTheSubject(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	others := fingerprint(t, db, "accounts", 5)
	create(t, secret(ns, "subject", map[string]string{"email": "zoë@x.io"}))
	create(t, secret(ns, "new-values", map[string]string{"user.contact.name": "Zoë Dupont"}))
	dsr := request(ns, "rectify", privacyv1.RequestRectification, "subject")
	dsr.Spec.Rectification = &privacyv1.Rectification{ValuesFrom: &privacyv1.SecretReference{Name: "new-values"}}
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	var name string
	if err := db.QueryRow(`SELECT name FROM accounts WHERE id = 5`).Scan(&name); err != nil || name != "Zoë Dupont" {
		t.Errorf("rectified name = %q (%v)", name, err)
	}
	if fingerprint(t, db, "accounts", 5) != others {
		t.Error("rectification changed other accounts")
	}
	if got := outcome(dsr, "app-db", "accounts"); got.Action != "rectify" || got.Rows != 1 {
		t.Errorf("receipt: %+v", got)
	}
	assertNoPersonalData(t, dsr, "zoë@x.io", "Zoë Dupont")
}

func TestUnavailableStoreIsRetriedUntilItReturns(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	// Nothing listens on port 1: the store is down.
	down := strings.Replace(dsn, "127.0.0.1:5432", "127.0.0.1:1", 1)
	if down == dsn {
		t.Fatalf("unexpected DSN shape")
	}
	create(t, secret(ns, "app-db", map[string]string{"dsn": down, "maskingKey": "k"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	create(t, ds)
	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)

	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonStoreUnavailable)
	if c := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Reconciling = %+v while waiting for the store", c)
	}
	if apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) {
		t.Error("an unavailable store must not stall the request")
	}
	waitStore(t, ds, metav1.ConditionFalse, privacyv1.ReasonStoreUnavailable)
	// Retries back off (200ms, 400ms, 800ms, ...): a status write must not
	// retrigger an immediate retry, or a down store would be hammered.
	time.Sleep(2 * time.Second)
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
		t.Fatal(err)
	}
	if a := dsr.Status.Stores[0].Attempts; a > 8 {
		t.Errorf("%d attempts in about 2s: retries are not backing off", a)
	}

	// The store comes back.
	sec := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "app-db"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["dsn"] = []byte(dsn)
	if err := k8s.Update(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != 0 {
		t.Errorf("erasure after recovery left %d access logs", n)
	}
	if s := dsr.Status.Stores[0]; s.Attempts < 2 {
		t.Errorf("attempts = %d, want retries recorded", s.Attempts)
	}
}

func TestSchemaDriftIsReportedPreciselyAndHoldsRequests(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	exec(t, db, `ALTER TABLE accounts DROP COLUMN phone`)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "k"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	create(t, ds)
	waitStore(t, ds, metav1.ConditionFalse, privacyv1.ReasonSchemaDrift)
	msg := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionReady).Message
	if !strings.Contains(msg, "accounts.phone") {
		t.Errorf("drift message does not name accounts.phone: %q", msg)
	}
	if len(ds.Status.SchemaProblems) != 1 || ds.Status.SchemaProblems[0].Field != "phone" {
		t.Errorf("schemaProblems = %+v", ds.Status.SchemaProblems)
	}
	if !apimeta.IsStatusConditionTrue(ds.Status.Conditions, privacyv1.ConditionStalled) {
		t.Error("drift should stall the DataStore until the schema or the map changes")
	}

	before := allFingerprints(t, db)
	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
			return err
		}
		if len(dsr.Status.Stores) != 1 || !strings.Contains(dsr.Status.Stores[0].Message, "SchemaDrift") {
			return fmt.Errorf("stores = %+v", dsr.Status.Stores)
		}
		return nil
	})
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonStoreNotReady)
	if fmt.Sprint(allFingerprints(t, db)) != fmt.Sprint(before) {
		t.Error("a request acted on a drifted store")
	}
}

func TestRequestCannotReachAStoreOfAnotherNamespace(t *testing.T) {
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	db, _ := readyStore(t, nsB)
	before := allFingerprints(t, db)
	create(t, secret(nsA, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(nsA, "erase", privacyv1.RequestErasure, "subject")
	dsr.Spec.Scope.Stores = []privacyv1.StoreName{"app-db"}
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonStoreNotFound)

	unscoped := request(nsA, "erase-all", privacyv1.RequestErasure, "subject")
	create(t, unscoped)
	waitRequest(t, unscoped, metav1.ConditionFalse, privacyv1.ReasonNoStoresInScope)
	if fmt.Sprint(allFingerprints(t, db)) != fmt.Sprint(before) {
		t.Error("a request acted on another namespace's store")
	}
}

func TestUnknownIdentityTypeStallsWithAClearReason(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	dsr := request(ns, "erase", privacyv1.RequestErasure, "")
	dsr.Spec.Subject = privacyv1.Subject{Identities: privacyv1.Identities{"stripeId": "cus_123"}}
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonInvalidSubject)
	c := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionReady)
	if !strings.Contains(c.Message, "stripeId") || !strings.Contains(c.Message, "email") || strings.Contains(c.Message, "cus_123") {
		t.Errorf("message = %q", c.Message)
	}
	if !apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) {
		t.Error("an unknown identity type cannot be fixed by retrying: want Stalled")
	}
}

func TestMissedDeadlineIsReported(t *testing.T) {
	ns := env.Namespace(t)
	_, dsn := fixtureDB(t)
	down := strings.Replace(dsn, "127.0.0.1:5432", "127.0.0.1:1", 1)
	create(t, secret(ns, "app-db", map[string]string{"dsn": down, "maskingKey": "k"}))
	create(t, fixtureStore(ns, "app-db", "app-db"))
	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	dsr.Spec.Deadline = "1h"
	create(t, dsr)
	waitForCondition(t, dsr, func() []metav1.Condition { return dsr.Status.Conditions }, privacyv1.ConditionDeadlineExceeded, metav1.ConditionFalse, privacyv1.ReasonWithinDeadline)
	if d := dsr.Status.Deadline.Sub(dsr.CreationTimestamp.Time); d != time.Hour {
		t.Errorf("deadline = creation + %s, want 1h", d)
	}

	clock.Advance(2 * time.Hour)
	t.Cleanup(func() { clock.Advance(-2 * time.Hour) })
	waitForCondition(t, dsr, func() []metav1.Condition { return dsr.Status.Conditions }, privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonDeadlineExceeded)
	assertEvent(t, dsr, privacyv1.ReasonDeadlineExceeded)
}

// assertNoPersonalData fails if any value appears in the request's status or events.
func assertNoPersonalData(t *testing.T, dsr *privacyv1.DataSubjectRequest, values ...string) {
	t.Helper()
	status, _ := json.Marshal(dsr.Status)
	evs := &eventsv1.EventList{}
	if err := k8s.List(t.Context(), evs, client.InNamespace(dsr.Namespace)); err != nil {
		t.Fatal(err)
	}
	all := string(status)
	for _, e := range evs.Items {
		all += e.Note + e.Reason
	}
	for _, v := range values {
		if strings.Contains(all, v) {
			t.Errorf("personal data %q found in status or events", v)
		}
	}
}

func assertEvent(t *testing.T, obj client.Object, reason string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		evs := &eventsv1.EventList{}
		if err := k8s.List(t.Context(), evs, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == obj.GetName() && e.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no %s event for %s among %d", reason, obj.GetName(), len(evs.Items))
	})
}

func TestAccessExportTooLargeForASecretStallsWithAClearReason(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	// 1.2 MB of name: more than a Secret can hold.
	exec(t, db, `UPDATE accounts SET name = repeat('x', 1200000) WHERE id = 2`)
	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io"}))
	dsr := request(ns, "access", privacyv1.RequestAccess, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonExportTooLarge)
	msg := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionReady).Message
	if !strings.Contains(msg, "narrow spec.scope") {
		t.Errorf("message does not say what to do: %q", msg)
	}
	// The suite's --max-export-bytes is 1 MiB: the message names it and how far the export got.
	if !strings.Contains(msg, "the limit of 1048576 bytes") || !strings.Contains(msg, "bytes encoded") || strings.Contains(msg, "xxxx") {
		t.Errorf("message does not name the size reached and the limit, or quotes a value: %q", msg)
	}
	if !apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) {
		t.Error("want Stalled: retrying cannot make the export fit")
	}
	err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "access-export"}, &corev1.Secret{})
	if err == nil {
		t.Error("a truncated export Secret was written")
	}

	// Narrowing the scope to contact e-mails makes it fit.
	narrow := request(ns, "access-email", privacyv1.RequestAccess, "subject")
	narrow.Spec.Scope.Categories = []privacyv1.Category{"user.contact.email"}
	create(t, narrow)
	waitRequest(t, narrow, metav1.ConditionTrue, privacyv1.ReasonCompleted)
}
