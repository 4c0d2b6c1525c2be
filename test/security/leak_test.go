package security

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// marker is in every piece of personal data of the leak test, in some case:
// a search for it (case-insensitive) finds whole or partial leaks.
const marker = "leakprobe"

const (
	probeEmail = "LeakProbe.Subject@secret-domain.example"
	otherEmail = "leakprobe.other@secret-domain.example"
	probeName  = "Zelda Leakprobe-Q9"
	probeItem  = "LeakProbe-Item-7731"
	probePhone = "+99-LEAKPROBE-PHONE"
	probeCard  = "4242-LEAKPROBE-CARD"
	newName    = "Rectified LeakProbe Name"
)

// TestNoPersonalDataLeaks runs an Access, a Rectification and an Erasure of a
// subject, and two requests that fail (a unique violation whose database
// message quotes the value, a redis key of the wrong type named after the
// identity, a processor answering 500 with the identity in its body), over
// PostgreSQL, Redis and an HTTP processor, through the manager with verbose
// logging. No identity and no exported or rectified value may appear in the
// manager's logs, Events, metrics, any object's status (conditions and error
// messages included), only in the export Secret, where it belongs.
func TestNoPersonalDataLeaks(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)

	// PostgreSQL: people with a unique email.
	conn, dsn := peopleDB(t, map[int64]string{1: probeEmail, 2: otherEmail, 3: "bystander@x.io"})
	mustExec(t, conn, `ALTER TABLE people ADD CONSTRAINT people_email_key UNIQUE (email)`)
	mustExec(t, conn, `UPDATE people SET name = $1 WHERE id = 1`, probeName)
	mustExec(t, conn, `UPDATE orders SET item = $1 WHERE person_id = 1`, probeItem)
	create(t, secret(ns, "pg", map[string]string{"dsn": dsn}))
	pg := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: peopleStoreSpec()}
	pg.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: "pg", Key: "dsn"}

	// Redis: a hash per subject, anonymized; the other subject's key is a string.
	r := testdb.NewRedis(t)
	if err := r.Client.HSet(ctx, r.Key("user:"+probeEmail), "phone", probePhone).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Set(ctx, r.Key("user:"+otherEmail), "not a hash "+otherEmail, 0).Err(); err != nil {
		t.Fatal(err)
	}
	create(t, secret(ns, "kv", map[string]string{"url": r.URL}))
	kv := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kv"}, Spec: privacyv1.DataStoreSpec{
		Engine:     privacyv1.EngineRedis,
		Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "kv", Key: "url"}},
		Collections: []privacyv1.Collection{{
			Name: "users", KeyPattern: r.Prefix + "user:{email}", Identity: map[string]privacyv1.Identifier{"email": "email"},
			OnErasure: privacyv1.ErasureAnonymize,
			Fields:    []privacyv1.Field{{Name: "phone", Category: "user.contact.phone", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}}},
		}},
	}}

	// A processor that returns the subject's record, and fails loudly,
	// quoting the identity, for the other subject.
	proc := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, req *nethttp.Request) {
		email, _ := url.PathUnescape(strings.TrimPrefix(req.URL.EscapedPath(), "/v1/contacts/"))
		switch {
		case email == otherEmail:
			w.WriteHeader(nethttp.StatusInternalServerError)
			fmt.Fprintf(w, `{"error":"database exploded while reading %s"}`, email)
		case req.Method == nethttp.MethodGet:
			_ = json.NewEncoder(w).Encode(map[string]string{"email": email, "card": probeCard})
		default:
			w.WriteHeader(nethttp.StatusNoContent)
		}
	}))
	defer proc.Close()
	create(t, secret(ns, "crm", map[string]string{"url": proc.URL}))
	crm := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crm"}, Spec: privacyv1.DataStoreSpec{
		Engine: privacyv1.EngineHTTP,
		Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "crm", Key: "url"},
			HTTP: &privacyv1.HTTPConnection{MaxAttempts: ptr.To(int32(1))}},
		Collections: []privacyv1.Collection{{
			Name: "contacts", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
			Fields: []privacyv1.Field{{Name: "card", Category: "user.financial.card"}},
			HTTP: &privacyv1.HTTPCollection{
				Access:  &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPGet, Path: "/v1/contacts/{email}"},
				Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/v1/contacts/{email}"},
			},
		}},
	}}
	for _, ds := range []*privacyv1.DataStore{pg, kv, crm} {
		create(t, ds)
		waitReady(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	}

	create(t, secret(ns, "subject", map[string]string{"email": probeEmail}))
	create(t, secret(ns, "other", map[string]string{"email": otherEmail}))
	create(t, secret(ns, "bystander", map[string]string{"email": "bystander@x.io"}))
	create(t, secret(ns, "new-name", map[string]string{"user.contact.name": newName}))
	create(t, secret(ns, "stolen-email", map[string]string{"user.contact.email": otherEmail}))

	access := request(ns, "access", privacyv1.RequestAccess, "subject")
	create(t, access)
	waitReady(t, access, metav1.ConditionTrue, privacyv1.ReasonCompleted)
	export := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: access.Status.ExportSecretRef.Name}, export); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{probeName, probeItem, probePhone, probeCard} {
		if !bytes.Contains(export.Data[controllers.ExportKey], []byte(v)) {
			t.Errorf("the export lacks %q: the probe did not go through", v)
		}
	}

	rectify := request(ns, "rectify", privacyv1.RequestRectification, "subject")
	rectify.Spec.Rectification = &privacyv1.Rectification{ValuesFrom: &privacyv1.SecretReference{Name: "new-name"}}
	rectify.Spec.Scope.Stores = []privacyv1.StoreName{"pg"}
	create(t, rectify)
	waitReady(t, rectify, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	// Fails in PostgreSQL: the new email is another subject's (unique violation).
	steal := request(ns, "steal-email", privacyv1.RequestRectification, "bystander")
	steal.Spec.Rectification = &privacyv1.Rectification{ValuesFrom: &privacyv1.SecretReference{Name: "stolen-email"}}
	steal.Spec.Scope.Stores = []privacyv1.StoreName{"pg"}
	create(t, steal)
	waitReady(t, steal, metav1.ConditionFalse, privacyv1.ReasonStoreFailed)

	erase := request(ns, "erase", privacyv1.RequestErasure, "subject")
	create(t, erase)
	waitReady(t, erase, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	// Fails in Redis (a string where a hash is mapped) and at the processor (500).
	failing := request(ns, "erase-other", privacyv1.RequestErasure, "other")
	create(t, failing)
	eventually(t, time.Minute, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(failing), failing); err != nil {
			return err
		}
		phases := map[string]privacyv1.StorePhase{}
		for _, s := range failing.Status.Stores {
			phases[s.Store] = s.Phase
		}
		if phases["kv"] != privacyv1.StoreFailed || phases["crm"] != privacyv1.StorePending || phases["pg"] != privacyv1.StoreCompleted {
			return fmt.Errorf("store phases %v", phases)
		}
		return nil
	})

	var name string
	if err := conn.QueryRow(ctx, `SELECT count(*)::text FROM people WHERE id = 1`).Scan(&name); err != nil || name != "0" {
		t.Errorf("the probe subject was not erased: %s %v", name, err)
	}

	// Where personal data must never be.
	places := map[string]string{"manager logs": managerLogs.String()}
	places["manager logs (hex dumps joined)"] = hexDumpText(places["manager logs"])
	if len(places["manager logs"]) < 10000 || !strings.Contains(places["manager logs"], "datasubjectrequest") {
		t.Errorf("the log capture looks empty (%d bytes): the check would be vacuous", len(places["manager logs"]))
	}
	var evs bytes.Buffer
	events := &eventsv1.EventList{}
	if err := k8s.List(t.Context(), events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	coreEvents := &corev1.EventList{}
	if err := k8s.List(t.Context(), coreEvents, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	_ = json.NewEncoder(&evs).Encode(events)
	_ = json.NewEncoder(&evs).Encode(coreEvents)
	places["events"] = evs.String()
	if len(events.Items)+len(coreEvents.Items) < 8 {
		t.Errorf("only %d events: the check would be vacuous", len(events.Items)+len(coreEvents.Items))
	}
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&metrics, mf); err != nil {
			t.Fatal(err)
		}
	}
	places["metrics"] = metrics.String()
	if !strings.Contains(places["metrics"], `controller="datasubjectrequest"`) {
		t.Error("no datasubjectrequest metrics gathered: the check would be vacuous")
	}
	var objs bytes.Buffer
	requests := &privacyv1.DataSubjectRequestList{}
	stores := &privacyv1.DataStoreList{}
	for _, l := range []client.ObjectList{requests, stores} {
		if err := k8s.List(t.Context(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		_ = json.NewEncoder(&objs).Encode(l)
	}
	places["requests and stores (spec, status, conditions, messages)"] = objs.String()
	for _, dsr := range requests.Items {
		for _, s := range dsr.Status.Stores {
			if s.Phase == privacyv1.StoreFailed || s.Phase == privacyv1.StorePending {
				places["error messages"] += s.Message + "\n"
			}
		}
	}
	if !strings.Contains(places["error messages"], "unique") || !strings.Contains(places["error messages"], "type") || !strings.Contains(places["error messages"], "500") {
		t.Errorf("the failures are not the expected ones (the check would miss them): %s", places["error messages"])
	}
	for where, text := range places {
		if i := strings.Index(strings.ToLower(text), marker); i >= 0 {
			from, to := max(i-80, 0), min(i+80, len(text))
			t.Errorf("personal data in %s: ...%s...", where, text[from:to])
			if os.Getenv("LETHE_DUMP_LEAK") != "" {
				_ = os.WriteFile("/tmp/leak-"+strings.ReplaceAll(where, " ", "_"), []byte(text), 0o600)
			}
		}
	}
	t.Logf("searched %d bytes of logs, %d events, %d bytes of metrics, %d objects", len(places["manager logs"]), len(events.Items)+len(coreEvents.Items), metrics.Len(), len(requests.Items)+len(stores.Items))
}

// hexDumpGutter is the text column of a hex.Dump line, as logged inside a
// JSON string: client-go logs binary (protobuf) bodies as hex dumps, where a
// value is split across lines.
var hexDumpGutter = regexp.MustCompile(`  \|([^|]{1,32})\|(?:\\n|\n)`)

// hexDumpText joins the text columns of every hex dump in logs, so a value
// split across dump lines can be searched for.
func hexDumpText(logs string) string {
	var b strings.Builder
	for _, m := range hexDumpGutter.FindAllStringSubmatch(logs, -1) {
		b.WriteString(m[1])
	}
	return b.String()
}

// TestHexDumpTextFindsSplitValues: a value split across the lines of a hex
// dump, as zap writes it in a JSON log line, is found again.
func TestHexDumpTextFindsSplitValues(t *testing.T) {
	var buf bytes.Buffer
	l := zap.New(zap.WriteTo(&buf))
	l.Info("Response Body", "body", hex.Dump([]byte("k8s\x00\x0a\x0c Secret \x12 email \x1a "+probeEmail+" \x00 trailer")))
	if strings.Contains(buf.String(), probeEmail) {
		t.Fatal("the probe is not split: the test proves nothing")
	}
	if !strings.Contains(hexDumpText(buf.String()), probeEmail) {
		t.Errorf("hexDumpText does not find the split value in %s", buf.String())
	}
}
