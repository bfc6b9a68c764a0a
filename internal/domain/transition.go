package domain

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// Each transition changes g's status in place (callers pass a copy of a
// cache object) and leaves the spec alone. The controller writes the
// result with optimistic concurrency; nothing else writes GPR status.

// InternalState is the internalState EGS reports, derived from the phase
// alone so that the two never disagree.
func InternalState(phase v1alpha1.ProvisioningStatus) v1alpha1.InternalState {
	switch phase {
	case v1alpha1.GPRProvisioned:
		return v1alpha1.StateProvisioned
	case v1alpha1.GPRComplete:
		return v1alpha1.StateReleased
	case v1alpha1.GPRError:
		return v1alpha1.StateFailed
	}
	return v1alpha1.StateQueued
}

func setPhase(g *v1alpha1.GPUProvisionRequest, phase v1alpha1.ProvisioningStatus, reason v1alpha1.GPRReason) {
	g.Status.ProvisioningStatus = phase
	g.Status.Reason = reason
	g.Status.InternalState = InternalState(phase)
	g.Status.ObservedGeneration = g.Generation
}

// clearEstimate drops a GPR's estimates (it started, or has none now);
// the first one stays, for the accuracy metric.
func clearEstimate(g *v1alpha1.GPUProvisionRequest) {
	g.Status.EstimatedStartTime = nil
	g.Status.EstimatedWaitTime = ""
	g.Status.LatestStartTime = nil
	g.Status.LatestWaitTime = ""
}

// Admit marks a GPR the controller sees for the first time (or one a
// policy change made plannable again) as Queued with no reason.
func Admit(g *v1alpha1.GPUProvisionRequest) {
	setPhase(g, v1alpha1.GPRQueued, "")
	g.Status.FailureReason = ""
}

// SetEstimate records a queued GPR's estimated start (ok false: none) at
// now, if it moved beyond EstimateTolerance; it reports whether it did. A
// start moved later counts in delayedCount.
// The wait is written with it, as EGS shows it; readers compute the
// current wait from the start and the clock.
func SetEstimate(g *v1alpha1.GPUProvisionRequest, start time.Time, ok bool, now time.Time) bool {
	if !EstimateMoved(g, start, ok, now) {
		return false
	}
	if !ok {
		clearEstimate(g)
		return true
	}
	start = start.Truncate(time.Second)
	if old := g.Status.EstimatedStartTime; old != nil && start.After(old.Time) {
		g.Status.DelayedCount++ // counted only with a write it needs anyway
	}
	g.Status.EstimatedStartTime = &metav1.Time{Time: start}
	g.Status.EstimatedWaitTime = duration.Format(WaitAt(start, now))
	if g.Status.FirstEstimatedStartTime == nil {
		g.Status.FirstEstimatedStartTime = g.Status.EstimatedStartTime.DeepCopy()
	}
	return true
}

// SetEstimates records both estimated starts of a queued GPR at now: the
// likely one in the EGS fields (SetEstimate) and the latest one in
// latestStartTime, each if it moved beyond EstimateTolerance; it reports
// whether either did. ok false: it has neither.
func SetEstimates(g *v1alpha1.GPUProvisionRequest, likely, latest time.Time, ok bool, now time.Time) bool {
	moved := SetEstimate(g, likely, ok, now)
	if !LatestMoved(g, latest, ok, now) {
		return moved
	}
	if !ok {
		g.Status.LatestStartTime, g.Status.LatestWaitTime = nil, ""
		return true
	}
	latest = latest.Truncate(time.Second)
	g.Status.LatestStartTime = &metav1.Time{Time: latest}
	g.Status.LatestWaitTime = duration.Format(WaitAt(latest, now))
	return true
}

// Start provisions a queued GPR on nodes at now. status.nodes is the
// source of truth for the binding: node labels and taints follow it.
func Start(g *v1alpha1.GPUProvisionRequest, nodes []string, now time.Time) {
	setPhase(g, v1alpha1.GPRProvisioned, "")
	g.Status.Nodes = nodes
	g.Status.NumGpusAllocated = g.Spec.NumberOfGPUs * int32(len(nodes))
	g.Status.StartTimestamp = &metav1.Time{Time: now}
	g.Status.CompletionTimestamp = nil
	g.Status.FailureReason = ""
	clearEstimate(g)
	meta.SetStatusCondition(&g.Status.Conditions, metav1.Condition{
		Type: v1alpha1.GPRNodesHealthy, Status: metav1.ConditionTrue, Reason: ReasonNodesReady,
		Message: msgNodesReady, ObservedGeneration: g.Generation,
	})
}

// Release completes a provisioned GPR at now for reason. Its nodes stay in
// status.nodes as a record; a Complete GPR holds none.
func Release(g *v1alpha1.GPUProvisionRequest, reason v1alpha1.GPRReason, now time.Time) {
	setPhase(g, v1alpha1.GPRComplete, reason)
	g.Status.CompletionTimestamp = &metav1.Time{Time: now}
	clearEstimate(g)
}

// Fail puts a GPR in Error for reason, saying why in failureReason. It is
// final: the GPR is never planned again.
func Fail(g *v1alpha1.GPUProvisionRequest, reason v1alpha1.GPRReason, message string) {
	setPhase(g, v1alpha1.GPRError, reason)
	g.Status.FailureReason = message
	clearEstimate(g)
}

// Hold keeps a queued GPR in the queue with a reason and no estimate: it
// cannot start now and asked (requeueOnFailure) to wait for inventory that
// may come rather than fail.
func Hold(g *v1alpha1.GPUProvisionRequest, reason v1alpha1.GPRReason, message string) {
	setPhase(g, v1alpha1.GPRQueued, reason)
	g.Status.FailureReason = message
	clearEstimate(g)
}

// Requeue puts a provisioned GPR back in the queue for reason (evicted, a
// node lost): it gives up its nodes and keeps its age (creation time), so
// it goes back to where it was in the queue. RetryCount counts requeues,
// as EGS reports it. earlierCost is what its runs so far cost (CostString
// at now; "" unknown), kept in status.earlierCost so that its final cost
// counts them.
func Requeue(g *v1alpha1.GPUProvisionRequest, reason v1alpha1.GPRReason, message, earlierCost string) {
	g.Status.EarlierCost = earlierCost
	setPhase(g, v1alpha1.GPRQueued, reason)
	g.Status.FailureReason = message
	g.Status.Nodes = nil
	g.Status.NumGpusAllocated = 0
	g.Status.StartTimestamp = nil
	g.Status.RetryCount++
	clearEstimate(g)
	meta.RemoveStatusCondition(&g.Status.Conditions, v1alpha1.GPRNodesHealthy)
}

// Evict takes a provisioned GPR's nodes for the higher-priority GPR by, at
// now: back to the queue keeping its age (requeue, as requeueOnFailure
// asks) or Complete. Either way it holds no node any more and records who
// evicted it. earlierCost is as for Requeue.
func Evict(g *v1alpha1.GPUProvisionRequest, by string, requeue bool, earlierCost string, now time.Time) {
	msg := "evicted by higher-priority GPR " + by
	if requeue {
		Requeue(g, v1alpha1.ReasonEvicted, msg, earlierCost)
	} else {
		Release(g, v1alpha1.ReasonEvicted, now)
		g.Status.FailureReason = msg
	}
	g.Status.EvictedBy = by
}
