package controllers_test

import (
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// A DataStore whose connection the manager refuses says why on its status —
// the class of address or the parameter, never the DSN — and no request
// touches it: requests wait with StoreNotReady.
func TestRefusedConnectionsStallTheStoreWithAClearReason(t *testing.T) {
	ns := env.Namespace(t)
	cases := []struct {
		name, dsn, reason, mention string
	}{
		{"egress", "postgres://postgres:s3cret-canary@" + testdb.DeniedLoopback + ":5432/x?sslmode=disable", privacyv1.ReasonEgressRefused, "denied"},
		{"parameter", "postgres://postgres:s3cret-canary@127.0.0.1:5432/x?sslmode=disable&passfile=/etc/passwd", privacyv1.ReasonConnectionRefused, `"passfile"`},
		{"socket", "host=/var/run/postgresql user=postgres password=s3cret-canary", privacyv1.ReasonConnectionRefused, "unix socket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			create(t, secret(ns, "conn-"+c.name, map[string]string{"dsn": c.dsn, "maskingKey": "k"}))
			ds := fixtureStore(ns, "refused-"+c.name, "conn-"+c.name)
			create(t, ds)
			waitStore(t, ds, metav1.ConditionFalse, c.reason)
			ready := apimeta.FindStatusCondition(ds.Status.Conditions, privacyv1.ConditionReady)
			if !strings.Contains(ready.Message, c.mention) {
				t.Errorf("message %q does not mention %s", ready.Message, c.mention)
			}
			for _, secret := range []string{"s3cret-canary", testdb.DeniedLoopback, "/etc/passwd", "/var/run/postgresql"} {
				if strings.Contains(ready.Message, secret) {
					t.Errorf("message repeats the connection string (%s): %q", secret, ready.Message)
				}
			}
			if !apimeta.IsStatusConditionTrue(ds.Status.Conditions, privacyv1.ConditionStalled) {
				t.Error("a refused connection cannot be fixed by retrying: want Stalled")
			}

			dsr := request(ns, "erase-"+c.name, privacyv1.RequestErasure, "")
			dsr.Spec.Subject = privacyv1.Subject{Identities: privacyv1.Identities{"email": "a_b@x.io"}}
			dsr.Spec.Scope.Stores = []privacyv1.StoreName{privacyv1.StoreName(ds.Name)}
			create(t, dsr)
			waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonStoreNotReady)
		})
	}
}
