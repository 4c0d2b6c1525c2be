package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The policy function alone: no traffic leaves the process.
func TestCheckAddrDefaults(t *testing.T) {
	p := MustNew(Options{APIServer: []netip.AddrPort{netip.MustParseAddrPort("10.96.0.1:0")}})
	cases := []struct {
		addr  string
		class string // "" = allowed
	}{
		{"127.0.0.1", ClassLoopback},
		{"127.1.2.3", ClassLoopback},
		{"::1", ClassLoopback},
		{"::ffff:127.0.0.1", ClassLoopback},
		{"169.254.1.1", ClassLinkLocal},
		{"fe80::1", ClassLinkLocal},
		{"169.254.169.254", ClassMetadata},
		{"::ffff:169.254.169.254", ClassMetadata},
		{"fd00:ec2::254", ClassMetadata},
		{"100.100.100.200", ClassMetadata},
		{"0.0.0.0", ClassUnspecified},
		{"::", ClassUnspecified},
		{"224.0.0.1", ClassMulticast},
		{"10.96.0.1", ClassAPIServer},
		// Cluster pod and service addresses, and public ones, stay allowed.
		{"10.96.0.2", ""},
		{"10.0.0.5", ""},
		{"172.16.4.4", ""},
		{"192.168.1.10", ""},
		{"fd12:3456::1", ""},
		{"8.8.8.8", ""},
		{"2001:db8::1", ""},
	}
	for _, c := range cases {
		err := p.Check(netip.AddrPortFrom(netip.MustParseAddr(c.addr), 5432))
		if c.class == "" {
			if err != nil {
				t.Errorf("%s: refused (%v), want allowed", c.addr, err)
			}
			continue
		}
		var re *RefusedError
		if !errors.As(err, &re) || re.Class != c.class {
			t.Errorf("%s: got %v, want refused as %q", c.addr, err, c.class)
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: errors.Is(err, ErrRefused) is false", c.addr)
		}
		if strings.Contains(err.Error(), c.addr) {
			t.Errorf("%s: the refusal repeats the address: %v", c.addr, err)
		}
	}
}

func TestMostSpecificEntryDecides(t *testing.T) {
	p := MustNew(Options{
		Allow:     []string{"127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16"},
		Deny:      []string{"127.0.0.2/32", "10.1.0.0/16", "192.168.0.0/16"},
		APIServer: []netip.AddrPort{netip.MustParseAddrPort("10.96.0.1:443")},
	})
	allowed := []string{"127.0.0.1", "10.0.0.1", "10.96.0.2", "169.254.1.1"}
	refused := map[string]string{
		"127.0.0.2":       ClassDenied,
		"10.1.2.3":        ClassDenied,
		"10.96.0.1":       ClassAPIServer, // a /32 beats the allowed /8
		"169.254.169.254": ClassMetadata,  // opening link-local keeps metadata closed
		"192.168.3.3":     ClassDenied,
	}
	for _, a := range allowed {
		if err := p.Check(netip.AddrPortFrom(netip.MustParseAddr(a), 443)); err != nil {
			t.Errorf("%s: %v, want allowed", a, err)
		}
	}
	for a, class := range refused {
		var re *RefusedError
		if err := p.Check(netip.AddrPortFrom(netip.MustParseAddr(a), 443)); !errors.As(err, &re) || re.Class != class {
			t.Errorf("%s: got %v, want refused as %q", a, err, class)
		}
	}
	// Allowing exactly the metadata address opens it: the operator said so.
	open := MustNew(Options{Allow: []string{"169.254.169.254"}})
	if err := open.CheckAddr(netip.MustParseAddr("169.254.169.254")); err != nil {
		t.Errorf("an exact allow entry: %v", err)
	}
	// A tie between an allow and a deny of the same prefix goes to deny.
	tie := MustNew(Options{Allow: []string{"10.2.0.0/16"}, Deny: []string{"10.2.0.0/16"}})
	if err := tie.CheckAddr(netip.MustParseAddr("10.2.0.1")); err == nil {
		t.Error("a tie between allow and deny allowed the address")
	}
}

// On a developer's machine the API server and the databases share 127.0.0.1:
// only the API server's port is refused.
func TestAPIServerByPort(t *testing.T) {
	p := MustNew(Options{Allow: []string{"127.0.0.0/8"}, APIServer: APIServerAddresses(context.Background(), "127.0.0.1:6443", "localhost:6443", "not-a-host-port")})
	if err := p.Check(netip.MustParseAddrPort("127.0.0.1:6443")); !errors.Is(err, ErrRefused) {
		t.Errorf("the API server's port: %v, want refused", err)
	}
	if err := p.Check(netip.MustParseAddrPort("127.0.0.1:5432")); err != nil {
		t.Errorf("another port of the same address: %v, want allowed", err)
	}
	open := MustNew(Options{Allow: []string{"10.96.0.1"}, APIServer: []netip.AddrPort{netip.MustParseAddrPort("10.96.0.1:443")}})
	if err := open.Check(netip.MustParseAddrPort("10.96.0.1:443")); err != nil {
		t.Errorf("allowed exactly: %v", err)
	}
}

func TestNames(t *testing.T) {
	p := MustNew(Options{Deny: []string{"*.internal.example", "db.bad.example"}, Allow: []string{"localhost"}})
	for _, h := range []string{"x.internal.example", "A.Internal.Example.", "db.bad.example"} {
		if _, err := p.CheckName(h); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want refused", h, err)
		}
	}
	for _, h := range []string{"internal.example", "db.good.example"} {
		if trusted, err := p.CheckName(h); err != nil || trusted {
			t.Errorf("%s: trusted=%v err=%v, want checked by address", h, trusted, err)
		}
	}
	if trusted, err := p.CheckName("localhost"); err != nil || !trusted {
		t.Errorf("localhost: trusted=%v err=%v, want trusted", trusted, err)
	}
}

func TestNewRefusesBadEntries(t *testing.T) {
	for _, e := range []string{"10.0.0.0/33", "not a host", "*.", "a..b"} {
		if _, err := New(Options{Deny: []string{e}}); err == nil {
			t.Errorf("entry %q accepted", e)
		}
	}
}

// The dialer end to end, on loopback only: a denied loopback address is
// refused before any byte is exchanged, while an allowed one connects.
func TestDialRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The defaults refuse loopback.
	if _, err := MustNew(Options{}).DialContext(ctx, "tcp", ln.Addr().String()); !errors.Is(err, ErrRefused) {
		t.Fatalf("default policy dialled loopback: %v", err)
	}
	// "localhost" resolves to loopback: refused by address, after DNS.
	if _, err := MustNew(Options{}).DialContext(ctx, "tcp", net.JoinHostPort("localhost", port)); !errors.Is(err, ErrRefused) {
		t.Fatalf("default policy dialled localhost: %v", err)
	}
	p := MustNew(Options{Allow: []string{"127.0.0.0/8"}, Deny: []string{"127.0.0.2/32"}})
	// 127.0.0.2 is refused; nothing listens there anyway, so a refusal that
	// came from the network would be "connection refused", not ErrRefused.
	if _, err := p.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.2", port)); !errors.Is(err, ErrRefused) {
		t.Fatalf("denied 127.0.0.2: %v", err)
	}
	if _, err := p.DialContext(ctx, "unix", "/var/run/anything.sock"); !errors.Is(err, ErrRefused) {
		t.Fatalf("unix socket: %v", err)
	}
	select {
	case <-accepted:
		t.Fatal("a refused dial reached the listener")
	default:
	}
	c, err := p.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("allowed 127.0.0.1: %v", err)
	}
	c.Close()
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the allowed dial never reached the listener")
	}
}
