package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// receiptJSON is what receipt -o json prints, as a reader of it sees it.
type receiptJSON struct {
	Receipt struct {
		Request        string                   `json:"request"`
		UID            string                   `json:"uid"`
		Type           string                   `json:"type"`
		DryRun         bool                     `json:"dryRun"`
		SubjectDigest  string                   `json:"subjectDigest"`
		StartTime      string                   `json:"startTime"`
		CompletionTime string                   `json:"completionTime"`
		Stores         []privacyv1.StoreOutcome `json:"stores"`
	} `json:"receipt"`
	ReceiptDigest string `json:"receiptDigest"`
	Verified      *bool  `json:"verified"`
	Details       struct {
		Ready struct {
			Reason string `json:"reason"`
		} `json:"ready"`
		DeadlineMet *bool `json:"deadlineMet"`
		Export      *struct {
			Secrets []string `json:"secrets"`
		} `json:"export"`
	} `json:"details"`
}

func parseReceipt(t *testing.T, r result) receiptJSON {
	t.Helper()
	var doc receiptJSON
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("stdout is not a JSON receipt: %v\n%s", err, r)
	}
	return doc
}

func collection(doc receiptJSON, store, name string) *privacyv1.CollectionOutcome {
	for _, s := range doc.Receipt.Stores {
		for i, c := range s.Collections {
			if s.Store == store && c.Collection == name {
				return &s.Collections[i]
			}
		}
	}
	return nil
}

// progressLine is a --wait progress line: "[  3s] Reason: ...".
var progressLine = regexp.MustCompile(`(?m)^\[ *\d+s\] `)

func TestEraseWaitEndToEndAndReceiptVerify(t *testing.T) {
	ns := env.Namespace(t)
	db := readyStore(t, ns)
	const email = "jane@example.com"

	// erase --wait, the identity from standard input.
	r := lethe(t, "# the subject\nemail="+email+"\n",
		"erase", "-n", ns, "--identity-file", "-", "--wait", "--timeout", "2m", "-o", "json")
	if r.code != 0 {
		t.Fatalf("erase --wait failed:\n%s", r)
	}
	assertNoLeak(t, r, email)
	if progressLine.MatchString(r.stderr) {
		t.Errorf("progress lines written although standard error is not a terminal:\n%s", r)
	}
	name := createdRequest(t, r)
	doc := parseReceipt(t, r)

	// The request: the identity only in its Secret, never inline.
	dsr := &privacyv1.DataSubjectRequest{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, dsr); err != nil {
		t.Fatal(err)
	}
	if dsr.Spec.Type != privacyv1.RequestErasure || dsr.Spec.Subject.Identities != nil || dsr.Spec.Subject.IdentitiesFrom == nil {
		t.Fatalf("request spec = %+v, want an Erasure reading its subject from a Secret", dsr.Spec)
	}
	subjectSecret := dsr.Spec.Subject.IdentitiesFrom.SecretRef.Name
	if !strings.HasPrefix(subjectSecret, "erasure-subject-") || !strings.Contains(r.stderr, "secret/"+subjectSecret+" created (identity types: email)") {
		t.Errorf("subject Secret %q not reported as created:\n%s", subjectSecret, r)
	}

	// The receipt printed is the controller's: same digest, same outcomes.
	if doc.ReceiptDigest == "" || doc.ReceiptDigest != dsr.Status.ReceiptDigest {
		t.Errorf("printed receiptDigest %q, status has %q", doc.ReceiptDigest, dsr.Status.ReceiptDigest)
	}
	if doc.Receipt.Request != ns+"/"+name || doc.Receipt.UID != string(dsr.UID) || doc.Receipt.SubjectDigest != dsr.Status.SubjectDigest ||
		!strings.HasPrefix(doc.Receipt.SubjectDigest, "hmac-sha256:") || doc.Details.Ready.Reason != privacyv1.ReasonCompleted {
		t.Errorf("receipt header = %+v, ready %+v", doc.Receipt, doc.Details.Ready)
	}
	if doc.Details.DeadlineMet == nil || !*doc.Details.DeadlineMet {
		t.Errorf("deadlineMet = %v, want true", doc.Details.DeadlineMet)
	}
	for coll, want := range map[string]struct {
		action string
		rows   int64
	}{"accounts": {"anonymize", 1}, "orders": {"delete", 2}, "invoices": {"retain", 1}} {
		got := collection(doc, "app-db", coll)
		if got == nil || got.Action != want.action || got.Rows != want.rows {
			t.Errorf("receipt for %s = %+v, want %s %d", coll, got, want.action, want.rows)
		}
	}
	if c := collection(doc, "app-db", "invoices"); c == nil || !strings.Contains(c.Reason, "accounting") {
		t.Errorf("retained invoices without their reason: %+v", c)
	}

	// The database: the subject's rows erased, the other account's intact.
	if n := count(t, db, `SELECT count(*) FROM orders WHERE account_id = 1`); n != 0 {
		t.Errorf("%d orders of the subject left", n)
	}
	if n := count(t, db, `SELECT count(*) FROM orders WHERE account_id = 2`); n != 2 {
		t.Errorf("other subject's orders: %d, want 2", n)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE email = $1`, email); n != 0 {
		t.Errorf("the subject's e-mail is still in accounts")
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE email = 'john@example.com' AND name = 'John Roe'`); n != 1 {
		t.Errorf("the other account changed")
	}

	// Lethe was entitled to delete the subject Secret (label and owner
	// reference) and did, once the request was complete.
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
			return err
		}
		for _, in := range dsr.Status.InputSecrets {
			if in.Name == subjectSecret && in.State == privacyv1.InputDeleted {
				return nil
			}
		}
		return fmt.Errorf("input Secrets: %+v", dsr.Status.InputSecrets)
	})
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: subjectSecret}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("subject Secret after completion: %v, want NotFound", err)
	}

	// receipt --verify: the digest recomputed from the receipt matches.
	r = lethe(t, "", "receipt", name, "-n", ns, "--verify")
	if r.code != 0 || !strings.Contains(r.stdout, "Verified: the digest recomputed from this receipt matches.") ||
		!strings.Contains(r.stdout, "| orders | delete | 2 |") || !strings.Contains(r.stdout, "`"+dsr.Status.ReceiptDigest+"`") {
		t.Errorf("receipt --verify:\n%s", r)
	}
	assertNoLeak(t, r, email)
	r = lethe(t, "", "receipt", name, "-n", ns, "--verify", "-o", "json")
	if v := parseReceipt(t, r).Verified; r.code != 0 || v == nil || !*v {
		t.Errorf("receipt --verify -o json: verified = %v\n%s", v, r)
	}
	saved := filepath.Join(t.TempDir(), "receipt.json")
	if err := os.WriteFile(saved, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}

	// status: the list and the detail.
	r = lethe(t, "", "status", "-n", ns)
	if r.code != 0 || !regexp.MustCompile(`(?m)^`+name+`\s+Erasure\s+True\s+Completed\s+1/1\s+met\s+-\s+\S+$`).MatchString(r.stdout) {
		t.Errorf("status list:\n%s", r)
	}
	r = lethe(t, "", "status", name, "-n", ns)
	for _, want := range []string{"Subject Secret:", subjectSecret, "Ready:", "True (Completed)", "Collections of app-db:", "invoices are kept 10 years for accounting", dsr.Status.ReceiptDigest, "Input Secrets:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status %s: no %q:\n%s", name, want, r)
		}
	}
	assertNoLeak(t, r, email)

	// A saved copy verifies offline, and a changed copy does not.
	if r := lethe(t, "", "receipt", "--file", saved, "--verify"); r.code != 0 || !strings.Contains(r.stdout, "Verified:") {
		t.Errorf("receipt --file --verify of the saved copy:\n%s", r)
	}
	copyData, _ := os.ReadFile(saved)
	changed := strings.Replace(string(copyData), `"rows": 2`, `"rows": 1`, 1)
	if changed == string(copyData) {
		t.Fatal("the saved receipt has no \"rows\": 2 to change")
	}
	if r := lethe(t, changed, "receipt", "--file", "-", "--verify"); r.code == 0 || !strings.Contains(r.stderr, "receipt verification FAILED") || r.stdout != "" {
		t.Errorf("a changed copy verified:\n%s", r)
	}

	// Tampering with the status through the API: verification fails.
	for i := range dsr.Status.Stores[0].Collections {
		if c := &dsr.Status.Stores[0].Collections[i]; c.Collection == "orders" {
			c.Rows = 0
		}
	}
	if err := k8s.Status().Update(t.Context(), dsr); err != nil {
		t.Fatal(err)
	}
	r = lethe(t, "", "receipt", name, "-n", ns, "--verify")
	if r.code != 1 || r.stdout != "" ||
		!strings.Contains(r.stderr, "error: receipt verification FAILED for "+ns+"/"+name) ||
		!strings.Contains(r.stderr, dsr.Status.ReceiptDigest) {
		t.Errorf("receipt --verify of a tampered receipt:\n%s", r)
	}
	// Without --verify the tampered receipt prints as it now is: only
	// verification can tell.
	if r := lethe(t, "", "receipt", name, "-n", ns); r.code != 0 || !strings.Contains(r.stdout, "| orders | delete | 0 |") {
		t.Errorf("receipt without --verify:\n%s", r)
	}
}

func TestEraseCreatesAConsumableOwnedSecretAndNoInlineIdentity(t *testing.T) {
	ns := env.Namespace(t)
	const email = "shape.subject@example.com"
	r := lethe(t, "", "erase", "-n", ns, "--name", "shape", "--identity", "email="+email, "--store", "not-there-yet", "--deadline", "12h")
	if r.code != 0 {
		t.Fatalf("erase:\n%s", r)
	}
	assertNoLeak(t, r, email)
	if !strings.Contains(r.stdout, "datasubjectrequest.privacy.lethe.dev/shape created\n") ||
		!strings.Contains(r.stdout, "follow it with: kubectl lethe status shape -n "+ns) {
		t.Errorf("erase output:\n%s", r)
	}
	dsr := &privacyv1.DataSubjectRequest{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "shape"}, dsr); err != nil {
		t.Fatal(err)
	}
	if dsr.Spec.Subject.Identities != nil || dsr.Spec.Deadline != "12h" || len(dsr.Spec.Scope.Stores) != 1 || dsr.Spec.Scope.Stores[0] != "not-there-yet" {
		t.Errorf("request spec = %+v", dsr.Spec)
	}
	raw, _ := json.Marshal(dsr)
	if strings.Contains(string(raw), email) {
		t.Errorf("the identity is in the request object: %s", raw)
	}
	sec := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: dsr.Spec.Subject.IdentitiesFrom.SecretRef.Name}, sec); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sec.Name, "shape-subject-") || sec.Labels[privacyv1.ConsumeLabel] != "true" ||
		sec.Labels["app.kubernetes.io/managed-by"] != "kubectl-lethe" || sec.Immutable == nil || !*sec.Immutable {
		t.Errorf("subject Secret metadata: name %s, labels %v, immutable %v", sec.Name, sec.Labels, sec.Immutable)
	}
	if len(sec.Data) != 1 || string(sec.Data["email"]) != email {
		t.Errorf("subject Secret keys %v, want exactly email with the identity", keys(sec.Data))
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != dsr.UID || sec.OwnerReferences[0].Kind != "DataSubjectRequest" ||
		sec.OwnerReferences[0].APIVersion != privacyv1.GroupVersion.String() {
		t.Errorf("subject Secret owners = %+v, want the request %s", sec.OwnerReferences, dsr.UID)
	}

	// The controller is waiting for the store: status says so; no receipt yet.
	testenv.WaitForCondition(t, k8s, dsr, func() []metav1.Condition { return dsr.Status.Conditions },
		privacyv1.ConditionReady, metav1.ConditionFalse, privacyv1.ReasonStoreNotFound)
	r = lethe(t, "", "status", "-n", ns)
	if r.code != 0 || !regexp.MustCompile(`(?m)^shape\s+Erasure\s+False\s+StoreNotFound\s+0/\?\s+in \S+\s+-\s+\S+$`).MatchString(r.stdout) {
		t.Errorf("status list of a waiting request:\n%s", r)
	}
	r = lethe(t, "", "receipt", "shape", "-n", ns, "--verify")
	if r.code != 1 || !strings.Contains(r.stderr, "has no receipt yet: it is not complete (Ready=False, StoreNotFound)") {
		t.Errorf("receipt of an incomplete request:\n%s", r)
	}

	// --wait on a terminal shows progress, and gives up at the timeout.
	r = letheWith(t, true, "email="+email+"\n", "erase", "-n", ns, "--identity-file", "-", "--store", "not-there-yet", "--wait", "--timeout", "4s")
	if r.code != 1 || !strings.Contains(r.stderr, "error: timed out after 4s waiting for request erasure-") ||
		!strings.Contains(r.stderr, "Lethe goes on with it") {
		t.Errorf("erase --wait --timeout:\n%s", r)
	}
	if !progressLine.MatchString(r.stderr) || !strings.Contains(r.stderr, "StoreNotFound: 0/? store(s) done") {
		t.Errorf("no progress lines on a terminal:\n%s", r)
	}
	assertNoLeak(t, r, email)
}

func TestRectifyAndAccessWait(t *testing.T) {
	ns := env.Namespace(t)
	db := readyStore(t, ns)
	const email, newName = "jane@example.com", "Jane Corrected-Name"
	values := filepath.Join(t.TempDir(), "values")
	if err := os.WriteFile(values, []byte("user.contact.name="+newName+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := lethe(t, "email="+email+"\n", "rectify", "-n", ns, "--identity-file", "-", "--set-file", values, "--wait", "--timeout", "2m", "-o", "json")
	if r.code != 0 {
		t.Fatalf("rectify --wait:\n%s", r)
	}
	assertNoLeak(t, r, email, newName)
	if c := collection(parseReceipt(t, r), "app-db", "accounts"); c == nil || c.Action != "rectify" || c.Rows != 1 {
		t.Errorf("rectify receipt for accounts = %+v", c)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE email = $1 AND name = $2`, email, newName); n != 1 {
		t.Errorf("the name was not rectified")
	}
	if n := count(t, db, `SELECT count(*) FROM accounts WHERE name = 'John Roe'`); n != 1 {
		t.Errorf("the other account changed")
	}
	dsr := &privacyv1.DataSubjectRequest{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: createdRequest(t, r)}, dsr); err != nil {
		t.Fatal(err)
	}
	if rect := dsr.Spec.Rectification; rect == nil || rect.Values != nil || rect.ValuesFrom == nil || !strings.HasPrefix(rect.ValuesFrom.Name, "rectification-values-") {
		t.Errorf("rectification spec = %+v, want values from a Secret", dsr.Spec.Rectification)
	}

	r = lethe(t, "", "access", "-n", ns, "--identity", "email="+email, "--export-ttl", "7d", "--wait", "--timeout", "2m", "-o", "json")
	if r.code != 0 {
		t.Fatalf("access --wait:\n%s", r)
	}
	assertNoLeak(t, r, email, newName, "1 rue de Jane", "ring the bell")
	doc := parseReceipt(t, r)
	if doc.Details.Export == nil || len(doc.Details.Export.Secrets) == 0 {
		t.Errorf("access receipt without its export: %s", r.stdout)
	}
	if c := collection(doc, "app-db", "orders"); c == nil || c.Action != "export" || c.Rows != 2 {
		t.Errorf("access receipt for orders = %+v", c)
	}

	// A request no store can act on stalls: --wait stops at once and says why.
	const account = "acct-5511-unknown"
	r = lethe(t, "", "erase", "-n", ns, "--identity", "customerId="+account, "--wait", "--timeout", "1m")
	if r.code != 1 || !regexp.MustCompile(`error: request erasure-\S+ is stalled \(InvalidSubject\): no store in scope maps the subject's identity type\(s\) customerId`).MatchString(r.stderr) || r.stdout != "" {
		t.Errorf("erase --wait of a request that stalls:\n%s", r)
	}
	assertNoLeak(t, r, account)
}

func TestRefusedRequestLeavesNoSecret(t *testing.T) {
	ns := env.Namespace(t)
	const email = "refused.subject@example.com"
	for _, args := range [][]string{
		{"--deadline", "99x"},          // not a period: the CRD schema refuses it
		{"--name", "Not_A_Valid_Name"}, // not a DNS name
		{"--category", "Not A Category"},
	} {
		r := lethe(t, "", append([]string{"erase", "-n", ns, "--identity", "email=" + email}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "error: the API server refused the request") {
			t.Errorf("a refused request:\n%s", r)
		}
		assertNoLeak(t, r, email)
	}
	secrets := &corev1.SecretList{}
	if err := k8s.List(t.Context(), secrets, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "kubectl-lethe"}); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 0 {
		t.Errorf("refused requests left %d Secret(s) behind", len(secrets.Items))
	}
	reqs := &privacyv1.DataSubjectRequestList{}
	if err := k8s.List(t.Context(), reqs, client.InNamespace(ns)); err != nil || len(reqs.Items) != 0 {
		t.Errorf("requests after refusals: %d (%v)", len(reqs.Items), err)
	}
}

// Every way of getting the identities wrong is refused, and no refusal
// repeats the value.
func TestIdentityValuesNeverInErrors(t *testing.T) {
	const v = "leaky.value@example.com"
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"erase", "--identity", v}, "--identity #1: expected TYPE=VALUE"},
		{"", []string{"erase", "--identity", v + "=email"}, "--identity #1: the type (before =) is not a camelCase name"},
		{"", []string{"erase", "--identity", "email= " + v}, "has leading or trailing whitespace"},
		{"", []string{"erase", "--identity", "email=" + v, "--identity", "email=" + v + ".other"}, `--identity #2: identity type "email" is given twice`},
		{"", []string{"erase", v}, "erase takes no arguments"},
		{"", []string{"erase", "-e" + v}, "unknown shorthand flag: 'e'"},
		{"email=ok@example.com\n" + v + "\n", []string{"erase", "--identity-file", "-"}, "line 2 of standard input: expected TYPE=VALUE"},
		{"", []string{"erase"}, "no identity"},
		{"", []string{"access", "--identity", "email=" + v + "\x00"}, "contains a NUL character"},
		{"", []string{"rectify", "--identity", "email=ok@example.com", "--set", "user.contact.email"}, "--set #1: expected CATEGORY=VALUE"},
		{"", []string{"rectify", "--identity", "email=ok@example.com", "--set", v + "=user.contact.email"}, "--set #1: the category (before =) is not a category"},
		{"", []string{"rectify", "--identity", "email=ok@example.com"}, "rectify needs the corrected values"},
		{"", []string{"erase", "--identity", "email=" + v, "-n", "no-such-namespace"}, "the API server refused the request"},
	}
	for _, c := range cases {
		r := lethe(t, c.stdin, c.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, c.want) {
			t.Errorf("want exit 1 and %q:\n%s", c.want, r)
		}
		assertNoLeak(t, r, v)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A legal hold: --wait shows it and gives up at the timeout, status lists
// the hold beside the request, and the request finishes once it is released.
func TestStatusShowsHolds(t *testing.T) {
	ns := env.Namespace(t)
	db := readyStore(t, ns)
	const email = "jane@example.com"
	hold := &privacyv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "court-case-7"},
		Spec: privacyv1.LegalHoldSpec{Reason: "court case 7",
			Collections: []privacyv1.HeldCollection{{Store: "app-db", Collection: "orders"}}},
	}
	create(t, hold)
	testenv.WaitForCondition(t, k8s, hold, func() []metav1.Condition { return hold.Status.Conditions },
		privacyv1.ConditionReady, metav1.ConditionTrue, privacyv1.ReasonSucceeded)

	r := letheWith(t, true, "email="+email+"\n", "erase", "-n", ns, "--name", "held", "--identity-file", "-", "--wait", "--timeout", "5s")
	if r.code != 1 || !strings.Contains(r.stderr, "error: timed out after 5s waiting for request held (Ready=False, OnLegalHold") {
		t.Errorf("erase --wait on hold:\n%s", r)
	}
	if !regexp.MustCompile(`(?m)^\[ *\d+s\] OnLegalHold: 0/1 store\(s\) done, held by court-case-7 — data in app-db is on legal hold`).MatchString(r.stderr) {
		t.Errorf("no progress line naming the hold:\n%s", r)
	}
	assertNoLeak(t, r, email)
	if n := count(t, db, `SELECT count(*) FROM orders WHERE account_id = 1`); n != 2 {
		t.Errorf("held orders: %d left, want 2", n)
	}

	r = lethe(t, "", "status", "-n", ns)
	if r.code != 0 || !regexp.MustCompile(`(?m)^held\s+Erasure\s+False\s+OnLegalHold\s+\d/1\s+in \S+\s+court-case-7\s+\S+$`).MatchString(r.stdout) {
		t.Errorf("status list of a held request:\n%s", r)
	}
	r = lethe(t, "", "status", "held", "-n", ns)
	if r.code != 0 || !regexp.MustCompile(`(?m)^Holds:\s+court-case-7$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^  OnLegalHold\s+True\s+OnLegalHold\s`).MatchString(r.stdout) {
		t.Errorf("status of a held request:\n%s", r)
	}

	if err := k8s.Delete(t.Context(), hold); err != nil {
		t.Fatal(err)
	}
	dsr := &privacyv1.DataSubjectRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held"}}
	testenv.WaitForCondition(t, k8s, dsr, func() []metav1.Condition { return dsr.Status.Conditions },
		privacyv1.ConditionReady, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	r = lethe(t, "", "receipt", "held", "-n", ns, "--verify")
	if r.code != 0 || !strings.Contains(r.stdout, "| orders | delete | 2 |") {
		t.Errorf("receipt once the hold is released:\n%s", r)
	}
}
