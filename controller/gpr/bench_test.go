package gpr_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
)

// envInt reads a benchmark size from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkQueueShift is the engine's load run against the real
// kube-apiserver: GPUSPACE_BENCH_GPRS queued GPRs (default 10,000) over
// GPUSPACE_BENCH_NODES H100 nodes (default 400) in 100 workspaces, at
// GPUSPACE_BENCH_PRIORITIES distinct priorities (default 1: one FIFO), all
// nodes held for an hour; then a priority-300 GPR for every node, for a
// day, arrives at the head of the queue and shifts every estimate by a
// day, while GPRs for an idle T4 pool are created one after another. It
// reports:
//
//   - burst-writes/GPR: status writes per GPR while the queue is created;
//   - burst-settle-s: from the last create until every GPR has an estimate;
//   - t4-p50-ms, t4-p99-ms: create → Provisioned of the T4 GPRs during the
//     shift, and t4-base-p50-ms before it (the baseline in the same run);
//   - shift-writes/moved: estimate writes of the shift per GPR whose stored
//     estimate moved beyond domain.EstimateTolerance;
//   - heap-MiB: the process's heap with the controllers' caches full.
//
// Run it alone, once:
//
//	make bench BENCH=QueueShift BENCH_FLAGS='-benchtime=1x -timeout=30m'
func BenchmarkQueueShift(b *testing.B) {
	for b.Loop() {
		runQueueShift(b, envInt("GPUSPACE_BENCH_GPRS", 10000), envInt("GPUSPACE_BENCH_NODES", 400))
	}
}

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
	workspaces, t4Runs := min(100, nodes), 24
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

	// The controllers, through the configuration path gpuspace serve uses.
	mcfg := kubeclient.WithLimits(rest.CopyConfig(env.Config), 0, 0)
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

	// Every H100 node held for a day: 100 GPRs of nodes/100 nodes.
	per := int32(max(nodes/workspaces, 1))
	parallel(b, workspaces, func(i int) error {
		return c.Create(ctx, newGPR(fmt.Sprintf("bench-%s-hold-%d", sfx, i), ws("w", i), 101, per, "0d1h0m", "H100"))
	})
	waitList(b, c, lbl, "holders provisioned", func(gs []v1alpha1.GPUProvisionRequest) bool {
		return count(gs, func(g *v1alpha1.GPUProvisionRequest) bool { return domain.IsProvisioned(g) }) == workspaces
	})

	// The burst: queued GPRs, each for nodes/100 nodes, 1-4 h.
	writes := func() float64 {
		return testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("decision")) + testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate"))
	}
	w0 := writes()
	prios := envInt("GPUSPACE_BENCH_PRIORITIES", 1)
	parallel(b, queued, func(i int) error {
		return c.Create(ctx, newGPR(fmt.Sprintf("bench-%s-q-%d", sfx, i), ws("w", i%workspaces), int32(101+i%prios), per,
			fmt.Sprintf("0d%dh0m", 1+i%4), "H100"))
	})
	burstEnd := time.Now()
	waitList(b, c, lbl, "every queued GPR estimated", func(gs []v1alpha1.GPUProvisionRequest) bool {
		return count(gs, func(g *v1alpha1.GPUProvisionRequest) bool {
			return domain.IsQueued(g) && g.Status.EstimatedStartTime != nil
		}) == queued
	})
	settle := time.Since(burstEnd)
	waitQuiet(b, writes)
	burstWrites := writes() - w0
	var mem runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mem)

	// Baseline: T4 GPRs on the idle pool, one after another.
	t4 := func(run int) time.Duration {
		id := fmt.Sprintf("bench-%s-t4-%d", sfx, run)
		start := time.Now()
		if err := c.Create(ctx, newGPR(id, ws("t4-", run), 101, 1, "0d0h1m", "T4")); err != nil {
			b.Fatal(err)
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
	for run := range 4 {
		base = append(base, t4(run))
	}

	// The shift: stored estimates before, the urgent GPR, T4 runs during.
	before := storedEstimates(b, c, lbl)
	w1 := testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate"))
	if err := c.Create(ctx, newGPR("bench-"+sfx+"-urgent", ws("t4-", t4Runs), 300, int32(nodes), "1d0h0m", "H100")); err != nil {
		b.Fatal(err)
	}
	var during []time.Duration
	for run := 4; run < t4Runs; run++ {
		during = append(during, t4(run))
	}
	waitQuiet(b, func() float64 { return testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate")) })
	shiftWrites := testutil.ToFloat64(metrics.StatusWrites.WithLabelValues("estimate")) - w1
	after := storedEstimates(b, c, lbl)
	now := time.Now()
	moved := 0
	for name, t := range after {
		old, ok := before[name]
		if !ok {
			continue // the urgent GPR: estimated at admission
		}
		g := &v1alpha1.GPUProvisionRequest{}
		g.Status.EstimatedStartTime = &metav1.Time{Time: old}
		if domain.EstimateMoved(g, t, true, now) {
			moved++
		}
	}

	b.ReportMetric(burstWrites/float64(queued), "burst-writes/GPR")
	b.ReportMetric(settle.Seconds(), "burst-settle-s")
	b.ReportMetric(ms(percentile(base, 50)), "t4-base-p50-ms")
	b.ReportMetric(ms(percentile(during, 50)), "t4-p50-ms")
	b.ReportMetric(ms(percentile(during, 99)), "t4-p99-ms")
	b.ReportMetric(shiftWrites/float64(max(moved, 1)), "shift-writes/moved")
	b.ReportMetric(float64(moved), "shift-moved")
	b.ReportMetric(float64(mem.HeapAlloc)/(1<<20), "heap-MiB")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
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

// parallel runs f(0..n-1) on 16 goroutines and fails on the first error.
func parallel(b *testing.B, n int, f func(int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
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
