package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GPRTemplateSpec is what a GPR made from the template asks for: the
// fields of GPUProvisionRequestSpec that do not name a workspace, with the
// same names and limits. Field names follow the EGS GPR template API.
type GPRTemplateSpec struct {
	// ClusterName is the cluster the GPRs are for; empty means the cluster
	// the template is bound for (GPRTemplateBinding).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	ClusterName string `json:"clusterName,omitempty"`
	// NumberOfGPUs per node.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	NumberOfGPUs int32 `json:"numberOfGPUs"`
	// NumberOfGPUNodes is how many distinct nodes.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +kubebuilder:default=1
	// +optional
	NumberOfGPUNodes int32 `json:"numberOfGPUNodes,omitempty"`
	// InstanceType the nodes must have; empty means any.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	InstanceType string `json:"instanceType,omitempty"`
	// GPUShape is the GPU model, e.g. H100; empty means any.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	GPUShape string `json:"gpuShape,omitempty"`
	// MemoryPerGPU is the GPU memory in GB each GPU must have, at least.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4096
	MemoryPerGPU int32 `json:"memoryPerGPU,omitempty"`
	// Priority from 1 (lowest) to 300 (highest).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	// +kubebuilder:default=101
	// +optional
	Priority int32 `json:"priority,omitempty"`
	// ExitDuration is how long the nodes are held, as NdNhNm.
	// +kubebuilder:validation:Pattern=`^[0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m$`
	ExitDuration string `json:"exitDuration"`
	// IdleTimeOutDuration (NdNhNm): GPUs idle this long are released.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m)?$`
	IdleTimeOutDuration string `json:"idleTimeOutDuration,omitempty"`
	// EnforceIdleTimeOut turns idle release on.
	// +optional
	EnforceIdleTimeOut bool `json:"enforceIdleTimeOut,omitempty"`
	// EnableEviction lets the GPR, while queued, evict lower-priority ones.
	// +optional
	EnableEviction bool `json:"enableEviction,omitempty"`
	// RequeueOnFailure keeps the GPR queued instead of failing it.
	// +optional
	RequeueOnFailure bool `json:"requeueOnFailure,omitempty"`
	// GPUSharingMode as EGS reports it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	GPUSharingMode string `json:"gpuSharingMode,omitempty"`
	// Topology is the GPRs' topology (GPUProvisionRequestSpec.Topology).
	// +optional
	Topology *GPRTopology `json:"topology,omitempty"`
}

// GPRTemplate is a named set of GPR fields: what a workspace asks for when
// it asks "as usual". GPRTemplateBindings give templates to workspaces, and
// auto-GPR makes GPRs from a binding's default template.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=gprt,categories=gpuspace
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="template names are at most 63 characters"
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterName`
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.spec.numberOfGPUs`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.spec.numberOfGPUNodes`
// +kubebuilder:printcolumn:name="Shape",type=string,JSONPath=`.spec.gpuShape`
// +kubebuilder:printcolumn:name="Duration",type=string,JSONPath=`.spec.exitDuration`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GPRTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec GPRTemplateSpec `json:"spec"`
}

// GPRTemplateList is a list of GPRTemplates.
//
// +kubebuilder:object:root=true
type GPRTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GPRTemplate `json:"items"`
}

// GPRTemplateBindingCluster is the templates a workspace may use on one of
// its clusters.
type GPRTemplateBindingCluster struct {
	// ClusterName is one of the workspace's clusters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ClusterName string `json:"clusterName"`
	// DefaultTemplateName is the template auto-GPR makes GPRs from on this
	// cluster; it is one of Templates.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	DefaultTemplateName string `json:"defaultTemplateName,omitempty"`
	// Templates the workspace may use on this cluster.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	Templates []string `json:"templates,omitempty"`
}

// GPRTemplateBindingSpec gives a workspace its templates, per cluster.
type GPRTemplateBindingSpec struct {
	// Workspace the templates are for (EGS: workspaceName); the binding's
	// name is the workspace's.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Workspace string `json:"workspace"`
	// Clusters of the workspace and their templates.
	// +optional
	// +listType=map
	// +listMapKey=clusterName
	// +kubebuilder:validation:MaxItems=32
	Clusters []GPRTemplateBindingCluster `json:"clusters,omitempty"`
	// EnableAutoGPR: a GPU pod of the workspace held by the scheduler for
	// lack of a GPR makes one GPR from the default template of the first
	// of the workspace's clusters that has one, while the workspace has no
	// queued or provisioned GPR.
	// +optional
	EnableAutoGPR bool `json:"enableAutoGPR,omitempty"`
}

// GPRTemplateBinding gives one workspace its GPR templates, per cluster, a
// default template per cluster, and auto-GPR. Its name is the workspace's.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=gprtb,categories=gpuspace
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.spec.workspace",message="a binding is named after its workspace: metadata.name must equal spec.workspace"
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspace`
// +kubebuilder:printcolumn:name="Auto-GPR",type=boolean,JSONPath=`.spec.enableAutoGPR`
// +kubebuilder:printcolumn:name="Defaults",type=string,JSONPath=`.spec.clusters[*].defaultTemplateName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GPRTemplateBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec GPRTemplateBindingSpec `json:"spec"`
}

// GPRTemplateBindingList is a list of GPRTemplateBindings.
//
// +kubebuilder:object:root=true
type GPRTemplateBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GPRTemplateBinding `json:"items"`
}

// Auto-GPR labels and annotations on the GPRs auto-GPR makes.
const (
	// LabelAutoGPR on a GPR names the workspace whose held pods made it.
	LabelAutoGPR = "gpuspace.io/auto-gpr"
	// LabelAutoGPRSequence numbers a workspace's auto GPRs (1, 2, ...); the
	// GPR's name is derived from the workspace and this number, so two
	// attempts at the same GPR collide instead of making two.
	LabelAutoGPRSequence = "gpuspace.io/auto-gpr-sequence"
	// AnnotationTemplate on a GPR names the GPRTemplate it was made from.
	AnnotationTemplate = "gpuspace.io/gpr-template"
	// AnnotationTemplateGeneration is the generation of that template the
	// GPR was made from.
	AnnotationTemplateGeneration = "gpuspace.io/gpr-template-generation"

	// PodReasonWaitingForGPR is the reason of the PodScheduled=False
	// condition the scheduler plugin writes on a workspace's GPU pod it
	// holds until the workspace's GPR is provisioned; auto-GPR watches for
	// it.
	PodReasonWaitingForGPR = "WaitingForGPR"
)
