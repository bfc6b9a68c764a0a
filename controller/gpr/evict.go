package gpr

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/internal/domain"
)

// evictForPlan writes the plan's evictions, before the starts that take the
// victims' nodes: each victim goes back to the queue (requeueOnFailure, its
// own or its policy's) or completes, with reason Evicted and evictedBy. A
// pass that fails between a victim's write and its evictor's start leaves
// the victim queued and its nodes free in status: nothing is lost and no
// node is held twice; the next pass plans again. The victim's pods leave
// its nodes in bindNodes, gracefully, as for any release.
func (r *Reconciler) evictForPlan(ctx context.Context, p *pass) error {
	log := logr.FromContextOrDiscard(ctx)
	for _, e := range p.plan.Evictions {
		g := p.gprs[p.byName[e.Victim]]
		by := p.gprs[p.byName[e.By]]
		ng := g.DeepCopy()
		requeue := domain.RequeueOnFailure(g, p.policies[g.Spec.Workspace])
		earlier := domain.CostString(g, r.gpuPrices(), r.nodeFacts(ctx, g.Status.Nodes), p.now)
		domain.Evict(ng, e.By, requeue, earlier, p.now)
		if err := r.write(ctx, ng); err != nil {
			return fmt.Errorf("evict GPR %s for %s: %w", g.Name, e.By, err)
		}
		p.set(ng)
		next := "back in the queue"
		if !requeue {
			next = "complete"
		}
		r.event(ng, corev1.EventTypeWarning, "Evicted", "Evict", "Evicted from nodes %s by higher-priority GPR %s (priority %d); %s",
			joinNames(g.Status.Nodes), e.By, domain.Priority(by), next)
		r.event(by, corev1.EventTypeNormal, "Evicting", "Evict", "Evicting GPR %s (priority %d) of workspace %s to take its nodes",
			g.Name, domain.Priority(g), g.Spec.Workspace)
		log.Info("evicted GPR", "gpr", g.Name, "by", e.By, "nodes", g.Status.Nodes, "requeued", requeue)
	}
	return nil
}
