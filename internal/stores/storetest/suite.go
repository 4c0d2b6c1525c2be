// Package storetest is the conformance suite every Lethe engine runs: one set
// of scenarios (exact matching, the reference graph, erasure actions,
// exemptions, holds, dry runs, receipts, exports, rectification, sweeps and
// schema drift), written once against the stores.Store and stores.Sweeper
// interfaces and a common logical fixture.
//
// An engine's test builds a Suite: how to open the fixture on its server
// (Open), which features it cannot have and why (Unsupported), and the
// scenarios that fail today because of a known engine bug (KnownGaps). Run
// runs every scenario the engine supports as a parallel subtest, logs the
// features skipped by design, and prints one summary line. An engine is done
// when its Suite passes with its unsupported features declared.
//
// The package is test support: only tests import it.
package storetest

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Feature is something an engine may be unable to have by design.
type Feature string

// The features scenarios need. Every engine supports the rest of the suite:
// exact matching, delete and retain, holds, idempotent re-application,
// rectification, exports of the subject's rows and refusals of bad requests.
const (
	// References: collections reached from a parent's rows (the three-level
	// chain, text and binary references, self-references cleared with setNull).
	References Feature = "references"
	// AnyIdentity: a collection mapping several identity types is found by
	// any one of them the subject has.
	AnyIdentity Feature = "any-identity"
	// RowCounts: Plan counts the rows Apply then changes, and receipts count rows.
	RowCounts Feature = "row-counts"
	// Anonymize: onErasure anonymize masks fields in place, as mapped.
	Anonymize Feature = "anonymize"
	// Exemptions: a row is kept while its own date is inside a legal minimum period.
	Exemptions Feature = "exemptions"
	// Atomic: a failure part-way through Apply changes nothing.
	Atomic Feature = "atomic"
	// MappedExport: an export holds the mapped fields in scope and the key, nothing else.
	MappedExport Feature = "mapped-export"
	// Schema: Check compares a live schema (tables, columns, types, foreign keys) with the map.
	Schema Feature = "schema"
	// Sweeps: the store is a stores.Sweeper (retention in bounded batches).
	Sweeps Feature = "sweeps"
	// Locks: other transactions can hold row locks, which Lethe must not wait on for long.
	Locks Feature = "locks"
	// HoldsByRows: a hold on a subject is resolved to rows and compared with
	// the request's rows, so a hold on someone else never holds the request
	// (without it, a hold whose identities cannot be compared holds, failing safe).
	HoldsByRows Feature = "holds-by-rows"
	// Journal: the store records each pass of a request in its own journal,
	// in the pass's transaction, and returns the request's totals.
	Journal Feature = "journal"
	// Verification: the store is a stores.Verifier.
	Verification Feature = "verification"
	// LargeSubjects: a subject's rows in a leaf collection are erased by
	// statements that name them by a condition, never listed in the manager.
	LargeSubjects Feature = "large-subjects"
)

// allFeatures lists every Feature, for validating a Suite.
var allFeatures = []Feature{References, AnyIdentity, RowCounts, Anonymize, Exemptions, Atomic, MappedExport, Schema, Sweeps, Locks,
	HoldsByRows, Journal, Verification, LargeSubjects}

// Features maps each unsupported feature to why the engine cannot have it.
type Features map[Feature]string

// KnownGap is a scenario that fails on this engine (or variant) because of a
// known bug tracked by an issue. Run still runs it: it logs the failures as a
// KNOWN GAP, and fails the suite when the scenario passes, so the entry is
// removed once the bug is fixed. A known gap is never a way to skip a scenario.
type KnownGap struct {
	Scenario string
	Issue    int
	// Why says what fails and why, precisely.
	Why string
	// Fails is a fragment of the scenario's first failure: a scenario that
	// fails otherwise (earlier, or for another reason) fails the suite.
	Fails string
}

// Texts are the parts of messages that engines word differently; scenarios
// assert them exactly where the engine declares them.
type Texts struct {
	// ColumnTypes names columns as Check describes their type, by
	// "collection.column": "text", "varchar(255)", "character varying(32)".
	ColumnTypes map[string]string
	// TooLong is the error of a corrected value longer than its column.
	TooLong string
	// BadDate is the error of a corrected value that is not a date ("" when
	// the engine has no date type).
	BadDate string
	// LockTimeout is the error of Apply that waited too long for a row lock.
	LockTimeout string
	// FixtureWarnings are warnings Check reports on the fixture as mapped
	// (by prefix); none for most engines.
	FixtureWarnings []string
	// Refusals replace the suite's wording of a refused request where the
	// engine words it otherwise, by case: "empty identity", "no identity",
	// "unmapped identities", "rectification without values", "unknown held
	// collection", "access applied".
	Refusals map[string]string
}

// Suite is one engine (or one variant of it) under the conformance suite.
type Suite struct {
	// Name as the summary prints it: "postgres/citext".
	Name string
	// Open materializes f on the engine (a fresh database or key prefix, per
	// test) and returns its harness. It fails t when the server cannot be
	// reached: these tests are about the real server.
	Open func(t *testing.T, f Fixture) Harness
	// Unsupported lists the features the engine cannot have, and why.
	Unsupported Features
	// KnownGaps are scenarios expected to fail until their issue is fixed.
	KnownGaps []KnownGap
	// UUIDKeys: account and user ids are uuid values instead of integers.
	UUIDKeys bool
	Texts    Texts
}

// T is what scenarios use of a test. *testing.T implements it; a known
// gap's scenario runs with a recorder in its place.
type T interface {
	Helper()
	Log(args ...any)
	Logf(format string, args ...any)
	Error(args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	Name() string
}

// running is held shared by every scenario of the test binary while it runs,
// and exclusively by a scenario that runs alone.
var running sync.RWMutex

// Run runs every scenario s supports, each as a subtest, concurrently, then prints
// "<Name>: N scenarios run, M skipped by design: features".
func (s Suite) Run(t *testing.T) {
	t.Helper()
	s.validate(t)
	gaps := map[string]KnownGap{}
	for _, g := range s.KnownGaps {
		gaps[g.Scenario] = g
	}
	skipped := map[Feature][]string{}
	var run []scenario
	var notApplicable []string
	for _, sc := range scenarios {
		if sc.applies != nil && !sc.applies(s) {
			notApplicable = append(notApplicable, sc.name)
			continue
		}
		if f, ok := s.firstUnsupported(sc.needs); ok {
			skipped[f] = append(skipped[f], sc.name)
			continue
		}
		run = append(run, sc)
	}
	var features []Feature
	for _, f := range allFeatures {
		if why, ok := s.Unsupported[f]; ok {
			features = append(features, f)
			t.Logf("skipped by design: %s: %s (scenarios: %s; collections: %s)", f, why, orNone(skipped[f]), orNone(collectionsNeeding(f)))
		}
	}

	var mu sync.Mutex
	var gapLines []string
	t.Run("scenarios", func(t *testing.T) {
		// Scenarios wait on their servers, not on this machine's CPUs: they
		// run concurrently up to Concurrency (shared by every suite of the
		// test binary) rather than up to go test's -parallel.
		var wg sync.WaitGroup
		defer wg.Wait()
		for _, sc := range run {
			wg.Add(1)
			go func() {
				defer wg.Done()
				slots <- struct{}{}
				defer func() { <-slots }()
				if sc.alone {
					running.Lock()
					defer running.Unlock()
				} else {
					running.RLock()
					defer running.RUnlock()
				}
				t.Run(sc.name, func(t *testing.T) {
					e := &env{suite: s, t: t}
					g, isGap := gaps[sc.name]
					if !isGap {
						sc.run(t, e)
						return
					}
					failures := runRecorded(t, func(rt T) { sc.run(rt, e) })
					if len(failures) == 0 {
						t.Errorf("KNOWN GAP (issue %d) %s passed: the gap is closed, remove it from the %s Suite", g.Issue, sc.name, s.Name)
						return
					}
					if !strings.Contains(failures[0], g.Fails) {
						t.Errorf("KNOWN GAP (issue %d) %s failed otherwise than declared (%q):\n  %s", g.Issue, sc.name, g.Fails, strings.Join(failures, "\n  "))
						return
					}
					line := fmt.Sprintf("KNOWN GAP (issue %d): %s: %s", g.Issue, sc.name, g.Why)
					t.Logf("%s\n  observed: %s", line, strings.Join(first(failures, 4), "\n  observed: "))
					mu.Lock()
					gapLines = append(gapLines, line)
					mu.Unlock()
				})
			}()
		}
	})
	slices.Sort(gapLines)
	for _, l := range gapLines {
		t.Log(l)
	}
	names := make([]string, len(features))
	for i, f := range features {
		names[i] = string(f)
	}
	summary := fmt.Sprintf("%s: %d scenarios run, %d skipped by design", s.Name, len(run), len(scenarios)-len(run)-len(notApplicable))
	if len(names) > 0 {
		summary += ": " + strings.Join(names, ", ")
	}
	if len(notApplicable) > 0 {
		summary += fmt.Sprintf("; not applicable: %s", strings.Join(notApplicable, ", "))
	}
	if len(gapLines) > 0 {
		summary += fmt.Sprintf("; %d known gaps", len(gapLines))
	}
	t.Log(summary)
}

// Concurrency is how many scenarios of all suites in one test binary run at
// once.
const Concurrency = 16

var slots = make(chan struct{}, Concurrency)

// RunAll runs suites (the variants of one engine) side by side, each as a
// subtest named by its Name's last element.
func RunAll(t *testing.T, suites ...Suite) {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range suites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := s.Name[strings.LastIndex(s.Name, "/")+1:]
			t.Run(name, s.Run)
		}()
	}
	wg.Wait()
}

// validate refuses a Suite that declares what the suite does not know.
func (s Suite) validate(t *testing.T) {
	t.Helper()
	if s.Name == "" || s.Open == nil {
		t.Fatal("storetest: a Suite needs a Name and Open")
	}
	for f, why := range s.Unsupported {
		if !slices.Contains(allFeatures, f) {
			t.Fatalf("storetest: %s declares unknown feature %q unsupported", s.Name, f)
		}
		if strings.TrimSpace(why) == "" {
			t.Fatalf("storetest: %s declares %s unsupported without saying why", s.Name, f)
		}
	}
	for _, g := range s.KnownGaps {
		i := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == g.Scenario })
		if i < 0 {
			t.Fatalf("storetest: %s: known gap for unknown scenario %q", s.Name, g.Scenario)
		}
		if f, ok := s.firstUnsupported(scenarios[i].needs); ok {
			t.Fatalf("storetest: %s: known gap %q is a scenario skipped by design (%s)", s.Name, g.Scenario, f)
		}
		if a := scenarios[i].applies; a != nil && !a(s) {
			t.Fatalf("storetest: %s: known gap %q is a scenario that does not apply", s.Name, g.Scenario)
		}
		if g.Issue == 0 || g.Why == "" || g.Fails == "" {
			t.Fatalf("storetest: %s: known gap %q needs its issue, why and how it fails", s.Name, g.Scenario)
		}
	}
}

func (s Suite) firstUnsupported(needs []Feature) (Feature, bool) {
	for _, f := range needs {
		if _, ok := s.Unsupported[f]; ok {
			return f, true
		}
	}
	return "", false
}

// supports reports whether the engine has f.
func (s Suite) supports(f Feature) bool {
	_, unsupported := s.Unsupported[f]
	return !unsupported
}

// recorder is a known gap's T: it records failures instead of failing the
// test, and ends the scenario on Fatal as testing.T would.
type recorder struct {
	*testing.T
	mu       sync.Mutex
	failures []string
}

func (r *recorder) record(msg string) {
	r.mu.Lock()
	r.failures = append(r.failures, strings.TrimSpace(msg))
	r.mu.Unlock()
}

func (r *recorder) Error(args ...any)                 { r.record(fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }
func (r *recorder) Fatal(args ...any)                 { r.record(fmt.Sprint(args...)); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failures) > 0 || r.T.Failed()
}

// runRecorded runs fn with a recorder and returns what it recorded. fn runs
// on its own goroutine so that Fatal can end it; failures of the real test
// (a server that cannot be reached) still fail the test.
func runRecorded(t *testing.T, fn func(T)) []string {
	r := &recorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.failures)
}

// collectionsNeeding lists the fixture's collections that need f.
func collectionsNeeding(f Feature) []string {
	var out []string
	for _, c := range (Fixture{}).all() {
		if slices.Contains(c.Needs, f) {
			out = append(out, string(c.Spec.Name))
		}
	}
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("(and %d more)", len(s)-n))
	}
	return s
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
