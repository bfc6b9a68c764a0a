// Package v1alpha1 holds the gpuspace.io/v1alpha1 API: Workspace,
// GPUProvisionRequest, GPRTemplate and GPRTemplateBinding, all
// cluster-scoped.
//
// +kubebuilder:object:generate=true
// +groupName=gpuspace.io
package v1alpha1
