package domain

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/gpushape"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// GPUNode is what gpuspace knows of a GPU node.
type GPUNode struct {
	// Name of the node.
	Name string
	// Cluster is the node's gpuspace.io/cluster label, else the configured
	// default cluster.
	Cluster string
	// InstanceType is the node.kubernetes.io/instance-type label.
	InstanceType string
	// Product is the GPU product as NVML reports it.
	Product string
	// Shape is the normalised GPU model ("H100"): the gpuspace.io/gpu.shape
	// label, else derived from Product, normalised here once so that the
	// planner, the inventory and the API compare the same string.
	Shape string
	// MemoryMiB is the memory of one GPU in MiB.
	MemoryMiB int64
	// GPUs is the number of GPUs installed: the nvidia.com/gpu.count label
	// (what feature discovery and our device plugin publish), else the
	// nvidia.com/gpu capacity, else allocatable.
	GPUs int32
	// HealthyGPUs is the number the kubelet can hand out now: allocatable
	// nvidia.com/gpu (the device plugin leaves unhealthy GPUs out), else
	// GPUs when the node advertises no allocatable GPUs at all.
	HealthyGPUs int32
	// Ready is the node's Ready condition.
	Ready bool
	// Schedulable is false for a cordoned node.
	Schedulable bool
}

// Healthy reports whether GPRs may start on the node now: Ready, not
// cordoned, and every installed GPU healthy. Nodes are bound whole, so a
// node with a failed GPU waits until it recovers rather than being handed
// out short of a GPU.
func (n GPUNode) Healthy() bool {
	return n.Ready && n.Schedulable && n.HealthyGPUs >= n.GPUs
}

// MemoryGB is the memory of one GPU in whole GB, rounded to nearest, as
// users write memoryPerGPU: a T4's 15360 MiB is 15, an H100's 81559 MiB 80.
func (n GPUNode) MemoryGB() int {
	if n.MemoryMiB <= 0 {
		return 0
	}
	return int(math.Round(float64(n.MemoryMiB) / 1024))
}

// GPUFacts reads a node's GPU facts. It reports false for a node without
// GPUs. defaultCluster is the cluster of nodes without a gpuspace.io/cluster
// label: the --cluster-name gpuspace runs with.
func GPUFacts(n *corev1.Node, defaultCluster string) (GPUNode, bool) {
	l := n.Labels
	installed := labelInt(l[v1alpha1.LabelGPUCount])
	alloc, hasAlloc := gpuQuantity(n.Status.Allocatable)
	if installed <= 0 {
		installed, _ = gpuQuantity(n.Status.Capacity)
	}
	if installed <= 0 {
		installed = alloc
	}
	if installed <= 0 {
		return GPUNode{}, false
	}
	healthy := installed
	if hasAlloc {
		healthy = alloc
	}
	shape := gpushape.Normalize(l[v1alpha1.LabelGPUShape])
	if shape == "" {
		shape = gpushape.Normalize(l[v1alpha1.LabelGPUProduct])
	}
	mem, _ := strconv.ParseInt(l[v1alpha1.LabelGPUMemory], 10, 64)
	return GPUNode{
		Name: n.Name, Cluster: NodeCluster(n, defaultCluster),
		InstanceType: l[v1alpha1.LabelInstanceType],
		Product:      l[v1alpha1.LabelGPUProduct], Shape: shape,
		MemoryMiB: max(mem, 0), GPUs: installed, HealthyGPUs: healthy,
		Ready: NodeReady(n), Schedulable: !n.Spec.Unschedulable,
	}, true
}

// NodeCluster is the cluster a node is planned in: its gpuspace.io/cluster
// label (set by the worker registry on every worker's node, or by hand on a
// single-cluster install's label clusters), else defaultCluster. It is the
// one place a node's cluster is read; the registry's ClusterOf builds on it
// to tell which Kubernetes cluster to call.
func NodeCluster(n *corev1.Node, defaultCluster string) string {
	if c := n.Labels[v1alpha1.LabelCluster]; c != "" {
		return c
	}
	return defaultCluster
}

// labelInt parses a count label; anything else is 0.
func labelInt(s string) int32 {
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil || v < 0 {
		return 0
	}
	return int32(min(v, 1<<20))
}

// gpuQuantity is a resource list's nvidia.com/gpu, and whether it has one.
func gpuQuantity(rl corev1.ResourceList) (int32, bool) {
	q, ok := rl[corev1.ResourceName(v1alpha1.ResourceGPU)]
	if !ok {
		return 0, false
	}
	return int32(min(max(q.Value(), 0), 1<<20)), true
}

// NodeChangeMatters reports whether an update of a node can change a plan,
// a binding or an idle release: its labels (GPU facts, cluster, binding),
// taints, cordon, Ready, GPU capacity or allocatable, or its idle signal.
// Heartbeats and other status churn do not. The GPR controller's node
// watches filter on it; the event stream's node changes are a subset
// (GPU facts and health, GPUFacts).
func NodeChangeMatters(o, n *corev1.Node) bool {
	gpu := corev1.ResourceName(v1alpha1.ResourceGPU)
	return !maps.Equal(o.Labels, n.Labels) ||
		!equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
		o.Spec.Unschedulable != n.Spec.Unschedulable ||
		idlesignal.IdleChanged(o, n) ||
		NodeReady(o) != NodeReady(n) ||
		!o.Status.Capacity[gpu].Equal(n.Status.Capacity[gpu]) ||
		!o.Status.Allocatable[gpu].Equal(n.Status.Allocatable[gpu])
}

// NodeReady reports whether a node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Claim is a node named in the status of more than one provisioned GPR.
// gpuspace never writes one; it is reported, never resolved by guessing.
type Claim struct {
	Node string
	GPRs []string
}

// Holders maps each node to the provisioned GPR whose status.nodes names
// it. The holder of a node is decided by GPR status alone — never by node
// labels, which trail status and may be stale. A node named by several
// GPRs has no holder in the map and is returned in conflicts: it must be
// treated as held (by an unknown GPR) until a human resolves it.
func Holders(gprs []*v1alpha1.GPUProvisionRequest) (holders map[string]*v1alpha1.GPUProvisionRequest, conflicts []Claim) {
	holders = map[string]*v1alpha1.GPUProvisionRequest{}
	claims := map[string][]string{}
	for _, g := range gprs {
		if !IsProvisioned(g) {
			continue
		}
		for _, n := range g.Status.Nodes {
			claims[n] = append(claims[n], g.Name)
			holders[n] = g
		}
	}
	for n, ids := range claims {
		if len(ids) > 1 {
			delete(holders, n)
			slices.Sort(ids)
			conflicts = append(conflicts, Claim{Node: n, GPRs: ids})
		}
	}
	slices.SortFunc(conflicts, func(a, b Claim) int { return strings.Compare(a.Node, b.Node) })
	return holders, conflicts
}
