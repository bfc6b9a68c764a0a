package admission

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

func TestValidateTopology(t *testing.T) {
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: v1alpha1.WorkspaceSpec{Clusters: []string{"prod"}}}
	lab := v1alpha1.Topology{ObjectMeta: metav1.ObjectMeta{Name: "lab"}, Spec: v1alpha1.TopologySpec{
		Levels: []v1alpha1.TopologyLevel{{NodeLabel: "lab/row"}, {NodeLabel: "lab/rack"}}}}
	ts := domain.TopologyIndex([]v1alpha1.Topology{lab})
	gpr := func(nodes int32, tp *v1alpha1.GPRTopology) *v1alpha1.GPUProvisionRequest {
		return &v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{Workspace: "team", ClusterName: "prod",
			ExitDuration: "0d1h0m", NumberOfGPUNodes: nodes, Topology: tp}}
	}
	tests := []struct {
		name string
		g    *v1alpha1.GPUProvisionRequest
		want []string // field: type: detail fragment
	}{
		{"none", gpr(4, nil), nil},
		{"required custom level", gpr(4, &v1alpha1.GPRTopology{Required: "lab/rack"}), nil},
		{"preferred built-in level", gpr(4, &v1alpha1.GPRTopology{Preferred: "cloud.google.com/gce-topology-block"}), nil},
		{"NVLink clique", gpr(4, &v1alpha1.GPRTopology{Required: v1alpha1.LabelGPUClique}), nil},
		{"slices of 2 of 4", gpr(4, &v1alpha1.GPRTopology{Required: "lab/rack", SliceSize: 2}), nil},
		{"unknown level", gpr(4, &v1alpha1.GPRTopology{Required: "lab/aisle"}), []string{"spec.topology.required: Invalid value: is not a level of any topology; levels: lab/row, lab/rack, cloud.google.com"}},
		{"both", gpr(4, &v1alpha1.GPRTopology{Required: "lab/rack", Preferred: "lab/row"}), []string{"spec.topology.preferred: Invalid value: not both"}},
		{"neither", gpr(4, &v1alpha1.GPRTopology{SliceSize: 2}), []string{"spec.topology.required: Required value", "spec.topology.sliceSize: Invalid value: needs a required level"}},
		{"slice not dividing", gpr(4, &v1alpha1.GPRTopology{Required: "lab/rack", SliceSize: 3}), []string{"spec.topology.sliceSize: Invalid value: does not divide numberOfGPUNodes 4"}},
		{"slice with preferred", gpr(4, &v1alpha1.GPRTopology{Preferred: "lab/rack", SliceSize: 2}), []string{"spec.topology.sliceSize: Invalid value: needs a required level"}},
		{"hostname for 2 nodes", gpr(2, &v1alpha1.GPRTopology{Required: v1alpha1.LabelHostname}), []string{"spec.topology.required: Invalid value: is one node"}},
		{"hostname for 1 node", gpr(1, &v1alpha1.GPRTopology{Required: v1alpha1.LabelHostname}), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := append(ValidateGPR(tc.g, ws), ValidateTopologyLevel(tc.g, ts)...)
			if len(errs) != len(tc.want) {
				t.Fatalf("errors %v, want %v", errs, tc.want)
			}
			for i, e := range errs {
				parts := strings.SplitN(tc.want[i], ": ", 3)
				if e.Field != parts[0] || e.Type.String() != parts[1] || (len(parts) == 3 && !strings.Contains(e.Error(), parts[2])) {
					t.Errorf("error %d = %q, want %q", i, e.Error(), tc.want[i])
				}
			}
		})
	}
}

func TestTopologyPolicy(t *testing.T) {
	p := &v1alpha1.WorkspacePolicy{ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: v1alpha1.WorkspacePolicySpec{PriorityRange: v1alpha1.BandHigh, Topology: &v1alpha1.PolicyTopology{MinNodes: 4, Level: "lab/rack"}}}
	gpr := func(nodes int32) *v1alpha1.GPUProvisionRequest {
		return &v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{Workspace: "team", ExitDuration: "0d1h0m", NumberOfGPUNodes: nodes}}
	}
	small, large, kubectl := gpr(3), gpr(4), gpr(8)
	DefaultForPolicy(small, p)
	DefaultForPolicy(large, p)
	if small.Spec.Topology != nil {
		t.Errorf("3 nodes under minNodes 4 got topology %+v", small.Spec.Topology)
	}
	if large.Spec.Topology == nil || large.Spec.Topology.Required != "lab/rack" {
		t.Errorf("4 nodes got topology %+v, want required lab/rack", large.Spec.Topology)
	}
	if errs := ValidateAgainstPolicy(large, p, 0); len(errs) != 0 {
		t.Errorf("defaulted GPR refused: %v", errs)
	}
	// Not defaulted (made with kubectl): held by the policy.
	errs := ValidateAgainstPolicy(kubectl, p, 0)
	if len(errs) != 1 || errs[0].Field != "spec.topology" || !strings.Contains(errs[0].Detail, `WorkspacePolicy "team", topology`) {
		t.Errorf("errors %v, want spec.topology required by the policy", errs)
	}
}
