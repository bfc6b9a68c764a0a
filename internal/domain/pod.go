package domain

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// PodUsesGPUs reports whether a pod asks for GPUs (nvidia.com/gpu, or GPU
// memory) in any container: such a pod may run only on a node its
// workspace holds, so it leaves a node bound to another workspace.
func PodUsesGPUs(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, list := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				for _, name := range []corev1.ResourceName{v1alpha1.ResourceGPU, v1alpha1.ResourceGPUMemory} {
					if q, ok := list[name]; ok && !q.IsZero() {
						return true
					}
				}
			}
		}
	}
	return false
}
