package utilization

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// kubelet serves the pod-resources List of a fake kubelet.
type kubelet struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	mu      sync.Mutex
	devices map[string][]string // resource name -> device IDs assigned
}

func (k *kubelet) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := &podresourcesv1.ContainerResources{Name: "train"}
	for name, ids := range k.devices {
		c.Devices = append(c.Devices, &podresourcesv1.ContainerDevices{ResourceName: name, DeviceIds: ids})
	}
	return &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{
		{Name: "p", Namespace: "team-a", Containers: []*podresourcesv1.ContainerResources{c}},
	}}, nil
}

func (k *kubelet) assign(devices map[string][]string) {
	k.mu.Lock()
	k.devices = devices
	k.mu.Unlock()
}

func TestPodResourcesSocket(t *testing.T) {
	if got := PodResourcesSocket("/var/lib/kubelet/device-plugins/"); got != "/var/lib/kubelet/pod-resources/kubelet.sock" {
		t.Errorf("PodResourcesSocket = %q", got)
	}
}

// TestMockFollowsKubelet: a mock GPU the kubelet assigned to a container,
// whole or by memory units, runs a process, so the node is busy.
func TestMockFollowsKubelet(t *testing.T) {
	dir, err := os.MkdirTemp("", "podres")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "kubelet.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	k := &kubelet{}
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, k)
	go srv.Serve(ln)
	defer srv.Stop()

	m, lib, gpus := nvml.MustMock(t, "t4x2")
	u := m.UUIDs()
	s := New(lib, gpus, Config{Log: logr.Discard(), BeforeSample: MockFollowsKubelet(m, gpus, socket, logr.Discard())})
	ctx := context.Background()
	idle := func() []bool {
		var out []bool
		for _, r := range s.SampleOnce(ctx).Readings {
			out = append(out, r.Idle)
		}
		return out
	}
	check := func(what string, want ...bool) {
		t.Helper()
		got := idle()
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: idle %v, want %v", what, got, want)
				return
			}
		}
	}
	check("nothing assigned", true, true)
	k.assign(map[string][]string{"nvidia.com/gpu": {u[1]}})
	check("GPU 1 assigned", true, false)
	k.assign(map[string][]string{"gpuspace.io/gpu-memory": {u[0] + "-0", u[0] + "-1"}})
	check("memory of GPU 0 assigned", false, true)
	k.assign(nil)
	check("released", true, true)
	srv.Stop()
	m.SetProcesses(u[0], 1)
	check("kubelet gone: the GPUs stay as they were scripted", false, true)
}
