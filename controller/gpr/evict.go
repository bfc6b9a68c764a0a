package gpr

import (
	"context"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
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
// their nodes, and their later victims are left be; every other start
// goes ahead. Each evictor's victims are written in plan order, the
// evictors concurrently (inParallel), and the outcomes recorded in plan
// order.
func (r *Reconciler) evictForPlan(ctx context.Context, p *pass) (blocked map[string]bool) {
	evictions := r.evictionWrites(p)
	var evictors []string
	byEvictor := map[string][]*evictionWrite{}
	for _, w := range evictions {
		if byEvictor[w.e.By] == nil {
			evictors = append(evictors, w.e.By)
		}
		byEvictor[w.e.By] = append(byEvictor[w.e.By], w)
	}
	inParallel(len(evictors), func(i int) error {
		for _, w := range byEvictor[evictors[i]] {
			w.tried = true
			if w.err = r.write(ctx, p, w.ng); w.err != nil {
				return nil // its evictor does not start: its other victims stay
			}
		}
		return nil
	})
	for _, w := range evictions {
		switch {
		case !w.tried:
			continue
		case w.err != nil:
			r.writeFailed(p, w.g, "evict", "Evict", w.err)
			if blocked == nil {
				blocked = map[string]bool{}
			}
			blocked[w.e.By] = true
		default:
			r.evicted(ctx, p, w)
		}
	}
	return blocked
}

// evictionWrite is one of the plan's evictions: the victim g as the pass
// read it, ng as it is to be written, and the write's outcome.
type evictionWrite struct {
	e       planner.Eviction
	g, ng   *v1alpha1.GPUProvisionRequest
	requeue bool
	tried   bool
	err     error
}

// evictionWrites are the plan's evictions, in plan order, with each
// victim's evicted status.
func (r *Reconciler) evictionWrites(p *pass) []*evictionWrite {
	out := make([]*evictionWrite, 0, len(p.plan.Evictions))
	for _, e := range p.plan.Evictions {
		g := p.gprs[p.byName[e.Victim]]
		ng := g.DeepCopy()
		requeue := domain.RequeueOnFailure(g, p.policies[g.Spec.Workspace])
		earlier := domain.CostString(g, r.gpuPrices(), p.nodeFacts(g.Status.Nodes, r.defaultCluster), p.now)
		domain.Evict(ng, e.By, requeue, earlier, p.now)
		out = append(out, &evictionWrite{e: e, g: g, ng: ng, requeue: requeue})
	}
	return out
}

// evicted records in the pass an eviction that was written.
func (r *Reconciler) evicted(ctx context.Context, p *pass, w *evictionWrite) {
	g, by := w.g, p.gprs[p.byName[w.e.By]]
	p.set(w.ng)
	next := "back in the queue"
	if !w.requeue {
		next = "complete"
	}
	r.event(w.ng, corev1.EventTypeWarning, "Evicted", "Evict", "Evicted from nodes %s by higher-priority GPR %s (priority %d); %s",
		joinNames(g.Status.Nodes), w.e.By, domain.Priority(by), next)
	r.event(by, corev1.EventTypeNormal, "Evicting", "Evict", "Evicting GPR %s (priority %d) of workspace %s to take its nodes",
		g.Name, domain.Priority(g), g.Spec.Workspace)
	logr.FromContextOrDiscard(ctx).Info("evicted GPR", "gpr", g.Name, "by", w.e.By, "nodes", g.Status.Nodes, "requeued", w.requeue)
}
