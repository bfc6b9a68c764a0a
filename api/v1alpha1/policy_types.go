package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// PriorityBand is a named priority range: low 1-100, medium 101-200, high
// 201-300.
// +kubebuilder:validation:Enum=low;medium;high
type PriorityBand string

// Priority bands.
const (
	BandLow    PriorityBand = "low"
	BandMedium PriorityBand = "medium"
	BandHigh   PriorityBand = "high"
)

// ReasonPolicy: a queued GPR its workspace's policy does not allow now
// (priority above the workspace's range, too many GPRs, a shape or size
// over a limit). It stays queued, is not planned, and is admitted again
// when the policy (or the GPR) changes so that it fits.
const ReasonPolicy GPRReason = "Policy"

// GPRPolicyAllowed is the GPR condition that says whether its workspace's
// policy allows it: False (reason Policy) while it is held for a limit.
const GPRPolicyAllowed = "PolicyAllowed"

// Defaults of a WorkspacePolicy, as EGS's CRD has them (minRuntimeBeforeEviction
// is gpuspace's).
const (
	DefaultPolicyPriorityRange            = BandLow
	DefaultPolicyMaxGPRs                  = 3
	DefaultPolicyMaxExitDurationPerGPR    = "1W"
	DefaultPolicyMinRuntimeBeforeEviction = "0d0h5m"
)

// GPUConstraints limit the GPUs a GPR may ask for. Zero and empty values
// mean no limit.
type GPUConstraints struct {
	// GPUShapes are the GPU shapes a GPR may ask for (normalised, so H100
	// allows NVIDIA-H100-80GB-HBM3); empty allows any. When set, a GPR
	// must name one of them.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	GPUShapes []string `json:"gpuShapes,omitempty"`
	// MaxGPUPerGPR is the most GPUs one GPR may hold in all
	// (numberOfGPUs × numberOfGPUNodes); 0 is no limit.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxGPUPerGPR int32 `json:"maxGpuPerGpr,omitempty"`
	// MaxMemoryPerGPR is the most GPU memory, in GB, one GPR may ask for
	// in all (memoryPerGPU × numberOfGPUs × numberOfGPUNodes); 0 is no
	// limit. When set, a GPR must give memoryPerGPU.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxMemoryPerGPR int32 `json:"maxMemoryPerGpr,omitempty"`
}

// ClusterGPUConstraints are GPU constraints for the GPRs of one cluster.
// Each field set here replaces the workspace-wide one for that cluster.
type ClusterGPUConstraints struct {
	// ClusterName is the cluster they apply to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ClusterName    string `json:"clusterName"`
	GPUConstraints `json:",inline"`
}

// WorkspacePolicySpec is what a workspace may ask for. Field names and
// defaults follow EGS's WorkspacePolicy. A workspace without a policy has
// no limits.
type WorkspacePolicySpec struct {
	// PriorityRange is the highest priority band the workspace's GPRs may
	// use: low (1-100), medium (up to 200) or high (up to 300).
	// +kubebuilder:default=low
	// +optional
	PriorityRange PriorityBand `json:"priorityRange,omitempty"`
	// MaxGPRs is how many GPRs of the workspace may be queued or
	// provisioned at once.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxGPRs *int32 `json:"maxGPRs,omitempty"`
	// MaxExitDurationPerGPR is the longest exitDuration a GPR may ask for:
	// a number of weeks (W, 7 days) or months (M, 30 days), e.g. 1W, 2M.
	// +kubebuilder:default="1W"
	// +kubebuilder:validation:Pattern=`^([0-9]+)([MW])$`
	// +optional
	MaxExitDurationPerGPR string `json:"maxExitDurationPerGPR,omitempty"`
	// EnforceIdleTimeOut makes every GPR of the workspace release its nodes
	// when idle: a GPR must give idleTimeOutDuration, and is admitted with
	// enforceIdleTimeOut on.
	// +optional
	EnforceIdleTimeOut bool `json:"enforceIdleTimeOut,omitempty"`
	// RequeueOnFailure puts the workspace's GPRs back in the queue when
	// they fail or are evicted, as a GPR's own requeueOnFailure does.
	// +kubebuilder:default=true
	// +optional
	RequeueOnFailure *bool `json:"requeueOnFailure,omitempty"`
	// EnableAutoEviction lets the workspace's GPRs with enableEviction
	// evict lower-priority GPRs.
	// +kubebuilder:default=true
	// +optional
	EnableAutoEviction *bool `json:"enableAutoEviction,omitempty"`
	// MinRuntimeBeforeEviction (NdNhNm) is how long a GPR of the workspace
	// runs before it may be evicted (gpuspace's; EGS has none).
	// +kubebuilder:default="0d0h5m"
	// +kubebuilder:validation:Pattern=`^[0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m$`
	// +optional
	MinRuntimeBeforeEviction string `json:"minRuntimeBeforeEviction,omitempty"`
	// GPUConstraints apply to every GPR of the workspace.
	// +optional
	GPUConstraints `json:",inline"`
	// ClusterConstraints replace GPUConstraints' fields for the GPRs of
	// one cluster.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=clusterName
	ClusterConstraints []ClusterGPUConstraints `json:"clusterConstraints,omitempty"`
	// Topology requires a topology level of the workspace's GPRs over a
	// number of nodes (topology_types.go).
	// +optional
	Topology *PolicyTopology `json:"topology,omitempty"`
}

// WorkspacePolicy limits what one workspace may ask for. It is
// cluster-scoped and named after its workspace; a workspace without one
// has no limits.
//
// Its deep copies are in policy_deepcopy.go.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=wsp,categories=gpuspace
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="policy names are workspace names: at most 63 characters"
// +kubebuilder:printcolumn:name="Priority",type=string,JSONPath=`.spec.priorityRange`
// +kubebuilder:printcolumn:name="Max GPRs",type=integer,JSONPath=`.spec.maxGPRs`
// +kubebuilder:printcolumn:name="Max Duration",type=string,JSONPath=`.spec.maxExitDurationPerGPR`
// +kubebuilder:printcolumn:name="Eviction",type=boolean,JSONPath=`.spec.enableAutoEviction`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkspacePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WorkspacePolicySpec `json:"spec,omitempty"`
}

// WorkspacePolicyList is a list of WorkspacePolicies.
//
// +kubebuilder:object:root=true
type WorkspacePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkspacePolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &WorkspacePolicy{}, &WorkspacePolicyList{})
		return nil
	})
}
