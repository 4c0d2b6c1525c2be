//go:build faults

package faults

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	httpstore "github.com/lethe-dev/lethe/internal/stores/http"
)

// The shop: accounts (anonymized on erasure: the row stays, its personal
// fields are masked) own orders, which own order lines (both deleted): a
// three-level chain. Subjects 1..n file erasure requests; the accounts after
// them are bystanders that no request may touch.

const (
	ordersPerAccount = 2
	linesPerOrder    = 2
)

func subjectEmail(i int) string { return fmt.Sprintf("subject-%d@faults.test", i) }

// dialect is what differs between PostgreSQL and MariaDB in the fixture.
type dialect struct {
	driver string
	schema []string
	ph     func(n int) string
}

var pgDialect = dialect{
	driver: "pgx",
	schema: []string{
		`CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text, phone text)`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), total numeric(10,2) NOT NULL)`,
		`CREATE TABLE order_lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id), sku text NOT NULL)`,
	},
	ph: func(n int) string { return fmt.Sprintf("$%d", n) },
}

var mariaDialect = dialect{
	driver: "mysql",
	schema: []string{
		`CREATE TABLE accounts (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name VARCHAR(255), phone VARCHAR(64))`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, total DECIMAL(10,2) NOT NULL,
			CONSTRAINT orders_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id))`,
		`CREATE TABLE order_lines (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(64) NOT NULL,
			CONSTRAINT lines_order_fk FOREIGN KEY (order_id) REFERENCES orders (id))`,
	},
	ph: func(int) string { return "?" },
}

// shopDB is one loaded shop database.
type shopDB struct {
	name     string
	dsn      string
	db       *sql.DB
	d        dialect
	subjects int
	total    int
}

// loadShop creates the schema and total accounts, subjects 1..subjects first.
func loadShop(t *testing.T, name string, d dialect, dsn string, subjects, total int) *shopDB {
	t.Helper()
	db, err := sql.Open(d.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	for _, s := range d.schema {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %s: %v", name, s, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := d.ph
	for i := 1; i <= total; i++ {
		mustTx(t, tx, fmt.Sprintf(`INSERT INTO accounts VALUES (%s, %s, %s, %s)`, p(1), p(2), p(3), p(4)),
			i, subjectEmail(i), fmt.Sprintf("Name %d", i), fmt.Sprintf("+33 6 00 00 %02d %02d", i/100, i%100))
		for o := range ordersPerAccount {
			order := i*10 + o
			mustTx(t, tx, fmt.Sprintf(`INSERT INTO orders VALUES (%s, %s, %s)`, p(1), p(2), p(3)), order, i, 10+o)
			for l := range linesPerOrder {
				mustTx(t, tx, fmt.Sprintf(`INSERT INTO order_lines VALUES (%s, %s, %s)`, p(1), p(2), p(3)), order*10+l, order, fmt.Sprintf("sku-%d", l))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return &shopDB{name: name, dsn: dsn, db: db, d: d, subjects: subjects, total: total}
}

func mustTx(t *testing.T, tx *sql.Tx, q string, args ...any) {
	t.Helper()
	if _, err := tx.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

var erasedEmail = regexp.MustCompile(`^erased-[0-9a-f]{32}@erased\.invalid$`)

// subjectState is what the database holds of one account and its children.
type subjectState struct {
	email, name string
	phone       sql.NullString
	orders      int
	lines       int
}

// states reads every account's state.
func (s *shopDB) states(t *testing.T) (map[int]subjectState, error) {
	t.Helper()
	out := map[int]subjectState{}
	rows, err := s.db.Query(`SELECT a.id, a.email, a.name, a.phone,
		(SELECT count(*) FROM orders o WHERE o.account_id = a.id),
		(SELECT count(*) FROM order_lines l WHERE l.order_id IN (a.id * 10, a.id * 10 + 1))
		FROM accounts a`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		var st subjectState
		if err := rows.Scan(&id, &st.email, &st.name, &st.phone, &st.orders, &st.lines); err != nil {
			return nil, err
		}
		out[id] = st
	}
	return out, rows.Err()
}

// classify says whether account i is untouched, erased as mapped, or
// something in between (which must never be seen).
func classify(i int, st subjectState) string {
	untouched := st.email == subjectEmail(i) && st.name == fmt.Sprintf("Name %d", i) && st.phone.Valid &&
		st.orders == ordersPerAccount && st.lines == ordersPerAccount*linesPerOrder
	erased := erasedEmail.MatchString(st.email) && st.name == "[redacted]" && !st.phone.Valid && st.orders == 0 && st.lines == 0
	switch {
	case untouched:
		return "untouched"
	case erased:
		return "erased"
	}
	return fmt.Sprintf("half-applied (email anonymized %v, name %q, phone set %v, %d orders, %d lines)",
		erasedEmail.MatchString(st.email), st.name, st.phone.Valid, st.orders, st.lines)
}

// checkAtomic fails for any account that is neither untouched nor erased,
// and for any bystander that is not untouched. It returns how many are erased.
func (s *shopDB) checkAtomic(t *testing.T) int {
	t.Helper()
	states, err := s.states(t)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	erased := 0
	for i := 1; i <= s.total; i++ {
		c := classify(i, states[i])
		switch {
		case c == "erased" && i <= s.subjects:
			erased++
		case c == "erased":
			t.Errorf("%s: bystander %d was erased", s.name, i)
		case c != "untouched":
			t.Errorf("%s: account %d is %s", s.name, i, c)
		}
	}
	return erased
}

// checkFinal: every subject erased as mapped, every bystander's rows
// unchanged (fingerprint of all their rows), subjects' uniqueEmail values distinct.
func (s *shopDB) checkFinal(t *testing.T, bystanderPrint string) {
	t.Helper()
	states, err := s.states(t)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 1; i <= s.subjects; i++ {
		if c := classify(i, states[i]); c != "erased" {
			t.Errorf("%s: subject %d is %s after its erasure completed", s.name, i, c)
		}
		if seen[states[i].email] {
			t.Errorf("%s: two subjects anonymized to the same email", s.name)
		}
		seen[states[i].email] = true
	}
	if got := s.bystanderFingerprint(t); got != bystanderPrint {
		t.Errorf("%s: bystanders' rows changed", s.name)
	}
}

// bystanderFingerprint digests every row belonging to accounts after the subjects.
func (s *shopDB) bystanderFingerprint(t *testing.T) string {
	t.Helper()
	// s.subjects is the test's own integer: inlined, so both dialects read alike.
	q := fmt.Sprintf(`SELECT 'a', id, email, COALESCE(name, ''), COALESCE(phone, '') FROM accounts WHERE id > %[1]d
		UNION ALL SELECT 'o', id, CAST(account_id AS CHAR(20)), CAST(total AS CHAR(20)), '' FROM orders WHERE account_id > %[1]d
		UNION ALL SELECT 'l', l.id, CAST(l.order_id AS CHAR(20)), l.sku, '' FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE o.account_id > %[1]d
		ORDER BY 1, 2`, s.subjects)
	rows, err := s.db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	defer rows.Close()
	var b strings.Builder
	n := 0
	for rows.Next() {
		var kind, a, c, d string
		var id int64
		if err := rows.Scan(&kind, &id, &a, &c, &d); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s|%d|%s|%s|%s\n", kind, id, a, c, d)
		n++
	}
	if want := (s.total - s.subjects) * (1 + ordersPerAccount + ordersPerAccount*linesPerOrder); n != want {
		t.Errorf("%s: %d bystander rows, want %d", s.name, n, want)
	}
	return b.String()
}

// shopStore maps the shop for engine.
func shopStore(ns, name string, engine privacyv1.Engine, secretName string) *privacyv1.DataStore {
	return &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataStoreSpec{
			Engine:              engine,
			Connection:          privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: secretName, Key: "dsn"}},
			MaskingKeySecretRef: &privacyv1.SecretKeySelector{Name: secretName, Key: "maskingKey"},
			CheckInterval:       &metav1.Duration{Duration: privacyv1.MinCheckInterval}, // the floor: outages are noticed soon
			Collections: []privacyv1.Collection{
				{Name: "accounts", PrimaryKey: "id", OnErasure: privacyv1.ErasureAnonymize,
					Identity: map[string]privacyv1.Identifier{"email": "email"},
					Fields: []privacyv1.Field{
						{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}},
						{Name: "name", Category: "user.contact.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
						{Name: "phone", Category: "user.contact.phone", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
					}},
				{Name: "orders", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields:     []privacyv1.Field{{Name: "total", Category: "user.purchases"}}},
				{Name: "order_lines", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
					References: []privacyv1.Reference{{Field: "order_id", Collection: "orders"}},
					Fields:     []privacyv1.Field{{Name: "sku", Category: "user.purchases"}}},
			},
		},
	}
}

// processor is a third-party processor on loopback that records every
// erasure call with its Idempotency-Key, answering after a short delay (so
// kills land while calls are in flight).
type processor struct {
	*httptest.Server
	mu    sync.Mutex
	calls []call
	delay time.Duration
}

type call struct {
	key, email string
}

func newProcessor(t *testing.T, delay time.Duration) *processor {
	p := &processor{delay: delay}
	p.Server = httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		email, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/contacts/"))
		if err != nil || r.Method != nethttp.MethodDelete {
			w.WriteHeader(nethttp.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.calls = append(p.calls, call{key: r.Header.Get("Idempotency-Key"), email: email})
		p.mu.Unlock()
		select {
		case <-time.After(p.delay):
		case <-r.Context().Done():
		}
		w.WriteHeader(nethttp.StatusNoContent)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *processor) received() []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func processorStore(ns, name, secretName string) *privacyv1.DataStore {
	return &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: privacyv1.DataStoreSpec{
			Engine:     privacyv1.EngineHTTP,
			Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: secretName, Key: "url"}},
			Collections: []privacyv1.Collection{{
				Name: "contacts", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
				HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/v1/contacts/{email}"}},
			}},
		},
	}
}

// checkIdempotency: every request reached the processor; every call carries
// the key derived from its request; no subject got calls under two keys and
// no key served two subjects. It returns the calls that repeated a key.
func checkIdempotency(t *testing.T, p *processor, requests []privacyv1.DataSubjectRequest, emailOf map[string]string) (repeats int) {
	t.Helper()
	keyOfSubject := map[string]string{}
	for _, r := range requests {
		keyOfSubject[emailOf[r.Name]] = httpstore.IdempotencyKey(string(r.UID), "contacts", stores.KindErasure)
	}
	perKey := map[string]int{}
	subjectsOfKey := map[string]map[string]bool{}
	for _, c := range p.received() {
		want, ok := keyOfSubject[c.email]
		switch {
		case !ok:
			t.Errorf("the processor was asked about someone no request named")
		case c.key != want:
			t.Errorf("a call for a subject carried key %.12s..., not its request's %.12s...", c.key, want)
		}
		perKey[c.key]++
		if subjectsOfKey[c.key] == nil {
			subjectsOfKey[c.key] = map[string]bool{}
		}
		subjectsOfKey[c.key][c.email] = true
	}
	for key, subjects := range subjectsOfKey {
		if len(subjects) != 1 {
			t.Errorf("key %.12s... served %d subjects", key, len(subjects))
		}
	}
	for email, key := range keyOfSubject {
		if perKey[key] == 0 {
			t.Errorf("the processor never received the erasure of %s", email)
		}
		repeats += max(perKey[key]-1, 0)
	}
	return repeats
}
