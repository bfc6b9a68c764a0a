package faultsuite

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gpuspace/gpuspace/internal/dev/controlplane"
	"github.com/gpuspace/gpuspace/internal/dev/faultproxy"
)

var (
	longForm    = flag.Bool("faults.long", os.Getenv("GPUSPACE_FAULTS_LONG") == "1", "run the long form of the fault suite (also GPUSPACE_FAULTS_LONG=1)")
	faultsFor   = flag.Duration("faults.duration", envDuration("GPUSPACE_FAULTS_DURATION", 5*time.Minute), "how long the long form injects faults (also GPUSPACE_FAULTS_DURATION)")
	faultsSeed  = flag.Int64("faults.seed", envInt("GPUSPACE_FAULTS_SEED", 1), "seed of the injected faults and of the load (also GPUSPACE_FAULTS_SEED)")
	faultsOnly  = flag.String("faults.only", os.Getenv("GPUSPACE_FAULTS_ONLY"), "inject the proxy's faults only into requests METHOD:PATH-PREFIX[,...], e.g. PATCH:/api/v1/nodes/ (also GPUSPACE_FAULTS_ONLY)")
	faultsRates = flag.String("faults.rates", os.Getenv("GPUSPACE_FAULTS_RATES"), "override the proxy's fault shares, KIND=SHARE[,...], e.g. lost-response=0.5 (also GPUSPACE_FAULTS_RATES)")
	strict      = flag.Bool("faults.strict", os.Getenv("GPUSPACE_FAULTS_STRICT") == "1", "fail on known failures too (also GPUSPACE_FAULTS_STRICT=1)")
)

// knownFailure is a controller bug the suite found and reported: a
// violation it explains (matches) is printed in the report, and fails the
// test only with -faults.strict. Every other violation fails the test.
type knownFailure struct {
	name, explain string
	matches       func(v violation, r *result) bool
}

// knownFailures are the violations the suite still finds. Fixed since:
// lost-node-patch-response (a node Patch applied with its answer lost left
// the eviction it owed undone: reconcileNode owes the eviction on any
// failed Patch) and release-write-retry (a failed release write waited
// for the 5 s retry: Reconcile retries it in 1 s, as a failed binding).
var knownFailures = []knownFailure{{
	name: "relist-after-outage",
	explain: "after kube-apiserver or etcd restarts, or a new leader takes over, the controller learns a spec change (an early release) only once its informers " +
		"have listed again: client-go's reflector backs off (0.8 s doubling) after the outage's errors, and a new leader syncs its caches after it holds the lease; " +
		"the suite excludes only kill-to-/readyz and no-leader time (issue 22)",
	matches: func(v violation, r *result) bool {
		return v.invariant == invDue && r.outageNear(v.when, relistWindow)
	},
}}

// relistWindow is how long after an outage a due-complete violation is put
// down to relist-after-outage.
const relistWindow = 15 * time.Second

// outageNear reports whether an outage was going on at t or ended less
// than d before it.
func (r *result) outageNear(t time.Time, d time.Duration) bool {
	return slices.ContainsFunc(r.outageList, func(iv interval) bool {
		return !iv.from.After(t) && (iv.to.IsZero() || !iv.to.Before(t.Add(-d)))
	})
}

// known is the known failure that explains v, or nil.
func (r *result) known(v violation) *knownFailure {
	for i := range knownFailures {
		if knownFailures[i].matches(v, r) {
			return &knownFailures[i]
		}
	}
	return nil
}

// requireBinary skips the test, with the reason, when bin/gpuspace is
// missing, unless under CI (CI=1 or CI=true), where that fails it: CI
// never passes a suite it did not run. The control-plane binaries beside
// it are controlplane.Start's to find.
func requireBinary(t *testing.T) {
	t.Helper()
	bin := filepath.Join(controlplane.BinDir(), gpuspaceBinary.Name)
	if _, err := os.Stat(bin); err == nil {
		return
	}
	why := fmt.Sprintf("fault suite: %s not found: run `make build` (or set GPUSPACE_BIN_DIR to a directory holding it)", bin)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(why)
	}
	t.Skip(why)
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

func envInt(key string, def int64) int64 {
	if n, err := strconv.ParseInt(os.Getenv(key), 10, 64); err == nil {
		return n
	}
	return def
}

// config is one form of the suite.
type config struct {
	name       string
	seed       int64
	nodes      int
	workspaces int
	maxQueued  int
	// warmup is how long the load runs before the faults start, so that
	// GPRs it provisioned early expire while faults happen.
	warmup time.Duration
	// faultFor is how long faults are injected; processEvery spaces the
	// process kills.
	faultFor, processEvery time.Duration
	rates                  faultproxy.Rates
	// only limits the proxy's faults (-faults.only); nil: every request.
	only func(*http.Request) bool
}

// withOverrides applies -faults.only and -faults.rates.
func (c config) withOverrides(only, rates string) (config, error) {
	if only != "" {
		var match []func(*http.Request) bool
		for _, m := range strings.Split(only, ",") {
			method, prefix, ok := strings.Cut(strings.TrimSpace(m), ":")
			if !ok {
				return c, fmt.Errorf("-faults.only %q: want METHOD:PATH-PREFIX", m)
			}
			match = append(match, func(r *http.Request) bool { return r.Method == method && strings.HasPrefix(r.URL.Path, prefix) })
		}
		c.only = func(r *http.Request) bool {
			return slices.ContainsFunc(match, func(m func(*http.Request) bool) bool { return m(r) })
		}
	}
	if rates == "" {
		return c, nil
	}
	shares := map[faultproxy.Kind]*float64{
		faultproxy.Error500: &c.rates.Error500, faultproxy.Throttle429: &c.rates.Throttle429, faultproxy.Timeout: &c.rates.Timeout,
		faultproxy.LostResponse: &c.rates.LostResponse, faultproxy.Delay: &c.rates.Delay, faultproxy.WatchCut: &c.rates.WatchCut,
	}
	for _, kv := range strings.Split(rates, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		share, err := strconv.ParseFloat(v, 64)
		if shares[faultproxy.Kind(k)] == nil || err != nil {
			return c, fmt.Errorf("-faults.rates %q: want KIND=SHARE with KIND one of %v", kv, faultproxy.Kinds)
		}
		*shares[faultproxy.Kind(k)] = share
	}
	return c, nil
}

func shortForm(seed int64) config {
	return config{
		name: "short", seed: seed, nodes: 4, workspaces: 6, maxQueued: 8,
		warmup: 12 * time.Second, faultFor: 55 * time.Second, processEvery: 13 * time.Second,
		rates: faultproxy.Rates{Error500: 0.06, Throttle429: 0.03, Timeout: 0.03, LostResponse: 0.03,
			Delay: 0.1, MaxDelay: 200 * time.Millisecond, TimeoutHold: time.Second,
			// A share of watch requests, not of time: an uncut watch lives
			// for minutes, so this cuts each informer's watch once or
			// twice a run. Cut much more often, client-go's
			// reflector backoff (0.8 s doubling, reset after 2 min without
			// an error) grows to 10 s and more, and a spec change such as
			// an early release waits that long for the controller to see
			// it.
			WatchCut: 0.2, MaxWatchLife: 10 * time.Second},
	}
}

func longFormConfig(seed int64, d time.Duration) config {
	c := shortForm(seed)
	c.name, c.nodes, c.workspaces, c.maxQueued = "long", 6, 10, 14
	c.faultFor, c.processEvery = d, 20*time.Second
	return c
}

// TestFaults runs the fault suite: the short form by default (about 100
// s), the long form with -faults.long. See the package documentation and
// docs/testing.md.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs real processes for about two minutes; not with -short")
	}
	requireBinary(t)
	ctrllog.SetLogger(logr.Discard()) // the watcher's cache; the replicas log to their files
	cfg := shortForm(*faultsSeed)
	if *longForm {
		cfg = longFormConfig(*faultsSeed, *faultsFor)
	}
	cfg, err := cfg.withOverrides(*faultsOnly, *faultsRates)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fault suite, %s form, seed %d: %d nodes, %d workspaces, faults for %s, proxy rates %+v, only %q",
		cfg.name, cfg.seed, cfg.nodes, cfg.workspaces, cfg.faultFor, cfg.rates, *faultsOnly)
	s := startSystem(t, cfg)
	r := run(t, s, cfg)
	t.Log("\n" + r.String())
	r.judge(t)
}

// result is what a run measured.
type result struct {
	cfg           config
	proxyFaults   map[faultproxy.Kind]int64
	proxyRecords  []faultproxy.Record
	processFaults map[string]int
	injectErrs    []error
	restarts      map[string]int
	outages       map[string]time.Duration
	outageList    []interval
	checks        map[string]int
	violations    []violation
	duesMet       map[string]int
	worstLate     time.Duration
	worstLateGPR  string
	straysSeen    int
	worstStray    string
	converged     time.Duration
	ops, failed   map[string]int
	wall          time.Duration
}

// run drives one run: the load and the faults for cfg.faultFor, then the
// faults stop, the load stops changing GPRs and the estimates must
// converge.
func run(t *testing.T, s *system, cfg config) *result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	begin := time.Now()
	l := newLedger()
	w := newWatcher(s, l)
	w.begin = begin
	if err := w.start(ctx); err != nil {
		t.Fatalf("watcher: %v", err)
	}
	var mutating atomic.Bool
	mutating.Store(true)
	ld := &load{s: s, ledger: l, rng: newRand(cfg.seed, 1), maxQueued: cfg.maxQueued}
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); ld.run(ctx, mutating.Load) }()

	sleep(ctx, cfg.warmup)
	s.proxy.SetEnabled(true)
	faultsBegin := time.Now()
	t.Logf("load began at %s; faults start at +%s", begin.UTC().Format("15:04:05.000"), faultsBegin.Sub(begin).Round(time.Millisecond))
	in := &injector{s: s, done: map[string]int{}, begin: begin}
	plan := planProcessFaults(cfg.seed, cfg.faultFor, cfg.processEvery)
	injectCtx, stopInjecting := context.WithTimeout(ctx, cfg.faultFor)
	in.run(injectCtx, t, faultsBegin, plan)
	<-injectCtx.Done()
	stopInjecting()
	s.proxy.SetEnabled(false)
	mutating.Store(false)
	faultsEnd := time.Now()
	t.Logf("faults stopped at +%s; waiting for estimates to converge", faultsEnd.Sub(begin).Round(time.Millisecond))

	r := &result{cfg: cfg, proxyFaults: s.proxy.Counts(), proxyRecords: s.proxy.Records(), processFaults: in.done, injectErrs: in.errs}
	r.converged = w.waitEstimates(ctx, faultsEnd)
	// Give GPRs due now their deadline before the last look.
	sleep(ctx, dueDeadline+time.Second)
	w.evaluate(ctx, time.Now())
	if err := w.checkCreatedExist(ctx); err != nil {
		t.Errorf("final read of GPRs: %v", err)
	}
	cancel()
	<-loadDone

	r.collect(s, w, l, begin)
	return r
}

// collect fills in what the system, the watcher and the load's ledger
// measured.
func (r *result) collect(s *system, w *watcher, l *ledger, begin time.Time) {
	r.outages = s.outages.totals(time.Now())
	r.outageList = s.outages.intervals()
	r.restarts = map[string]int{}
	for _, rep := range s.replicas {
		r.restarts[rep.name] = rep.restarts()
	}
	w.mu.Lock()
	r.checks, r.violations = maps.Clone(w.checks), slices.Clone(w.violations)
	r.duesMet, r.worstLate, r.worstLateGPR = maps.Clone(w.duesMet), w.worstLate, w.worstLateG
	r.straysSeen = w.straysSeen
	if w.worstStray != nil {
		r.worstStray = w.worstStray.describe(begin)
	}
	w.mu.Unlock()
	l.mu.Lock()
	r.ops, r.failed = maps.Clone(l.ops), maps.Clone(l.failed)
	l.mu.Unlock()
	r.wall = time.Since(begin)
}

// String is the report: faults injected by kind, outages, what was
// checked, the violations, and the worst lateness.
func (r *result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fault suite report (%s form, seed %d, %s of faults, %s in all)\n", r.cfg.name, r.cfg.seed, r.cfg.faultFor, r.wall.Round(time.Second))
	b.WriteString("faults injected:\n")
	for _, k := range faultproxy.Kinds {
		fmt.Fprintf(&b, "  %-16s %d\n", k, r.proxyFaults[k])
	}
	for _, k := range processFaults {
		fmt.Fprintf(&b, "  %-16s %d\n", k, r.processFaults[k])
	}
	for _, err := range r.injectErrs {
		fmt.Fprintf(&b, "  not injected: %v\n", err)
	}
	fmt.Fprintf(&b, "replica restarts: %v\n", sortedMap(r.restarts))
	fmt.Fprintf(&b, "outages (not counted against deadlines): leaderless %s, apiserver down %s\n",
		r.outages[outageLeaderless].Round(time.Millisecond), r.outages[outageAPIServer].Round(time.Millisecond))
	fmt.Fprintf(&b, "load: done %v; failed %v\n", sortedMap(r.ops), sortedMap(r.failed))
	b.WriteString("invariants (states checked, violations, of which known failures):\n")
	for _, inv := range invariants {
		n, known := 0, 0
		for _, v := range r.violations {
			if v.invariant == inv {
				n++
				if r.known(v) != nil {
					known++
				}
			}
		}
		fmt.Fprintf(&b, "  %-20s %6d  %d  %d\n", inv, r.checks[inv], n, known)
	}
	fmt.Fprintf(&b, "due GPRs completed: %s; worst lateness %s (%s), deadline %s\n", sortedMap(r.duesMet), r.worstLate.Round(time.Millisecond), r.worstLateGPR, dueDeadline)
	fmt.Fprintf(&b, "stray GPU pods seen on bound nodes: %d; longest: %s\n", r.straysSeen, orNone(r.worstStray))
	fmt.Fprintf(&b, "estimates converged %s after the faults stopped (deadline %s)\n", r.converged.Round(time.Millisecond), estimatesDeadline)
	for _, v := range r.violations {
		if kf := r.known(v); kf != nil {
			fmt.Fprintf(&b, "VIOLATION (known failure %s) %s\n", kf.name, v)
			continue
		}
		fmt.Fprintf(&b, "VIOLATION %s\n", v)
	}
	for _, kf := range knownFailures {
		fmt.Fprintf(&b, "known failure %s: %s\n", kf.name, kf.explain)
	}
	return b.String()
}

// judge fails the test for every violation of an invariant not on the
// known-failure list (all of them with -faults.strict), and for faults the
// injector could not inject.
func (r *result) judge(t *testing.T) {
	for _, v := range r.violations {
		if kf := r.known(v); kf != nil && !*strict {
			t.Logf("known failure %s, not failing the test: %s", kf.name, v)
			continue
		}
		t.Errorf("seed %d: %s", r.cfg.seed, v)
	}
	for _, err := range r.injectErrs {
		t.Errorf("seed %d: process fault not injected: %v", r.cfg.seed, err)
	}
	for _, why := range []string{"expired", "early release"} {
		if r.duesMet[why] == 0 {
			t.Errorf("no GPR came due (%s) and completed: the run checked nothing of it", why)
		}
	}
}

func sortedMap[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, m[k])
	}
	return strings.Join(parts, " ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
