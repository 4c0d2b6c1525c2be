package http

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

func TestErasureSendsExactlyTheTemplatedRequest(t *testing.T) {
	p := newProcessor(t)
	s, sl := newStore(t, p.URL+"/api/", spec(customers()))
	subject := map[string]string{"customerId": "cus_9s6XKzkNRiz8i3", "email": "ada@example.com"}

	res, err := s.Apply(context.Background(), erasure(subject))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := p.requests()
	if len(got) != 1 {
		t.Fatalf("processor received %d requests, want 1", len(got))
	}
	r := got[0]
	if r.Method != "DELETE" || r.RequestURI != "/api/v1/customers/cus_9s6XKzkNRiz8i3" {
		t.Errorf("received %s %s", r.Method, r.RequestURI)
	}
	if len(r.Body) != 0 || r.Header.Get("Content-Type") != "" {
		t.Errorf("DELETE carried a body %q (Content-Type %q)", r.Body, r.Header.Get("Content-Type"))
	}
	wantHeaders := map[string]string{
		"Authorization":     testAuthorization,
		"Stripe-Version":    "2024-06-20",
		"Idempotency-Key":   IdempotencyKey(testRequestID, "customers", stores.KindErasure),
		"X-Lethe-Signature": Sign(testSigningKey, testNow, "DELETE", "/api/v1/customers/cus_9s6XKzkNRiz8i3", IdempotencyKey(testRequestID, "customers", stores.KindErasure), nil),
		"X-Lethe-Timestamp": strconv.FormatInt(testNow.Unix(), 10),
		"Accept":            "application/json",
	}
	if r.Verified != nil {
		t.Errorf("the receiver's Verify refused the request: %v", r.Verified)
	}
	for k, v := range wantHeaders {
		if r.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, r.Header.Get(k), v)
		}
	}
	for k, vs := range r.Header {
		assertNoLeak(t, "header "+k, strings.Join(vs, ","), subject)
	}
	want := stores.Result{Collections: []stores.CollectionResult{{
		Collection: "customers", Action: stores.ActionDelete, Rows: 1,
		Reason: "processor answered 200 to DELETE /v1/customers/{customerId}",
	}}, Repeated: true}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if len(sl.all()) != 0 {
		t.Errorf("slept %v on a first-time success", sl.all())
	}
}

func TestIdempotencyKeyIsStableDistinctAndOpaque(t *testing.T) {
	k := IdempotencyKey(testRequestID, "customers", stores.KindErasure)
	if k != IdempotencyKey(testRequestID, "customers", stores.KindErasure) {
		t.Error("key is not stable")
	}
	if _, err := hex.DecodeString(k); err != nil || len(k) != 64 {
		t.Errorf("key %q is not a hex SHA-256", k)
	}
	for _, other := range []string{
		IdempotencyKey(testRequestID, "contacts", stores.KindErasure),
		IdempotencyKey(testRequestID, "customers", stores.KindRectification),
		IdempotencyKey("another-uid", "customers", stores.KindErasure),
		IdempotencyKey(testRequestID+"c", "ustomers", stores.KindErasure),
	} {
		if other == k {
			t.Error("distinct requests share a key")
		}
	}
	if strings.Contains(k, testRequestID) || strings.Contains(k, "customers") {
		t.Error("key reveals its inputs")
	}
}

func TestPathIdentitiesStayInTheirSegment(t *testing.T) {
	cases := map[string]string{
		"*":           "%2A",
		"?":           "%3F",
		"[a-z]":       "%5Ba-z%5D",
		`"q'`:         "%22q%27",
		"%":           "%25",
		"_":           "_",
		`\`:           "%5C",
		"é✓":          "%C3%A9%E2%9C%93",
		"a/b":         "a%2Fb",
		"..":          "%2E%2E",
		".":           "%2E",
		"../../admin": "..%2F..%2Fadmin",
		"x?y=1&z#f":   "x%3Fy=1&z%23f",
		"a b":         "a%20b",
	}
	for id, escaped := range cases {
		t.Run(id, func(t *testing.T) {
			p := newProcessor(t)
			s, _ := newStore(t, p.URL, spec(customers()))
			if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": id})); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			r := p.requests()[0]
			if want := "/v1/customers/" + escaped; r.RequestURI != want {
				t.Errorf("request URI %q, want %q", r.RequestURI, want)
			}
			seg := strings.TrimPrefix(r.EscPath, "/v1/customers/")
			if strings.Contains(seg, "/") {
				t.Errorf("identity left its path segment: %q", r.EscPath)
			}
			if back, err := url.PathUnescape(seg); err != nil || back != id {
				t.Errorf("segment %q decodes to %q, want %q", seg, back, id)
			}
		})
	}
}

func TestQueryPlaceholdersAreQueryEscaped(t *testing.T) {
	c := customers()
	c.HTTP.Access = &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPGet, Path: "/v1/customers/search?email={email}&limit=1"}
	p := newProcessor(t, reply{status: 200, body: `[]`})
	s, _ := newStore(t, p.URL, spec(c))
	email := "a+b&limit=100@x.com"
	req := stores.Request{Kind: stores.KindAccess, Subject: map[string]string{"email": email}, RequestID: testRequestID}
	if _, _, err := s.Export(context.Background(), req); err != nil {
		t.Fatalf("Export: %v", err)
	}
	r := p.requests()[0]
	u, _ := url.ParseRequestURI(r.RequestURI)
	q := u.Query()
	if q.Get("email") != email || !slices.Equal(q["limit"], []string{"1"}) {
		t.Errorf("query %q decodes to %v; the identity widened the query", u.RawQuery, q)
	}
}

func TestBodyIsBuiltFromJSONNotConcatenated(t *testing.T) {
	c := privacyv1.Collection{
		Name:      "users",
		Identity:  map[string]privacyv1.Identifier{"intercomUserId": "user_id"},
		OnErasure: privacyv1.ErasureDelete,
		HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{
			Method:  privacyv1.HTTPPost,
			Path:    "/user_delete_requests",
			Headers: map[string]privacyv1.HTTPHeaderValue{"Intercom-Version": "2.11"},
			Body:    rawJSON(`{"intercom_user_id": "{intercomUserId}", "note": "erase {intercomUserId} \\{now\\}", "ids": ["{intercomUserId}", 7]}`),
		}},
	}
	p := newProcessor(t)
	s, _ := newStore(t, p.URL, spec(c))
	id := `x", "admin": true, "y": "\u0000</script>é`
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"intercomUserId": id})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	r := p.requests()[0]
	if r.Method != "POST" || r.RequestURI != "/user_delete_requests" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("received %s %s (%s)", r.Method, r.RequestURI, r.Header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	want := map[string]any{
		"intercom_user_id": id,
		"note":             "erase " + id + " {now}",
		"ids":              []any{id, 7.0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body decodes to %#v, want %#v", got, want)
	}
	if r.Verified != nil {
		t.Errorf("signature does not verify against the received request: %v", r.Verified)
	}
	if want := Sign(testSigningKey, testNow, "POST", "/user_delete_requests", r.Header.Get("Idempotency-Key"), r.Body); r.Header.Get("X-Lethe-Signature") != want {
		t.Errorf("signature %q, want %q", r.Header.Get("X-Lethe-Signature"), want)
	}
	for k, vs := range r.Header {
		assertNoLeak(t, "header "+k, strings.Join(vs, ","), map[string]string{"id": "admin"})
	}
}

func TestRetriesHonourRetryAfterWithTheSameRequest(t *testing.T) {
	p := newProcessor(t,
		reply{status: 429, header: map[string]string{"Retry-After": "7"}},
		reply{status: 503},
		reply{status: 429, header: map[string]string{"Retry-After": testNow.Add(3 * time.Second).Format(nethttp.TimeFormat)}},
		reply{status: 200},
	)
	c := customers()
	c.HTTP.Erasure.Body = rawJSON(`{"reason": "gdpr", "email": "{email}"}`)
	c.HTTP.Erasure.Method = privacyv1.HTTPPost
	s, sl := newStore(t, p.URL, spec(c), func(cfg *Config) { cfg.MaxAttempts = 4 })
	res, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1", "email": "ada@example.com"}))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Collections[0].Rows != 1 {
		t.Errorf("rows = %d, want 1", res.Collections[0].Rows)
	}
	if want := []time.Duration{7 * time.Second, time.Second, 3 * time.Second}; !slices.Equal(sl.all(), want) {
		t.Errorf("slept %v, want %v (Retry-After seconds, backoff, Retry-After date)", sl.all(), want)
	}
	got := p.requests()
	if len(got) != 4 {
		t.Fatalf("%d attempts, want 4", len(got))
	}
	for i, r := range got {
		// Each attempt is signed afresh; the key and the bytes never change.
		if r.Verified != nil {
			t.Errorf("attempt %d: the receiver refused the signature: %v", i+1, r.Verified)
		}
		if r.Header.Get("Idempotency-Key") != got[0].Header.Get("Idempotency-Key") {
			t.Errorf("attempt %d changed the Idempotency-Key", i+1)
		}
		if string(r.Body) != string(got[0].Body) {
			t.Errorf("attempt %d changed the body", i+1)
		}
	}
}

func TestBackoffDoublesUpToItsCap(t *testing.T) {
	s, _ := newStore(t, "http://127.0.0.1:1", spec(customers()), func(cfg *Config) { cfg.MaxBackoff = 3 * time.Second })
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		got = append(got, s.backoff(a))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("backoff = %v, want %v", got, want)
	}
}

func TestGivesUpAfterMaxAttemptsAsUnavailable(t *testing.T) {
	p := newProcessor(t, reply{status: 503})
	s, sl := newStore(t, p.URL, spec(customers()), func(cfg *Config) { cfg.MaxAttempts = 3 })
	subject := map[string]string{"customerId": "cus_secret42"}
	_, err := s.Apply(context.Background(), erasure(subject))
	if !errors.Is(err, stores.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n := len(p.requests()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	if want := []time.Duration{500 * time.Millisecond, time.Second}; !slices.Equal(sl.all(), want) {
		t.Errorf("slept %v, want %v", sl.all(), want)
	}
	if !strings.Contains(err.Error(), "DELETE /v1/customers/{customerId}: 3 attempts, last: status 503") {
		t.Errorf("error %q does not name the template and the last status", err)
	}
	assertNoLeak(t, "error", err.Error(), subject)
}

func TestLongRetryAfterIsLeftToTheNextReconcile(t *testing.T) {
	p := newProcessor(t, reply{status: 429, header: map[string]string{"Retry-After": "3600"}})
	s, sl := newStore(t, p.URL, spec(customers()))
	_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Fatalf("err = %v, want ErrUnavailable asking to retry after 1h", err)
	}
	if len(p.requests()) != 1 || len(sl.all()) != 0 {
		t.Errorf("%d attempts and sleeps %v; want 1 attempt, no sleep", len(p.requests()), sl.all())
	}
}

func TestUnreachableProcessorIsUnavailableWithoutURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more: connection refused
	s, sl := newStore(t, "http://"+addr, spec(customers()), func(cfg *Config) { cfg.MaxAttempts = 2 })
	subject := map[string]string{"customerId": "cus_secret42"}
	_, err = s.Apply(context.Background(), erasure(subject))
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want ErrUnavailable: connection refused", err)
	}
	if len(sl.all()) != 1 {
		t.Errorf("slept %v, want one backoff between 2 attempts", sl.all())
	}
	assertNoLeak(t, "error", err.Error(), subject)
	if strings.Contains(err.Error(), "/v1/customers/") && !strings.Contains(err.Error(), "{customerId}") {
		t.Errorf("error %q contains a rendered URL", err)
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	p := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	t.Cleanup(p.Close)
	s, sl := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.Timeout = 50 * time.Millisecond
		cfg.MaxAttempts = 2
	})
	_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want ErrUnavailable: timed out", err)
	}
	if len(sl.all()) != 1 {
		t.Errorf("slept %v, want one backoff", sl.all())
	}
}

func TestNotFoundMeansAlreadyGone(t *testing.T) {
	p := newProcessor(t, reply{status: 404, body: `{"error": "No such customer: cus_1"}`})
	s, _ := newStore(t, p.URL, spec(customers()))
	res, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	r := res.Collections[0]
	if r.Rows != 0 || r.Action != stores.ActionDelete || !strings.Contains(r.Reason, "404") {
		t.Errorf("result %+v, want delete, 0 rows, status 404", r)
	}
	if strings.Contains(r.Reason, "No such customer") {
		t.Error("the receipt holds the response body")
	}

	c := customers()
	c.HTTP.Erasure.NotFoundMeansAbsent = new(false)
	s, _ = newStore(t, p.URL, spec(c))
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"})); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("404 with notFoundMeansAbsent false: err = %v, want ErrInvalid", err)
	}
}

func TestFinalStatusesAreClassified(t *testing.T) {
	cases := []struct {
		status int
		want   error
	}{
		{401, stores.ErrUnavailable}, // a Secret update fixes it
		{403, stores.ErrUnavailable},
		{400, stores.ErrInvalid},
		{422, stores.ErrInvalid},
		{501, stores.ErrInvalid},
	}
	for _, tc := range cases {
		p := newProcessor(t, reply{status: tc.status, body: `{"echo": "cus_secret42"}`})
		s, sl := newStore(t, p.URL, spec(customers()))
		_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_secret42"}))
		if !errors.Is(err, tc.want) {
			t.Errorf("status %d: err = %v, want %v", tc.status, err, tc.want)
			continue
		}
		if len(p.requests()) != 1 || len(sl.all()) != 0 {
			t.Errorf("status %d was retried", tc.status)
		}
		assertNoLeak(t, "error", err.Error(), map[string]string{"customerId": "cus_secret42"})
	}
}

func TestSuccessStatusesAreConfigurable(t *testing.T) {
	c := customers()
	c.HTTP.Erasure.SuccessStatuses = []int32{202}
	p := newProcessor(t, reply{status: 200})
	s, _ := newStore(t, p.URL, spec(c))
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"})); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("200 outside successStatuses [202]: err = %v, want ErrInvalid", err)
	}
	p = newProcessor(t, reply{status: 202})
	s, _ = newStore(t, p.URL, spec(c))
	if res, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"})); err != nil || res.Collections[0].Rows != 1 {
		t.Errorf("202 in successStatuses: %+v, %v", res, err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	elsewhere := newProcessor(t)
	p := newProcessor(t, reply{status: 307, header: map[string]string{"Location": elsewhere.URL + "/steal"}})
	s, _ := newStore(t, p.URL, spec(customers()))
	_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Errorf("err = %v, want ErrInvalid about redirects", err)
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("the redirect target received %d requests (with the credentials)", n)
	}
}

func TestPlanReportsTemplatesWithoutCalling(t *testing.T) {
	p := newProcessor(t)
	contacts := privacyv1.Collection{
		Name: "contacts", Identity: map[string]privacyv1.Identifier{"email": "email"},
		HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPPost, Path: "/contacts/delete", Body: rawJSON(`{"email": "{email}"}`)}},
	}
	s, _ := newStore(t, p.URL, spec(customers(), contacts))
	res, err := s.Plan(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	want := []stores.CollectionResult{
		{Collection: "contacts", Action: stores.ActionDelete, Rows: 0, Reason: "the subject has no email identity; processor not called"},
		{Collection: "customers", Action: stores.ActionDelete, Rows: -1, Reason: "processor: DELETE /v1/customers/{customerId}"},
	}
	if !reflect.DeepEqual(res.Collections, want) {
		t.Errorf("plan = %+v, want %+v", res.Collections, want)
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("Plan sent %d requests", n)
	}
}

func TestHoldsRetentionAndExemptionsAreNotSent(t *testing.T) {
	retained := customers()
	retained.Name = "invoices"
	retained.OnErasure = privacyv1.ErasureRetain
	retained.RetainReason = "accounting: 10 years"
	exempt := customers()
	exempt.Name = "charges"
	p := newProcessor(t)
	s, _ := newStore(t, p.URL, spec(customers(), retained, exempt))
	req := erasure(map[string]string{"customerId": "cus_1"})
	req.Holds = []stores.Hold{{Collection: "customers", Reason: "court order", Name: "case-7"}}
	req.Exemptions = []stores.Exemption{{Collection: "charges", Period: "10y", LegalBasis: "French commercial code", Rule: "billing"}}
	res, err := s.Apply(context.Background(), req)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !res.Held {
		t.Error("Held = false with a legal hold on customers")
	}
	for _, r := range res.Collections {
		if r.Action != stores.ActionRetain || r.Rows != -1 || r.Reason == "" {
			t.Errorf("%s: %+v, want retain with a reason", r.Collection, r)
		}
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("%d requests sent for held or retained collections", n)
	}
}

func TestRectificationSendsOnlyCorrectedFields(t *testing.T) {
	p := newProcessor(t)
	s, _ := newStore(t, p.URL, spec(customers()))
	req := stores.Request{
		Kind: stores.KindRectification, RequestID: testRequestID,
		Subject:       map[string]string{"customerId": "cus_1"},
		Rectification: map[string]string{"user.contact.email": `new"mail@example.com`},
	}
	res, err := s.Apply(context.Background(), req)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	r := p.requests()[0]
	if r.Method != "PATCH" || r.RequestURI != "/v1/customers/cus_1" {
		t.Errorf("received %s %s", r.Method, r.RequestURI)
	}
	if want := `{"email":"new\"mail@example.com","metadata":{"n":1.50,"source":"lethe"}}`; string(r.Body) != want {
		t.Errorf("body %s, want %s (name omitted, number kept as written)", r.Body, want)
	}
	if r.Header.Get("Idempotency-Key") != IdempotencyKey(testRequestID, "customers", stores.KindRectification) {
		t.Error("rectification used another idempotency key")
	}
	if got := res.Collections[0]; got.Action != stores.ActionRectify || got.Rows != 1 {
		t.Errorf("result %+v, want rectify 1", got)
	}

	// Out of scope, or nothing to correct: the processor is not called.
	req.Scope = datamap.Scope{Categories: []string{"user.identity"}}
	res, err = s.Apply(context.Background(), req)
	if err != nil || res.Collections[0].Rows != 0 || len(p.requests()) != 1 {
		t.Errorf("no corrected value in scope: %+v, %v, %d requests", res, err, len(p.requests()))
	}
}

func TestExportReturnsTheDecodedResponse(t *testing.T) {
	body := `{"id": "cus_1", "email": "ada@example.com", "balance": 12.50, "tags": ["a"]}`
	p := newProcessor(t, reply{status: 200, body: body})
	s, _ := newStore(t, p.URL, spec(customers()))
	req := stores.Request{Kind: stores.KindAccess, Subject: map[string]string{"customerId": "cus_1"}, RequestID: testRequestID}
	exp, res, err := s.Export(context.Background(), req)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if r := p.requests()[0]; r.Method != "GET" || r.RequestURI != "/v1/customers/cus_1" || len(r.Body) != 0 {
		t.Errorf("received %s %s %q", r.Method, r.RequestURI, r.Body)
	}
	got, _ := json.Marshal(exp["customers"])
	if want := `[{"balance":12.50,"email":"ada@example.com","id":"cus_1","tags":["a"]}]`; string(got) != want {
		t.Errorf("export %s, want %s", got, want)
	}
	if r := res.Collections[0]; r.Action != stores.ActionExport || r.Rows != 1 || strings.Contains(r.Reason, "ada@") {
		t.Errorf("result %+v", r)
	}
}

func TestExportShapes(t *testing.T) {
	cases := []struct {
		status int
		body   string
		rows   string
		err    error
	}{
		{200, `[{"id": 1}, 2]`, `[{"id":1},{"value":2}]`, nil},
		{200, `"x"`, `[{"value":"x"}]`, nil},
		{200, `null`, `null`, nil},
		{204, ``, `null`, nil},
		{404, `{"error": "gone"}`, `null`, nil},
		{200, `not json`, ``, stores.ErrInvalid},
		{200, `{} {}`, ``, stores.ErrInvalid},
	}
	for _, tc := range cases {
		p := newProcessor(t, reply{status: tc.status, body: tc.body})
		s, _ := newStore(t, p.URL, spec(customers()))
		req := stores.Request{Kind: stores.KindAccess, Subject: map[string]string{"customerId": "cus_1"}, RequestID: testRequestID}
		exp, _, err := s.Export(context.Background(), req)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%d %q: err = %v, want %v", tc.status, tc.body, err, tc.err)
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), tc.body) {
				t.Errorf("error %q quotes the response", err)
			}
			continue
		}
		if got, _ := json.Marshal(exp["customers"]); string(got) != tc.rows {
			t.Errorf("%d %q: rows %s, want %s", tc.status, tc.body, got, tc.rows)
		}
	}
}

func TestApplyRefusesAccessAndMissingRequestID(t *testing.T) {
	s, _ := newStore(t, "http://127.0.0.1:1", spec(customers()))
	if _, err := s.Apply(context.Background(), stores.Request{Kind: stores.KindAccess, Subject: map[string]string{"customerId": "c"}, RequestID: "x"}); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("Apply(Access): %v, want ErrInvalid", err)
	}
	if _, err := s.Apply(context.Background(), stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"customerId": "c"}}); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("Apply without RequestID: %v, want ErrInvalid", err)
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	p := newProcessor(t, reply{status: 503})
	ctx, cancel := context.WithCancel(context.Background())
	s, _ := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.Sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	})
	_, err := s.Apply(ctx, erasure(map[string]string{"customerId": "cus_1"}))
	if !errors.Is(err, context.Canceled) || len(p.requests()) != 1 {
		t.Errorf("err = %v after %d requests; want context.Canceled after 1", err, len(p.requests()))
	}
}

func TestCheckReportsTemplateProblems(t *testing.T) {
	bad := privacyv1.Collection{
		Name:     "contacts",
		Identity: map[string]privacyv1.Identifier{"email": "email"},
		Fields:   []privacyv1.Field{{Name: "phone", Category: "user.contact.phone"}},
		HTTP: &privacyv1.HTTPCollection{
			Access: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPGet, Path: "/contacts/{userId}"},
			Rectification: &privacyv1.HTTPRequestTemplate{
				Method: privacyv1.HTTPPut, Path: "/contacts/{fields.phone}", Body: rawJSON(`{"phone": "{fields.mobile}", "contact": "{email}"}`),
				Headers: map[string]privacyv1.HTTPHeaderValue{"authorization": "x", "X-Lethe-Signature": "y"},
			},
		},
	}
	noIdentity := privacyv1.Collection{
		Name: "lists", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
		HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/lists/all"}},
	}
	member := privacyv1.Collection{
		Name: "events", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete,
		HTTP: &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPPost, Path: "/events", Body: rawJSON(`{"{email}": true}`)}},
	}
	typo := customers()
	typo.Name = "typo"
	typo.HTTP = &privacyv1.HTTPCollection{Erasure: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: "/v1/customers/{customer_id}"}}
	s, _ := newStore(t, "http://127.0.0.1:1", spec(bad, noIdentity, member, typo))
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.Collection+": "+p.Problem)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"contacts: http.access: placeholder {userId} is not an identity type this collection maps",
		"contacts: http.rectification: path: {fields.phone} is only allowed in a rectification body",
		"contacts: http.rectification: placeholder {fields.mobile} is not a mapped field of this collection",
		`events: http.erasure: body: body member name "{email}" must not hold a placeholder or brace`,
		"contacts: http.rectification: header authorization is set by Lethe",
		"contacts: http.rectification: header X-Lethe-Signature is set by Lethe",
		"contacts: onErasure is delete but http.erasure is not set",
		"lists: http.erasure: the request uses no identity placeholder",
		"typo: http.erasure: path: invalid placeholder {customer_id}",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("Check problems lack %q; got:\n%s", want, all)
		}
	}
	if _, err := s.Plan(context.Background(), erasure(map[string]string{"email": "a@b.c"})); !errors.Is(err, stores.ErrInvalid) {
		t.Errorf("Plan with problems: err = %v, want ErrInvalid", err)
	}

	good, _ := newStore(t, "https://api.stripe.com", spec(customers()))
	if res, _ := good.Check(context.Background()); len(res.Problems)+len(res.Warnings) != 0 {
		t.Errorf("a valid store has problems %+v", res)
	}
	plain, _ := newStore(t, "http://stripe.example", spec(customers()))
	if res, _ := plain.Check(context.Background()); len(res.Warnings) != 1 {
		t.Errorf("plain http to a remote host: warnings %v, want one", res.Warnings)
	}
}

func TestNewRefusesBadBaseURLsWithoutQuotingThem(t *testing.T) {
	m, err := datamap.Build(spec(customers()))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"", "ftp://user:pw@x", "https://user:pw@x/?q=1", "/relative", "https://user:pw@x/#f"} {
		_, err := New(Config{BaseURL: u, Network: loopback}, m)
		if !errors.Is(err, stores.ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q quotes the URL", err)
		}
	}
}

func TestAuthorizationIsTrimmedAndChecked(t *testing.T) {
	p := newProcessor(t)
	s, _ := newStore(t, p.URL, spec(customers()), func(cfg *Config) { cfg.Authorization = "Bearer sk_test_9\n" })
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "c"})); err != nil {
		t.Fatal(err)
	}
	if got := p.requests()[0].Header.Get("Authorization"); got != "Bearer sk_test_9" {
		t.Errorf("Authorization %q", got)
	}
	m, _ := datamap.Build(spec(customers()))
	_, err := New(Config{BaseURL: p.URL, Authorization: "Bearer a\r\nX-Evil: sk_9", Network: loopback}, m)
	if !errors.Is(err, stores.ErrInvalid) || strings.Contains(err.Error(), "sk_9") {
		t.Errorf("control characters: %v, want ErrInvalid without the value", err)
	}
}

func TestParseText(t *testing.T) {
	cases := []struct {
		in, out string
		err     bool
	}{
		{"/v1/customers/{customerId}", "/v1/customers/{customerId}", false},
		{`\{literal\}`, `\{literal\}`, false},
		{"{fields.email}", "{fields.email}", false},
		{"{Customer}", "", true},
		{"{fields.1x}", "", true},
		{"{open", "", true},
		{"close}", "", true},
	}
	for _, tc := range cases {
		got, err := parseText(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && got.String() != tc.out {
			t.Errorf("%q: String() = %q, want %q", tc.in, got.String(), tc.out)
		}
	}
}
