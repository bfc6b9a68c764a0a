package apiserver

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/internal/view"
)

// Node topology labels the inventory reads.
const (
	labelRegion = "topology.kubernetes.io/region"
	labelZone   = "topology.kubernetes.io/zone"
)

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

// nodes lists the GPU nodes of every cluster, by name (view.View.Nodes).
func (s *Server) nodes(ctx context.Context) ([]view.Node, error) {
	nodes, err := s.view.Nodes(ctx)
	return nodes, s.viewErr(err)
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
