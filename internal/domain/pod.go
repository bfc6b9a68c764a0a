package domain

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// DefaultGPUResourceNames are the extended resources that make a pod a GPU
// pod unless configured otherwise: what gpuspace's device plugin (and
// NVIDIA's) advertise. The scheduler plugin's gpuResourceNames and the
// controller's GPUResourceNames default to them.
var DefaultGPUResourceNames = []corev1.ResourceName{v1alpha1.ResourceGPU, v1alpha1.ResourceGPUMemory}

// PodUsesGPUs reports whether a pod asks for any of the GPU resources names
// (positive quantity; nil: DefaultGPUResourceNames) in its containers,
// init containers or pod-level resources: such a pod may run only on a node
// its workspace holds, so it leaves a node bound to another workspace. The
// scheduler plugin, the controller and the simulator call it with the same
// configured names, so admission and eviction agree on what a GPU pod is.
// Extended resources must have requests equal to limits, but a pod may give
// only limits, so both are read.
func PodUsesGPUs(pod *corev1.Pod, names []corev1.ResourceName) bool {
	if names == nil {
		names = DefaultGPUResourceNames
	}
	if inResources(pod.Spec.Resources, names) {
		return true
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if inResources(&cs[i].Resources, names) {
				return true
			}
		}
	}
	return false
}

// inResources reports whether r requests or limits any of names.
func inResources(r *corev1.ResourceRequirements, names []corev1.ResourceName) bool {
	if r == nil {
		return false
	}
	for _, n := range names {
		if q, ok := r.Requests[n]; ok && q.Sign() > 0 {
			return true
		}
		if q, ok := r.Limits[n]; ok && q.Sign() > 0 {
			return true
		}
	}
	return false
}
