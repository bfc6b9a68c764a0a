package apiserver

import (
	"context"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/internal/admission"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// Changing and deleting a GPR: each re-reads the latest version and
// re-checks the state rules on a conflict.

func (s *Server) updateGPR(ctx context.Context, in *gprUpdateInput) (*envelope.Output[envelope.Empty], error) {
	id := string(in.Body.GPRID)
	var g *v1alpha1.GPUProvisionRequest
	changed := false
	// A conflict means the controller wrote meanwhile: re-read, re-check.
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var err error
		if g, err = s.latestGPR(ctx, id); err != nil {
			return err
		}
		if changed, err = s.applyGPRUpdate(ctx, g, &in.Body); err != nil || !changed {
			return err
		}
		return s.client.Update(ctx, g)
	})
	if err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR %q", id))
	}
	if changed {
		s.awaitCache(ctx, g, false)
	}
	return envelope.OK(envelope.Empty{}), nil
}

// applyGPRUpdate applies what the update asks to g, the latest version,
// checking the state and policy rules; changed is false when g already is
// as asked.
func (s *Server) applyGPRUpdate(ctx context.Context, g *v1alpha1.GPUProvisionRequest, b *GPRUpdate) (changed bool, err error) {
	if er := b.EarlyRelease; er != nil && *er && !g.Spec.EarlyRelease {
		switch ph := domain.Phase(g); ph {
		case v1alpha1.GPRProvisioned:
			g.Spec.EarlyRelease = true
			changed = true
		default:
			return false, envelope.New(http.StatusConflict, envelope.KeyConflict,
				fmt.Sprintf("Cannot update early release of GPR in %s state", ph), envelope.WithTitle("Unable to Early Release"))
		}
	}
	if pr := b.Priority; pr != nil && *pr != g.Spec.Priority {
		g.Spec.Priority = *pr
		changed = true
		pol, err := s.policy(ctx, g.Spec.Workspace)
		if err != nil {
			return false, err
		}
		if errs := admission.ValidatePolicyPriority(g, pol); len(errs) > 0 {
			return false, envelope.Validation(requestFieldErrors(errs, nil)...)
		}
	}
	if n := b.GPRName; n != nil && string(*n) != g.Spec.GPRName {
		g.Spec.GPRName = string(*n)
		changed = true
	}
	return changed, nil
}

// latestGPR reads a GPR from the apiserver: the state rules must see its
// latest version.
func (s *Server) latestGPR(ctx context.Context, id string) (*v1alpha1.GPUProvisionRequest, error) {
	var g v1alpha1.GPUProvisionRequest
	if err := s.client.Get(ctx, types.NamespacedName{Name: id}, &g); err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR %q", id))
	}
	return &g, nil
}

func (s *Server) deleteGPR(ctx context.Context, in *gprIDBodyInput) (*envelope.Output[envelope.Empty], error) {
	id := string(in.Body.GPRID)
	var g *v1alpha1.GPUProvisionRequest
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var err error
		if g, err = s.latestGPR(ctx, id); err != nil {
			return err
		}
		// Start writes phase and nodes at once: a Queued GPR holds no node.
		if ph := domain.Phase(g); ph != v1alpha1.GPRQueued && ph != v1alpha1.GPRError {
			return envelope.New(http.StatusConflict, envelope.KeyConflict,
				fmt.Sprintf("Cannot delete GPR in %s state", ph), envelope.WithTitle("Cannot delete"))
		}
		// Delete exactly the version checked: if the controller provisioned
		// it meanwhile, the precondition fails and the state is re-checked.
		return s.client.Delete(ctx, g, client.Preconditions{UID: &g.UID, ResourceVersion: &g.ResourceVersion})
	})
	if err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR %q", id))
	}
	s.awaitCache(ctx, g, true)
	return envelope.OK(envelope.Empty{}), nil
}
