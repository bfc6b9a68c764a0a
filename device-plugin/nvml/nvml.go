// Package nvml puts NVML behind the small interface the device plugin needs
// and adapts github.com/NVIDIA/go-nvml to it. The same adapter serves the
// real library (libnvidia-ml.so.1, loaded at run time) and go-nvml's mock
// servers, so everything above this package runs unchanged on machines
// without a GPU.
package nvml

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NoNUMA is GPU.NUMANode when the node's NUMA affinity is unknown.
const NoNUMA = -1

// Event types the health checker may ask for. They are NVML's values.
const (
	EventXID            = uint64(gonvml.EventTypeXidCriticalError)
	EventDoubleBitECC   = uint64(gonvml.EventTypeDoubleBitEccError)
	EventGPUUnavailable = uint64(gonvml.EventTypeGpuUnavailableError)
)

// Errors the adapter returns; test them with errors.Is.
var (
	// ErrLibraryNotFound means libnvidia-ml could not be loaded: the node has
	// no NVIDIA driver, or the container does not see it.
	ErrLibraryNotFound = errors.New("NVML library (libnvidia-ml.so.1) not found")
	// ErrNotSupported means the GPU or driver does not support a query.
	ErrNotSupported = errors.New("not supported")
	// ErrTimeout is returned by EventWatcher.Wait when no event arrived.
	ErrTimeout = errors.New("timed out")
)

// GPU is what the plugin needs to know about one GPU.
type GPU struct {
	// Index is NVML's device index (what nvidia-smi shows).
	Index int `json:"index"`
	// UUID is the GPU's stable identity, "GPU-…".
	UUID string `json:"uuid"`
	// Name is the product name as NVML reports it ("NVIDIA H100 80GB HBM3").
	Name string `json:"name"`
	// MemoryMiB is the total framebuffer memory.
	MemoryMiB uint64 `json:"memoryMiB"`
	// PCIBusID is the domain:bus:device.function address, lower case.
	PCIBusID string `json:"pciBusID,omitempty"`
	// NUMANode is the NUMA node the GPU is attached to, or NoNUMA.
	NUMANode int `json:"numaNode"`
	// Minor is the minor number of /dev/nvidia<minor>.
	Minor int `json:"minor"`
	// ComputeCapability is "major.minor" ("9.0").
	ComputeCapability string `json:"computeCapability,omitempty"`
	// Clique is the GPU's multi-node NVLink domain,
	// "<ClusterUUID>.<CliqueID>", once NVML reports its fabric complete;
	// FabricState is what NVML reports of the fabric (fabric.go).
	Clique      string `json:"clique,omitempty"`
	FabricState string `json:"fabricState,omitempty"`
}

// Event is one NVML event for one GPU.
type Event struct {
	// UUID of the GPU the event is about; "" when NVML did not say, which
	// callers must treat as "any GPU".
	UUID string
	// Type is the NVML event type (EventXID, …).
	Type uint64
	// XID is the XID for EventXID events.
	XID uint64
}

// EventWatcher delivers events registered with Lib.WatchEvents.
type EventWatcher interface {
	// Wait blocks until an event arrives or timeout passes (ErrTimeout).
	// Other errors mean NVML itself is failing.
	Wait(timeout time.Duration) (Event, error)
	// Close frees the underlying event set.
	Close() error
}

// Lib is the NVML the device plugin uses. It is deliberately small: every
// method is one the plugin needs, so a fake is a few lines.
type Lib interface {
	// Init loads and initialises NVML; every other call needs it.
	Init() error
	// Shutdown releases NVML.
	Shutdown() error
	// DriverVersion is the kernel driver version ("550.54.15").
	DriverVersion() (string, error)
	// GPUs lists the node's GPUs in index order.
	GPUs() ([]GPU, error)
	// WatchEvents registers the event types in mask for each GPU (only the
	// supported subset of mask is registered). unsupported lists the GPUs
	// that support none of mask: they cannot be monitored by events.
	WatchEvents(uuids []string, mask uint64) (w EventWatcher, unsupported []string, err error)
	// Probe checks that a GPU still answers; an error means it does not.
	Probe(uuid string) error
	// Usage reads how the GPU is used now: utilisation rates, memory used
	// and running compute processes. Utilisation that the GPU does not
	// report (MIG mode, some vGPUs) leaves UtilizationSupported false;
	// any other failure, including an unreadable process list, is an
	// error, because without it the GPU cannot be known to be idle.
	Usage(uuid string) (Usage, error)
}

// Usage is one reading of how a GPU is used.
type Usage struct {
	// GPUPercent is NVML's utilization.gpu (nvidia-smi's
	// utilization.gpu, dcgm-exporter's DCGM_FI_DEV_GPU_UTIL): the percentage
	// of the last sample period (1/6 s to 1 s) in which a kernel ran.
	// Valid when UtilizationSupported.
	GPUPercent uint32 `json:"gpuPercent"`
	// MemoryPercent is utilization.memory: the percentage of that period
	// in which device memory was read or written.
	MemoryPercent uint32 `json:"memoryPercent"`
	// UtilizationSupported is false where the GPU reports no utilisation.
	UtilizationSupported bool `json:"utilizationSupported"`
	// MemoryUsedBytes is the framebuffer memory in use.
	MemoryUsedBytes uint64 `json:"memoryUsedBytes"`
	// ComputeProcesses is the number of processes with a compute context
	// on the GPU.
	ComputeProcesses int `json:"computeProcesses"`
}

// adapter implements Lib over a go-nvml Interface: the real library or a
// mock server.
type adapter struct {
	lib gonvml.Interface
	// sysfs is where the NUMA node of a PCI device is read from when NVML
	// does not report it ("" to never read sysfs, as for mocks).
	sysfs string

	mu      sync.Mutex
	handles map[string]gonvml.Device
}

// NewReal returns Lib over the node's libnvidia-ml.so.1. Nothing is loaded
// until Init.
func NewReal() Lib {
	return &adapter{lib: gonvml.New(), sysfs: "/sys"}
}

// New returns Lib over any go-nvml Interface, such as a mock server.
func New(lib gonvml.Interface) Lib {
	return &adapter{lib: lib}
}

func nvmlErr(op string, ret gonvml.Return) error {
	switch ret {
	case gonvml.SUCCESS:
		return nil
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		return fmt.Errorf("%s: %w", op, ErrLibraryNotFound)
	case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_FUNCTION_NOT_FOUND:
		return fmt.Errorf("%s: %w", op, ErrNotSupported)
	case gonvml.ERROR_TIMEOUT:
		return fmt.Errorf("%s: %w", op, ErrTimeout)
	}
	return fmt.Errorf("%s: %w", op, ret)
}

func (a *adapter) Init() error {
	return nvmlErr("nvml init", a.lib.Init())
}

func (a *adapter) Shutdown() error {
	return nvmlErr("nvml shutdown", a.lib.Shutdown())
}

func (a *adapter) DriverVersion() (string, error) {
	v, ret := a.lib.SystemGetDriverVersion()
	return v, nvmlErr("driver version", ret)
}

func (a *adapter) GPUs() ([]GPU, error) {
	n, ret := a.lib.DeviceGetCount()
	if err := nvmlErr("device count", ret); err != nil {
		return nil, err
	}
	gpus := make([]GPU, 0, n)
	handles := make(map[string]gonvml.Device, n)
	for i := range n {
		d, ret := a.lib.DeviceGetHandleByIndex(i)
		if err := nvmlErr(fmt.Sprintf("device %d", i), ret); err != nil {
			return nil, err
		}
		g, err := a.describe(i, d)
		if err != nil {
			return nil, fmt.Errorf("device %d: %w", i, err)
		}
		handles[g.UUID] = d
		gpus = append(gpus, g)
	}
	a.mu.Lock()
	a.handles = handles
	a.mu.Unlock()
	return gpus, nil
}

func (a *adapter) describe(index int, d gonvml.Device) (GPU, error) {
	g := GPU{Index: index, NUMANode: NoNUMA, Minor: index}
	var ret gonvml.Return
	if g.UUID, ret = d.GetUUID(); ret != gonvml.SUCCESS {
		return g, nvmlErr("uuid", ret)
	}
	if g.Name, ret = d.GetName(); ret != gonvml.SUCCESS {
		return g, nvmlErr("name", ret)
	}
	mem, ret := d.GetMemoryInfo()
	if ret != gonvml.SUCCESS {
		return g, nvmlErr("memory info", ret)
	}
	g.MemoryMiB = mem.Total / (1024 * 1024)
	if minor, ret := d.GetMinorNumber(); ret == gonvml.SUCCESS {
		g.Minor = minor
	}
	if major, minor, ret := d.GetCudaComputeCapability(); ret == gonvml.SUCCESS {
		g.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	}
	if pci, ret := d.GetPciInfo(); ret == gonvml.SUCCESS {
		g.PCIBusID = busID(pci)
	}
	g.NUMANode = a.numaNode(d, g.PCIBusID)
	g.Clique, g.FabricState = a.fabric(d)
	return g, nil
}

// numaNode asks NVML first (drivers ≥ 550 answer) and falls back to sysfs,
// which every driver populates; unknown is NoNUMA, never an error, because
// topology only guides preferred allocation.
func (a *adapter) numaNode(d gonvml.Device, bus string) int {
	// An older libnvidia-ml lacks the symbol, and calling it anyway would
	// kill the process at lazy binding, so look it up first.
	if a.lib.Extensions().LookupSymbol("nvmlDeviceGetNumaNodeId") == nil {
		if n, ret := d.GetNumaNodeId(); ret == gonvml.SUCCESS && n >= 0 {
			return n
		}
	}
	return a.sysfsNUMA(bus)
}

func (a *adapter) sysfsNUMA(bus string) int {
	if a.sysfs == "" || bus == "" {
		return NoNUMA
	}
	// NVML's bus id has an 8-digit domain; sysfs uses 4 digits.
	id := bus
	if len(id) == len("00000000:00:00.0") {
		id = id[4:]
	}
	b, err := os.ReadFile(filepath.Join(a.sysfs, "bus/pci/devices", id, "numa_node"))
	if err != nil {
		return NoNUMA
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return NoNUMA
	}
	return n
}

func busID(p gonvml.PciInfo) string {
	var sb strings.Builder
	for _, c := range p.BusId {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return strings.ToLower(sb.String())
}

func (a *adapter) handle(uuid string) (gonvml.Device, error) {
	a.mu.Lock()
	d, ok := a.handles[uuid]
	a.mu.Unlock()
	if ok {
		return d, nil
	}
	d, ret := a.lib.DeviceGetHandleByUUID(uuid)
	if err := nvmlErr("device "+uuid, ret); err != nil {
		return nil, err
	}
	return d, nil
}

func (a *adapter) Probe(uuid string) error {
	// Looking the device up again by UUID (not through a cached handle)
	// and reading its memory touches the driver the way a workload would;
	// a GPU that fell off the bus fails here with GPU_IS_LOST.
	d, ret := a.lib.DeviceGetHandleByUUID(uuid)
	if err := nvmlErr("probe "+uuid, ret); err != nil {
		return err
	}
	if _, ret := d.GetMemoryInfo(); ret != gonvml.SUCCESS {
		return nvmlErr("probe "+uuid, ret)
	}
	return nil
}

func (a *adapter) Usage(uuid string) (Usage, error) {
	d, err := a.handle(uuid)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	switch r, ret := d.GetUtilizationRates(); ret {
	case gonvml.SUCCESS:
		u.GPUPercent, u.MemoryPercent, u.UtilizationSupported = r.Gpu, r.Memory, true
	case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_FUNCTION_NOT_FOUND:
	default:
		return Usage{}, nvmlErr("utilization of "+uuid, ret)
	}
	procs, ret := d.GetComputeRunningProcesses()
	if err := nvmlErr("compute processes of "+uuid, ret); err != nil {
		return Usage{}, err
	}
	u.ComputeProcesses = len(procs)
	mem, ret := d.GetMemoryInfo()
	if err := nvmlErr("memory info of "+uuid, ret); err != nil {
		return Usage{}, err
	}
	u.MemoryUsedBytes = mem.Used
	return u, nil
}

func (a *adapter) WatchEvents(uuids []string, mask uint64) (EventWatcher, []string, error) {
	set, ret := a.lib.EventSetCreate()
	if err := nvmlErr("create event set", ret); err != nil {
		return nil, nil, err
	}
	w := &watcher{set: set, uuids: map[gonvml.Device]string{}}
	var unsupported []string
	for _, uuid := range uuids {
		d, err := a.handle(uuid)
		if err != nil {
			set.Free()
			return nil, nil, err
		}
		supported, ret := d.GetSupportedEventTypes()
		if ret == gonvml.ERROR_NOT_SUPPORTED {
			unsupported = append(unsupported, uuid)
			continue
		}
		if err := nvmlErr("supported events of "+uuid, ret); err != nil {
			set.Free()
			return nil, nil, err
		}
		m := mask & supported
		if m == 0 {
			unsupported = append(unsupported, uuid)
			continue
		}
		switch ret := d.RegisterEvents(m, set); ret {
		case gonvml.SUCCESS:
			w.uuids[d] = uuid
		case gonvml.ERROR_NOT_SUPPORTED:
			unsupported = append(unsupported, uuid)
		default:
			set.Free()
			return nil, nil, nvmlErr("register events of "+uuid, ret)
		}
	}
	return w, unsupported, nil
}

type watcher struct {
	set   gonvml.EventSet
	uuids map[gonvml.Device]string
}

func (w *watcher) Wait(timeout time.Duration) (Event, error) {
	ms := timeout.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	e, ret := w.set.Wait(uint32(ms))
	if err := nvmlErr("wait for events", ret); err != nil {
		return Event{}, err
	}
	ev := Event{Type: e.EventType, XID: e.EventData}
	if e.Device != nil {
		// Handles compare equal for the same GPU (the same C pointer, or
		// the same mock object); fall back to asking NVML.
		if uuid, ok := w.uuids[e.Device]; ok {
			ev.UUID = uuid
		} else if uuid, ret := e.Device.GetUUID(); ret == gonvml.SUCCESS {
			ev.UUID = uuid
		}
	}
	return ev, nil
}

func (w *watcher) Close() error {
	return nvmlErr("free event set", w.set.Free())
}
