package security

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// tenant is a namespace with a ready PostgreSQL store of a few people.
type tenant struct {
	ns    string
	conn  snapshotter
	store *privacyv1.DataStore
}

type snapshotter func(t *testing.T) map[string]string

func newTenant(t *testing.T, secretName string) tenant {
	t.Helper()
	ns := env.Namespace(t)
	conn, dsn := peopleDB(t, map[int64]string{1: "victim@x.io", 2: "other@x.io"})
	create(t, secret(ns, secretName, map[string]string{"dsn": dsn, "maskingKey": "k"}))
	ds := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: peopleStoreSpec()}
	ds.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: secretName, Key: "dsn"}
	create(t, ds)
	return tenant{ns: ns, conn: func(t *testing.T) map[string]string { return peopleSnapshot(t, conn) }, store: ds}
}

// waitWaiting waits for Ready=False with reason and checks the request is
// waiting (Reconciling), not Stalled, and that its Ready message contains want.
func waitWaiting(t *testing.T, dsr *privacyv1.DataSubjectRequest, reason, want string) {
	t.Helper()
	c := waitReady(t, dsr, metav1.ConditionFalse, reason)
	if apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) ||
		!apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionReconciling) {
		t.Errorf("%s: want waiting (Reconciling, not Stalled): %+v", dsr.Name, dsr.Status.Conditions)
	}
	if !strings.Contains(c.Message, want) {
		t.Errorf("%s: message %q does not mention %q", dsr.Name, c.Message, want)
	}
}

// TestRequestCannotReadASecretOfAnotherNamespace: a request, a rectification
// or a DataStore naming a Secret that exists only in another namespace waits
// with SecretNotFound, naming its own namespace; nothing is read from the
// other namespace and no store changes. The Secret then created in the right
// namespace unblocks it.
func TestRequestCannotReadASecretOfAnotherNamespace(t *testing.T) {
	home := newTenant(t, "pg")
	waitReady(t, home.store, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	other := newTenant(t, "pg")
	waitReady(t, other.store, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	// The other namespace holds the Secrets the home namespace's objects name.
	create(t, secret(other.ns, "subject", map[string]string{"email": "victim@x.io"}))
	create(t, secret(other.ns, "new-values", map[string]string{"user.contact.name": "Changed By Another Tenant"}))
	create(t, secret(other.ns, "stolen-dsn", map[string]string{"dsn": "postgres://postgres@127.0.0.1:5432/postgres"}))
	homeBefore, otherBefore := home.conn(t), other.conn(t)

	erase := request(home.ns, "erase", privacyv1.RequestErasure, "subject")
	erase.Spec.Scope.Stores = []privacyv1.StoreName{"pg"}
	create(t, erase)
	waitWaiting(t, erase, privacyv1.ReasonSecretNotFound, fmt.Sprintf("Secret %q not found in namespace %q", "subject", home.ns))

	create(t, secret(home.ns, "own-subject", map[string]string{"email": "victim@x.io"}))
	rectify := request(home.ns, "rectify", privacyv1.RequestRectification, "own-subject")
	rectify.Spec.Rectification = &privacyv1.Rectification{ValuesFrom: &privacyv1.SecretReference{Name: "new-values"}}
	rectify.Spec.Scope.Stores = []privacyv1.StoreName{"pg"}
	create(t, rectify)
	waitWaiting(t, rectify, privacyv1.ReasonStoreUnavailable, fmt.Sprintf("Secret %q not found in namespace %q", "new-values", home.ns))

	// A DataStore of the home namespace pointing at the other namespace's
	// connection Secret by name: not found, never connected.
	stolen := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: home.ns, Name: "stolen"}, Spec: peopleStoreSpec()}
	stolen.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: "stolen-dsn", Key: "dsn"}
	create(t, stolen)
	c := waitReady(t, stolen, metav1.ConditionFalse, privacyv1.ReasonSecretNotFound)
	if !strings.Contains(c.Message, home.ns) {
		t.Errorf("DataStore message %q does not name its own namespace", c.Message)
	}
	viaStolen := request(home.ns, "via-stolen", privacyv1.RequestErasure, "own-subject")
	viaStolen.Spec.Scope.Stores = []privacyv1.StoreName{"stolen"}
	create(t, viaStolen)
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(viaStolen), viaStolen); err != nil {
			return err
		}
		if len(viaStolen.Status.Stores) != 1 || !strings.Contains(viaStolen.Status.Stores[0].Message, "not found in namespace") {
			return fmt.Errorf("stores = %+v", viaStolen.Status.Stores)
		}
		return nil
	})
	if apimeta.IsStatusConditionTrue(viaStolen.Status.Conditions, privacyv1.ConditionReady) {
		t.Error("a request over a store without its Secret completed")
	}

	// A store named in scope that exists only in the other namespace.
	crossStore := request(home.ns, "cross-store", privacyv1.RequestErasure, "own-subject")
	crossStore.Spec.Scope.Stores = []privacyv1.StoreName{"pg-of-other"}
	create(t, crossStore)
	waitWaiting(t, crossStore, privacyv1.ReasonStoreNotFound, home.ns)

	if got := home.conn(t); !maps.Equal(got, homeBefore) {
		t.Error("the home store changed while its requests waited for Secrets")
	}
	if got := other.conn(t); !maps.Equal(got, otherBefore) {
		t.Error("the other namespace's store changed")
	}

	// The Secret created where it belongs unblocks the erasure, which acts on
	// the home store only.
	create(t, secret(home.ns, "subject", map[string]string{"email": "victim@x.io"}))
	waitReady(t, erase, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if _, ok := home.conn(t)["people/1"]; ok {
		t.Error("home victim not erased once the Secret exists in the home namespace")
	}
	if got := other.conn(t); !maps.Equal(got, otherBefore) {
		t.Error("the other namespace's store changed")
	}
}
