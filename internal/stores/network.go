package stores

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/egress"
)

// ErrConnectionSettings wraps refusals of a DataStore's connection settings:
// a DSN or URL parameter Lethe does not allow, a socket path, plaintext where
// the operator requires TLS. Retrying cannot fix them (it wraps ErrInvalid);
// messages name the parameter, never a value of the connection string.
var ErrConnectionSettings = fmt.Errorf("%w: connection settings refused", ErrInvalid)

// DefaultDialTimeout bounds one connection attempt when the DSN sets none.
const DefaultDialTimeout = 10 * time.Second

// MaxDialTimeout is the longest connect timeout a DSN may ask for: a store
// that needs longer than this to accept a connection is unavailable.
const MaxDialTimeout = 30 * time.Second

// Network is how an engine reaches its server. Every engine dials only through
// Dial — the manager passes its egress policy — and never on its own.
type Network struct {
	// Dial connects to address on network ("tcp", "tcp4", "tcp6").
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// DialTimeout bounds one connection attempt (default DefaultDialTimeout).
	DialTimeout time.Duration
	// RequireTLS refuses settings that would send credentials or data in
	// plaintext (the operator's --require-tls).
	RequireTLS bool
}

// ErrNoDialer is returned by an engine given a Network without Dial: an
// engine never falls back to dialling on its own.
var ErrNoDialer = errors.New("no egress dialer configured")

// Validate reports a Network an engine cannot use.
func (n Network) Validate() error {
	if n.Dial == nil {
		return ErrNoDialer
	}
	return nil
}

// Timeout is DialTimeout or its default.
func (n Network) Timeout() time.Duration {
	if n.DialTimeout > 0 {
		return n.DialTimeout
	}
	return DefaultDialTimeout
}

// plainParameter is a parameter name that is safe to repeat in a message.
var plainParameter = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// CheckParameters refuses the first key of keys that allowed does not hold.
// engine names the connection string's kind in the message ("PostgreSQL").
func CheckParameters(engine string, keys, allowed []string) error {
	for _, k := range keys {
		if slices.Contains(allowed, k) {
			continue
		}
		name := "a malformed parameter"
		if plainParameter.MatchString(k) {
			name = fmt.Sprintf("the parameter %q", k)
		}
		return fmt.Errorf("%w: the %s connection string sets %s, which a DataStore may not set (allowed: %s)",
			ErrConnectionSettings, engine, name, strings.Join(allowed, ", "))
	}
	return nil
}

// EgressRefusal returns the egress policy's refusal inside err (a dial error
// names the address; the refusal alone names only its class), wrapped in
// ErrInvalid: no retry reaches a refused address. It is nil when err holds none.
func EgressRefusal(err error) error {
	var re *egress.RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("%w: %w", ErrInvalid, re)
	}
	if errors.Is(err, egress.ErrRefused) {
		return fmt.Errorf("%w: %w", ErrInvalid, egress.ErrRefused)
	}
	return nil
}
