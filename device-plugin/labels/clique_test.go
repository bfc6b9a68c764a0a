package labels

import (
	"testing"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// TestCliqueLabel: a node whose GPUs all report one NVLink clique is
// labelled with it; GPUs that disagree or have none give no label.
func TestCliqueLabel(t *testing.T) {
	gpu := func(clique string) nvml.GPU { return nvml.GPU{Name: "NVIDIA B200", MemoryMiB: 183359, Clique: clique} }
	for _, tc := range []struct {
		name string
		gpus []nvml.GPU
		want string
	}{
		{"one clique", []nvml.GPU{gpu("u.1"), gpu("u.1")}, "u.1"},
		{"two cliques", []nvml.GPU{gpu("u.1"), gpu("u.2")}, ""},
		{"no fabric", []nvml.GPU{gpu(""), gpu("")}, ""},
	} {
		got, ok := For(tc.gpus)[v1alpha1.LabelGPUClique]
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: clique label %q (set %v), want %q", tc.name, got, ok, tc.want)
		}
	}
}
