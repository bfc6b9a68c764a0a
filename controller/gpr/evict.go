package gpr

import (
	"context"

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
// its nodes in bindNodes, gracefully, as for any release. An eviction that
// cannot be written is the victim's problem (writeFailed): the evictors
// returned must not start in this pass, since the victim still holds
// their nodes; every other start goes ahead.
func (r *Reconciler) evictForPlan(ctx context.Context, p *pass) (blocked map[string]bool) {
	log := logr.FromContextOrDiscard(ctx)
	for _, e := range p.plan.Evictions {
		if blocked[e.By] {
			continue // it will not start in this pass: leave its other victims be
		}
		g := p.gprs[p.byName[e.Victim]]
		by := p.gprs[p.byName[e.By]]
		ng := g.DeepCopy()
		requeue := domain.RequeueOnFailure(g, p.policies[g.Spec.Workspace])
		earlier := domain.CostString(g, r.gpuPrices(), p.nodeFacts(g.Status.Nodes, r.defaultCluster), p.now)
		domain.Evict(ng, e.By, requeue, earlier, p.now)
		if err := r.write(ctx, p, ng); err != nil {
			r.writeFailed(p, g, "evict", "Evict", err)
			if blocked == nil {
				blocked = map[string]bool{}
			}
			blocked[e.By] = true
			continue
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
	return blocked
}
