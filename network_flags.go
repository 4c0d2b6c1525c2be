package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/stores"
)

// stringList is a flag that may be repeated and holds comma-separated values.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// networkFlags are the egress flags: where the manager may connect on a
// tenant's behalf, and whether plaintext is allowed.
type networkFlags struct {
	allow, deny stringList
	requireTLS  bool
}

// build makes the egress policy every engine dials through. The API server's
// own addresses (the kubeconfig's host and the in-cluster service) are refused
// unless an operator allows them exactly.
func (f networkFlags) build(ctx context.Context, apiServerURL string) (stores.Network, error) {
	var hosts []string
	if h := os.Getenv("KUBERNETES_SERVICE_HOST"); h != "" {
		hosts = append(hosts, net.JoinHostPort(h, envOr("KUBERNETES_SERVICE_PORT", "443")))
	}
	if u, err := url.Parse(apiServerURL); err == nil && u.Hostname() != "" {
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80"}[u.Scheme]
		}
		if port == "" {
			port = "443"
		}
		hosts = append(hosts, net.JoinHostPort(u.Hostname(), port))
	}
	policy, err := egress.New(egress.Options{
		Allow:     f.allow,
		Deny:      f.deny,
		APIServer: egress.APIServerAddresses(ctx, hosts...),
	})
	if err != nil {
		return stores.Network{}, fmt.Errorf("--egress-allow/--egress-deny: %w", err)
	}
	return stores.Network{Dial: policy.DialContext, DialTimeout: policy.DialTimeout(), RequireTLS: f.requireTLS}, nil
}
