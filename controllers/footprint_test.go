package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// What a completed request leaves of its subject in the cluster: the Secrets
// handed to it are deleted when Lethe may delete them, and only then; the
// export expires; an encrypted export never holds the data in clear.

func consumable(s *corev1.Secret) *corev1.Secret {
	s.Labels = map[string]string{privacyv1.ConsumeLabel: "true"}
	return s
}

func secretGone(t *testing.T, ns, name string) error {
	t.Helper()
	err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("secret %s still exists", name)
}

func secretExists(t *testing.T, ns, name string) {
	t.Helper()
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{}); err != nil {
		t.Errorf("secret %s: %v (it must be left alone)", name, err)
	}
}

// waitInput waits until the request's receipt says what became of Secret name.
func waitInput(t *testing.T, dsr *privacyv1.DataSubjectRequest, name string, state privacyv1.InputSecretState) privacyv1.InputSecretOutcome {
	t.Helper()
	var found privacyv1.InputSecretOutcome
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
			return err
		}
		for _, o := range dsr.Status.InputSecrets {
			if o.Name == name {
				found = o
				if o.State == state {
					return nil
				}
				return fmt.Errorf("secret %s is %s (%s), want %s", name, o.State, o.Message, state)
			}
		}
		return fmt.Errorf("no outcome for secret %s yet: %+v", name, dsr.Status.InputSecrets)
	})
	return found
}

func TestCompletedRequestsDeleteOnlyTheSecretsTheyAreEntitledTo(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)

	// Handed over: labelled.
	create(t, consumable(secret(ns, "subject", map[string]string{"email": "a_b@x.io"})))
	erase := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, erase)
	// Not handed over: the same kind of Secret, without the label.
	create(t, secret(ns, "users-own", map[string]string{"email": "axb@x.io"}))
	access := request(ns, "access", privacyv1.RequestAccess, "users-own")
	create(t, access)
	// A dry run keeps even a labelled Secret: the real request follows with it.
	create(t, consumable(secret(ns, "planned", map[string]string{"email": "zoë@x.io"})))
	plan := request(ns, "plan", privacyv1.RequestErasure, "planned")
	plan.Spec.DryRun = true
	create(t, plan)
	// Rectification: the subject and the new values, both labelled.
	create(t, consumable(secret(ns, "rect-subject", map[string]string{"email": "A_B@x.io"})))
	create(t, consumable(secret(ns, "rect-values", map[string]string{"user.contact.name": "New Name"})))
	rect := request(ns, "rectify", privacyv1.RequestRectification, "rect-subject")
	rect.Spec.Rectification = &privacyv1.Rectification{ValuesFrom: &privacyv1.SecretReference{Name: "rect-values"}}
	create(t, rect)

	waitRequest(t, erase, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	eventually(t, 30*time.Second, func() error { return secretGone(t, ns, "subject") })
	out := waitInput(t, erase, "subject", privacyv1.InputDeleted)
	if out.Purpose != privacyv1.InputSubject || out.Time == nil || out.Time.Before(erase.Status.CompletionTime) {
		t.Errorf("receipt %+v, want purpose Subject and a time at or after completion (%s)", out, erase.Status.CompletionTime)
	}
	if erase.Status.IdentitiesDiscardedAt == nil || erase.Status.IdentitiesDiscardAfter == nil ||
		!erase.Status.IdentitiesDiscardAfter.Equal(erase.Status.CompletionTime) {
		t.Errorf("discarded at %v, after %v: want both set, the window being 0", erase.Status.IdentitiesDiscardedAt, erase.Status.IdentitiesDiscardAfter)
	}
	if erase.Status.ReceiptDigest == "" {
		t.Error("the receipt digest was lost")
	}
	assertEvent(t, erase, privacyv1.ReasonIdentitiesDiscarded)

	waitRequest(t, access, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	kept := waitInput(t, access, "users-own", privacyv1.InputKept)
	if !strings.Contains(kept.Message, privacyv1.ConsumeLabel+"=true") {
		t.Errorf("kept with message %q: want it to say how to hand a Secret over", kept.Message)
	}
	secretExists(t, ns, "users-own")
	if access.Status.IdentitiesDiscardedAt != nil {
		t.Error("identitiesDiscardedAt is set although the subject's Secret is still there")
	}
	assertEvent(t, access, privacyv1.ReasonSecretKept)

	waitRequest(t, plan, metav1.ConditionTrue, privacyv1.ReasonDryRunCompleted)
	waitRequest(t, rect, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	eventually(t, 30*time.Second, func() error {
		if err := secretGone(t, ns, "rect-subject"); err != nil {
			return err
		}
		return secretGone(t, ns, "rect-values")
	})
	if o := waitInput(t, rect, "rect-values", privacyv1.InputDeleted); o.Purpose != privacyv1.InputRectification {
		t.Errorf("rect-values has purpose %s, want Rectification", o.Purpose)
	}
	secretExists(t, ns, "planned")
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(plan), plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Status.InputSecrets) != 0 {
		t.Errorf("a dry run recorded input secrets %+v", plan.Status.InputSecrets)
	}
	secretExists(t, ns, "app-db") // the store's own Secret, of course
	assertNoPersonalData(t, erase, "a_b@x.io")
	assertNoPersonalData(t, rect, "A_B@x.io", "New Name")
}

func TestASecretStillReadByAHoldOrARequestWaitsAndAnOwnedOneIsConsumed(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	create(t, consumable(secret(ns, "subject", map[string]string{"email": "axb@x.io"})))
	hold := &privacyv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-7"},
		Spec: privacyv1.LegalHoldSpec{
			Reason:  "Tribunal, case 7",
			Subject: &privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: "subject"}}},
		},
	}
	create(t, hold)
	access := request(ns, "access", privacyv1.RequestAccess, "subject")
	create(t, access)
	waitRequest(t, access, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	w := waitInput(t, access, "subject", privacyv1.InputWaiting)
	if !strings.Contains(w.Message, "LegalHold case-7") {
		t.Errorf("waiting with message %q, want it to name the hold", w.Message)
	}
	secretExists(t, ns, "subject")

	// The hold ends: nothing reads the Secret any more.
	if err := k8s.Delete(t.Context(), hold); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error { return secretGone(t, ns, "subject") })
	waitInput(t, access, "subject", privacyv1.InputDeleted)

	// Owned by the request instead of labelled: consumed too. The request
	// exists first (the owner reference needs its UID) and waits for it.
	owned := request(ns, "access-owned", privacyv1.RequestAccess, "owned-subject")
	create(t, owned)
	sec := secret(ns, "owned-subject", map[string]string{"email": "zoë@x.io"})
	sec.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: privacyv1.GroupVersion.String(), Kind: "DataSubjectRequest", Name: owned.Name, UID: owned.UID,
	}}
	create(t, sec)
	eventually(t, 60*time.Second, func() error { return secretGone(t, ns, "owned-subject") })
	waitInput(t, owned, "owned-subject", privacyv1.InputDeleted)

	// Still read by another, unfinished, request: it waits for that one.
	create(t, consumable(secret(ns, "shared", map[string]string{"email": "a_b@x.io"})))
	first := request(ns, "erase-shared", privacyv1.RequestErasure, "shared")
	first.Spec.Scope.Stores = []privacyv1.StoreName{"not-yet"} // waits: reads the Secret, never completes
	create(t, first)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), first) })
	second := request(ns, "access-shared", privacyv1.RequestAccess, "shared")
	create(t, second)
	waitRequest(t, second, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if o := waitInput(t, second, "shared", privacyv1.InputWaiting); !strings.Contains(o.Message, "request erase-shared") {
		t.Errorf("waiting with message %q, want it to name the other request", o.Message)
	}
	secretExists(t, ns, "shared")
}

func TestExportExpiresAfterItsTTL(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io"}))
	short := request(ns, "access-2d", privacyv1.RequestAccess, "subject")
	short.Spec.Export = &privacyv1.ExportSpec{TTL: "2d"}
	create(t, short)
	dflt := request(ns, "access-default", privacyv1.RequestAccess, "subject")
	create(t, dflt)
	waitRequest(t, short, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	waitRequest(t, dflt, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	for dsr, ttl := range map[*privacyv1.DataSubjectRequest]privacyv1.Period{short: "2d", dflt: "30d"} {
		exp := dsr.Status.ExportExpiresAt
		want, _ := ttl.After(dsr.Status.CompletionTime.Time)
		if exp == nil || exp.Sub(want).Abs() > time.Minute {
			t.Errorf("%s: export expires at %v, want completion (%s) + %s", dsr.Name, exp, dsr.Status.CompletionTime, ttl)
		}
		sec := &corev1.Secret{}
		if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: dsr.Status.ExportSecretRef.Name}, sec); err != nil {
			t.Fatal(err)
		}
		if sec.Annotations[controllers.ExportExpiresAnnotation] != exp.UTC().Format(time.RFC3339) {
			t.Errorf("%s: the export Secret says it expires at %q, the receipt %s", dsr.Name, sec.Annotations[controllers.ExportExpiresAnnotation], exp)
		}
	}

	advance(t, 49*time.Hour)
	poke(t, short)
	poke(t, dflt)
	eventually(t, 30*time.Second, func() error { return secretGone(t, ns, "access-2d-export") })
	waitExportDeleted(t, short)
	if short.Status.ExportDeletedAt.Before(short.Status.ExportExpiresAt) {
		t.Errorf("deleted at %s, before it expired (%s)", short.Status.ExportDeletedAt, short.Status.ExportExpiresAt)
	}
	if !apimeta.IsStatusConditionTrue(short.Status.Conditions, privacyv1.ConditionReady) {
		t.Error("the request is no longer Ready once its export expired")
	}
	assertEvent(t, short, privacyv1.ReasonExportExpired)
	// The 30-day export is still there.
	secretExists(t, ns, "access-default-export")
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dflt), dflt); err != nil {
		t.Fatal(err)
	}
	if dflt.Status.ExportDeletedAt != nil {
		t.Error("the 30-day export was deleted after 2 days")
	}
}

func TestEncryptedExportDecryptsWithThePrivateKeyAndHoldsNothingInClear(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io"}))
	dsr := request(ns, "access", privacyv1.RequestAccess, "subject")
	dsr.Spec.Export = &privacyv1.ExportSpec{Recipients: []privacyv1.AgeRecipient{privacyv1.AgeRecipient(id.Recipient().String())}}
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if !dsr.Status.ExportEncrypted {
		t.Error("status.exportEncrypted is false")
	}
	sec := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: dsr.Status.ExportSecretRef.Name}, sec); err != nil {
		t.Fatal(err)
	}
	if len(sec.Data) != 1 || sec.Data[controllers.ExportAgeKey] == nil {
		t.Fatalf("export Secret keys %v, want only %s", keys(sec.Data), controllers.ExportAgeKey)
	}
	raw, _ := json.Marshal(sec)
	for _, clear := range []string{"axb@x.io", "Name axb@x.io", "FR0002", "Strasbourg 2", "10.0.0.2", `"accounts"`} {
		if bytes.Contains(raw, []byte(clear)) || bytes.Contains(sec.Data[controllers.ExportAgeKey], []byte(clear)) {
			t.Errorf("the export Secret holds %q in clear", clear)
		}
	}
	r, err := age.Decrypt(bytes.NewReader(sec.Data[controllers.ExportAgeKey]), id)
	if err != nil {
		t.Fatalf("the requester's key does not decrypt the export: %v", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var export map[string]map[string][]map[string]any
	if err := json.Unmarshal(plain, &export); err != nil {
		t.Fatalf("the decrypted export is not JSON: %v", err)
	}
	if accounts := export["app-db"]["accounts"]; len(accounts) != 1 || accounts[0]["email"] != "axb@x.io" {
		t.Errorf("decrypted accounts = %v, want axb@x.io's row only", accounts)
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := age.Decrypt(bytes.NewReader(sec.Data[controllers.ExportAgeKey]), other); err == nil {
		t.Error("another key decrypts the export")
	}
}

func TestAnExportKeyThatCannotBeUsedStopsTheRequestBeforeAnyStoreIsRead(t *testing.T) {
	ns := env.Namespace(t)
	readyStore(t, ns)
	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io"}))
	id, _ := age.GenerateX25519Identity()
	good := id.Recipient().String()
	// The right shape and alphabet (admission accepts it), a wrong checksum:
	// its last character replaced by the next one of the bech32 alphabet (a
	// bech32 checksum detects any one substitution).
	const bech32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	bad := []byte(good)
	last := strings.IndexByte(bech32, bad[len(bad)-1])
	bad[len(bad)-1] = bech32[(last+1)%len(bech32)]
	if _, err := age.ParseX25519Recipient(string(bad)); err == nil {
		t.Fatal("the corrupted key still parses: the test proves nothing")
	}
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]privacyv1.AgeRecipient{
		"bad-checksum": {privacyv1.AgeRecipient(good), privacyv1.AgeRecipient(bad)},
		"mixed-kinds":  {privacyv1.AgeRecipient(good), privacyv1.AgeRecipient(pq.Recipient().String())},
	}
	for name, recipients := range cases {
		dsr := request(ns, name, privacyv1.RequestAccess, "subject")
		dsr.Spec.Export = &privacyv1.ExportSpec{Recipients: recipients}
		create(t, dsr)
		waitRequest(t, dsr, metav1.ConditionFalse, privacyv1.ReasonInvalidExportRecipient)
		if !apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) {
			t.Errorf("%s: want Stalled: the spec is immutable, retrying cannot help", name)
		}
		for _, s := range dsr.Status.Stores {
			if s.Attempts != 0 || len(s.Collections) != 0 {
				t.Errorf("%s: store %s was used (%d attempts, %v) although the key was refused", name, s.Store, s.Attempts, s.Collections)
			}
		}
		if err := secretGone(t, ns, name+"-export"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		msg := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionReady).Message
		if !strings.Contains(msg, "nothing was read from the stores") || strings.Contains(msg, string(bad)) || strings.Contains(msg, good) {
			t.Errorf("%s: message %q: want it to say nothing was read, without quoting the key", name, msg)
		}
	}
	// A post-quantum key alone works.
	dsr := request(ns, "pq", privacyv1.RequestAccess, "subject")
	dsr.Spec.Export = &privacyv1.ExportSpec{Recipients: []privacyv1.AgeRecipient{privacyv1.AgeRecipient(pq.Recipient().String())}}
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	sec := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "pq-export"}, sec); err != nil {
		t.Fatal(err)
	}
	if _, err := age.Decrypt(bytes.NewReader(sec.Data[controllers.ExportAgeKey]), pq); err != nil {
		t.Errorf("the post-quantum key does not decrypt its export: %v", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// waitExportDeleted waits until dsr's receipt records that its export was deleted.
func waitExportDeleted(t *testing.T, dsr *privacyv1.DataSubjectRequest) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
			return err
		}
		if dsr.Status.ExportDeletedAt == nil {
			return fmt.Errorf("no exportDeletedAt yet")
		}
		return nil
	})
}
