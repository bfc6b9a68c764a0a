package gpr

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/planner"
)

func TestNodeInventory(t *testing.T) {
	ready := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	tests := []struct {
		name   string
		node   corev1.Node
		want   planner.Node
		wantOK bool
	}{{
		name: "feature discovery labels",
		node: corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "h", Labels: map[string]string{
				v1alpha1.LabelGPUProduct: "NVIDIA-H100-80GB-HBM3", v1alpha1.LabelGPUMemory: "81559",
				v1alpha1.LabelGPUCount: "8", v1alpha1.LabelGPUShape: "H100", v1alpha1.LabelInstanceType: "p5.48xlarge",
				v1alpha1.LabelCluster: "east",
			}},
			Status: corev1.NodeStatus{Conditions: ready},
		},
		want: planner.Node{Name: "h", Cluster: "east", InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3",
			Shape: "H100", MemoryMiB: 81559, GPUs: 8, Healthy: true, Schedulable: true},
		wantOK: true,
	}, {
		name: "count from capacity, default cluster, cordoned, not ready",
		node: corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "t", Labels: map[string]string{v1alpha1.LabelGPUProduct: "Tesla-T4"}},
			Spec:       corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{
				Capacity:   corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse("2")},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}},
			},
		},
		want:   planner.Node{Name: "t", Cluster: "worker-1", Product: "Tesla-T4", GPUs: 2},
		wantOK: true,
	}, {
		name: "no GPUs",
		node: corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cpu"}, Status: corev1.NodeStatus{Conditions: ready}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NodeInventory(&tt.node, "worker-1")
			if ok != tt.wantOK {
				t.Fatalf("NodeInventory ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NodeInventory (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithBinding(t *testing.T) {
	other := corev1.Taint{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name        string
		taints      []corev1.Taint
		ws          string
		want        []corev1.Taint
		wantChanged bool
	}{
		{"add", []corev1.Taint{other}, "w", []corev1.Taint{other, bindingTaint("w")}, true},
		{"keep", []corev1.Taint{bindingTaint("w"), other}, "w", []corev1.Taint{bindingTaint("w"), other}, false},
		{"replace another workspace's", []corev1.Taint{bindingTaint("x")}, "w", []corev1.Taint{bindingTaint("w")}, true},
		{"drop duplicates", []corev1.Taint{bindingTaint("w"), bindingTaint("w")}, "w", []corev1.Taint{bindingTaint("w")}, true},
		{"remove", []corev1.Taint{other, bindingTaint("w")}, "", []corev1.Taint{other}, true},
		{"nothing to remove", []corev1.Taint{other}, "", []corev1.Taint{other}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := withBinding(tt.taints, tt.ws)
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("taints (-want +got):\n%s", diff)
			}
		})
	}
}
