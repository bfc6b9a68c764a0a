package apiserver

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

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
	// Start is the estimated start; zero when there is none.
	Start time.Time
}

// wouldBeID is the id the would-be GPR has in the plan: no real GPR can
// have it ("~" is not allowed in object names).
const wouldBeID = "~waittime"

// estimate answers POST /gpr/waittime: the plan the GPR controller would
// make (domain.Input over the cache's nodes and GPRs, the same planner)
// with the would-be GPR g (created now, no name) added to the queue.
func (s *Server) estimate(ctx context.Context, g *v1alpha1.GPUProvisionRequest, now time.Time) (Estimate, error) {
	var gl v1alpha1.GPUProvisionRequestList
	if err := s.cache.List(ctx, &gl, client.UnsafeDisableDeepCopy); err != nil {
		return Estimate{}, s.kubeErr(err, "GPRs")
	}
	// Every cluster's nodes, the registered workers' too, as the plan has
	// them.
	nodes, err := s.allNodes(ctx)
	if err != nil {
		return Estimate{}, err
	}
	gprs := make([]*v1alpha1.GPUProvisionRequest, len(gl.Items))
	for i := range gl.Items {
		gprs[i] = &gl.Items[i]
	}
	policies, err := s.policyLookup(ctx)
	if err != nil {
		return Estimate{}, err
	}
	in, _ := domain.Input(now, gprs, nodes, s.cfg.DefaultCluster, domain.WithPolicies(policies))
	r, err := domain.Request(g)
	if err != nil {
		return Estimate{Reason: err.Error()}, nil
	}
	r.ID = wouldBeID
	// The would-be GPR may evict as a created one would: its estimate
	// accounts for the eviction.
	r.CanEvict = domain.CanEvict(g, policies(g.Spec.Workspace))
	in.Queued = append(in.Queued, r)
	plan := planner.Compute(in)
	for _, u := range plan.Unsatisfiable {
		if u.ID == wouldBeID {
			return Estimate{Reason: u.Reason}, nil
		}
	}
	start, ok := plan.Estimates[wouldBeID]
	if !ok {
		return Estimate{Satisfiable: true, Reason: "the nodes that match are unhealthy or cordoned; no estimate until they recover"}, nil
	}
	return Estimate{Satisfiable: true, Start: start}, nil
}

// policyLookup reads the workspaces' policies from the cache: a lookup by
// workspace, nil for a workspace without one.
func (s *Server) policyLookup(ctx context.Context) (func(string) *v1alpha1.WorkspacePolicy, error) {
	var list v1alpha1.WorkspacePolicyList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "workspace policies")
	}
	byWS := make(map[string]*v1alpha1.WorkspacePolicy, len(list.Items))
	for i := range list.Items {
		byWS[list.Items[i].Name] = &list.Items[i]
	}
	return func(ws string) *v1alpha1.WorkspacePolicy { return byWS[ws] }, nil
}
