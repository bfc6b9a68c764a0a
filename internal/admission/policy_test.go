package admission

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func TestValidateAgainstPolicy(t *testing.T) {
	pol := &v1alpha1.WorkspacePolicy{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: v1alpha1.WorkspacePolicySpec{
		PriorityRange: v1alpha1.BandMedium, MaxGPRs: ptr.To[int32](2), MaxExitDurationPerGPR: "1W", EnforceIdleTimeOut: true,
		GPUConstraints: v1alpha1.GPUConstraints{GPUShapes: []string{"H100"}, MaxGPUPerGPR: 16, MaxMemoryPerGPR: 1280},
		ClusterConstraints: []v1alpha1.ClusterGPUConstraints{{ClusterName: "small",
			GPUConstraints: v1alpha1.GPUConstraints{GPUShapes: []string{"T4"}, MaxGPUPerGPR: 2}}},
	}}
	gpr := func(change func(*v1alpha1.GPUProvisionRequestSpec)) *v1alpha1.GPUProvisionRequest {
		g := &v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{
			Workspace: "team", ClusterName: "big", NumberOfGPUs: 8, NumberOfGPUNodes: 2, GPUShape: "NVIDIA-H100-80GB-HBM3",
			MemoryPerGPU: 80, Priority: 200, ExitDuration: "7d0h0m", IdleTimeOutDuration: "0d0h30m",
		}}
		if change != nil {
			change(&g.Spec)
		}
		return g
	}
	for _, tt := range []struct {
		name  string
		g     *v1alpha1.GPUProvisionRequest
		ahead int
		want  []string // field: detail fragment
	}{
		{"at every limit", gpr(nil), 1, nil},
		{"no policy", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.Priority = 300 }), 99, nil},
		{"priority", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.Priority = 250 }), 0,
			[]string{`spec.priority: priority 250 is above the workspace's "medium" range (101-200) (WorkspacePolicy "team", priorityRange)`}},
		{"maxGPRs", gpr(nil), 2, []string{`spec.workspace: workspace "team" may have at most 2 GPRs queued or provisioned at once, and has 2 (WorkspacePolicy "team", maxGPRs)`}},
		{"duration", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.ExitDuration = "7d0h1m" }), 0,
			[]string{"spec.exitDuration: exitDuration 168h1m0s is longer than the workspace's limit of 1W (7 days)"}},
		{"idle", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.IdleTimeOutDuration = "" }), 0, []string{"spec.idleTimeOutDuration: idleTimeOutDuration (NdNhNm) is required"}},
		{"shape", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.GPUShape = "A100" }), 0, []string{`spec.gpuShape: gpuShape "A100" is not allowed in cluster "big"; allowed: H100`}},
		{"GPUs and memory", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.NumberOfGPUNodes = 3 }), 0, []string{
			"spec.numberOfGPUs: 24 GPUs (numberOfGPUs 8 × numberOfGPUNodes 3) are more than the workspace's limit of 16",
			"spec.memoryPerGPU: 1920 GB of GPU memory (24 GPUs × 80 GB) is more than the workspace's limit of 1280 GB"}},
		{"memory required", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.MemoryPerGPU = 0 }), 0, []string{"spec.memoryPerGPU: memoryPerGPU (GB) is required"}},
		{"the cluster's limits", gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.ClusterName = "small" }), 0, []string{
			`spec.gpuShape: gpuShape "NVIDIA-H100-80GB-HBM3" is not allowed in cluster "small"; allowed: T4`,
			"spec.numberOfGPUs: 16 GPUs (numberOfGPUs 8 × numberOfGPUNodes 2) are more than the workspace's limit of 2 GPUs per GPR in cluster \"small\""}},
	} {
		p := pol
		if tt.name == "no policy" {
			p = nil
		}
		errs := ValidateAgainstPolicy(tt.g, p, tt.ahead)
		if len(errs) != len(tt.want) {
			t.Errorf("%s: %v, want %d errors", tt.name, errs, len(tt.want))
			continue
		}
		for i, e := range errs {
			if got := e.Field + ": " + e.Detail; !strings.Contains(got, tt.want[i]) {
				t.Errorf("%s: %q, want %q", tt.name, got, tt.want[i])
			}
		}
	}
	// Defaults: the default priority runs at the top of a lower range, and
	// an idle-enforcing policy turns enforceIdleTimeOut on.
	low := &v1alpha1.WorkspacePolicy{Spec: v1alpha1.WorkspacePolicySpec{EnforceIdleTimeOut: true}}
	g := gpr(func(s *v1alpha1.GPUProvisionRequestSpec) { s.Priority = v1alpha1.DefaultPriority })
	DefaultForPolicy(g, low)
	if g.Spec.Priority != 100 || !g.Spec.EnforceIdleTimeOut {
		t.Errorf("defaults: priority %d, enforceIdleTimeOut %v", g.Spec.Priority, g.Spec.EnforceIdleTimeOut)
	}
}
