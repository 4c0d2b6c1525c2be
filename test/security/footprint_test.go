package security

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// Lethe keeps nothing of a subject longer than it must: once its requests are
// complete, no Secret, spec, status, Event or log line of the cluster holds
// the subject's data (an encrypted export holds none in clear). And the
// manager, which RBAC lets delete any Secret of a namespace it serves, is
// held by the API server to the Secrets it is entitled to.

var (
	guardOnce sync.Once
	guardErr  error
)

// requireSecretDeletionGuard installs config/default's
// lethe-manager-secret-deletion policy and binding (as rendered: the
// manager's ServiceAccount filled in) and waits until it is enforced.
func requireSecretDeletionGuard(t *testing.T) {
	t.Helper()
	guardOnce.Do(func() { guardErr = installGuard() })
	if guardErr != nil {
		t.Fatal(guardErr)
	}
}

func installGuard() error {
	ctx := context.Background()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		return fmt.Errorf("kubectl kustomize config/default: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	installed := 0
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if !strings.HasPrefix(u.GetKind(), "ValidatingAdmissionPolicy") || u.GetName() != "lethe-manager-secret-deletion" {
			continue
		}
		u.SetNamespace("") // cluster-scoped (kustomize adds one: kubernetes-sigs/kustomize#6051)
		if err := k8s.Create(ctx, u); err != nil {
			return fmt.Errorf("creating %s: %w", u.GetKind(), err)
		}
		installed++
	}
	if installed != 2 {
		return fmt.Errorf("config/default renders %d objects named lethe-manager-secret-deletion, want a policy and a binding", installed)
	}
	// Enforced once a dry-run deletion of a Secret without the label is refused.
	mgr, err := client.New(managerConfig(), client.Options{Scheme: env.Scheme})
	if err != nil {
		return err
	}
	probe := secret("default", "guard-probe", map[string]string{"k": "v"})
	if err := k8s.Create(ctx, probe); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := mgr.Delete(ctx, secret("default", "guard-probe", nil), client.DryRunAll)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "lethe-manager-secret-deletion") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the guard is not enforced: a dry-run deletion by the manager returned %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTheManagerMayDeleteOnlyTheSecretsItIsEntitledTo(t *testing.T) {
	requireSecretDeletionGuard(t)
	mgr, err := client.New(managerConfig(), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	ctx := t.Context()
	owner := request(ns, "access", privacyv1.RequestAccess, "nobody")
	create(t, owner)

	labelled := secret(ns, "handed-over", map[string]string{"email": "x@example.com"})
	labelled.Labels = map[string]string{privacyv1.ConsumeLabel: "true"}
	wrongValue := secret(ns, "label-false", map[string]string{"email": "x@example.com"})
	wrongValue.Labels = map[string]string{privacyv1.ConsumeLabel: "false"}
	owned := secret(ns, "owned", map[string]string{"export.json": "{}"})
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: privacyv1.GroupVersion.String(), Kind: "DataSubjectRequest", Name: owner.Name, UID: owner.UID}}
	usersOwn := secret(ns, "users-own", map[string]string{"email": "x@example.com"})
	connection := secret(ns, "db", map[string]string{"dsn": "postgres://u:p@h/db"})
	for _, s := range []*corev1.Secret{labelled, wrongValue, owned, usersOwn, connection} {
		create(t, s)
	}
	for _, s := range []*corev1.Secret{labelled, owned} {
		if err := mgr.Delete(ctx, s); err != nil {
			t.Errorf("the manager may not delete %s, which it is entitled to: %v", s.Name, err)
		}
	}
	for _, s := range []*corev1.Secret{wrongValue, usersOwn, connection} {
		err := mgr.Delete(ctx, s)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "may delete only Secrets labelled privacy.lethe.dev/consume=true") {
			t.Errorf("the manager deleting %s: %v, want Forbidden by the admission policy", s.Name, err)
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(s), &corev1.Secret{}); err != nil {
			t.Errorf("%s: %v (it must still exist)", s.Name, err)
		}
	}
	// The policy narrows the manager only: a person still deletes their Secret.
	if err := k8s.Delete(ctx, usersOwn); err != nil {
		t.Errorf("the admin could not delete a Secret: %v", err)
	}
}

const footMarker = "footprobe"

const (
	footEmail = "FootProbe.Subject@forget.example"
	footName  = "Ana Footprobe-K4"
	footItem  = "FOOTPROBE-ITEM-1989"
	footNew   = "Footprobe Rectified Name"
)

// TestNothingOfTheSubjectRemainsOnceItsRequestsAreComplete runs an Access
// (encrypted), a Rectification and an Erasure of one subject through the
// manager, each handed its Secrets, then searches the namespace's Secrets,
// every request, store and hold (spec and status), every Event and the
// manager's logs for the subject's data.
func TestNothingOfTheSubjectRemainsOnceItsRequestsAreComplete(t *testing.T) {
	requireSecretDeletionGuard(t) // the installation's narrowing: the manager works within it
	ctx := t.Context()
	ns := env.Namespace(t)
	conn, dsn := peopleDB(t, map[int64]string{1: footEmail, 2: "bystander@x.io"})
	mustExec(t, conn, `UPDATE people SET name = $1 WHERE id = 1`, footName)
	mustExec(t, conn, `UPDATE orders SET item = $1 WHERE person_id = 1`, footItem)
	create(t, secret(ns, "pg", map[string]string{"dsn": dsn}))
	pg := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: peopleStoreSpec()}
	pg.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: "pg", Key: "dsn"}
	create(t, pg)
	waitReady(t, pg, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	handed := func(name string, data map[string]string) {
		s := secret(ns, name, data)
		s.Labels = map[string]string{privacyv1.ConsumeLabel: "true"}
		create(t, s)
	}
	for _, name := range []string{"access-subject", "rectify-subject", "erase-subject"} {
		handed(name, map[string]string{"email": footEmail})
	}
	handed("rectify-values", map[string]string{"user.contact.name": footNew})
	if where := footprintLeaks(t, ns); !strings.Contains(where, "secrets") {
		t.Fatalf("the search does not find the subject in its own Secrets (found in %q): it would prove nothing", where)
	}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	access := request(ns, "access", privacyv1.RequestAccess, "access-subject")
	access.Spec.Export = &privacyv1.ExportSpec{Recipients: []privacyv1.AgeRecipient{privacyv1.AgeRecipient(id.Recipient().String())}}
	create(t, access)
	waitReady(t, access, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	export := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: access.Status.ExportSecretRef.Name}, export); err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(export.Data[controllers.ExportAgeKey]), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(r)
	for _, v := range []string{footEmail, footName, footItem} {
		if !bytes.Contains(plain, []byte(v)) {
			t.Errorf("the decrypted export lacks %q: the probe did not go through", v)
		}
	}

	rectify := request(ns, "rectify", privacyv1.RequestRectification, "rectify-subject")
	rectify.Spec.Rectification = &privacyv1.Rectification{ValuesFrom: &privacyv1.SecretReference{Name: "rectify-values"}}
	create(t, rectify)
	waitReady(t, rectify, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	var name string
	if err := conn.QueryRow(ctx, `SELECT name FROM people WHERE id = 1`).Scan(&name); err != nil || name != footNew {
		t.Errorf("the rectification did not go through: %q %v", name, err)
	}

	erase := request(ns, "erase", privacyv1.RequestErasure, "erase-subject")
	create(t, erase)
	waitReady(t, erase, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM people WHERE id = 1`).Scan(&left); err != nil || left != 0 {
		t.Errorf("the subject was not erased: %d rows, %v", left, err)
	}

	// Complete, and the window (0 here) has passed: every input Secret is gone.
	for _, dsr := range []*privacyv1.DataSubjectRequest{access, rectify, erase} {
		eventually(t, 30*time.Second, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(dsr), dsr); err != nil {
				return err
			}
			if dsr.Status.IdentitiesDiscardedAt == nil {
				return fmt.Errorf("%s: identities not discarded yet: %+v", dsr.Name, dsr.Status.InputSecrets)
			}
			return nil
		})
	}
	if where := footprintLeaks(t, ns); where != "" {
		t.Errorf("the subject's data remains in the cluster once the requests are complete: %s", where)
	}
}

// footprintLeaks searches the namespace's Secrets (data decoded), requests,
// stores and holds (spec and status), Events and the manager's logs for the
// probe, and says where it was found.
func footprintLeaks(t *testing.T, ns string) string {
	t.Helper()
	ctx := t.Context()
	places := map[string]string{"manager logs": managerLogs.String()}
	places["manager logs (hex dumps joined)"] = hexDumpText(places["manager logs"])

	secrets := &corev1.SecretList{}
	if err := k8s.List(ctx, secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range secrets.Items {
		raw, _ := json.Marshal(s)
		b.Write(raw)
		for k, v := range s.Data {
			b.WriteString(k + "=" + string(v) + "\n")
		}
	}
	places["secrets"] = b.String()

	var objs bytes.Buffer
	for _, l := range []client.ObjectList{&privacyv1.DataSubjectRequestList{}, &privacyv1.DataStoreList{}, &privacyv1.LegalHoldList{}} {
		if err := k8s.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		_ = json.NewEncoder(&objs).Encode(l)
	}
	places["requests, stores and holds"] = objs.String()

	var evs bytes.Buffer
	events, coreEvents := &eventsv1.EventList{}, &corev1.EventList{}
	for _, l := range []client.ObjectList{events, coreEvents} {
		if err := k8s.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		_ = json.NewEncoder(&evs).Encode(l)
	}
	places["events"] = evs.String()

	var found []string
	for where, text := range places {
		if i := strings.Index(strings.ToLower(text), footMarker); i >= 0 {
			if where == "secrets" {
				found = append(found, where) // expected before completion; no need to print it
				continue
			}
			from, to := max(i-80, 0), min(i+80, len(text))
			found = append(found, fmt.Sprintf("%s: ...%s...", where, text[from:to]))
		}
	}
	return strings.Join(found, "; ")
}
