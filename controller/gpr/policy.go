package gpr

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/admission"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// admitPolicies applies each workspace's policy to its queued GPRs, after
// admission proper: a queued GPR the policy does not allow now (a
// priority above its range, more GPRs than maxGPRs counting the older
// ones first, a shape, size or duration over a limit) is held — it stays
// Queued with reason Policy, the limit in failureReason and the
// PolicyAllowed condition False, and is not planned. A held GPR the
// policy allows again (the policy loosened or was deleted, the GPR's
// priority lowered, an older GPR of the workspace finished) is admitted
// again and planned in the same pass, keeping its age (and held again as
// unsatisfiable if it was, when no inventory can satisfy it). GPRs held
// for another reason are checked too: the planner would otherwise start
// one the moment inventory came. Provisioned GPRs
// are never touched: a policy applies at admission. Holding is not final,
// so the cache is trusted.
func (r *Reconciler) admitPolicies(ctx context.Context, p *pass) error {
	policies := p.policies
	ranks := domain.PolicyRanks(p.gprs)
	log := logr.FromContextOrDiscard(ctx)
	for _, g := range p.gprs {
		if !domain.IsQueued(g) {
			continue
		}
		errs := admission.ValidateAgainstPolicy(g, policies[g.Spec.Workspace], ranks[g.Name])
		var ng *v1alpha1.GPUProvisionRequest
		switch {
		case len(errs) > 0:
			ng = g.DeepCopy()
			domain.HoldForPolicy(ng, admission.PolicyMessage(errs))
		case domain.PolicyHeld(g):
			ng = g.DeepCopy()
			domain.AdmitWithinPolicy(ng)
		default:
			continue // copies only for the few that change: a pass sees every queued GPR
		}
		if equality.Semantic.DeepEqual(g.Status, ng.Status) {
			continue
		}
		if err := r.write(ctx, p, ng); err != nil {
			if domain.PolicyHeld(ng) {
				p.leaveOut(g.Name) // never start what its policy holds
			}
			p.fail("admit", fmt.Errorf("update GPR %s status: %w", g.Name, err))
			continue
		}
		p.set(ng)
		if domain.PolicyHeld(ng) {
			r.event(ng, corev1.EventTypeWarning, string(v1alpha1.ReasonPolicy), "Admit", "%s", ng.Status.FailureReason)
			log.Info("GPR held by its workspace's policy", "gpr", g.Name, "reason", ng.Status.FailureReason)
		} else {
			r.event(ng, corev1.EventTypeNormal, "WithinPolicy", "Admit", "the workspace's policy allows it again")
		}
	}
	return nil
}
