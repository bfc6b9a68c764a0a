package apiserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// planMaxAge bounds how long a plan is reused when nothing changed: the
// plan is made for a moment, and expiries pass without an event.
const planMaxAge = 5 * time.Second

// planView is the plan of what the cache holds now, as the GPR controller
// would make it: reads of queued GPRs take their estimates from it, so an
// estimate shown is never staler than the cache, whatever is stored. It is
// recomputed on the first read after a GPR, node or workspace event (the
// informer handlers bump version), or an event of a registered worker
// cluster (a node of it added, changed or deleted, its Ready changed: see
// watchWorkers), so a burst of reads costs one plan.
type planView struct {
	version atomic.Uint64
	// workers is done once the worker clusters' events invalidate the view.
	workers sync.Once

	mu       sync.Mutex
	at       uint64
	made     time.Time
	snapshot *planSnapshot
}

// planSnapshot is one computed plan with what it was made from.
type planSnapshot struct {
	now   time.Time
	gprs  []*v1alpha1.GPUProvisionRequest
	names map[string]bool
	in    planner.Input
	plan  planner.Plan
}

func (v *planView) invalidate() { v.version.Add(1) }

// changeNotifier is the part of the worker cluster registry
// (internal/clusters.Registry.OnChange) that tells of every change of a
// worker's nodes or readiness.
type changeNotifier interface {
	OnChange(func())
}

// watchWorkers makes every event of the registered worker clusters
// invalidate the view, as the hub's own node informer does. It is done on
// the first plan made: until then there is no plan to invalidate.
func (s *Server) watchWorkers() {
	s.plans.workers.Do(func() {
		if n, ok := s.opts.clusters.(changeNotifier); ok {
			n.OnChange(s.plans.invalidate)
		}
	})
}

// handler bumps the view's version on every event of an informer.
func (v *planView) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { v.invalidate() },
		UpdateFunc: func(any, any) { v.invalidate() },
		DeleteFunc: func(any) { v.invalidate() },
	}
}

// currentPlan returns the plan of the cache's current state. The snapshot
// shares the cache's objects: read them, never change them.
func (s *Server) currentPlan(ctx context.Context) (*planSnapshot, error) {
	s.watchWorkers()
	v := &s.plans
	ver := v.version.Load()
	now := s.now().Truncate(time.Second)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.snapshot != nil && v.at == ver && now.Sub(v.made) < planMaxAge {
		return v.snapshot, nil
	}
	var gl v1alpha1.GPUProvisionRequestList
	if err := s.cache.List(ctx, &gl, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "GPRs")
	}
	nodes, err := s.allNodes(ctx)
	if err != nil {
		return nil, err
	}
	snap := &planSnapshot{now: now, gprs: make([]*v1alpha1.GPUProvisionRequest, len(gl.Items))}
	snap.names = make(map[string]bool, len(gl.Items))
	for i := range gl.Items {
		snap.gprs[i] = &gl.Items[i]
		snap.names[gl.Items[i].Name] = true
	}
	policies, err := s.policyLookup(ctx)
	if err != nil {
		return nil, err
	}
	snap.in, _ = domain.Input(now, snap.gprs, nodes, s.cfg.DefaultCluster, domain.WithPolicies(policies))
	// Placements for the timeline (GET /plan, the event stream); one
	// slice per queued GPR, small beside the plan itself.
	snap.in.Placements = true
	snap.plan = planner.Compute(snap.in)
	v.snapshot, v.at, v.made = snap, ver, now
	return snap, nil
}

// knows reports whether the plan was made with GPR name in it.
func (p *planSnapshot) knows(name string) bool { return p.names[name] }

// estimates are the plan's estimated starts of queued GPRs.
func (p *planSnapshot) estimates() domain.Estimates { return p.plan.Estimates }
