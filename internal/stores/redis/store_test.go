package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

var testMaskingKey = []byte("masking-key")

func sessions(db *testdb.Redis) privacyv1.Collection {
	return privacyv1.Collection{
		Name: "sessions", KeyPattern: db.Key("session:{userId}:*"),
		Identity:  map[string]privacyv1.Identifier{"userId": "user_id"},
		OnErasure: privacyv1.ErasureDelete,
	}
}

func users(db *testdb.Redis) privacyv1.Collection {
	return privacyv1.Collection{
		Name: "users", KeyPattern: db.Key("user:{email}"),
		Identity:  map[string]privacyv1.Identifier{"email": "email"},
		OnErasure: privacyv1.ErasureDelete,
	}
}

func profiles(db *testdb.Redis) privacyv1.Collection {
	keep := int32(2)
	step := int64(10)
	return privacyv1.Collection{
		Name: "profiles", KeyPattern: db.Key("profile:{userId}"),
		Identity:  map[string]privacyv1.Identifier{"userId": "id"},
		OnErasure: privacyv1.ErasureAnonymize,
		Fields: []privacyv1.Field{
			{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}},
			{Name: "phone", Category: "user.contact.phone", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskPartial, KeepLast: &keep}},
			{Name: "name", Category: "user.identity.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
			{Name: "city", Category: "user.location.city", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
			{Name: "age", Category: "user.demographic.age", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Step: &step}},
			{Name: "nickname", Category: "user.identity.nickname"},
		},
	}
}

func newStore(t *testing.T, db *testdb.Redis, collections ...privacyv1.Collection) *Store {
	t.Helper()
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EngineRedis, Collections: collections})
	if err != nil {
		t.Fatalf("datamap: %v", err)
	}
	s, err := New(context.Background(), db.URL, m, testMaskingKey, testdb.Loopback)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func seed(t *testing.T, db *testdb.Redis, keys ...string) {
	t.Helper()
	ctx := context.Background()
	for _, k := range keys {
		if err := db.Client.Set(ctx, db.Key(k), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// remaining lists the keys left, without the test's prefix.
func remaining(t *testing.T, db *testdb.Redis) []string {
	t.Helper()
	var out []string
	for _, k := range db.Keys(t) {
		out = append(out, strings.TrimPrefix(k, db.Prefix))
	}
	return out
}

func erasure(subject map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindErasure, Subject: subject, RequestID: "uid-1"}
}

func rows(res stores.Result) map[string]int64 {
	out := map[string]int64{}
	for _, c := range res.Collections {
		out[c.Collection+"/"+string(c.Action)] += c.Rows
	}
	return out
}

func TestAdversarialIdentitiesEraseOnlyTheirOwnSubject(t *testing.T) {
	db := testdb.NewRedis(t)
	s := newStore(t, db, sessions(db), users(db))
	ids := []string{"*", "?", "[a-z]", "[!a]", "a*", `\`, `\*`, `"q'`, "%", "_", "é✓", "a/b", "..", "x]y", "a", "b", "ab", "x", ""}
	ids = ids[:len(ids)-1] // the empty identity is refused, see TestEmptyIdentityIsRefused
	var all []string
	for _, id := range ids {
		all = append(all, "session:"+id+":1", "user:"+id)
	}
	seed(t, db, all...)
	left := slices.Clone(all)
	slices.Sort(left)
	ctx := context.Background()
	for _, id := range ids {
		// The escaped glob alone, without the Go re-check, matches only this subject.
		glob := s.colls["sessions"].pattern.render(map[string]string{"userId": id}).glob()
		var matched []string
		iter := db.Client.Scan(ctx, 0, glob, 1000).Iterator()
		for iter.Next(ctx) {
			matched = append(matched, strings.TrimPrefix(iter.Val(), db.Prefix))
		}
		if !slices.Equal(matched, []string{"session:" + id + ":1"}) {
			t.Errorf("%q: SCAN MATCH %q returned %v", id, glob, matched)
		}
		req := erasure(map[string]string{"userId": id, "email": id})
		res, err := s.Apply(ctx, req)
		if err != nil {
			t.Fatalf("%q: Apply: %v", id, err)
		}
		if want := map[string]int64{"sessions/delete": 1, "users/delete": 1}; !reflect.DeepEqual(rows(res), want) {
			t.Errorf("%q: rows %v, want %v", id, rows(res), want)
		}
		left = slices.DeleteFunc(left, func(k string) bool { return k == "session:"+id+":1" || k == "user:"+id })
		if got := remaining(t, db); !slices.Equal(got, left) {
			t.Fatalf("after erasing %q: keys %v, want %v", id, got, left)
		}
	}
}

func TestScanFollowsTheCursorOverManyKeys(t *testing.T) {
	db := testdb.NewRedis(t)
	s := newStore(t, db, sessions(db))
	ctx := context.Background()
	pipe := db.Client.Pipeline()
	for i := range 2500 {
		pipe.Set(ctx, db.Key(fmt.Sprintf("session:7:%d", i)), "v", 0)
	}
	pipe.Set(ctx, db.Key("session:8:0"), "v", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, erasure(map[string]string{"userId": "7"}))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if rows(res)["sessions/delete"] != 2500 {
		t.Errorf("deleted %d, want 2500", rows(res)["sessions/delete"])
	}
	if got := remaining(t, db); !slices.Equal(got, []string{"session:8:0"}) {
		t.Errorf("keys left %v", got)
	}
}

func TestConcurrentChangeRetriesTheTransaction(t *testing.T) {
	db := testdb.NewRedis(t)
	s := newStore(t, db, profiles(db))
	ctx := context.Background()
	key := db.Key("profile:42")
	db.Client.HSet(ctx, key, "name", "Ada")
	calls := 0
	s.beforeExec = func() {
		calls++
		if calls == 1 { // the application writes between Lethe's read and EXEC
			db.Client.HSet(ctx, key, "name", "Ada L.", "city", "London")
		}
	}
	if _, err := s.Apply(ctx, erasure(map[string]string{"userId": "42"})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if calls != 2 {
		t.Errorf("%d transaction attempts, want 2 (WATCH aborts the first)", calls)
	}
	if got := db.Client.HGetAll(ctx, key).Val(); !reflect.DeepEqual(got, map[string]string{"name": "[redacted]"}) {
		t.Errorf("profile %v: the concurrent write was not masked", got)
	}
}

func TestExportDumpsEveryType(t *testing.T) {
	db := testdb.NewRedis(t)
	bag := privacyv1.Collection{
		Name: "bag", KeyPattern: db.Key("bag:{userId}:*"),
		Identity: map[string]privacyv1.Identifier{"userId": "id"},
	}
	s := newStore(t, db, bag, profiles(db))
	ctx := context.Background()
	db.Client.Set(ctx, db.Key("bag:42:str"), "hello", 0)
	db.Client.HSet(ctx, db.Key("bag:42:hash"), "a", "1")
	db.Client.RPush(ctx, db.Key("bag:42:list"), "x", "y")
	db.Client.SAdd(ctx, db.Key("bag:42:set"), "s2", "s1")
	db.Client.ZAdd(ctx, db.Key("bag:42:zset"), goredis.Z{Score: 2, Member: "m"})
	db.Client.XAdd(ctx, &goredis.XAddArgs{Stream: db.Key("bag:42:stream"), ID: "1-1", Values: []string{"k", "v"}})
	db.Client.Set(ctx, db.Key("bag:43:str"), "other", 0)
	db.Client.HSet(ctx, db.Key("profile:42"), "email", "ada@example.com", "plan", "pro")

	exp, res, err := s.Export(ctx, stores.Request{Kind: stores.KindAccess, Subject: map[string]string{"userId": "42"}})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	want := stores.Export{
		"bag": {
			{"key": db.Key("bag:42:hash"), "type": "hash", "value": map[string]string{"a": "1"}},
			{"key": db.Key("bag:42:list"), "type": "list", "value": []string{"x", "y"}},
			{"key": db.Key("bag:42:set"), "type": "set", "value": []string{"s1", "s2"}},
			{"key": db.Key("bag:42:str"), "type": "string", "value": "hello"},
			{"key": db.Key("bag:42:stream"), "type": "stream", "value": []map[string]any{{"id": "1-1", "values": map[string]any{"k": "v"}}}},
			{"key": db.Key("bag:42:zset"), "type": "zset", "value": []map[string]any{{"member": "m", "score": 2.0}}},
		},
		// Only mapped fields: plan is not personal data in the map.
		"profiles": {{"key": db.Key("profile:42"), "type": "hash", "value": map[string]string{"email": "ada@example.com"}}},
	}
	if !reflect.DeepEqual(exp, want) {
		t.Errorf("export\n%v\nwant\n%v", exp, want)
	}
	if want := map[string]int64{"bag/export": 6, "profiles/export": 1}; !reflect.DeepEqual(rows(res), want) {
		t.Errorf("rows %v, want %v", rows(res), want)
	}
}

func TestHoldsRetentionAndExemptions(t *testing.T) {
	db := testdb.NewRedis(t)
	invoices := privacyv1.Collection{
		Name: "invoices", KeyPattern: db.Key("invoice:{userId}:*"),
		Identity:  map[string]privacyv1.Identifier{"userId": "id"},
		OnErasure: privacyv1.ErasureDelete,
	}
	audit := privacyv1.Collection{
		Name: "audit", KeyPattern: db.Key("audit:{userId}"),
		Identity:  map[string]privacyv1.Identifier{"userId": "id"},
		OnErasure: privacyv1.ErasureRetain, RetainReason: "collected automatically; cannot be removed",
	}
	s := newStore(t, db, sessions(db), invoices, audit)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	recent := now.AddDate(-1, 0, 0)
	db.Client.HSet(ctx, db.Key("invoice:42:1"), "issued_at", recent.Format(time.RFC3339))
	db.Client.HSet(ctx, db.Key("invoice:42:2"), "issued_at", "2010-01-01")
	db.Client.HSet(ctx, db.Key("invoice:42:3"), "total", "12")
	seed(t, db, "session:42:a", "audit:42")

	req := erasure(map[string]string{"userId": "42"})
	req.Holds = []stores.Hold{{Collection: "sessions", Reason: "court order", Name: "case-7"}}
	req.Exemptions = []stores.Exemption{{Collection: "invoices", Field: "issued_at", Cutoff: now.AddDate(-10, 0, 0), Period: "10y", LegalBasis: "Code de commerce L123-22", Rule: "billing"}}
	res, err := s.Apply(ctx, req)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	until := recent.AddDate(10, 0, 0)
	want := []stores.CollectionResult{
		{Collection: "audit", Action: stores.ActionRetain, Rows: 1, Reason: "collected automatically; cannot be removed"},
		{Collection: "invoices", Action: stores.ActionDelete, Rows: 2},
		{Collection: "invoices", Action: stores.ActionRetain, Rows: 1, Reason: "exempt from erasure for 10y under Code de commerce L123-22 (rule billing)", RetainedUntil: &until},
		{Collection: "sessions", Action: stores.ActionRetain, Rows: 1, Reason: "legal hold case-7: court order"},
	}
	if !res.Held || !reflect.DeepEqual(res.Collections, want) {
		t.Errorf("result held=%v\n%+v\nwant\n%+v", res.Held, res.Collections, want)
	}
	if got := remaining(t, db); !slices.Equal(got, []string{"audit:42", "invoice:42:1", "session:42:a"}) {
		t.Errorf("keys left %v", got)
	}
}

func TestMissingAndEmptyIdentities(t *testing.T) {
	db := testdb.NewRedis(t)
	s := newStore(t, db, sessions(db), users(db))
	seed(t, db, "session::x", "user:")
	res, err := s.Plan(context.Background(), erasure(map[string]string{"email": "a@b.c"}))
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Collections; r[1].Collection != "sessions" || r[1].Rows != 0 || r[1].Reason != "the subject has no userId identity" {
		t.Errorf("plan %+v", r)
	}
	for _, id := range []string{"", " \t"} {
		_, err := s.Apply(context.Background(), erasure(map[string]string{"userId": id, "email": id}))
		if !errors.Is(err, stores.ErrInvalid) {
			t.Errorf("identity %q: err = %v, want ErrInvalid", id, err)
		}
	}
	if n := len(remaining(t, db)); n != 2 {
		t.Errorf("an empty identity erased keys: %d left", n)
	}
}

func TestCheckReportsPatternProblems(t *testing.T) {
	db := testdb.NewRedis(t)
	hashed := users(db)
	hashed.Fields = []privacyv1.Field{{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskHash}}}
	bad := []privacyv1.Collection{
		{Name: "all", KeyPattern: db.Key("session:*"), Identity: map[string]privacyv1.Identifier{"userId": "id"}},
		{Name: "unmapped", KeyPattern: db.Key("u:{email}"), Identity: map[string]privacyv1.Identifier{"userId": "id"}},
		{Name: "glued", KeyPattern: db.Key("g:{userId}*"), Identity: map[string]privacyv1.Identifier{"userId": "id"}},
		{Name: "classy", KeyPattern: db.Key("c:[ab]:{userId}"), Identity: map[string]privacyv1.Identifier{"userId": "id"}},
		hashed,
	}
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EngineRedis, Collections: bad})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), db.URL, m, nil, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.Collection+"/"+p.Field+": "+p.Problem)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"all/: keyPattern: it has no identity placeholder",
		"unmapped/: keyPattern: placeholder {email} is not an identity type this collection maps",
		"glued/: keyPattern: a wildcard next to a placeholder",
		"classy/: keyPattern: character classes",
		"users/email: masking hash needs the DataStore's maskingKeySecretRef",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if _, err := s.Plan(context.Background(), erasure(map[string]string{"userId": "1"})); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("Plan with problems: %v, want ErrInvalid", err)
	}

	good := newStore(t, db, sessions(db), profiles(db))
	res, err = good.Check(context.Background())
	if err != nil || len(res.Problems) != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "profiles") {
		t.Errorf("valid store: %+v, %v; want no problem and one warning (anonymize keeps identity-named keys)", res, err)
	}
}

func TestConnectionErrors(t *testing.T) {
	m, err := datamap.Build(privacyv1.DataStoreSpec{Engine: privacyv1.EngineRedis, Collections: []privacyv1.Collection{{
		Name: "s", KeyPattern: "s:{userId}", Identity: map[string]privacyv1.Identifier{"userId": "id"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), "http://user:s3cret@host", m, nil, testdb.Loopback)
	if !errors.Is(err, stores.ErrInvalid) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: %v, want ErrInvalid without the password", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = New(ctx, "redis://:s3cret@"+addr+"/0", m, nil, testdb.Loopback)
	if !errors.Is(err, stores.ErrUnavailable) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("unreachable server: %v, want ErrUnavailable without the password", err)
	}
}

// A corrected e-mail that a key pattern names renames the keys, so the old
// e-mail no longer finds them; a key the new name would overwrite is never
// overwritten: the whole rectification is refused and nothing changes.
func TestRectifiedIdentityRenamesKeysAndNeverOverwrites(t *testing.T) {
	db := testdb.NewRedis(t)
	contacts := privacyv1.Collection{
		Name: "contacts", KeyPattern: db.Key("contact:{email}:*"),
		Identity:  map[string]privacyv1.Identifier{"email": "email"},
		OnErasure: privacyv1.ErasureDelete,
		Fields:    []privacyv1.Field{{Name: "email", Category: "user.contact.email"}, {Name: "name", Category: "user.identity.name"}},
	}
	s := newStore(t, db, contacts)
	ctx := context.Background()
	for _, k := range []string{"contact:old@x.io:1", "contact:old@x.io:2", "contact:other@x.io:3"} {
		if err := db.Client.HSet(ctx, db.Key(k), "email", strings.Split(k, ":")[1], "name", "N").Err(); err != nil {
			t.Fatal(err)
		}
	}
	rectify := func(from, to string) (stores.Result, error) {
		return s.Apply(ctx, stores.Request{Kind: stores.KindRectification, RequestID: "uid-1",
			Subject: map[string]string{"email": from}, Rectification: map[string]string{"user.contact.email": to}})
	}

	// A key already named for the new e-mail: renaming key 2 would overwrite it.
	if err := db.Client.HSet(ctx, db.Key("contact:new@x.io:2"), "email", "new@x.io").Err(); err != nil {
		t.Fatal(err)
	}
	before := remaining(t, db)
	if _, err := rectify("old@x.io", "new@x.io"); !errors.Is(err, stores.ErrInvalid) || strings.Contains(err.Error(), "new@x.io") {
		t.Fatalf("rename onto an existing key: err = %v, want ErrInvalid without the identity", err)
	}
	if after := remaining(t, db); !slices.Equal(after, before) {
		t.Fatalf("a refused rectification changed keys: %v, want %v", after, before)
	}
	if err := db.Client.Del(ctx, db.Key("contact:new@x.io:2")).Err(); err != nil {
		t.Fatal(err)
	}

	res, err := rectify("old@x.io", "new@x.io")
	if err != nil || rows(res)["contacts/rectify"] != 2 {
		t.Fatalf("rectify: %v, %v; want 2 keys rectified", rows(res), err)
	}
	want := []string{"contact:new@x.io:1", "contact:new@x.io:2", "contact:other@x.io:3"}
	if got := remaining(t, db); !slices.Equal(got, want) {
		t.Fatalf("keys after rectification: %v, want %v", got, want)
	}
	if v := db.Client.HGet(ctx, db.Key("contact:new@x.io:1"), "email").Val(); v != "new@x.io" {
		t.Errorf("renamed key holds email %q", v)
	}
	// The old e-mail finds nothing; the new one finds the keys unchanged.
	for _, from := range []string{"old@x.io", "new@x.io"} {
		if res, err := rectify(from, "new@x.io"); err != nil || rows(res)["contacts/rectify"] != 0 {
			t.Errorf("rectify again by %s: %v, %v; want 0", from, rows(res), err)
		}
	}
}
