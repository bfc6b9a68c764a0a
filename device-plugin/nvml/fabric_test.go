package nvml_test

import (
	"strings"
	"testing"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// TestFabric: a b200nvl mock's GPUs report a complete NVLink fabric, so
// each has the clique "<ClusterUUID>.<CliqueID>"; GPUs without a fabric
// (a DGX H100 mock, as most single-node GPUs) have no clique and say
// why.
func TestFabric(t *testing.T) {
	uuid := nvml.CliqueOf(nvml.MockFabricUUID(), 0)
	uuid = strings.TrimSuffix(uuid, ".0")
	for _, tc := range []struct {
		mock, clique, state string
	}{
		{"b200nvl", uuid + ".1", "completed"},
		{"b200nvl7", uuid + ".7", "completed"},
		{"dgxh100", "", "not supported"},
	} {
		_, _, gpus := nvml.MustMock(t, tc.mock)
		if len(gpus) == 0 {
			t.Fatalf("%s: no GPUs", tc.mock)
		}
		for _, g := range gpus {
			if g.Clique != tc.clique || g.FabricState != tc.state {
				t.Errorf("%s GPU %d: clique %q (%s), want %q (%s)", tc.mock, g.Index, g.Clique, g.FabricState, tc.clique, tc.state)
			}
		}
	}
	if got := nvml.CliqueOf([16]uint8{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}, 3); got != "12345678-9abc-def0-0102-030405060708.3" {
		t.Errorf("CliqueOf = %s", got)
	}
}
