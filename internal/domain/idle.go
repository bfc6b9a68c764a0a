package domain

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/duration"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// Idle release: a provisioned GPR with idle enforcement on whose nodes'
// GPUs have all been idle for its idleTimeOutDuration is released with
// reason Idle. Idleness comes from the nodes' published idle signal
// (internal/util/idlesignal: the gpuspace.io/gpus-idle-since annotation the
// device plugin writes on transitions only) and is counted from
// max(GPR start, idle since), so it is computed from timestamps alone: a
// restarted controller neither forgets idleness nor counts it twice, and
// a node that does not publish idleness is never idle.

// DefaultEnforceIdleTimeOut is the enforceIdleTimeOut to store for a GPR
// created with enforce (nil: not given) and idleTimeOutDuration timeout:
// as EGS does, it defaults to true when a timeout is given; an explicit
// value is kept.
func DefaultEnforceIdleTimeOut(enforce *bool, timeout string) bool {
	if enforce != nil {
		return *enforce
	}
	return timeout != ""
}

// IdleTimeout is a GPR's idleTimeOutDuration; false when it has none, or
// one that does not parse or is zero (nothing to enforce).
func IdleTimeout(g *v1alpha1.GPUProvisionRequest) (time.Duration, bool) {
	if g.Spec.IdleTimeOutDuration == "" {
		return 0, false
	}
	d, err := duration.Parse(g.Spec.IdleTimeOutDuration)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// IdleEnforced reports whether idle release applies to a GPR: it has an
// idleTimeOutDuration and either asks for enforcement itself
// (enforceIdleTimeOut, which the API defaults to true when a timeout is
// given: DefaultEnforceIdleTimeOut) or policy, its workspace's
// WorkspacePolicy (nil: none), has enforceIdleTimeOut — also for GPRs
// admitted before the policy said so.
func IdleEnforced(g *v1alpha1.GPUProvisionRequest, policy *v1alpha1.WorkspacePolicy) bool {
	if _, ok := IdleTimeout(g); !ok {
		return false
	}
	return g.Spec.EnforceIdleTimeOut || (policy != nil && policy.Spec.EnforceIdleTimeOut)
}

// IdleSince is the moment from which a provisioned GPR counts as idle:
// max(its start, the time since which all of its nodes' GPUs have been
// idle). ok is false while it is not idle: not provisioned, a node busy,
// missing from nodes (by name) or not publishing idleness.
func IdleSince(g *v1alpha1.GPUProvisionRequest, nodes map[string]*corev1.Node) (since time.Time, ok bool) {
	if !IsProvisioned(g) || g.Status.StartTimestamp == nil || len(g.Status.Nodes) == 0 {
		return time.Time{}, false
	}
	held := make([]*corev1.Node, 0, len(g.Status.Nodes))
	for _, name := range g.Status.Nodes {
		n := nodes[name]
		if n == nil {
			return time.Time{}, false
		}
		held = append(held, n)
	}
	since, published := idlesignal.AllIdleSince(held)
	if !published || since.IsZero() {
		return time.Time{}, false
	}
	if start := g.Status.StartTimestamp.Time; start.After(since) {
		since = start
	}
	return since, true
}

// IdleFor is how long a provisioned GPR has been idle at now (see
// IdleSince); 0 while it is not idle.
func IdleFor(g *v1alpha1.GPUProvisionRequest, nodes map[string]*corev1.Node, now time.Time) time.Duration {
	since, ok := IdleSince(g, nodes)
	if !ok || !now.After(since) {
		return 0
	}
	return now.Sub(since)
}

// IdleRelease reports whether a provisioned GPR is due for idle release at
// now, and at when it is (or will be, if it stays idle): idle since
// IdleSince for its idleTimeOutDuration. at is zero when idle release does
// not apply (enforcement off, not provisioned) or the GPR is not idle now:
// only a node turning idle can make it due, and that is a node change.
func IdleRelease(g *v1alpha1.GPUProvisionRequest, policy *v1alpha1.WorkspacePolicy, nodes map[string]*corev1.Node, now time.Time) (due bool, at time.Time) {
	if !IdleEnforced(g, policy) {
		return false, time.Time{}
	}
	since, ok := IdleSince(g, nodes)
	if !ok {
		return false, time.Time{}
	}
	timeout, _ := IdleTimeout(g)
	at = since.Add(timeout)
	return !now.Before(at), at
}
