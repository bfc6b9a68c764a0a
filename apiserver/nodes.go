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

// Clusters is what the API needs of the worker cluster registry
// (internal/clusters.Registry).
type Clusters interface {
	// Nodes are the workers' nodes, each labelled with its cluster.
	Nodes(ctx context.Context) ([]*corev1.Node, error)
	// Names are the clusters: the local one and every registered one.
	Names() []string
	// Local is the cluster the API runs in.
	Local() string
	// Client reaches a registered cluster; Endpoint is its API server URL
	// and CA, for workspace kubeconfigs.
	Client(cluster string) (client.Client, bool)
	Endpoint(cluster string) (server string, caData []byte, ok bool)
}

// WithClusters makes the inventory, the plan and the known clusters span
// the registered worker clusters.
func WithClusters(c Clusters) Option { return func(o *options) { o.clusters = c } }

// allNodes are the nodes of the cache and every worker cluster's. The
// Node objects are the caches' own: read them, never change them.
func (s *Server) allNodes(ctx context.Context) ([]*corev1.Node, error) {
	var list corev1.NodeList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "nodes")
	}
	out := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	if s.opts.clusters != nil {
		workers, err := s.opts.clusters.Nodes(ctx)
		if err != nil {
			return nil, s.kubeErr(err, "nodes")
		}
		out = append(out, workers...)
	}
	return out, nil
}

// nodes lists the GPU nodes of every cluster, by name, with their GPU
// facts (domain.GPUFacts, with the configured default cluster). Read the
// Node objects, never change them.
func (s *Server) nodes(ctx context.Context) ([]gpuNode, error) {
	all, err := s.allNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]gpuNode, 0, len(all))
	for _, n := range all {
		if f, ok := domain.GPUFacts(n, s.cfg.DefaultCluster); ok {
			out = append(out, gpuNode{Node: n, GPUNode: f})
		}
	}
	slices.SortFunc(out, func(a, b gpuNode) int { return strings.Compare(a.GPUNode.Name, b.GPUNode.Name) })
	return out, nil
}

// knownClusters are the clusters nodes name, the registered clusters, plus
// the default cluster (a single-cluster install, or one whose nodes are not
// labelled yet).
func (s *Server) knownClusters(ctx context.Context) ([]string, error) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, err
	}
	known := []string{s.cfg.DefaultCluster}
	if s.opts.clusters != nil {
		for _, c := range s.opts.clusters.Names() {
			if !slices.Contains(known, c) {
				known = append(known, c)
			}
		}
	}
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
