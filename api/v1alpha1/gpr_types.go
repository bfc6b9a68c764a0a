package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProvisioningStatus is the EGS lifecycle phase of a GPR.
// +kubebuilder:validation:Enum=Queued;Provisioned;Complete;Error
type ProvisioningStatus string

// GPR phases. A GPR is Queued until the planner starts it, Provisioned while
// it holds nodes, Complete once released, and Error when no inventory could
// ever satisfy it.
const (
	GPRQueued      ProvisioningStatus = "Queued"
	GPRProvisioned ProvisioningStatus = "Provisioned"
	GPRComplete    ProvisioningStatus = "Complete"
	GPRError       ProvisioningStatus = "Error"
)

// InternalState is the finer-grained state EGS reports beside the phase.
type InternalState string

// Internal states.
const (
	StateQueued       InternalState = "Queued"
	StateProvisioning InternalState = "Provisioning"
	StateProvisioned  InternalState = "Provisioned"
	StateReleased     InternalState = "Released"
	StateFailed       InternalState = "Failed"
)

// GPRReason says why a GPR is in its phase: why it was released, failed or
// put back in the queue. internalState follows from the phase and it.
type GPRReason string

// GPR reasons.
const (
	// ReasonExpired: exitDuration elapsed.
	ReasonExpired GPRReason = "Expired"
	// ReasonEarlyReleased: the user asked for early release.
	ReasonEarlyReleased GPRReason = "EarlyReleased"
	// ReasonWorkspaceDeleted: the GPR's workspace is gone or being deleted.
	ReasonWorkspaceDeleted GPRReason = "WorkspaceDeleted"
	// ReasonIdle: its GPUs stayed idle for idleTimeOutDuration.
	ReasonIdle GPRReason = "Idle"
	// ReasonEvicted: a higher-priority GPR took its nodes.
	ReasonEvicted GPRReason = "Evicted"
	// ReasonNodeLost: a node it held was deleted, or NotReady beyond the
	// controller's grace, and no free node could replace it: requeued
	// (requeueOnFailure), or released when it had no node left.
	ReasonNodeLost GPRReason = "NodeLost"
	// ReasonUnsatisfiable: no node of the inventory could ever satisfy it.
	ReasonUnsatisfiable GPRReason = "Unsatisfiable"
	// ReasonInvalid: admission refused it (missing workspace, a cluster
	// that is not the workspace's, a spec that cannot be planned).
	ReasonInvalid GPRReason = "Invalid"
)

// DefaultPriority is the priority of a GPR that names none: the bottom of
// the medium band (low 1-100, medium 101-200, high 201-300).
const DefaultPriority = 101

// GPUProvisionRequestSpec is a request for numberOfGPUNodes nodes with
// numberOfGPUs GPUs each, for exitDuration, at priority. Field names follow
// the EGS GPR API.
//
// +kubebuilder:validation:XValidation:rule="self.workspace == oldSelf.workspace",message="workspace is immutable"
// +kubebuilder:validation:XValidation:rule="self.clusterName == oldSelf.clusterName",message="clusterName is immutable"
type GPUProvisionRequestSpec struct {
	// GPRName is the user's name for the request (not unique; the object
	// name is the id).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	GPRName string `json:"gprName"`
	// Workspace the nodes are provisioned to (EGS: sliceName).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Workspace string `json:"workspace"`
	// ClusterName is the cluster to provision in.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ClusterName string `json:"clusterName"`
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
	// InstanceType the nodes must have (label
	// node.kubernetes.io/instance-type); empty means any.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	InstanceType string `json:"instanceType,omitempty"`
	// GPUShape is the GPU model, e.g. H100 or Tesla-T4; matched
	// case-insensitively on the normalised model name. Empty means any.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	GPUShape string `json:"gpuShape,omitempty"`
	// MemoryPerGPU is the GPU memory in GB each GPU must have, at least.
	// 0 means any.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4096
	MemoryPerGPU int32 `json:"memoryPerGPU,omitempty"`
	// Priority from 1 (lowest) to 300 (highest): low 1-100, medium
	// 101-200, high 201-300.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	// +kubebuilder:default=101
	// +optional
	Priority int32 `json:"priority,omitempty"`
	// ExitDuration is how long the nodes are held, as NdNhNm (e.g.
	// 0d2h30m).
	// +kubebuilder:validation:Pattern=`^[0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m$`
	ExitDuration string `json:"exitDuration"`
	// EarlyRelease set on a provisioned GPR releases its nodes now.
	// +optional
	EarlyRelease bool `json:"earlyRelease,omitempty"`

	// IdleTimeOutDuration (NdNhNm): with idle enforcement on, a provisioned
	// GPR whose nodes' GPUs have all been idle this long (counted from no
	// earlier than its start) is released with reason Idle.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9]{1,4}d[0-9]{1,5}h[0-9]{1,6}m)?$`
	IdleTimeOutDuration string `json:"idleTimeOutDuration,omitempty"`
	// EnforceIdleTimeOut turns idle release on for idleTimeOutDuration (a
	// workspace policy's enforceIdleTimeOut does too). The REST API
	// defaults it to true when idleTimeOutDuration is given, as EGS does.
	// +optional
	EnforceIdleTimeOut bool `json:"enforceIdleTimeOut,omitempty"`
	// MultiNode marks a request meant for one multi-node job.
	// +optional
	MultiNode bool `json:"multiNode,omitempty"`
	// EnableEviction lets this GPR, while queued, evict lower-priority
	// provisioned GPRs it cannot start without (when its workspace's policy
	// allows eviction; no policy: allowed). The planner picks the fewest
	// victims, then the lowest priority, then the most recently started,
	// never one of equal or higher priority or one inside its policy's
	// minRuntimeBeforeEviction.
	// +optional
	EnableEviction bool `json:"enableEviction,omitempty"`
	// RequeueOnFailure (or its workspace policy's, default true) puts the
	// GPR back in the queue, keeping its age, when it fails: no inventory
	// can satisfy it now (it waits with the reason in failureReason instead
	// of failing), it is evicted (instead of completing), or it loses a
	// node no free node can replace (instead of running short).
	// +optional
	RequeueOnFailure bool `json:"requeueOnFailure,omitempty"`
	// PreferredClusters, in order.
	// +optional
	PreferredClusters []string `json:"preferredClusters,omitempty"`
	// GPUSharingMode as EGS reports it.
	// +optional
	GPUSharingMode string `json:"gpuSharingMode,omitempty"`
	// DedicatedNodes, EnableRDMA and EnableSecondaryNetwork are EGS request
	// flags kept for wire compatibility.
	// +optional
	DedicatedNodes bool `json:"dedicatedNodes,omitempty"`
	// +optional
	EnableRDMA bool `json:"enableRDMA,omitempty"`
	// +optional
	EnableSecondaryNetwork bool `json:"enableSecondaryNetwork,omitempty"`

	// Topology-aware placement (topology_types.go).

	// Topology is where the nodes must or should sit: one domain of a
	// topology level, or as few as possible. Nil: anywhere (but in one
	// nvidia.com/gpu.clique where the nodes have cliques).
	// +optional
	Topology *GPRTopology `json:"topology,omitempty"`
}

// GPR condition types.
const (
	// GPRNodesHealthy is False when a node the GPR holds is gone or not
	// Ready.
	GPRNodesHealthy = "NodesHealthy"
)

// GPUProvisionRequestStatus is what gpuspace did with a GPR.
type GPUProvisionRequestStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ProvisioningStatus is the phase: Queued, Provisioned, Complete, Error.
	// +optional
	ProvisioningStatus ProvisioningStatus `json:"provisioningStatus,omitempty"`
	// InternalState is the step within the phase.
	// +optional
	InternalState InternalState `json:"internalState,omitempty"`
	// FailureReason says why a GPR is in Error, or why a queued GPR waits
	// without an estimate.
	// +optional
	FailureReason string `json:"failureReason,omitempty"`
	// Reason is why the GPR is in its phase: Expired, EarlyReleased,
	// WorkspaceDeleted, Idle or Evicted for a released GPR; Unsatisfiable or
	// Invalid for a failed (or held) one.
	// +optional
	Reason GPRReason `json:"reason,omitempty"`
	// EvictedBy is the GPR that evicted this one (reason Evicted), the
	// last time it was evicted.
	// +optional
	EvictedBy string `json:"evictedBy,omitempty"`
	// Nodes held by the GPR. This is the source of truth for node bindings:
	// node labels and taints are reconciled from it.
	// +optional
	// +listType=set
	Nodes []string `json:"nodes,omitempty"`
	// NumGpusAllocated across all nodes.
	// +optional
	NumGpusAllocated int32 `json:"numGpusAllocated,omitempty"`
	// StartTimestamp is when the nodes were bound.
	// +optional
	StartTimestamp *metav1.Time `json:"startTimestamp,omitempty"`
	// CompletionTimestamp is when the nodes were released.
	// +optional
	CompletionTimestamp *metav1.Time `json:"completionTimestamp,omitempty"`
	// EstimatedStartTime of a queued GPR, from the current plan: its
	// likely start, with the GPRs ahead predicted to hold their nodes as
	// long as their workspaces' recent GPRs did (never after
	// latestStartTime).
	// +optional
	EstimatedStartTime *metav1.Time `json:"estimatedStartTime,omitempty"`
	// EstimatedWaitTime of a queued GPR as a Go duration ("0h2m40s"):
	// until its likely start.
	// +optional
	EstimatedWaitTime string `json:"estimatedWaitTime,omitempty"`
	// LatestStartTime of a queued GPR: when it starts at the latest if
	// every GPR ahead of it holds its nodes for its whole exitDuration and
	// no GPR of higher priority arrives — the guarantee, where
	// estimatedStartTime is the likely start.
	// +optional
	LatestStartTime *metav1.Time `json:"latestStartTime,omitempty"`
	// LatestWaitTime of a queued GPR as a Go duration: until its latest
	// start.
	// +optional
	LatestWaitTime string `json:"latestWaitTime,omitempty"`
	// FirstEstimatedStartTime is the likely start estimated when the GPR
	// was admitted, kept once it starts: how far off the estimate a user
	// saw at submission was (gpuspace_gpr_start_estimate_error_seconds).
	// +optional
	FirstEstimatedStartTime *metav1.Time `json:"firstEstimatedStartTime,omitempty"`
	// Cost is what the GPR cost in USD ("12.45"): GPU-hours × the
	// operator's price per GPU-hour of its nodes' shape, written once when
	// it completes (the API computes it live while provisioned). Empty when
	// no price is configured for a shape it used.
	// +optional
	Cost string `json:"cost,omitempty"`
	// EarlierCost is what the GPR's earlier runs cost, in USD, when it was
	// put back in the queue (evicted, a node lost) after running; cost
	// includes it. Empty when it never ran before, or without prices.
	// +optional
	EarlierCost string `json:"earlierCost,omitempty"`
	// RetryCount is how many times the GPR went back to the queue after it
	// had started (evicted, or a node lost).
	// +optional
	RetryCount int32 `json:"retryCount,omitempty"`
	// DelayedCount is how many times its estimated start moved later while
	// it was queued (a higher-priority GPR came first, a GPR ahead of it
	// ran longer, nodes went away), counted when the estimate is written.
	// +optional
	DelayedCount int32 `json:"delayedCount,omitempty"`
	// Conditions: NodesHealthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// GPUProvisionRequest (GPR) asks for GPU nodes for a workspace. Its name is
// the EGS-style id, gpr-xxxxxxxx-xxxx.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=gpr,categories=gpuspace
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="GPR names are at most 63 characters: they are used as label values"
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspace`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.provisioningStatus`
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.status.numGpusAllocated`
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="Start",type=date,JSONPath=`.status.startTimestamp`
// +kubebuilder:printcolumn:name="Likely Start",type=string,JSONPath=`.status.estimatedStartTime`
// +kubebuilder:printcolumn:name="Latest Start",type=string,JSONPath=`.status.latestStartTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Shape",type=string,JSONPath=`.spec.gpuShape`,priority=1
// +kubebuilder:printcolumn:name="Duration",type=string,JSONPath=`.spec.exitDuration`,priority=1
// +kubebuilder:printcolumn:name="Topology",type=string,JSONPath=`.spec.topology.required`,priority=1
// +kubebuilder:printcolumn:name="Prefers",type=string,JSONPath=`.spec.topology.preferred`,priority=1
type GPUProvisionRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GPUProvisionRequestSpec   `json:"spec"`
	Status GPUProvisionRequestStatus `json:"status,omitempty"`
}

// GPUProvisionRequestList is a list of GPUProvisionRequests.
//
// +kubebuilder:object:root=true
type GPUProvisionRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GPUProvisionRequest `json:"items"`
}
