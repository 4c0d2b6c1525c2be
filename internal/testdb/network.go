package testdb

import (
	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/stores"
)

// DeniedLoopback is a loopback address the tests' policy refuses, so that a
// test can prove an egress refusal without sending traffic anywhere but lo.
const DeniedLoopback = "127.0.0.2"

// Loopback is the network of tests: the manager's default egress policy with
// loopback allowed explicitly, because every test server listens there, but
// DeniedLoopback.
var Loopback = stores.Network{Dial: egress.MustNew(egress.Options{
	Allow: []string{"127.0.0.0/8", "::1/128"},
	Deny:  []string{DeniedLoopback + "/32"},
}).DialContext}
