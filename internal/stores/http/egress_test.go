package http

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/stores"
)

// countingListener accepts on l and counts the connections it was offered.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
	done     chan struct{}
}

func listenCounting(t *testing.T, address string) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", address)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", address, err)
	}
	cl := &countingListener{Listener: l, done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cl.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { cl.stop() })
	return cl
}

// stop closes the listener and waits for its accept loop, so accepted is final.
func (cl *countingListener) stop() int64 {
	cl.Listener.Close()
	<-cl.done
	return cl.accepted.Load()
}

// countingDial wraps a policy's dialer and counts the dials.
func countingDial(p *egress.Policy, n *atomic.Int64) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		n.Add(1)
		return p.DialContext(ctx, network, address)
	}
}

// assertEgressRefusal checks a refusal is final (ErrInvalid, not retried) and
// names neither the address nor the port.
func assertEgressRefusal(t *testing.T, err error, host, port string) {
	t.Helper()
	if !errors.Is(err, egress.ErrRefused) || !errors.Is(err, stores.ErrInvalid) {
		t.Fatalf("err = %v, want the egress refusal as ErrInvalid", err)
	}
	if errors.Is(err, stores.ErrUnavailable) {
		t.Errorf("err = %v is ErrUnavailable: a refused address would be retried", err)
	}
	if strings.Contains(err.Error(), host) || strings.Contains(err.Error(), port) {
		t.Errorf("error %q names the address", err)
	}
}

func TestDeniedAddressIsRefusedBeforeConnecting(t *testing.T) {
	l := listenCounting(t, "127.0.0.2:0")
	host, port, _ := net.SplitHostPort(l.Addr().String())
	policy := egress.MustNew(egress.Options{Allow: []string{"127.0.0.0/8"}, Deny: []string{"127.0.0.2/32"}})
	var dials atomic.Int64
	s, sl := newStore(t, "http://"+net.JoinHostPort(host, port), spec(customers()), func(cfg *Config) {
		cfg.Network = stores.Network{Dial: countingDial(policy, &dials)}
		cfg.MaxAttempts = 4
	})
	_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	assertEgressRefusal(t, err, host, port)
	if n := l.stop(); n != 0 {
		t.Errorf("the denied listener accepted %d connections", n)
	}
	if n := dials.Load(); n != 1 || len(sl.all()) != 0 {
		t.Errorf("%d dials and sleeps %v; a refusal is not retried", n, sl.all())
	}
}

func TestDefaultEgressPolicyRefusesLoopback(t *testing.T) {
	p := newProcessor(t)
	u, _ := url.Parse(p.URL)
	s, sl := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.Network = stores.Network{Dial: egress.MustNew(egress.Options{}).DialContext}
	})
	_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	assertEgressRefusal(t, err, u.Hostname(), u.Port())
	if n := len(p.requests()); n != 0 || len(sl.all()) != 0 {
		t.Errorf("%d requests reached the processor, sleeps %v", n, sl.all())
	}
}

func TestNewRefusesANetworkWithoutDialer(t *testing.T) {
	m, err := datamap.Build(spec(customers()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{BaseURL: "https://api.stripe.com"}, m)
	if !errors.Is(err, stores.ErrInvalid) || !errors.Is(err, stores.ErrNoDialer) {
		t.Errorf("err = %v, want ErrInvalid wrapping ErrNoDialer", err)
	}
}

func TestRequireTLSRefusesPlainHTTP(t *testing.T) {
	m, err := datamap.Build(spec(customers()))
	if err != nil {
		t.Fatal(err)
	}
	network := loopback
	network.RequireTLS = true
	_, err = New(Config{BaseURL: "http://user:pw@processor.example/api", Network: network}, m)
	if !errors.Is(err, stores.ErrConnectionSettings) || !strings.Contains(err.Error(), "requires TLS") {
		t.Fatalf("err = %v, want ErrConnectionSettings saying the operator requires TLS", err)
	}
	for _, leak := range []string{"pw", "processor.example", "/api"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q quotes the URL (%s)", err, leak)
		}
	}
	if _, err := New(Config{BaseURL: "https://processor.example/api", Network: network}, m); err != nil {
		t.Errorf("https with RequireTLS: %v", err)
	}
}

func TestHTTPSThroughTheEgressDialer(t *testing.T) {
	p := &processor{now: testNow}
	p.Server = newTLSServer(t, p)
	var dials atomic.Int64
	s, _ := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.Client = p.Client() // trusts the test certificate
		cfg.Network = stores.Network{Dial: countingDial(egress.AllowLoopback(), &dials), RequireTLS: true}
	})
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"})); err != nil {
		t.Fatalf("Apply over https: %v", err)
	}
	if n := dials.Load(); n != 1 || len(p.requests()) != 1 {
		t.Errorf("%d dials through the policy, %d requests; want 1 and 1", n, len(p.requests()))
	}
}

func TestCallersTransportCannotDialAroundThePolicy(t *testing.T) {
	proxy := listenCounting(t, "127.0.0.1:0")
	p := newProcessor(t)
	var bypass, dials atomic.Int64
	client := &nethttp.Client{Transport: &nethttp.Transport{
		Proxy: nethttp.ProxyURL(&url.URL{Scheme: "http", Host: proxy.Addr().String()}),
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			bypass.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, address)
		},
	}}
	s, _ := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.Client = client
		cfg.Network = stores.Network{Dial: countingDial(egress.AllowLoopback(), &dials)}
	})
	if _, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if n := proxy.stop(); n != 0 {
		t.Errorf("the proxy received %d connections", n)
	}
	if bypass.Load() != 0 || dials.Load() != 1 || len(p.requests()) != 1 {
		t.Errorf("caller's dialer %d, policy dialer %d, requests %d; want 0, 1, 1", bypass.Load(), dials.Load(), len(p.requests()))
	}
	if tr := client.Transport.(*nethttp.Transport); tr.Proxy == nil {
		t.Error("the caller's transport was modified")
	}
}

func TestDefaultTransportDialsOnlyThroughThePolicy(t *testing.T) {
	s, _ := newStore(t, "https://processor.example", spec(customers()))
	tr, ok := s.client.Transport.(*nethttp.Transport)
	if !ok {
		t.Fatalf("default transport is %T", s.client.Transport)
	}
	if tr.Proxy != nil || tr.DialContext == nil || tr.DialTLSContext != nil {
		t.Error("the default transport may use a proxy or another dialer")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion != tls.VersionTLS12 || tr.TLSHandshakeTimeout <= 0 {
		t.Errorf("TLS config %+v, handshake timeout %s; want TLS 1.2 minimum and a timeout", tr.TLSClientConfig, tr.TLSHandshakeTimeout)
	}
	if s.client.CheckRedirect == nil {
		t.Error("redirects would be followed")
	}
}

func TestRetryAfterBeyondTheCallBudgetEndsTheCall(t *testing.T) {
	p := newProcessor(t, reply{status: 503, header: map[string]string{"Retry-After": "1"}})
	s, sl := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.MaxAttempts = 10
		cfg.MaxCallDuration = 300 * time.Millisecond
	})
	_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "total time limit") {
		t.Fatalf("err = %v, want ErrUnavailable saying the call's total time limit was reached", err)
	}
	if n := len(p.requests()); n != 1 || len(sl.all()) != 0 {
		t.Errorf("%d attempts, sleeps %v; want 1 attempt and no sleep past the budget", n, sl.all())
	}
}

func TestCallBudgetBoundsSleepsAndAttempts(t *testing.T) {
	// Backoff waits fit the budget, but each wait lasts until the budget ends.
	p := newProcessor(t, reply{status: 503})
	var slept atomic.Int64
	s, _ := newStore(t, p.URL, spec(customers()), func(cfg *Config) {
		cfg.MaxAttempts = 10
		cfg.BaseBackoff = time.Millisecond
		cfg.MaxCallDuration = 300 * time.Millisecond
		cfg.Sleep = func(ctx context.Context, _ time.Duration) error {
			slept.Add(1)
			<-ctx.Done()
			return ctx.Err()
		}
	})
	_, err := s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "total time limit") {
		t.Fatalf("err = %v, want ErrUnavailable saying the call's total time limit was reached", err)
	}
	if n := len(p.requests()); n != 1 || slept.Load() != 1 {
		t.Errorf("%d attempts, %d sleeps; want 1 and 1", n, slept.Load())
	}

	// An attempt that never answers is cut by the budget, not only by Timeout.
	release := make(chan struct{})
	var mu sync.Mutex
	hung := 0
	stall := newHandlerServer(t, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		hung++
		mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	s, _ = newStore(t, stall.URL, spec(customers()), func(cfg *Config) {
		cfg.Timeout = time.Hour
		cfg.MaxAttempts = 10
		cfg.MaxCallDuration = 300 * time.Millisecond
	})
	_, err = s.Apply(context.Background(), erasure(map[string]string{"customerId": "cus_1"}))
	if !errors.Is(err, stores.ErrUnavailable) || !strings.Contains(err.Error(), "total time limit") {
		t.Fatalf("stalled processor: err = %v, want ErrUnavailable saying the call's total time limit was reached", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hung > 1 {
		t.Errorf("stalled processor received %d attempts, want 1", hung)
	}
}

func TestCallBudgetDefault(t *testing.T) {
	s, _ := newStore(t, "https://processor.example", spec(customers()))
	if s.cfg.MaxCallDuration != 2*time.Minute || DefaultMaxCallDuration != 2*time.Minute {
		t.Errorf("MaxCallDuration = %s, want 2m", s.cfg.MaxCallDuration)
	}
}
