package planner

import (
	"slices"
	"time"
)

// Holds predicts hold times for LikelyEstimates (internal/holdtime).
type Holds interface {
	// Hold is the predicted hold of a queued request, at most its
	// Duration.
	Hold(r Request) time.Duration
	// End is the predicted end of a provisioned GPR seen at now: not
	// after its End, not before now.
	End(p Provisioned, now time.Time) time.Time
}

// LikelyEstimates are the likely starts of in's queued GPRs: in planned
// again with every hold time predicted by h. plan is Compute(in), whose
// estimates are the latest starts (every GPR ahead holds its nodes for its
// whole request) and whose starts, evictions and reservations are the only
// ones ever acted on: predictions never change a decision or a promise.
//
// A likely start is never after the latest start, and, for a GPR that
// does not start now, never before the first predicted release: gpuspace
// decides starts on requested durations, so nothing that waits now can
// start before some GPR ends.
func LikelyEstimates(in Input, plan Plan, h Holds) map[string]time.Time {
	lin := in
	lin.Placements = false
	lin.Provisioned = slices.Clone(in.Provisioned)
	var first time.Time
	for i := range lin.Provisioned {
		p := &lin.Provisioned[i]
		if e := h.End(*p, in.Now); e.Before(p.End) {
			p.End = e
		}
		if p.End.After(in.Now) && (first.IsZero() || p.End.Before(first)) {
			first = p.End
		}
	}
	lin.Queued = slices.Clone(in.Queued)
	for i := range lin.Queued {
		r := &lin.Queued[i]
		if d := h.Hold(*r); d > 0 && d < r.Duration {
			r.Duration = d
		}
	}
	likely := Compute(lin).Estimates
	out := make(map[string]time.Time, len(plan.Estimates))
	for id, latest := range plan.Estimates {
		l, ok := likely[id]
		switch {
		case !latest.After(in.Now):
			l = latest // starts now
		case !ok || l.After(latest):
			l = latest
		case !first.IsZero() && l.Before(first):
			l = first
			if latest.Before(l) {
				l = latest
			}
		}
		out[id] = l
	}
	return out
}
