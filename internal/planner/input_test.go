package planner

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

var inputT0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func gpuNode(name string, labels map[string]string, capacity, allocatable string) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	if capacity != "" {
		n.Status.Capacity = corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse(capacity)}
	}
	if allocatable != "" {
		n.Status.Allocatable = corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse(allocatable)}
	}
	return n
}

func gpr(name, ws string, phase v1alpha1.ProvisioningStatus, nodes ...string) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(inputT0.Add(-time.Hour))},
		Spec:       v1alpha1.GPUProvisionRequestSpec{Workspace: ws, NumberOfGPUs: 1, ExitDuration: "0d1h0m", ClusterName: "prod"},
		Status:     v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: phase, Nodes: nodes},
	}
}

// TestInputHolderFromStatusOnly: the API used to fall back to a node's
// gpuspace.io/gpr label for its holder; a stale label must not hold a
// node, and a node claimed twice is held by nobody the planner knows.
func TestInputHolderFromStatusOnly(t *testing.T) {
	stale := gpuNode("n1", map[string]string{v1alpha1.LabelGPR: "gone", v1alpha1.LabelWorkspace: "wx"}, "1", "1")
	twice := gpuNode("n2", nil, "1", "1")
	gprs := []*v1alpha1.GPUProvisionRequest{
		gpr("a", "wa", v1alpha1.GPRProvisioned, "n2"), gpr("b", "wb", v1alpha1.GPRProvisioned, "n2"),
	}
	in, _ := InputOf(inputT0, gprs, []*corev1.Node{stale, twice}, "prod")
	bound := map[string]string{}
	for _, n := range in.Nodes {
		bound[n.Name] = n.BoundTo
	}
	if diff := cmp.Diff(map[string]string{"n1": "", "n2": conflictHolder}, bound); diff != "" {
		t.Errorf("BoundTo (-want +got):\n%s", diff)
	}
}

// TestUnparseableExitDuration: the API used to plan a GPR whose
// exitDuration does not parse as a 1 ns request; it is invalid everywhere.
func TestUnparseableExitDuration(t *testing.T) {
	g := gpr("a", "wa", v1alpha1.GPRQueued)
	g.Spec.ExitDuration = "2h"
	if _, err := RequestOf(g); err == nil {
		t.Fatal("RequestOf accepted exitDuration 2h")
	}
	in, invalid := InputOf(inputT0, []*v1alpha1.GPUProvisionRequest{g}, nil, "prod")
	if len(in.Queued) != 0 || invalid["a"] == "" {
		t.Errorf("queued %v, invalid %v: want a invalid and not queued", in.Queued, invalid)
	}
}
