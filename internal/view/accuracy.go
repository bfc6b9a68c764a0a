package view

import (
	"slices"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// Accuracy is how good the likely start given at admission was, over a
// workspace's GPRs that have started (domain.StartEstimateError).
type Accuracy struct {
	Workspace string
	// Started is how many of its GPRs started with an estimate.
	Started int
	// Within1m and Within10m are the shares of them that started within
	// a minute and within ten minutes of it.
	Within1m, Within10m float64
	// MeanAbsError is the mean distance; Bias the mean of actual minus
	// estimated (positive: later than estimated).
	MeanAbsError, Bias time.Duration
}

// AccuracyOf summarises the estimate errors of gprs by workspace, sorted
// by workspace; only workspaces keep returns true for are counted.
func AccuracyOf(gprs []v1alpha1.GPUProvisionRequest, keep func(ws string) bool) []Accuracy {
	type acc struct {
		n, in1, in10 int
		abs, sum     time.Duration
	}
	by := map[string]*acc{}
	for i := range gprs {
		g := &gprs[i]
		e, ok := domain.StartEstimateError(g)
		if !ok || !keep(g.Spec.Workspace) {
			continue
		}
		a := by[g.Spec.Workspace]
		if a == nil {
			a = &acc{}
			by[g.Spec.Workspace] = a
		}
		a.n++
		a.sum += e
		a.abs += e.Abs()
		if e.Abs() <= time.Minute {
			a.in1++
		}
		if e.Abs() <= 10*time.Minute {
			a.in10++
		}
	}
	out := make([]Accuracy, 0, len(by))
	for ws, a := range by {
		n := time.Duration(a.n)
		out = append(out, Accuracy{Workspace: ws, Started: a.n, Within1m: float64(a.in1) / float64(a.n), Within10m: float64(a.in10) / float64(a.n),
			MeanAbsError: (a.abs / n).Round(time.Second), Bias: (a.sum / n).Round(time.Second)})
	}
	slices.SortFunc(out, func(a, b Accuracy) int { return strings.Compare(a.Workspace, b.Workspace) })
	return out
}
