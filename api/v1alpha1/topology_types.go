package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// LabelHostname is the finest topology level: one node. It may only be a
// topology's last level.
const LabelHostname = "kubernetes.io/hostname"

// LabelGPUClique is NVIDIA's multi-node NVLink domain of a node,
// "<ClusterUUID>.<CliqueID>", set once NVML reports the GPU fabric
// complete (the device plugin publishes it). Nodes that carry it are
// co-located by it: a GPR on them gets all its nodes in one clique where
// one clique can hold it.
const LabelGPUClique = "nvidia.com/gpu.clique"

// TopologyLevel is one level of a network topology: the node label whose
// value names the node's domain at that level.
type TopologyLevel struct {
	// NodeLabel is the label, e.g. cloud.google.com/gce-topology-block.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=316
	NodeLabel string `json:"nodeLabel"`
}

// TopologyNodeSelector says which nodes a topology applies to. Every field
// that is set must match; an empty selector matches every node that
// carries the topology's first level label.
type TopologyNodeSelector struct {
	// GPUShapes the nodes' GPUs are (normalised, e.g. H100); empty: any.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	GPUShapes []string `json:"gpuShapes,omitempty"`
	// Clusters the nodes belong to; empty: any.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Clusters []string `json:"clusters,omitempty"`
	// MatchLabels the nodes carry; empty: any.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// TopologySpec is the ordered levels of a topology, coarsest first, and
// the nodes it applies to.
type TopologySpec struct {
	// Levels, coarsest first (e.g. block, sub-block, host).
	// kubernetes.io/hostname may only be last.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(l, self.exists_one(m, m.nodeLabel == l.nodeLabel))",message="levels must be distinct"
	// +kubebuilder:validation:XValidation:rule="self.all(l, l.nodeLabel != 'kubernetes.io/hostname' || self[size(self)-1].nodeLabel == 'kubernetes.io/hostname')",message="kubernetes.io/hostname may only be the last level"
	Levels []TopologyLevel `json:"levels"`
	// NodeSelector picks the nodes the topology applies to. A node matched
	// by several topologies takes the first by name.
	// +optional
	NodeSelector TopologyNodeSelector `json:"nodeSelector,omitempty"`
}

// Topology is a cluster-scoped network topology, in Kueue's and KAI's
// vocabulary: ordered levels, each a node label. GPRs name a level in
// spec.topology. Built-in topologies (GKE, EKS, NVIDIA Topograph, OCI)
// apply to nodes no Topology object selects.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=topo,categories=gpuspace
// +kubebuilder:printcolumn:name="Levels",type=string,JSONPath=`.spec.levels[*].nodeLabel`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Topology struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TopologySpec `json:"spec"`
}

// TopologyList is a list of Topologies.
//
// +kubebuilder:object:root=true
type TopologyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Topology `json:"items"`
}

// GPRTopology is where a multi-node GPR's nodes must, or should, sit.
// Exactly one of Required and Preferred is set.
//
// +kubebuilder:validation:XValidation:rule="has(self.required) != has(self.preferred)",message="exactly one of required and preferred"
type GPRTopology struct {
	// Required is a topology level (a node label): all the GPR's nodes
	// (or, with SliceSize, each slice) in one domain at that level; the
	// GPR waits until one has room.
	// +optional
	// +kubebuilder:validation:MaxLength=316
	Required string `json:"required,omitempty"`
	// Preferred is a topology level: the nodes in as few domains of that
	// level as possible.
	// +optional
	// +kubebuilder:validation:MaxLength=316
	Preferred string `json:"preferred,omitempty"`
	// SliceSize splits the nodes in slices of this many, each slice in
	// one domain at the level; it must divide numberOfGPUNodes. 0: one
	// slice of all the nodes.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	SliceSize int32 `json:"sliceSize,omitempty"`
}

// Level is the level the topology names, required or preferred.
func (t *GPRTopology) Level() string {
	if t == nil {
		return ""
	}
	if t.Required != "" {
		return t.Required
	}
	return t.Preferred
}

// PolicyTopology lets a policy require a topology level of its
// workspace's large GPRs.
type PolicyTopology struct {
	// MinNodes: GPRs of at least this many nodes must name a topology.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=1024
	MinNodes int32 `json:"minNodes"`
	// Level those GPRs get, as required, when they name no topology.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=316
	Level string `json:"level"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &Topology{}, &TopologyList{})
		return nil
	})
}
