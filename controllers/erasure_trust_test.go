package controllers_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/audit"
)

// A request never changes whose data it acts on: the subject Secret edited
// while the request waits (here on a hold) stalls it, and the new person's
// rows are untouched.
func TestEditedSubjectSecretNeverChangesWhoIsErased(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	create(t, secret(ns, "held-subject", map[string]string{"email": "a_b@x.io"}))
	hold := holdOn(ns, "case-1", "held-subject", privacyv1.HeldCollection{Store: "app-db", Collection: "access_logs"})
	createCleaned(t, hold)
	waitHold(t, hold, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonOnLegalHold)
	before := fingerprint(t, db, "access_logs", 1)
	otherBilling := count(t, db, `SELECT count(*) FROM billing_profiles WHERE account_id = 2`)

	// Someone edits the Secret to another person, then the hold ends.
	sec := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "subject"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"email": []byte("axb@x.io")}
	if err := k8s.Update(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(t.Context(), hold); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonSubjectChanged)
	if !apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) {
		t.Error("a changed subject cannot be fixed by retrying: want Stalled")
	}
	if got := fingerprint(t, db, "access_logs", 1); got != before {
		t.Error("another subject's access logs changed")
	}
	if n := count(t, db, `SELECT count(*) FROM billing_profiles WHERE account_id = 2`); n != otherBilling {
		t.Errorf("the new subject's billing profiles went from %d to %d", otherBilling, n)
	}
	assertNoPersonalData(t, dsr, "axb@x.io")
}

// A DataStore deleted while a request still has work in it ends that
// store's outcome (Removed) and stalls the request with a reason, instead of
// leaving it Pending forever.
func TestDataStoreRemovedMidRequestEndsItsOutcome(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	// A second store that never becomes reachable: nothing listens on port 1.
	create(t, secret(ns, "down", map[string]string{"dsn": "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", "maskingKey": "k"}))
	down := fixtureStore(ns, "down", "down")
	create(t, down)

	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonStoreUnavailable)

	if err := k8s.Delete(t.Context(), down); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonStoreRemoved)
	phases := map[string]privacyv1.StorePhase{}
	for _, o := range dsr.Status.Stores {
		phases[o.Store] = o.Phase
	}
	if phases["app-db"] != privacyv1.StoreCompleted || phases["down"] != privacyv1.StoreRemoved {
		t.Errorf("store phases = %v, want app-db Completed and down Removed", phases)
	}
	if !apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) || dsr.Status.CompletionTime != nil {
		t.Errorf("a request with a removed store is neither complete nor waiting: conditions %+v", dsr.Status.Conditions)
	}
}

// A Secret written with `kubectl create secret --from-file` ends its value
// with a line break: it is the person all the same. A subject that matches
// nothing anywhere completes, but says so (SubjectNotFound, a Warning Event)
// rather than looking like a successful erasure.
func TestTrailingNewlineAndUnknownSubjects(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	create(t, secret(ns, "from-file", map[string]string{"email": "a_b@x.io\n"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "from-file")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if n := count(t, db, `SELECT count(*) FROM billing_profiles WHERE account_id = 1`); n != 0 {
		t.Errorf("the subject of a Secret value with a trailing newline was not erased (%d billing profiles left)", n)
	}
	if dsr.Status.SubjectDigest != audit.SubjectDigest(digestKey, map[string]string{"email": "a_b@x.io"}) {
		t.Error("the digest is not the digest of the identity without its line break")
	}

	before := allFingerprints(t, db)
	create(t, secret(ns, "nobody", map[string]string{"email": "nobody@x.io"}))
	unknown := request(ns, "erase-nobody", privacyv1.RequestErasure, "nobody")
	create(t, unknown)
	waitRequest(t, unknown, metav1.ConditionTrue, privacyv1.ReasonSubjectNotFound)
	if unknown.Status.CompletionTime == nil {
		t.Error("SubjectNotFound is a completion: want a completion time")
	}
	if fmt.Sprint(allFingerprints(t, db)) != fmt.Sprint(before) {
		t.Error("a subject nobody has changed the database")
	}
	assertEvent(t, unknown, privacyv1.ReasonSubjectNotFound)
	assertNoPersonalData(t, unknown, "nobody@x.io")
}

// The journal: a store Lethe may create tables in records each request's
// passes (Journal=True, receipts journaled, lethe_journal rows); a role that
// may change the mapped tables but not create one gets Journal=False with
// JournalUnavailable, and its requests still run, counted pass by pass.
func TestJournalConditionAndFallback(t *testing.T) {
	ns := env.Namespace(t)
	db, ds := readyStore(t, ns)
	if c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionJournal); c == nil || c.Status != metav1.ConditionTrue || c.Reason != privacyv1.ReasonJournalReady {
		t.Fatalf("Journal condition of a writable store: %+v", c)
	}
	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if !dsr.Status.Stores[0].Journaled {
		t.Errorf("the receipt of a journaled store is not journaled: %+v", dsr.Status.Stores[0])
	}
	if n := count(t, db, `SELECT count(*) FROM lethe_journal WHERE request_uid = $1`, string(dsr.UID)); n != 1 {
		t.Errorf("lethe_journal holds %d rows for the request, want 1", n)
	}

	// Another namespace, the same kind of database, reached as a role that
	// cannot create tables.
	ns2 := env.Namespace(t)
	db2, dsn := fixtureDB(t)
	role := "lethe_ro_" + strings.ReplaceAll(ns2, "-", "_")
	exec(t, db2, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { _, _ = db2.Exec(`DROP OWNED BY ` + role); _, _ = db2.Exec(`DROP ROLE ` + role) })
	exec(t, db2, `GRANT SELECT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO `+role)
	exec(t, db2, `REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	create(t, secret(ns2, "app-db", map[string]string{"dsn": u.String(), "maskingKey": "store-masking-key"}))
	ro := fixtureStore(ns2, "app-db", "app-db")
	create(t, ro)
	waitStore(t, ro, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	c := apimeta.FindStatusCondition(ro.Status.Conditions, privacyv1.ConditionJournal)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != privacyv1.ReasonJournalUnavailable || !strings.Contains(c.Message, "lethe_journal") {
		t.Fatalf("Journal condition of a store without CREATE: %+v", c)
	}
	create(t, secret(ns2, "subject", map[string]string{"email": "a_b@x.io"}))
	dsr2 := request(ns2, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr2)
	waitRequest(t, dsr2, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if s := dsr2.Status.Stores[0]; s.Journaled || s.Verified == nil || !*s.Verified {
		t.Errorf("store without a journal: journaled %v, verified %v; want counted pass by pass and verified", s.Journaled, s.Verified)
	}
	if n := count(t, db2, `SELECT count(*) FROM billing_profiles WHERE account_id = 1`); n != 0 {
		t.Errorf("the erasure without a journal left the billing profile")
	}
}

// An update that decreases a DataStore's protection is accepted only with a
// new justification (admission); the controller records each one in status
// and as a Warning Event, once.
func TestAcceptedWeakeningIsRecorded(t *testing.T) {
	ns := env.Namespace(t)
	_, ds := readyStore(t, ns)
	for i := range ds.Spec.Collections {
		if ds.Spec.Collections[i].Name == "billing_profiles" {
			ds.Spec.Collections[i].OnErasure = privacyv1.ErasureRetain
			ds.Spec.Collections[i].RetainReason = "kept for the tax audit"
		}
	}
	ds.Spec.WeakeningJustification = "tax audit 2026: billing profiles kept, DPO ticket 41"
	if err := k8s.Update(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(ds), ds); err != nil {
			return err
		}
		if w := ds.Status.AcceptedWeakenings; len(w) != 1 || w[0].Justification != ds.Spec.WeakeningJustification || w[0].Generation != ds.Generation {
			return fmt.Errorf("acceptedWeakenings = %+v", w)
		}
		return nil
	})
	note := eventNote(t, ds, privacyv1.ReasonProtectionWeakened, "DPO ticket 41")
	if !strings.Contains(note, fmt.Sprintf("generation %d", ds.Generation)) {
		t.Errorf("event note %q does not name the generation", note)
	}
}

// A processor's calls are not one transaction: when one fails (contacts, called
// after tickets: children first), the calls that succeeded before it are in
// the receipt at once, and the repeat that
// completes the request (each call again, with its idempotency key) does not
// count them twice.
func TestProcessorCallsAreKeptAsTheyHappen(t *testing.T) {
	ns := env.Namespace(t)
	var contactsDown atomic.Bool
	contactsDown.Store(true)
	calls := map[string]int{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/contacts") && contactsDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	create(t, secret(ns, "helpdesk", map[string]string{"url": srv.URL, "authorization": "Bearer t"}))
	ds := httpDataStore(ns, "helpdesk", privacyv1.Collection{
		Name: "contacts", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"email": "email"},
		HTTP:     &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/contacts/{email}"}},
	})
	ds.Spec.Collections = append(ds.Spec.Collections, privacyv1.Collection{
		Name: "tickets", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"email": "requester"},
		HTTP:     &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/tickets/{email}"}},
	})
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	dsr := erasureOf(t, ns, "erase", map[string]string{"email": "a_b@x.io"})
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
			return err
		}
		out := storeOutcome(dsr, "helpdesk")
		if out.Phase != privacyv1.StorePending || out.Attempts < 2 {
			return fmt.Errorf("helpdesk: %s after %d attempts, want Pending after 2", out.Phase, out.Attempts)
		}
		if len(out.Collections) != 1 || out.Collections[0].Collection != "tickets" || out.Collections[0].Rows != 1 {
			return fmt.Errorf("while contacts fail, the receipt is %+v, want the tickets call done", out.Collections)
		}
		return nil
	})

	contactsDown.Store(false)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	out := storeOutcome(dsr, "helpdesk")
	got := map[string]int64{}
	for _, c := range out.Collections {
		got[c.Collection+"/"+c.Action] += c.Rows
	}
	if want := map[string]int64{"contacts/delete": 1, "tickets/delete": 1}; !maps.Equal(got, want) {
		t.Errorf("receipt %v, want %v: a repeated call is not a second deletion", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["/tickets/a_b@x.io"] < 3 {
		t.Errorf("tickets called %d times: each pass repeats every call", calls["/tickets/a_b@x.io"])
	}
	assertNoPersonalData(t, dsr, "a_b@x.io")
}

// A subject whose part in a store meets the store's statement timeout on
// every attempt is too large for one transaction: after 3 attempts the
// store fails with SubjectTooLarge, naming its largest collection, the
// request stalls with that reason, and it is not tried again.
func TestSubjectTooLargeForTheStatementTimeoutStalls(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	// A heavy user: 50 access logs more, each taking 0.3 s to delete; the
	// store allows 200 ms per statement.
	for _, stmt := range []string{
		`INSERT INTO access_logs SELECT g, 1, '10.0.0.1', 'Firefox', now() FROM generate_series(90000, 90049) g`,
		`CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN OLD; END $$`,
		`CREATE TRIGGER slow BEFORE DELETE ON access_logs FOR EACH ROW EXECUTE FUNCTION slow_delete()`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	logs := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	ds.Spec.StatementTimeout = &metav1.Duration{Duration: 200 * time.Millisecond}
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	dsr := erasureOf(t, ns, "erase", map[string]string{"email": "a_b@x.io"})
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonSubjectTooLarge)
	if !apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) {
		t.Error("a subject too large for the store must stall the request")
	}
	out := storeOutcome(dsr, "app-db")
	if out.Phase != privacyv1.StoreFailed || out.Reason != privacyv1.ReasonSubjectTooLarge || out.Attempts != 3 || out.StatementTimeouts != 3 {
		t.Errorf("outcome %s/%s after %d attempts (%d timeouts), want Failed/SubjectTooLarge after 3", out.Phase, out.Reason, out.Attempts, out.StatementTimeouts)
	}
	for _, want := range []string{"statement timeout", fmt.Sprintf("%d row(s) of collection \"access_logs\"", logs), "spec.statementTimeout"} {
		if !strings.Contains(out.Message, want) {
			t.Errorf("message %q does not say %q", out.Message, want)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != logs {
		t.Errorf("%d of %d access logs left: a part that timed out must change nothing", n, logs)
	}

	// Not tried again: a DataStore status change wakes the request, which
	// leaves the store alone (a retry would count an attempt).
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(ds), ds); err != nil {
		t.Fatal(err)
	}
	ds.Labels = map[string]string{"touched": "yes"}
	if err := k8s.Update(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		time.Sleep(200 * time.Millisecond)
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
			t.Fatal(err)
		}
		if a := storeOutcome(dsr, "app-db").Attempts; a != 3 {
			t.Fatalf("the store was tried again: %d attempts", a)
		}
	}
	assertNoPersonalData(t, dsr, "a_b@x.io")
}
