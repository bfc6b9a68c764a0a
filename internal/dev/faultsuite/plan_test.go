package faultsuite

import (
	"fmt"
	"testing"
	"time"
)

// TestOutagesWithin: overlapping outages count once, an open one runs to
// the end of the span, and only the part inside the span counts.
func TestOutagesWithin(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	o := newOutages()
	o.begin(outageAPIServer, at(1))
	o.begin(outageLeaderless, at(2))
	o.end(outageAPIServer, at(4))
	o.begin(outageAPIServer, at(4.5)) // a second apiserver outage, still open
	o.end(outageLeaderless, at(5))
	for _, c := range []struct {
		from, to float64
		want     time.Duration
	}{
		{0, 10, 9 * time.Second}, // [1,5) ∪ [4.5,10)
		{2, 3, time.Second},
		{5, 6, time.Second},
		{0, 1, 0},
		{3, 2, 0},
	} {
		if got := o.within(at(c.from), at(c.to)); got != c.want {
			t.Errorf("within(%v, %v) = %s, want %s", c.from, c.to, got, c.want)
		}
	}
}

// TestPlanProcessFaultsSeeded: the same seed plans the same kills; every
// kind comes once per round; none falls in the last spacing of the phase.
func TestPlanProcessFaultsSeeded(t *testing.T) {
	const d, spacing = 60 * time.Second, 10 * time.Second
	a, b := planProcessFaults(5, d, spacing), planProcessFaults(5, d, spacing)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("seed 5 planned %v, then %v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(planProcessFaults(6, d, spacing)) {
		t.Errorf("seeds 5 and 6 planned the same kills")
	}
	if len(a) != 5 {
		t.Fatalf("planned %d kills in %s at %s spacing, want 5", len(a), d, spacing)
	}
	kinds := map[string]int{}
	for _, f := range a[:3] {
		kinds[f.kind]++
	}
	if len(kinds) != 3 {
		t.Errorf("the first round is %v, want each of %v once", a[:3], processFaults)
	}
	for _, f := range a {
		if f.at > d-spacing+spacing/4 {
			t.Errorf("%s at %s: too close to the end of a %s phase", f.kind, f.at, d)
		}
	}
}
