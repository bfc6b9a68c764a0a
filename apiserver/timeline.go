package apiserver

import (
	"context"
	"net/http"

	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/internal/view"
)

func (s *Server) registerTimeline() {
	register(s, opSpec{
		id: "getPlan", method: http.MethodGet, path: "/api/v1/plan", tag: "GPR",
		summary: "Show the current plan: who holds each node until when, and where each queued GPR goes",
		description: "The GPU nodes with their holder and its end, the provisioned GPRs, and every queued GPR with the estimated start and the nodes the current plan reserves for it — the picture behind estimatedStartTime, as fresh as the cache. " +
			"A workspace-limited key sees other workspaces' GPRs without their ids or names.",
		roles: rolesReaders, scope: scopeEach, readOnly: true, idempotent: true, units: unitsGPR,
	}, s.getPlan)
}

func (s *Server) getPlan(ctx context.Context, _ *noInput) (*envelope.Output[view.Timeline], error) {
	plan, err := s.view.Plan(ctx)
	if err != nil {
		return nil, s.viewErr(err)
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, err
	}
	return envelope.OK(view.TimelineOf(plan, nodes, principal(ctx))), nil
}
