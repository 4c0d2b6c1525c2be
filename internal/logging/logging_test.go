package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func TestCapDropsTheLevelsThatDumpBodies(t *testing.T) {
	var buf bytes.Buffer
	l := Cap(zap.New(zap.WriteTo(&buf), zap.Level(zapcore.Level(-10)), zap.RawZapOpts(uberzap.AddCaller())), MaxVerbosity).WithName("mgr").WithValues("k", "v")
	l.V(MaxVerbosity).Info("kept at the cap")
	l.V(8).Info("Response Body", "body", "secret-value")
	l.V(10).WithName("deeper").Info("Request Body", "body", "secret-value")
	l.Error(errors.New("boom"), "errors are kept")
	if l.V(8).Enabled() || !l.V(MaxVerbosity).Enabled() {
		t.Errorf("Enabled: V(8) %v, V(7) %v", l.V(8).Enabled(), l.V(MaxVerbosity).Enabled())
	}
	out := buf.String()
	for _, want := range []string{"kept at the cap", "errors are kept", `"k":"v"`, `"logger":"mgr"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-value") {
		t.Errorf("a level above the cap was logged:\n%s", out)
	}
	// The caller is reported, not this package.
	if strings.Contains(out, "logging.go") || !strings.Contains(out, "logging_test.go") {
		t.Errorf("caller is not the logging site:\n%s", out)
	}
}
