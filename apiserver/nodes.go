package apiserver

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/gpushape"
)

// Node topology labels the inventory reads.
const (
	labelRegion = "topology.kubernetes.io/region"
	labelZone   = "topology.kubernetes.io/zone"
)

// nodes lists the GPU nodes in the cache, by name. The slice's objects are
// the cache's own: read them, never change them.
func (s *Server) nodes(ctx context.Context) ([]corev1.Node, error) {
	var list corev1.NodeList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "nodes")
	}
	out := list.Items[:0:0]
	for i := range list.Items {
		if gpuCount(&list.Items[i]) > 0 {
			out = append(out, list.Items[i])
		}
	}
	slices.SortFunc(out, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// knownClusters are the clusters nodes name, plus the default cluster (a
// single-cluster install, or one whose nodes are not labelled yet).
func (s *Server) knownClusters(ctx context.Context) ([]string, error) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, err
	}
	known := []string{v1alpha1.DefaultCluster}
	for i := range nodes {
		if c := clusterOf(&nodes[i]); !slices.Contains(known, c) {
			known = append(known, c)
		}
	}
	slices.Sort(known)
	return known, nil
}

func clusterOf(n *corev1.Node) string {
	if c := n.Labels[v1alpha1.LabelCluster]; c != "" {
		return c
	}
	return v1alpha1.DefaultCluster
}

// gpuCount is the node's whole GPUs: allocatable nvidia.com/gpu, else
// capacity, else the feature-discovery count label.
func gpuCount(n *corev1.Node) int {
	for _, rl := range []corev1.ResourceList{n.Status.Allocatable, n.Status.Capacity} {
		if q, ok := rl[corev1.ResourceName(v1alpha1.ResourceGPU)]; ok && q.Value() > 0 {
			return int(q.Value())
		}
	}
	c, _ := strconv.Atoi(n.Labels[v1alpha1.LabelGPUCount])
	return c
}

// gpuMemoryGB is the memory of one GPU in whole GB, from the MiB label,
// rounded to nearest: a T4's 15360 MiB is 15, an H100's 81559 MiB is 80.
func gpuMemoryGB(n *corev1.Node) int {
	mib, err := strconv.Atoi(n.Labels[v1alpha1.LabelGPUMemory])
	if err != nil || mib <= 0 {
		return 0
	}
	return int(math.Round(float64(mib) / 1024))
}

func gpuProduct(n *corev1.Node) string { return n.Labels[v1alpha1.LabelGPUProduct] }

func gpuShapeOf(n *corev1.Node) string {
	if s := n.Labels[v1alpha1.LabelGPUShape]; s != "" {
		return s
	}
	return gpushape.Normalize(gpuProduct(n))
}

func instanceTypeOf(n *corev1.Node) string { return n.Labels[v1alpha1.LabelInstanceType] }

// healthy: Ready and schedulable.
func healthy(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func locationOf(n *corev1.Node) string {
	if r := n.Labels[labelRegion]; r != "" {
		return r
	}
	return n.Labels[labelZone]
}

// providerOf names the cloud from the node's providerID scheme.
func providerOf(n *corev1.Node) string {
	scheme, _, ok := strings.Cut(n.Spec.ProviderID, "://")
	if !ok {
		return ""
	}
	switch scheme {
	case "gce":
		return "gcp"
	case "aws":
		return "aws"
	case "azure":
		return "azure"
	}
	return scheme
}
