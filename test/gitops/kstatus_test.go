package gitops_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Every kind in every state its controller can put it in, written with the
// status client on real objects (so the CRD's status schema accepts it), then
// read back unstructured, as kstatus (Flux, kubectl wait, cli-utils) and Argo CD
// read it. The live tests (live_test.go) check the same for states the real
// controllers produce.

func cond(typ string, st metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
}

// The kstatus trio as the controllers set it (controllers/status.go).
func working(reason, msg string) []metav1.Condition {
	return []metav1.Condition{
		cond(privacyv1.ConditionReady, metav1.ConditionFalse, reason, msg),
		cond(privacyv1.ConditionReconciling, metav1.ConditionTrue, reason, msg),
	}
}

func done(reason, msg string) []metav1.Condition {
	return []metav1.Condition{cond(privacyv1.ConditionReady, metav1.ConditionTrue, reason, msg)}
}

func stalled(reason, msg string) []metav1.Condition {
	return []metav1.Condition{
		cond(privacyv1.ConditionReady, metav1.ConditionFalse, reason, msg),
		cond(privacyv1.ConditionStalled, metav1.ConditionTrue, reason, msg),
	}
}

func common(conds ...[]metav1.Condition) privacyv1.CommonStatus {
	var all []metav1.Condition
	for _, c := range conds {
		all = append(all, c...)
	}
	return privacyv1.CommonStatus{ObservedGeneration: 1, Conditions: all}
}

func newStore(ns, name string) *privacyv1.DataStore {
	return &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataStoreSpec{
			Engine:     privacyv1.EnginePostgres,
			Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "db", Key: "dsn"}},
			Collections: []privacyv1.Collection{{
				Name: "accounts", PrimaryKey: "id", Identity: map[string]privacyv1.Identifier{"email": "email"},
				OnErasure: privacyv1.ErasureDelete,
			}},
		},
	}
}

func newRequest(ns, name string, dryRun bool) *privacyv1.DataSubjectRequest {
	return &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataSubjectRequestSpec{
			Type:   privacyv1.RequestErasure,
			DryRun: dryRun,
			// A Secret no controller reads here: the installation refuses inline identities for erasure.
			Subject: privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: "subject"}}},
		},
	}
}

func newPolicy(ns, name string, suspend bool) *privacyv1.RetentionPolicy {
	return &privacyv1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.RetentionPolicySpec{
			StoreRef: "db", Schedule: "@daily", Suspend: suspend,
			Rules: []privacyv1.RetentionRule{{
				Name: "logs-1y", Collection: "access_logs",
				After: privacyv1.RetentionAfter{Field: "created_at", Period: "1y"}, Action: privacyv1.RetentionDelete,
			}},
		},
	}
}

func newHold(ns, name string) *privacyv1.LegalHold {
	return &privacyv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.LegalHoldSpec{
			Reason: "Judicial requisition RG 26/01234", Collections: []privacyv1.HeldCollection{{Store: "db", Collection: "access_logs"}},
		},
	}
}

type stateCase struct {
	name string
	kind string
	// obj builds the object; setStatus (if not nil) fills its status, written
	// with the status client after creation.
	obj       func(ns, name string) client.Object
	setStatus func(client.Object)
	// changeSpec (if not nil) updates the spec after the status is written,
	// so the status describes an older generation.
	changeSpec func(client.Object)

	kstatus     status.Status
	argo        string
	argoMessage string // a substring of Argo CD's message, if not empty
}

func TestKstatusAndArgoCDHealthOfEveryState(t *testing.T) {
	store := func(ns, name string) client.Object { return newStore(ns, name) }
	req := func(ns, name string) client.Object { return newRequest(ns, name, false) }
	dryRun := func(ns, name string) client.Object { return newRequest(ns, name, true) }
	policy := func(ns, name string) client.Object { return newPolicy(ns, name, false) }
	suspended := func(ns, name string) client.Object { return newPolicy(ns, name, true) }
	hold := func(ns, name string) client.Object { return newHold(ns, name) }
	ds := func(s privacyv1.DataStoreStatus) func(client.Object) {
		return func(o client.Object) { o.(*privacyv1.DataStore).Status = s }
	}
	dsr := func(s privacyv1.DataSubjectRequestStatus) func(client.Object) {
		return func(o client.Object) { o.(*privacyv1.DataSubjectRequest).Status = s }
	}
	rp := func(s privacyv1.RetentionPolicyStatus) func(client.Object) {
		return func(o client.Object) { o.(*privacyv1.RetentionPolicy).Status = s }
	}
	lh := func(s privacyv1.LegalHoldStatus) func(client.Object) {
		return func(o client.Object) { o.(*privacyv1.LegalHold).Status = s }
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	tomorrow := metav1.NewTime(now.Add(24 * time.Hour))
	yesterday := metav1.NewTime(now.Add(-24 * time.Hour))
	withinDeadline := cond(privacyv1.ConditionDeadlineExceeded, metav1.ConditionFalse, privacyv1.ReasonWithinDeadline, "within the deadline")

	cases := []stateCase{
		// Before the controller's first write kstatus has nothing to go on and, as
		// for every custom resource, says Current; Argo CD's check waits instead.
		// kubectl wait --for=condition=Ready waits too.
		{name: "store not yet seen", kind: "DataStore", obj: store,
			kstatus: status.CurrentStatus, argo: "Progressing", argoMessage: "Waiting for the Lethe controller"},
		{name: "store being checked", kind: "DataStore", obj: store,
			setStatus: ds(privacyv1.DataStoreStatus{CommonStatus: common(working(privacyv1.ReasonProgressing, "checking the connection and the live schema"))}),
			kstatus:   status.InProgressStatus, argo: "Progressing", argoMessage: "checking the connection"},
		{name: "store unreachable", kind: "DataStore", obj: store,
			setStatus: ds(privacyv1.DataStoreStatus{CommonStatus: common(working(privacyv1.ReasonStoreUnavailable, "cannot connect: connection refused"))}),
			kstatus:   status.InProgressStatus, argo: "Progressing", argoMessage: "StoreUnavailable: cannot connect"},
		{name: "store ready", kind: "DataStore", obj: store,
			setStatus: ds(privacyv1.DataStoreStatus{CommonStatus: common(done(privacyv1.ReasonSucceeded, "connected; the live schema matches the data map")), LastCheckTime: &now}),
			kstatus:   status.CurrentStatus, argo: "Healthy", argoMessage: "the live schema matches"},
		{name: "store schema drift", kind: "DataStore", obj: store,
			setStatus: ds(privacyv1.DataStoreStatus{
				CommonStatus:   common(stalled(privacyv1.ReasonSchemaDrift, "the live schema does not match the data map (1 problem(s)): accounts.email: no such column")),
				SchemaProblems: []privacyv1.SchemaProblem{{Collection: "accounts", Field: "email", Problem: "no such column"}},
			}),
			kstatus: status.FailedStatus, argo: "Degraded", argoMessage: "SchemaDrift: the live schema does not match"},
		{name: "store changed since its last check", kind: "DataStore", obj: store,
			setStatus: ds(privacyv1.DataStoreStatus{CommonStatus: common(done(privacyv1.ReasonSucceeded, "connected; the live schema matches the data map"))}),
			changeSpec: func(o client.Object) {
				o.(*privacyv1.DataStore).Spec.CheckInterval = &metav1.Duration{Duration: time.Minute}
			},
			kstatus: status.InProgressStatus, argo: "Progressing", argoMessage: "observe the latest spec"},

		{name: "request not yet seen", kind: "DataSubjectRequest", obj: req,
			kstatus: status.CurrentStatus, argo: "Progressing", argoMessage: "Waiting for the Lethe controller"},
		{name: "request working", kind: "DataSubjectRequest", obj: req,
			setStatus: dsr(privacyv1.DataSubjectRequestStatus{CommonStatus: common(working(privacyv1.ReasonStoreUnavailable, "waiting for 1 store(s): db: store unavailable, retrying"), []metav1.Condition{withinDeadline}),
				Deadline: &tomorrow, StartTime: &now}),
			kstatus: status.InProgressStatus, argo: "Progressing", argoMessage: "waiting for 1 store(s)"},
		{name: "request complete", kind: "DataSubjectRequest", obj: req,
			setStatus: dsr(privacyv1.DataSubjectRequestStatus{CommonStatus: common(done(privacyv1.ReasonCompleted, "6 row(s) erased in 1 store(s)"), []metav1.Condition{withinDeadline}),
				Deadline: &tomorrow, StartTime: &now, CompletionTime: &now, ReceiptDigest: "sha256:00"}),
			kstatus: status.CurrentStatus, argo: "Healthy", argoMessage: "6 row(s) erased"},
		{name: "dry run complete", kind: "DataSubjectRequest", obj: dryRun,
			setStatus: dsr(privacyv1.DataSubjectRequestStatus{CommonStatus: common(done(privacyv1.ReasonDryRunCompleted, "dry run: 6 row(s) would be erased in 1 store(s); nothing was changed")),
				Deadline: &tomorrow, StartTime: &now, CompletionTime: &now}),
			kstatus: status.CurrentStatus, argo: "Healthy", argoMessage: "nothing was changed"},
		{name: "request completed late", kind: "DataSubjectRequest", obj: req,
			setStatus: dsr(privacyv1.DataSubjectRequestStatus{CommonStatus: common(done(privacyv1.ReasonCompleted, "6 row(s) erased in 1 store(s)"),
				[]metav1.Condition{cond(privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonCompletedLate, "completed 2h0m0s after the deadline")}),
				Deadline: &yesterday, StartTime: &yesterday, CompletionTime: &now}),
			kstatus: status.CurrentStatus, argo: "Healthy", argoMessage: "completed 2h0m0s after the deadline"},
		// Past the deadline but still retrying: late, not failed. The alert
		// LetheRequestDeadlineMissed is what pages; health stays Progressing.
		{name: "request overdue", kind: "DataSubjectRequest", obj: req,
			setStatus: dsr(privacyv1.DataSubjectRequestStatus{CommonStatus: common(working(privacyv1.ReasonStoreUnavailable, "waiting for 1 store(s): db: store unavailable, retrying"),
				[]metav1.Condition{cond(privacyv1.ConditionDeadlineExceeded, metav1.ConditionTrue, privacyv1.ReasonDeadlineExceeded, "the deadline has passed and the request is not complete")}),
				Deadline: &yesterday, StartTime: &yesterday}),
			kstatus: status.InProgressStatus, argo: "Progressing", argoMessage: "DeadlineExceeded: the deadline has passed"},
		// Waiting for a legal hold: not a failure (kstatus InProgress, never
		// Failed); Argo CD shows it Suspended, as it waits on an outside event.
		{name: "request on legal hold", kind: "DataSubjectRequest", obj: req,
			setStatus: dsr(privacyv1.DataSubjectRequestStatus{CommonStatus: common(working(privacyv1.ReasonOnLegalHold, "data in db is on legal hold; everything else is done"),
				[]metav1.Condition{withinDeadline, cond(privacyv1.ConditionOnLegalHold, metav1.ConditionTrue, privacyv1.ReasonOnLegalHold, "data in db is on legal hold; everything else is done")}),
				Deadline: &tomorrow, StartTime: &now,
				Stores: []privacyv1.StoreOutcome{{Store: "db", Phase: privacyv1.StoreOnLegalHold}}}),
			kstatus: status.InProgressStatus, argo: "Suspended", argoMessage: "OnLegalHold: data in db is on legal hold"},
		{name: "request stalled", kind: "DataSubjectRequest", obj: req,
			setStatus: dsr(privacyv1.DataSubjectRequestStatus{CommonStatus: common(stalled(privacyv1.ReasonStoreFailed, "1 store(s) refused the request: db: invalid scope")),
				Deadline: &tomorrow, StartTime: &now}),
			kstatus: status.FailedStatus, argo: "Degraded", argoMessage: "StoreFailed: 1 store(s) refused the request"},

		{name: "policy not yet seen", kind: "RetentionPolicy", obj: policy,
			kstatus: status.CurrentStatus, argo: "Progressing", argoMessage: "Waiting for the Lethe controller"},
		{name: "policy sweeping", kind: "RetentionPolicy", obj: policy,
			setStatus: rp(privacyv1.RetentionPolicyStatus{CommonStatus: common(working(privacyv1.ReasonProgressing, "sweeping rule logs-1y")), LastRunTime: &now}),
			kstatus:   status.InProgressStatus, argo: "Progressing", argoMessage: "sweeping rule logs-1y"},
		{name: "policy ready", kind: "RetentionPolicy", obj: policy,
			setStatus: rp(privacyv1.RetentionPolicyStatus{CommonStatus: common(done(privacyv1.ReasonSucceeded, "next sweep at 03:30")), LastRunTime: &now, NextRunTime: &tomorrow,
				Rules: []privacyv1.RuleStatus{{Name: "logs-1y", RowsAffected: 3}}}),
			kstatus: status.CurrentStatus, argo: "Healthy", argoMessage: "next sweep"},
		// Suspended is the state the spec asks for: Ready=True, so kstatus says
		// Current (Flux and kubectl wait proceed); Argo CD shows Suspended.
		{name: "policy suspended", kind: "RetentionPolicy", obj: suspended,
			setStatus: rp(privacyv1.RetentionPolicyStatus{CommonStatus: common(done(privacyv1.ReasonSuspended, "suspended: no sweep is scheduled"))}),
			kstatus:   status.CurrentStatus, argo: "Suspended", argoMessage: "suspended"},
		{name: "policy with an invalid schedule", kind: "RetentionPolicy", obj: policy,
			setStatus: rp(privacyv1.RetentionPolicyStatus{CommonStatus: common(stalled(privacyv1.ReasonInvalidSchedule, "the schedule cannot be parsed"))}),
			kstatus:   status.FailedStatus, argo: "Degraded", argoMessage: "InvalidSchedule"},
		{name: "policy changed since its last run", kind: "RetentionPolicy", obj: policy,
			setStatus:  rp(privacyv1.RetentionPolicyStatus{CommonStatus: common(done(privacyv1.ReasonSucceeded, "next sweep at 03:30"))}),
			changeSpec: func(o client.Object) { o.(*privacyv1.RetentionPolicy).Spec.Schedule = "@hourly" },
			kstatus:    status.InProgressStatus, argo: "Progressing", argoMessage: "observe the latest spec"},

		{name: "hold not yet seen", kind: "LegalHold", obj: hold,
			kstatus: status.CurrentStatus, argo: "Progressing", argoMessage: "Waiting for the Lethe controller"},
		{name: "hold waiting for its subject Secret", kind: "LegalHold", obj: hold,
			setStatus: lh(privacyv1.LegalHoldStatus{CommonStatus: common(working(privacyv1.ReasonSecretNotFound, "secret \"subject\" not found"))}),
			kstatus:   status.InProgressStatus, argo: "Progressing", argoMessage: "SecretNotFound"},
		{name: "hold active", kind: "LegalHold", obj: hold,
			setStatus: lh(privacyv1.LegalHoldStatus{CommonStatus: common(done(privacyv1.ReasonSucceeded, "holding 1 collection(s)")), Active: true}),
			kstatus:   status.CurrentStatus, argo: "Healthy", argoMessage: "holding"},
		{name: "hold expired", kind: "LegalHold", obj: hold,
			setStatus: lh(privacyv1.LegalHoldStatus{CommonStatus: common(done(privacyv1.ReasonExpired, "expired; holds nothing any more"))}),
			kstatus:   status.CurrentStatus, argo: "Healthy", argoMessage: "expired"},
		{name: "hold stalled", kind: "LegalHold", obj: hold,
			setStatus: lh(privacyv1.LegalHoldStatus{CommonStatus: common(stalled(privacyv1.ReasonInvalidSubject, "identity \"email\" is empty"))}),
			kstatus:   status.FailedStatus, argo: "Degraded", argoMessage: "InvalidSubject"},
	}

	ns := newNamespace(t)
	seen := map[string]map[string]bool{} // kind -> Argo CD statuses covered
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			obj := c.obj(ns, "s"+string(rune('a'+i)))
			if err := k8s.Create(ctx, obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			if c.setStatus != nil {
				c.setStatus(obj)
				if err := k8s.Status().Update(ctx, obj); err != nil {
					t.Fatalf("status update (the CRD's status schema refused it?): %v", err)
				}
			}
			if c.changeSpec != nil {
				c.changeSpec(obj)
				if err := k8s.Update(ctx, obj); err != nil {
					t.Fatalf("spec update: %v", err)
				}
				if obj.GetGeneration() < 2 {
					t.Fatalf("generation %d after a spec change, want 2", obj.GetGeneration())
				}
			}
			u := live(t, obj)
			if kind := u.GetKind(); kind != c.kind {
				t.Fatalf("kind %s, want %s", kind, c.kind)
			}
			res, err := status.Compute(u)
			if err != nil {
				t.Fatalf("kstatus: %v", err)
			}
			if res.Status != c.kstatus {
				t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, c.kstatus)
			}
			got, msg := argoHealth(t, c.kind, u)
			if got != c.argo || !contains(msg, c.argoMessage) {
				t.Errorf("Argo CD health %s %q, want %s with %q", got, msg, c.argo, c.argoMessage)
			}
			if seen[c.kind] == nil {
				seen[c.kind] = map[string]bool{}
			}
			seen[c.kind][got] = true
		})
	}
	// Every kind is shown Healthy, Progressing and Degraded in some state.
	for _, kind := range healthKinds {
		for _, h := range []string{"Healthy", "Progressing", "Degraded"} {
			if !seen[kind][h] {
				t.Errorf("no state of %s is %s in Argo CD", kind, h)
			}
		}
	}
}
