package controllers_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// Backups: a store restored from a dump taken before five erasures gets
// exactly those five re-applied by the DataStore controller within one check
// interval: the data ends as it was after the erasures, bystanders are
// untouched, and each request's status records the replay while its receipt
// stays the original.
func TestRestoreFromBackupReplaysErasuresPostgres(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	db.SetMaxIdleConns(0) // the restore ends every connection to the database
	seedBystanders(t, db)
	bystanders := bystanderFingerprint(t, db)
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	ds.Spec.BackupRetention = "30d"
	ds.Spec.CheckInterval = &metav1.Duration{Duration: 30 * time.Second}
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionJournal, metav1.ConditionTrue, privacyv1.ReasonJournalReady)
	if ds.Status.StoreIdentity == nil || ds.Status.StoreIdentity.System == "" || ds.Status.StoreIdentity.Timeline == "" {
		t.Errorf("status.storeIdentity = %+v, want PostgreSQL's system identifier and timeline", ds.Status.StoreIdentity)
	}

	dump := pgDump(t, dsn)
	dsrs := eraseFixtureSubjects(t, ns)
	afterErasure := allFingerprints(t, db)
	receipts := map[string]string{}
	for _, dsr := range dsrs {
		receipts[dsr.Name] = dsr.Status.ReceiptDigest
	}
	assertForgetList(t, ns, "app-db", dsrs)

	pgRestore(t, dsn, dump)
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE email = 'a_b@x.io'`); n != 1 {
		t.Fatalf("the restore did not bring subject 1 back (%d rows): the test proves nothing", n)
	}
	if n := count(t, db, `SELECT count(*) FROM lethe_journal`); n != 0 {
		t.Fatalf("the restored journal has %d rows, want the dump's 0", n)
	}

	// Within one check interval (30s), with no annotation.
	start := time.Now()
	waitReplayed(t, ds, 50*time.Second)
	t.Logf("replayed %s after the restore", time.Since(start).Round(time.Second))

	if got := allFingerprints(t, db); !equalMaps(got, afterErasure) {
		t.Errorf("after the replay the data differs from the data after the erasures:\n got %v\nwant %v", got, afterErasure)
	}
	if got := bystanderFingerprint(t, db); got != bystanders {
		t.Error("bystanders' rows changed")
	}
	if n := count(t, db, `SELECT count(DISTINCT request_uid) FROM lethe_journal`); n != len(dsrs) {
		t.Errorf("the journal holds %d requests after the replay, want exactly the %d erasures", n, len(dsrs))
	}
	for _, dsr := range dsrs {
		got := &privacyv1.DataSubjectRequest{}
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), got); err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Replays) != 1 {
			t.Errorf("%s: %d replays recorded, want 1: %+v", dsr.Name, len(got.Status.Replays), got.Status.Replays)
			continue
		}
		rep := got.Status.Replays[0]
		if rep.Store != "app-db" || rep.Reason != privacyv1.ReasonRestoreDetected || rep.Time.IsZero() {
			t.Errorf("%s: replay %+v, want store app-db, reason RestoreDetected and a time", dsr.Name, rep)
		}
		if want := changedRows(dsr); rep.Rows != want || want == 0 {
			t.Errorf("%s: the replay changed %d rows, the original erasure %d", dsr.Name, rep.Rows, want)
		}
		if got.Status.ReceiptDigest != receipts[dsr.Name] || !slices.EqualFunc(got.Status.Stores, dsr.Status.Stores, func(a, b privacyv1.StoreOutcome) bool {
			return a.Phase == b.Phase && len(a.Collections) == len(b.Collections)
		}) {
			t.Errorf("%s: the original receipt changed", dsr.Name)
		}
		assertNoPersonalData(t, got, fixtureEmails()...)
	}
	assertEvent(t, ds, privacyv1.ReasonRestoreDetected)
	if ds.Status.Replay == nil || ds.Status.Replay.Replayed != int32(len(dsrs)) || ds.Status.Replay.Erasures != int32(len(dsrs)) {
		t.Errorf("status.replay = %+v, want %d erasures, all replayed", ds.Status.Replay, len(dsrs))
	}
	assertNoPersonalDataInStore(t, ds)

	// Checked again, nothing is missing: nothing is replayed twice.
	poke(t, ds)
	requestReplayCheck(t, ds, "again")
	for _, dsr := range dsrs {
		got := &privacyv1.DataSubjectRequest{}
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), got); err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Replays) != 1 {
			t.Errorf("%s: %d replays after a second check, want still 1", dsr.Name, len(got.Status.Replays))
		}
	}
}

// A restore older than spec.backupRetention: the erasure's identities were
// purged from the forget list, so it cannot be replayed, and the DataStore
// says so (ErasuresReplayed=False, RestoreTooOld) naming the request.
func TestRestoreOlderThanBackupRetentionIsReported(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	db.SetMaxIdleConns(0) // the restore ends every connection to the database
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	ds.Spec.BackupRetention = "2d"
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionJournal, metav1.ConditionTrue, privacyv1.ReasonJournalReady)
	dump := pgDump(t, dsn)

	create(t, consumedSecret(ns, "subject", "a_b@x.io"))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	assertForgetList(t, ns, "app-db", []*privacyv1.DataSubjectRequest{dsr})

	// Three days later the entry is purged at the next check.
	advance(t, 3*24*time.Hour)
	requestReplayCheck(t, ds, "after-window")
	eventually(t, 20*time.Second, func() error {
		entries, _, err := readForgetList(t, ns, "app-db")
		if err != nil {
			return err
		}
		if len(entries) != 0 {
			return fmt.Errorf("the forget list still holds %d entr(ies) past spec.backupRetention", len(entries))
		}
		return nil
	})
	if ds.Status.Replay == nil || ds.Status.Replay.ForgetListEntries != 0 {
		t.Errorf("status.replay = %+v, want no forget-list entries", ds.Status.Replay)
	}

	pgRestore(t, dsn, dump)
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE email = 'a_b@x.io'`); n != 1 {
		t.Fatalf("the restore did not bring the subject back (%d rows)", n)
	}
	requestReplayCheck(t, ds, "after-restore")
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionErasuresReplayed, metav1.ConditionFalse, privacyv1.ReasonRestoreTooOld)
	if rs := ds.Status.Replay; rs == nil || !slices.Equal(rs.Unreplayable, []string{"erase"}) || rs.Replayed != 0 {
		t.Errorf("status.replay = %+v, want request erase unreplayable and nothing replayed", rs)
	}
	if msg := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionErasuresReplayed).Message; !strings.Contains(msg, "erase") || !strings.Contains(msg, "2d") {
		t.Errorf("the condition does not name the request and the window: %q", msg)
	}
	assertEvent(t, ds, privacyv1.ReasonRestoreTooOld)
	got := &privacyv1.DataSubjectRequest{}
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Replays) != 0 {
		t.Errorf("a replay was recorded without identities: %+v", got.Status.Replays)
	}
	assertNoPersonalDataInStore(t, ds)
}

// The same on MariaDB (mariadb-dump), with the check asked for by the
// annotation right after the restore.
func TestRestoreFromBackupReplaysErasuresMariaDB(t *testing.T) {
	ns := env.Namespace(t)
	dsn := testdb.NewMySQL(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exec(t, db, `CREATE TABLE contacts (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, user_id BIGINT, name VARCHAR(255), KEY (email), KEY (user_id))`)
	exec(t, db, `CREATE TABLE notes (id BIGINT PRIMARY KEY, contact_id BIGINT NOT NULL, body TEXT, FOREIGN KEY (contact_id) REFERENCES contacts (id))`)
	for i := 1; i <= 8; i++ { // 1-5 are erased, 6-8 are bystanders
		exec(t, db, `INSERT INTO contacts VALUES (?, ?, ?, ?)`, i, fmt.Sprintf("person%d@x.io", i), 100+i, fmt.Sprintf("Person %d", i))
		exec(t, db, `INSERT INTO notes VALUES (?, ?, 'note'), (?, ?, 'second note')`, i*10, i, i*10+1, i)
	}
	create(t, secret(ns, "crm", map[string]string{"dsn": dsn}))
	ds := crmStore(ns)
	ds.Spec.BackupRetention = "30d"
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionJournal, metav1.ConditionTrue, privacyv1.ReasonJournalReady)
	if ds.Status.StoreIdentity == nil || !strings.HasPrefix(ds.Status.StoreIdentity.System, "mariadb:") {
		t.Errorf("status.storeIdentity = %+v, want MariaDB's server id and host", ds.Status.StoreIdentity)
	}
	bystanders := func() []string {
		return slices.DeleteFunc(crmRows(t, db), func(r string) bool {
			for i := 1; i <= 5; i++ {
				if strings.HasPrefix(r, fmt.Sprintf("contact %d ", i)) || strings.HasSuffix(r, fmt.Sprintf(" %d", i)) && strings.HasPrefix(r, "note ") {
					return true
				}
			}
			return false
		})
	}
	before := bystanders()
	if len(before) != 9 {
		t.Fatalf("bystander rows = %v, want 3 contacts and 6 notes", before)
	}

	dump := mariadbDump(t, dsn)
	var dsrs []*privacyv1.DataSubjectRequest
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("erase-%d", i)
		create(t, consumedSecret(ns, name, fmt.Sprintf("person%d@x.io", i)))
		dsr := request(ns, name, privacyv1.RequestErasure, name)
		create(t, dsr)
		dsrs = append(dsrs, dsr)
	}
	for _, dsr := range dsrs {
		waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	}
	afterErasure := crmRows(t, db)
	if len(afterErasure) != 9 {
		t.Fatalf("after the erasures %d rows are left, want the bystanders' 9", len(afterErasure))
	}
	assertForgetList(t, ns, "crm", dsrs)

	mariadbRestore(t, dsn, dump)
	if n := count(t, db, `SELECT count(*) FROM contacts`); n != 8 {
		t.Fatalf("the restore brought back %d contacts, want 8", n)
	}
	requestReplayCheck(t, ds, "restored-1")
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionErasuresReplayed, metav1.ConditionTrue, privacyv1.ReasonRestoreDetected)
	if got := crmRows(t, db); !slices.Equal(got, afterErasure) {
		t.Errorf("after the replay rows = %v, want %v", got, afterErasure)
	}
	if got := bystanders(); !slices.Equal(got, before) {
		t.Errorf("bystanders changed: %v, want %v", got, before)
	}
	for _, dsr := range dsrs {
		got := &privacyv1.DataSubjectRequest{}
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), got); err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Replays) != 1 || got.Status.Replays[0].Rows != 3 || got.Status.Replays[0].Store != "crm" {
			t.Errorf("%s: replays %+v, want one of 3 rows (1 contact, 2 notes) in crm", dsr.Name, got.Status.Replays)
		}
	}
	assertNoPersonalDataInStore(t, ds)
}

// A replay that fails (here a foreign key the map does not know about,
// added after the restore) leaves the request's receipt as it was, records
// no replay, reports ReplayFailed on the DataStore, and is retried until it
// succeeds with its journal row back.
func TestFailedReplayKeepsTheReceiptAndIsRetried(t *testing.T) {
	ns := env.Namespace(t)
	db, dsn := fixtureDB(t)
	db.SetMaxIdleConns(0) // the restore ends every connection to the database
	create(t, secret(ns, "app-db", map[string]string{"dsn": dsn, "maskingKey": "store-masking-key"}))
	ds := fixtureStore(ns, "app-db", "app-db")
	ds.Spec.BackupRetention = "30d"
	create(t, ds)
	waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionJournal, metav1.ConditionTrue, privacyv1.ReasonJournalReady)
	dump := pgDump(t, dsn)
	create(t, consumedSecret(ns, "subject", "a_b@x.io"))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	receipt := dsr.Status.ReceiptDigest

	pgRestore(t, dsn, dump)
	exec(t, db, `CREATE TABLE blockers (id bigint PRIMARY KEY, profile_id bigint REFERENCES billing_profiles(id)); INSERT INTO blockers VALUES (1, 1)`)
	requestReplayCheck(t, ds, "restored")
	waitForCondition(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, privacyv1.ConditionErasuresReplayed, metav1.ConditionFalse, privacyv1.ReasonReplayFailed)
	if rs := ds.Status.Replay; rs == nil || !slices.Equal(rs.Pending, []string{"erase"}) {
		t.Errorf("status.replay = %+v, want erase pending", rs)
	}
	assertEvent(t, ds, privacyv1.ReasonReplayFailed)
	got := &privacyv1.DataSubjectRequest{}
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ReceiptDigest != receipt || len(got.Status.Replays) != 0 {
		t.Errorf("a failed replay changed the request: digest %q (was %q), replays %+v", got.Status.ReceiptDigest, receipt, got.Status.Replays)
	}
	if n := count(t, db, `SELECT count(*) FROM lethe_journal`); n != 0 {
		t.Errorf("a failed replay left %d journal rows", n)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE email = 'a_b@x.io'`); n != 1 {
		t.Errorf("the failed replay was not rolled back (%d accounts)", n)
	}

	exec(t, db, `DELETE FROM blockers`)
	waitReplayed(t, ds, 40*time.Second) // retried after replayRetryInterval
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Replays) != 1 || got.Status.ReceiptDigest != receipt {
		t.Errorf("after the retry: replays %+v, digest %q (was %q)", got.Status.Replays, got.Status.ReceiptDigest, receipt)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE email = 'a_b@x.io'`); n != 0 {
		t.Errorf("the subject is still there after the retried replay (%d accounts)", n)
	}
	if n := count(t, db, `SELECT count(*) FROM lethe_journal WHERE request_uid = $1`, string(dsr.UID)); n != 1 {
		t.Errorf("the journal holds %d rows of the request after the replay, want 1", n)
	}
}

// --- helpers ---

func seedBystanders(t *testing.T, db *sql.DB) {
	t.Helper()
	for id := 60; id <= 62; id++ {
		exec(t, db, `INSERT INTO accounts (id, email, name, phone) VALUES ($1, $2, 'Bystander', '+33 6 11 11 11 11')`, id, fmt.Sprintf("bystander%d@x.io", id))
		exec(t, db, `INSERT INTO billing_profiles VALUES ($1::bigint, $1::bigint, 'FR999', 'Lyon')`, id)
		exec(t, db, `INSERT INTO access_logs SELECT g, $1::bigint, '10.9.9.9', 'Chrome', now() FROM generate_series($1::bigint*100, $1::bigint*100+1) g`, id)
	}
}

func bystanderFingerprint(t *testing.T, db *sql.DB) string {
	t.Helper()
	var fp string
	q := `SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
		SELECT a::text x FROM accounts a WHERE id >= 60
		UNION ALL SELECT b::text FROM billing_profiles b WHERE account_id >= 60
		UNION ALL SELECT l::text FROM access_logs l WHERE account_id >= 60) s`
	if err := db.QueryRow(q).Scan(&fp); err != nil {
		t.Fatal(err)
	}
	return fp
}

func fixtureEmails() []string {
	var out []string
	for _, a := range fixtureAccounts {
		out = append(out, a.email)
	}
	return out
}

// consumedSecret is a subject Secret Lethe deletes once the request is done.
func consumedSecret(ns, name, email string) *corev1.Secret {
	s := secret(ns, name, map[string]string{"email": email})
	s.Labels = map[string]string{privacyv1.ConsumeLabel: "true"}
	return s
}

// eraseFixtureSubjects erases the fixture's five subjects, one request each,
// and returns them completed.
func eraseFixtureSubjects(t *testing.T, ns string) []*privacyv1.DataSubjectRequest {
	t.Helper()
	var dsrs []*privacyv1.DataSubjectRequest
	for _, a := range fixtureAccounts {
		name := fmt.Sprintf("erase-%d", a.id)
		create(t, consumedSecret(ns, name, a.email))
		dsr := request(ns, name, privacyv1.RequestErasure, name)
		create(t, dsr)
		dsrs = append(dsrs, dsr)
	}
	for _, dsr := range dsrs {
		waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
		if o := dsr.Status.Stores[0]; !o.Journaled {
			t.Fatalf("%s: the store's part is not journaled", dsr.Name)
		}
	}
	return dsrs
}

// assertForgetList checks the DataStore's forget list holds one encrypted
// entry per request, owned by the DataStore, and no identity in clear; and
// that the subject Secrets were consumed all the same.
func assertForgetList(t *testing.T, ns, store string, dsrs []*privacyv1.DataSubjectRequest) {
	t.Helper()
	entries, shards, err := readForgetList(t, ns, store)
	if err != nil {
		t.Fatalf("the forget list: %v", err)
	}
	if len(shards) == 0 {
		t.Fatal("the forget list has no Secret")
	}
	for _, sec := range shards {
		if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Kind != "DataStore" || sec.OwnerReferences[0].Name != store {
			t.Errorf("the owners of forget-list Secret %s = %+v, want the DataStore", sec.Name, sec.OwnerReferences)
		}
	}
	if len(entries) != len(dsrs) {
		t.Errorf("the forget list has %d entries, want %d", len(entries), len(dsrs))
	}
	for _, dsr := range dsrs {
		v, ok := entries[string(dsr.UID)]
		if !ok {
			t.Errorf("no forget-list entry for %s", dsr.Name)
		}
		if !bytes.HasPrefix(v, []byte("age-encryption.org/v1")) {
			t.Errorf("the entry of %s is not an age file", dsr.Name)
		}
		if bytes.Contains(v, []byte("@x.io")) {
			t.Errorf("the entry of %s holds an identity in clear", dsr.Name)
		}
		eventually(t, 20*time.Second, func() error {
			err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: dsr.Spec.Subject.IdentitiesFrom.SecretRef.Name}, &corev1.Secret{})
			if err == nil {
				return fmt.Errorf("the subject Secret of %s is not consumed", dsr.Name)
			}
			return client.IgnoreNotFound(err)
		})
	}
}

// readForgetList reads every shard of a DataStore's forget list: the entries
// of all, and the Secrets that exist.
func readForgetList(t *testing.T, ns, store string) (map[string][]byte, []*corev1.Secret, error) {
	t.Helper()
	entries := map[string][]byte{}
	var shards []*corev1.Secret
	for _, name := range controllers.ForgetListNames(store) {
		sec := &corev1.Secret{}
		err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, sec)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		shards = append(shards, sec)
		for uid, v := range sec.Data {
			if _, twice := entries[uid]; twice {
				return nil, nil, fmt.Errorf("request %s has entries in two shards", uid)
			}
			entries[uid] = v
		}
	}
	return entries, shards, nil
}

func assertNoPersonalDataInStore(t *testing.T, ds *privacyv1.DataStore) {
	t.Helper()
	got := &privacyv1.DataStore{}
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(ds), got); err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(got.Status)
	evs := &corev1.EventList{}
	_ = k8s.List(t.Context(), evs, client.InNamespace(ds.Namespace))
	all := string(status)
	for _, e := range evs.Items {
		all += e.Message
	}
	if strings.Contains(all, "@x.io") {
		t.Errorf("an identity appears in the DataStore's status or events: %s", all)
	}
}

// changedRows is what the original erasure changed in its stores.
func changedRows(dsr *privacyv1.DataSubjectRequest) int64 {
	var n int64
	for _, o := range dsr.Status.Stores {
		for _, c := range o.Collections {
			switch c.Action {
			case "delete", "anonymize", "setNull":
				n += c.Rows
			}
		}
	}
	return n
}

// requestReplayCheck sets the replay-check annotation to value and waits
// until a check saw it.
func requestReplayCheck(t *testing.T, ds *privacyv1.DataStore, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, privacyv1.ReplayCheckAnnotation, value)
	if err := k8s.Patch(t.Context(), ds, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(ds), ds); err != nil {
			return err
		}
		if ds.Status.Replay == nil || ds.Status.Replay.ObservedCheckRequest != value {
			return fmt.Errorf("status.replay = %+v, want observedCheckRequest %q", ds.Status.Replay, value)
		}
		return nil
	})
}

func waitReplayed(t *testing.T, ds *privacyv1.DataStore, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(ds), ds); err != nil {
			return err
		}
		c := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionErasuresReplayed)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != privacyv1.ReasonRestoreDetected {
			return fmt.Errorf("ErasuresReplayed = %+v", c)
		}
		return nil
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func pgDump(t *testing.T, dsn string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "dump.pgc")
	runTool(t, nil, "pg_dump", "--format=custom", "--no-owner", "--file="+file, "--dbname="+dsn)
	return file
}

// pgRestore drops the database, creates it again and restores the dump.
func pgRestore(t *testing.T, dsn, file string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{"DROP DATABASE " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)", "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	runTool(t, nil, "pg_restore", "--no-owner", "--exit-on-error", "--dbname="+dsn, file)
}

func mariadbArgs(t *testing.T, dsn string) (args []string, name string) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	args = []string{"--protocol=tcp", "-h", host, "-P", port, "-u", cfg.User}
	if cfg.Passwd != "" {
		args = append(args, "-p"+cfg.Passwd)
	}
	return args, cfg.DBName
}

func mariadbDump(t *testing.T, dsn string) []byte {
	t.Helper()
	args, name := mariadbArgs(t, dsn)
	return runTool(t, nil, "mariadb-dump", append(args, "--single-transaction", name)...)
}

// mariadbRestore drops the database, creates it again and restores the dump.
func mariadbRestore(t *testing.T, dsn string, dump []byte) {
	t.Helper()
	args, name := mariadbArgs(t, dsn)
	runTool(t, nil, "mariadb", append(args, "-e", "DROP DATABASE `"+name+"`; CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4")...)
	runTool(t, dump, "mariadb", append(args, name)...)
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := osexec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", name, err, stderr.String())
	}
	return out
}
