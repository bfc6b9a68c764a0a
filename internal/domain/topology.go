package domain

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/gpushape"
)

// Built-in topologies: the labels clouds and NVIDIA put on nodes, coarse
// to fine. They apply to nodes no Topology object selects and that carry
// their first level's label, so a cluster on GKE, EKS, OCI or with NVIDIA
// Topograph needs no configuration.
var builtinTopologies = []v1alpha1.Topology{
	builtin("builtin-gke", "cloud.google.com/gce-topology-block", "cloud.google.com/gce-topology-subblock", "cloud.google.com/gce-topology-host", v1alpha1.LabelHostname),
	builtin("builtin-eks", "topology.k8s.aws/network-node-layer-1", "topology.k8s.aws/network-node-layer-2", "topology.k8s.aws/network-node-layer-3", "topology.k8s.aws/network-node-layer-4", v1alpha1.LabelHostname),
	builtin("builtin-topograph", "network.topology.nvidia.com/core", "network.topology.nvidia.com/spine", "network.topology.nvidia.com/leaf", "network.topology.nvidia.com/accelerator", v1alpha1.LabelHostname),
	builtin("builtin-oci", "oci.oraclecloud.com/host.network_block_id", "oci.oraclecloud.com/host.rack_id", v1alpha1.LabelHostname),
	builtin("builtin-nebius", "topology.nebius.com/tier-1", "topology.nebius.com/tier-2", v1alpha1.LabelHostname),
}

func builtin(name string, labels ...string) v1alpha1.Topology {
	t := v1alpha1.Topology{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, l := range labels {
		t.Spec.Levels = append(t.Spec.Levels, v1alpha1.TopologyLevel{NodeLabel: l})
	}
	return t
}

// BuiltinTopologies are the topologies that apply without configuration
// (GKE, EKS, NVIDIA Topograph, OCI, Nebius). The caller may not modify
// them.
func BuiltinTopologies() []v1alpha1.Topology { return builtinTopologies }

// Topologies are the cluster's Topology objects, by name, then the
// built-in ones: which topology applies to a node.
type Topologies struct {
	list []v1alpha1.Topology
}

// TopologyIndex indexes the Topology objects (any order) before the
// built-in ones.
func TopologyIndex(items []v1alpha1.Topology) Topologies {
	list := slices.Clone(items)
	slices.SortFunc(list, func(a, b v1alpha1.Topology) int { return strings.Compare(a.Name, b.Name) })
	return Topologies{list: append(list, builtinTopologies...)}
}

// For is the topology that applies to a node of the given cluster and
// normalised GPU shape: the first whose node selector matches and whose
// first level the node carries; nil when none does.
func (ts Topologies) For(n *corev1.Node, cluster, shape string) *v1alpha1.Topology {
	if ts.list == nil {
		ts = TopologyIndex(nil)
	}
	for i := range ts.list {
		t := &ts.list[i]
		if len(t.Spec.Levels) == 0 {
			continue
		}
		if _, ok := n.Labels[t.Spec.Levels[0].NodeLabel]; ok && selects(t.Spec.NodeSelector, n, cluster, shape) {
			return t
		}
	}
	return nil
}

func selects(s v1alpha1.TopologyNodeSelector, n *corev1.Node, cluster, shape string) bool {
	if len(s.Clusters) > 0 && !slices.Contains(s.Clusters, cluster) {
		return false
	}
	if len(s.GPUShapes) > 0 && !slices.ContainsFunc(s.GPUShapes, func(x string) bool { return gpushape.Normalize(x) == shape }) {
		return false
	}
	for k, v := range s.MatchLabels {
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

// HasLevel reports whether level is a level of some topology, or the
// NVLink clique label.
func (ts Topologies) HasLevel(level string) bool {
	if level == v1alpha1.LabelGPUClique {
		return true
	}
	if ts.list == nil {
		ts = TopologyIndex(nil)
	}
	for _, t := range ts.list {
		if slices.ContainsFunc(t.Spec.Levels, func(l v1alpha1.TopologyLevel) bool { return l.NodeLabel == level }) {
			return true
		}
	}
	return false
}

// TopologyDomain is a node's domain at one level.
type TopologyDomain struct {
	// Level is the level's node label.
	Level string
	// ID names the domain uniquely across the topology: the values of the
	// node's labels from the coarsest level down to this one, so two
	// sub-blocks of the same name in different blocks are two domains.
	ID string
}

// NodeDomains is a node's domains under topology t, coarse to fine,
// stopping at the first level whose label the node lacks (a domain is
// only known within its parent), then its NVLink clique when it has one.
// The hostname level is left out: a node is its own domain there.
func NodeDomains(n *corev1.Node, t *v1alpha1.Topology) []TopologyDomain {
	var out []TopologyDomain
	if t != nil {
		id := t.Name
		for _, l := range t.Spec.Levels {
			v, ok := n.Labels[l.NodeLabel]
			if !ok || l.NodeLabel == v1alpha1.LabelHostname {
				break
			}
			id += "/" + v
			out = append(out, TopologyDomain{Level: l.NodeLabel, ID: id})
		}
	}
	if c := n.Labels[v1alpha1.LabelGPUClique]; c != "" {
		out = append(out, TopologyDomain{Level: v1alpha1.LabelGPUClique, ID: "clique/" + c})
	}
	return out
}

// Levels are the levels of every topology, each once, in the order the
// topologies list them, then the NVLink clique: what a GPR may name.
func (ts Topologies) Levels() []string {
	if ts.list == nil {
		ts = TopologyIndex(nil)
	}
	var out []string
	for _, t := range ts.list {
		for _, l := range t.Spec.Levels {
			if !slices.Contains(out, l.NodeLabel) {
				out = append(out, l.NodeLabel)
			}
		}
	}
	return append(out, v1alpha1.LabelGPUClique)
}
