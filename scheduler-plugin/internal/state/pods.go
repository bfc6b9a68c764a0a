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
