package view

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/holdtime"
	"github.com/gpuspace/gpuspace/internal/planner"
	"github.com/gpuspace/gpuspace/internal/snapshot"
)

// planMaxAge bounds how long a plan is reused when nothing changed: the
// plan is made for a moment, and expiries pass without an event.
const planMaxAge = 5 * time.Second

// planCache is the plan of what the cache holds now, as the GPR controller
// would make it: reads of queued GPRs take their estimates from it, so an
// estimate shown is never staler than the cache, whatever is stored. It is
// recomputed on the first read after a GPR, node or workspace event (the
// informer handlers bump version), or an event of a registered worker
// cluster (a node of it added, changed or deleted, its Ready changed: see
// watchWorkers), so a burst of reads costs one plan.
type planCache struct {
	version atomic.Uint64
	// workers is done once the worker clusters' events invalidate the view.
	workers sync.Once

	mu       sync.Mutex
	at       uint64
	made     time.Time
	snapshot *Plan
}

// Plan is one computed plan with what it was made from. It shares the
// cache's objects: read them, never change them.
type Plan struct {
	now   time.Time
	gprs  []*v1alpha1.GPUProvisionRequest
	names map[string]bool
	in    planner.Input
	plan  planner.Plan

	likelyOnce sync.Once
	likely     domain.Estimates
	holds      holdtime.Predictor
}

// Invalidate makes the next read plan again.
func (v *View) Invalidate() { v.plans.version.Add(1) }

// Handler invalidates the plan on every event of an informer: add it to
// the informers of everything the plan reads.
func (v *View) Handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { v.Invalidate() },
		UpdateFunc: func(any, any) { v.Invalidate() },
		DeleteFunc: func(any) { v.Invalidate() },
	}
}

// watchWorkers makes every event of the registered worker clusters
// invalidate the view, as the control cluster's own node informer does.
// It is done on the first plan made: until then there is no plan to
// invalidate.
func (v *View) watchWorkers() {
	v.plans.workers.Do(func() {
		if n, ok := v.cfg.Workers.(changeNotifier); ok {
			n.OnChange(v.Invalidate)
		}
	})
}

// Plan returns the plan of the cache's current state.
func (v *View) Plan(ctx context.Context) (*Plan, error) {
	v.watchWorkers()
	c := &v.plans
	ver := c.version.Load()
	now := v.cfg.Now().Truncate(time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snapshot != nil && c.at == ver && now.Sub(c.made) < planMaxAge {
		return c.snapshot, nil
	}
	read, err := v.snapshots().Read(ctx)
	if err != nil {
		return nil, readErr(err, "plan inputs")
	}
	snap := &Plan{now: now, gprs: read.GPRs, names: make(map[string]bool, len(read.GPRs))}
	for _, g := range read.GPRs {
		snap.names[g.Name] = true
	}
	snap.in, _ = read.Input(now, v.cfg.DefaultCluster)
	// Placements for the timeline (GET /plan, the event stream); one
	// slice per queued GPR, small beside the plan itself.
	snap.in.Placements = true
	snap.plan = planner.Compute(snap.in)
	c.snapshot, c.at, c.made = snap, ver, now
	return snap, nil
}

// Knows reports whether the plan was made with GPR name in it.
func (p *Plan) Knows(name string) bool { return p.names[name] }

// Estimates are the plan's estimated starts of queued GPRs: the latest
// (the plan's own) and the likely ones, made on first use
// (snapshot.Likely: one more plan, shared by every reader of this one).
func (p *Plan) Estimates() domain.PlanEstimates {
	p.makeLikely()
	return domain.PlanEstimates{Likely: p.likely, Latest: p.plan.Estimates}
}

// makeLikely makes the likely estimates and the hold predictor once.
func (p *Plan) makeLikely() {
	p.likelyOnce.Do(func() {
		s := snapshot.Snapshot{GPRs: p.gprs}
		p.holds = s.Holds()
		p.likely = planner.LikelyEstimates(p.in, p.plan, holdtime.ForPlan{Predictor: p.holds})
	})
}

// Forecast is what the plan says of GPRs' futures, for PlanGPROf: the
// likely starts, the placements and the predicted holds.
func (p *Plan) Forecast() Forecast {
	p.makeLikely()
	return Forecast{Now: p.now, Likely: p.likely, Latest: p.plan.Estimates, Place: p.Placements(), Holds: p.holds}
}

// GPRs are the GPRs the plan was made from.
func (p *Plan) GPRs() []*v1alpha1.GPUProvisionRequest { return p.gprs }

// Placements are the nodes the plan starts or reserves each queued GPR on.
// A plan made without them (planner.Input.Placements) is made again with.
func (p *Plan) Placements() map[string][]string {
	if p.plan.Placements != nil || len(p.in.Queued) == 0 {
		return p.plan.Placements
	}
	in := p.in
	in.Placements = true
	return planner.Compute(in).Placements
}
