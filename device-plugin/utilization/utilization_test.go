package utilization

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuspace/gpuspace/device-plugin/health"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

type fixture struct {
	mock    *nvml.Mock
	uuids   []string
	sampler *Sampler
	pub     *idlesignal.Publisher
	events  *health.EventLog
	clock   *testingclock.FakeClock
	reg     *prometheus.Registry
	node    string
}

func newFixture(t *testing.T, server string) *fixture {
	t.Helper()
	ctx := context.Background()
	m, lib, gpus := nvml.MustMock(t, server)
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if _, err := env.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	f := &fixture{mock: m, uuids: m.UUIDs(), events: &health.EventLog{}, node: name, reg: prometheus.NewRegistry(),
		clock: testingclock.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	f.pub = &idlesignal.Publisher{Client: env.Kube, Node: name, FieldManager: "gpuspace-device-plugin"}
	f.sampler = New(lib, gpus, Config{Node: name, Interval: time.Hour, Timeout: 200 * time.Millisecond,
		Publisher: f.pub, Recorder: f.events, Metrics: NewMetrics(f.reg), Log: logr.Discard(), Now: f.clock.Now})
	return f
}

// annotation is what the node carries now, "<absent>" when nothing.
func (f *fixture) annotation(t *testing.T) string {
	t.Helper()
	n, err := env.Kube.CoreV1().Nodes().Get(context.Background(), f.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := n.Annotations[idlesignal.Annotation]
	if !ok {
		return "<absent>"
	}
	return v
}

func (f *fixture) sample(t *testing.T) Sample {
	t.Helper()
	s := f.sampler.SampleOnce(context.Background())
	f.clock.Step(time.Second)
	return s
}

// TestIdleSinceChangesOnTransitionsOnly drives scripted utilisation through
// 30 samples and counts, on the real apiserver, every write to the node:
// one per idle/busy transition (plus the first publication), none per
// sample.
func TestIdleSinceChangesOnTransitionsOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t, "t4x2")
	g0, g1 := f.uuids[0], f.uuids[1]

	// Every change of the node the apiserver makes, from a watch.
	w, err := env.Kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + f.node})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	var seen []string
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				n := ev.Object.(*corev1.Node)
				mu.Lock()
				seen = append(seen, n.Annotations[idlesignal.Annotation])
				mu.Unlock()
			}
		}
	}()

	at := func(sample int) string { return idlesignal.Format(time.Date(2026, 3, 1, 12, 0, sample, 0, time.UTC)) }
	steps := []struct {
		n      int    // samples in this step
		script func() // changes before the step
		want   string // the annotation after it
	}{
		{4, func() { f.mock.SetUtilization(g0, 50) }, ""},                             // 0-3: GPU 0 busy
		{6, func() { f.mock.SetUtilization(g0, 0) }, at(4)},                           // 4-9: both idle since 4
		{2, func() { f.mock.SetUtilization(g1, 4) }, at(4)},                           // 10-11: 4 % is under the threshold
		{2, func() { f.mock.SetUtilization(g1, 5) }, ""},                              // 12-13: 5 % is not
		{2, func() { f.mock.SetUtilization(g1, 0); f.mock.SetProcesses(g1, 42) }, ""}, // 14-15: a process at 0 % keeps it busy
		{5, func() { f.mock.SetProcesses(g1) }, at(16)},                               // 16-20: idle again
		{2, func() { f.mock.SetUsageError(g0, gonvml.ERROR_UNKNOWN) }, ""},            // 21-22: unreadable is busy
		{3, func() { f.mock.SetUsageError(g0, gonvml.SUCCESS) }, at(23)},              // 23-25: idle
		{2, func() { f.mock.SetLost(g1, true) }, ""},                                  // 26-27: a lost GPU is busy
		{2, func() { f.mock.SetLost(g1, false) }, at(28)},                             // 28-29
	}
	samples := 0
	var wantSeen []string
	for i, s := range steps {
		s.script()
		for range s.n {
			f.sample(t)
			samples++
		}
		if got := f.annotation(t); got != s.want {
			t.Fatalf("step %d (after %d samples): node says %q, want %q", i, samples, got, s.want)
		}
		if len(wantSeen) == 0 || wantSeen[len(wantSeen)-1] != s.want {
			wantSeen = append(wantSeen, s.want)
		}
	}
	// The watch sees every write the apiserver made.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= len(wantSeen) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a write too many to show up
	w.Stop()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(wantSeen, seen); diff != "" {
		t.Errorf("node writes seen by a watch over %d samples (-want +got):\n%s", samples, diff)
	}
	if f.pub.Writes() != len(wantSeen) {
		t.Errorf("publisher wrote %d times, want %d", f.pub.Writes(), len(wantSeen))
	}
	if got := testutil.ToFloat64(f.sampler.cfg.Metrics.writes.WithLabelValues(f.node)); got != float64(len(wantSeen)) {
		t.Errorf("gpuspace_idle_signal_writes_total = %v, want %d", got, len(wantSeen))
	}
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, f.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := idlesignal.ReadUtilization(n); !ok || u != 0 {
		t.Errorf("utilisation annotation %d (%v), want 0 from the last transition", u, ok)
	}
	t.Logf("%d samples, %d node writes (%d transitions and the first publication)", samples, len(seen), len(seen)-1)

	wantEvents := []string{
		"Normal/GPUsBusy", "Normal/GPUsIdle", "Normal/GPUsBusy", "Normal/GPUsIdle",
		"Warning/GPUUtilizationUnavailable", "Normal/GPUsBusy",
		"Normal/GPUUtilizationAvailable", "Normal/GPUsIdle",
		"Warning/GPUUtilizationUnavailable", "Normal/GPUsBusy",
		"Normal/GPUUtilizationAvailable", "Normal/GPUsIdle",
	}
	if diff := cmp.Diff(wantEvents, f.events.Take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestProcessKeepsGPUBusy: a compute process on a GPU at 0 % keeps the
// node busy however long it runs.
func TestProcessKeepsGPUBusy(t *testing.T) {
	f := newFixture(t, "t4x1")
	f.mock.SetProcesses(f.uuids[0], 7)
	for i := range 20 {
		s := f.sample(t)
		if !s.IdleSince.IsZero() || s.Readings[0].Idle {
			t.Fatalf("sample %d: idle with a process running: %+v", i, s)
		}
	}
	if got := f.annotation(t); got != "" {
		t.Errorf("node says %q, want busy", got)
	}
	if f.pub.Writes() != 1 {
		t.Errorf("%d writes over 20 busy samples, want 1", f.pub.Writes())
	}
	// MIG mode: no utilisation, so the processes alone decide.
	f.mock.SetUsage(f.uuids[0], nvml.MockUsage{UtilizationUnsupported: true, Processes: []gonvml.ProcessInfo{{Pid: 7}}})
	if s := f.sample(t); !s.IdleSince.IsZero() {
		t.Errorf("GPU without utilisation but with a process is idle")
	}
	f.mock.SetUsage(f.uuids[0], nvml.MockUsage{UtilizationUnsupported: true})
	if s := f.sample(t); s.IdleSince.IsZero() {
		t.Errorf("GPU without utilisation and without processes is busy")
	}
}

// TestNVMLErrorIsNeverIdle: unreadable GPUs, a failing driver and a hung
// one all count as busy, are counted in a metric, and are told once in an
// event.
func TestNVMLErrorIsNeverIdle(t *testing.T) {
	f := newFixture(t, "t4x2")
	if s := f.sample(t); s.IdleSince.IsZero() {
		t.Fatal("idle GPUs not idle")
	}
	f.events.Take()
	labels0 := prometheus.Labels{"node": f.node, "gpu": "0", "uuid": f.uuids[0]}
	cases := []struct {
		name         string
		unreadable   int
		break_, heal func()
	}{
		{"one GPU unreadable", 1, func() { f.mock.SetUsageError(f.uuids[0], gonvml.ERROR_UNKNOWN) },
			func() { f.mock.SetUsageError(f.uuids[0], gonvml.SUCCESS) }},
		{"driver failing", 2, func() { f.mock.SetFailing(gonvml.ERROR_DRIVER_NOT_LOADED) },
			func() { f.mock.SetFailing(gonvml.SUCCESS) }},
		{"driver hung", 2, func() { f.mock.SetHung(true) }, func() { f.mock.SetHung(false) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errsBefore := testutil.ToFloat64(f.sampler.cfg.Metrics.errors.With(labels0))
			c.break_()
			for i := range 3 {
				s := f.sample(t)
				if !s.IdleSince.IsZero() || s.Readings[0].Idle || s.Readings[0].Err == nil {
					t.Fatalf("sample %d: %+v, want GPU 0 unreadable and the node busy", i, s)
				}
			}
			if got := f.annotation(t); got != "" {
				t.Errorf("node says %q while NVML fails, want busy", got)
			}
			if got := testutil.ToFloat64(f.sampler.cfg.Metrics.errors.With(labels0)) - errsBefore; got != 3 {
				t.Errorf("gpuspace_gpu_utilization_errors_total rose by %v, want 3", got)
			}
			if got := testutil.ToFloat64(f.sampler.cfg.Metrics.idle.With(labels0)); got != 0 {
				t.Errorf("gpuspace_gpu_idle = %v while unreadable", got)
			}
			if n, err := testutil.GatherAndCount(f.reg, "gpuspace_gpu_utilization_ratio"); err != nil || n != 2-c.unreadable {
				t.Errorf("%d utilisation series (%v), want none for unreadable GPUs", n, err)
			}
			if evs := f.events.Take(); len(evs) == 0 || evs[0] != "Warning/GPUUtilizationUnavailable" {
				t.Errorf("events %v, want a Warning first", evs)
			}
			c.heal()
			deadline := time.Now().Add(5 * time.Second)
			for f.sample(t).IdleSince.IsZero() {
				if time.Now().After(deadline) {
					t.Fatal("never idle again after healing")
				}
				time.Sleep(50 * time.Millisecond)
			}
			f.events.Take()
		})
	}
}

// TestMetrics checks the gauges against a scripted GPU.
func TestMetrics(t *testing.T) {
	f := newFixture(t, "t4x2")
	f.mock.SetUsage(f.uuids[1], nvml.MockUsage{GPUPercent: 73, MemoryPercent: 20,
		Processes: []gonvml.ProcessInfo{{Pid: 1, UsedGpuMemory: 3 << 30}, {Pid: 2, UsedGpuMemory: 1 << 30}}})
	f.sample(t)
	want := fmt.Sprintf(`
# HELP gpuspace_gpu_compute_processes Processes with a compute context on the GPU.
# TYPE gpuspace_gpu_compute_processes gauge
gpuspace_gpu_compute_processes{gpu="0",node="%[1]s",uuid="%[2]s"} 0
gpuspace_gpu_compute_processes{gpu="1",node="%[1]s",uuid="%[3]s"} 2
# HELP gpuspace_gpu_memory_used_bytes GPU framebuffer memory in use (DCGM_FI_DEV_FB_USED, in bytes).
# TYPE gpuspace_gpu_memory_used_bytes gauge
gpuspace_gpu_memory_used_bytes{gpu="0",node="%[1]s",uuid="%[2]s"} 0
gpuspace_gpu_memory_used_bytes{gpu="1",node="%[1]s",uuid="%[3]s"} 4.294967296e+09
# HELP gpuspace_gpu_utilization_ratio Fraction of the last NVML sample period in which a kernel ran on the GPU (utilization.gpu / 100; DCGM_FI_DEV_GPU_UTIL). Absent where the GPU reports no utilisation or could not be read.
# TYPE gpuspace_gpu_utilization_ratio gauge
gpuspace_gpu_utilization_ratio{gpu="0",node="%[1]s",uuid="%[2]s"} 0
gpuspace_gpu_utilization_ratio{gpu="1",node="%[1]s",uuid="%[3]s"} 0.73
# HELP gpuspace_gpu_idle 1 when the GPU is idle (under the idle threshold, no compute process), 0 when busy or unreadable.
# TYPE gpuspace_gpu_idle gauge
gpuspace_gpu_idle{gpu="0",node="%[1]s",uuid="%[2]s"} 1
gpuspace_gpu_idle{gpu="1",node="%[1]s",uuid="%[3]s"} 0
# HELP gpuspace_node_gpus_idle_since_timestamp_seconds Unix time since which all of the node's GPUs have been idle; 0 while any is busy.
# TYPE gpuspace_node_gpus_idle_since_timestamp_seconds gauge
gpuspace_node_gpus_idle_since_timestamp_seconds{node="%[1]s"} 0
`, f.node, f.uuids[0], f.uuids[1])
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "gpuspace_gpu_compute_processes",
		"gpuspace_gpu_memory_used_bytes", "gpuspace_gpu_utilization_ratio", "gpuspace_gpu_idle",
		"gpuspace_node_gpus_idle_since_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// TestRestartKeepsIdleSince: a plugin restarted on a node that stayed idle
// continues from the published idle-since, and writes nothing.
func TestRestartKeepsIdleSince(t *testing.T) {
	f := newFixture(t, "t4x1")
	f.sample(t)
	first := f.annotation(t)
	if first == "" || first == "<absent>" {
		t.Fatalf("idle node says %q", first)
	}
	f.clock.Step(time.Hour)
	restarted := &idlesignal.Publisher{Client: env.Kube, Node: f.node, FieldManager: "gpuspace-device-plugin"}
	s2 := New(f.sampler.lib, f.sampler.gpus, Config{Node: f.node, Publisher: restarted, Log: logr.Discard(), Now: f.clock.Now})
	for range 5 {
		s2.SampleOnce(context.Background())
	}
	if got := f.annotation(t); got != first || restarted.Writes() != 0 {
		t.Errorf("after a restart the node says %q (%d writes), want %q and no write", got, restarted.Writes(), first)
	}
}

// TestUtilizationWritesAreRare: a busy GPU whose utilisation swings every
// sample costs one write per --utilization-publish-interval at most (the
// default 5m), however often it is sampled.
func TestUtilizationWritesAreRare(t *testing.T) {
	f := newFixture(t, "t4x1")
	g := f.uuids[0]
	f.mock.SetProcesses(g, 1)
	var utils []int
	for i := range 40 { // 10 minutes at 15s
		f.mock.SetUtilization(g, uint32(60+30*(i%2)))
		f.sample(t)
		f.clock.Step(14 * time.Second)
		n, err := env.Kube.CoreV1().Nodes().Get(context.Background(), f.node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := idlesignal.ReadUtilization(n)
		if len(utils) == 0 || utils[len(utils)-1] != u {
			utils = append(utils, u)
		}
	}
	// The first write (busy, 60 %), then one at the first sample 5 minutes
	// later that moved 10 points (90 %).
	if diff := cmp.Diff([]int{60, 90}, utils); diff != "" || f.pub.Writes() != 2 {
		t.Errorf("%d writes over 40 samples, utilisation published (-want +got):\n%s", f.pub.Writes(), diff)
	}
}
