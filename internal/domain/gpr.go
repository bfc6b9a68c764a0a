package domain

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/resourceversion"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// Phase is a GPR's lifecycle phase. A GPR the controller has not looked at
// yet (empty status) is Queued: it waits like any other.
func Phase(g *v1alpha1.GPUProvisionRequest) v1alpha1.ProvisioningStatus {
	if NotAdmitted(g) {
		return v1alpha1.GPRQueued
	}
	return g.Status.ProvisioningStatus
}

// NotAdmitted reports whether the controller has not admitted a GPR yet:
// its status is empty (it counts as Queued, see Phase, but no check has
// passed it and no estimate was written).
func NotAdmitted(g *v1alpha1.GPUProvisionRequest) bool { return g.Status.ProvisioningStatus == "" }

// IsQueued reports whether a GPR waits for nodes.
func IsQueued(g *v1alpha1.GPUProvisionRequest) bool { return Phase(g) == v1alpha1.GPRQueued }

// WaitsOnReason reports whether a queued GPR waits without an estimate because of
// a reason: nothing can satisfy it now (requeueOnFailure keeps it queued)
// or its workspace's policy forbids it now — any reason but Evicted or
// NodeLost: a GPR put back in the queue after it ran is planned like any
// other.
func WaitsOnReason(g *v1alpha1.GPUProvisionRequest) bool {
	switch {
	case !IsQueued(g):
		return false
	case g.Status.Reason == v1alpha1.ReasonEvicted, g.Status.Reason == v1alpha1.ReasonNodeLost:
		return false
	}
	return g.Status.Reason != ""
}

// IsProvisioned reports whether a GPR holds nodes now.
func IsProvisioned(g *v1alpha1.GPUProvisionRequest) bool {
	return Phase(g) == v1alpha1.GPRProvisioned
}

// IsFinished reports whether a GPR is done: Complete or Error. A finished
// GPR holds no node and is never planned again.
func IsFinished(g *v1alpha1.GPUProvisionRequest) bool {
	p := Phase(g)
	return p == v1alpha1.GPRComplete || p == v1alpha1.GPRError
}

// Priority is a GPR's effective priority: 0 (unset, e.g. an object stored
// before defaulting) is DefaultPriority.
func Priority(g *v1alpha1.GPUProvisionRequest) int32 {
	return PriorityOr(g.Spec.Priority)
}

// PriorityOr is the effective priority of a requested one.
func PriorityOr(p int32) int32 {
	if p == 0 {
		return v1alpha1.DefaultPriority
	}
	return p
}

// NodeCount is how many nodes a GPR asks for: 0 (unset) is 1.
func NodeCount(g *v1alpha1.GPUProvisionRequest) int32 { return max(g.Spec.NumberOfGPUNodes, 1) }

// ExitDuration is how long a GPR holds its nodes. An exitDuration that does
// not parse is an error: such a GPR cannot be planned (it fails), and a
// provisioned one is released at once.
func ExitDuration(g *v1alpha1.GPUProvisionRequest) (time.Duration, error) {
	d, err := duration.Parse(g.Spec.ExitDuration)
	if err != nil {
		return 0, fmt.Errorf("exitDuration %q: %w", g.Spec.ExitDuration, err)
	}
	return d, nil
}

// End is when a provisioned GPR expires. It reports false for a GPR that
// has no start time or whose exitDuration does not parse.
func End(g *v1alpha1.GPUProvisionRequest) (time.Time, bool) {
	if g.Status.StartTimestamp == nil {
		return time.Time{}, false
	}
	d, err := ExitDuration(g)
	if err != nil {
		return time.Time{}, false
	}
	return g.Status.StartTimestamp.Add(d), true
}

// Due reports whether a provisioned GPR must be released at now, and why:
// early release asked, exitDuration elapsed, or an end that cannot be
// computed (it would otherwise hold its nodes for ever).
func Due(g *v1alpha1.GPUProvisionRequest, now time.Time) (v1alpha1.GPRReason, bool) {
	if !IsProvisioned(g) {
		return "", false
	}
	if g.Spec.EarlyRelease {
		return v1alpha1.ReasonEarlyReleased, true
	}
	end, ok := End(g)
	if !ok || !now.Before(end) {
		return v1alpha1.ReasonExpired, true
	}
	return "", false
}

// OlderVersion reports whether resource version a is older than b, by
// apimachinery's comparison. Versions it cannot compare are not older: the
// cache is trusted.
func OlderVersion(a, b string) bool {
	c, err := resourceversion.CompareResourceVersion(a, b)
	return err == nil && c < 0
}
