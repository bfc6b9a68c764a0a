package clusters_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
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
)

// BenchmarkDispatch is the hub → worker dispatch rate: GPUSPACE_BENCH_DISPATCH_GPRS
// GPRs (default 600; the size is 3,000), half for each of two
// registered worker clusters (real control planes with a simulated node
// per GPR), each GPR in a workspace of its own so that every one can
// start at once. The hub runs the controllers, the registry and the API
// as server.Run wires them, with each worker's client at
// GPUSPACE_BENCH_WORKER_QPS / GPUSPACE_BENCH_WORKER_BURST (default
// clusters.DefaultWorkerQPS / DefaultWorkerBurst; 5 / 10 is client-go's
// default, the baseline). The GPRs are created as fast as the benchmark's
// client can; a watch on each worker times, per GPR:
//
//   - projected: from its create on the hub to its projection existing in
//     its worker (what the worker's scheduler plugin reads);
//   - provisioned: from its create to its projection showing it
//     Provisioned on its nodes (the worker's pods may now run).
//
// It reports the p50 and p99 of each, and the rates per worker: GPRs
// projected (provisioned) per second from the first create to the last
// projection (provisioning) in that worker, the slower worker's.
//
// Run it alone, once:
//
//	make bench BENCH=Dispatch BENCH_FLAGS='-benchtime=1x -timeout=20m'
//	GPUSPACE_BENCH_DISPATCH_GPRS=3000 make bench BENCH=Dispatch BENCH_FLAGS='-benchtime=1x -timeout=30m'
func BenchmarkDispatch(b *testing.B) {
	qps, burst := benchkit.EnvInt("GPUSPACE_BENCH_WORKER_QPS", 0), benchkit.EnvInt("GPUSPACE_BENCH_WORKER_BURST", 0)
	for b.Loop() {
		runDispatch(b, benchkit.EnvInt("GPUSPACE_BENCH_DISPATCH_GPRS", 600), clusters.Options{QPS: float32(qps), Burst: burst})
	}
}

func runDispatch(b *testing.B, gprs int, ro clusters.Options) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ensureNamespaceB(b, ctx)
	sfx := strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	names := []string{"dispatch-" + sfx + "-b", "dispatch-" + sfx + "-c"}
	per := gprs / len(names)
	fast := func(cfg *rest.Config) *rest.Config {
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = 2000, 4000
		return cfg
	}

	// The workers: a node per GPR, registered on the hub.
	workers := map[string]*testenv.Env{}
	for _, name := range names {
		env, err := testenv.Start(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = env.Stop() })
		workers[name] = env
		cs, err := kubernetes.NewForConfig(fast(env.Config))
		if err != nil {
			b.Fatal(err)
		}
		sim := nodesim.New(cs, nodesim.WithHeartbeat(time.Hour))
		parallel(b, per, func(i int) error {
			_, err := sim.AddNode(ctx, nodesim.Node{Name: fmt.Sprintf("%s-n%d", name, i), Cluster: name,
				Product: "NVIDIA-L4", MemoryMiB: 23034, GPUs: 1, InstanceType: "bench-1x", NoIdleSignal: true})
			return err
		})
		kc, err := provision.Credential(ctx, env.Config, 3600)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := provision.Register(ctx, hub.Client, provision.RegisterOptions{Name: name, Kubeconfig: kc, Namespace: ns}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = provision.Unregister(context.Background(), hub.Client, ns, name, true) })
	}
	if b.Failed() {
		b.FailNow()
	}

	// The hub, and a workspace per GPR on its worker, reconciled before
	// the clock starts.
	hc, err := client.New(fast(hub.Config), client.Options{Scheme: hub.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	h := startHub(b, ctx, controller.Options{}, ro)
	lbl := map[string]string{"gpuspace.io/bench": "dispatch-" + sfx}
	wsName := func(i int) string { return fmt.Sprintf("dispatch-%s-%d", sfx, i) }
	parallel(b, per*len(names), func(i int) error {
		return hc.Create(ctx, &v1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: wsName(i), Labels: lbl},
			Spec: v1alpha1.WorkspaceSpec{Username: "bench", Clusters: []string{names[i%len(names)]},
				Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: wsName(i)}}},
		})
	})
	b.Cleanup(func() {
		_ = hub.Client.DeleteAllOf(context.Background(), &v1alpha1.GPUProvisionRequest{}, client.MatchingLabels(lbl))
		_ = hub.Client.DeleteAllOf(context.Background(), &v1alpha1.Workspace{}, client.MatchingLabels(lbl))
	})
	waitWorkspacesReady(b, ctx, hc, lbl, per*len(names))
	for _, name := range names {
		for {
			nodes, err := h.reg.Nodes(ctx)
			if err == nil && countCluster(nodes, name) == per {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The watches on the workers, then the burst of creates.
	times := newDispatchTimes()
	for _, name := range names {
		wc, err := client.NewWithWatch(fast(workers[name].Config), client.Options{Scheme: hub.Client.Scheme()})
		if err != nil {
			b.Fatal(err)
		}
		w, err := wc.Watch(ctx, &v1alpha1.GPUProvisionRequestList{})
		if err != nil {
			b.Fatal(err)
		}
		go times.watch(w)
	}
	hw, err := client.NewWithWatch(fast(hub.Config), client.Options{Scheme: hub.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := hw.Watch(ctx, &v1alpha1.GPUProvisionRequestList{}, client.MatchingLabels(lbl))
	if err != nil {
		b.Fatal(err)
	}
	go times.watchHub(w)
	start := time.Now()
	parallel(b, per*len(names), func(i int) error {
		g := &v1alpha1.GPUProvisionRequest{
			ObjectMeta: metav1.ObjectMeta{Name: wsName(i), Labels: lbl},
			Spec: v1alpha1.GPUProvisionRequestSpec{GPRName: "bench", Workspace: wsName(i), ClusterName: names[i%len(names)],
				NumberOfGPUs: 1, NumberOfGPUNodes: 1, GPUShape: "L4", ExitDuration: "0d1h0m", Priority: 101},
		}
		if err := hc.Create(ctx, g); err != nil {
			return err
		}
		times.created(g.Name, names[i%len(names)])
		return nil
	})
	created := time.Since(start)
	deadline := time.Now().Add(10 * time.Minute)
	for !times.allProvisioned(per * len(names)) {
		if time.Now().After(deadline) {
			b.Fatalf("after 10 minutes: %s", times.summary())
		}
		time.Sleep(100 * time.Millisecond)
	}

	proj, prov, adm, hubProv := times.latencies()
	b.ReportMetric(benchkit.MS(benchkit.Percentile(adm, 50)), "hub-queued-p50-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(hubProv, 50)), "hub-provisioned-p50-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(hubProv, 99)), "hub-provisioned-p99-ms")
	b.ReportMetric(created.Seconds(), "create-s")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(proj, 50)), "projected-p50-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(proj, 99)), "projected-p99-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(prov, 50)), "provisioned-p50-ms")
	b.ReportMetric(benchkit.MS(benchkit.Percentile(prov, 99)), "provisioned-p99-ms")
	projRate, provRate := times.rates(start, names)
	b.ReportMetric(projRate, "projected/s/worker")
	b.ReportMetric(provRate, "provisioned/s/worker")
}

// dispatchTimes records, per GPR, when it was created on the hub and when
// its worker showed it projected and provisioned.
type dispatchTimes struct {
	mu                             sync.Mutex
	cluster                        map[string]string
	create, projected, provisioned map[string]time.Time
	// hubQueued and hubProvisioned are when the hub's GPR was admitted
	// and started: the hub's share of the dispatch.
	hubQueued, hubProvisioned map[string]time.Time
}

func newDispatchTimes() *dispatchTimes {
	return &dispatchTimes{cluster: map[string]string{}, create: map[string]time.Time{},
		projected: map[string]time.Time{}, provisioned: map[string]time.Time{},
		hubQueued: map[string]time.Time{}, hubProvisioned: map[string]time.Time{}}
}

func (d *dispatchTimes) created(name, cluster string) {
	now := time.Now()
	d.mu.Lock()
	d.create[name], d.cluster[name] = now, cluster
	d.mu.Unlock()
}

// watch records the projections of one worker as its watch shows them.
// The watch may report a projection before its create returned on the
// hub: latencies count from the create's return, so they err short by at
// most the create's own round trip.
func (d *dispatchTimes) watch(w watch.Interface) {
	benchkit.EachGPR(w, func(g *v1alpha1.GPUProvisionRequest, typ watch.EventType, now time.Time) {
		if typ != watch.Added && typ != watch.Modified {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, ok := d.projected[g.Name]; !ok {
			d.projected[g.Name] = now
		}
		if _, ok := d.provisioned[g.Name]; !ok && g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned && len(g.Status.Nodes) > 0 {
			d.provisioned[g.Name] = now
		}
	})
}

// watchHub records when the hub's GPRs were admitted and started.
func (d *dispatchTimes) watchHub(w watch.Interface) {
	benchkit.EachGPR(w, func(g *v1alpha1.GPUProvisionRequest, _ watch.EventType, now time.Time) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, ok := d.hubQueued[g.Name]; !ok && g.Status.ProvisioningStatus != "" {
			d.hubQueued[g.Name] = now
		}
		if _, ok := d.hubProvisioned[g.Name]; !ok && g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned {
			d.hubProvisioned[g.Name] = now
		}
	})
}

func (d *dispatchTimes) allProvisioned(n int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.provisioned) >= n && len(d.create) >= n
}

func (d *dispatchTimes) summary() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("%d created, %d projected, %d provisioned", len(d.create), len(d.projected), len(d.provisioned))
}

// latencies are, for every GPR, create → projected and → provisioned in
// its worker, and → admitted and → started on the hub.
func (d *dispatchTimes) latencies() (proj, prov, adm, hubProv []time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, c := range d.create {
		proj = append(proj, max(d.projected[name].Sub(c), 0))
		prov = append(prov, max(d.provisioned[name].Sub(c), 0))
		adm = append(adm, max(d.hubQueued[name].Sub(c), 0))
		hubProv = append(hubProv, max(d.hubProvisioned[name].Sub(c), 0))
	}
	return proj, prov, adm, hubProv
}

// rates are the slower worker's GPRs projected and provisioned per
// second, from start to its last.
func (d *dispatchTimes) rates(start time.Time, clusters []string) (proj, prov float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	proj, prov = -1, -1
	for _, c := range clusters {
		var n int
		var lastProj, lastProv time.Time
		for name, cl := range d.cluster {
			if cl != c {
				continue
			}
			n++
			lastProj = later(lastProj, d.projected[name])
			lastProv = later(lastProv, d.provisioned[name])
		}
		pj, pv := float64(n)/lastProj.Sub(start).Seconds(), float64(n)/lastProv.Sub(start).Seconds()
		if proj < 0 || pj < proj {
			proj = pj
		}
		if prov < 0 || pv < prov {
			prov = pv
		}
	}
	return proj, prov
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func waitWorkspacesReady(b *testing.B, ctx context.Context, c client.Client, lbl map[string]string, n int) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var l v1alpha1.WorkspaceList
		ready := 0
		if err := c.List(ctx, &l, client.MatchingLabels(lbl)); err == nil {
			for i := range l.Items {
				if meta.IsStatusConditionTrue(l.Items[i].Status.Conditions, v1alpha1.WorkspaceReady) {
					ready++
				}
			}
		}
		if ready == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d workspaces Ready after 10 minutes", ready, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func countCluster(nodes []*corev1.Node, cluster string) int {
	n := 0
	for _, nd := range nodes {
		if nd.Labels[v1alpha1.LabelCluster] == cluster {
			n++
		}
	}
	return n
}
