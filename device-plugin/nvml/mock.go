package nvml

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// T4 is a Tesla T4 (Turing, 16 GB), which go-nvml's mocks do not ship.
var T4 = gpus.Config{
	Name:         "Tesla T4",
	Architecture: gonvml.DEVICE_ARCH_TURING,
	Brand:        gonvml.BRAND_TESLA,
	MemoryMB:     15360,
	CudaMajor:    7,
	CudaMinor:    5,
	PciDeviceId:  0x1EB810DE,
}

// mockDriver is the driver the configured (non-DGX) mock servers report.
const mockDriver = "550.54.15"

// mockServers are the names --nvml=mock:<name> accepts, besides t4x<N>.
var mockServers = map[string]func() *server.Server{
	"dgxa100": dgxa100.New,
	"dgxh100": dgxh100.New,
	"dgxh200": dgxh200.New,
	"dgxb200": dgxb200.New,
	// mixed is a node with more than one GPU model, as some on-premise
	// nodes are: two A100 80GB, an A30 and a T4.
	"mixed": func() *server.Server {
		return server.NewServerWithGPUs(mockDriver, "12."+mockDriver, 12040,
			gpus.A100_PCIE_80GB, gpus.A100_PCIE_80GB, gpus.A30_PCIE_24GB, T4)
	},
}

// mockAliases are the short names the issue and docs use.
var mockAliases = map[string]string{
	"a100": "dgxa100", "h100": "dgxh100", "h200": "dgxh200", "b200": "dgxb200",
}

var t4Pattern = regexp.MustCompile(`^t4x([1-9][0-9]?)$`)

// MockServerNames lists the mock servers NewMock knows, sorted.
func MockServerNames() []string {
	names := []string{"t4x<N>", "b200nvl[<clique>]"}
	for n := range mockServers {
		names = append(names, n)
	}
	for n := range mockAliases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Mock is a go-nvml mock server completed with what the plugin needs and
// go-nvml's servers leave out: fixed UUIDs, PCI bus ids, NUMA nodes and
// event sets into which tests inject events.
type Mock struct {
	*server.Server
	name string

	mu          sync.Mutex
	sets        []*mockEventSet
	failing     gonvml.Return // returned by every call while != SUCCESS
	hung        chan struct{} // every call blocks on it while non-nil
	unsupported map[string]bool
	lost        map[string]bool
	usage       map[string]MockUsage
	// fabric: the GPUs report a complete NVLink fabric in clique
	// (mock b200nvl[N], fabric.go).
	fabric bool
	clique uint32
}

// MockUsage is what a mock GPU reports when its use is read. The zero
// value is an idle GPU: 0 % utilisation, no process.
type MockUsage struct {
	// GPUPercent and MemoryPercent are the utilisation rates.
	GPUPercent, MemoryPercent uint32
	// UtilizationUnsupported makes GetUtilizationRates answer
	// NOT_SUPPORTED, as a GPU in MIG mode does.
	UtilizationUnsupported bool
	// Processes are the compute processes running on the GPU; their
	// UsedGpuMemory adds up to the memory used.
	Processes []gonvml.ProcessInfo
	// Err, when not SUCCESS, is what reading utilisation and processes
	// returns (the rest of NVML keeps answering).
	Err gonvml.Return
}

// NewMock returns the mock server called name: dgxa100, dgxh100, dgxh200,
// dgxb200 (or a100, h100, h200, b200), t4x<N> (N Tesla T4s) or mixed.
// Every GPU gets a UUID fixed by the server name and its index, so tests and
// a kubelet's checkpoint see the same devices across restarts.
func NewMock(name string) (*Mock, error) {
	key := name
	if a, ok := mockAliases[key]; ok {
		key = a
	}
	var s *server.Server
	clique, fabric := nvlClique(key)
	if fabric {
		s = dgxb200.New()
	} else if newServer, ok := mockServers[key]; ok {
		s = newServer()
	} else if m := t4Pattern.FindStringSubmatch(key); m != nil {
		n, _ := strconv.Atoi(m[1])
		s = server.NewServerWithGPUs(mockDriver, "12."+mockDriver, 12040, gpus.Multiple(n, T4)...)
	} else {
		return nil, fmt.Errorf("unknown mock server %q (known: %v)", name, MockServerNames())
	}
	m := &Mock{Server: s, name: key, unsupported: map[string]bool{}, lost: map[string]bool{}, usage: map[string]MockUsage{},
		clique: clique, fabric: fabric}
	m.complete()
	return m, nil
}

// MockUUID is the UUID NewMock gives GPU index of server name.
func MockUUID(name string, index int) string {
	if a, ok := mockAliases[name]; ok {
		name = a
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("GPU-%08x-0000-4000-8000-%012x", h.Sum32(), index)
}

func (m *Mock) complete() {
	n := len(m.Devices)
	// Two NUMA nodes split the GPUs in halves, as on DGX systems; a single
	// GPU sits on node 0.
	perNode := max(1, (n+1)/2)
	for i, dev := range m.Devices {
		d := dev.(*server.Device)
		d.UUID = MockUUID(m.name, i)
		numa := i / perNode
		bus := d.PciBusID
		d.GetNumaNodeIdFunc = func() (int, gonvml.Return) {
			if r := m.fail(d.UUID); r != gonvml.SUCCESS {
				return 0, r
			}
			return numa, gonvml.SUCCESS
		}
		// go-nvml names its A100 "Mock NVIDIA A100-SXM4-40GB"; a real
		// driver never says "Mock", and labels derived from the name
		// should look like a real node's.
		name := strings.TrimPrefix(d.Config.Name, "Mock ")
		d.GetNameFunc = func() (string, gonvml.Return) { return name, gonvml.SUCCESS }
		getMem := d.GetMemoryInfoFunc
		d.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
			if r := m.fail(d.UUID); r != gonvml.SUCCESS {
				return gonvml.Memory{}, r
			}
			mem, r := getMem()
			mem.Used = 0
			for _, p := range m.usageOf(d.UUID).Processes {
				mem.Used += p.UsedGpuMemory
			}
			mem.Used = min(mem.Used, mem.Total)
			mem.Free = mem.Total - mem.Used
			return mem, r
		}
		d.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
			u, r := m.readUsage(d.UUID)
			if r != gonvml.SUCCESS {
				return gonvml.Utilization{}, r
			}
			if u.UtilizationUnsupported {
				return gonvml.Utilization{}, gonvml.ERROR_NOT_SUPPORTED
			}
			return gonvml.Utilization{Gpu: u.GPUPercent, Memory: u.MemoryPercent}, gonvml.SUCCESS
		}
		d.GetComputeRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) {
			u, r := m.readUsage(d.UUID)
			if r != gonvml.SUCCESS {
				return nil, r
			}
			return slices.Clone(u.Processes), gonvml.SUCCESS
		}
		d.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) {
			p := gonvml.PciInfo{PciDeviceId: d.Config.PciDeviceId, Bus: uint32(i)}
			// NVML reports an 8-digit PCI domain.
			for j, c := range "0000" + bus {
				p.BusId[j] = int8(c)
			}
			return p, gonvml.SUCCESS
		}
		d.GetGpuFabricInfoFunc = m.fabricInfo
		d.GetSupportedEventTypesFunc = func() (uint64, gonvml.Return) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.unsupported[d.UUID] {
				return 0, gonvml.ERROR_NOT_SUPPORTED
			}
			return EventXID | EventDoubleBitECC | uint64(gonvml.EventTypeSingleBitEccError) |
				uint64(gonvml.EventTypePState) | uint64(gonvml.EventTypeClock), gonvml.SUCCESS
		}
		d.RegisterEventsFunc = func(mask uint64, set gonvml.EventSet) gonvml.Return {
			s, ok := set.(*mockEventSet)
			if !ok {
				return gonvml.ERROR_INVALID_ARGUMENT
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.masks[d.UUID] = mask
			return gonvml.SUCCESS
		}
	}
	getByUUID := m.DeviceGetHandleByUUIDFunc
	m.DeviceGetHandleByUUIDFunc = func(uuid string) (gonvml.Device, gonvml.Return) {
		if r := m.fail(uuid); r != gonvml.SUCCESS {
			return nil, r
		}
		return getByUUID(uuid)
	}
	getDriver := m.SystemGetDriverVersionFunc
	m.SystemGetDriverVersionFunc = func() (string, gonvml.Return) {
		if r := m.fail(""); r != gonvml.SUCCESS {
			return "", r
		}
		return getDriver()
	}
	getCount := m.DeviceGetCountFunc
	m.DeviceGetCountFunc = func() (int, gonvml.Return) {
		if r := m.fail(""); r != gonvml.SUCCESS {
			return 0, r
		}
		return getCount()
	}
	m.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		s := &mockEventSet{masks: map[string]uint64{}, events: make(chan gonvml.EventData, 64), mock: m}
		s.WaitFunc = s.wait
		s.FreeFunc = func() gonvml.Return { return gonvml.SUCCESS }
		m.mu.Lock()
		m.sets = append(m.sets, s)
		m.mu.Unlock()
		return s, gonvml.SUCCESS
	}
}

// fail is the error NVML returns now for uuid ("" for node-wide calls).
func (m *Mock) fail(uuid string) gonvml.Return {
	m.mu.Lock()
	hung := m.hung
	m.mu.Unlock()
	if hung != nil {
		<-hung
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing != gonvml.SUCCESS {
		return m.failing
	}
	if uuid != "" && m.lost[uuid] {
		return gonvml.ERROR_GPU_IS_LOST
	}
	return gonvml.SUCCESS
}

func (m *Mock) usageOf(uuid string) MockUsage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.usage[uuid]
}

// readUsage is a GPU's scripted use, or the error reading it returns.
func (m *Mock) readUsage(uuid string) (MockUsage, gonvml.Return) {
	if r := m.fail(uuid); r != gonvml.SUCCESS {
		return MockUsage{}, r
	}
	u := m.usageOf(uuid)
	if u.Err != gonvml.SUCCESS {
		return MockUsage{}, u.Err
	}
	return u, gonvml.SUCCESS
}

// SetUsage scripts what the GPU reports from now on when its utilisation,
// processes and memory are read.
func (m *Mock) SetUsage(uuid string, u MockUsage) {
	m.mu.Lock()
	m.usage[uuid] = u
	m.mu.Unlock()
}

// SetUtilization sets a GPU's utilisation rate (utilization.gpu), keeping
// the rest of its scripted use.
func (m *Mock) SetUtilization(uuid string, gpuPercent uint32) {
	m.mu.Lock()
	u := m.usage[uuid]
	u.GPUPercent = gpuPercent
	m.usage[uuid] = u
	m.mu.Unlock()
}

// SetProcesses sets the compute processes running on a GPU, each using
// 1 GiB, keeping the rest of its scripted use; no pids: none.
func (m *Mock) SetProcesses(uuid string, pids ...uint32) {
	procs := make([]gonvml.ProcessInfo, len(pids))
	for i, pid := range pids {
		procs[i] = gonvml.ProcessInfo{Pid: pid, UsedGpuMemory: 1 << 30}
	}
	m.mu.Lock()
	u := m.usage[uuid]
	u.Processes = procs
	m.usage[uuid] = u
	m.mu.Unlock()
}

// SetUsageError makes reading a GPU's utilisation and processes fail with
// ret (gonvml.SUCCESS heals it), keeping the rest of its scripted use.
func (m *Mock) SetUsageError(uuid string, ret gonvml.Return) {
	m.mu.Lock()
	u := m.usage[uuid]
	u.Err = ret
	m.usage[uuid] = u
	m.mu.Unlock()
}

// Lib returns the plugin's Lib over this mock.
func (m *Mock) Lib() Lib { return New(m.Server) }

// InitLib returns the plugin's Lib over this mock, initialised, and the
// GPUs it lists.
func (m *Mock) InitLib() (Lib, []GPU, error) {
	lib := m.Lib()
	if err := lib.Init(); err != nil {
		return nil, nil, err
	}
	gpus, err := lib.GPUs()
	if err != nil {
		return nil, nil, err
	}
	return lib, gpus, nil
}

// TB is the part of testing.TB that MustMock uses.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// MustMock is NewMock and InitLib for tests: the mock server called name,
// its initialised Lib and its GPUs; any error fails t.
func MustMock(t TB, name string) (*Mock, Lib, []GPU) {
	t.Helper()
	m, err := NewMock(name)
	if err != nil {
		t.Fatal(err)
	}
	lib, gpus, err := m.InitLib()
	if err != nil {
		t.Fatal(err)
	}
	return m, lib, gpus
}

// UUIDs lists the GPUs' UUIDs in index order.
func (m *Mock) UUIDs() []string {
	var out []string
	for _, d := range m.Devices {
		out = append(out, d.(*server.Device).UUID)
	}
	return out
}

// InjectXID delivers an XID event for the GPU to every event set that
// registered XID events for it, as the driver does after an XID.
func (m *Mock) InjectXID(uuid string, xid uint64) error {
	return m.inject(uuid, EventXID, xid)
}

// InjectEvent delivers an event of any type; uuid "" means an event NVML
// could not attribute to a GPU.
func (m *Mock) InjectEvent(uuid string, eventType, data uint64) error {
	return m.inject(uuid, eventType, data)
}

func (m *Mock) inject(uuid string, eventType, data uint64) error {
	var dev gonvml.Device
	if uuid != "" {
		i := slices.Index(m.UUIDs(), uuid)
		if i < 0 {
			return fmt.Errorf("no GPU %s", uuid)
		}
		dev = m.Devices[i]
	}
	m.mu.Lock()
	sets := slices.Clone(m.sets)
	m.mu.Unlock()
	delivered := false
	for _, s := range sets {
		s.mu.Lock()
		mask, ok := s.masks[uuid]
		s.mu.Unlock()
		if uuid != "" && (!ok || mask&eventType == 0) {
			continue
		}
		select {
		case s.events <- gonvml.EventData{Device: dev, EventType: eventType, EventData: data}:
			delivered = true
		default:
			return fmt.Errorf("event set full")
		}
	}
	if !delivered {
		return fmt.Errorf("no event set watches event %#x on %q", eventType, uuid)
	}
	return nil
}

// Watching reports whether an event set has registered eventType for the
// GPU, that is whether InjectEvent would reach someone.
func (m *Mock) Watching(uuid string, eventType uint64) bool {
	m.mu.Lock()
	sets := slices.Clone(m.sets)
	m.mu.Unlock()
	for _, s := range sets {
		s.mu.Lock()
		mask := s.masks[uuid]
		s.mu.Unlock()
		if mask&eventType != 0 {
			return true
		}
	}
	return false
}

// WatchingAll reports whether every GPU that supports events has an event
// set registered for eventType: then nothing injected goes astray.
func (m *Mock) WatchingAll(eventType uint64) bool {
	for _, u := range m.UUIDs() {
		m.mu.Lock()
		unsupported := m.unsupported[u]
		m.mu.Unlock()
		if !unsupported && !m.Watching(u, eventType) {
			return false
		}
	}
	return true
}

// SetFailing makes every NVML call fail with ret (pass gonvml.SUCCESS to
// heal), as when the driver stops answering.
func (m *Mock) SetFailing(ret gonvml.Return) {
	m.mu.Lock()
	m.failing = ret
	m.mu.Unlock()
}

// SetHung makes every NVML call block until SetHung(false), as a wedged
// driver does.
func (m *Mock) SetHung(hung bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case hung && m.hung == nil:
		m.hung = make(chan struct{})
	case !hung && m.hung != nil:
		close(m.hung)
		m.hung = nil
	}
}

// SetLost makes NVML calls about one GPU fail with GPU_IS_LOST, or heals it.
func (m *Mock) SetLost(uuid string, lost bool) {
	m.mu.Lock()
	m.lost[uuid] = lost
	m.mu.Unlock()
}

// SetEventsUnsupported makes a GPU report that it supports no events.
func (m *Mock) SetEventsUnsupported(uuid string, unsupported bool) {
	m.mu.Lock()
	m.unsupported[uuid] = unsupported
	m.mu.Unlock()
}

// mockEventSet is an NVML event set fed by Mock.inject.
type mockEventSet struct {
	mock.EventSet
	mock   *Mock
	mu     sync.Mutex
	masks  map[string]uint64
	events chan gonvml.EventData
}

func (s *mockEventSet) wait(timeoutMs uint32) (gonvml.EventData, gonvml.Return) {
	if r := s.mock.fail(""); r != gonvml.SUCCESS {
		// A failing driver answers at once; don't let callers spin.
		time.Sleep(time.Duration(min(timeoutMs, 10)) * time.Millisecond)
		return gonvml.EventData{}, r
	}
	t := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
	defer t.Stop()
	select {
	case e := <-s.events:
		return e, gonvml.SUCCESS
	case <-t.C:
		return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
	}
}
