package state

import (
	v1 "k8s.io/api/core/v1"
)

// IsDaemonSetPod reports whether a DaemonSet controls pod. DaemonSet pods
// are per-node infrastructure (device plugins, monitoring), so they run on
// bound nodes too.
func IsDaemonSetPod(pod *v1.Pod) bool {
	for i := range pod.OwnerReferences {
		r := &pod.OwnerReferences[i]
		if r.Controller != nil && *r.Controller && r.Kind == "DaemonSet" && r.APIVersion == "apps/v1" {
			return true
		}
	}
	return false
}

// IsMirrorPod reports whether pod mirrors a kubelet static pod; the kubelet
// creates those with spec.nodeName set, whatever the node's binding.
func IsMirrorPod(pod *v1.Pod) bool {
	_, ok := pod.Annotations[v1.MirrorPodAnnotationKey]
	return ok
}

// RequestsAny reports whether pod requests or limits any of the resources
// (positive quantity), in its containers, init containers or pod-level
// resources. Extended resources must have requests equal to limits, but a
// pod may give only limits, so both are read.
func RequestsAny(pod *v1.Pod, names []v1.ResourceName) bool {
	if inResources(pod.Spec.Resources, names) {
		return true
	}
	for i := range pod.Spec.Containers {
		if inResources(&pod.Spec.Containers[i].Resources, names) {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		if inResources(&pod.Spec.InitContainers[i].Resources, names) {
			return true
		}
	}
	return false
}

func inResources(r *v1.ResourceRequirements, names []v1.ResourceName) bool {
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
