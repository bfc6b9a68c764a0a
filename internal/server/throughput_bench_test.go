package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/controller/gpr"
	"github.com/gpuspace/gpuspace/internal/dev/benchkit"
	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
	"github.com/gpuspace/gpuspace/internal/server"
)

// BenchmarkThroughput is the throughput gate in the shape of Kueue's CI
// performance test (about 15,000 workloads over 640 nodes × 8 GPUs in 30
// queues, ~43 admissions/s): GPUSPACE_BENCH_TP_GPRS GPRs (default 1,500;
// the gate is 15,000) from 30 workspaces over GPUSPACE_BENCH_TP_NODES
// simulated nodes of 8 GPUs (default 64; the gate is 640), created at
// once, through server.Run — the wiring of `gpuspace serve`, with its
// client limits (GPUSPACE_BENCH_KUBE_API_QPS / _BURST set
// --kube-api-qps / --kube-api-burst; default serve's) — on the real
// kube-apiserver. Each GPR asks for one node of 8 GPUs. A GPR holds its
// node until its user releases it (spec.earlyRelease, as a job that
// finished): the benchmark does so as soon as it sees the GPR
// provisioned, so the pool turns over as fast as gpuspace can start and
// release (exitDuration is whole minutes; one GPR per workspace runs at
// a time, so 30 run at once). It reports:
//
//   - admitted/s: GPRs marked Queued (validated, estimated) per second,
//     sustained (over the middle 80 % of them);
//   - started/s: GPRs Provisioned per second, sustained likewise — what
//     Kueue calls an admission (quota reserved, the workload may start);
//   - drain-s: from the first create until every GPR is Complete;
//   - gpuspace-cpu-s, apiserver-cpu-s, etcd-cpu-s: CPU time over the
//     drain of this process (the controllers, the API, the benchmark's
//     own clients) and of the kube-apiserver and etcd, to see which of
//     them is the ceiling on the machine's cores;
//   - passes, pass-busy: the GPR controller's passes over the drain, and
//     the share of the drain a pass was running (passes are serial);
//   - <resource>-writes/GPR: the kube-apiserver's writes per GPR by
//     resource (GPRs less the benchmark's own create and release, nodes,
//     events, pods).
//
// With -cpuprofile the profile shows where this process's time goes.
//
//	make bench BENCH=Throughput BENCH_FLAGS='-benchtime=1x -timeout=20m'
//	GPUSPACE_BENCH_TP_GPRS=15000 GPUSPACE_BENCH_TP_NODES=640 go test ./internal/server -run '^$' -bench Throughput -benchtime=1x -timeout=60m -cpuprofile /tmp/tp.cpu
func BenchmarkThroughput(b *testing.B) {
	o := server.Options{KubeAPIQPS: float32(benchkit.EnvInt("GPUSPACE_BENCH_KUBE_API_QPS", 0)), KubeAPIBurst: benchkit.EnvInt("GPUSPACE_BENCH_KUBE_API_BURST", 0)}
	for b.Loop() {
		runThroughput(b, benchkit.EnvInt("GPUSPACE_BENCH_TP_GPRS", 1500), benchkit.EnvInt("GPUSPACE_BENCH_TP_NODES", 64), o)
	}
}

// tpWorkspaces is Kueue's 30 queues.
const tpWorkspaces = 30

func runThroughput(b *testing.B, gprs, nodes int, o server.Options) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sfx := strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	cluster := "tp-" + sfx
	lbl := map[string]string{"gpuspace.io/bench": "tp-" + sfx}
	// The benchmark's own clients, fast enough not to be the bottleneck.
	fast := rest.CopyConfig(env.Config)
	fast.QPS, fast.Burst = 5000, 10000
	c, err := client.NewWithWatch(fast, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(fast)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		bg := context.Background()
		_ = c.DeleteAllOf(bg, &v1alpha1.GPUProvisionRequest{}, client.MatchingLabels(lbl))
		_ = c.DeleteAllOf(bg, &v1alpha1.Workspace{}, client.MatchingLabels(lbl))
		_ = cs.CoreV1().Nodes().DeleteCollection(bg, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: v1alpha1.LabelCluster + "=" + cluster})
	})

	sim := nodesim.New(cs, nodesim.WithHeartbeat(time.Hour))
	parallel(b, nodes, func(i int) error {
		_, err := sim.AddNode(ctx, nodesim.Node{Name: fmt.Sprintf("tp-%s-n%d", sfx, i), Cluster: cluster,
			Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8, InstanceType: "p5.48xlarge", NoIdleSignal: true})
		return err
	})
	ws := func(i int) string { return fmt.Sprintf("tp-%s-w%d", sfx, i) }
	parallel(b, tpWorkspaces, func(i int) error {
		return c.Create(ctx, &v1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: ws(i), Labels: lbl},
			Spec: v1alpha1.WorkspaceSpec{Username: "bench", Clusters: []string{cluster},
				Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: ws(i)}}},
		})
	})

	// gpuspace serve, as its flags build it.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tp-" + sfx}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), "tp-"+sfx, metav1.DeleteOptions{}) })
	o.RESTConfig, o.Listen, o.Namespace = env.Config, "127.0.0.1:0", "tp-"+sfx
	o.Logger, o.SkipControllerNameValidation = zap.NewNop(), true
	ready := make(chan struct{})
	o.OnReady = func(string, *apiserver.Server) { close(ready) }
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, o) }()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("server stopped: %v", err)
	case <-time.After(time.Minute):
		b.Fatal("server not ready after a minute")
	}

	// The users: a watch that releases every GPR once it is provisioned,
	// and records when each was admitted, started and completed.
	rec := newTPTimes()
	release := make(chan string, gprs)
	go rec.watch(ctx, c, lbl, release)
	for range 8 {
		go func() {
			for name := range release {
				patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"earlyRelease":true}}`))
				g := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: name}}
				if err := c.Patch(ctx, g, patch); err != nil && ctx.Err() == nil {
					b.Errorf("release %s: %v", name, err)
				}
			}
		}()
	}

	cpu0, pass0, req0 := cpuTimes(), passTime(b), writeCounts(b)
	start := time.Now()
	parallel(b, gprs, func(i int) error {
		return c.Create(ctx, &v1alpha1.GPUProvisionRequest{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("tp-%s-%d", sfx, i), Labels: lbl},
			Spec: v1alpha1.GPUProvisionRequestSpec{GPRName: "tp", Workspace: ws(i % tpWorkspaces), ClusterName: cluster,
				NumberOfGPUs: 8, NumberOfGPUNodes: 1, GPUShape: "H100", ExitDuration: "0d0h1m", Priority: int32(101 + i%3)},
		})
	})
	b.Logf("%d GPRs created in %s", gprs, time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(time.Duration(gprs/10+300) * time.Second)
	for rec.count(func(t *tpTime) bool { return !t.completed.IsZero() }) < gprs {
		if time.Now().After(deadline) {
			b.Fatalf("not drained in time: %s", rec.summary())
		}
		time.Sleep(100 * time.Millisecond)
	}
	drain := time.Since(start)
	cpu1, pass1, req1 := cpuTimes(), passTime(b), writeCounts(b)
	close(release)

	b.ReportMetric(rec.sustained(func(t *tpTime) time.Time { return t.admitted }), "admitted/s")
	b.ReportMetric(rec.sustained(func(t *tpTime) time.Time { return t.started }), "started/s")
	b.ReportMetric(drain.Seconds(), "drain-s")
	for _, p := range []string{"gpuspace", "kube-apiserver", "etcd"} {
		b.ReportMetric((cpu1[p] - cpu0[p]).Seconds(), strings.TrimPrefix(p, "kube-")+"-cpu-s")
	}
	// The GPR controller's passes: how many, and the share of the drain
	// one was running (passes are serial: near 1 means the pass loop is
	// the bottleneck).
	b.ReportMetric(pass1.count-pass0.count, "passes")
	b.ReportMetric((pass1.sum-pass0.sum)/drain.Seconds(), "pass-busy")
	// Writes the kube-apiserver served per GPR, by resource, less the
	// benchmark's own create and release of each GPR.
	for _, res := range []string{"gpuprovisionrequests", "nodes", "events", "pods"} {
		n := req1[res] - req0[res]
		if res == "gpuprovisionrequests" {
			n -= 2 * float64(gprs)
		}
		b.ReportMetric(n/float64(gprs), res+"-writes/GPR")
	}
}

// passStats are the GPR controller's reconciles so far: how many, and
// their total seconds.
type passStats struct{ count, sum float64 }

// passTime reads the GPR controller's reconcile time histogram from the
// process's controller-runtime metrics.
func passTime(b *testing.B) passStats {
	b.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_time_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == gpr.ControllerName {
					return passStats{count: float64(m.GetHistogram().GetSampleCount()), sum: m.GetHistogram().GetSampleSum()}
				}
			}
		}
	}
	return passStats{}
}

// writeCounts are the kube-apiserver's mutating requests so far by
// resource, from its apiserver_request_total counter.
func writeCounts(b *testing.B) map[string]float64 {
	b.Helper()
	raw, err := env.Kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		verb, res := metricLabel(line, "verb"), metricLabel(line, "resource")
		if verb != "POST" && verb != "PUT" && verb != "PATCH" && verb != "DELETE" {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			out[res] += v
		}
	}
	return out
}

// metricLabel is the value of label name in a Prometheus text line.
func metricLabel(line, name string) string {
	i := strings.Index(line, name+`="`)
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

// tpTime is one GPR's life as the benchmark's watch saw it.
type tpTime struct{ admitted, started, completed time.Time }

// tpTimes are the GPRs' tpTime by name.
type tpTimes struct {
	mu sync.Mutex
	m  map[string]*tpTime
}

func newTPTimes() *tpTimes { return &tpTimes{m: map[string]*tpTime{}} }

// watch records each GPR's transitions and sends each newly provisioned
// GPR to release, until ctx ends. The apiserver may close a watch (one
// that falls behind a burst of writes on a loaded machine): it is opened
// again, with a list first, so no transition is missed and no GPR is
// left unreleased.
func (r *tpTimes) watch(ctx context.Context, c client.WithWatch, lbl map[string]string, release chan<- string) {
	see := func(g *v1alpha1.GPUProvisionRequest, _ watch.EventType, now time.Time) {
		if r.record(g, now) {
			release <- g.Name
		}
	}
	for ctx.Err() == nil {
		var list v1alpha1.GPUProvisionRequestList
		if err := c.List(ctx, &list, client.MatchingLabels(lbl)); err != nil {
			continue
		}
		now := time.Now()
		for i := range list.Items {
			see(&list.Items[i], watch.Added, now)
		}
		w, err := c.Watch(ctx, &v1alpha1.GPUProvisionRequestList{}, client.MatchingLabels(lbl),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			continue
		}
		benchkit.EachGPR(w, see)
	}
}

// record notes g's phase at now; true when g was just seen provisioned.
func (r *tpTimes) record(g *v1alpha1.GPUProvisionRequest, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.m[g.Name]
	if t == nil {
		t = &tpTime{}
		r.m[g.Name] = t
	}
	s := g.Status.ProvisioningStatus
	if t.admitted.IsZero() && s != "" {
		t.admitted = now
	}
	started := t.started.IsZero() && (s == v1alpha1.GPRProvisioned || s == v1alpha1.GPRComplete)
	if started {
		t.started = now
	}
	if t.completed.IsZero() && s == v1alpha1.GPRComplete {
		t.completed = now
	}
	return started && s == v1alpha1.GPRProvisioned
}

func (r *tpTimes) count(f func(*tpTime) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range r.m {
		if f(t) {
			n++
		}
	}
	return n
}

func (r *tpTimes) summary() string {
	return fmt.Sprintf("%d seen, %d admitted, %d started, %d completed", len(r.m),
		r.count(func(t *tpTime) bool { return !t.admitted.IsZero() }),
		r.count(func(t *tpTime) bool { return !t.started.IsZero() }),
		r.count(func(t *tpTime) bool { return !t.completed.IsZero() }))
}

// sustained is the steady rate of an event (benchkit.Sustained) over the
// GPRs that had it.
func (r *tpTimes) sustained(at func(*tpTime) time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ts []time.Time
	for _, t := range r.m {
		if x := at(t); !x.IsZero() {
			ts = append(ts, x)
		}
	}
	return benchkit.Sustained(ts)
}

// cpuTimes is the CPU time so far of this process ("gpuspace") and of its
// children by command name (the control plane's kube-apiserver, etcd),
// from /proc.
func cpuTimes() map[string]time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	out := map[string]time.Duration{"gpuspace": time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	self := strconv.Itoa(os.Getpid())
	for _, p := range stats {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), in clock ticks.
		s := string(raw)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		f := strings.Fields(s[i+2:])
		if len(f) < 13 || f[1] != self {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[comm] += time.Duration(ut+st) * (time.Second / 100) // USER_HZ
	}
	return out
}

// parallel runs f(0..n-1) (benchkit.Parallel) and fails on the first
// error.
func parallel(b *testing.B, n int, f func(int) error) {
	b.Helper()
	if err := benchkit.Parallel(n, f); err != nil {
		b.Fatal(err)
	}
}
