package domain

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// Utilization is the mean GPU utilisation of the nodes a GPR holds, in
// percent rounded to the nearest, as their device plugins last published
// it (internal/util/idlesignal). ok is false when it holds no node, or one
// of its nodes is unknown (nodes, by name) or publishes none: a mean over
// part of its nodes would hide the idle ones.
func Utilization(g *v1alpha1.GPUProvisionRequest, nodes map[string]*corev1.Node) (percent int, ok bool) {
	sum, n := 0, 0
	for _, name := range g.Status.Nodes {
		if node := nodes[name]; node != nil {
			if u, ok := idlesignal.ReadUtilization(node); ok {
				sum += u
				n++
			}
		}
	}
	if n == 0 || n != len(g.Status.Nodes) {
		return 0, false
	}
	return (sum + n/2) / n, true
}
