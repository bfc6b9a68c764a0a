package domain

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// DefaultGPUResourceNames are the extended resources that make a pod a GPU
// pod unless configured otherwise: what gpuspace's device plugin (and
// NVIDIA's) advertise. The scheduler plugin's gpuResourceNames and the
// controller's GPUResourceNames default to them.
var DefaultGPUResourceNames = []corev1.ResourceName{v1alpha1.ResourceGPU, v1alpha1.ResourceGPUMemory}

// DefaultGPUDeviceClasses are the DRA DeviceClasses whose devices are GPUs
// unless configured otherwise: those of NVIDIA's DRA driver for whole GPUs
// and for MIG slices of one (its other classes, IMEX channels and compute
// domains, are not GPUs). The scheduler plugin's gpuDeviceClasses default
// to them.
var DefaultGPUDeviceClasses = []string{"gpu.nvidia.com", "mig.nvidia.com"}

// GPUPodRule is what makes a pod a GPU pod: the extended resources its
// containers may ask for, and the DRA DeviceClasses its resource claims may
// request devices of. The zero value is the default rule.
type GPUPodRule struct {
	// ResourceNames are the GPU extended resources; nil:
	// DefaultGPUResourceNames.
	ResourceNames []corev1.ResourceName
	// DeviceClasses are the GPU DeviceClasses; nil: DefaultGPUDeviceClasses
	// (empty, not nil: no DRA claim makes a GPU pod).
	DeviceClasses []string
}

func (r GPUPodRule) resourceNames() []corev1.ResourceName {
	if r.ResourceNames == nil {
		return DefaultGPUResourceNames
	}
	return r.ResourceNames
}

func (r GPUPodRule) deviceClasses() []string {
	if r.DeviceClasses == nil {
		return DefaultGPUDeviceClasses
	}
	return r.DeviceClasses
}

// PodUsesGPUs reports whether a pod is a GPU pod by rule: it asks for any
// of the GPU resources (positive quantity) in its containers, init
// containers or pod-level resources, or one of its resource claims (claims:
// the specs of its spec.resourceClaims, PodClaimSpecs) requests a device of
// a GPU DeviceClass. Such a pod may run only on a node its workspace holds,
// so it leaves a node bound to another workspace. The scheduler plugin, the
// controller and the simulator call it with the same configured rule, so
// admission and eviction agree on what a GPU pod is. Extended resources
// must have requests equal to limits, but a pod may give only limits, so
// both are read.
func PodUsesGPUs(pod *corev1.Pod, rule GPUPodRule, claims []*resourcev1.ResourceClaimSpec) bool {
	names := rule.resourceNames()
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
	return slices.ContainsFunc(claims, rule.ClaimRequestsGPUs)
}

// ClaimRequestsGPUs reports whether a ResourceClaim spec (nil: none)
// requests a device of a GPU DeviceClass: a request for exactly that class,
// or one whose firstAvailable alternatives include it (the claim may be
// given a GPU, so the pod counts as one that uses GPUs).
func (r GPUPodRule) ClaimRequestsGPUs(spec *resourcev1.ResourceClaimSpec) bool {
	if spec == nil {
		return false
	}
	classes := r.deviceClasses()
	for _, req := range spec.Devices.Requests {
		if req.Exactly != nil && slices.Contains(classes, req.Exactly.DeviceClassName) {
			return true
		}
		for _, sub := range req.FirstAvailable {
			if slices.Contains(classes, sub.DeviceClassName) {
				return true
			}
		}
	}
	return false
}

// ClaimSpecFunc returns the spec of the ResourceClaim (or, for
// PodClaimSpecs' template argument, ResourceClaimTemplate) name in the
// pod's namespace, nil when there is none.
type ClaimSpecFunc func(name string) (*resourcev1.ResourceClaimSpec, error)

// PodClaimSpecs returns the specs of a pod's spec.resourceClaims, read with
// claim and template, for PodUsesGPUs. An entry naming a ResourceClaim is
// that claim's spec; one made from a ResourceClaimTemplate is the claim
// generated for the pod (status.resourceClaimStatuses) once there is one,
// else the template's (the claim is made from it, so they ask for the same
// devices). A spec that is not found is left out. It calls nothing for a
// pod without resource claims.
func PodClaimSpecs(pod *corev1.Pod, claim, template ClaimSpecFunc) ([]*resourcev1.ResourceClaimSpec, error) {
	var out []*resourcev1.ResourceClaimSpec
	for _, pc := range pod.Spec.ResourceClaims {
		spec, err := podClaimSpec(pod, pc, claim, template)
		if err != nil {
			return nil, err
		}
		if spec != nil {
			out = append(out, spec)
		}
	}
	return out, nil
}

func podClaimSpec(pod *corev1.Pod, pc corev1.PodResourceClaim, claim, template ClaimSpecFunc) (*resourcev1.ResourceClaimSpec, error) {
	if pc.ResourceClaimName != nil {
		return claim(*pc.ResourceClaimName)
	}
	if pc.ResourceClaimTemplateName == nil {
		return nil, nil
	}
	for _, st := range pod.Status.ResourceClaimStatuses {
		if st.Name == pc.Name && st.ResourceClaimName != nil {
			if spec, err := claim(*st.ResourceClaimName); err != nil || spec != nil {
				return spec, err
			}
		}
	}
	return template(*pc.ResourceClaimTemplateName)
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
