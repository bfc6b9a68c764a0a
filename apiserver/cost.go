package apiserver

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
// shapes), never written; so is a requeued one's (status.earlierCost plus
// the current run). Without prices (Config.GPUPrices) costs are
// empty, not 0.

// gpuPrices are the operator's prices; nil without.
func (s *Server) gpuPrices() domain.Prices { return s.cfg.GPUPrices }

// nodeFacts are the GPU nodes of the cache by name; nil without prices
// (nothing needs them).
func (s *Server) nodeFacts(ctx context.Context) (map[string]domain.GPUNode, error) {
	if len(s.gpuPrices()) == 0 {
		return nil, nil
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]domain.GPUNode, len(nodes))
	for _, n := range nodes {
		out[n.GPUNode.Name] = n.GPUNode
	}
	return out, nil
}

// costOf is a GPR's cost at now as a read shows it: a finished one's as
// written; else its earlier runs' (a GPR requeued after it ran) and the
// current run's so far.
func (s *Server) costOf(g *v1alpha1.GPUProvisionRequest, nodes map[string]domain.GPUNode, now time.Time) string {
	prices := s.gpuPrices()
	if domain.IsFinished(g) || len(prices) == 0 {
		return g.Status.Cost
	}
	return domain.CostString(g, prices, nodes, now)
}

// workspaceCost is what a workspace's GPRs have cost at now: the sum of
// the known costs of its completed and provisioned GPRs; "" when none is
// known (no prices, or no GPR of a priced shape ran).
func (s *Server) workspaceCost(ctx context.Context, ws string, now time.Time) (string, error) {
	if len(s.gpuPrices()) == 0 {
		return "", nil
	}
	var list v1alpha1.GPUProvisionRequestList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy, client.MatchingFields{index.GPRWorkspace: ws}); err != nil {
		return "", s.kubeErr(err, "GPRs")
	}
	nodes, err := s.nodeFacts(ctx)
	if err != nil {
		return "", err
	}
	var total float64
	known := false
	for i := range list.Items {
		c := s.costOf(&list.Items[i], nodes, now)
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
