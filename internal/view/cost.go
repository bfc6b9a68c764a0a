package view

import (
	"context"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/index"
)

// What GPRs cost, as reads show it: a completed GPR's status.cost is the
// one the controller wrote when it completed; a provisioned one's is
// computed on every read (GPU-hours so far × the price of its nodes'
// shapes, domain.Cost), never written; so is a requeued one's
// (status.earlierCost plus the current run). Without prices costs are
// empty, not 0.

// NodeFacts are the GPU nodes by name; nil without prices (nothing needs
// them).
func (v *View) NodeFacts(ctx context.Context) (map[string]domain.GPUNode, error) {
	if len(v.cfg.Prices) == 0 {
		return nil, nil
	}
	nodes, err := v.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]domain.GPUNode, len(nodes))
	for _, n := range nodes {
		out[n.GPUNode.Name] = n.GPUNode
	}
	return out, nil
}

// CostOf is a GPR's cost at now as a read shows it: a finished one's as
// written; else its earlier runs' (a GPR requeued after it ran) and the
// current run's so far. nodes are NodeFacts'.
func (v *View) CostOf(g *v1alpha1.GPUProvisionRequest, nodes map[string]domain.GPUNode, now time.Time) string {
	if domain.IsFinished(g) || len(v.cfg.Prices) == 0 {
		return g.Status.Cost
	}
	return domain.CostString(g, v.cfg.Prices, nodes, now)
}

// WorkspaceCost is what a workspace's GPRs have cost at now: the sum of
// the known costs of its completed and provisioned GPRs; "" when none is
// known (no prices, or no GPR of a priced shape ran).
func (v *View) WorkspaceCost(ctx context.Context, ws string, now time.Time) (string, error) {
	if len(v.cfg.Prices) == 0 {
		return "", nil
	}
	var list v1alpha1.GPUProvisionRequestList
	if err := v.cfg.Cache.List(ctx, &list, client.UnsafeDisableDeepCopy, client.MatchingFields{index.GPRWorkspace: ws}); err != nil {
		return "", readErr(err, "GPRs")
	}
	nodes, err := v.NodeFacts(ctx)
	if err != nil {
		return "", err
	}
	var total float64
	known := false
	for i := range list.Items {
		c := v.CostOf(&list.Items[i], nodes, now)
		if usd, err := strconv.ParseFloat(c, 64); err == nil {
			total += usd
			known = true
		}
	}
	if !known {
		return "", nil
	}
	return domain.FormatCost(total), nil
}
