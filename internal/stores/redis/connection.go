package redis

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/lethe-dev/lethe/internal/stores"
)

// allowedParameters are the URL query parameters a DataStore may set; pool
// sizes, retries and TLS verification are Lethe's.
var allowedParameters = []string{"db", "protocol", "client_name", "dial_timeout", "read_timeout", "write_timeout"}

// clientOptions parses a redis:// or rediss:// URL, refuses what a tenant
// may not set, and makes every connection dial through network.
func clientOptions(rawURL string, network stores.Network) (*goredis.Options, error) {
	if err := network.Validate(); err != nil {
		return nil, err
	}
	rawURL = strings.TrimSpace(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		// The URL may hold a password: it is never quoted.
		return nil, fmt.Errorf("%w: the redis URL does not parse", stores.ErrInvalid)
	}
	switch u.Scheme {
	case "redis", "rediss":
	case "unix":
		return nil, fmt.Errorf("%w: the redis URL names a unix socket; connect over TCP (redis:// or rediss://)", stores.ErrConnectionSettings)
	default:
		return nil, fmt.Errorf("%w: the redis URL must start with redis:// or rediss://", stores.ErrInvalid)
	}
	if network.RequireTLS && u.Scheme != "rediss" {
		return nil, fmt.Errorf("%w: the operator requires TLS: use a rediss:// URL", stores.ErrConnectionSettings)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: the redis URL's query does not parse", stores.ErrInvalid)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	if err := stores.CheckParameters("redis", keys, allowedParameters); err != nil {
		return nil, err
	}
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: the redis URL does not parse", stores.ErrInvalid)
	}
	if opts.DialTimeout > stores.MaxDialTimeout {
		return nil, fmt.Errorf("%w: the redis URL's dial_timeout is longer than %s", stores.ErrConnectionSettings, stores.MaxDialTimeout)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = network.Timeout()
	}
	opts.Dialer = tlsDialer(network, opts.TLSConfig)
	// A refused address stays refused: one attempt per connection, not five.
	opts.DialerRetries = 1
	// Maintenance notifications let the server push a new endpoint for the
	// client to move to: the server would choose where the manager connects.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opts, nil
}

// tlsDialer dials through network and, for rediss://, runs the TLS handshake
// on that connection: go-redis applies its TLSConfig only in its own default
// dialer, so a custom Dialer must do it, or rediss:// would travel in clear.
func tlsDialer(network stores.Network, cfg *tls.Config) func(ctx context.Context, netw, addr string) (net.Conn, error) {
	return func(ctx context.Context, netw, addr string) (net.Conn, error) {
		conn, err := network.Dial(ctx, netw, addr)
		if err != nil || cfg == nil {
			return conn, err
		}
		tc := tls.Client(conn, cfg.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// quietLogger drops go-redis's own log lines: they quote the addresses it
// dials, which come from a tenant's Secret. Errors reach Lethe as values.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { goredis.SetLogger(quietLogger{}) }
