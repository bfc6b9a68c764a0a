package gpr_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/dev/benchkit"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
	"github.com/gpuspace/gpuspace/internal/snapshot"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
)

// BenchmarkQueueShift is the engine's load run against the real
// kube-apiserver: GPUSPACE_BENCH_GPRS queued GPRs (default 10,000) over
// GPUSPACE_BENCH_NODES H100 nodes (default 400) in GPUSPACE_BENCH_WORKSPACES
// workspaces (default 100, at most one per node), all nodes held for an
// hour. With more workspaces than nodes (the shape of issue 22's
// measurement on gpuspace dev: 80 workspaces, 40 nodes) a GPR of each
// workspace holds a node and the other workspaces' GPRs queue from the
// start. Each queued GPR's priority is drawn at random
// (seed GPUSPACE_BENCH_SEED, default 1) from GPUSPACE_BENCH_PRIORITIES
// levels (default 1: one FIFO, where nothing reorders), so that with more
// than one level an arrival overtakes the GPRs of lower priority already
// queued and moves their estimates, as a real burst does. The burst is
// created as fast as the apiserver takes it, or at GPUSPACE_BENCH_RATE
// GPRs a second. GPUSPACE_BENCH_QPS sets the controllers' client rate
// limit (gpuspace serve --kube-api-qps; the estimate writer, which
// admits a burst's GPRs, gets half). GPRs for an
// idle T4 pool are created one after another before the burst (the
// baseline), during it, and during the shift: then a priority-300 GPR
// for every node, for a day, arrives at the head of the queue and shifts
// every estimate by a day. It reports:
//
//   - burst-writes/GPR: status writes per GPR from the first create of
//     the burst until the writes stop (admission, estimates, convergence);
//   - burst-delayed/GPR: the share of queued GPRs whose stored estimate
//     was rewritten later at least once: the writes no policy can save,
//     since the estimate admission wrote was overtaken;
//   - burst-s: how long creating the burst took;
//   - burst-settle-s: from the last create until every GPR has an estimate
//     (is admitted: in a burst admission waits for its end, admitLater);
//   - burst-converge-s: from the last create until every stored estimate
//     is within domain.EstimateTolerance of a plan made then (what a
//     kubectl user sees is right again);
//   - t4-base-p50-ms: create → Provisioned of the T4 GPRs before the burst,
//     the baseline in the same run; t4-burst-p50-ms, t4-burst-p99-ms during
//     the burst; t4-p50-ms, t4-p99-ms during the shift;
//   - shift-writes/moved: estimate writes of the shift per GPR whose stored
//     estimate moved beyond domain.EstimateTolerance;
//   - heap-MiB: the process's heap with the controllers' caches full.
//
// Run it alone, once:
//
//	make bench BENCH=QueueShift BENCH_FLAGS='-benchtime=1x -timeout=40m'
//	GPUSPACE_BENCH_PRIORITIES=4 make bench BENCH=QueueShift BENCH_FLAGS='-benchtime=1x -timeout=40m'
func BenchmarkQueueShift(b *testing.B) {
	for b.Loop() {
		runQueueShift(b, benchkit.EnvInt("GPUSPACE_BENCH_GPRS", 10000), benchkit.EnvInt("GPUSPACE_BENCH_NODES", 400))
	}
}

// T4 runs of BenchmarkQueueShift: before the burst, at most during it,
// and during the shift.
const (
	t4BaseRuns  = 4
	t4BurstRuns = 60
	t4ShiftRuns = 20
	t4Runs      = t4BaseRuns + t4BurstRuns + t4ShiftRuns
)

func runQueueShift(b *testing.B, queued, nodes int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sfx := strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	cluster := "bench-" + sfx
	lbl := map[string]string{labelCase: "bench-" + sfx}
	// The benchmark's own client, fast enough not to be the bottleneck.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { benchCleanup(c, lbl) })

	parallel(b, nodes, func(i int) error {
		_, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: fmt.Sprintf("bench-%s-h100-%d", sfx, i), Cluster: cluster,
			InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8, Labels: lbl})
		return err
	})
	parallel(b, 4, func(i int) error {
		_, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: fmt.Sprintf("bench-%s-t4-%d", sfx, i), Cluster: cluster,
			InstanceType: "n1-standard-8", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1, Labels: lbl})
		return err
	})
	workspaces := benchkit.EnvInt("GPUSPACE_BENCH_WORKSPACES", min(100, nodes))
	ws := func(kind string, i int) string { return fmt.Sprintf("bench-%s-%s%d", sfx, kind, i) }
	parallel(b, workspaces+t4Runs+1, func(i int) error {
		name := ws("w", i)
		if i >= workspaces {
			name = ws("t4-", i-workspaces)
		}
		return c.Create(ctx, &v1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl},
			Spec: v1alpha1.WorkspaceSpec{Username: "bench", Clusters: []string{cluster},
				Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: name}}},
		})
	})
	newGPR := func(name, w string, prio int32, count int32, exit, shape string) *v1alpha1.GPUProvisionRequest {
		return &v1alpha1.GPUProvisionRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl},
			Spec: v1alpha1.GPUProvisionRequestSpec{GPRName: "bench", Workspace: w, ClusterName: cluster, NumberOfGPUs: 1,
				NumberOfGPUNodes: count, GPUShape: shape, Priority: prio, ExitDuration: exit},
		}
	}

	// The controllers, through the configuration path gpuspace serve uses,
	// at gpuspace serve --kube-api-qps GPUSPACE_BENCH_QPS (default 0:
	// kubeclient.DefaultQPS) with bursts of twice that.
	qps := benchkit.EnvInt("GPUSPACE_BENCH_QPS", 0)
	mcfg := kubeclient.WithLimits(rest.CopyConfig(env.Config), float32(qps), 2*qps)
	mcfg.UserAgent = "bench-controllers"
	mgr, err := controller.NewManager(mcfg, controller.ManagerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := controller.Setup(mgr, controller.Options{SkipNameValidation: true}); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	// Every H100 node held for an hour: a GPR of nodes/workspaces nodes
	// (at least one) in as many workspaces as that takes.
	per := int32(max(nodes/workspaces, 1))
	holders := min(workspaces, nodes/int(per))
	parallel(b, holders, func(i int) error {
		return c.Create(ctx, newGPR(fmt.Sprintf("bench-%s-hold-%d", sfx, i), ws("w", i), 101, per, "0d1h0m", "H100"))
	})
	waitList(b, c, lbl, "holders provisioned", func(gs []v1alpha1.GPUProvisionRequest) bool {
		return count(gs, func(g *v1alpha1.GPUProvisionRequest) bool { return domain.IsProvisioned(g) }) == holders
	})

	// A T4 GPR on the idle pool, create → Provisioned, then released.
	t4 := func(run int) time.Duration {
		id := fmt.Sprintf("bench-%s-t4-%d", sfx, run)
		start := time.Now()
		if err := c.Create(ctx, newGPR(id, ws("t4-", run), 101, 1, "0d0h1m", "T4")); err != nil {
			b.Error(err) // may run off the benchmark's goroutine
			return 0
		}
		for {
			var g v1alpha1.GPUProvisionRequest
			if err := c.Get(ctx, client.ObjectKey{Name: id}, &g); err == nil && domain.IsProvisioned(&g) {
				d := time.Since(start)
				g.Spec.EarlyRelease = true // free the T4 node for the next run
				_ = c.Update(ctx, &g)
				return d
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	var base []time.Duration
	for run := range t4BaseRuns {
		base = append(base, t4(run))
	}

	// The burst: queued GPRs, each for nodes/100 nodes, 1-4 h, at random
	// priorities; T4 runs one after another while it lasts.
	writes := func() float64 {
		return testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("decision")) + testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate"))
	}
	prio := burstPriorities(queued, benchkit.EnvInt("GPUSPACE_BENCH_PRIORITIES", 1), uint64(benchkit.EnvInt("GPUSPACE_BENCH_SEED", 1)))
	w0 := writes()
	burstStart := time.Now()
	burstDone := make(chan struct{})
	t4Burst := make(chan []time.Duration, 1)
	go func() {
		var ds []time.Duration
		for run := t4BaseRuns; run < t4BaseRuns+t4BurstRuns; run++ {
			select {
			case <-burstDone:
				t4Burst <- ds
				return
			default:
			}
			ds = append(ds, t4(run))
		}
		t4Burst <- ds
	}()
	pace := burstPace(benchkit.EnvInt("GPUSPACE_BENCH_RATE", 0))
	parallel(b, queued, func(i int) error {
		pace()
		return c.Create(ctx, newGPR(fmt.Sprintf("bench-%s-q-%d", sfx, i), ws("w", i%workspaces), prio[i], per,
			fmt.Sprintf("0d%dh0m", 1+i%4), "H100"))
	})
	burstEnd := time.Now()
	close(burstDone)
	during := <-t4Burst
	waitList(b, c, lbl, "every queued GPR estimated", func(gs []v1alpha1.GPUProvisionRequest) bool {
		return count(gs, func(g *v1alpha1.GPUProvisionRequest) bool {
			return domain.IsQueued(g) && g.Status.EstimatedStartTime != nil
		}) == queued
	})
	settle := time.Since(burstEnd)
	converge := waitConverged(b, c, lbl, burstEnd)
	waitQuiet(b, writes)
	burstWrites := writes() - w0
	delayed := count(listGPRs(b, c, lbl), func(g *v1alpha1.GPUProvisionRequest) bool {
		return domain.IsQueued(g) && g.Status.DelayedCount > 0
	})
	var mem runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mem)

	// The shift: stored estimates before, the urgent GPR, T4 runs during.
	before := storedEstimates(b, c, lbl)
	w1 := testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate"))
	if err := c.Create(ctx, newGPR("bench-"+sfx+"-urgent", ws("t4-", t4Runs), 300, int32(nodes), "1d0h0m", "H100")); err != nil {
		b.Fatal(err)
	}
	var shift []time.Duration
	for run := t4BaseRuns + t4BurstRuns; run < t4Runs; run++ {
		shift = append(shift, t4(run))
	}
	waitQuiet(b, func() float64 { return testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate")) })
	shiftWrites := testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate")) - w1
	moved := movedSince(before, storedEstimates(b, c, lbl), time.Now())

	b.ReportMetric(burstWrites/float64(queued), "burst-writes/GPR")
	b.ReportMetric(float64(delayed)/float64(queued), "burst-delayed/GPR")
	b.ReportMetric(burstEnd.Sub(burstStart).Seconds(), "burst-s")
	b.ReportMetric(settle.Seconds(), "burst-settle-s")
	b.ReportMetric(converge.Seconds(), "burst-converge-s")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(base, 50)), "t4-base-p50-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(during, 50)), "t4-burst-p50-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(during, 99)), "t4-burst-p99-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(shift, 50)), "t4-p50-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(shift, 99)), "t4-p99-ms")
	b.ReportMetric(shiftWrites/float64(max(moved, 1)), "shift-writes/moved")
	b.ReportMetric(float64(moved), "shift-moved")
	b.ReportMetric(float64(mem.HeapAlloc)/(1<<20), "heap-MiB")
}

// burstPace returns what each create of the burst calls first: it waits
// for its turn at perSecond creates a second, or not at all for zero (as
// fast as the apiserver takes them). A paced burst is how users arrive:
// the controller keeps up with admission, and the estimate writer's
// flushes during the burst are what is measured.
func burstPace(perSecond int) func() {
	if perSecond <= 0 {
		return func() {}
	}
	l := flowcontrol.NewTokenBucketRateLimiter(float32(perSecond), 1)
	return l.Accept
}

// burstPriorities draws n priorities from levels levels above the
// holders' 101, with a seeded source so that runs compare.
func burstPriorities(n, levels int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(101 + r.IntN(levels))
	}
	return out
}

// movedSince counts the GPRs whose stored estimate moved beyond the
// tolerance between before and after (GPRs only in after, such as one
// estimated at admission, do not count).
func movedSince(before, after map[string]time.Time, now time.Time) int {
	moved := 0
	for name, t := range after {
		old, ok := before[name]
		if !ok {
			continue
		}
		g := &v1alpha1.GPUProvisionRequest{}
		g.Status.EstimatedStartTime = &metav1.Time{Time: old}
		if domain.EstimateMoved(g, t, true, now) {
			moved++
		}
	}
	return moved
}

// waitConverged waits until every stored estimate of the benchmark's
// queued GPRs is within the tolerance of a plan made from the apiserver's
// objects at that moment (as the API plans on read), and returns the time
// since from. It polls every two seconds: each poll lists every GPR.
func waitConverged(b *testing.B, c client.Client, lbl map[string]string, from time.Time) time.Duration {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		off, err := offEstimates(context.Background(), c, lbl[labelCase])
		if err == nil && off == 0 {
			return time.Since(from)
		}
		if time.Now().After(deadline) {
			b.Fatalf("stored estimates not converged 10 minutes after the burst: %d off (%v)", off, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// offEstimates counts the queued GPRs of a benchmark run whose stored
// estimate a plan made now would rewrite.
func offEstimates(ctx context.Context, c client.Client, run string) (int, error) {
	s, err := snapshot.Reader{Client: c}.Read(ctx)
	if err != nil {
		return 0, err
	}
	now := time.Now().Truncate(time.Second)
	in, _ := s.Input(now, v1alpha1.DefaultCluster)
	plan := planner.Compute(in)
	off := 0
	for _, g := range s.GPRs {
		if g.Labels[labelCase] != run || !domain.IsQueued(g) || domain.NotAdmitted(g) || domain.WaitsOnReason(g) {
			continue
		}
		start, ok := plan.Estimates[g.Name]
		if domain.EstimateMoved(g, start, ok, now) {
			off++
		}
	}
	return off, nil
}

func listGPRs(b *testing.B, c client.Client, lbl map[string]string) []v1alpha1.GPUProvisionRequest {
	b.Helper()
	var l v1alpha1.GPUProvisionRequestList
	if err := c.List(context.Background(), &l, client.MatchingLabels(lbl)); err != nil {
		b.Fatal(err)
	}
	return l.Items
}

func count(gs []v1alpha1.GPUProvisionRequest, f func(*v1alpha1.GPUProvisionRequest) bool) int {
	n := 0
	for i := range gs {
		if f(&gs[i]) {
			n++
		}
	}
	return n
}

// parallel runs f(0..n-1) (benchkit.Parallel) and fails on the first
// error.
func parallel(b *testing.B, n int, f func(int) error) {
	b.Helper()
	if err := benchkit.Parallel(n, f); err != nil {
		b.Fatal(err)
	}
}

func waitList(b *testing.B, c client.Client, lbl map[string]string, what string, ok func([]v1alpha1.GPUProvisionRequest) bool) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var l v1alpha1.GPUProvisionRequestList
		if err := c.List(context.Background(), &l, client.MatchingLabels(lbl)); err == nil && ok(l.Items) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitQuiet waits until a counter stops moving for ten seconds.
func waitQuiet(b *testing.B, v func() float64) {
	b.Helper()
	// 10 s: under load the estimate writer (rate-limited, one write at a
	// time between passes) can pause for more than 2 s, and a shorter
	// window counted only the GPRs written before such a pause.
	last, since := v(), time.Now()
	for time.Since(since) < 10*time.Second {
		time.Sleep(100 * time.Millisecond)
		if cur := v(); cur != last {
			last, since = cur, time.Now()
		}
	}
}

func storedEstimates(b *testing.B, c client.Client, lbl map[string]string) map[string]time.Time {
	b.Helper()
	var l v1alpha1.GPUProvisionRequestList
	if err := c.List(context.Background(), &l, client.MatchingLabels(lbl)); err != nil {
		b.Fatal(err)
	}
	out := map[string]time.Time{}
	for i := range l.Items {
		if t := l.Items[i].Status.EstimatedStartTime; t != nil && domain.IsQueued(&l.Items[i]) {
			out[l.Items[i].Name] = t.Time
		}
	}
	return out
}

func benchCleanup(c client.Client, lbl map[string]string) {
	ctx := context.Background()
	_ = c.DeleteAllOf(ctx, &v1alpha1.GPUProvisionRequest{}, client.MatchingLabels(lbl))
	_ = c.DeleteAllOf(ctx, &v1alpha1.Workspace{}, client.MatchingLabels(lbl))
	_ = env.Kube.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: labelCase + "=" + lbl[labelCase]})
}
