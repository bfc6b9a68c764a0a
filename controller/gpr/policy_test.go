package gpr_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// held waits until GPR id is queued and held by its workspace's policy
// (reason Policy, PolicyAllowed False) with a failureReason saying want.
func (h *harness) held(id, want string) {
	h.t.Helper()
	h.eventually(func() error {
		g := h.getGPR(id)
		c := meta.FindStatusCondition(g.Status.Conditions, v1alpha1.GPRPolicyAllowed)
		if g.Status.ProvisioningStatus != v1alpha1.GPRQueued || g.Status.Reason != v1alpha1.ReasonPolicy ||
			!strings.Contains(g.Status.FailureReason, want) || c == nil || c.Status != metav1.ConditionFalse || len(g.Status.Nodes) != 0 {
			return fmt.Errorf("GPR %s: %s %s %q nodes %v, condition %v; want held saying %q", id,
				g.Status.ProvisioningStatus, g.Status.Reason, g.Status.FailureReason, g.Status.Nodes, c, want)
		}
		return nil
	})
}

// TestPolicyHoldsQueuedGPRs: tightening a workspace's policy never touches
// its provisioned GPR; queued GPRs it no longer allows are held with the
// limit in failureReason and not started, even on a free node, while
// those it allows go on; a GPR created with kubectl over a limit is held
// the same way; loosening the policy admits them again.
func TestPolicyHoldsQueuedGPRs(t *testing.T) {
	h := newHarness(t)
	h.start()
	node := h.t4Node("n1")
	ws := h.workspace("w")
	running := h.gpr("running", ws, exit("1d0h0m"), priority(250))
	h.status(running, v1alpha1.GPRProvisioned)
	high := h.gpr("high", ws, priority(150))
	low := h.gpr("low", ws, priority(50))
	h.status(high, v1alpha1.GPRQueued)

	pol := &v1alpha1.WorkspacePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ws, Labels: h.labels()},
		Spec:       v1alpha1.WorkspacePolicySpec{MaxGPRs: ptr.To[int32](2), GPUConstraints: v1alpha1.GPUConstraints{GPUShapes: []string{"T4"}, MaxGPUPerGPR: 2}},
	}
	if err := env.Client.Create(h.ctx, pol); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(h.ctx, pol) })
	// Defaults: priority range low.
	h.held(high, `priority 150 is above the workspace's "low" range (1-100)`)
	h.held(low, "may have at most 2 GPRs queued or provisioned at once, and has 2")
	// Shape: the policy allows T4 only, and these name none (any).
	h.held(low, "gpuShape is required")
	if g := h.getGPR(running); g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned || g.Status.Reason != "" {
		t.Fatalf("provisioned GPR touched by the policy: %+v", g.Status)
	}

	// The node frees: "low" now fits the count, but still names no shape.
	h.setSpec(running, func(s *v1alpha1.GPUProvisionRequestSpec) { s.EarlyRelease = true })
	h.status(running, v1alpha1.GPRComplete)
	h.held(low, "gpuShape is required")
	h.held(high, `priority 150 is above`)
	h.setSpec(low, func(s *v1alpha1.GPUProvisionRequestSpec) { s.GPUShape = "Tesla-T4" })
	h.status(low, v1alpha1.GPRProvisioned)
	h.nodeBound(node, low)
	h.held(high, `priority 150 is above`)

	// kubectl: a GPR over a limit is held, never started.
	big := h.gpr("big", ws, priority(10), func(s *v1alpha1.GPUProvisionRequestSpec) { s.GPUShape, s.NumberOfGPUs = "T4", 4 })
	h.held(big, "4 GPUs (numberOfGPUs 4 × numberOfGPUNodes 1) are more than the workspace's limit of 2 GPUs per GPR")

	// Loosened: admitted again, queued behind the provisioned one.
	h.eventually(func() error {
		var p v1alpha1.WorkspacePolicy
		if err := env.Client.Get(h.ctx, client.ObjectKey{Name: ws}, &p); err != nil {
			return err
		}
		p.Spec.PriorityRange, p.Spec.MaxGPRs, p.Spec.GPUConstraints = v1alpha1.BandMedium, ptr.To[int32](3), v1alpha1.GPUConstraints{}
		return env.Client.Update(h.ctx, &p)
	})
	for _, id := range []string{high, big} {
		h.eventually(func() error {
			g := h.getGPR(id)
			c := meta.FindStatusCondition(g.Status.Conditions, v1alpha1.GPRPolicyAllowed)
			if g.Status.ProvisioningStatus != v1alpha1.GPRQueued || g.Status.Reason != "" || c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("GPR %s: %s %s %q condition %v, want admitted again", id, g.Status.ProvisioningStatus, g.Status.Reason, g.Status.FailureReason, c)
			}
			return nil
		})
	}
}

// setSpec changes a GPR's spec, retrying conflicts with the controller.
func (h *harness) setSpec(id string, change func(*v1alpha1.GPUProvisionRequestSpec)) {
	h.t.Helper()
	h.eventually(func() error {
		g := h.getGPR(id)
		change(&g.Spec)
		return env.Client.Update(h.ctx, g)
	})
}
