package gpr

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// WithNodeLostGrace sets how long a node a provisioned GPR holds may stay
// NotReady before it counts as lost. Default domain.DefaultNodeLostGrace.
func WithNodeLostGrace(d time.Duration) Option {
	return func(r *Reconciler) {
		if d > 0 {
			r.nodeLostGrace = d
		}
	}
}

// recoverNodes handles provisioned GPRs that lost nodes (domain.LostNodes:
// deleted, or NotReady beyond the grace; never a node of an unreachable
// cluster) or run short of nodes they lost before. Before any planning, so
// the planner sees what they hold now:
//
//   - a free matching node of the same cluster replaces each lost one (the
//     planner's match rule, on nodes no GPR holds): the GPR keeps running,
//     NodesHealthy says what was replaced;
//   - else, with requeueOnFailure (its own or its policy's), it goes back
//     to the queue keeping its age, reason NodeLost, and starts again on a
//     full set of nodes;
//   - else it keeps running on the nodes it has left, NodesHealthy False
//     with reason NodeLost, and a later pass replaces the lost nodes once
//     matching ones are free; with no node left it is released.
//
// Replacing a lost node takes precedence over queued GPRs: it keeps the
// capacity the GPR had, which the queue's estimates already counted.
func (r *Reconciler) recoverNodes(ctx context.Context, p *pass) error {
	goneKnown := r.clusters == nil || r.clusters.InventoryComplete(ctx)
	for _, g := range p.gprs {
		lost, next := domain.LostNodes(g, p.nodeByName, r.nodeLostGrace, p.now, goneKnown)
		if !next.IsZero() && (p.lostWake.IsZero() || next.Before(p.lostWake)) {
			p.lostWake = next
		}
		if len(lost) == 0 && domain.Shortfall(g) == 0 {
			continue
		}
		r.recover(ctx, p, g, lost)
	}
	return nil
}

// recover replaces, requeues or shrinks one GPR that lost nodes (see
// recoverNodes); a GPR short of nodes with nothing free to replace them is
// left as it is. A decision that cannot be written is that GPR's problem
// (writeFailed): it keeps what it holds in this pass's view, so the
// replacements it was given stay free, and the next pass decides again.
func (r *Reconciler) recover(ctx context.Context, p *pass, g *v1alpha1.GPUProvisionRequest, lost []domain.LostNode) {
	need := len(lost) + domain.Shortfall(g)
	ng := g.DeepCopy()
	repl := r.replacements(p, g, lost, need)
	requeue := domain.RequeueOnFailure(g, p.policies[g.Spec.Workspace])
	var what string
	switch {
	case repl != nil:
		domain.ReplaceNodes(ng, lost, repl)
		what = fmt.Sprintf("replaced lost nodes with %s", joinNames(repl))
	case len(lost) == 0:
		return // short, and still nothing free
	case requeue:
		earlier := domain.CostString(g, r.gpuPrices(), p.nodeFacts(g.Status.Nodes, r.defaultCluster), p.now)
		domain.Requeue(ng, v1alpha1.ReasonNodeLost, "lost "+domain.DescribeLost(lost)+"; back in the queue", earlier)
		what = "back in the queue"
	default:
		domain.DropNodes(ng, lost, p.now)
		what = fmt.Sprintf("running on %d of %d nodes", len(ng.Status.Nodes), domain.NodeCount(g))
		if !domain.IsProvisioned(ng) {
			what = "released: no node left"
		}
	}
	if err := r.write(ctx, p, ng); err != nil {
		r.writeFailed(p, g, "recover", "Recover", err)
		return
	}
	p.set(ng)
	typ := corev1.EventTypeWarning
	if repl != nil {
		typ = corev1.EventTypeNormal
	}
	r.event(ng, typ, string(v1alpha1.ReasonNodeLost), "Recover", "Lost nodes %s; %s", domain.DescribeLost(lost), what)
	logr.FromContextOrDiscard(ctx).Info("GPR lost nodes", "gpr", g.Name, "lost", domain.DescribeLost(lost), "outcome", what)
}

// replacements are need free nodes that match g, in the cluster of the
// nodes it keeps, chosen by the planner as if g asked for need nodes now;
// nil when there are not enough.
func (r *Reconciler) replacements(p *pass, g *v1alpha1.GPUProvisionRequest, lost []domain.LostNode, need int) []string {
	req, err := planner.RequestOf(g)
	if err != nil {
		return nil
	}
	req.Nodes, req.CanEvict = int32(need), false
	in, _ := p.snapshot().Input(p.now, r.defaultCluster)
	// Its own nodes stay bound to it; without it among the provisioned
	// GPRs the planner treats them as held for ever and lets its
	// workspace start a GPR.
	in.Provisioned = slices.DeleteFunc(in.Provisioned, func(pr planner.Provisioned) bool { return pr.ID == g.Name })
	gone := map[string]bool{}
	for _, l := range lost {
		gone[l.Name] = true
	}
	kept := ""
	for _, n := range in.Nodes {
		if slices.Contains(g.Status.Nodes, n.Name) && !gone[n.Name] {
			req.Cluster = n.Cluster // stay in the cluster of the nodes it keeps
			kept = n.Name
			break
		}
	}
	plan := planReplacement(in, req, kept) // in its topology domain (topology.go)
	if len(plan.Starts) != 1 || len(plan.Starts[0].Nodes) != need {
		return nil
	}
	return plan.Starts[0].Nodes
}
