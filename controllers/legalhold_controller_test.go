package controllers_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/audit"
)

func TestHoldBlocksAnErasureUntilItIsDeleted(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	create(t, secret(ns, "held-subject", map[string]string{"email": "a_b@x.io"}))
	hold := holdOn(ns, "rg-26-01234", "held-subject", privacyv1.HeldCollection{Store: "app-db", Collection: "access_logs"})
	createCleaned(t, hold)
	waitHold(t, hold, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	if !hold.Status.Active || hold.Status.SubjectDigest != audit.SubjectDigest(digestKey, map[string]string{"email": "a_b@x.io"}) {
		t.Fatalf("hold status: %+v", hold.Status)
	}

	// The request knows the subject's account id too: the held logs are found
	// through the account, whose email the first pass masks.
	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io", "userId": "1"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	// Waiting on a hold is not a failure: Ready=False (OnLegalHold), Reconciling, not Stalled.
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonOnLegalHold)
	conds := dsr.Status.Conditions
	if apimeta.IsStatusConditionTrue(conds, privacyv1.ConditionStalled) || !apimeta.IsStatusConditionTrue(conds, privacyv1.ConditionReconciling) ||
		!apimeta.IsStatusConditionTrue(conds, privacyv1.ConditionOnLegalHold) {
		t.Errorf("conditions while on hold: %+v", conds)
	}
	// Everything not held is done; the held logs are still there, and the receipt says why.
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != 3 {
		t.Errorf("held access logs: %d left, want 3", n)
	}
	if n := count(t, db, `SELECT count(*) FROM billing_profiles WHERE account_id = 1`); n != 0 {
		t.Errorf("billing profile not erased while the logs are held")
	}
	held := false
	for _, s := range dsr.Status.Stores {
		for _, c := range s.Collections {
			held = held || c.Collection == "access_logs" && c.Action == "retain" && strings.Contains(c.Reason, "legal hold rg-26-01234")
		}
	}
	if !held {
		t.Errorf("the receipt does not name the hold: %+v", dsr.Status.Stores)
	}

	// The hold shows which request it blocks.
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(hold), hold); err != nil {
			return err
		}
		if !slices.Equal(hold.Status.BlockedRequests, []string{"erase"}) {
			return fmt.Errorf("blockedRequests = %v", hold.Status.BlockedRequests)
		}
		return nil
	})
	if c := apimeta.FindStatusCondition(hold.Status.Conditions, privacyv1.ConditionReady); !strings.Contains(c.Message, "1 request(s) wait on it") {
		t.Errorf("hold message: %q", c.Message)
	}

	// Released: the request finishes by itself.
	if err := k8s.Delete(t.Context(), hold); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != 0 {
		t.Errorf("%d access logs left after the hold was released", n)
	}
	// The receipt adds up both passes: the billing profile the first pass
	// deleted is not forgotten by the second, which found nothing left.
	if o := outcome(dsr, "app-db", "billing_profiles"); o.Action != "delete" || o.Rows != 1 {
		t.Errorf("billing_profiles in the receipt = %+v, want delete 1 (from the first pass)", o)
	}
	if o := outcome(dsr, "app-db", "access_logs"); o.Action != "delete" || o.Rows != 3 {
		t.Errorf("access_logs in the receipt = %+v, want delete 3 (after the release)", o)
	}
	if c := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionOnLegalHold); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("OnLegalHold after completion: %+v", c)
	}
	assertEvent(t, dsr, privacyv1.ReasonOnLegalHold)
	assertNoPersonalData(t, dsr, "a_b@x.io")
}

func TestExpiredHoldReleasesTheRequestsItBlocked(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	hold := holdOn(ns, "case-42", "", privacyv1.HeldCollection{Store: "app-db", Collection: "billing_profiles"})
	expires := metav1.NewTime(clock.Now().Add(time.Hour).Truncate(time.Second))
	hold.Spec.ExpiresAt = &expires
	createCleaned(t, hold)
	waitHold(t, hold, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io", "userId": "2"}))
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonOnLegalHold)
	if n := count(t, db, `SELECT count(*) FROM billing_profiles WHERE account_id = 2`); n != 1 {
		t.Fatalf("held billing profile erased")
	}

	// The expiry passes: the hold says so, and the request finishes.
	advance(t, 2*time.Hour)
	poke(t, hold)
	waitHold(t, hold, metav1.ConditionTrue, privacyv1.ReasonExpired)
	if hold.Status.Active || len(hold.Status.BlockedRequests) != 0 {
		t.Errorf("expired hold: %+v", hold.Status)
	}
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if n := count(t, db, `SELECT count(*) FROM billing_profiles WHERE account_id = 2`); n != 0 {
		t.Errorf("billing profile still there after the hold expired")
	}
	assertEvent(t, hold, privacyv1.ReasonExpired)
}

func TestSweepsSkipHeldRows(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	oldAccessLogs(t, db, 1, 7000, 10, 400) // the held subject's
	oldAccessLogs(t, db, 2, 7100, 10, 400) // someone else's
	exec(t, db, `UPDATE accounts SET created_at = now() - INTERVAL '3 years' WHERE id IN (4, 5)`)
	create(t, secret(ns, "held-subject", map[string]string{"email": "a_b@x.io"}))
	onSubject := holdOn(ns, "on-subject", "held-subject", privacyv1.HeldCollection{Store: "app-db", Collection: "access_logs"})
	onAccounts := holdOn(ns, "on-accounts", "", privacyv1.HeldCollection{Store: "app-db", Collection: "accounts"})
	createCleaned(t, onSubject)
	createCleaned(t, onAccounts)
	accountsBefore := fingerprint(t, db, "accounts")

	p := policy(ns, "retention",
		rule("access-logs-1y", "access_logs", "at", "1y", privacyv1.RetentionDelete),
		rule("dormant-accounts-2y", "accounts", "created_at", "2y", privacyv1.RetentionAnonymize))
	createCleaned(t, p)
	runSweep(t, p)
	logs := ruleStatus(p, "access-logs-1y")
	if logs.RowsAffected != 10 || logs.RowsHeld != 10 || logs.RowsPastPeriod != 10 || !strings.Contains(logs.Message, "on-subject") {
		t.Errorf("access-logs-1y: %+v, want 10 deleted, 10 held (still past their period)", logs)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 7000 AND id < 7010`); n != 10 {
		t.Errorf("held logs deleted: %d of 10 left", n)
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 7100`); n != 0 {
		t.Errorf("%d unheld old logs left", n)
	}
	accounts := ruleStatus(p, "dormant-accounts-2y")
	if accounts.RowsAffected != 0 || accounts.RowsHeld != 2 || !strings.Contains(accounts.Message, "skipped: the collection is on legal hold (legal hold on-accounts") {
		t.Errorf("dormant-accounts-2y: %+v, want skipped with 2 rows held", accounts)
	}
	if fingerprint(t, db, "accounts") != accountsBefore {
		t.Error("held accounts changed")
	}
	if v := metricValue(t, "lethe_retention_rows_held", map[string]string{"namespace": ns, "rule": "access-logs-1y"}); v != 10 {
		t.Errorf("lethe_retention_rows_held = %v, want 10", v)
	}

	// Holds released: the next run catches up.
	for _, h := range []client.Object{onSubject, onAccounts} {
		if err := k8s.Delete(t.Context(), h); err != nil {
			t.Fatal(err)
		}
	}
	runSweep(t, p)
	if got := ruleStatus(p, "access-logs-1y"); got.RowsAffected != 10 || got.RowsHeld != 0 {
		t.Errorf("after release, access-logs-1y: %+v", got)
	}
	if got := ruleStatus(p, "dormant-accounts-2y"); got.RowsAffected != 2 || got.RowsHeld != 0 {
		t.Errorf("after release, dormant-accounts-2y: %+v", got)
	}
}

// TestHeldRowsFoundOnlyThroughAMaskedIdentity: a request that knows the subject
// only by email, and a hold on rows found through the subject's account. The
// first pass must leave the account's email (the way back to the held logs)
// unmasked, so that once the hold ends the held logs are found and erased.
func TestHeldRowsFoundOnlyThroughAMaskedIdentity(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	create(t, secret(ns, "subject", map[string]string{"email": "a_b@x.io"}))
	hold := holdOn(ns, "rg-26-01234", "subject", privacyv1.HeldCollection{Store: "app-db", Collection: "access_logs"})
	createCleaned(t, hold)
	waitHold(t, hold, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonOnLegalHold)
	if err := k8s.Delete(t.Context(), hold); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != 0 {
		t.Errorf("%d held access logs were never erased after the hold ended", n)
	}
}

// A hold names the person by e-mail, the erasure by account id (and the
// reverse): they share no identity value, yet the hold holds, because the
// engine compares their rows. The hold reports the request it blocks, the
// receipt names the hold, and releasing it completes the request with the
// full counts, journaled and verified.
func TestHoldByAnotherIdentityHoldsTheErasure(t *testing.T) {
	for _, c := range []struct{ hold, request map[string]string }{
		{map[string]string{"email": "a_b@x.io"}, map[string]string{"userId": "1"}},
		{map[string]string{"userId": "1"}, map[string]string{"email": "a_b@x.io"}},
	} {
		ns := env.Namespace(t)
		db, _ := readyStore(t, ns)
		create(t, secret(ns, "held-subject", c.hold))
		hold := holdOn(ns, "rg-26-01234", "held-subject", privacyv1.HeldCollection{Store: "app-db", Collection: "access_logs"})
		createCleaned(t, hold)
		waitHold(t, hold, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

		create(t, secret(ns, "subject", c.request))
		dsr := request(ns, "erase", privacyv1.RequestErasure, "subject")
		create(t, dsr)
		waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonOnLegalHold)
		if n := count(t, db, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != 3 {
			t.Fatalf("hold by %v, erasure by %v: %d held access logs left, want 3", c.hold, c.request, n)
		}
		if s := dsr.Status.Stores[0]; !slices.Equal(s.HeldBy, []string{"rg-26-01234"}) || !s.Journaled {
			t.Errorf("store outcome while held: heldBy %v, journaled %v", s.HeldBy, s.Journaled)
		}
		eventually(t, 30*time.Second, func() error {
			if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(hold), hold); err != nil {
				return err
			}
			if !slices.Equal(hold.Status.BlockedRequests, []string{"erase"}) {
				return fmt.Errorf("blockedRequests = %v", hold.Status.BlockedRequests)
			}
			return nil
		})

		if err := k8s.Delete(t.Context(), hold); err != nil {
			t.Fatal(err)
		}
		waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
		s := dsr.Status.Stores[0]
		if o := outcome(dsr, "app-db", "access_logs"); o.Action != "delete" || o.Rows != 3 || o.Remaining == nil || *o.Remaining != 0 {
			t.Errorf("access_logs after the release = %+v, want delete 3 with 0 remaining", o)
		}
		if o := outcome(dsr, "app-db", "billing_profiles"); o.Action != "delete" || o.Rows != 1 {
			t.Errorf("billing_profiles = %+v, want delete 1 (from the first pass)", o)
		}
		if s.Verified == nil || !*s.Verified || !s.Journaled || len(s.HeldBy) != 0 {
			t.Errorf("store outcome after the release: verified %v, journaled %v, heldBy %v", s.Verified, s.Journaled, s.HeldBy)
		}
		assertNoPersonalData(t, dsr, "a_b@x.io")
	}
}
