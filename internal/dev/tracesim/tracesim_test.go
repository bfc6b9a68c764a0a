package tracesim

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestTraceIsReproducible: the same seed gives the same trace and the
// same report; another seed another trace. Every GPR holds at most what
// it asked for, and every habit occurs.
func TestTraceIsReproducible(t *testing.T) {
	c := Config{Seed: 7, GPRs: 300, Nodes: 40}
	a, b := Generate(c), Generate(c)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two traces of one seed differ")
	}
	if other := Generate(Config{Seed: 8, GPRs: 300, Nodes: 40}); reflect.DeepEqual(a.Jobs, other.Jobs) {
		t.Fatal("two seeds gave the same trace")
	}
	habits := map[Habit]bool{}
	for _, h := range a.Habits {
		habits[h] = true
	}
	if len(habits) != 3 {
		t.Errorf("habits %v, want all three", habits)
	}
	for _, j := range a.Jobs {
		if j.Held <= 0 || j.Held > j.Requested {
			t.Fatalf("GPR %s holds %s of %s", j.ID, j.Held, j.Requested)
		}
	}
	ra, rb := Replay(a), Replay(b)
	var sa, sb strings.Builder
	ra.Print(&sa)
	rb.Print(&sb)
	if sa.String() != sb.String() {
		t.Fatalf("two replays of one trace differ:\n%s\n%s", sa.String(), sb.String())
	}
	if ra.Started != c.GPRs {
		t.Errorf("%d of %d GPRs started", ra.Started, c.GPRs)
	}
	if ra.LatestHeld < 0.99 {
		t.Errorf("the latest start held for %.1f %% of GPRs no higher priority arrived behind, want ≥ 99 %%", 100*ra.LatestHeld)
	}
}

// BenchmarkEstimateAccuracy replays a trace (TRACE_GPRS, TRACE_NODES,
// TRACE_SEED; default 2,000 GPRs over 100 nodes so that make bench stays
// short — the default trace is TRACE_GPRS=10000 TRACE_NODES=400)
// and reports each estimator's share of GPRs estimated within ±10 min at
// submission, and its ratio to the baseline's.
func BenchmarkEstimateAccuracy(b *testing.B) {
	c := Config{Seed: uint64(envInt("TRACE_SEED", 1)), GPRs: envInt("TRACE_GPRS", 2000), Nodes: envInt("TRACE_NODES", 100)}
	tr := Generate(c)
	var res Result
	for b.Loop() {
		res = Replay(tr)
	}
	base := res.Scores[Baseline][AtSubmission]
	for _, est := range Estimators {
		s := res.Scores[est][AtSubmission]
		name := strings.Fields(string(est))[0]
		if est != Baseline {
			name = strings.ReplaceAll(strings.TrimPrefix(string(est), "likely, "), " ", "-")
		}
		b.ReportMetric(100*s.Within10m, name+"-within10m-%")
		b.ReportMetric(s.MAE.Minutes(), name+"-MAE-min")
		if base.Within10m > 0 {
			b.ReportMetric(s.Within10m/base.Within10m, name+"-within10m-vs-baseline")
		}
	}
	b.ReportMetric(100*res.LatestHeld, "latest-held-%")
	if testing.Verbose() {
		res.Print(os.Stdout)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
