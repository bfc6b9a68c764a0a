package gpr

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Clusters is what the controller needs of the worker cluster registry
// (internal/clusters.Registry): the workers' nodes to plan over, each
// labelled with its cluster, and the client of a node's own cluster to
// bind it there. Without it (New's default) the controller plans over the
// nodes of the cluster it runs in, as a single-cluster install does.
type Clusters interface {
	// Nodes are the workers' nodes; those of a worker that is not Ready
	// are not Ready themselves (no new GPRs, no release because of it).
	Nodes(ctx context.Context) ([]*corev1.Node, error)
	// ClusterOf is the cluster of a node.
	ClusterOf(n *corev1.Node) string
	// Client and APIReader reach a cluster (the local one: the manager's).
	Client(cluster string) (client.Client, bool)
	APIReader(cluster string) (client.Reader, bool)
	// Ready reports whether a cluster is reachable now.
	Ready(cluster string) bool
	// Source is the workers' node events (updates filtered by
	// nodeUpdate) and their Ready changes.
	Source(h handler.EventHandler, nodeUpdate predicate.Predicate) source.Source
}

// WithClusters makes the controller plan over every registered cluster's
// nodes and bind each in its own cluster.
func WithClusters(c Clusters) Option {
	return func(r *Reconciler) { r.clusters = c }
}

// nodeClients are the client and uncached reader of node n's cluster, and
// whether that cluster can be written now.
func (r *Reconciler) nodeClients(n *corev1.Node) (client.Client, client.Reader, bool) {
	if r.clusters == nil {
		return r.client, r.apiReader, true
	}
	name := r.clusters.ClusterOf(n)
	c, ok := r.clusters.Client(name)
	if !ok || !r.clusters.Ready(name) {
		return nil, nil, false
	}
	if c == r.client || name == r.defaultCluster {
		return r.client, r.apiReader, true
	}
	rd, _ := r.clusters.APIReader(name)
	return c, rd, true
}
