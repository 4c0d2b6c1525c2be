package testdb

import (
	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Loopback is the network of tests: the manager's default egress policy with
// loopback allowed explicitly, because every test server listens there.
var Loopback = stores.Network{Dial: egress.AllowLoopback().DialContext}
