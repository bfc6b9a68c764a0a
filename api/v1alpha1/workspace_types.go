package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OverlayNetworkMode is EGS's overlay network deployment mode. gpuspace runs
// no overlay network; the mode is kept so EGS clients read back what they
// wrote.
// +kubebuilder:validation:Enum=single-network;multi-network;no-network
type OverlayNetworkMode string

// Overlay network modes.
const (
	OverlaySingleNetwork OverlayNetworkMode = "single-network"
	OverlayMultiNetwork  OverlayNetworkMode = "multi-network"
	OverlayNoNetwork     OverlayNetworkMode = "no-network"
)

// WorkspaceNamespace is a namespace of a workspace and the clusters it is
// in.
type WorkspaceNamespace struct {
	// Namespace is the namespace name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`
	// Clusters the namespace is in; empty means every cluster of the
	// workspace.
	// +optional
	// +listType=set
	Clusters []string `json:"clusters,omitempty"`
}

// WorkspaceSpec is what a workspace is: a user, the namespaces they work in,
// and the clusters those are on. Field names follow the EGS slice workspace
// API.
type WorkspaceSpec struct {
	// Username is the user, team, job or project the workspace is for.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Username string `json:"username"`
	// Email of the user.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	Email string `json:"email,omitempty"`
	// Clusters the workspace spans.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	Clusters []string `json:"clusters"`
	// Namespaces of the workspace. gpuspace creates missing ones and never
	// deletes them.
	// +kubebuilder:validation:MinItems=1
	// +listType=map
	// +listMapKey=namespace
	Namespaces []WorkspaceNamespace `json:"namespaces"`
	// OverlayNetworkDeploymentMode as EGS clients send it.
	// +kubebuilder:default=no-network
	// +optional
	OverlayNetworkDeploymentMode OverlayNetworkMode `json:"overlayNetworkDeploymentMode,omitempty"`
	// SliceSubnet is the overlay subnet CIDR (informational).
	// +optional
	SliceSubnet string `json:"sliceSubnet,omitempty"`
	// SliceGatewayType is the overlay gateway type, e.g. OpenVPN
	// (informational).
	// +optional
	SliceGatewayType string `json:"sliceGatewayType,omitempty"`
	// StandardQosProfileName is the QoS profile name (informational).
	// +optional
	StandardQosProfileName string `json:"standardQosProfileName,omitempty"`
	// MaxClusters is the most clusters the workspace may span.
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	// +optional
	MaxClusters int32 `json:"maxClusters,omitempty"`
	// Description of the workspace.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`
}

// Workspace condition types.
const (
	// WorkspaceReady is True when every namespace exists, is labelled and
	// has the workspace's ServiceAccount and RoleBinding.
	WorkspaceReady = "Ready"
)

// WorkspaceStatus is what gpuspace observed of a workspace.
type WorkspaceStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ActiveGPR is the GPUProvisionRequest provisioned to the workspace now.
	// +optional
	ActiveGPR string `json:"activeGPR,omitempty"`
	// QueuedGPRs is how many of the workspace's GPRs are queued.
	// +optional
	QueuedGPRs int32 `json:"queuedGPRs,omitempty"`
	// ServiceAccount is the name of the workspace's ServiceAccount in each
	// of its namespaces.
	// +optional
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

// Workspace is a user and the namespaces they run GPU workloads in. Nodes of
// the workspace's provisioned GPR are bound to it exclusively.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ws,categories=gpuspace
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="workspace names are at most 63 characters"
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.spec.username`
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.spec.clusters`
// +kubebuilder:printcolumn:name="Namespaces",type=string,JSONPath=`.spec.namespaces[*].namespace`
// +kubebuilder:printcolumn:name="Active GPR",type=string,JSONPath=`.status.activeGPR`
// +kubebuilder:printcolumn:name="Queued",type=integer,JSONPath=`.status.queuedGPRs`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Workspace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WorkspaceSpec   `json:"spec"`
	Status WorkspaceStatus `json:"status,omitempty"`
}

// WorkspaceList is a list of Workspaces.
//
// +kubebuilder:object:root=true
type WorkspaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workspace `json:"items"`
}
