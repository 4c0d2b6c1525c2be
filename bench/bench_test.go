package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// The smoke tests run every part at a tiny size against the real servers,
// so the harness cannot rot; the figures mean nothing at this size.

func tinyConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.ErasureSubjects = 10
	cfg.ErasurePopulation = 100
	cfg.SweepRows = 2000
	cfg.BatchSize = 500
	cfg.Requests = 5
	cfg.Objects = 12
	cfg.WorkDir = t.TempDir()
	cfg.Log = testWriter{t}
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	if os.Getenv("LETHE_TEST_VERBOSE") != "" {
		w.t.Log(string(b))
	}
	return len(b), nil
}

func checkPart(t *testing.T, p Part) {
	t.Helper()
	if p.Error != "" {
		t.Fatalf("%s: %s", p.Name, p.Error)
	}
	if len(p.Rows) == 0 {
		t.Fatalf("%s: no rows", p.Name)
	}
	for _, r := range p.Rows {
		if r.Lethe == "" || r.Benchmark == "" {
			t.Errorf("%s: incomplete row %+v", p.Name, r)
		}
	}
	t.Logf("\n%s", (&Report{Parts: []Part{p}}).Table())
}

func TestErasureSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	checkPart(t, RunErasure(ctx, tinyConfig(t)))
}

func TestPostgresSweepSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	checkPart(t, RunPostgresSweep(ctx, tinyConfig(t)))
}

func TestMySQLSweepSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	checkPart(t, RunMySQLSweep(ctx, tinyConfig(t)))
}

func TestControlPlaneSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := tinyConfig(t)
	cfg.ManagerBinary = "" // in-process: building bin/manager is make bench's job
	checkPart(t, RunControlPlane(ctx, cfg))
}
