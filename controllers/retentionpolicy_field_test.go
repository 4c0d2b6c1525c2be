package controllers_test

import (
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Admission takes a document path as a rule's field (it does not know the
// store's engine); a run on a store of another engine than mongodb refuses
// such a rule before the engine sees it, with a message naming the engine,
// and the other rules run.
func TestRetentionRuleOnADottedFieldIsInvalidOnPostgres(t *testing.T) {
	ns := env.Namespace(t)
	db, _ := readyStore(t, ns)
	oldAccessLogs(t, db, 2, 5000, 10, 400)
	where := rule("nested-where", "access_logs", "at", "1y", privacyv1.RetentionDelete)
	where.Where = []privacyv1.RetentionCondition{{Field: "meta.deletedAt", IsNull: ptrTo(true)}}
	p := policy(ns, "nested",
		rule("nested-date", "access_logs", "meta.createdAt", "1y", privacyv1.RetentionDelete),
		where,
		rule("logs", "access_logs", "at", "1y", privacyv1.RetentionDelete))
	createCleaned(t, p)
	advance(t, time.Hour+time.Minute)
	poke(t, p)
	waitPolicy(t, p, metav1.ConditionFalse, privacyv1.ReasonInvalidRule)
	c := apimeta.FindStatusCondition(p.Status.Conditions, privacyv1.ConditionReady)
	for _, want := range []string{
		"2 rule(s) cannot run",
		`nested-date: invalid for this store: after.field: "meta.createdAt" is a document path, which only engine mongodb sweeps on; engine postgres needs a column name`,
		`nested-where: invalid for this store: where[0].field: "meta.deletedAt" is a document path, which only engine mongodb sweeps on; engine postgres`,
	} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("InvalidRule message %q does not say %q", c.Message, want)
		}
	}
	// Refused by the controller, not by the engine's schema check.
	if strings.Contains(c.Message, "no date or timestamp column") || strings.Contains(c.Message, "has no column") {
		t.Errorf("the dotted field reached the SQL engine: %q", c.Message)
	}
	if !apimeta.IsStatusConditionTrue(p.Status.Conditions, privacyv1.ConditionStalled) {
		t.Errorf("not Stalled: %+v", p.Status.Conditions)
	}
	if got := ruleStatus(p, "logs"); got.RowsAffected != 10 || got.RowsPastPeriod != 0 {
		t.Errorf("the valid rule: %+v, want 10 rows deleted", got)
	}
	for _, name := range []string{"nested-date", "nested-where"} {
		if got := ruleStatus(p, name); got.RowsAffected != 0 || !strings.HasPrefix(got.Message, "not run: ") || !strings.Contains(got.Message, "engine postgres") {
			t.Errorf("%s: %+v, want not run, naming the engine", name, got)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM access_logs WHERE id >= 5000 AND id < 5010`); n != 0 {
		t.Errorf("%d old logs left by the valid rule", n)
	}
	assertEvent(t, p, privacyv1.ReasonInvalidRule)
}

func ptrTo[V any](v V) *V { return &v }
