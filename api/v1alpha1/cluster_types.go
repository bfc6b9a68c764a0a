package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ClusterSpec names where a worker cluster's credential is: a Secret in
// gpuspace's own namespace holding a kubeconfig (push mode, as Kueue's
// MultiKueueCluster and Karmada's Cluster do).
type ClusterSpec struct {
	// KubeconfigSecret is the Secret, in gpuspace's namespace, whose
	// KubeconfigKey ("kubeconfig") holds the worker's kubeconfig.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	KubeconfigSecret string `json:"kubeconfigSecret"`
	// Context of the kubeconfig to use; empty means its current context.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Context string `json:"context,omitempty"`
	// Location is the cluster's region or site, as overlay metrics report
	// it (informational).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Location string `json:"location,omitempty"`
	// Provider is the cluster's cloud or "on-prem" (informational).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Provider string `json:"provider,omitempty"`
}

// KubeconfigKey is the key of the kubeconfig in a Cluster's Secret.
const KubeconfigKey = "kubeconfig"

// LabelClusterSecret on a Secret names the Cluster whose kubeconfig it
// holds.
const LabelClusterSecret = "gpuspace.io/cluster-kubeconfig"

// Cluster condition types and reasons.
const (
	// ClusterReady is True while the worker's API server answers with the
	// Cluster's credential.
	ClusterReady = "Ready"
	// Reasons of the Ready condition.
	ClusterReasonReachable     = "Reachable"
	ClusterReasonUnreachable   = "Unreachable"
	ClusterReasonBadCredential = "InvalidCredential"
	ClusterReasonUnauthorized  = "Unauthorized"
)

// ShapeCapacity is the GPUs of one shape in a cluster.
type ShapeCapacity struct {
	// Shape is the normalised GPU model ("H100").
	Shape string `json:"shape"`
	// Nodes of the shape.
	Nodes int32 `json:"nodes"`
	// GPUs installed on those nodes.
	GPUs int32 `json:"gpus"`
	// HealthyGPUs of those, as the kubelets report them allocatable.
	HealthyGPUs int32 `json:"healthyGPUs"`
}

// ClusterStatus is what the hub observed of a worker cluster.
type ClusterStatus struct {
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Version is the worker API server's version (gitVersion).
	// +optional
	Version string `json:"version,omitempty"`
	// Server is the URL of the worker's API server.
	// +optional
	Server string `json:"server,omitempty"`
	// LastHeartbeatTime is when the hub last reached the API server. It is
	// written on every change of Ready and otherwise at a coarse interval.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// Nodes is the number of nodes of the cluster.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
	// GPUNodes is the number of its nodes with GPUs.
	// +optional
	GPUNodes int32 `json:"gpuNodes,omitempty"`
	// Capacity is the GPU capacity by shape, by shape name.
	// +optional
	// +listType=map
	// +listMapKey=shape
	Capacity []ShapeCapacity `json:"capacity,omitempty"`
}

// Cluster is a worker cluster registered with the gpuspace hub. The cluster
// gpuspace runs in is a worker too (named by --cluster-name) and needs no
// Cluster object.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=gpuspace
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="cluster names are at most 63 characters"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="GPU Nodes",type=integer,JSONPath=`.status.gpuNodes`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.lastHeartbeatTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSpec   `json:"spec"`
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterList is a list of Clusters.
//
// +kubebuilder:object:root=true
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &Cluster{}, &ClusterList{})
		return nil
	})
}
