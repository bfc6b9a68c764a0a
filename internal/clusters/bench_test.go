package clusters_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/clusters"
	"github.com/gpuspace/gpuspace/internal/clusters/provision"
	"github.com/gpuspace/gpuspace/internal/dev/benchkit"
	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// BenchmarkMultiCluster is the hub at scale: its own cluster and two
// registered worker clusters (real control planes) of
// GPUSPACE_BENCH_CLUSTER_NODES simulated nodes each (default 1,000: 3 ×
// 1,000), with the controllers and the API running over the registry. It
// reports:
//
//   - hub-heap-MiB: the heap the hub's caches of the three clusters and
//     the API add, measured after they synced (after GC, against the heap
//     before the hub started);
//   - cache-ms: from a worker node's change (its allocatable GPUs) being
//     written to the hub's cache of that worker showing it;
//   - ready-to-start-ms: from a worker node turning Ready (the only node
//     of its shape) to the GPR queued for it being Provisioned: the
//     registry's event, a plan pass over every cluster's nodes and the
//     status write;
//   - notready-to-status-ms: from a bound worker node turning NotReady
//     to its GPR's NodesHealthy saying so;
//   - plan-ms and nodes-ms: one planner.Compute over the inventory of the
//     three clusters (and the GPRs), and one Registry.Nodes (the workers'
//     nodes copied from their caches), CPU-bound, in-process;
//   - event-cpu-ms: process CPU time per worker node event (a node's Ready
//     flipping every 200 ms): the informer, the registry's event and the
//     plan pass over every cluster's nodes it triggers.
//
// Run it alone, once:
//
//	make bench BENCH=MultiCluster BENCH_FLAGS='-benchtime=1x -timeout=20m'
func BenchmarkMultiCluster(b *testing.B) {
	for b.Loop() {
		runMultiCluster(b, benchkit.EnvInt("GPUSPACE_BENCH_CLUSTER_NODES", 1000))
	}
}

func runMultiCluster(b *testing.B, perCluster int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ensureNamespaceB(b, ctx)
	sfx := strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	names := []string{"bench-" + sfx + "-b", "bench-" + sfx + "-c"}
	shapes := []struct {
		product string
		mib     int64
	}{{"NVIDIA-H100-80GB-HBM3", 81559}, {"NVIDIA-A100-SXM4-40GB", 40960}, {"NVIDIA-L4", 23034}, {"Tesla-T4", 15360}}

	// The clusters and their nodes: the hub's own and two workers.
	t0 := time.Now()
	envs := map[string]*testenv.Env{v1alpha1.DefaultCluster: hub}
	for _, name := range names {
		env, err := testenv.Start(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = env.Stop() })
		envs[name] = env
	}
	var sims sync.Map
	var wg sync.WaitGroup
	for cname, env := range envs {
		cfg := rest.CopyConfig(env.Config)
		cfg.QPS, cfg.Burst = 2000, 4000
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		// No Run: no heartbeats, the nodes stay as created.
		sim := nodesim.New(cs, nodesim.WithHeartbeat(time.Hour))
		sims.Store(cname, sim)
		wg.Go(func() {
			parallel(b, perCluster, func(i int) error {
				s := shapes[i%len(shapes)]
				_, err := sim.AddNode(ctx, nodesim.Node{Name: fmt.Sprintf("%s-n%d", nodePrefix(cname, sfx), i), Cluster: cname,
					Product: s.product, MemoryMiB: s.mib, GPUs: 8, InstanceType: "bench-8x", NoIdleSignal: true})
				return err
			})
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	for _, name := range names {
		kc, err := provision.Credential(ctx, envs[name].Config, 3600)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: name, Kubeconfig: kc, Namespace: ns}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = provision.Unregister(context.Background(), hub.Client, ns, name, true) })
	}
	b.Logf("3 clusters × %d nodes made in %s", perCluster, time.Since(t0).Round(time.Millisecond))

	// The hub: controllers, registry and API, as server.Run wires them.
	heapBefore := heapMiB()
	h := startHub(b, ctx, controller.Options{}, clusters.Options{QPS: 500, Burst: 1000})
	reg, api, mgr := h.reg, h.api, h.mgr
	t1 := time.Now()
	for {
		workers, err := reg.Nodes(ctx)
		if err == nil && countPrefixed(workers, sfx) == 2*perCluster && api.Ready() {
			break
		}
		if time.Since(t1) > 5*time.Minute {
			b.Fatalf("workers' nodes in the hub's caches: %d of %d after 5 minutes", countPrefixed(workers, sfx), 2*perCluster)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Logf("hub caches synced %s after start", time.Since(t1).Round(time.Millisecond))
	b.ReportMetric(heapMiB()-heapBefore, "hub-heap-MiB")

	// A worker node's change reaching the hub's cache of it.
	last := names[1]
	wc, _ := reg.Client(last)
	var cacheMS []float64
	for i := range 5 {
		name := fmt.Sprintf("%s-n%d", nodePrefix(last, sfx), i)
		n, err := envs[last].Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		gpus := "8"
		if q := n.Status.Allocatable[v1alpha1.ResourceGPU]; q.String() == "8" {
			gpus = "6"
		}
		n.Status.Allocatable[v1alpha1.ResourceGPU] = resource.MustParse(gpus)
		start := time.Now()
		if _, err := envs[last].Kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		for {
			var got corev1.Node
			if err := wc.Get(ctx, client.ObjectKey{Name: name}, &got); err == nil {
				if q := got.Status.Allocatable[v1alpha1.ResourceGPU]; q.String() == gpus {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		cacheMS = append(cacheMS, ms(time.Since(start)))
	}
	b.ReportMetric(median(cacheMS), "cache-ms")

	// A worker node turning Ready → the GPR waiting for it provisioned;
	// a bound worker node turning NotReady → its GPR's NodesHealthy.
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "bench-" + sfx}, Spec: v1alpha1.WorkspaceSpec{
		Username: "bench", Clusters: []string{v1alpha1.DefaultCluster, names[0], names[1]},
		Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: "bench-" + sfx}},
	}}
	if err := hub.Client.Create(ctx, ws); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = hub.Client.Delete(context.Background(), ws) })
	simV, _ := sims.Load(last)
	sim := simV.(*nodesim.Simulator)
	var startMS, healthMS []float64
	for i := range 3 {
		node := fmt.Sprintf("%s-x%d", nodePrefix(last, sfx), i)
		if _, err := sim.AddNode(ctx, nodesim.Node{Name: node, Cluster: last, Product: "NVIDIA-B200", MemoryMiB: 183359, GPUs: 8,
			InstanceType: "bench-b200", NoIdleSignal: true}); err != nil {
			b.Fatal(err)
		}
		if err := sim.SetReady(ctx, node, false); err != nil {
			b.Fatal(err)
		}
		g := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%s-%d", sfx, i)}, Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: "bench", Workspace: ws.Name, ClusterName: last, NumberOfGPUs: 8, NumberOfGPUNodes: 1,
			GPUShape: "B200", ExitDuration: "0d1h0m", Priority: 101,
		}}
		if err := hub.Client.Create(ctx, g); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = hub.Client.Delete(context.Background(), g) })
		waitGPRB(b, ctx, g.Name, "queued", func(g *v1alpha1.GPUProvisionRequest) bool {
			return domain.IsQueued(g) && g.Status.ProvisioningStatus != ""
		})
		start := time.Now()
		if err := sim.SetReady(ctx, node, true); err != nil {
			b.Fatal(err)
		}
		waitGPRB(b, ctx, g.Name, "provisioned", domain.IsProvisioned)
		startMS = append(startMS, ms(time.Since(start)))

		start = time.Now()
		if err := sim.SetReady(ctx, node, false); err != nil {
			b.Fatal(err)
		}
		waitGPRB(b, ctx, g.Name, "NodesHealthy False", func(g *v1alpha1.GPUProvisionRequest) bool {
			c := meta.FindStatusCondition(g.Status.Conditions, v1alpha1.GPRNodesHealthy)
			return c != nil && c.Status == metav1.ConditionFalse
		})
		healthMS = append(healthMS, ms(time.Since(start)))
		// Done with it: the next round's GPR is the workspace's only one.
		if err := hub.Client.Delete(ctx, g); err != nil {
			b.Fatal(err)
		}
		waitGoneB(b, ctx, g.Name)
	}
	b.ReportMetric(median(startMS), "ready-to-start-ms")
	b.ReportMetric(median(healthMS), "notready-to-status-ms")

	// The plan's CPU: the planner over the three clusters' inventory and
	// the registry's copy of the workers' nodes.
	var hubNodes corev1.NodeList
	if err := mgr.GetClient().List(ctx, &hubNodes); err != nil {
		b.Fatal(err)
	}
	var gl v1alpha1.GPUProvisionRequestList
	if err := mgr.GetClient().List(ctx, &gl); err != nil {
		b.Fatal(err)
	}
	gprs := make([]*v1alpha1.GPUProvisionRequest, len(gl.Items))
	for i := range gl.Items {
		gprs[i] = &gl.Items[i]
	}
	const rounds = 20
	t2 := time.Now()
	var nodes []*corev1.Node
	for range rounds {
		workers, err := reg.Nodes(ctx)
		if err != nil {
			b.Fatal(err)
		}
		nodes = workers
	}
	b.ReportMetric(ms(time.Since(t2))/rounds, "nodes-ms")
	for i := range hubNodes.Items {
		nodes = append(nodes, &hubNodes.Items[i])
	}
	// A busy hub: a third of the nodes held, a queued GPR for every
	// other node (in memory: the planner's input, not the controller's).
	gprs = append(gprs, syntheticGPRs(nodes, time.Now())...)
	t3 := time.Now()
	for range rounds {
		in, _ := planner.InputOf(time.Now(), gprs, nodes, v1alpha1.DefaultCluster)
		planner.Compute(in)
	}
	b.ReportMetric(ms(time.Since(t3))/rounds, "plan-ms")
	b.Logf("planned over %d nodes and %d GPRs", len(nodes), len(gprs))

	// The CPU a worker node event costs the hub: the node's Ready flips
	// (each a worker node event the GPR controller plans on), CPU time of
	// the whole process per event: informers, the registry's event, the
	// plan pass over every cluster's nodes, the API's plan view.
	cpu0, t4 := cpuTime(), time.Now()
	const passes = 20
	for i := range passes {
		// The node's Ready flips: each is a worker node event the
		// controller plans on.
		if err := sim.SetReady(ctx, fmt.Sprintf("%s-x%d", nodePrefix(last, sfx), 0), i%2 == 1); err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(t4)
	b.ReportMetric(ms(cpuTime()-cpu0)/passes, "event-cpu-ms")
	b.Logf("%d worker node events in %s", passes, elapsed.Round(time.Millisecond))
}

// syntheticGPRs are GPRs for planning over nodes at now: one provisioned
// on every third node (for an hour from half an hour ago) and one queued
// for a node of every other node's cluster and shape, each in a workspace
// of its own.
func syntheticGPRs(nodes []*corev1.Node, now time.Time) []*v1alpha1.GPUProvisionRequest {
	var out []*v1alpha1.GPUProvisionRequest
	for i, n := range nodes {
		shape, c := n.Labels[v1alpha1.LabelGPUShape], n.Labels[v1alpha1.LabelCluster]
		if shape == "" || c == "" {
			continue
		}
		g := &v1alpha1.GPUProvisionRequest{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("syn-%d", i), CreationTimestamp: metav1.NewTime(now.Add(-time.Hour + time.Duration(i)*time.Millisecond))},
			Spec: v1alpha1.GPUProvisionRequestSpec{
				GPRName: "syn", Workspace: fmt.Sprintf("syn-ws-%d", i), ClusterName: c, NumberOfGPUs: 8, NumberOfGPUNodes: 1,
				GPUShape: shape, ExitDuration: "0d1h0m", Priority: int32(100 + i%3*50),
			},
		}
		switch i % 3 {
		case 0:
			domain.Start(g, []string{n.Name}, now.Add(-30*time.Minute))
		case 1:
			domain.Admit(g)
		default:
			continue
		}
		out = append(out, g)
	}
	return out
}

// nodePrefix names a cluster's bench nodes (unique across clusters: node
// names must be).
func nodePrefix(cluster, sfx string) string {
	if cluster == v1alpha1.DefaultCluster {
		return "bench-" + sfx + "-a"
	}
	return cluster
}

// countPrefixed counts the nodes of the benchmark's worker clusters.
func countPrefixed(nodes []*corev1.Node, sfx string) int {
	n := 0
	for _, nd := range nodes {
		if c := nd.Labels[v1alpha1.LabelCluster]; c == "bench-"+sfx+"-b" || c == "bench-"+sfx+"-c" {
			n++
		}
	}
	return n
}

func waitGPRB(b *testing.B, ctx context.Context, name, what string, cond func(*v1alpha1.GPUProvisionRequest) bool) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var g v1alpha1.GPUProvisionRequest
		if err := hub.Client.Get(ctx, client.ObjectKey{Name: name}, &g); err == nil && cond(&g) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("GPR %s not %s after 2 minutes", name, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitGoneB(b *testing.B, ctx context.Context, name string) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var g v1alpha1.GPUProvisionRequest
		if err := hub.Client.Get(ctx, client.ObjectKey{Name: name}, &g); client.IgnoreNotFound(err) == nil && err != nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("GPR %s not gone after a minute", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ensureNamespaceB(b *testing.B, ctx context.Context) {
	b.Helper()
	err := hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
}

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return benchkit.MS(d) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// parallel runs f(0..n-1) (benchkit.Parallel) and fails on the first
// error.
func parallel(b *testing.B, n int, f func(int) error) {
	if err := benchkit.Parallel(n, f); err != nil {
		b.Error(err) // may run off the benchmark's goroutine: the caller stops
	}
}
