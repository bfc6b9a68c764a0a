package nvml

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/google/go-cmp/cmp"
)

// gpuRow is the part of a GPU a table can state compactly.
type gpuRow struct {
	Name      string
	MemoryMiB uint64
	NUMANode  int
	CC        string
}

func rows(gpus []GPU) []gpuRow {
	var out []gpuRow
	for _, g := range gpus {
		out = append(out, gpuRow{g.Name, g.MemoryMiB, g.NUMANode, g.ComputeCapability})
	}
	return out
}

func repeat(n int, r gpuRow, numaSplit bool) []gpuRow {
	out := make([]gpuRow, n)
	for i := range out {
		out[i] = r
		if numaSplit && i >= n/2 {
			out[i].NUMANode = 1
		}
	}
	return out
}

func TestMockServers(t *testing.T) {
	tests := []struct {
		server string
		want   []gpuRow
	}{
		{"dgxa100", repeat(8, gpuRow{"NVIDIA A100-SXM4-40GB", 40960, 0, "8.0"}, true)},
		{"dgxh100", repeat(8, gpuRow{"NVIDIA H100 80GB HBM3", 81920, 0, "9.0"}, true)},
		{"h200", repeat(8, gpuRow{"NVIDIA H200 141GB HBM3e", 144384, 0, "9.0"}, true)},
		{"dgxb200", repeat(8, gpuRow{"NVIDIA B200 180GB HBM3e", 184320, 0, "10.0"}, true)},
		{"t4x1", []gpuRow{{"Tesla T4", 15360, 0, "7.5"}}},
		{"t4x4", repeat(4, gpuRow{"Tesla T4", 15360, 0, "7.5"}, true)},
		{"mixed", []gpuRow{
			{"NVIDIA A100-PCIE-80GB", 81920, 0, "8.0"},
			{"NVIDIA A100-PCIE-80GB", 81920, 0, "8.0"},
			{"NVIDIA A30-PCIE-24GB", 24576, 1, "8.0"},
			{"Tesla T4", 15360, 1, "7.5"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			m, err := NewMock(tt.server)
			if err != nil {
				t.Fatal(err)
			}
			lib := m.Lib()
			if err := lib.Init(); err != nil {
				t.Fatal(err)
			}
			defer lib.Shutdown()
			gpus, err := lib.GPUs()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, rows(gpus)); diff != "" {
				t.Errorf("GPUs (-want +got):\n%s", diff)
			}
			seen := map[string]bool{}
			for i, g := range gpus {
				if g.Index != i || g.Minor != i {
					t.Errorf("GPU %d: index %d minor %d", i, g.Index, g.Minor)
				}
				if g.UUID != MockUUID(tt.server, i) {
					t.Errorf("GPU %d: UUID %s, want the fixed %s", i, g.UUID, MockUUID(tt.server, i))
				}
				if seen[g.UUID] {
					t.Errorf("GPU %d: duplicate UUID %s", i, g.UUID)
				}
				seen[g.UUID] = true
				if want := "00000000:" + []string{"00", "01", "02", "03", "04", "05", "06", "07"}[i] + ":00.0"; g.PCIBusID != want {
					t.Errorf("GPU %d: bus id %q, want %q", i, g.PCIBusID, want)
				}
			}
			v, err := lib.DriverVersion()
			if err != nil || v == "" {
				t.Errorf("DriverVersion() = %q, %v", v, err)
			}
		})
	}
}

func TestMockUUIDsAreFixed(t *testing.T) {
	a, _ := NewMock("dgxh100")
	b, _ := NewMock("h100")
	if diff := cmp.Diff(a.UUIDs(), b.UUIDs()); diff != "" {
		t.Errorf("two dgxh100 mocks differ (-first +second):\n%s", diff)
	}
	c, _ := NewMock("dgxa100")
	if a.UUIDs()[0] == c.UUIDs()[0] {
		t.Errorf("dgxh100 and dgxa100 share UUID %s", a.UUIDs()[0])
	}
	// The format is a UUID like the driver's: GPU-8-4-4-4-12 hex digits.
	const want = "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
	if got := a.UUIDs()[7]; len(got) != len(want) {
		t.Errorf("UUID %q is not shaped like %q", got, want)
	}
}

func TestNewMockUnknown(t *testing.T) {
	for _, name := range []string{"", "dgx", "t4x0", "t4x100"} {
		if _, err := NewMock(name); err == nil {
			t.Errorf("NewMock(%q) succeeded", name)
		}
	}
}

func TestEvents(t *testing.T) {
	m, _ := NewMock("dgxh100")
	lib := m.Lib()
	if err := lib.Init(); err != nil {
		t.Fatal(err)
	}
	uuids := m.UUIDs()
	m.SetEventsUnsupported(uuids[7], true)
	w, unsupported, err := lib.WatchEvents(uuids, EventXID|EventGPUUnavailable)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if diff := cmp.Diff([]string{uuids[7]}, unsupported); diff != "" {
		t.Errorf("unsupported (-want +got):\n%s", diff)
	}
	if _, err := w.Wait(time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("Wait on a quiet GPU: %v, want ErrTimeout", err)
	}
	if err := m.InjectXID(uuids[3], 79); err != nil {
		t.Fatal(err)
	}
	ev, err := w.Wait(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Event{UUID: uuids[3], Type: EventXID, XID: 79}, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	// The unmonitored GPU gets no events; one not registered for cannot
	// be injected either.
	if err := m.InjectXID(uuids[7], 79); err == nil {
		t.Error("injected an event into a GPU without event support")
	}
	if err := m.InjectEvent(uuids[0], EventDoubleBitECC, 0); err == nil {
		t.Error("injected an event type nobody registered for")
	}

	m.SetFailing(gonvml.ERROR_UNKNOWN)
	if _, err := w.Wait(time.Second); err == nil || errors.Is(err, ErrTimeout) {
		t.Errorf("Wait with failing NVML: %v, want a failure", err)
	}
	if err := lib.Probe(uuids[0]); err == nil {
		t.Error("Probe succeeded with failing NVML")
	}
	m.SetFailing(gonvml.SUCCESS)
	if err := lib.Probe(uuids[0]); err != nil {
		t.Errorf("Probe after healing: %v", err)
	}
	m.SetLost(uuids[1], true)
	if err := lib.Probe(uuids[1]); err == nil {
		t.Error("Probe of a lost GPU succeeded")
	}
}

func TestSysfsNUMA(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "bus/pci/devices/0000:17:00.0")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "numa_node"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &adapter{sysfs: dir}
	tests := []struct {
		bus  string
		want int
	}{
		{"00000000:17:00.0", 1},
		{"0000:17:00.0", 1},
		{"00000000:18:00.0", NoNUMA},
		{"", NoNUMA},
	}
	for _, tt := range tests {
		if got := a.sysfsNUMA(tt.bus); got != tt.want {
			t.Errorf("sysfsNUMA(%q) = %d, want %d", tt.bus, got, tt.want)
		}
	}
}

// TestRealWithoutLibrary checks the start-up error on a machine without
// the NVIDIA driver. Where the driver is installed it has nothing to check.
func TestRealWithoutLibrary(t *testing.T) {
	lib := NewReal()
	err := lib.Init()
	if err == nil {
		lib.Shutdown()
		t.Skip("libnvidia-ml is installed here")
	}
	if !errors.Is(err, ErrLibraryNotFound) {
		t.Errorf("Init() = %v, want ErrLibraryNotFound", err)
	}
}

func TestUsage(t *testing.T) {
	m, err := NewMock("t4x2")
	if err != nil {
		t.Fatal(err)
	}
	lib, _, err := m.InitLib()
	if err != nil {
		t.Fatal(err)
	}
	u0, u1 := m.UUIDs()[0], m.UUIDs()[1]
	read := func(uuid string) Usage {
		t.Helper()
		u, err := lib.Usage(uuid)
		if err != nil {
			t.Fatalf("Usage(%s): %v", uuid, err)
		}
		return u
	}
	if diff := cmp.Diff(Usage{UtilizationSupported: true}, read(u0)); diff != "" {
		t.Errorf("idle GPU (-want +got):\n%s", diff)
	}
	m.SetUtilization(u0, 42)
	m.SetProcesses(u0, 100, 101)
	want := Usage{GPUPercent: 42, UtilizationSupported: true, ComputeProcesses: 2, MemoryUsedBytes: 2 << 30}
	if diff := cmp.Diff(want, read(u0)); diff != "" {
		t.Errorf("busy GPU (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Usage{UtilizationSupported: true}, read(u1)); diff != "" {
		t.Errorf("the other GPU (-want +got):\n%s", diff)
	}
	// MIG-like: no utilisation, the process check alone.
	m.SetUsage(u1, MockUsage{UtilizationUnsupported: true, Processes: []gonvml.ProcessInfo{{Pid: 7}}})
	if diff := cmp.Diff(Usage{ComputeProcesses: 1}, read(u1)); diff != "" {
		t.Errorf("GPU without utilisation (-want +got):\n%s", diff)
	}
	m.SetUsageError(u0, gonvml.ERROR_UNKNOWN)
	if _, err := lib.Usage(u0); !errors.Is(err, gonvml.ERROR_UNKNOWN) {
		t.Errorf("Usage with a failing read: %v, want ERROR_UNKNOWN", err)
	}
	if err := lib.Probe(u0); err != nil {
		t.Errorf("a failing usage read broke the probe: %v", err)
	}
	m.SetUsageError(u0, gonvml.SUCCESS)
	m.SetLost(u0, true)
	if _, err := lib.Usage(u0); !errors.Is(err, gonvml.ERROR_GPU_IS_LOST) {
		t.Errorf("Usage of a lost GPU: %v, want GPU_IS_LOST", err)
	}
}
