// Package holdtime predicts how long a GPR will hold its nodes, from its
// workspace's history of finished GPRs, for the likely estimate only.
//
// Users ask for more than they use and gpuspace releases early (early
// release, idleness), so a plan in which every GPR holds its nodes for its
// whole exitDuration is a latest start, not a likely one. A prediction
// never shortens a promise: expiry, guarantees, the queue head's
// protection and every start decision use the requested durations
// (planner.Compute on the Input as it is); only planner.Likely's copy of
// the input uses predictions, and only its estimates are read.
//
// The history is the GPRs themselves: finished GPRs keep their start and
// completion timestamps in status, so it lives in the cluster, survives
// restarts, and is bounded by how long finished GPRs are kept (and by
// Keep per workspace).
package holdtime

import (
	"slices"
	"time"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// Keep is how many finished GPRs per workspace a History keeps by
// default: the newest.
const Keep = 8

// Sample is one finished GPR: what it asked for and what it held.
type Sample struct {
	Requested time.Duration
	Held      time.Duration
	Finished  time.Time
}

// History is the newest finished GPRs of each workspace, oldest first, at
// most keep each.
type History struct {
	keep int
	by   map[string][]Sample
}

// NewHistory returns an empty History keeping keep samples per workspace
// (keep < 1: Keep).
func NewHistory(keep int) *History {
	if keep < 1 {
		keep = Keep
	}
	return &History{keep: keep, by: map[string][]Sample{}}
}

// Add records a finished GPR of workspace ws; samples must come in order
// of Finished (FromGPRs sorts them).
func (h *History) Add(ws string, s Sample) {
	if s.Requested <= 0 || s.Held < 0 {
		return
	}
	l := append(h.by[ws], s)
	if len(l) > h.keep {
		l = slices.Delete(l, 0, len(l)-h.keep)
	}
	h.by[ws] = l
}

// Of is workspace ws's samples, oldest first.
func (h *History) Of(ws string) []Sample { return h.by[ws] }

// Counts reports whether a finished GPR's hold says something about its
// workspace's habits: it ended because its user released it, because it
// was idle, or because its time was up. An eviction, a lost node or a
// deleted workspace says nothing about them.
func Counts(reason v1alpha1.GPRReason) bool {
	switch reason {
	case v1alpha1.ReasonEarlyReleased, v1alpha1.ReasonIdle, v1alpha1.ReasonExpired:
		return true
	}
	return false
}

// FromGPRs is the history of the finished GPRs among gprs (Complete, with
// a start and a completion, for a reason that Counts), newest keep per
// workspace.
func FromGPRs(gprs []*v1alpha1.GPUProvisionRequest, keep int) *History {
	type done struct {
		ws string
		s  Sample
	}
	var all []done
	for _, g := range gprs {
		st := g.Status
		if domain.Phase(g) != v1alpha1.GPRComplete || st.StartTimestamp == nil || st.CompletionTimestamp == nil || !Counts(st.Reason) {
			continue
		}
		req, err := domain.ExitDuration(g)
		if err != nil {
			continue
		}
		all = append(all, done{ws: g.Spec.Workspace, s: Sample{
			Requested: req, Held: st.CompletionTimestamp.Sub(st.StartTimestamp.Time), Finished: st.CompletionTimestamp.Time,
		}})
	}
	slices.SortStableFunc(all, func(a, b done) int { return a.s.Finished.Compare(b.s.Finished) })
	h := NewHistory(keep)
	for _, d := range all {
		h.Add(d.ws, d.s)
	}
	return h
}

// Predictor predicts the hold time of a GPR of workspace ws that asks for
// requested; the result is never above requested.
type Predictor interface {
	Predict(ws string, requested time.Duration) time.Duration
}

// Default is the predictor gpuspace estimates likely starts with, over
// history h: the one the trace replay (internal/dev/tracesim) scores best.
func Default(h *History) Predictor { return LastTwo{History: h} }

// LastTwo is Tsafrir, Etsion and Feitelson's predictor (IEEE TPDS 2007):
// the mean of the workspace's last two holds, capped at the request; the
// request without history. It is the baseline the benchmark compares with.
type LastTwo struct{ History *History }

// Predict implements Predictor.
func (p LastTwo) Predict(ws string, requested time.Duration) time.Duration {
	l := p.History.Of(ws)
	switch len(l) {
	case 0:
		return requested
	case 1:
		return min(l[0].Held, requested)
	}
	return min((l[len(l)-1].Held+l[len(l)-2].Held)/2, requested)
}

// Ratio predicts the request times the mean share of their requests the
// workspace's recent GPRs held: a workspace that releases after a fifth of
// what it asks for does so whatever it asks for, which LastTwo misses when
// requests vary. The request without history.
type Ratio struct{ History *History }

// Predict implements Predictor.
func (p Ratio) Predict(ws string, requested time.Duration) time.Duration {
	l := p.History.Of(ws)
	if len(l) == 0 {
		return requested
	}
	var sum float64
	for _, s := range l {
		sum += min(float64(s.Held)/float64(s.Requested), 1)
	}
	return min(time.Duration(float64(requested)*sum/float64(len(l))), requested)
}

// Remaining is the predicted end of a GPR that started at started, asks
// for requested and was predicted to hold for predicted, seen at now: the
// predicted end while that is ahead; once it has run past its prediction,
// halfway from now to its requested end (it is no early leaver this time,
// but nothing says it will use it all). Never after the requested end,
// never before now.
func Remaining(started time.Time, requested, predicted time.Duration, now time.Time) time.Time {
	end := started.Add(requested)
	likely := started.Add(min(predicted, requested))
	if likely.After(now) {
		return likely
	}
	if !end.After(now) {
		return now
	}
	return now.Add(end.Sub(now) / 2)
}

// ForPlan is a Predictor as the planner's Holds (planner.LikelyEstimates).
type ForPlan struct{ Predictor Predictor }

// Hold implements planner.Holds.
func (f ForPlan) Hold(r planner.Request) time.Duration {
	return f.Predictor.Predict(r.Workspace, r.Duration)
}

// End implements planner.Holds: a provisioned GPR's request is from its
// start to its end.
func (f ForPlan) End(p planner.Provisioned, now time.Time) time.Time {
	if p.Started.IsZero() || !p.End.After(p.Started) {
		return p.End
	}
	req := p.End.Sub(p.Started)
	return Remaining(p.Started, req, f.Predictor.Predict(p.Workspace, req), now)
}
