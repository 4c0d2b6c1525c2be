package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(m.Run())
}

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
	cfg.LargeSubjectRows = 2000
	cfg.ReplayErasures = 10
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

func TestLargeSubjectSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := tinyConfig(t)
	cfg.ManagerBinary = "" // in-process, as in TestControlPlaneSmoke
	p := RunLargeSubject(ctx, cfg)
	checkPart(t, p)
	if len(p.Rows) != 3*len(lsEngines) {
		t.Fatalf("%d rows, want a time, a memory and an export memory row per engine: %+v", len(p.Rows), p.Rows)
	}
}

func TestReplaySmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := tinyConfig(t)
	cfg.ManagerBinary = "" // in-process, as in TestControlPlaneSmoke
	p := RunReplay(ctx, cfg)
	checkPart(t, p)
	if len(p.Rows) != 3 {
		t.Fatalf("%d rows, want the replay rate, its timing and the engine alone: %+v", len(p.Rows), p.Rows)
	}
}

func TestBootstrapMedianRatio(t *testing.T) {
	var a, b durations
	for i := range 50 {
		a = append(a, time.Duration(100+i%7)*time.Millisecond)
		b = append(b, time.Duration(80+i%5)*time.Millisecond)
	}
	lo, hi := bootstrapMedianRatio(a, b, 1000, 1)
	r := float64(a.quantile(0.5)) / float64(b.quantile(0.5))
	if !(lo <= r && r <= hi) || lo <= 0 {
		t.Fatalf("interval [%v, %v] does not hold the ratio %v", lo, hi, r)
	}
	if lo2, hi2 := bootstrapMedianRatio(a, b, 1000, 1); lo2 != lo || hi2 != hi {
		t.Fatalf("same seed, different interval: [%v, %v] then [%v, %v]", lo, hi, lo2, hi2)
	}
	if lo, hi := bootstrapMedianRatio(a, a, 1000, 1); lo != 1 || hi != 1 {
		t.Fatalf("a side against itself: [%v, %v], want [1, 1]", lo, hi)
	}
}

func TestReport(t *testing.T) {
	r := NewReport(DefaultConfig())
	r.Parts = []Part{
		{Name: "a", Rows: []Row{{Benchmark: "x", Lethe: "1 ms", Baseline: "2 ms", Ratio: "0.50", Goal: "≤ 1.5", Met: "yes"}}},
		{Name: "b", Error: "boom", Rows: []Row{{Benchmark: "y", Lethe: "n/a", Note: "missing"}}},
	}
	want := "| benchmark | lethe | baseline | ratio | goal | met |\n|---|---|---|---|---|---|\n" +
		"| x | 1 ms | 2 ms | 0.50 | ≤ 1.5 | yes |\n| y | n/a | - | - | - | - |\n\n- b: boom\n- y: missing\n"
	if got := r.Table(); got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	dir := t.TempDir()
	path, err := r.WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if d := (durations{3, 1, 2, 4}); d.quantile(0.5) != 2 || d.quantile(0.99) != 4 || d.max() != 4 {
		t.Fatalf("quantiles of %v: %v %v %v", d, d.quantile(0.5), d.quantile(0.99), d.max())
	}
	if n := sweepTotalRows(1000000); n-n/11 != 1000000 {
		t.Fatalf("sweepTotalRows(1e6) = %d: %d expired", n, n-n/11)
	}
}
