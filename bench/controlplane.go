package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lethe-dev/lethe/internal/testdb"

	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// Part 4: through the control plane. A real kube-apiserver and etcd
// (envtest), the real manager (bin/manager as a process, or in-process), and
// PostgreSQL holding the erasure data set of part 1. Requests erasure
// requests are created at once; the benchmark watches them and times each
// from just before its creation to the watch event that shows it Ready.
// Then the manager is restarted with Objects completed requests present, and
// its memory measured once it has synced and looked at each of them.

const cpNamespace = "bench"

// RunControlPlane runs part 4.
func RunControlPlane(ctx context.Context, cfg Config) Part {
	p := Part{Name: "control-plane", Details: map[string]any{}}
	if err := runControlPlane(ctx, cfg, &p); err != nil {
		p.Error = err.Error()
	}
	return p
}

func runControlPlane(ctx context.Context, cfg Config, p *Part) error {
	n := cfg.Requests
	dsn, drop, err := freshPostgres(ctx, cfg.PostgresDSN, "cp")
	if err != nil {
		return err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	population := max(n, 100)
	cfg.logf("control plane: loading %d subjects", population)
	if err := loadErasureData(ctx, pool, population); err != nil {
		return err
	}
	pool.Close()

	cfg.logf("control plane: starting kube-apiserver and etcd")
	plane, err := startPlane(cfg, "envtest.kubeconfig")
	if err != nil {
		return err
	}
	defer plane.stop()
	env, restCfg, k8s, kubeconfig := plane.env, plane.restCfg, plane.k8s, plane.kubeconfig

	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cpNamespace}}); err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: cpNamespace, Name: "shop-db"},
		StringData: map[string]string{"dsn": dsn, "maskingKey": string(erasureMaskingKey)},
	}); err != nil {
		return err
	}
	ds := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: cpNamespace, Name: "shop"}, Spec: erasureSpec()}
	ds.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: "shop-db", Key: "dsn"}
	ds.Spec.MaskingKeySecretRef = &privacyv1.SecretKeySelector{Name: "shop-db", Key: "maskingKey"}
	if err := k8s.Create(ctx, ds); err != nil {
		return err
	}

	mgr, err := startManager(ctx, cfg, env, kubeconfig, "requests")
	if err != nil {
		return err
	}
	defer mgr.stop()
	p.Details["manager"] = mgr.describe()
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(ds.Status.Conditions, privacyv1.ConditionReady), nil
	}); err != nil {
		return fmt.Errorf("the DataStore did not become Ready: %w (manager log: %s)", err, mgr.logPath)
	}

	// Phase A: n erasure requests at once.
	cfg.logf("control plane: %d erasure requests at once", n)
	apiBefore, _ := apiserverRequests(ctx, restCfg)
	mgrBefore, _ := mgr.scrape(ctx)
	tp, err := applyRequests(ctx, cfg, k8s, n)
	if err != nil {
		return err
	}
	apiAfter, _ := apiserverRequests(ctx, restCfg)
	mgrAfter, _ := mgr.scrape(ctx)
	p.Details["apiCallsPerRequest"] = perRequest(apiBefore, apiAfter, tp.ready)
	p.Details["reconcilesPerRequest"] = reconcileStats(mgrBefore, mgrAfter, tp.ready)
	if tp.ready > 0 {
		// Where the CPU went: milliseconds of CPU per request (the machine's
		// cores are shared by the API server, etcd, PostgreSQL and the manager).
		cpu := map[string]float64{"apiserver": (apiAfter[cpuSeries] - apiBefore[cpuSeries]) * 1000 / float64(tp.ready)}
		if mgr.process {
			cpu["manager"] = (mgrAfter[cpuSeries] - mgrBefore[cpuSeries]) * 1000 / float64(tp.ready)
		}
		p.Details["cpuMsPerRequest"] = cpu
	}
	memA, _ := mgr.memory(ctx)
	p.Details["afterRequests"] = memA
	var erased int64
	if err := pgQueryInt(ctx, dsn, "SELECT count(*) FROM accounts WHERE id <= $1 AND name = '[redacted]'", &erased, n); err != nil {
		return err
	}
	if tp.ready == n && erased != int64(n) {
		return fmt.Errorf("%d requests Ready but %d subjects erased in PostgreSQL", n, erased)
	}
	label := fmt.Sprintf("4. control plane: %d erasure requests at once, to all Ready", n)
	row := Row{Benchmark: label, Lethe: fmtRate(tp.rate(), "req/s"), LetheValue: tp.rate(), Unit: "requests/s",
		Goal: "≥ 100 req/s", Met: met(tp.rate() >= 100)}
	if tp.ready < n {
		row.Note = fmt.Sprintf("only %d of %d requests Ready within the time limit; the rate counts those", tp.ready, n)
	}
	p.Rows = append(p.Rows, row,
		Row{Benchmark: "   time to Ready, p50 / p99", Lethe: fmtSeconds(tp.latencies.quantile(0.5)) + " / " + fmtSeconds(tp.latencies.quantile(0.99)),
			LetheValue: tp.latencies.quantile(0.5).Seconds(), Unit: "s (p50)", Met: "-"})
	p.Details["requests"] = map[string]any{
		"n": n, "ready": tp.ready, "seconds": tp.elapsed.Seconds(), "createSeconds": tp.created.Seconds(),
		"requestsPerSecond": tp.rate(), "latency": summary(tp.latencies),
	}

	// Phase B: the manager restarted with cfg.Objects requests present.
	mgr.stop()
	extra := cfg.Objects - n
	if extra > 0 {
		cfg.logf("control plane: creating %d more (completed) requests", extra)
		if err := addCompletedRequests(ctx, k8s, n, extra); err != nil {
			return err
		}
	}
	mgr, err = startManager(ctx, cfg, env, kubeconfig, "objects")
	if err != nil {
		return err
	}
	defer mgr.stop()
	cfg.logf("control plane: waiting for the manager to sync %d requests", cfg.Objects)
	synced := time.Now()
	if err := mgr.waitReconciled(ctx, cfg.Objects); err != nil {
		return err
	}
	syncTime := time.Since(synced)
	// Let the heap settle after the sync burst, then sample.
	mem, err := mgr.settledMemory(ctx, 5*time.Second)
	if err != nil {
		return err
	}
	p.Details["objects"] = map[string]any{"n": cfg.Objects, "syncSeconds": syncTime.Seconds(), "memory": mem}
	rssRow := Row{
		Benchmark:  fmt.Sprintf("   manager memory with %s requests present: RSS (Go heap)", count(int64(cfg.Objects))),
		Lethe:      fmt.Sprintf("%.0f MiB (heap %.0f MiB)", mem.RSS, mem.HeapAlloc),
		LetheValue: mem.RSS, Unit: "MiB", Goal: "RSS ≤ 150 MiB", Met: met(mem.RSS <= 150),
	}
	if !mgr.process {
		rssRow.Note = "manager ran in-process: RSS and heap are the whole benchmark process's"
	}
	p.Rows = append(p.Rows, rssRow)
	return nil
}

// ---- phase A --------------------------------------------------------------------

type throughput struct {
	ready     int
	elapsed   time.Duration // first create to last Ready
	created   time.Duration // first create to last create
	latencies durations
}

func (t throughput) rate() float64 { return rate(int64(t.ready), t.elapsed) }

func requestName(i int) string { return fmt.Sprintf("erase-%05d", i) }

func erasureRequest(i int) *privacyv1.DataSubjectRequest {
	ids := privacyv1.Identities{}
	for k, v := range subjectIdentities(int64(i)) {
		ids[k] = privacyv1.IdentityValue(v)
	}
	return &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: cpNamespace, Name: requestName(i)},
		Spec:       privacyv1.DataSubjectRequestSpec{Type: privacyv1.RequestErasure, Subject: privacyv1.Subject{Identities: ids}},
	}
}

// applyRequests creates n erasure requests (subjects 1..n) with 16 concurrent
// clients and waits, through a watch, until each is Ready.
func applyRequests(ctx context.Context, cfg Config, k8s client.WithWatch, n int) (throughput, error) {
	var mu sync.Mutex
	started := map[string]time.Time{}
	readyAt := map[string]time.Time{}
	allReady := make(chan struct{})
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w, err := k8s.Watch(wctx, &privacyv1.DataSubjectRequestList{}, client.InNamespace(cpNamespace))
	if err != nil {
		return throughput{}, err
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			dsr, ok := ev.Object.(*privacyv1.DataSubjectRequest)
			if !ok || !apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionReady) {
				continue
			}
			now := time.Now()
			mu.Lock()
			if _, seen := readyAt[dsr.Name]; !seen {
				readyAt[dsr.Name] = now
				if len(readyAt) == n {
					close(allReady)
				}
			}
			mu.Unlock()
		}
	}()

	first := time.Now()
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				dsr := erasureRequest(i)
				mu.Lock()
				started[dsr.Name] = time.Now()
				mu.Unlock()
				if err := k8s.Create(ctx, dsr); err != nil {
					select {
					case errs <- fmt.Errorf("creating %s: %w", dsr.Name, err):
					default:
					}
				}
			}
		})
	}
	for i := 1; i <= n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	created := time.Since(first)
	select {
	case err := <-errs:
		return throughput{}, err
	default:
	}
	cfg.logf("control plane: %d requests created in %s", n, created.Round(time.Millisecond))
	limit := time.NewTimer(3 * time.Minute)
	defer limit.Stop()
	select {
	case <-allReady:
	case <-limit.C:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	t := throughput{ready: len(readyAt), created: created}
	var last time.Time
	for name, at := range readyAt {
		t.latencies = append(t.latencies, at.Sub(started[name]))
		if at.After(last) {
			last = at
		}
	}
	if t.ready > 0 {
		t.elapsed = last.Sub(first)
	} else {
		t.elapsed = time.Since(first)
	}
	return t, nil
}

// ---- phase B --------------------------------------------------------------------

// addCompletedRequests creates extra requests after the first n, each with the
// status of a completed request (as copied from request 1), so the manager
// finds a history of finished requests rather than new work.
func addCompletedRequests(ctx context.Context, k8s client.Client, n, extra int) error {
	template := &privacyv1.DataSubjectRequest{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: cpNamespace, Name: requestName(1)}, template); err != nil {
		return err
	}
	if !apimeta.IsStatusConditionTrue(template.Status.Conditions, privacyv1.ConditionReady) {
		return errors.New("request 1 is not Ready: no completed status to copy")
	}
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				dsr := erasureRequest(i)
				err := k8s.Create(ctx, dsr)
				if err == nil {
					dsr.Status = *template.Status.DeepCopy()
					err = k8s.Status().Update(ctx, dsr)
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("creating %s: %w", dsr.Name, err):
					default:
					}
				}
			}
		})
	}
	for i := n + 1; i <= n+extra; i++ {
		select {
		case work <- i:
		case err := <-errs:
			close(work)
			wg.Wait()
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// ---- the manager ------------------------------------------------------------------

// manager is the manager under test: a process, or in-process.
type manager struct {
	process bool
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	metrics string // http://127.0.0.1:port/metrics
	args    []string
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// managerHasFlag reports whether the manager binary offers a flag (from its -help).
func managerHasFlag(binary, name string) bool {
	out, _ := exec.Command(binary, "-help").CombinedOutput() // -help exits non-zero on some flag sets
	return regexp.MustCompile(`(?m)^\s+--?` + regexp.QuoteMeta(name) + `\b`).Match(out)
}

func startManager(ctx context.Context, cfg Config, env *testenv.Env, kubeconfig, phase string) (*manager, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &manager{metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port)}
	if cfg.ManagerBinary == "" {
		return m, m.startInProcess(env, port, cfg.Workers)
	}
	m.process = true
	m.logPath = filepath.Join(cfg.WorkDir, "manager-"+phase+".log")
	logFile, err := os.Create(m.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	m.args = []string{"--leader-elect=false", fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port),
		"--health-probe-bind-address=0", "--operator-namespace=default"}
	if cfg.Workers > 0 {
		if !managerHasFlag(cfg.ManagerBinary, "max-concurrent-reconciles") {
			return nil, fmt.Errorf("%s has no --max-concurrent-reconciles flag; run without --workers", cfg.ManagerBinary)
		}
		m.args = append(m.args, fmt.Sprintf("--max-concurrent-reconciles=%d", cfg.Workers))
	}
	if managerHasFlag(cfg.ManagerBinary, "egress-allow") {
		// The benchmark's databases listen on loopback, which the default egress policy refuses.
		m.args = append(m.args, "--egress-allow=127.0.0.0/8")
	}
	m.args = append(m.args, cfg.ManagerArgs...)
	m.cmd = exec.Command(cfg.ManagerBinary, m.args...)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (go build -o bin/manager .): %w", cfg.ManagerBinary, err)
	}
	m.exited = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.exited) }()
	if err := waitFor(ctx, time.Minute, func() (bool, error) {
		select {
		case <-m.exited:
			return false, fmt.Errorf("the manager exited; see %s", m.logPath)
		default:
		}
		_, err := m.scrape(ctx)
		return err == nil, nil
	}); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

var skipNameValidation = true

func (m *manager) startInProcess(env *testenv.Env, port, workers int) error {
	restCfg := rest.CopyConfig(env.Config)
	restCfg.QPS = -1 // as ctrl.GetConfigOrDie leaves it for main.go
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: fmt.Sprintf("127.0.0.1:%d", port)},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		// The manager is started twice in this process; the controllers' names repeat.
		Controller: config.Controller{SkipNameValidation: &skipNameValidation, MaxConcurrentReconciles: workers},
	})
	if err != nil {
		return err
	}
	conn := connector.New(mgr.GetAPIReader(), connector.Engines{Network: testdb.Loopback}.Open)
	if err := controllers.SetupAll(mgr, controllers.Options{
		Connector: conn, DigestKey: []byte("bench digest key 0123456789abcdef"),
		ErasureDeadline: 24 * time.Hour, OtherDeadline: 30 * 24 * time.Hour,
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		defer conn.Close()
		_ = mgr.Start(ctx)
	}()
	return waitFor(context.Background(), time.Minute, func() (bool, error) {
		_, err := m.scrape(context.Background())
		return err == nil, nil
	})
}

func (m *manager) describe() map[string]any {
	if !m.process {
		return map[string]any{"mode": "in-process"}
	}
	return map[string]any{"mode": "process", "binary": m.cmd.Path, "args": m.args}
}

func (m *manager) stop() {
	if m.stopped {
		return
	}
	m.stopped = true
	if !m.process {
		m.cancel()
		<-m.done
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// scrape reads the manager's Prometheus metrics (text format) as name{labels} -> value.
func (m *manager) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.metrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// sumMetric adds every series of name whose labels contain all of match.
func sumMetric(metrics map[string]float64, name string, match ...string) float64 {
	var total float64
	for series, v := range metrics {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(series, m)
		}
		if ok {
			total += v
		}
	}
	return total
}

// waitReconciled waits until the request controller has reconciled at least
// n requests and its queue is empty.
func (m *manager) waitReconciled(ctx context.Context, n int) error {
	return waitFor(ctx, 4*time.Minute, func() (bool, error) {
		metrics, err := m.scrape(ctx)
		if err != nil {
			return false, nil
		}
		done := sumMetric(metrics, "controller_runtime_reconcile_total", `controller="datasubjectrequest"`)
		depth := sumMetric(metrics, "workqueue_depth", `name="datasubjectrequest"`)
		return done >= float64(n) && depth == 0, nil
	})
}

// memorySample is the manager's memory, in MiB.
type memorySample struct {
	RSS       float64 `json:"rssMiB"`
	PeakRSS   float64 `json:"peakRssMiB"`
	HeapAlloc float64 `json:"heapAllocMiB"`
	HeapInuse float64 `json:"heapInuseMiB"`
	HeapSys   float64 `json:"heapSysMiB"`
}

func (m *manager) memory(ctx context.Context) (memorySample, error) {
	var s memorySample
	if !m.process {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapAlloc, s.HeapInuse, s.HeapSys = mib(ms.HeapAlloc), mib(ms.HeapInuse), mib(ms.HeapSys)
		pm, err := readProcMemory(os.Getpid())
		s.RSS, s.PeakRSS = pm.RSS, pm.HWM
		return s, err
	}
	pm, err := readProcMemory(m.cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	s.RSS, s.PeakRSS = pm.RSS, pm.HWM
	metrics, err := m.scrape(ctx)
	if err != nil {
		return s, err
	}
	s.HeapAlloc = metrics["go_memstats_heap_alloc_bytes"] / (1 << 20)
	s.HeapInuse = metrics["go_memstats_heap_inuse_bytes"] / (1 << 20)
	s.HeapSys = metrics["go_memstats_heap_sys_bytes"] / (1 << 20)
	return s, nil
}

// settledMemory samples memory for the given time and returns the last
// sample, with the highest RSS seen as the peak.
func (m *manager) settledMemory(ctx context.Context, d time.Duration) (memorySample, error) {
	var last memorySample
	end := time.Now().Add(d)
	for {
		s, err := m.memory(ctx)
		if err != nil {
			return last, err
		}
		last = s
		if time.Now().After(end) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// ---- helpers ------------------------------------------------------------------------

var apiRequestSeries = regexp.MustCompile(`^apiserver_request_total\{(.*)\}$`)
var labelPair = regexp.MustCompile(`(\w+)="([^"]*)"`)

// cpuSeries is the CPU time a Prometheus process collector reports.
const cpuSeries = "process_cpu_seconds_total"

// requestKey is "VERB resource[/subresource]" of an API server request
// series' labels; ok is false for watches and non-resource requests.
func requestKey(labelText string) (key string, ok bool) {
	labels := map[string]string{}
	for _, kv := range labelPair.FindAllStringSubmatch(labelText, -1) {
		labels[kv[1]] = kv[2]
	}
	if labels["resource"] == "" || labels["verb"] == "WATCH" {
		return "", false
	}
	key = labels["verb"] + " " + labels["resource"]
	if labels["subresource"] != "" {
		key += "/" + labels["subresource"]
	}
	return key, true
}

// apiserverRequests counts the API server's requests by "VERB resource[/subresource]",
// and its CPU time under cpuSeries.
func apiserverRequests(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	body, err := dc.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if line[:i] == cpuSeries {
			out[cpuSeries], _ = strconv.ParseFloat(line[i+1:], 64)
			continue
		}
		m := apiRequestSeries.FindStringSubmatch(line[:i])
		if m == nil {
			continue
		}
		key, ok := requestKey(m[1])
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		out[key] += v
	}
	return out, nil
}

// perRequest is the growth of each counter divided by n (counters that grew by at least n/10).
func perRequest(before, after map[string]float64, n int) map[string]float64 {
	out := map[string]float64{}
	if n == 0 {
		return out
	}
	for k, v := range after {
		if d := v - before[k]; d >= float64(n)/10 && k != cpuSeries {
			out[k] = math.Round(d/float64(n)*100) / 100
		}
	}
	return out
}

// plane is a benchmark's kube-apiserver and etcd (envtest), a client that is
// not rate limited, and a kubeconfig file for a manager process.
type plane struct {
	env        *testenv.Env
	restCfg    *rest.Config
	k8s        client.WithWatch
	kubeconfig string
}

// startPlane starts envtest and writes its kubeconfig to name in
// cfg.WorkDir; stop removes both.
func startPlane(cfg Config, name string) (*plane, error) {
	env, err := testenv.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest (run `make envtest`): %w", err)
	}
	p := &plane{env: env, restCfg: rest.CopyConfig(env.Config)}
	p.restCfg.QPS = -1 // the benchmark's own client is not rate limited
	if p.k8s, err = client.NewWithWatch(p.restCfg, client.Options{Scheme: env.Scheme}); err == nil {
		if err = os.MkdirAll(cfg.WorkDir, 0o755); err == nil {
			p.kubeconfig = filepath.Join(cfg.WorkDir, name)
			err = writeKubeconfig(env.Config, p.kubeconfig)
		}
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *plane) stop() {
	if p.kubeconfig != "" {
		_ = os.Remove(p.kubeconfig)
	}
	_ = p.env.Stop()
}

// reconcileStats reads the request controller's reconciles during phase A.
func reconcileStats(before, after map[string]float64, n int) map[string]float64 {
	sel := `controller="datasubjectrequest"`
	count := sumMetric(after, "controller_runtime_reconcile_total", sel) - sumMetric(before, "controller_runtime_reconcile_total", sel)
	seconds := sumMetric(after, "controller_runtime_reconcile_time_seconds_sum", sel) - sumMetric(before, "controller_runtime_reconcile_time_seconds_sum", sel)
	out := map[string]float64{"reconciles": count}
	if n > 0 {
		out["perRequest"] = count / float64(n)
	}
	if count > 0 {
		out["meanReconcileMs"] = seconds / count * 1000
	}
	return out
}

func writeKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["bench"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "bench"}
	kc.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*kc, path)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls cond every 200ms until it is true, fails, or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func pgQueryInt(ctx context.Context, dsn, q string, out *int64, args ...any) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	return pool.QueryRow(ctx, q, args...).Scan(out)
}

func fmtSeconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", ms(d))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
