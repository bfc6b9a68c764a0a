package gpr

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// releaseIdle completes provisioned GPRs whose nodes' GPUs have all been
// idle for their idleTimeOutDuration (domain.IdleRelease), status first,
// with reason Idle; bindNodes then takes the binding off and deletes the
// workspace's pods on those nodes gracefully, in the same pass. A GPR that
// is idle but not due yet sets the pass's wake-up to the moment it will
// be. Everything is computed from the nodes' published idle-since and the
// GPR's start, so a restart releases at the same moment. A failure is
// that GPR's problem, as in release.
func (r *Reconciler) releaseIdle(ctx context.Context, p *pass) {
	for _, g := range p.gprs {
		if _, ok := domain.IdleTimeout(g); !ok || !domain.IsProvisioned(g) {
			continue
		}
		policy := p.policies[g.Spec.Workspace]
		due, at := domain.IdleRelease(g, policy, p.nodeByName, p.now)
		if !due {
			p.wakeForIdle(at)
			continue
		}
		// Release is final and deletes the workspace's pods: confirm on
		// live reads of its nodes, each in its own cluster, that the
		// cache did not miss a node turning busy. This costs reads only
		// when a GPR falls due.
		live, err := r.liveNodes(ctx, p, g.Status.Nodes)
		if err != nil {
			p.fail("release", fmt.Errorf("confirm idle GPR %s: %w", g.Name, err))
			p.retryWrite(g.Name)
			continue
		}
		if due, at = domain.IdleRelease(g, policy, live, p.now); !due {
			p.wakeForIdle(at)
			continue
		}
		idle := domain.IdleFor(g, live, p.now)
		ng := g.DeepCopy()
		domain.Release(ng, v1alpha1.ReasonIdle, p.now)
		if err := r.write(ctx, p, ng); err != nil {
			r.writeFailed(p, g, "release", "Release", err)
			continue
		}
		p.set(ng)
		r.event(ng, corev1.EventTypeNormal, "Released", "Release", "Released nodes %s (%s): GPUs idle for %s, idleTimeOutDuration %s",
			joinNames(g.Status.Nodes), v1alpha1.ReasonIdle, idle.Round(time.Second), g.Spec.IdleTimeOutDuration)
		logr.FromContextOrDiscard(ctx).Info("released GPR", "gpr", g.Name, "workspace", g.Spec.Workspace, "nodes", g.Status.Nodes,
			"reason", v1alpha1.ReasonIdle, "idleFor", idle.String())
	}
}

// wakeForIdle makes the pass wake at at (zero: no need) if that is sooner
// than any idle release it wakes for already.
func (p *pass) wakeForIdle(at time.Time) {
	if !at.IsZero() && (p.idleWake.IsZero() || at.Before(p.idleWake)) {
		p.idleWake = at
	}
}

// liveNodes reads the named nodes from their own clusters' apiservers (a
// worker's node from the worker, as the pass saw it); a node that does
// not exist, or that the pass does not see, is left out. A node of a
// cluster not reachable now is not confirmed: an error.
func (r *Reconciler) liveNodes(ctx context.Context, p *pass, names []string) (map[string]*corev1.Node, error) {
	out := make(map[string]*corev1.Node, len(names))
	for _, name := range names {
		seen, ok := p.nodeByName[name]
		if !ok {
			continue
		}
		_, reader, reachable := r.nodeClients(seen)
		if !reachable {
			return nil, fmt.Errorf("node %s: its cluster is not reachable", name)
		}
		var n corev1.Node
		err := reader.Get(ctx, client.ObjectKey{Name: name}, &n)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("get node %s: %w", name, err)
		}
		if c := seen.Labels[v1alpha1.LabelCluster]; c != "" {
			// Labelled with its cluster as the pass saw it (a worker's
			// nodes are), for GPUFacts.
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			n.Labels[v1alpha1.LabelCluster] = c
		}
		out[name] = &n
	}
	return out, nil
}
