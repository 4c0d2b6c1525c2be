package security

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	httpstore "github.com/lethe-dev/lethe/internal/stores/http"
	mysqlstore "github.com/lethe-dev/lethe/internal/stores/mysql"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
	redisstore "github.com/lethe-dev/lethe/internal/stores/redis"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// engineFixture is one engine loaded with a subject per hostile value plus
// bystanders, and a way to see all of its data.
type engineFixture struct {
	name  string
	store stores.Store
	// snapshot returns every unit of data (row, key, processor record) by id,
	// with a digest of its content.
	snapshot func(t *testing.T) map[string]string
	// owned lists the units that belong to the subject with identity v.
	owned func(v hostileValue) []string
	// wantErr says the engine is expected to refuse v (beyond blank values,
	// which every engine must refuse as invalid).
	wantErr func(v hostileValue) bool
	// transactional engines change nothing at all when they fail.
	transactional bool
	// check runs extra assertions after v's request (the processor saw only v).
	check func(t *testing.T, v hostileValue)
}

func isBlank(v string) bool { return strings.TrimSpace(v) == "" }

// bystanders are subjects that are not hostile values; they must never change.
var bystanders = []string{"axb@x.io", "someone@x.io", "AXB@X.IO"}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// TestHostileIdentitiesEraseExactlyTheirOwnSubject sends an erasure for every
// hostile value to every engine, one after another against one data set: each
// is refused (empty or blank: as invalid; values the database cannot hold: an
// error, nothing changed) or erases exactly its own subject's data and no
// other unit of data changes.
func TestHostileIdentitiesEraseExactlyTheirOwnSubject(t *testing.T) {
	values := hostileValues()
	if len(values) < 50 {
		t.Fatalf("only %d hostile values", len(values))
	}
	for _, fx := range []*engineFixture{postgresFixture(t, values), mysqlFixture(t, values), redisFixture(t, values), httpFixture(t, values)} {
		t.Run(fx.name, func(t *testing.T) {
			refused, erased := 0, 0
			for i, v := range values {
				before := fx.snapshot(t)
				own := fx.owned(v)
				req := stores.Request{Kind: stores.KindErasure, Subject: map[string]string{v.idType(): v.value}, RequestID: fmt.Sprintf("hostile-%d", i)}
				_, err := fx.store.Apply(context.Background(), req)
				after := fx.snapshot(t)
				switch {
				case isBlank(v.value):
					if !errors.Is(err, stores.ErrInvalid) {
						t.Errorf("%s: blank value: err = %v, want ErrInvalid", v.name, err)
					}
				case fx.wantErr(v):
					if err == nil {
						t.Errorf("%s: accepted, want a refusal", v.name)
					}
				case err != nil:
					t.Errorf("%s: %v", v.name, err)
				}
				if err != nil {
					refused++
					if tv := strings.TrimSpace(v.value); len(tv) >= 3 && strings.Contains(err.Error(), tv) {
						t.Errorf("%s: the error quotes the identity", v.name) // never print it
					}
				} else {
					erased++
				}
				assertOnlyOwnChanged(t, fx, v, own, before, after, err)
				if fx.check != nil {
					fx.check(t, v)
				}
			}
			t.Logf("%s: %d hostile values: %d refused (nothing changed), %d accepted and acted on exactly their own subject", fx.name, len(values), refused, erased)
		})
	}
}

// assertOnlyOwnChanged: units not owned by v are unchanged; owned units are
// gone after a success, and untouched after a failure of a transactional engine.
func assertOnlyOwnChanged(t *testing.T, fx *engineFixture, v hostileValue, own []string, before, after map[string]string, err error) {
	t.Helper()
	mine := map[string]bool{}
	for _, u := range own {
		mine[u] = true
	}
	for id, d := range before {
		if mine[id] {
			continue
		}
		if after[id] != d {
			t.Errorf("%s: the request for %q changed %s, which is not its subject's", fx.name, v.name, id)
		}
	}
	for id := range after {
		if _, ok := before[id]; !ok {
			t.Errorf("%s: the request for %q created %s", fx.name, v.name, id)
		}
	}
	for _, id := range own {
		_, present := after[id]
		switch {
		case err == nil && present:
			t.Errorf("%s: the request for %q left its subject's %s", fx.name, v.name, id)
		case err != nil && fx.transactional && after[id] != before[id]:
			t.Errorf("%s: the failed request for %q half-applied: %s changed", fx.name, v.name, id)
		}
	}
}

// ---- PostgreSQL -------------------------------------------------------------

func postgresFixture(t *testing.T, values []hostileValue) *engineFixture {
	ctx := context.Background()
	emails := map[int64]string{}
	for i, b := range bystanders {
		emails[int64(i+1)] = b
	}
	for i, v := range values {
		if v.pgStorable {
			emails[int64(100+i)] = v.value
		}
	}
	conn, dsn := peopleDB(t, emails)
	spec := peopleStoreSpec()
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := postgres.New(ctx, dsn, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &engineFixture{
		name: "postgres", store: s, transactional: true,
		snapshot: func(t *testing.T) map[string]string { return peopleSnapshot(t, conn) },
		owned:    func(v hostileValue) []string { return ownedPeople(emails, v) },
		// PostgreSQL text holds neither NUL nor invalid UTF-8: the query fails
		// (SQLSTATE 22021) and nothing changes.
		wantErr: func(v hostileValue) bool { return !v.pgStorable && v.idType() == "email" },
	}
}

// peopleDB creates a database of people (id, email, name) and their orders
// (two each), one person per entry of emails.
func peopleDB(t *testing.T, emails map[int64]string) (*pgx.Conn, string) {
	t.Helper()
	dsn := testdb.NewPostgres(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	mustExec(t, conn, `CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL, name text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, person_id bigint NOT NULL REFERENCES people (id), item text NOT NULL);`)
	for id, e := range emails {
		mustExec(t, conn, `INSERT INTO people VALUES ($1::bigint, $2, 'name of ' || $1::bigint::text)`, id, e)
		mustExec(t, conn, `INSERT INTO orders VALUES ($1::bigint * 10, $1::bigint, 'book'), ($1::bigint * 10 + 1, $1::bigint, 'pen')`, id)
	}
	return conn, dsn
}

// peopleStoreSpec maps peopleDB: people found by email or userId (id),
// orders through their person; erasure deletes both.
func peopleStoreSpec() privacyv1.DataStoreSpec {
	return privacyv1.DataStoreSpec{Engine: privacyv1.EnginePostgres, Collections: []privacyv1.Collection{
		{Name: "people", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			Identity: map[string]privacyv1.Identifier{"email": "email", "userId": "id"},
			Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}, {Name: "name", Category: "user.contact.name"}}},
		{Name: "orders", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
			References: []privacyv1.Reference{{Field: "person_id", Collection: "people"}},
			Fields:     []privacyv1.Field{{Name: "item", Category: "user.purchases"}}},
	}}
}

// peopleSnapshot digests every row of peopleDB by table/id.
func peopleSnapshot(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	out := map[string]string{}
	rows, err := conn.Query(context.Background(), `SELECT 'people/' || id, md5(p::text) FROM people p UNION ALL SELECT 'orders/' || id, md5(o::text) FROM orders o`)
	if err != nil {
		t.Fatal(err)
	}
	var id, d string
	if _, err := pgx.ForEachRow(rows, []any{&id, &d}, func() error { out[id] = d; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// ---- MySQL (MariaDB) -------------------------------------------------------

func mysqlFixture(t *testing.T, values []hostileValue) *engineFixture {
	ctx := context.Background()
	dsn := testdb.NewMySQL(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The server's default collation folds case, accents and trailing spaces:
	// the look-alikes compare equal to each other under it.
	for _, stmt := range []string{
		`CREATE TABLE people (id BIGINT PRIMARY KEY, email LONGTEXT NOT NULL, name VARCHAR(64) NOT NULL) DEFAULT CHARSET utf8mb4`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, person_id BIGINT NOT NULL, item VARCHAR(64) NOT NULL,
			CONSTRAINT orders_person_fk FOREIGN KEY (person_id) REFERENCES people (id)) DEFAULT CHARSET utf8mb4`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	emails := map[int64]string{}
	for i, b := range bystanders {
		emails[int64(i+1)] = b
	}
	for i, v := range values {
		if utf8.ValidString(v.value) && v.idType() == "email" {
			emails[int64(100+i)] = v.value
		}
	}
	for id, e := range emails {
		if _, err := db.ExecContext(ctx, `INSERT INTO people VALUES (?, ?, CONCAT('name of ', ?))`, id, e, id); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO orders VALUES (? * 10, ?, 'book'), (? * 10 + 1, ?, 'pen')`, id, id, id, id); err != nil {
			t.Fatal(err)
		}
	}
	spec := peopleStoreSpec()
	spec.Engine = privacyv1.EngineMySQL
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := mysqlstore.New(ctx, dsn, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if res, err := s.Check(ctx); err != nil || len(res.Problems) > 0 {
		t.Fatalf("mysql fixture does not check: %v %+v", err, res.Problems)
	}
	return &engineFixture{
		name: "mysql", store: s, transactional: true,
		snapshot: func(t *testing.T) map[string]string {
			out := map[string]string{}
			rows, err := db.QueryContext(ctx, `SELECT CONCAT('people/', id), MD5(CONCAT_WS('|', id, HEX(email), name)) FROM people
				UNION ALL SELECT CONCAT('orders/', id), MD5(CONCAT_WS('|', id, person_id, item)) FROM orders`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var id, d string
				if err := rows.Scan(&id, &d); err != nil {
					t.Fatal(err)
				}
				out[id] = d
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		},
		owned: func(v hostileValue) []string { return ownedPeople(emails, v) },
		// utf8mb4 columns hold no invalid UTF-8: such a value cannot match.
		wantErr: func(hostileValue) bool { return false },
	}
}

// ownedPeople: the people rows (and their orders) whose email is v exactly,
// or whose id is v written canonically.
func ownedPeople(emails map[int64]string, v hostileValue) []string {
	var ids []int64
	if v.idType() == "userId" {
		if n, err := strconv.ParseInt(v.value, 10, 64); err == nil && strconv.FormatInt(n, 10) == v.value {
			if _, ok := emails[n]; ok {
				ids = append(ids, n)
			}
		}
	} else {
		for id, e := range emails {
			if e == v.value {
				ids = append(ids, id)
			}
		}
	}
	var out []string
	for _, id := range ids {
		out = append(out, fmt.Sprintf("people/%d", id), fmt.Sprintf("orders/%d", id*10), fmt.Sprintf("orders/%d", id*10+1))
	}
	return out
}

// ---- Redis ------------------------------------------------------------------

func redisFixture(t *testing.T, values []hostileValue) *engineFixture {
	ctx := context.Background()
	r := testdb.NewRedis(t)
	keysOf := func(v hostileValue) []string {
		if v.idType() == "userId" {
			return []string{r.Key("profile:" + v.value)}
		}
		return []string{r.Key("user:" + v.value), r.Key("session:" + v.value + ":a"), r.Key("session:" + v.value + ":b")}
	}
	all := append([]hostileValue(nil), values...)
	for _, b := range bystanders {
		all = append(all, hostileValue{value: b})
	}
	all = append(all, hostileValue{value: "2", identityType: "userId"}, hostileValue{value: "3", identityType: "userId"})
	for _, v := range all {
		if v.value == "" {
			continue // an empty identity has no keys: its pattern is the bare prefix
		}
		for _, k := range keysOf(v) {
			if strings.Contains(k, ":session:") {
				if err := r.Client.Set(ctx, k, "token-"+digest(k), 0).Err(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := r.Client.HSet(ctx, k, "name", "name-"+digest(k), "plan", "pro").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The patterns embed the test's key prefix (letters, digits, - and :, so no escaping).
	spec := privacyv1.DataStoreSpec{Engine: privacyv1.EngineRedis, Collections: []privacyv1.Collection{
		{Name: "users", KeyPattern: r.Prefix + "user:{email}", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete},
		{Name: "sessions", KeyPattern: r.Prefix + "session:{email}:*", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete},
		{Name: "profiles", KeyPattern: r.Prefix + "profile:{userId}", Identity: map[string]privacyv1.Identifier{"userId": "id"}, OnErasure: privacyv1.ErasureDelete},
	}}
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.New(ctx, r.URL, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &engineFixture{
		name: "redis", store: s, transactional: true,
		snapshot: func(t *testing.T) map[string]string {
			out := map[string]string{}
			for _, k := range r.Keys(t) {
				dump, err := r.Client.Dump(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				out[k] = digest(dump)
			}
			return out
		},
		owned:   keysOf,
		wantErr: func(hostileValue) bool { return false },
	}
}

// ---- HTTP processor ---------------------------------------------------------

// recordStore is a processor holding customers, contacts and users by their
// exact identity, which records every identity it was asked about.
type recordStore struct {
	mu      sync.Mutex
	records map[string]bool // "customer/<email>", "contact/<email>", "user/<id>"
	seen    []string        // identities received since the last reset
	bad     []string        // requests that did not parse as one identity
}

func (p *recordStore) serve(w nethttp.ResponseWriter, r *nethttp.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var unit, identity string
	segs := strings.Split(r.URL.EscapedPath(), "/")
	switch {
	case r.Method == nethttp.MethodDelete && len(segs) == 4 && segs[2] == "customers":
		id, err := url.PathUnescape(segs[3])
		if err != nil || r.URL.Query().Get("check") != id || len(r.URL.Query()) != 1 {
			p.bad = append(p.bad, "customers: the identity left its path segment or query parameter")
			w.WriteHeader(nethttp.StatusBadRequest)
			return
		}
		unit, identity = "customer/"+id, id
	case r.Method == nethttp.MethodPost && r.URL.Path == "/v1/contacts/erase":
		var body map[string]string
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil || len(body) != 2 || body["reason"] != "gdpr" {
			p.bad = append(p.bad, "contacts: the identity left its JSON string")
			w.WriteHeader(nethttp.StatusBadRequest)
			return
		}
		unit, identity = "contact/"+body["email"], body["email"]
	case r.Method == nethttp.MethodDelete && len(segs) == 4 && segs[2] == "users":
		id, err := url.PathUnescape(segs[3])
		if err != nil {
			p.bad = append(p.bad, "users: bad path")
			w.WriteHeader(nethttp.StatusBadRequest)
			return
		}
		unit, identity = "user/"+id, id
	default:
		p.bad = append(p.bad, "unexpected request "+r.Method)
		w.WriteHeader(nethttp.StatusBadRequest)
		return
	}
	p.seen = append(p.seen, identity)
	if !p.records[unit] {
		w.WriteHeader(nethttp.StatusNotFound)
		return
	}
	delete(p.records, unit)
	w.WriteHeader(nethttp.StatusNoContent)
}

func httpFixture(t *testing.T, values []hostileValue) *engineFixture {
	p := &recordStore{records: map[string]bool{}}
	srv := httptest.NewServer(nethttp.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	unitsOf := func(v hostileValue) []string {
		if v.idType() == "userId" {
			return []string{"user/" + v.value}
		}
		return []string{"customer/" + v.value, "contact/" + v.value}
	}
	all := append([]hostileValue(nil), values...)
	for _, b := range bystanders {
		all = append(all, hostileValue{value: b})
	}
	// A contact whose address is the replacement character: what a body
	// template sends for an identity that is not UTF-8.
	all = append(all, hostileValue{value: "\uFFFD\uFFFD"}, hostileValue{value: "2", identityType: "userId"})
	for _, v := range all {
		for _, u := range unitsOf(v) {
			p.records[u] = true
		}
	}
	spec := privacyv1.DataStoreSpec{Engine: privacyv1.EngineHTTP, Collections: []privacyv1.Collection{
		{Name: "customers", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
			HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/v1/customers/{email}?check={email}"}}},
		{Name: "contacts", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
			HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPPost, Path: "/v1/contacts/erase",
				Body: &apiextensionsv1.JSON{Raw: []byte(`{"email":"{email}","reason":"gdpr"}`)}}}},
		{Name: "users", Identity: map[string]privacyv1.Identifier{"userId": "id"}, OnErasure: privacyv1.ErasureDelete,
			HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/v1/users/{userId}"}}},
	}}
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpstore.ConfigFor(spec, srv.URL, "", nil)
	cfg.MaxAttempts = 1
	cfg.Network = testdb.Loopback
	s, err := httpstore.New(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &engineFixture{
		name: "http", store: s,
		snapshot: func(*testing.T) map[string]string {
			p.mu.Lock()
			defer p.mu.Unlock()
			out := map[string]string{}
			for u := range maps.Keys(p.records) {
				out[u] = "present"
			}
			return out
		},
		owned: unitsOf,
		// A 1 MB identity makes a request line longer than the processor
		// accepts (431): refused there, and retried later, never widened.
		// Invalid UTF-8 is refused: JSON would carry it as U+FFFD, another identity.
		wantErr: func(v hostileValue) bool { return len(v.value) > 1<<19 || !utf8.ValidString(v.value) },
		check: func(t *testing.T, v hostileValue) {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, b := range p.bad {
				t.Errorf("http: %s: %s", v.name, b)
			}
			for _, got := range p.seen {
				if got != v.value {
					t.Errorf("http: the request for %q addressed another identity", v.name)
				}
			}
			p.seen, p.bad = nil, nil
		},
	}
}

// TestRedisIdentityHoldingTheKeySeparator: with session:{userId}:*, the keys
// of user 4:x (session:4:x:a) also match user 4's glob session:4:*. Erasing
// user 4 must not erase user 4:x's keys.
func TestRedisIdentityHoldingTheKeySeparator(t *testing.T) {
	ctx := context.Background()
	r := testdb.NewRedis(t)
	for _, k := range []string{"session:4:a", "session:4:x:a"} {
		if err := r.Client.Set(ctx, r.Key(k), "token", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	spec := privacyv1.DataStoreSpec{Engine: privacyv1.EngineRedis, Collections: []privacyv1.Collection{
		{Name: "sessions", KeyPattern: r.Prefix + "session:{userId}:*", Identity: map[string]privacyv1.Identifier{"userId": "id"}, OnErasure: privacyv1.ErasureDelete},
	}}
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.New(ctx, r.URL, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Apply(ctx, stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"userId": "4"}, RequestID: "sep"}); err != nil {
		t.Fatal(err)
	}
	if keys := r.Keys(t); len(keys) != 1 || keys[0] != r.Key("session:4:x:a") {
		t.Errorf("erasing user 4 left %v, want only user 4:x's key", keys)
	}
}
