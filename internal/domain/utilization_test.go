package domain

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestUtilization: the rounded mean over every node the GPR holds, and
// none when a node is unknown or publishes nothing.
func TestUtilization(t *testing.T) {
	node := func(name, util string) *corev1.Node {
		n := &corev1.Node{}
		n.Name = name
		if util != "" {
			n.Annotations = map[string]string{v1alpha1.AnnotationGPUUtilization: util}
		}
		return n
	}
	nodes := map[string]*corev1.Node{"a": node("a", "10"), "b": node("b", "15"), "c": node("c", "")}
	for _, tc := range []struct {
		held []string
		want int
		ok   bool
	}{
		{held: []string{"a", "b"}, want: 13, ok: true},
		{held: []string{"a"}, want: 10, ok: true},
		{held: []string{"a", "c"}},
		{held: []string{"a", "gone"}},
		{held: nil},
	} {
		g := &v1alpha1.GPUProvisionRequest{}
		g.Status.Nodes = tc.held
		got, ok := Utilization(g, nodes)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Utilization(%v) = %d, %v; want %d, %v", tc.held, got, ok, tc.want, tc.ok)
		}
	}
}
