package v1

import (
	"github.com/gpuspace/gpuspace/internal/domain"
)

// DefaultExemptNamespaces are the namespaces of the cluster's own
// components: Kubernetes' and gpuspace's.
var DefaultExemptNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "gpuspace-system"}

// DefaultGPUResourceNames are the extended resources gpuspace's device
// plugin (and NVIDIA's) advertise: domain.DefaultGPUResourceNames.
var DefaultGPUResourceNames = func() []string {
	out := make([]string, len(domain.DefaultGPUResourceNames))
	for i, n := range domain.DefaultGPUResourceNames {
		out[i] = string(n)
	}
	return out
}()

// DefaultGPUDeviceClasses are the DRA DeviceClasses of NVIDIA's DRA
// driver for GPUs and MIG slices: domain.DefaultGPUDeviceClasses.
var DefaultGPUDeviceClasses = append([]string(nil), domain.DefaultGPUDeviceClasses...)

// SetDefaultsWorkspaceBindingArgs fills in unset fields of a.
func SetDefaultsWorkspaceBindingArgs(a *WorkspaceBindingArgs) {
	if a.APIVersion == "" {
		a.APIVersion = SchemeGroupVersion.String()
	}
	if a.Kind == "" {
		a.Kind = "WorkspaceBindingArgs"
	}
	// nil means unset; an explicit empty list means "exempt nothing".
	if a.ExemptNamespaces == nil {
		a.ExemptNamespaces = append([]string(nil), DefaultExemptNamespaces...)
	}
	if len(a.GPUResourceNames) == 0 {
		a.GPUResourceNames = append([]string(nil), DefaultGPUResourceNames...)
	}
	// nil means unset; an explicit empty list means "no DRA GPUs".
	if a.GPUDeviceClasses == nil {
		a.GPUDeviceClasses = append([]string(nil), DefaultGPUDeviceClasses...)
	}
	if a.UpdatePodCondition == nil {
		v := true
		a.UpdatePodCondition = &v
	}
}

// SetDefaultsGPRPriorityArgs fills in unset fields of a.
func SetDefaultsGPRPriorityArgs(a *GPRPriorityArgs) {
	if a.APIVersion == "" {
		a.APIVersion = SchemeGroupVersion.String()
	}
	if a.Kind == "" {
		a.Kind = "GPRPriorityArgs"
	}
	if a.ExemptNamespaces == nil {
		a.ExemptNamespaces = append([]string(nil), DefaultExemptNamespaces...)
	}
}
