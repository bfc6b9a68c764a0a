package gpr

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/snapshot"
)

// WithPrices sets the operator's price per GPU-hour by GPU shape: a GPR
// that completes gets status.cost (GPU-hours × price) in the write that
// completes it. None (the default): status.cost stays empty.
func WithPrices(p domain.Prices) Option {
	return func(r *Reconciler) { r.prices = p }
}

// gpuPrices are r's prices; nil without.
func (r *Reconciler) gpuPrices() domain.Prices { return r.prices }

// stampCost sets status.cost of a GPR that this write completes, from its
// start and completion timestamps and its nodes' shapes as the pass sees
// them, in every cluster (the GPR's shape for a node gone): once, in the
// same write, never a write of its own. Without prices, or for a shape
// without one, the cost stays empty.
func (r *Reconciler) stampCost(p *pass, g *v1alpha1.GPUProvisionRequest) {
	prices := r.gpuPrices()
	if len(prices) == 0 || domain.Phase(g) != v1alpha1.GPRComplete || g.Status.Cost != "" || g.Status.CompletionTimestamp == nil {
		return
	}
	g.Status.Cost = domain.CostString(g, prices, p.nodeFacts(g.Status.Nodes, r.defaultCluster), g.Status.CompletionTimestamp.Time)
}

// nodeFacts are the GPU facts of the named nodes the pass sees, of every
// cluster.
func (p *pass) nodeFacts(names []string, defaultCluster string) map[string]domain.GPUNode {
	out := make(map[string]domain.GPUNode, len(names))
	for _, name := range names {
		n, ok := p.nodeByName[name]
		if !ok {
			continue
		}
		if f, ok := domain.GPUFacts(n, defaultCluster); ok {
			out[name] = f
		}
	}
	return out
}

// usageMetrics runs on the leader only: while it leads, /metrics reports
// gpuspace_gpu_seconds_total and gpuspace_gpr_cost_total from the cached
// GPRs, computed when scraped (metrics.SetUsageSource), so they advance
// while GPRs run without any write.
func (r *Reconciler) usageMetrics() manager.Runnable {
	return leaderRunnable(func(ctx context.Context) error {
		unset := metrics.SetUsageSource(func() []metrics.UsageSample { return r.usage(ctx) })
		<-ctx.Done()
		unset()
		return nil
	})
}

// usage is what every started GPR has used, per node, by the caches: the
// local cluster's and every worker's nodes.
func (r *Reconciler) usage(ctx context.Context) []metrics.UsageSample {
	var gprs v1alpha1.GPUProvisionRequestList
	if err := r.client.List(ctx, &gprs, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	sr := snapshot.Reader{Client: r.client}
	if r.clusters != nil {
		sr.Workers = r.clusters
	}
	nodes, err := sr.Nodes(ctx)
	if err != nil {
		return nil
	}
	facts := make(map[string]domain.GPUNode, len(nodes))
	for _, n := range nodes {
		if f, ok := domain.GPUFacts(n, r.defaultCluster); ok {
			facts[f.Name] = f
		}
	}
	now, prices := r.clock.Now(), r.gpuPrices()
	var out []metrics.UsageSample
	for i := range gprs.Items {
		g := &gprs.Items[i]
		for _, u := range domain.GPRUsage(g, facts, now) {
			s := metrics.UsageSample{GPR: g.Name, Node: u.Node, Workspace: g.Spec.Workspace, Cluster: u.Cluster, Shape: u.Shape, GPUSeconds: u.GPUSeconds}
			if price, ok := prices[u.Shape]; ok {
				s.CostUSD, s.Priced = u.GPUSeconds/3600*price, true
			}
			out = append(out, s)
		}
	}
	return out
}

// leaderRunnable is a manager.Runnable that runs only on the leader.
type leaderRunnable func(context.Context) error

func (f leaderRunnable) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (leaderRunnable) NeedLeaderElection() bool { return true }
