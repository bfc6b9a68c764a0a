package plugin

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// newMock returns an initialised mock server, its Lib and its GPUs.
func newMock(t testing.TB, server string) (*nvml.Mock, nvml.Lib, []nvml.GPU) {
	t.Helper()
	return nvml.MustMock(t, server)
}

// mockGPUs returns the GPUs of a mock server.
func mockGPUs(t testing.TB, server string) []nvml.GPU {
	_, _, gpus := newMock(t, server)
	return gpus
}

// ids names GPUs of gpus by index.
func ids(gpus []nvml.GPU, index ...int) []string {
	var out []string
	for _, i := range index {
		out = append(out, gpus[i].UUID)
	}
	return out
}

func TestGPUsPreferred(t *testing.T) {
	h100 := mockGPUs(t, "dgxh100") // GPUs 0-3 on NUMA 0, 4-7 on NUMA 1
	noNUMA := slices.Clone(h100)
	for i := range noNUMA {
		noNUMA[i].NUMANode = nvml.NoNUMA
	}
	tests := []struct {
		name      string
		gpus      []nvml.GPU
		available []int
		must      []int
		size      int
		want      []int
	}{
		{"one GPU from the tighter node", h100, []int{0, 1, 2, 4, 5}, nil, 1, []int{4}},
		{"two GPUs fit one node", h100, []int{0, 1, 2, 3, 4, 5}, nil, 2, []int{4, 5}},
		{"three GPUs: only node 0 fits", h100, []int{0, 1, 2, 4, 5}, nil, 3, []int{0, 1, 2}},
		{"must pulls in its node", h100, []int{0, 1, 2, 4, 5, 6, 7}, []int{1}, 2, []int{1, 0}},
		{"spill over: largest node first", h100, []int{0, 1, 4, 5, 6}, nil, 4, []int{4, 5, 6, 0}},
		{"all eight: ties by NUMA id", h100, []int{0, 1, 2, 3, 4, 5, 6, 7}, nil, 8, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"no topology: index order", noNUMA, []int{5, 2, 7, 0}, nil, 3, []int{0, 2, 5}},
		{"must covers the size", h100, []int{0, 1, 2}, []int{2, 1}, 2, []int{2, 1}},
		{"more than available: what there is", h100, []int{3}, nil, 2, []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewGPUs("nvidia.com/gpu", tt.gpus)
			got := r.Preferred(ids(tt.gpus, tt.available...), ids(tt.gpus, tt.must...), tt.size)
			if diff := cmp.Diff(ids(tt.gpus, tt.want...), got); diff != "" {
				t.Errorf("Preferred (-want +got):\n%s", diff)
			}
		})
	}
}

// units names GPU memory units as "gpu index:unit k" pairs.
func units(gpus []nvml.GPU, spec string) []string {
	var out []string
	for f := range strings.FieldsSeq(spec) {
		var i, from, to int
		if n, _ := fmt.Sscanf(f, "%d:%d-%d", &i, &from, &to); n == 3 {
			for k := from; k <= to; k++ {
				out = append(out, UnitID(gpus[i].UUID, k))
			}
			continue
		}
		fmt.Sscanf(f, "%d:%d", &i, &from)
		out = append(out, UnitID(gpus[i].UUID, from))
	}
	return out
}

func TestMemoryPreferred(t *testing.T) {
	t4 := mockGPUs(t, "t4x4") // 15 GiB each
	tests := []struct {
		name      string
		available string
		must      string
		size      int
		want      string
	}{
		{"fits one GPU: the tightest", "0:0-14 1:10-14 2:0-14", "", 4, "1:10-13"},
		{"fits one GPU exactly", "0:0-14 1:10-14", "", 5, "1:10-14"},
		{"two GPUs: largest first, then the tightest fit", "0:0-14 1:10-14 2:0-9", "", 20, "0:0-14 1:10-14"},
		{"must: fill its GPU first", "0:0-14 1:0-14", "1:3", 4, "1:3 1:0-2"},
		{"must GPU too small: then the tightest fit", "0:0-14 1:12-14 2:0-4", "1:12", 6, "1:12 1:13-14 2:0-2"},
		{"more than available", "3:0-1", "", 5, "3:0-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewMemory("gpuspace.io/gpu-memory", t4)
			got := r.Preferred(units(t4, tt.available), units(t4, tt.must), tt.size)
			if diff := cmp.Diff(units(t4, tt.want), got); diff != "" {
				t.Errorf("Preferred (-want +got):\n%s", diff)
			}
		})
	}
	// IDs that are not ours come last, and only when needed.
	r := NewMemory("gpuspace.io/gpu-memory", t4)
	avail := append([]string{"bogus-1"}, units(t4, "0:0")...)
	if diff := cmp.Diff(append(units(t4, "0:0"), "bogus-1"), r.Preferred(avail, nil, 2)); diff != "" {
		t.Errorf("Preferred with a foreign ID (-want +got):\n%s", diff)
	}
}

func TestAllocate(t *testing.T) {
	gpus := mockGPUs(t, "dgxa100")
	g := NewGPUs("nvidia.com/gpu", gpus)
	m := NewMemory("gpuspace.io/gpu-memory", gpus)
	tests := []struct {
		name    string
		res     Resource
		ids     []string
		want    map[string]string
		wantErr bool
	}{
		{"GPUs in index order", g, ids(gpus, 5, 1), map[string]string{EnvVisibleDevices: gpus[1].UUID + "," + gpus[5].UUID}, false},
		{"unknown GPU", g, []string{"GPU-nope"}, nil, true},
		{"memory on two GPUs", m, units(gpus, "3:0-9 2:39"), map[string]string{
			EnvVisibleDevices: gpus[2].UUID + "," + gpus[3].UUID, EnvGPUMemory: "11"}, false},
		{"memory unit past the GPU's size", m, units(gpus, "3:40"), nil, true},
		{"malformed unit", m, []string{"nodash"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.res.Allocate(tt.ids)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Allocate error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got.Envs); diff != "" {
				t.Errorf("Envs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDevices(t *testing.T) {
	gpus := mockGPUs(t, "mixed")
	unhealthy := map[string]string{gpus[2].UUID: "XID 79"}
	var gotGPUs []string
	for _, d := range NewGPUs("nvidia.com/gpu", gpus).Devices(unhealthy) {
		gotGPUs = append(gotGPUs, fmt.Sprintf("%s %s %v", d.ID, d.Health, d.Topology.Nodes[0].ID))
	}
	want := []string{
		gpus[0].UUID + " Healthy 0", gpus[1].UUID + " Healthy 0",
		gpus[2].UUID + " Unhealthy 1", gpus[3].UUID + " Healthy 1",
	}
	if diff := cmp.Diff(want, gotGPUs); diff != "" {
		t.Errorf("GPU devices (-want +got):\n%s", diff)
	}
	// Memory: 80 + 80 + 24 + 15 GiB, and the A30's units share its health.
	mem := NewMemory("gpuspace.io/gpu-memory", gpus).Devices(unhealthy)
	if len(mem) != 80+80+24+15 {
		t.Errorf("%d memory units, want %d", len(mem), 80+80+24+15)
	}
	counts := map[string]int{}
	for _, d := range mem {
		uuid, _, err := ParseUnitID(d.ID)
		if err != nil {
			t.Fatal(err)
		}
		counts[uuid+" "+d.Health]++
	}
	wantCounts := map[string]int{
		gpus[0].UUID + " Healthy": 80, gpus[1].UUID + " Healthy": 80,
		gpus[2].UUID + " Unhealthy": 24, gpus[3].UUID + " Healthy": 15,
	}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("memory units per GPU and health (-want +got):\n%s", diff)
	}
}

// TestDeviceListSize checks that the largest node we know, 8×H200 with
// 141 GiB each, stays far below the kubelet's 4 MiB gRPC message limit.
func TestDeviceListSize(t *testing.T) {
	const kubeletLimit = 4 << 20
	gpus := mockGPUs(t, "dgxh200")
	for _, r := range []Resource{NewGPUs("nvidia.com/gpu", gpus), NewMemory("gpuspace.io/gpu-memory", gpus)} {
		resp := &pluginapi.ListAndWatchResponse{Devices: r.Devices(map[string]string{gpus[0].UUID: "x"})}
		b, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d devices, %d bytes (%.1f%% of 4 MiB)", r.Name(), len(resp.Devices), len(b), 100*float64(len(b))/kubeletLimit)
		if len(b) > kubeletLimit/16 {
			t.Errorf("%s: ListAndWatch response is %d bytes, over 1/16 of the kubelet's limit", r.Name(), len(b))
		}
	}
}

func TestParseUnitID(t *testing.T) {
	tests := []struct {
		id      string
		uuid    string
		k       int
		wantErr bool
	}{
		{"GPU-0a-1b-7", "GPU-0a-1b", 7, false},
		{UnitID("GPU-x", 140), "GPU-x", 140, false},
		{"GPU-x-", "", 0, true},
		{"GPU-x--1", "GPU-x-", 1, false},
		{"-3", "", 0, true},
	}
	for _, tt := range tests {
		uuid, k, err := ParseUnitID(tt.id)
		if (err != nil) != tt.wantErr || uuid != tt.uuid || k != tt.k {
			t.Errorf("ParseUnitID(%q) = %q, %d, %v; want %q, %d, error %v", tt.id, uuid, k, err, tt.uuid, tt.k, tt.wantErr)
		}
	}
}

// BenchmarkPreferred measures GetPreferredAllocation's work on the
// largest node: 8×H200, 1128 memory units free, 100 GiB wanted.
func BenchmarkPreferred(b *testing.B) {
	gpus := mockGPUs(b, "dgxh200")
	for _, bc := range []struct {
		name      string
		res       Resource
		available []string
		size      int
	}{
		{"gpu", NewGPUs("nvidia.com/gpu", gpus), ids(gpus, 0, 1, 2, 3, 4, 5, 6, 7), 3},
		{"memory", NewMemory("gpuspace.io/gpu-memory", gpus), units(gpus, "0:0-140 1:0-140 2:0-140 3:0-140 4:0-140 5:0-140 6:0-140 7:0-140"), 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := bc.res.Preferred(bc.available, nil, bc.size); len(got) != bc.size {
					b.Fatalf("%d devices, want %d", len(got), bc.size)
				}
			}
		})
	}
}
