package plugin

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// EnvVisibleDevices is the variable the NVIDIA container runtime reads to
// give a container its GPUs.
const EnvVisibleDevices = "NVIDIA_VISIBLE_DEVICES"

// EnvGPUMemory tells a container how many GiB of GPU memory it was given.
const EnvGPUMemory = "GPUSPACE_GPU_MEMORY_GIB"

// Resource is one extended resource the plugin advertises: what its
// devices are and how to allocate them. Implementations are pure: health
// comes in as an argument, so they are easy to test.
type Resource interface {
	// Name is the extended resource name ("nvidia.com/gpu").
	Name() string
	// Devices lists the devices; unhealthy maps GPU UUIDs to reasons.
	Devices(unhealthy map[string]string) []*pluginapi.Device
	// Allocate answers one container's request for device IDs.
	Allocate(ids []string) (*pluginapi.ContainerAllocateResponse, error)
	// Preferred picks size devices from available, including must. It
	// never fails: with nothing better to go by it picks in index order.
	Preferred(available, must []string, size int) []string
}

func topology(g nvml.GPU) *pluginapi.TopologyInfo {
	if g.NUMANode < 0 {
		return nil
	}
	return &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(g.NUMANode)}}}
}

func healthOf(unhealthy map[string]string, uuid string) string {
	if _, bad := unhealthy[uuid]; bad {
		return pluginapi.Unhealthy
	}
	return pluginapi.Healthy
}

// gpuSet indexes a node's GPUs by UUID.
type gpuSet struct {
	gpus   []nvml.GPU
	byUUID map[string]nvml.GPU
}

func newGPUSet(gpus []nvml.GPU) gpuSet {
	s := gpuSet{gpus: slices.Clone(gpus), byUUID: map[string]nvml.GPU{}}
	for _, g := range gpus {
		s.byUUID[g.UUID] = g
	}
	return s
}

// visible is NVIDIA_VISIBLE_DEVICES for a set of GPUs, in index order.
func (s gpuSet) visible(uuids map[string]bool) string {
	var out []string
	for _, g := range s.gpus {
		if uuids[g.UUID] {
			out = append(out, g.UUID)
		}
	}
	return strings.Join(out, ",")
}

// GPUs is the whole-GPU resource: one device per GPU, its ID the UUID.
type GPUs struct {
	name string
	set  gpuSet
}

// NewGPUs returns the whole-GPU resource called name over gpus.
func NewGPUs(name string, gpus []nvml.GPU) *GPUs {
	return &GPUs{name: name, set: newGPUSet(gpus)}
}

// Name implements Resource.
func (r *GPUs) Name() string { return r.name }

// Devices implements Resource.
func (r *GPUs) Devices(unhealthy map[string]string) []*pluginapi.Device {
	out := make([]*pluginapi.Device, 0, len(r.set.gpus))
	for _, g := range r.set.gpus {
		out = append(out, &pluginapi.Device{ID: g.UUID, Health: healthOf(unhealthy, g.UUID), Topology: topology(g)})
	}
	return out
}

// Allocate implements Resource.
func (r *GPUs) Allocate(ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	uuids := map[string]bool{}
	for _, id := range ids {
		if _, ok := r.set.byUUID[id]; !ok {
			return nil, fmt.Errorf("unknown GPU %q", id)
		}
		uuids[id] = true
	}
	return &pluginapi.ContainerAllocateResponse{
		Envs: map[string]string{EnvVisibleDevices: r.set.visible(uuids)},
	}, nil
}

// Preferred implements Resource: it keeps the GPUs on as few NUMA nodes as
// it can, choosing the NUMA node whose free GPUs fit the request most
// tightly so that larger groups stay whole for larger requests.
func (r *GPUs) Preferred(available, must []string, size int) []string {
	chosen, left := startWith(must, size)
	if left <= 0 {
		return chosen
	}
	taken := toSet(chosen)
	mustNUMA := map[int]bool{}
	for _, u := range chosen {
		if g, ok := r.set.byUUID[u]; ok {
			mustNUMA[g.NUMANode] = true
		}
	}
	// Free GPUs by NUMA node, each group in index order.
	avail := toSet(available)
	groups := map[int][]string{}
	var unknown []string // not ours: the kubelet should never send them
	for _, g := range r.set.gpus {
		if avail[g.UUID] && !taken[g.UUID] {
			groups[g.NUMANode] = append(groups[g.NUMANode], g.UUID)
		}
	}
	for _, u := range available {
		if _, ok := r.set.byUUID[u]; !ok && !taken[u] {
			unknown = append(unknown, u)
		}
	}
	order := func(n int) (bool, int) { return !mustNUMA[n], n }
	nodes := make([]int, 0, len(groups))
	for n := range groups {
		nodes = append(nodes, n)
	}
	// The best single node: where must already is, then the tightest fit.
	slices.SortFunc(nodes, func(a, b int) int {
		ma, na := order(a)
		mb, nb := order(b)
		return cmp.Or(cmpBool(ma, mb), cmp.Compare(len(groups[a]), len(groups[b])), cmpNUMA(na, nb))
	})
	for _, n := range nodes {
		if len(groups[n]) >= left {
			return append(chosen, groups[n][:left]...)
		}
	}
	// No single node fits: fill from the largest groups, so the GPUs span
	// as few nodes as possible.
	slices.SortFunc(nodes, func(a, b int) int {
		ma, na := order(a)
		mb, nb := order(b)
		return cmp.Or(cmpBool(ma, mb), cmp.Compare(len(groups[b]), len(groups[a])), cmpNUMA(na, nb))
	})
	for _, n := range nodes {
		k := min(left, len(groups[n]))
		chosen = append(chosen, groups[n][:k]...)
		left -= k
	}
	k := min(left, len(unknown))
	return append(chosen, unknown[:k]...)
}

// cmpNUMA orders NUMA ids with "unknown" last.
func cmpNUMA(a, b int) int {
	return cmp.Or(cmpBool(a < 0, b < 0), cmp.Compare(a, b))
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// startWith returns the must-include devices (deduplicated) and how many
// more are wanted.
func startWith(must []string, size int) ([]string, int) {
	var chosen []string
	seen := map[string]bool{}
	for _, u := range must {
		if !seen[u] {
			seen[u] = true
			chosen = append(chosen, u)
		}
	}
	return chosen, size - len(chosen)
}

func toSet(ids []string) map[string]bool {
	s := make(map[string]bool, len(ids))
	for _, id := range ids {
		s[id] = true
	}
	return s
}

// Memory is the GPU-memory resource: one device per GiB of each GPU, with
// the ID "<uuid>-<k>", so that every unit names the GPU it lives on.
type Memory struct {
	name string
	set  gpuSet
}

// NewMemory returns the GPU-memory resource called name over gpus.
func NewMemory(name string, gpus []nvml.GPU) *Memory {
	return &Memory{name: name, set: newGPUSet(gpus)}
}

// Name implements Resource.
func (r *Memory) Name() string { return r.name }

// UnitsOf is how many GiB units a GPU advertises: its memory in whole GiB.
func UnitsOf(g nvml.GPU) int { return int(g.MemoryMiB / 1024) }

// UnitID is the device ID of unit k of a GPU.
func UnitID(uuid string, k int) string { return uuid + "-" + strconv.Itoa(k) }

// ParseUnitID splits a unit's device ID into its GPU's UUID and k.
func ParseUnitID(id string) (uuid string, k int, err error) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, fmt.Errorf("GPU memory unit %q: want <uuid>-<k>", id)
	}
	k, err = strconv.Atoi(id[i+1:])
	if err != nil || k < 0 {
		return "", 0, fmt.Errorf("GPU memory unit %q: want <uuid>-<k>", id)
	}
	return id[:i], k, nil
}

// Devices implements Resource.
func (r *Memory) Devices(unhealthy map[string]string) []*pluginapi.Device {
	var out []*pluginapi.Device
	for _, g := range r.set.gpus {
		h, topo := healthOf(unhealthy, g.UUID), topology(g)
		for k := range UnitsOf(g) {
			out = append(out, &pluginapi.Device{ID: UnitID(g.UUID, k), Health: h, Topology: topo})
		}
	}
	return out
}

// Allocate implements Resource: the container sees every GPU one of its
// units lives on.
func (r *Memory) Allocate(ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	uuids := map[string]bool{}
	for _, id := range ids {
		uuid, k, err := ParseUnitID(id)
		if err != nil {
			return nil, err
		}
		g, ok := r.set.byUUID[uuid]
		if !ok || k >= UnitsOf(g) {
			return nil, fmt.Errorf("unknown GPU memory unit %q", id)
		}
		uuids[uuid] = true
	}
	return &pluginapi.ContainerAllocateResponse{
		Envs: map[string]string{
			EnvVisibleDevices: r.set.visible(uuids),
			EnvGPUMemory:      strconv.Itoa(len(ids)),
		},
	}, nil
}

// Preferred implements Resource: it packs units onto as few GPUs as it
// can, first onto GPUs must already uses, then onto the GPU whose free
// units fit the rest most tightly, else onto the GPUs with the most free
// units.
func (r *Memory) Preferred(available, must []string, size int) []string {
	chosen, left := startWith(must, size)
	if left <= 0 {
		return chosen
	}
	taken := toSet(chosen)
	touched := map[string]bool{}
	for _, id := range chosen {
		if uuid, _, err := ParseUnitID(id); err == nil {
			touched[uuid] = true
		}
	}
	type unit struct {
		id string
		k  int
	}
	type gpuUnits struct {
		index int
		uuid  string
		free  []unit // by k
	}
	byGPU := map[string]*gpuUnits{}
	var other []string // IDs that are not ours
	for _, id := range available {
		if taken[id] {
			continue
		}
		uuid, k, err := ParseUnitID(id)
		g, ok := r.set.byUUID[uuid]
		if err != nil || !ok || k >= UnitsOf(g) {
			other = append(other, id)
			continue
		}
		if byGPU[uuid] == nil {
			byGPU[uuid] = &gpuUnits{index: g.Index, uuid: uuid}
		}
		byGPU[uuid].free = append(byGPU[uuid].free, unit{id, k})
	}
	var gpus []*gpuUnits
	for _, g := range byGPU {
		slices.SortFunc(g.free, func(a, b unit) int { return cmp.Compare(a.k, b.k) })
		gpus = append(gpus, g)
	}
	take := func(g *gpuUnits) {
		n := min(left, len(g.free))
		for _, u := range g.free[:n] {
			chosen = append(chosen, u.id)
		}
		left -= n
		g.free = g.free[n:]
	}
	// Most free first, then index: the order for filling.
	byFree := func() {
		slices.SortFunc(gpus, func(a, b *gpuUnits) int {
			return cmp.Or(cmp.Compare(len(b.free), len(a.free)), cmp.Compare(a.index, b.index))
		})
	}
	byFree()
	for _, g := range gpus {
		if touched[g.uuid] && left > 0 {
			take(g)
		}
	}
	for left > 0 {
		byFree()
		var best *gpuUnits
		for _, g := range gpus {
			if len(g.free) >= left && (best == nil || len(g.free) < len(best.free)) {
				best = g
			}
		}
		if best == nil {
			// Nothing fits whole: the GPU with the most free units.
			for _, g := range gpus {
				if len(g.free) > 0 {
					best = g
					break
				}
			}
		}
		if best == nil {
			break
		}
		take(best)
	}
	k := max(0, min(left, len(other)))
	return append(chosen, other[:k]...)
}
