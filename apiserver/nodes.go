package apiserver

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/internal/domain"
)

// Node topology labels the inventory reads.
const (
	labelRegion = "topology.kubernetes.io/region"
	labelZone   = "topology.kubernetes.io/zone"
)

// gpuNode is a GPU node of the cache with its GPU facts.
type gpuNode struct {
	*corev1.Node
	domain.GPUNode
}

// nodes lists the GPU nodes in the cache, by name, with their GPU facts
// (domain.GPUFacts, with the configured default cluster). The Node objects
// are the cache's own: read them, never change them.
func (s *Server) nodes(ctx context.Context) ([]gpuNode, error) {
	var list corev1.NodeList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "nodes")
	}
	out := make([]gpuNode, 0, len(list.Items))
	for i := range list.Items {
		if f, ok := domain.GPUFacts(&list.Items[i], s.cfg.DefaultCluster); ok {
			out = append(out, gpuNode{Node: &list.Items[i], GPUNode: f})
		}
	}
	slices.SortFunc(out, func(a, b gpuNode) int { return strings.Compare(a.GPUNode.Name, b.GPUNode.Name) })
	return out, nil
}

// knownClusters are the clusters nodes name, plus the default cluster (a
// single-cluster install, or one whose nodes are not labelled yet).
func (s *Server) knownClusters(ctx context.Context) ([]string, error) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, err
	}
	known := []string{s.cfg.DefaultCluster}
	for _, n := range nodes {
		if !slices.Contains(known, n.Cluster) {
			known = append(known, n.Cluster)
		}
	}
	slices.Sort(known)
	return known, nil
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
