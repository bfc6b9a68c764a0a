package apiserver

import (
	"context"
	"net/http"

	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/internal/util/duration"
	"github.com/gpuspace/gpuspace/internal/view"
)

// EstimateAccuracy is the data of GET /gpr/estimate-accuracy.
type EstimateAccuracy struct {
	Items []WorkspaceAccuracy `json:"items"`
}

// WorkspaceAccuracy is how close a workspace's GPRs started to the likely
// start they were given at admission.
type WorkspaceAccuracy struct {
	SliceName         string  `json:"sliceName"`
	Started           int     `json:"started" doc:"GPRs of the workspace that started with an estimate"`
	Within1Minute     float64 `json:"within1Minute" doc:"Share of them (0-1) that started within a minute of it"`
	Within10Minutes   float64 `json:"within10Minutes" doc:"Share of them (0-1) that started within ten minutes of it"`
	MeanAbsoluteError string  `json:"meanAbsoluteError" doc:"Mean distance between estimate and start, as a Go duration"`
	Bias              string  `json:"bias" doc:"Mean of start minus estimate, as a Go duration; positive: later than estimated"`
}

func (s *Server) registerAccuracy() {
	register(s, opSpec{
		id: "getEstimateAccuracy", method: http.MethodGet, path: "/api/v1/gpr/estimate-accuracy", tag: "GPU provision requests",
		summary:     "How good the wait-time estimates were",
		description: "For each workspace (sliceName, or every workspace the caller may read): over its GPRs that started, how close the start was to the likely start (estimatedStartTime) given when the GPR was admitted.",
		roles:       rolesReaders, scope: readsWorkspace(inQuery("sliceName")), readOnly: true, idempotent: true, mcpName: "gprs_estimate_accuracy",
		guidance: "Tells how far to trust estimatedStartTime on this pool: within10Minutes near 1 means starts come when estimated; a positive bias means later.",
		errors:   []int{http.StatusNotFound},
	}, s.getEstimateAccuracy)
}

func (s *Server) getEstimateAccuracy(ctx context.Context, in *gprListInput) (*envelope.Output[EstimateAccuracy], error) {
	p := principal(ctx)
	list, err := s.workspaceGPRs(ctx, string(in.SliceName))
	if err != nil {
		return nil, err
	}
	out := EstimateAccuracy{Items: []WorkspaceAccuracy{}}
	for _, a := range view.AccuracyOf(list.Items, p.CanRead) {
		out.Items = append(out.Items, WorkspaceAccuracy{
			SliceName: a.Workspace, Started: a.Started, Within1Minute: a.Within1m, Within10Minutes: a.Within10m,
			MeanAbsoluteError: duration.Format(a.MeanAbsError), Bias: duration.Format(a.Bias),
		})
	}
	return envelope.OK(out), nil
}
