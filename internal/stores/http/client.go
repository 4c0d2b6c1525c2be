package http

import (
	"context"
	"crypto/tls"
	"net"
	nethttp "net/http"
	"time"

	"github.com/lethe-dev/lethe/internal/stores"
)

// tlsHandshakeTimeout bounds a TLS handshake, which the dial timeout does not cover.
const tlsHandshakeTimeout = 10 * time.Second

// egressClient returns the client the store sends with: c (or a default) whose
// every connection is dialled through n.Dial, never through a proxy taken from
// the environment (HTTPS_PROXY would reach any address around the policy), and
// which never follows a redirect. The caller's client is not modified.
//
// A caller's client whose Transport is not an *http.Transport (a test's fake
// RoundTripper) is used as it is: it dials nothing through net/http.
func egressClient(c *nethttp.Client, n stores.Network) *nethttp.Client {
	var client nethttp.Client
	if c != nil {
		client = *c // a copy, so the caller's client keeps its redirect policy
	}
	switch rt := client.Transport.(type) {
	case nil:
		client.Transport = egressTransport(nethttp.DefaultTransport.(*nethttp.Transport).Clone(), n)
	case *nethttp.Transport:
		client.Transport = egressTransport(rt.Clone(), n)
	}
	client.CheckRedirect = func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }
	return &client
}

// egressTransport makes t dial only through n, with TLS 1.2 or later and a
// bounded handshake.
func egressTransport(t *nethttp.Transport, n stores.Network) *nethttp.Transport {
	dial, timeout := n.Dial, n.Timeout()
	t.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return dial(ctx, network, address)
	}
	// Every other way net/http has to open a connection is closed: TLS runs
	// over the connection DialContext returns.
	t.Proxy, t.OnProxyConnectResponse = nil, nil
	t.Dial, t.DialTLS, t.DialTLSContext = nil, nil, nil //nolint:staticcheck // the deprecated hooks would bypass DialContext
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	} else {
		t.TLSClientConfig = t.TLSClientConfig.Clone()
	}
	if t.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		t.TLSClientConfig.MinVersion = tls.VersionTLS12
	}
	if t.TLSHandshakeTimeout <= 0 {
		t.TLSHandshakeTimeout = tlsHandshakeTimeout
	}
	return t
}
