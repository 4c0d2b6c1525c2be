// Command lethe-bench runs Lethe's benchmarks (`make bench`): each one measured
// side by side with its baseline in the same run, printed as one table and
// written as JSON. It reports; it exits non-zero only when it could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lethe-dev/lethe/bench"
)

func main() {
	cfg := bench.DefaultConfig()
	var parts, managerArgs string
	var timeout time.Duration
	flag.StringVar(&parts, "parts", "erasure,postgres-sweep,mysql-sweep,partitions,control-plane,large-subject,replay", "comma-separated parts to run")
	flag.StringVar(&cfg.PostgresDSN, "postgres", cfg.PostgresDSN, "PostgreSQL maintenance database URL (env LETHE_TEST_POSTGRES_DSN)")
	flag.StringVar(&cfg.MySQLDSN, "mysql", cfg.MySQLDSN, "MariaDB DSN without a database (env LETHE_TEST_MYSQL_DSN)")
	flag.IntVar(&cfg.ErasureSubjects, "erasure-subjects", cfg.ErasureSubjects, "subjects erased by each side (part 1)")
	flag.IntVar(&cfg.ErasurePopulation, "erasure-population", cfg.ErasurePopulation, "subjects in the erasure data set (part 1)")
	flag.IntVar(&cfg.SweepRows, "sweep-rows", cfg.SweepRows, "expired rows per sweep (parts 2 and 3)")
	flag.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "sweep batch size: the RetentionPolicy default, and pt-archiver's --limit")
	flag.IntVar(&cfg.Requests, "requests", cfg.Requests, "erasure requests applied at once (part 4)")
	flag.IntVar(&cfg.Objects, "objects", cfg.Objects, "request objects present when the manager's memory is measured (part 4)")
	flag.IntVar(&cfg.LargeSubjectRows, "large-subject-rows", cfg.LargeSubjectRows, "child rows of the one large subject (part 5)")
	flag.IntVar(&cfg.ReplayErasures, "replay-erasures", cfg.ReplayErasures, "erasures undone by a restore and replayed (part 6)")
	flag.StringVar(&cfg.ManagerBinary, "manager", "bin/manager", "manager binary to run as a process (parts 4, 5 and 6); empty: in-process")
	flag.IntVar(&cfg.Workers, "workers", 0, "request controller workers: --max-concurrent-reconciles of the manager, if it has the flag (0: its default)")
	flag.StringVar(&managerArgs, "manager-args", "", "extra flags for the manager process, space-separated")
	flag.StringVar(&cfg.PTArchiver, "pt-archiver", cfg.PTArchiver, "pt-archiver executable (part 3)")
	flag.StringVar(&cfg.WorkDir, "out", cfg.WorkDir, "directory for the JSON report and the manager's log")
	flag.DurationVar(&timeout, "part-timeout", 8*time.Minute, "time limit of each part")
	flag.Parse()
	cfg.ManagerArgs = strings.Fields(managerArgs)
	// envtest (and an in-process manager) log through controller-runtime: errors only.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runners := map[string]func(context.Context, bench.Config) bench.Part{
		"erasure":        bench.RunErasure,
		"postgres-sweep": bench.RunPostgresSweep,
		"mysql-sweep":    bench.RunMySQLSweep,
		"control-plane":  bench.RunControlPlane,
		"partitions":     bench.RunPartitions,
		"large-subject":  bench.RunLargeSubject,
		"replay":         bench.RunReplay,
	}
	report := bench.NewReport(cfg)
	for _, name := range strings.Split(parts, ",") {
		name = strings.TrimSpace(name)
		run, ok := runners[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "lethe-bench: unknown part %q\n", name)
			os.Exit(2)
		}
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, timeout)
		p := run(pctx, cfg)
		cancel()
		p.Duration = time.Since(start).Round(time.Millisecond).String()
		if p.Error != "" {
			fmt.Fprintf(os.Stderr, "bench: %s: %s\n", name, p.Error)
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", name, p.Duration)
		report.Parts = append(report.Parts, p)
	}
	fmt.Printf("\nLethe benchmarks, %s, %d CPUs, load %s\n\n%s", report.Started.Format(time.RFC3339), report.Host.CPUs, report.Host.LoadAvg, report.Table())
	path, err := report.WriteJSON(cfg.WorkDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lethe-bench: writing the JSON report:", err)
		os.Exit(1)
	}
	fmt.Printf("\nJSON: %s\n", path)
}
