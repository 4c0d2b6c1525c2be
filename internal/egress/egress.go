// Package egress decides where the manager may connect on a tenant's behalf.
//
// Everything a DataStore names (a DSN's host, a processor's base URL) is
// chosen by whoever may create DataStores in a namespace. Every engine dials
// through one Policy, which checks the address the socket is about to connect
// to — after DNS, so a name that resolves to a forbidden address (DNS
// rebinding included) is refused as the address itself would be.
//
// By default the Policy refuses loopback, link-local (which holds the cloud
// metadata services), the other cloud metadata addresses, unspecified and
// multicast addresses, and the Kubernetes API server's own addresses. Pod and
// service addresses of the cluster (private ranges) stay allowed, so databases
// inside the cluster keep working. Operators add Allow and Deny entries: a
// CIDR, an IP address, a host name or a "*.suffix" name pattern. For an
// address the most specific matching prefix decides (on a tie an operator's
// entry beats a default, and a deny beats an allow), so
// allowing 10.0.0.0/8 does not open an API server at 10.96.0.1, and denying
// 127.0.0.2/32 closes one loopback address that 127.0.0.0/8 opened. A denied
// name is refused whatever it resolves to; an allowed name is trusted with
// whatever it resolves to.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultDialTimeout bounds one connection attempt when the engine sets none.
const DefaultDialTimeout = 10 * time.Second

// ErrRefused is wrapped by every refusal of the policy; errors.As finds the
// *RefusedError, whose Class names what was refused.
var ErrRefused = errors.New("refused by the egress policy")

// Address classes a refusal names. They describe the address, never repeat it.
const (
	ClassLoopback    = "loopback"
	ClassLinkLocal   = "link-local"
	ClassMetadata    = "cloud metadata service"
	ClassAPIServer   = "Kubernetes API server"
	ClassUnspecified = "unspecified address"
	ClassMulticast   = "multicast"
	ClassDenied      = "address the operator denied (--egress-deny)"
	ClassUnixSocket  = "unix socket"
)

// RefusedError is a connection the policy refused. Its message names the
// class of address, never the address or the name: both come from a tenant's
// Secret, and a refusal is written to the DataStore's status.
type RefusedError struct{ Class string }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: the store's address is in the class %q, which the manager does not connect to (operators: --egress-allow, --egress-deny)", ErrRefused, e.Class)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// rule is one prefix with its verdict and the class a refusal reports.
type rule struct {
	prefix netip.Prefix
	allow  bool
	class  string
	// rank breaks ties between rules of the same prefix length: an
	// operator's deny beats an operator's allow, which beats a default.
	rank int
}

const (
	rankDefault = iota
	rankAllow
	rankDeny
)

// Policy is the egress policy. The zero value is not usable; build one with
// New. A Policy is safe for concurrent use and never changes once built.
type Policy struct {
	rules      []rule
	apiServer  []netip.AddrPort
	allowNames []string
	denyNames  []string
	// DialTimeout bounds each connection attempt (default DefaultDialTimeout).
	dialTimeout time.Duration
}

// Options are what an operator sets.
type Options struct {
	// Allow and Deny are CIDRs, IP addresses, host names or "*.suffix" patterns.
	Allow, Deny []string
	// APIServer are the Kubernetes API server's addresses and ports (see
	// APIServerAddresses; port 0 means every port). They are refused unless an
	// operator allows that exact address. The port matters on a developer's
	// machine, where the API server and the databases share 127.0.0.1.
	APIServer []netip.AddrPort
	// DialTimeout bounds each connection attempt (default DefaultDialTimeout).
	DialTimeout time.Duration
}

// metadataAddresses are the cloud providers' instance metadata services that
// lie outside link-local: AWS's IPv6 endpoint, Alibaba Cloud, Oracle's legacy one.
var metadataAddresses = []string{"fd00:ec2::254/128", "100.100.100.200/32", "192.0.0.192/32"}

// defaultRules are the classes refused unless an operator allows them.
func defaultRules() []rule {
	var rs []rule
	add := func(class string, cidrs ...string) {
		for _, c := range cidrs {
			rs = append(rs, rule{prefix: netip.MustParsePrefix(c), class: class})
		}
	}
	add(ClassLoopback, "127.0.0.0/8", "::1/128")
	add(ClassLinkLocal, "169.254.0.0/16", "fe80::/10")
	// The best-known metadata address is link-local already; naming it makes
	// the refusal say what it is, and keeps it closed when link-local is opened.
	add(ClassMetadata, "169.254.169.254/32", "169.254.170.2/32")
	add(ClassMetadata, metadataAddresses...)
	add(ClassUnspecified, "0.0.0.0/8", "::/128")
	add(ClassMulticast, "224.0.0.0/4", "ff00::/8", "255.255.255.255/32")
	return rs
}

// New builds a Policy. An entry that is neither a CIDR, an IP address nor a
// valid host name (pattern) is an error that names the entry (it is the
// operator's own input, not a tenant's).
func New(o Options) (*Policy, error) {
	p := &Policy{rules: defaultRules(), dialTimeout: o.DialTimeout}
	if p.dialTimeout <= 0 {
		p.dialTimeout = DefaultDialTimeout
	}
	for _, ap := range o.APIServer {
		p.apiServer = append(p.apiServer, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	for _, list := range []struct {
		entries []string
		allow   bool
	}{{o.Allow, true}, {o.Deny, false}} {
		for _, e := range list.entries {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			prefix, isAddr, err := parseAddressEntry(e)
			switch {
			case err != nil:
				return nil, err
			case isAddr:
				rank := rankDeny
				if list.allow {
					rank = rankAllow
				}
				p.rules = append(p.rules, rule{prefix: prefix, allow: list.allow, class: ClassDenied, rank: rank})
			case !validNamePattern(e):
				return nil, fmt.Errorf("egress entry %q is neither a CIDR, an IP address nor a host name", e)
			case list.allow:
				p.allowNames = append(p.allowNames, strings.ToLower(e))
			default:
				p.denyNames = append(p.denyNames, strings.ToLower(e))
			}
		}
	}
	return p, nil
}

// MustNew is New for fixed, known-good options (tests).
func MustNew(o Options) *Policy {
	p, err := New(o)
	if err != nil {
		panic(err)
	}
	return p
}

// AllowLoopback is the policy of tests and the local dev cluster: the defaults
// with loopback allowed, because every test server listens there.
func AllowLoopback() *Policy {
	return MustNew(Options{Allow: []string{"127.0.0.0/8", "::1/128"}})
}

// parseAddressEntry reads a CIDR or a single address; isAddr is false for a name.
func parseAddressEntry(e string) (netip.Prefix, bool, error) {
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return netip.Prefix{}, false, fmt.Errorf("egress entry %q is not a valid CIDR", e)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), true, nil
	}
	if a, err := netip.ParseAddr(e); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true, nil
	}
	return netip.Prefix{}, false, nil
}

func validNamePattern(e string) bool {
	name := strings.TrimPrefix(e, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

func matchName(patterns []string, host string) bool {
	for _, p := range patterns {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

// Check decides one address and port: nil when the manager may connect.
func (p *Policy) Check(ap netip.AddrPort) error {
	a := ap.Addr().Unmap()
	for _, s := range p.apiServer {
		if s.Addr() == a && (s.Port() == 0 || s.Port() == ap.Port()) && !p.allowsExactly(a) {
			return &RefusedError{Class: ClassAPIServer}
		}
	}
	return p.CheckAddr(a)
}

// allowsExactly is true when an operator allowed exactly the address a.
func (p *Policy) allowsExactly(a netip.Addr) bool {
	for _, r := range p.rules {
		if r.allow && r.prefix.Bits() == a.BitLen() && r.prefix.Addr() == a {
			return true
		}
	}
	return false
}

// CheckAddr decides one address, whatever the port (the API server's
// addresses are checked with their port by Check).
func (p *Policy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	best, found := rule{}, false
	for _, r := range p.rules {
		if !r.prefix.Contains(a) {
			continue
		}
		if !found || r.prefix.Bits() > best.prefix.Bits() || (r.prefix.Bits() == best.prefix.Bits() && r.rank > best.rank) {
			best, found = r, true
		}
	}
	if found && !best.allow {
		return &RefusedError{Class: best.class}
	}
	return nil
}

// CheckName decides a host name before it is resolved: refused when an
// operator denied it. trusted is true when an operator allowed it by name, so
// that its addresses are not checked.
func (p *Policy) CheckName(host string) (trusted bool, err error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if matchName(p.denyNames, host) {
		return false, &RefusedError{Class: ClassDenied}
	}
	return matchName(p.allowNames, host), nil
}

// DialContext connects like net.Dialer.DialContext, refusing what the policy
// refuses: a denied name before any lookup, and every address just before the
// socket connects to it (the address actually dialled, after DNS). Unix
// sockets are always refused: a tenant must not reach the manager's own
// filesystem.
func (p *Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	case "unix", "unixgram", "unixpacket":
		return nil, &RefusedError{Class: ClassUnixSocket}
	default:
		return nil, fmt.Errorf("%w: network %q is not supported", ErrRefused, network)
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: the address is not host:port", ErrRefused)
	}
	trusted, err := p.CheckName(host)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: p.dialTimeout}
	if !trusted {
		d.ControlContext = func(_ context.Context, _, addr string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return fmt.Errorf("%w: unparsable address", ErrRefused)
			}
			return p.Check(ap)
		}
	}
	return d.DialContext(ctx, network, address)
}

// DialTimeout is the per-attempt connect timeout the policy applies.
func (p *Policy) DialTimeout() time.Duration { return p.dialTimeout }

// APIServerAddresses resolves the API server's endpoints (host:port, such as
// the rest config's host and the in-cluster service's) for Options.APIServer.
// Names that do not resolve are skipped: they cannot be dialled either.
func APIServerAddresses(ctx context.Context, hostPorts ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, hp := range hostPorts {
		host, portText, err := net.SplitHostPort(strings.TrimSpace(hp))
		if err != nil || host == "" {
			continue
		}
		port, err := strconv.ParseUint(portText, 10, 16)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(port)))
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
		cancel()
		if err == nil {
			for _, a := range addrs {
				out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(port)))
			}
		}
	}
	return out
}
