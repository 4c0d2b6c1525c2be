package http

import (
	"context"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/stores"
)

const (
	testAuthorization = "Bearer sk_test_123"
	testRequestID     = "0b8f2a4e-7c11-4d8e-9f0a-3f5b6c7d8e9f"
)

var (
	testSigningKey = []byte("whsec_test")
	testNow        = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// loopback is the network of every test: the egress policy with loopback
	// allowed, as in local development. No test dials beyond loopback.
	loopback = stores.Network{Dial: egress.AllowLoopback().DialContext}
)

// received is one request as the processor saw it.
type received struct {
	Method     string
	RequestURI string
	EscPath    string
	Header     nethttp.Header
	Body       []byte
	// Verified is what Verify said of the request's signature, at the
	// processor's clock (testNow unless set), with DefaultTolerance.
	Verified error
}

// reply is one scripted answer; the last one repeats.
type reply struct {
	status int
	header map[string]string
	body   string
}

// processor is a real HTTP server on loopback that records every request.
type processor struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	replies []reply
	now     time.Time // the receiver's clock for Verify
}

func newProcessor(t *testing.T, replies ...reply) *processor {
	t.Helper()
	p := &processor{replies: replies, now: testNow}
	p.Server = httptest.NewServer(nethttp.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *processor) serve(w nethttp.ResponseWriter, r *nethttp.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	n := len(p.got)
	verified := Verify(testSigningKey, r, body, p.now, DefaultTolerance)
	p.got = append(p.got, received{Method: r.Method, RequestURI: r.RequestURI, EscPath: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body, Verified: verified})
	rep := reply{status: nethttp.StatusOK, body: `{"deleted":true}`}
	if len(p.replies) > 0 {
		rep = p.replies[min(n, len(p.replies)-1)]
	}
	p.mu.Unlock()
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

// newTLSServer serves p over https on loopback.
func newTLSServer(t *testing.T, p *processor) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(nethttp.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	return srv
}

// newHandlerServer serves h on loopback.
func newHandlerServer(t *testing.T, h nethttp.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// setNow moves the receiver's clock.
func (p *processor) setNow(t time.Time) {
	p.mu.Lock()
	p.now = t
	p.mu.Unlock()
}

func (p *processor) requests() []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]received(nil), p.got...)
}

// sleeps records the injected sleeps instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func rawJSON(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

// customers is a Stripe-like collection: delete, fetch and update by customerId.
func customers() privacyv1.Collection {
	return privacyv1.Collection{
		Name:     "customers",
		Identity: map[string]privacyv1.Identifier{"customerId": "id", "email": "email"},
		Fields: []privacyv1.Field{
			{Name: "email", Category: "user.contact.email"},
			{Name: "name", Category: "user.identity.name"},
		},
		OnErasure: privacyv1.ErasureDelete,
		HTTP: &privacyv1.HTTPCollection{
			Erasure: &privacyv1.HTTPRequestTemplate{
				Method:  privacyv1.HTTPDelete,
				Path:    "/v1/customers/{customerId}",
				Headers: map[string]privacyv1.HTTPHeaderValue{"Stripe-Version": "2024-06-20"},
			},
			Access: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPGet, Path: "/v1/customers/{customerId}"},
			Rectification: &privacyv1.HTTPRequestTemplate{
				Method: privacyv1.HTTPPatch,
				Path:   "/v1/customers/{customerId}",
				Body:   rawJSON(`{"email": "{fields.email}", "name": "{fields.name}", "metadata": {"source": "lethe", "n": 1.50}}`),
			},
		},
	}
}

func spec(collections ...privacyv1.Collection) privacyv1.DataStoreSpec {
	return privacyv1.DataStoreSpec{
		Engine:      privacyv1.EngineHTTP,
		Connection:  privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "stripe", Key: "url"}},
		Collections: collections,
	}
}

// newStore connects a Store to baseURL with recorded sleeps; mod adjusts the Config.
func newStore(t *testing.T, baseURL string, sp privacyv1.DataStoreSpec, mod ...func(*Config)) (*Store, *sleeps) {
	t.Helper()
	m, err := datamap.Build(sp)
	if err != nil {
		t.Fatalf("datamap: %v", err)
	}
	cfg := ConfigFor(sp, baseURL, testAuthorization, testSigningKey)
	cfg.Network = loopback
	sl := &sleeps{}
	cfg.Sleep = sl.sleep
	cfg.Now = func() time.Time { return testNow }
	for _, f := range mod {
		f(&cfg)
	}
	s, err := New(cfg, m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s, sl
}

func erasure(subject map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindErasure, Subject: subject, RequestID: testRequestID}
}

// assertNoLeak fails if any identity value appears in s.
func assertNoLeak(t *testing.T, what, s string, identities map[string]string) {
	t.Helper()
	for k, v := range identities {
		if strings.Contains(s, v) {
			t.Errorf("%s contains the %s identity: %q", what, k, s)
		}
	}
}
