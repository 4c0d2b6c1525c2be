package controllers_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	httpstore "github.com/lethe-dev/lethe/internal/stores/http"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// One DataSubjectRequest spans PostgreSQL, MariaDB, Redis and two processors
// on loopback shaped like Stripe and Intercom. Every store, database and
// server is real; each store holds look-alikes of the subject that must
// survive: the same address in another case, with an accent stripped, with a
// trailing space (all equal under MariaDB's default collation), and values
// that the subject's identity would match as a glob or a LIKE pattern.

// adversarial is the subject of the first scenario: every identity carries
// glob, LIKE and quoting metacharacters and non-ASCII letters.
var adversarial = map[string]string{
	"email":          `*?[a-z]'"%_ü@x.io`,
	"userId":         "6",
	"customerId":     `cus_*?[a-z]/../'"%_ü`,
	"intercomUserId": `ic_[a-z]*?"'%_ü\`,
}

// lookAlikes of adversarial's e-mail address.
var lookAlikes = []string{
	`*?[A-Z]'"%_Ü@x.io`,   // case
	`*?[a-z]'"%_ü@x.io `,  // trailing space
	`*?[a-z]'"%_u@x.io`,   // accent
	`abc'"%_ü@x.io`,       // what the glob *?[a-z] matches
	`*?[a-z]'"xyü@x.io`,   // what the LIKE pattern %_ matches
	`*?[a-z]'"%_ü@x.io.x`, // a longer address
}

const (
	stripeAuthorization   = "Bearer sk_test_lethe"
	intercomAuthorization = "Bearer dG9rOmludGVyY29t"
)

// received is one request as a processor saw it.
type received struct {
	Method, RequestURI, EscapedPath string
	Header                          http.Header
	Body                            []byte
}

// processorServer is a processor on loopback that records every request and
// answers 503 while failing is set.
type processorServer struct {
	*httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	got     []received
}

func newProcessorServer(t *testing.T, okBody string) *processorServer {
	t.Helper()
	p := &processorServer{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.got = append(p.got, received{r.Method, r.RequestURI, r.URL.EscapedPath(), r.Header.Clone(), body})
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if p.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"maintenance"}`)
			return
		}
		_, _ = io.WriteString(w, okBody)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *processorServer) requests() []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// stores of one scenario, and what the test inspects them with.
type multiStores struct {
	pg       *sql.DB
	maria    *sql.DB
	redis    *testdb.Redis
	stripe   *processorServer
	intercom *processorServer
}

// storeNames in the order the request acts on them (by name).
var storeNames = []string{"app-db", "crm", "intercom", "sessions", "stripe"}

// readyMultiStores creates the five DataStores of the namespace with their
// Secrets and data, and waits until each is Ready.
func readyMultiStores(t *testing.T, ns string) *multiStores {
	t.Helper()
	ms := &multiStores{
		stripe:   newProcessorServer(t, `{"id":"cus_deleted","deleted":true}`),
		intercom: newProcessorServer(t, `{"id":"udr_1","type":"user_delete_request"}`),
		redis:    testdb.NewRedis(t),
	}
	var pgDSN, mariaDSN string
	ms.pg, pgDSN = fixtureDB(t)
	seedAdversarialAccounts(t, ms.pg)
	ms.maria, mariaDSN = crmDB(t)
	seedRedis(t, ms.redis)

	create(t, secret(ns, "app-db", map[string]string{"dsn": pgDSN, "maskingKey": "store-masking-key"}))
	create(t, secret(ns, "crm", map[string]string{"dsn": mariaDSN}))
	create(t, secret(ns, "sessions", map[string]string{"url": ms.redis.URL}))
	create(t, secret(ns, "stripe", map[string]string{"url": ms.stripe.URL, "authorization": stripeAuthorization}))
	create(t, secret(ns, "intercom", map[string]string{"url": ms.intercom.URL, "authorization": intercomAuthorization + "\n"}))
	all := []*privacyv1.DataStore{
		fixtureStore(ns, "app-db", "app-db"), crmStore(ns), sessionsStore(ns, ms.redis), stripeStore(ns), intercomStore(ns),
	}
	for _, ds := range all {
		create(t, ds)
	}
	for _, ds := range all {
		waitStore(t, ds, metav1.ConditionTrue, privacyv1.ReasonSucceeded)
	}
	return ms
}

// seedAdversarialAccounts adds account 6 (the adversarial subject) and
// accounts with its look-alike addresses to the PostgreSQL fixture.
func seedAdversarialAccounts(t *testing.T, db *sql.DB) {
	t.Helper()
	for i, email := range append([]string{adversarial["email"]}, lookAlikes...) {
		id := 6 + i
		exec(t, db, `INSERT INTO accounts (id, email, name, phone) VALUES ($1, $2, $3, '+33 6 00 00 00 99')`, id, email, fmt.Sprintf("Adversary %d", id))
		exec(t, db, `INSERT INTO billing_profiles VALUES ($1::bigint, $1::bigint, 'FR000'||$1::text, 'Colmar '||$1::text)`, id)
		exec(t, db, `INSERT INTO access_logs SELECT g, $1::bigint, '10.0.1.'||$1::text, 'Firefox', now() FROM generate_series($1::bigint*100, $1::bigint*100+1) g`, id)
	}
}

// crmDB is a MariaDB database of contacts (default collation,
// utf8mb4_general_ci) and their notes: the adversarial subject (contact 1,
// user 6), its look-alikes, and the plain subject a_b@x.io (contact 20, user 1).
func crmDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := testdb.NewMySQL(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exec(t, db, `CREATE TABLE contacts (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, user_id BIGINT, name VARCHAR(255), KEY (email), KEY (user_id))`)
	exec(t, db, `CREATE TABLE notes (id BIGINT PRIMARY KEY, contact_id BIGINT NOT NULL, body TEXT, FOREIGN KEY (contact_id) REFERENCES contacts (id))`)
	exec(t, db, `INSERT INTO contacts VALUES (1, ?, 6, 'Adversary'), (20, 'a_b@x.io', 1, 'Ada'), (21, 'A_B@x.io', 11, 'Upper Ada'), (22, 'zoë@x.io', 66, 'Sixty-six')`, adversarial["email"])
	for i, email := range lookAlikes {
		exec(t, db, `INSERT INTO contacts VALUES (?, ?, NULL, 'Look-alike')`, 2+i, email)
	}
	exec(t, db, `INSERT INTO notes SELECT id * 10, id, CONCAT('note of ', name) FROM contacts`)
	exec(t, db, `INSERT INTO notes SELECT id * 10 + 1, id, 'second note' FROM contacts`)
	return db, dsn
}

func crmStore(ns string) *privacyv1.DataStore {
	return &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crm"},
		Spec: privacyv1.DataStoreSpec{
			Engine:     privacyv1.EngineMySQL,
			Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "crm", Key: "dsn"}},
			Collections: []privacyv1.Collection{
				{
					Name: "contacts", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					Identity: map[string]privacyv1.Identifier{"email": "email", "userId": "user_id"},
					Fields: []privacyv1.Field{
						{Name: "email", Category: "user.contact.email"},
						{Name: "name", Category: "user.contact.name"},
					},
				},
				{
					Name: "notes", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					References: []privacyv1.Reference{{Field: "contact_id", Collection: "contacts"}},
					Fields:     []privacyv1.Field{{Name: "body", Category: "user.support.message"}},
				},
			},
		},
	}
}

// crmRows renders every contact and note, for comparisons.
func crmRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT CONCAT('contact ', id, ' ', HEX(email), ' ', COALESCE(user_id, '-')) FROM contacts
		UNION ALL SELECT CONCAT('note ', id, ' ', contact_id) FROM notes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// seedRedis writes the subjects' keys and their look-alikes.
func seedRedis(t *testing.T, r *testdb.Redis) {
	t.Helper()
	keys := []string{"user:" + adversarial["email"], "session:6:web", "session:6:mobile", "user:a_b@x.io", "session:1:web",
		"session:66:web", "session:6x:web", "session:16:web"}
	for _, email := range lookAlikes {
		keys = append(keys, "user:"+email)
	}
	for _, k := range keys {
		if err := r.Client.Set(t.Context(), r.Key(k), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func sessionsStore(ns string, r *testdb.Redis) *privacyv1.DataStore {
	return &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sessions"},
		Spec: privacyv1.DataStoreSpec{
			Engine:     privacyv1.EngineRedis,
			Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "sessions", Key: "url"}},
			Collections: []privacyv1.Collection{
				{Name: "users", KeyPattern: r.Key("user:{email}"), Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete},
				{Name: "sessions", KeyPattern: r.Key("session:{userId}:*"), Identity: map[string]privacyv1.Identifier{"userId": "user_id"}, OnErasure: privacyv1.ErasureDelete},
			},
		},
	}
}

// redisKeys lists the keys left, without the test's prefix.
func redisKeys(t *testing.T, r *testdb.Redis) []string {
	t.Helper()
	var out []string
	for _, k := range r.Keys(t) {
		out = append(out, strings.TrimPrefix(k, r.Prefix))
	}
	slices.Sort(out)
	return out
}

// httpDataStore is a processor's DataStore; one attempt per reconcile keeps
// retries in the controller's hands (and the test fast).
func httpDataStore(ns, name string, coll privacyv1.Collection) *privacyv1.DataStore {
	one := int32(1)
	return &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataStoreSpec{
			Engine: privacyv1.EngineHTTP,
			Connection: privacyv1.ConnectionSpec{
				SecretRef: privacyv1.SecretKeySelector{Name: name, Key: "url"},
				HTTP: &privacyv1.HTTPConnection{
					AuthorizationSecretRef: &privacyv1.SecretKeySelector{Name: name, Key: "authorization"},
					MaxAttempts:            &one,
				},
			},
			Collections: []privacyv1.Collection{coll},
		},
	}
}

func stripeStore(ns string) *privacyv1.DataStore {
	return httpDataStore(ns, "stripe", privacyv1.Collection{
		Name: "customers", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"customerId": "id"},
		Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
		HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{
			Method: privacyv1.HTTPDelete, Path: "/v1/customers/{customerId}",
			Headers: map[string]privacyv1.HTTPHeaderValue{"Stripe-Version": "2024-06-20"},
		}},
	})
}

func intercomStore(ns string) *privacyv1.DataStore {
	return httpDataStore(ns, "intercom", privacyv1.Collection{
		Name: "contacts", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"intercomUserId": "id", "email": "email"},
		Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
		HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{
			Method: privacyv1.HTTPPost, Path: "/user_delete_requests",
			Headers: map[string]privacyv1.HTTPHeaderValue{"Intercom-Version": "2.11"},
			Body:    &apiextensionsv1.JSON{Raw: []byte(`{"intercom_user_id": "{intercomUserId}"}`)},
		}},
	})
}

// erasureOf creates an Erasure request whose identities are in a Secret, as
// real requests should be.
func erasureOf(t *testing.T, ns, name string, identities map[string]string) *privacyv1.DataSubjectRequest {
	t.Helper()
	create(t, secret(ns, name+"-subject", identities))
	dsr := request(ns, name, privacyv1.RequestErasure, name+"-subject")
	create(t, dsr)
	return dsr
}

func storeOutcome(dsr *privacyv1.DataSubjectRequest, store string) privacyv1.StoreOutcome {
	for _, s := range dsr.Status.Stores {
		if s.Store == store {
			return s
		}
	}
	return privacyv1.StoreOutcome{}
}

// assertStripeCall checks the one request Stripe must receive for the subject.
func assertStripeCall(t *testing.T, r received, dsr *privacyv1.DataSubjectRequest, identities map[string]string) {
	t.Helper()
	segment, ok := strings.CutPrefix(r.EscapedPath, "/v1/customers/")
	decoded, err := url.PathUnescape(segment)
	if r.Method != http.MethodDelete || !ok || strings.Contains(segment, "/") || err != nil || decoded != identities["customerId"] {
		t.Errorf("Stripe received %s %s, want DELETE of the customer id as one path segment", r.Method, r.RequestURI)
	}
	if strings.Contains(r.RequestURI, "?") || len(r.Body) != 0 {
		t.Errorf("Stripe received a query or a body: %s %q", r.RequestURI, r.Body)
	}
	assertProcessorHeaders(t, "Stripe", r, identities, stripeAuthorization, httpstore.IdempotencyKey(string(dsr.UID), "customers", stores.KindErasure))
	if got := r.Header.Get("Stripe-Version"); got != "2024-06-20" {
		t.Errorf("Stripe-Version = %q", got)
	}
	assertNoIdentity(t, "Stripe request", r.RequestURI+string(r.Body), identities, "customerId")
}

// assertIntercomCall checks one request Intercom received for the subject.
func assertIntercomCall(t *testing.T, r received, dsr *privacyv1.DataSubjectRequest, identities map[string]string) {
	t.Helper()
	if r.Method != http.MethodPost || r.RequestURI != "/user_delete_requests" {
		t.Errorf("Intercom received %s %s, want POST /user_delete_requests", r.Method, r.RequestURI)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil || !reflect.DeepEqual(body, map[string]any{"intercom_user_id": identities["intercomUserId"]}) {
		t.Errorf("Intercom received body %q (%v), want exactly the user id", r.Body, err)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Intercom Content-Type = %q", got)
	}
	assertProcessorHeaders(t, "Intercom", r, identities, intercomAuthorization, httpstore.IdempotencyKey(string(dsr.UID), "contacts", stores.KindErasure))
	assertNoIdentity(t, "Intercom request", r.RequestURI+string(r.Body), identities, "intercomUserId")
}

// assertProcessorHeaders checks the credentials and idempotency key, and
// that no header carries an identity.
func assertProcessorHeaders(t *testing.T, processor string, r received, identities map[string]string, authorization, idempotencyKey string) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != authorization {
		t.Errorf("%s Authorization = %q, want the Secret's value", processor, got)
	}
	if got := r.Header.Get("Idempotency-Key"); got != idempotencyKey {
		t.Errorf("%s Idempotency-Key = %q, want %q", processor, got, idempotencyKey)
	}
	for name, values := range r.Header {
		assertNoIdentity(t, processor+" header "+name, strings.Join(values, ","), identities)
	}
}

// assertNoIdentity fails if any identity (but the allowed types) appears in s,
// as it is or escaped. userId is left out: a small integer appears in any
// digest or version string.
func assertNoIdentity(t *testing.T, what, s string, identities map[string]string, allowed ...string) {
	t.Helper()
	for typ, v := range identities {
		if typ != "userId" && !slices.Contains(allowed, typ) && (strings.Contains(s, v) || strings.Contains(s, url.PathEscape(v)) || strings.Contains(s, url.QueryEscape(v))) {
			t.Errorf("%s carries the %s identity", what, typ)
		}
	}
}

func TestMultiStoreErasureCompletesInEveryStoreWithAdversarialIdentities(t *testing.T) {
	ns := env.Namespace(t)
	ms := readyMultiStores(t, ns)
	pgOthers := map[string]string{
		"accounts":         fingerprint(t, ms.pg, "accounts", 6),
		"billing_profiles": fingerprint(t, ms.pg, "billing_profiles", 6),
		"access_logs":      fingerprint(t, ms.pg, "access_logs", 600, 601),
		"invoices":         fingerprint(t, ms.pg, "invoices"),
		"applications":     fingerprint(t, ms.pg, "applications"),
	}
	crmBefore := crmRows(t, ms.maria)
	redisBefore := redisKeys(t, ms.redis)

	dsr := erasureOf(t, ns, "erase", adversarial)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	// Every store's outcome is in status.
	want := map[string][]string{
		"app-db":   {"access_logs delete 2", "invoice_lines anonymize 0", "invoices retain 0", "billing_profiles delete 1", "accounts setNull 0", "accounts anonymize 1"},
		"crm":      {"notes delete 2", "contacts delete 1"},
		"sessions": {"sessions delete 2", "users delete 1"},
		"stripe":   {"customers delete 1"},
		"intercom": {"contacts delete 1"},
	}
	for _, name := range storeNames {
		out := storeOutcome(dsr, name)
		if out.Phase != privacyv1.StoreCompleted || out.CompletionTime == nil || out.Attempts != 1 {
			t.Errorf("store %s: phase %s, completion %v, attempts %d; want Completed at the first attempt", name, out.Phase, out.CompletionTime, out.Attempts)
		}
		var got []string
		for _, c := range out.Collections {
			got = append(got, fmt.Sprintf("%s %s %d", c.Collection, c.Action, c.Rows))
		}
		if !slices.Equal(got, want[name]) {
			t.Errorf("store %s: outcome %q, want %q", name, got, want[name])
		}
	}

	// PostgreSQL: account 6 anonymized, its billing profile and logs deleted, nothing else changed.
	for table, fp := range pgOthers {
		except := map[string][]int{"accounts": {6}, "billing_profiles": {6}, "access_logs": {600, 601}}[table]
		if got := fingerprint(t, ms.pg, table, except...); got != fp {
			t.Errorf("PostgreSQL: rows of other subjects changed in %s", table)
		}
	}
	var email string
	if err := ms.pg.QueryRow(`SELECT email FROM accounts WHERE id = 6`).Scan(&email); err != nil || !strings.HasPrefix(email, "erased-") {
		t.Errorf("PostgreSQL: account 6 email after erasure = %q (%v)", email, err)
	}
	if n := count(t, ms.pg, `SELECT count(*) FROM access_logs WHERE account_id = 6`) + count(t, ms.pg, `SELECT count(*) FROM billing_profiles WHERE account_id = 6`); n != 0 {
		t.Errorf("PostgreSQL: %d rows of the subject left", n)
	}

	// MariaDB: contact 1 and its notes only; every look-alike equal under the collation survives.
	wantCRM := slices.DeleteFunc(slices.Clone(crmBefore), func(r string) bool {
		return strings.HasPrefix(r, "contact 1 ") || r == "note 10 1" || r == "note 11 1"
	})
	if got := crmRows(t, ms.maria); !slices.Equal(got, wantCRM) {
		t.Errorf("MariaDB rows after erasure:\n%v\nwant\n%v", got, wantCRM)
	}

	// Redis: the subject's keys only; the glob and the look-alikes survive.
	wantRedis := slices.DeleteFunc(slices.Clone(redisBefore), func(k string) bool {
		return k == "user:"+adversarial["email"] || k == "session:6:web" || k == "session:6:mobile"
	})
	if got := redisKeys(t, ms.redis); !slices.Equal(got, wantRedis) {
		t.Errorf("Redis keys after erasure:\n%q\nwant\n%q", got, wantRedis)
	}

	// The processors received exactly one request each, exactly as expected.
	if got := ms.stripe.requests(); len(got) != 1 {
		t.Errorf("Stripe received %d requests, want 1", len(got))
	} else {
		assertStripeCall(t, got[0], dsr, adversarial)
	}
	if got := ms.intercom.requests(); len(got) != 1 {
		t.Errorf("Intercom received %d requests, want 1", len(got))
	} else {
		assertIntercomCall(t, got[0], dsr, adversarial)
	}

	assertNoPersonalData(t, dsr, adversarial["email"], adversarial["customerId"], adversarial["intercomUserId"], "Adversary 6")
}

// One processor failing (503 for a while) neither undoes nor blocks the other
// stores' progress: they complete, are recorded, and are not called again;
// the request retries only the failing store, with the same idempotency key,
// until it recovers.
func TestMultiStoreFailureRetriesOnlyWhatIsLeft(t *testing.T) {
	ns := env.Namespace(t)
	ms := readyMultiStores(t, ns)
	ms.intercom.failing.Store(true)
	subject := map[string]string{"email": "a_b@x.io", "userId": "1", "customerId": "cus_NffrFeUfNV2Hib", "intercomUserId": "5f1b2c3d4e"}

	dsr := erasureOf(t, ns, "erase", subject)
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dsr), dsr); err != nil {
			return err
		}
		if ic := storeOutcome(dsr, "intercom"); ic.Phase != privacyv1.StorePending || ic.Attempts < 2 {
			return fmt.Errorf("intercom: %s after %d attempts, want Pending after 2", ic.Phase, ic.Attempts)
		}
		for _, name := range []string{"app-db", "crm", "sessions", "stripe"} {
			if out := storeOutcome(dsr, name); out.Phase != privacyv1.StoreCompleted {
				return fmt.Errorf("%s: %s, want Completed while intercom fails", name, out.Phase)
			}
		}
		return nil
	})
	ready := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != privacyv1.ReasonStoreUnavailable || !strings.Contains(ready.Message, "intercom") {
		t.Errorf("Ready while intercom fails = %+v, want False StoreUnavailable naming intercom", ready)
	}
	if apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionStalled) {
		t.Error("a processor answering 503 must not stall the request")
	}
	// The other stores' erasures are done already, not waiting for intercom.
	if n := count(t, ms.pg, `SELECT count(*) FROM access_logs WHERE account_id = 1`); n != 0 {
		t.Errorf("PostgreSQL: %d access logs of the subject left while intercom fails", n)
	}
	var contacts int
	if err := ms.maria.QueryRow(`SELECT count(*) FROM contacts WHERE user_id = 1`).Scan(&contacts); err != nil || contacts != 0 {
		t.Errorf("MariaDB: %d contacts of the subject left while intercom fails (%v)", contacts, err)
	}
	if keys := redisKeys(t, ms.redis); slices.Contains(keys, "session:1:web") || slices.Contains(keys, "user:a_b@x.io") {
		t.Errorf("Redis: the subject's keys are left while intercom fails: %q", keys)
	}
	completed := map[string]privacyv1.StoreOutcome{}
	for _, name := range []string{"app-db", "crm", "sessions", "stripe"} {
		completed[name] = storeOutcome(dsr, name)
	}

	ms.intercom.failing.Store(false)
	waitRequest(t, dsr, metav1.ConditionTrue, privacyv1.ReasonCompleted)

	for name, before := range completed {
		after := storeOutcome(dsr, name)
		if after.Attempts != 1 || !after.CompletionTime.Equal(before.CompletionTime) || !reflect.DeepEqual(after.Collections, before.Collections) {
			t.Errorf("store %s was acted on again: attempts %d, completed %v then %v", name, after.Attempts, before.CompletionTime, after.CompletionTime)
		}
	}
	if got := ms.stripe.requests(); len(got) != 1 {
		t.Errorf("Stripe received %d requests, want 1: a completed store is not called again", len(got))
	} else {
		assertStripeCall(t, got[0], dsr, subject)
	}
	calls := ms.intercom.requests()
	ic := storeOutcome(dsr, "intercom")
	if len(calls) < 3 || int32(len(calls)) != ic.Attempts {
		t.Errorf("Intercom received %d requests for %d recorded attempts, want at least 2 failures and 1 success, one per attempt", len(calls), ic.Attempts)
	}
	for _, c := range calls {
		assertIntercomCall(t, c, dsr, subject) // the same body and idempotency key every time
	}
	if len(ic.Collections) != 1 || ic.Collections[0].Rows != 1 || !strings.Contains(ic.Collections[0].Reason, "answered 200") {
		t.Errorf("intercom outcome = %+v", ic.Collections)
	}
	assertNoPersonalData(t, dsr, "a_b@x.io", "cus_NffrFeUfNV2Hib", "5f1b2c3d4e")
}
