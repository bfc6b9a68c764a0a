package nvml

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// fabric is a GPU's NVLink clique, "<ClusterUUID>.<CliqueID>" as NVIDIA's
// feature discovery writes nvidia.com/gpu.clique, once NVML reports the
// GPU fabric complete and healthy; and what NVML reports of the fabric.
// Most single-node GPUs have none ("not supported").
func (a *adapter) fabric(d gonvml.Device) (clique, state string) {
	// Drivers before 525 lack the symbol (see numaNode).
	if a.lib.Extensions().LookupSymbol("nvmlDeviceGetGpuFabricInfo") != nil {
		return "", "not supported by the driver"
	}
	info, ret := d.GetGpuFabricInfo()
	switch {
	case ret == gonvml.ERROR_NOT_SUPPORTED:
		return "", "not supported"
	case ret != gonvml.SUCCESS:
		return "", "unknown: " + gonvml.ErrorString(ret)
	}
	switch info.State {
	case gonvml.GPU_FABRIC_STATE_NOT_SUPPORTED:
		return "", "not supported"
	case gonvml.GPU_FABRIC_STATE_NOT_STARTED:
		return "", "not started"
	case gonvml.GPU_FABRIC_STATE_IN_PROGRESS:
		return "", "in progress"
	case gonvml.GPU_FABRIC_STATE_COMPLETED:
		if gonvml.Return(info.Status) != gonvml.SUCCESS {
			return "", "completed with error: " + gonvml.ErrorString(gonvml.Return(info.Status))
		}
		return CliqueOf(info.ClusterUuid, info.CliqueId), "completed"
	}
	return "", fmt.Sprintf("unknown state %d", info.State)
}

// CliqueOf is the clique label value of a fabric's cluster UUID and
// clique id.
func CliqueOf(u [16]uint8, id uint32) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x.%d", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16], id)
}

// nvlPattern is the mock of GB200-style multi-node NVLink nodes: B200 GPUs
// whose fabric is complete, in clique N (default 1) of one mock cluster.
var nvlPattern = regexp.MustCompile(`^b200nvl([0-9]{1,3})?$`)

func nvlClique(name string) (uint32, bool) {
	m := nvlPattern.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	id := uint64(1)
	if m[1] != "" {
		id, _ = strconv.ParseUint(m[1], 10, 32)
	}
	return uint32(id), true
}

// MockFabricUUID is the NVLink cluster UUID of every b200nvl mock.
func MockFabricUUID() [16]uint8 {
	var u [16]uint8
	h := fnv.New128a()
	h.Write([]byte("gpuspace-mock-nvl-fabric"))
	copy(u[:], h.Sum(nil))
	return u
}

// fabricInfo is a mock GPU's fabric: complete in the mock's clique for
// b200nvl, else not supported (as on most single-node GPUs).
func (m *Mock) fabricInfo() (gonvml.GpuFabricInfo, gonvml.Return) {
	if r := m.fail(""); r != gonvml.SUCCESS {
		return gonvml.GpuFabricInfo{}, r
	}
	if !m.fabric {
		return gonvml.GpuFabricInfo{}, gonvml.ERROR_NOT_SUPPORTED
	}
	return gonvml.GpuFabricInfo{ClusterUuid: MockFabricUUID(), CliqueId: m.clique,
		Status: uint32(gonvml.SUCCESS), State: gonvml.GPU_FABRIC_STATE_COMPLETED}, gonvml.SUCCESS
}
