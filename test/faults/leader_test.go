//go:build faults

package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testdb"
)

const (
	leaseName      = "lethe.privacy.lethe.dev"
	leaderRequests = 40
	leaderAccounts = 70
)

// leaseHolder returns the identity holding the manager's Lease, or "".
func leaseHolder(t *testing.T) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, l); err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestTwoManagersExecuteEachRequestOnce runs two manager processes with
// --leader-elect against one control plane. Only the leader acts: the
// processor receives every request's erasure exactly once (one call per
// Idempotency-Key) and the database ends as mapped. Then the leader is
// SIGKILLed: the other takes the Lease over and carries out new requests,
// again exactly once each.
func TestTwoManagersExecuteEachRequestOnce(t *testing.T) {
	began := time.Now()
	ns := namespace(t, "leader")
	shop := loadShop(t, "postgres", pgDialect, testdb.NewPostgres(t), leaderRequests, leaderAccounts)
	bystanders := shop.bystanderFingerprint(t)
	proc := newProcessor(t, 20*time.Millisecond)
	create(t, secret(ns, "pg", map[string]string{"dsn": shop.dsn, "maskingKey": "leader-key"}))
	create(t, secret(ns, "crm", map[string]string{"url": proc.URL}))
	create(t, shopStore(ns, "pg", privacyv1.EnginePostgres, "pg"))
	create(t, processorStore(ns, "crm", "crm"))

	a, b := newManager(t, "leader-a", "--leader-elect"), newManager(t, "leader-b", "--leader-elect")
	a.start()
	b.start()
	var holder string
	eventually(t, time.Minute, func() error {
		if holder = leaseHolder(t); holder == "" {
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	waitStoreReady(t, ns, "pg")
	waitStoreReady(t, ns, "crm")

	emailOf := map[string]string{}
	file := func(from, to int) {
		for i := from; i <= to; i++ {
			name := fmt.Sprintf("erase-%03d", i)
			emailOf[name] = subjectEmail(i)
			create(t, secret(ns, name, map[string]string{"email": subjectEmail(i)}))
			create(t, erasureRequest(ns, name, name))
		}
	}
	first := leaderRequests / 2
	file(1, first)
	requests := waitAllReady(t, ns, first, 2*time.Minute)
	if repeats := checkIdempotency(t, proc, requests, emailOf); repeats != 0 || len(proc.received()) != first {
		t.Errorf("with two managers: %d calls for %d requests (%d repeats), want exactly one each", len(proc.received()), first, repeats)
	}
	if got := leaseHolder(t); got != holder {
		t.Errorf("the Lease moved from %s to %s without a failure", holder, got)
	}
	// Which process leads: the one whose log says it acquired the Lease.
	acquired := func(m *manager) bool {
		return strings.Contains(strings.ToLower(m.allLogs()), "successfully acquired lease")
	}
	leader, follower := a, b
	if !acquired(a) {
		leader, follower = b, a
	}
	if acquired(follower) || !acquired(leader) {
		t.Fatalf("expected exactly one manager to have acquired the Lease (a: %v, b: %v)", acquired(a), acquired(b))
	}

	leader.kill()
	killedAt := time.Now()
	file(first+1, leaderRequests)
	eventually(t, time.Minute, func() error {
		if got := leaseHolder(t); got == holder || got == "" {
			return fmt.Errorf("the Lease is still %q", got)
		}
		return nil
	})
	takeover := time.Since(killedAt)
	requests = waitAllReady(t, ns, leaderRequests, 2*time.Minute)
	if repeats := checkIdempotency(t, proc, requests, emailOf); repeats != 0 || len(proc.received()) != leaderRequests {
		t.Errorf("after the takeover: %d calls for %d requests (%d repeats), want exactly one each", len(proc.received()), leaderRequests, repeats)
	}
	follower.stop()
	assertNoSubjectInLogs(t, a, leaderRequests)
	assertNoSubjectInLogs(t, b, leaderRequests)
	shop.checkAtomic(t)
	shop.checkFinal(t, bystanders)
	t.Logf("two managers with --leader-elect: %d requests, %d processor calls (each Idempotency-Key once); leader SIGKILLed, Lease taken over in %s; %s total",
		leaderRequests, len(proc.received()), takeover.Round(time.Second), time.Since(began).Round(time.Second))
}
