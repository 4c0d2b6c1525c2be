package controllers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// testExportPartBytes is the suite's part size: small, so an export of a few
// hundred KiB is split.
const testExportPartBytes = 64 << 10

// exportParts reads, in status order, the Secrets of dsr's export, checking
// each is owned by the request, within the part size and annotated with its
// place; it returns their data under key, concatenated.
func exportParts(t *testing.T, dsr *privacyv1.DataSubjectRequest, key string) []byte {
	t.Helper()
	parts := dsr.Status.ExportParts
	if len(parts) < 2 {
		t.Fatalf("status.exportParts = %v, want the export split", parts)
	}
	if dsr.Status.ExportSecretRef == nil || dsr.Status.ExportSecretRef.Name != parts[0].Name {
		t.Errorf("exportSecretRef = %v, want the first part %s", dsr.Status.ExportSecretRef, parts[0].Name)
	}
	var all []byte
	for i, p := range parts {
		if want := fmt.Sprintf("%s-export-%d", dsr.Name, i); p.Name != want {
			t.Errorf("part %d is %s, want %s", i, p.Name, want)
		}
		sec := &corev1.Secret{}
		if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: dsr.Namespace, Name: p.Name}, sec); err != nil {
			t.Fatal(err)
		}
		if !metav1.IsControlledBy(sec, dsr) {
			t.Errorf("%s is not owned by the request", p.Name)
		}
		if len(sec.Data) != 1 || sec.Data[key] == nil {
			t.Fatalf("%s holds keys %v, want only %s", p.Name, keys(sec.Data), key)
		}
		if n := len(sec.Data[key]); n > testExportPartBytes || (i < len(parts)-1 && n != testExportPartBytes) {
			t.Errorf("%s holds %d bytes; parts are full %d-byte pieces but the last", p.Name, n, testExportPartBytes)
		}
		if sec.Annotations[controllers.ExportPartAnnotation] != strconv.Itoa(i) || sec.Annotations[controllers.ExportPartsAnnotation] != strconv.Itoa(len(parts)) {
			t.Errorf("%s annotations %v, want part %d of %d", p.Name, sec.Annotations, i, len(parts))
		}
		if sec.Annotations[controllers.ExportExpiresAnnotation] == "" {
			t.Errorf("%s does not say when it expires", p.Name)
		}
		all = append(all, sec.Data[key]...)
	}
	return all
}

// bigAccount makes axb@x.io's account name 300 KB: an export of about five parts.
func bigAccount(t *testing.T, ns string) {
	t.Helper()
	db, _ := readyStore(t, ns)
	exec(t, db, `UPDATE accounts SET name = repeat('x', 300000) WHERE id = 2`)
	create(t, secret(ns, "subject", map[string]string{"email": "axb@x.io"}))
}

func TestALargeExportIsSplitAcrossOwnedSecretsThatReassembleIntoTheDocumentAndAllExpire(t *testing.T) {
	ns := env.Namespace(t)
	bigAccount(t, ns)
	dsr := request(ns, "access", privacyv1.RequestAccess, "subject")
	dsr.Spec.Export = &privacyv1.ExportSpec{TTL: "2d"}
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	doc := exportParts(t, dsr, controllers.ExportKey)
	if int64(len(doc)) != dsr.Status.ExportBytes {
		t.Errorf("parts hold %d bytes, status.exportBytes says %d", len(doc), dsr.Status.ExportBytes)
	}
	var export map[string]map[string][]map[string]any
	if err := json.Unmarshal(doc, &export); err != nil {
		t.Fatalf("the reassembled export is not JSON: %v", err)
	}
	// The same document one Secret would hold: json.Marshal's layout.
	if again, _ := json.Marshal(export); !bytes.Equal(again, doc) {
		t.Error("the reassembled export is not laid out as the single-Secret document")
	}
	store := export["app-db"]
	if len(store["accounts"]) != 1 || store["accounts"][0]["email"] != "axb@x.io" || len(store["accounts"][0]["name"].(string)) != 300000 {
		t.Errorf("accounts export is not axb@x.io's whole row")
	}
	if len(store["access_logs"]) != 3 || len(store["invoices"]) != 2 || len(store["invoice_lines"]) != 4 {
		t.Errorf("export sizes: logs %d invoices %d lines %d", len(store["access_logs"]), len(store["invoices"]), len(store["invoice_lines"]))
	}
	assertNoPersonalData(t, dsr, "axb@x.io")

	names := dsr.Status.ExportParts
	advance(t, 49*time.Hour)
	poke(t, dsr)
	for _, p := range names {
		eventually(t, 30*time.Second, func() error { return secretGone(t, ns, p.Name) })
	}
	waitExportDeleted(t, dsr)
	assertEvent(t, dsr, privacyv1.ReasonExportExpired)
}

func TestASplitEncryptedExportDecryptsOnceItsPartsAreJoined(t *testing.T) {
	ns := env.Namespace(t)
	bigAccount(t, ns)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dsr := request(ns, "access", privacyv1.RequestAccess, "subject")
	dsr.Spec.Export = &privacyv1.ExportSpec{Recipients: []privacyv1.AgeRecipient{privacyv1.AgeRecipient(id.Recipient().String())}}
	create(t, dsr)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	if !dsr.Status.ExportEncrypted {
		t.Error("status.exportEncrypted is false")
	}
	sealed := exportParts(t, dsr, controllers.ExportAgeKey)
	if bytes.Contains(sealed, []byte("axb@x.io")) || bytes.Contains(sealed, []byte(strings.Repeat("x", 64))) {
		t.Error("the encrypted parts hold the export in clear")
	}
	// cat parts | age -d
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		t.Fatalf("the joined parts do not decrypt: %v", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("the joined parts do not decrypt: %v", err)
	}
	var export map[string]map[string][]map[string]any
	if err := json.Unmarshal(plain, &export); err != nil {
		t.Fatalf("the decrypted export is not JSON: %v", err)
	}
	if int64(len(plain)) != dsr.Status.ExportBytes {
		t.Errorf("decrypted %d bytes, status.exportBytes says %d", len(plain), dsr.Status.ExportBytes)
	}
	if accounts := export["app-db"]["accounts"]; len(accounts) != 1 || accounts[0]["email"] != "axb@x.io" {
		t.Error("decrypted accounts are not axb@x.io's row only")
	}
}
