package gpr

import "github.com/gpuspace/gpuspace/internal/planner"

// planReplacement plans req, a GPR's replacement nodes, inside the
// topology domain of kept, a node it keeps, when there is one: a required
// level allows nothing else; otherwise, when that domain has no room, the
// replacements may come from anywhere.
func planReplacement(in planner.Input, req planner.Request, kept string) planner.Plan {
	pinned := req
	if kept != "" && planner.PinToDomainOf(in, &pinned, kept) {
		in.Queued = []planner.Request{pinned}
		plan := planner.Compute(in)
		if len(plan.Starts) == 1 || (req.Topology != nil && req.Topology.Required) {
			return plan
		}
	}
	in.Queued = []planner.Request{req}
	return planner.Compute(in)
}
