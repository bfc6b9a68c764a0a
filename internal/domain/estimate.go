package domain

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// MinEstimateTolerance is the smallest move of a stored estimate that is
// written: a reader does not notice an estimated start a minute off.
const MinEstimateTolerance = time.Minute

// EstimateTolerance is how far an estimated start may drift from the
// stored one before the stored one is rewritten: max(1 min, 10 % of the
// wait). Reads never show the stored value stale by more than this, and
// REST/MCP reads show the plan's current value anyway.
func EstimateTolerance(wait time.Duration) time.Duration {
	return max(MinEstimateTolerance, wait/10)
}

// EstimateMoved reports whether a new estimated start (ok false: none)
// should replace the stored one of g at now. Gaining or losing an estimate
// always counts; a move counts when it exceeds EstimateTolerance of the new
// wait.
func EstimateMoved(g *v1alpha1.GPUProvisionRequest, start time.Time, ok bool, now time.Time) bool {
	return moved(g.Status.EstimatedStartTime, start, ok, now)
}

// LatestMoved is EstimateMoved for the latest start (latestStartTime).
func LatestMoved(g *v1alpha1.GPUProvisionRequest, latest time.Time, ok bool, now time.Time) bool {
	return moved(g.Status.LatestStartTime, latest, ok, now)
}

// EstimatesMoved reports whether either of a queued GPR's estimated
// starts moved (SetEstimates would write).
func EstimatesMoved(g *v1alpha1.GPUProvisionRequest, likely, latest time.Time, ok bool, now time.Time) bool {
	return EstimateMoved(g, likely, ok, now) || LatestMoved(g, latest, ok, now)
}

// moved reports whether start (ok false: none) should replace old.
func moved(old *metav1.Time, start time.Time, ok bool, now time.Time) bool {
	if old == nil || !ok {
		return (old != nil) != ok // gained or lost one
	}
	diff := start.Sub(old.Time)
	if diff < 0 {
		diff = -diff
	}
	return diff > EstimateTolerance(max(start.Sub(now), 0))
}

// WaitAt is the wait until start, seen at now, in whole seconds; never
// negative.
func WaitAt(start, now time.Time) time.Duration {
	return max(start.Sub(now), 0).Round(time.Second)
}

// Estimates is the estimated start of queued GPRs by name, as a current
// plan gives them.
type Estimates map[string]time.Time

// PlanEstimates are both estimated starts a plan gives queued GPRs: the
// likely one (the EGS fields, estimatedStartTime) and the latest one
// (latestStartTime). A nil map reads the stored ones.
type PlanEstimates struct {
	Likely, Latest Estimates
}

// LatestStart is a queued GPR's latest start, as EstimatedStart reads the
// likely one: the plan's latest when given (fresh), else the stored one.
func LatestStart(g *v1alpha1.GPUProvisionRequest, plan Estimates) (time.Time, bool) {
	if !IsQueued(g) {
		return time.Time{}, false
	}
	if plan != nil {
		t, ok := plan[g.Name]
		return t, ok
	}
	if t := g.Status.LatestStartTime; t != nil {
		return t.Time, true
	}
	return time.Time{}, false
}

// EstimatedStart is a queued GPR's estimated start: the plan's when the
// plan has one (fresh), else the stored one. It reports false for a GPR
// that is not queued or has no estimate.
func EstimatedStart(g *v1alpha1.GPUProvisionRequest, plan Estimates) (time.Time, bool) {
	if !IsQueued(g) {
		return time.Time{}, false
	}
	if plan != nil {
		t, ok := plan[g.Name]
		return t, ok
	}
	if t := g.Status.EstimatedStartTime; t != nil {
		return t.Time, true
	}
	return time.Time{}, false
}

// StartEstimateError is how far a started GPR's actual start was from the
// likely start it was given at admission (status.firstEstimatedStartTime):
// positive when it started later than its user was told. ok is false for a
// GPR that has not started or was never estimated.
func StartEstimateError(g *v1alpha1.GPUProvisionRequest) (time.Duration, bool) {
	first, start := g.Status.FirstEstimatedStartTime, g.Status.StartTimestamp
	if first == nil || start == nil {
		return 0, false
	}
	return start.Sub(first.Time), true
}
