package planner

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// shareHolds predicts every hold as a share of what is left of it.
type shareHolds float64

func (s shareHolds) Hold(r Request) time.Duration {
	return time.Duration(float64(r.Duration) * float64(s))
}

func (s shareHolds) End(p Provisioned, now time.Time) time.Time {
	end := now.Add(time.Duration(float64(p.End.Sub(now)) * float64(s)))
	if end.Before(now) {
		return now
	}
	return end
}

// TestLikelyEstimatesNeverChangeDecisions checks, on random inputs, that
// predictions change no decision (the plan of the same input is the same
// after LikelyEstimates ran on it); that a likely start is never after the
// latest and equals it when it is now; and that predicting the requested
// durations gives the latest starts.
func TestLikelyEstimatesNeverChangeDecisions(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for iter := range 2000 {
		in := randomPreemptInput(rng)
		plan := Compute(in)
		likely := LikelyEstimates(in, plan, shareHolds(0.1+0.9*rng.Float64()))
		if again := Compute(in); !reflect.DeepEqual(plan, again) {
			t.Fatalf("iteration %d: the plan changed after LikelyEstimates:\n%+v\n%+v", iter, plan, again)
		}
		for id, latest := range plan.Estimates {
			l, ok := likely[id]
			switch {
			case !ok:
				t.Fatalf("iteration %d: %s has a latest start but no likely one", iter, id)
			case l.After(latest):
				t.Fatalf("iteration %d: %s likely %s after latest %s", iter, id, l, latest)
			case latest.Equal(in.Now) && !l.Equal(in.Now):
				t.Fatalf("iteration %d: %s starts now but is likely at %s", iter, id, l)
			}
		}
		same := LikelyEstimates(in, plan, shareHolds(1))
		if !reflect.DeepEqual(same, plan.Estimates) {
			t.Fatalf("iteration %d: predicting the requests gave %v, want the latest starts %v", iter, same, plan.Estimates)
		}
	}
}
