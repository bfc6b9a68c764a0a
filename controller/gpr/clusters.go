package gpr

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
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
	// Registered reports whether a cluster has a Cluster object (the
	// local one: always).
	Registered(cluster string) bool
	// InventoryComplete reports whether Nodes has every registered
	// cluster's nodes, so that a node missing from it is deleted, not out
	// of sight.
	InventoryComplete(ctx context.Context) bool
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

// partitioned is the cluster, not Ready now, of a node that provisioned
// GPR g holds ("" when every node's cluster is reachable, or the
// controller runs without worker clusters). A GPR on a partitioned
// cluster is not released, whatever falls due: the hub could not take the
// binding off nor stop the workspace's pods there, so the GPR keeps its
// nodes and is released by the first pass after the cluster is back, as
// after a restart. Nodes the pass does not see hold a release back when
// the GPR's cluster is a registered worker not Ready now (the hub started
// during the partition: that worker's cache cannot sync); otherwise they
// were deleted, or their cluster unregistered, and do not.
func (r *Reconciler) partitioned(p *pass, g *v1alpha1.GPUProvisionRequest) string {
	if r.clusters == nil || len(g.Status.Nodes) == 0 {
		return ""
	}
	seen := 0
	for _, name := range g.Status.Nodes {
		n, ok := p.nodeByName[name]
		if !ok {
			continue
		}
		seen++
		if c := r.clusters.ClusterOf(n); c != r.defaultCluster && !r.clusters.Ready(c) {
			return c
		}
	}
	if c := g.Spec.ClusterName; seen < len(g.Status.Nodes) && c != "" && c != r.defaultCluster &&
		!r.clusters.Ready(c) && r.clusters.Registered(c) {
		return c
	}
	return ""
}

// waitCluster records that GPR name is due for release but waits for
// cluster to be reachable.
func (p *pass) waitCluster(name, cluster string) {
	if p.releaseWaits == nil {
		p.releaseWaits = map[string]string{}
	}
	p.releaseWaits[name] = cluster
}

// clusterWhy is why, the reason GPR g cannot be planned, as far as g's
// cluster explains it. A cluster that is not registered (any more:
// `gpuspace cluster unregister`) is named as such: the GPR fails, or is
// held with requeueOnFailure, saying so. A registered worker whose nodes
// the pass did not see (unreachable, its credential refused or revoked,
// its cache not synced yet after a start of the hub, or Ready only since
// the pass listed them) explains nothing final: why is dropped and the
// GPR stays queued until the plan can tell (an invalid GPR still fails).
func (r *Reconciler) clusterWhy(p *pass, g *v1alpha1.GPUProvisionRequest, why string) string {
	c := g.Spec.ClusterName
	if why == "" || p.invalid[g.Name] != "" || r.clusters == nil || c == "" || c == r.defaultCluster {
		return why
	}
	worker := r.clusters.Registered(c)
	inSight := slices.ContainsFunc(p.nodes, func(n *corev1.Node) bool { return domain.NodeCluster(n, r.defaultCluster) == c })
	if inSight && (!worker || r.clusters.Ready(c)) {
		return why // its nodes are in sight (a worker's, or a label cluster of the local one)
	}
	if worker {
		return ""
	}
	return fmt.Sprintf("cluster %s is not registered (gpuspace cluster register): %s", c, why)
}

// outOfSight makes a NodesHealthy condition that says nodes no longer
// exist say instead that they are out of the hub's sight, when they are
// of GPR g's cluster, a registered worker whose nodes the pass did not see:
// unreachable (a hub started during a partition never saw them) or
// reachable but its cache not synced yet. Such nodes are not lost
// (recoverNodes does not count them either: the inventory is not
// complete).
func (r *Reconciler) outOfSight(p *pass, g *v1alpha1.GPUProvisionRequest, c metav1.Condition) metav1.Condition {
	cl := g.Spec.ClusterName
	if c.Reason != domain.ReasonNodeGone || r.clusters == nil || cl == "" || cl == r.defaultCluster || !r.clusters.Registered(cl) {
		return c
	}
	ready := r.clusters.Ready(cl)
	if ready && slices.ContainsFunc(p.nodes, func(n *corev1.Node) bool { return r.clusters.ClusterOf(n) == cl }) {
		return c // the worker's nodes are in sight: these are gone
	}
	var unseen []string
	for _, name := range g.Status.Nodes {
		if !slices.ContainsFunc(p.nodes, func(n *corev1.Node) bool { return n.Name == name }) {
			unseen = append(unseen, name)
		}
	}
	if ready {
		c.Reason = "ClusterSyncing"
		c.Message = fmt.Sprintf("cluster %s is reachable, the hub's cache of it not synced yet: nodes not in sight: %s (not lost)", cl, joinNames(unseen))
		return c
	}
	c.Reason = domain.ReasonClusterUnreachable
	c.Message = fmt.Sprintf("cluster %s is not reachable: nodes not in sight: %s; the GPR keeps its nodes and nothing is released until the cluster is reachable again",
		cl, joinNames(unseen))
	return c
}
