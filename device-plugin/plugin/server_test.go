package plugin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuspace/gpuspace/device-plugin/health"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// fakeKubelet is the kubelet's registration service on kubelet.sock: it
// records registrations and, like the kubelet, dials the plugin back.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	dir string
	srv *grpc.Server

	mu     sync.Mutex
	regs   []*pluginapi.RegisterRequest
	ch     chan *pluginapi.RegisterRequest
	refuse int // registrations to refuse before accepting
}

func startKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	return startRefusingKubelet(t, dir, 0)
}

// startRefusingKubelet starts a kubelet that refuses the first refuse
// registrations.
func startRefusingKubelet(t *testing.T, dir string, refuse int) *fakeKubelet {
	t.Helper()
	k := &fakeKubelet{dir: dir, ch: make(chan *pluginapi.RegisterRequest, 16), refuse: refuse}
	lis, err := net.Listen("unix", filepath.Join(dir, KubeletSocketName))
	if err != nil {
		t.Fatal(err)
	}
	k.srv = grpc.NewServer()
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go k.srv.Serve(lis)
	t.Cleanup(k.stop)
	return k
}

// stop stops the kubelet and removes its socket, as a dying kubelet's
// successor does.
func (k *fakeKubelet) stop() {
	k.srv.Stop()
	os.Remove(filepath.Join(k.dir, KubeletSocketName))
}

func (k *fakeKubelet) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if r.Version != pluginapi.Version {
		return nil, errors.New("unsupported version " + r.Version)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.refuse > 0 {
		k.refuse--
		return nil, errors.New("kubelet not ready")
	}
	k.regs = append(k.regs, r)
	k.ch <- r
	return &pluginapi.Empty{}, nil
}

func (k *fakeKubelet) waitRegistration(t *testing.T) *pluginapi.RegisterRequest {
	t.Helper()
	select {
	case r := <-k.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no registration within 10s")
		return nil
	}
}

// dial connects to a plugin as the kubelet does after registration.
func dial(t testing.TB, dir, endpoint string) pluginapi.DevicePluginClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}

// node is a mock GPU node: NVML, health monitor, and a Manager serving
// both resources into dir.
type node struct {
	mock   *nvml.Mock
	gpus   []nvml.GPU
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t testing.TB, server string, cfg health.Config) *node {
	t.Helper()
	m, lib, gpus := newMock(t, server)
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mon := health.NewMonitor(lib, m.UUIDs(), cfg)
	mgr := NewManager(dir, 10*time.Millisecond, logr.Discard(),
		NewServer(NewGPUs("nvidia.com/gpu", gpus), mon, dir, "gpuspace-gpu.sock", logr.Discard()),
		NewServer(NewMemory("gpuspace.io/gpu-memory", gpus), mon, dir, "gpuspace-gpu-memory.sock", logr.Discard()),
	)
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{mock: m, gpus: gpus, dir: dir, cancel: cancel, done: make(chan struct{})}
	go func() {
		var wg sync.WaitGroup
		wg.Go(func() { mon.Run(ctx) })
		wg.Go(func() { mgr.Run(ctx) })
		wg.Wait()
		close(n.done)
	}()
	t.Cleanup(n.stop)
	// Clients need the sockets, injected events the monitor's event set.
	for _, sock := range []string{"gpuspace-gpu.sock", "gpuspace-gpu-memory.sock"} {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, sock)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never appeared", sock)
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !m.WatchingAll(nvml.EventXID); {
		if time.Now().After(deadline) {
			t.Fatal("health monitor never registered for events")
		}
		time.Sleep(time.Millisecond)
	}
	return n
}

func (n *node) stop() {
	n.cancel()
	<-n.done
}

func healthByID(devs []*pluginapi.Device) map[string]string {
	out := map[string]string{}
	for _, d := range devs {
		out[d.ID] = d.Health
	}
	return out
}

func TestPluginOverGRPC(t *testing.T) {
	n := startNode(t, "dgxh100", health.Config{ProbeInterval: time.Hour})
	k := startKubelet(t, n.dir)

	regs := map[string]*pluginapi.RegisterRequest{}
	for range 2 {
		r := k.waitRegistration(t)
		regs[r.ResourceName] = r
	}
	wantRegs := map[string]string{"nvidia.com/gpu": "gpuspace-gpu.sock", "gpuspace.io/gpu-memory": "gpuspace-gpu-memory.sock"}
	for res, endpoint := range wantRegs {
		r := regs[res]
		if r == nil || r.Endpoint != endpoint || !r.Options.GetGetPreferredAllocationAvailable() {
			t.Errorf("registration of %s = %v, want endpoint %s with preferred allocation", res, r, endpoint)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gpu := dial(t, n.dir, "gpuspace-gpu.sock")
	mem := dial(t, n.dir, "gpuspace-gpu-memory.sock")

	opts, err := gpu.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	if err != nil || !opts.GetPreferredAllocationAvailable {
		t.Errorf("GetDevicePluginOptions = %v, %v", opts, err)
	}

	gpuStream, err := gpu.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	memStream, err := mem.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := gpuStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, g := range n.gpus {
		want[g.UUID] = pluginapi.Healthy
	}
	if diff := cmp.Diff(want, healthByID(first.Devices)); diff != "" {
		t.Errorf("first GPU list (-want +got):\n%s", diff)
	}
	memFirst, err := memStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(memFirst.Devices) != 8*80 {
		t.Errorf("%d GPU memory units, want %d", len(memFirst.Devices), 8*80)
	}

	// XID 79 on GPU 3: the next message of each stream shows it (and only
	// it) unhealthy.
	sent := time.Now()
	if err := n.mock.InjectXID(n.gpus[3].UUID, 79); err != nil {
		t.Fatal(err)
	}
	next, err := gpuStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("XID 79 reached ListAndWatch in %v", time.Since(sent))
	want[n.gpus[3].UUID] = pluginapi.Unhealthy
	if diff := cmp.Diff(want, healthByID(next.Devices)); diff != "" {
		t.Errorf("GPU list after XID 79 (-want +got):\n%s", diff)
	}
	memNext, err := memStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, d := range memNext.Devices {
		uuid, _, _ := ParseUnitID(d.ID)
		if (d.Health == pluginapi.Unhealthy) != (uuid == n.gpus[3].UUID) {
			t.Errorf("memory unit %s is %s", d.ID, d.Health)
		}
		if d.Health == pluginapi.Unhealthy {
			bad++
		}
	}
	if bad != 80 {
		t.Errorf("%d memory units unhealthy, want GPU 3's 80", bad)
	}

	// Allocate and GetPreferredAllocation over the wire.
	alloc, err := gpu.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{n.gpus[6].UUID, n.gpus[0].UUID}},
		{DevicesIds: []string{n.gpus[1].UUID}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var envs []string
	for _, c := range alloc.ContainerResponses {
		envs = append(envs, c.Envs[EnvVisibleDevices])
	}
	if diff := cmp.Diff([]string{n.gpus[0].UUID + "," + n.gpus[6].UUID, n.gpus[1].UUID}, envs); diff != "" {
		t.Errorf("Allocate envs (-want +got):\n%s", diff)
	}
	if _, err := gpu.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"GPU-unknown"}},
	}}); err == nil {
		t.Error("Allocate of an unknown GPU succeeded")
	}
	pref, err := mem.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: append(units(n.gpus, "0:0-79"), units(n.gpus, "1:70-79")...),
		AllocationSize:     8,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(units(n.gpus, "1:70-77"), pref.ContainerResponses[0].DeviceIDs); diff != "" {
		t.Errorf("preferred memory units (-want +got):\n%s", diff)
	}

	// Stopping removes the sockets and ends the streams.
	n.stop()
	for _, s := range []string{"gpuspace-gpu.sock", "gpuspace-gpu-memory.sock"} {
		if _, err := os.Stat(filepath.Join(n.dir, s)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s left behind: %v", s, err)
		}
	}
	if _, err := gpuStream.Recv(); err == nil {
		t.Error("ListAndWatch stream still open after stop")
	}
}

func TestReRegistration(t *testing.T) {
	n := startNode(t, "t4x1", health.Config{ProbeInterval: time.Hour})
	// The plugin starts before the kubelet and waits for it.
	time.Sleep(30 * time.Millisecond)
	k := startKubelet(t, n.dir)
	k.waitRegistration(t)
	k.waitRegistration(t)

	// A kubelet restart: the old kubelet.sock goes, the new kubelet
	// removes every plugin socket, then serves a new kubelet.sock.
	k.stop()
	os.Remove(filepath.Join(n.dir, "gpuspace-gpu.sock"))
	os.Remove(filepath.Join(n.dir, "gpuspace-gpu-memory.sock"))
	k2 := startKubelet(t, n.dir)
	got := map[string]bool{}
	for range 2 {
		got[k2.waitRegistration(t).ResourceName] = true
	}
	if diff := cmp.Diff(map[string]bool{"nvidia.com/gpu": true, "gpuspace.io/gpu-memory": true}, got); diff != "" {
		t.Errorf("re-registered (-want +got):\n%s", diff)
	}
	// The re-created sockets serve.
	resp, err := dial(t, n.dir, "gpuspace-gpu.sock").GetDevicePluginOptions(context.Background(), &pluginapi.Empty{})
	if err != nil || !resp.GetPreferredAllocationAvailable {
		t.Errorf("re-created socket: %v, %v", resp, err)
	}
	// And nothing registers again while the kubelet stays.
	time.Sleep(50 * time.Millisecond)
	select {
	case r := <-k2.ch:
		t.Errorf("registered again without a kubelet restart: %v", r)
	default:
	}
}

// TestRegistrationRetried: a kubelet that refuses registration at first
// gets it again at the next poll.
func TestRegistrationRetried(t *testing.T) {
	n := startNode(t, "t4x1", health.Config{ProbeInterval: time.Hour})
	k := startRefusingKubelet(t, n.dir, 3)
	got := map[string]bool{}
	for range 2 {
		got[k.waitRegistration(t).ResourceName] = true
	}
	if diff := cmp.Diff(map[string]bool{"nvidia.com/gpu": true, "gpuspace.io/gpu-memory": true}, got); diff != "" {
		t.Errorf("registered after refusals (-want +got):\n%s", diff)
	}
}

// BenchmarkEventToListAndWatch measures how long an XID event takes from
// NVML (the mock's event set) through the health monitor to a ListAndWatch
// message on a real gRPC stream, on an 8×H100 node. Each round takes one
// more GPU down with XID 79, so no round depends on timing (recovery); a
// fresh node, outside the timer, follows every 8 rounds.
func BenchmarkEventToListAndWatch(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; {
		b.StopTimer()
		n := startNode(b, "dgxh100", health.Config{ProbeInterval: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := dial(b, n.dir, "gpuspace-gpu.sock").ListAndWatch(ctx, &pluginapi.Empty{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for g := 0; g < len(n.gpus) && i < b.N; g, i = g+1, i+1 {
			uuid := n.gpus[g].UUID
			start := time.Now()
			if err := n.mock.InjectXID(uuid, 79); err != nil {
				b.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
			if healthByID(resp.Devices)[uuid] != pluginapi.Unhealthy {
				b.Fatalf("round %d: GPU %d not unhealthy in the next message", i, g)
			}
		}
		b.StopTimer()
		cancel()
		n.stop()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/event")
}

// BenchmarkAllocate measures one Allocate round trip over gRPC: four GPUs
// and 64 GiB of memory units.
func BenchmarkAllocate(b *testing.B) {
	n := startNode(b, "dgxh200", health.Config{ProbeInterval: time.Hour})
	ctx := context.Background()
	for _, bc := range []struct {
		name, socket string
		ids          []string
	}{
		{"gpu", "gpuspace-gpu.sock", ids(n.gpus, 0, 1, 2, 3)},
		{"memory", "gpuspace-gpu-memory.sock", units(n.gpus, "0:0-63")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := dial(b, n.dir, bc.socket)
			req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: bc.ids}}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Allocate(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
