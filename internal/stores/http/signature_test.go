package http

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	nethttp "net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// The canonical string is the one docs/processors.md documents, byte for byte.
func TestSignatureCanonicalString(t *testing.T) {
	ts := time.Unix(1772366400, 0)
	body := []byte(`{"email":"ada@example.com"}`)
	bodySum := sha256.Sum256(body)
	canonical := "1772366400\nPOST\n/v1/contacts/erase?x=1\nidem-1\n" + hex.EncodeToString(bodySum[:])
	m := hmac.New(sha256.New, testSigningKey)
	m.Write([]byte(canonical))
	want := "t=1772366400,v1=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign(testSigningKey, ts, "POST", "/v1/contacts/erase?x=1", "idem-1", body); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}

	// No body: the hash of the empty string.
	m = hmac.New(sha256.New, testSigningKey)
	m.Write([]byte("1772366400\nDELETE\n/v1/customers/a\nidem-1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
	if got, want := Sign(testSigningKey, ts, "DELETE", "/v1/customers/a", "idem-1", nil), "t=1772366400,v1="+hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("Sign without body = %q, want %q", got, want)
	}
}

// replay sends a captured request again, with its headers and body, as an
// attacker who recorded it would, to method and requestURI on p.
func replay(t *testing.T, p *processor, r received, method, requestURI string) received {
	t.Helper()
	req, err := nethttp.NewRequest(method, p.URL+requestURI, bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	resp, err := p.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := p.requests()
	return got[len(got)-1]
}

func TestSignaturesBindTheCall(t *testing.T) {
	p := newProcessor(t)
	s, _ := newStore(t, p.URL, spec(customers()))
	for _, id := range []string{"a", "b"} {
		if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": id})); err != nil {
			t.Fatalf("Apply(%s): %v", id, err)
		}
	}
	got := p.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	a, b := got[0], got[1]
	for _, r := range got {
		if r.Verified != nil {
			t.Errorf("%s %s: the receiver refused the signature: %v", r.Method, r.RequestURI, r.Verified)
		}
		if r.Header.Get(TimestampHeader) != strconv.FormatInt(testNow.Unix(), 10) {
			t.Errorf("%s = %q, want the Unix time of Now", TimestampHeader, r.Header.Get(TimestampHeader))
		}
	}
	// The same request ID, collection and kind: the same Idempotency-Key, and
	// no body. Only the path tells the two subjects apart, and the signature does too.
	if a.Header.Get("Idempotency-Key") != b.Header.Get("Idempotency-Key") || len(a.Body)+len(b.Body) != 0 {
		t.Fatal("the two DELETEs differ in more than their path")
	}
	if a.Header.Get("X-Lethe-Signature") == b.Header.Get("X-Lethe-Signature") {
		t.Error("two subjects' body-less DELETEs carry the same signature")
	}

	// Replayed at once, unchanged: still valid (the receiver deduplicates by
	// Idempotency-Key). Replayed on another subject's path: refused.
	if r := replay(t, p, a, "DELETE", "/v1/customers/a"); r.Verified != nil {
		t.Errorf("an unchanged request within the tolerance is refused: %v", r.Verified)
	}
	if r := replay(t, p, a, "DELETE", "/v1/customers/b"); !errors.Is(r.Verified, ErrSignature) {
		t.Errorf("a's signature replayed on DELETE /v1/customers/b: %v, want ErrSignature", r.Verified)
	}
	if r := replay(t, p, a, "GET", "/v1/customers/a"); !errors.Is(r.Verified, ErrSignature) {
		t.Errorf("a's signature replayed as a GET: %v, want ErrSignature", r.Verified)
	}

	// Replayed later than the tolerance: refused, whatever the path.
	p.setNow(testNow.Add(DefaultTolerance + time.Second))
	if r := replay(t, p, a, "DELETE", "/v1/customers/a"); !errors.Is(r.Verified, ErrSignature) || !strings.Contains(r.Verified.Error(), "tolerated") {
		t.Errorf("a stale replay: %v, want ErrSignature about the timestamp", r.Verified)
	}
}

func TestSignatureCoversTheBodyAndQuery(t *testing.T) {
	c := customers()
	c.HTTP.Erasure = &privacyv1.HTTPRequestTemplate{
		Method: privacyv1.HTTPPost, Path: "/v1/erase?email={email}",
		Body: rawJSON(`{"email": "{email}"}`),
	}
	p := newProcessor(t)
	s, _ := newStore(t, p.URL+"/base", spec(c))
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"email": "a+b@x.com"})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	r := p.requests()[0]
	if r.Verified != nil {
		t.Fatalf("the receiver refused the signature: %v", r.Verified)
	}
	if want := Sign(testSigningKey, testNow, "POST", r.RequestURI, r.Header.Get("Idempotency-Key"), r.Body); r.Header.Get("X-Lethe-Signature") != want || !strings.HasPrefix(r.RequestURI, "/base/v1/erase?email=") {
		t.Errorf("signature %q over %q, want %q", r.Header.Get("X-Lethe-Signature"), r.RequestURI, want)
	}
	tampered := r
	tampered.Body = []byte(`{"email":"someone-else@x.com"}`)
	if got := replay(t, p, tampered, "POST", r.RequestURI); !errors.Is(got.Verified, ErrSignature) {
		t.Errorf("another body under the same signature: %v, want ErrSignature", got.Verified)
	}
	if got := replay(t, p, r, "POST", strings.Replace(r.RequestURI, "email=", "email=x", 1)); !errors.Is(got.Verified, ErrSignature) {
		t.Errorf("another query under the same signature: %v, want ErrSignature", got.Verified)
	}
}

func TestEveryAttemptIsSignedWithTheSameIdempotencyKey(t *testing.T) {
	p := newProcessor(t, reply{status: 503}, reply{status: 503}, reply{status: 200})
	clock := testNow
	s, _ := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	})
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := p.requests()
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	stamps := map[string]bool{}
	for i, r := range got {
		if r.Verified != nil {
			t.Errorf("attempt %d: %v", i+1, r.Verified)
		}
		if r.Header.Get("Idempotency-Key") != got[0].Header.Get("Idempotency-Key") {
			t.Errorf("attempt %d changed the Idempotency-Key", i+1)
		}
		stamps[r.Header.Get(TimestampHeader)] = true
	}
	if len(stamps) != 3 {
		t.Errorf("timestamps %v: each attempt should be signed at its own time", stamps)
	}
}

func TestVerifyRefuses(t *testing.T) {
	body := []byte(`{"a":1}`)
	signed := func() *nethttp.Request {
		r := httptest.NewRequest("POST", "/v1/x?y=1", bytes.NewReader(body))
		r.Header.Set("Idempotency-Key", "k1")
		r.Header.Set("X-Lethe-Signature", Sign(testSigningKey, testNow, "POST", "/v1/x?y=1", "k1", body))
		r.Header.Set(TimestampHeader, strconv.FormatInt(testNow.Unix(), 10))
		return r
	}
	if err := Verify(testSigningKey, signed(), body, testNow, DefaultTolerance); err != nil {
		t.Fatalf("a valid request: %v", err)
	}
	if err := Verify(testSigningKey, signed(), body, testNow.Add(-DefaultTolerance), 0); err != nil {
		t.Errorf("at the edge of the default tolerance: %v", err)
	}
	cases := map[string]struct {
		mod  func(*nethttp.Request)
		now  time.Time
		key  []byte
		body []byte
	}{
		"missing header":     {mod: func(r *nethttp.Request) { r.Header.Del("X-Lethe-Signature") }},
		"malformed header":   {mod: func(r *nethttp.Request) { r.Header.Set("X-Lethe-Signature", "sha256=abc") }},
		"no v1":              {mod: func(r *nethttp.Request) { r.Header.Set("X-Lethe-Signature", "t=1") }},
		"bad timestamp":      {mod: func(r *nethttp.Request) { r.Header.Set("X-Lethe-Signature", "t=x,v1=00") }},
		"timestamp mismatch": {mod: func(r *nethttp.Request) { r.Header.Set(TimestampHeader, "1") }},
		"other key":          {key: []byte("another")},
		"no key":             {key: []byte{}},
		"other body":         {body: []byte(`{"a":2}`)},
		"other idempotency":  {mod: func(r *nethttp.Request) { r.Header.Set("Idempotency-Key", "k2") }},
		"stale":              {now: testNow.Add(DefaultTolerance + time.Second)},
		"future":             {now: testNow.Add(-DefaultTolerance - time.Second)},
	}
	for name, tc := range cases {
		r := signed()
		if tc.mod != nil {
			tc.mod(r)
		}
		now, key, b := testNow, testSigningKey, body
		if !tc.now.IsZero() {
			now = tc.now
		}
		if tc.key != nil {
			key = tc.key
		}
		if tc.body != nil {
			b = tc.body
		}
		if err := Verify(key, r, b, now, DefaultTolerance); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: err = %v, want ErrSignature", name, err)
		}
	}

	// A custom signature header.
	r := signed()
	r.Header.Set("Stripe-Signature", r.Header.Get("X-Lethe-Signature"))
	r.Header.Del("X-Lethe-Signature")
	if err := VerifyHeader(testSigningKey, "Stripe-Signature", r, body, testNow, DefaultTolerance); err != nil {
		t.Errorf("VerifyHeader: %v", err)
	}
}

func TestCloudMetadataHeadersAreRefused(t *testing.T) {
	c := customers()
	c.HTTP.Erasure.Headers = map[string]privacyv1.HTTPHeaderValue{
		"metadata-flavor":                      "Google",
		"Metadata":                             "true",
		"X-AWS-EC2-Metadata-Token":             "t",
		"X-aws-ec2-metadata-token-ttl-seconds": "21600",
		"X-Google-Metadata-Request":            "True",
		"X-Lethe-Timestamp":                    "1",
		"Stripe-Version":                       "2024-06-20",
	}
	p := newProcessor(t)
	s, _ := newStore(t, p.URL, spec(c))
	res, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pr := range res.Problems {
		got = append(got, pr.Collection+": "+pr.Problem)
	}
	all := strings.Join(got, "\n")
	for _, h := range []string{"metadata-flavor", "Metadata", "X-AWS-EC2-Metadata-Token", "X-aws-ec2-metadata-token-ttl-seconds", "X-Google-Metadata-Request"} {
		if want := "customers: http.erasure: header " + h + ": cloud metadata headers are refused: a processor never needs them"; !strings.Contains(all, want) {
			t.Errorf("Check problems lack %q; got:\n%s", want, all)
		}
	}
	if !strings.Contains(all, "header X-Lethe-Timestamp is set by Lethe") {
		t.Errorf("X-Lethe-Timestamp accepted as a static header; got:\n%s", all)
	}
	if len(res.Problems) != 6 {
		t.Errorf("%d problems, want 6 (Stripe-Version is fine):\n%s", len(res.Problems), all)
	}
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"})); !errors.Is(err, stores.ErrInvalid) || len(p.requests()) != 0 {
		t.Errorf("Apply with metadata headers: %v, %d requests; want ErrInvalid and none", err, len(p.requests()))
	}
}
