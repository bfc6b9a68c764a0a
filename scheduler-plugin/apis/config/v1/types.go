package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SchemeGroupVersion is the group and version the args are written under,
// the kube-scheduler's own configuration group, as out-of-tree plugins do.
var SchemeGroupVersion = schema.GroupVersion{Group: "kubescheduler.config.k8s.io", Version: "v1"}

// WorkspaceBindingArgs configures the WorkspaceBinding plugin.
type WorkspaceBindingArgs struct {
	metav1.TypeMeta `json:",inline"`

	// ExemptNamespaces are namespaces whose pods are neither held nor kept
	// off bound nodes, and which pass the workspace taint: the cluster's own
	// components. Default: kube-system, kube-public, kube-node-lease,
	// gpuspace-system.
	ExemptNamespaces []string `json:"exemptNamespaces,omitempty"`

	// GPUResourceNames are the extended resources that make a pod a GPU
	// pod: one that requests (or limits) any of them. Default:
	// nvidia.com/gpu, gpuspace.io/gpu-memory.
	GPUResourceNames []string `json:"gpuResourceNames,omitempty"`

	// GPUDeviceClasses are the DRA DeviceClasses whose devices are GPUs: a
	// pod is a GPU pod too when one of its resource claims (or the
	// ResourceClaimTemplate it is made from) requests a device of one.
	// Default (unset): gpu.nvidia.com, mig.nvidia.com; an empty list: no
	// DRA claim makes a GPU pod.
	GPUDeviceClasses []string `json:"gpuDeviceClasses,omitempty"`

	// UpdatePodCondition makes the plugin write the PodScheduled condition
	// of a held pod (reason WaitingForGPR, naming the GPR it waits for and
	// its estimated start). The scheduler does not publish PreEnqueue
	// results itself. Written asynchronously, never on the scheduling path.
	// Default: true.
	UpdatePodCondition *bool `json:"updatePodCondition,omitempty"`
}

// GPRPriorityArgs configures the GPRPriority queue sort plugin.
type GPRPriorityArgs struct {
	metav1.TypeMeta `json:",inline"`

	// ExemptNamespaces are namespaces whose pods sort before every
	// workspace's pods, so that the cluster's own components are never
	// starved by a queue of workload pods. Default: as WorkspaceBindingArgs.
	ExemptNamespaces []string `json:"exemptNamespaces,omitempty"`
}

// DeepCopyInto copies a into out.
func (a *WorkspaceBindingArgs) DeepCopyInto(out *WorkspaceBindingArgs) {
	*out = *a
	out.ExemptNamespaces = append([]string(nil), a.ExemptNamespaces...)
	out.GPUResourceNames = append([]string(nil), a.GPUResourceNames...)
	if a.GPUDeviceClasses != nil {
		out.GPUDeviceClasses = append([]string{}, a.GPUDeviceClasses...)
	}
	if a.UpdatePodCondition != nil {
		v := *a.UpdatePodCondition
		out.UpdatePodCondition = &v
	}
}

// DeepCopy returns a copy of a.
func (a *WorkspaceBindingArgs) DeepCopy() *WorkspaceBindingArgs {
	if a == nil {
		return nil
	}
	out := new(WorkspaceBindingArgs)
	a.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object, so that the typed args can be
// passed directly as a profile's pluginConfig args (tests do).
func (a *WorkspaceBindingArgs) DeepCopyObject() runtime.Object { return a.DeepCopy() }

// DeepCopyInto copies a into out.
func (a *GPRPriorityArgs) DeepCopyInto(out *GPRPriorityArgs) {
	*out = *a
	out.ExemptNamespaces = append([]string(nil), a.ExemptNamespaces...)
}

// DeepCopy returns a copy of a.
func (a *GPRPriorityArgs) DeepCopy() *GPRPriorityArgs {
	if a == nil {
		return nil
	}
	out := new(GPRPriorityArgs)
	a.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (a *GPRPriorityArgs) DeepCopyObject() runtime.Object { return a.DeepCopy() }
