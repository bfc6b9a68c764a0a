package view

import (
	"context"
	"time"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// Estimate is when a would-be GPR would start.
type Estimate struct {
	// Satisfiable is false when no inventory could ever satisfy the GPR.
	Satisfiable bool
	// Reason says why not, or why there is no estimate (matching nodes
	// exist but are unhealthy or cordoned).
	Reason string
	// Start is the likely start; zero when there is none.
	Start time.Time
	// Latest is the latest start (every GPR ahead holds its nodes for
	// its whole request); zero when there is none.
	Latest time.Time
}

// wouldBeID is the id the would-be GPR has in the plan: no real GPR can
// have it ("~" is not allowed in object names).
const wouldBeID = "~waittime"

// Estimate answers POST /gpr/waittime: the plan the GPR controller would
// make (planner.InputOf over the cache's nodes and GPRs, the same planner)
// with the would-be GPR g (created now, no name) added to the queue.
func (v *View) Estimate(ctx context.Context, g *v1alpha1.GPUProvisionRequest, now time.Time) (Estimate, error) {
	// Every cluster's nodes, the registered workers' too, as the plan has
	// them.
	read, err := v.snapshots().Read(ctx)
	if err != nil {
		return Estimate{}, readErr(err, "plan inputs")
	}
	in, _ := read.Input(now, v.cfg.DefaultCluster)
	r, err := planner.RequestOf(g)
	if err != nil {
		return Estimate{Reason: err.Error()}, nil
	}
	r.ID = wouldBeID
	// The would-be GPR may evict as a created one would: its estimate
	// accounts for the eviction.
	r.CanEvict = domain.CanEvict(g, read.Policies.Of(g.Spec.Workspace))
	in.Queued = append(in.Queued, r)
	plan := planner.Compute(in)
	for _, u := range plan.Unsatisfiable {
		if u.ID == wouldBeID {
			return Estimate{Reason: u.Reason}, nil
		}
	}
	latest, ok := plan.Estimates[wouldBeID]
	if !ok {
		return Estimate{Satisfiable: true, Reason: "the nodes that match are unhealthy or cordoned; no estimate until they recover"}, nil
	}
	return Estimate{Satisfiable: true, Start: read.Likely(in, plan)[wouldBeID], Latest: latest}, nil
}
