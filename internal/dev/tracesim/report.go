package tracesim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Result is a replay's outcome.
type Result struct {
	Trace   Trace
	Passes  int
	Evicted int
	// Started is how many GPRs started; Waited how many of them waited.
	Started, Waited int
	// WaitP50 and WaitP90 are percentiles of the actual waits.
	WaitP50, WaitP90 time.Duration
	// Scores are by estimator, at submission and at half the wait, over
	// every GPR that started; WaitedScores over those that waited (a GPR
	// that starts at once is estimated right by every estimator).
	Scores, WaitedScores map[Estimator][2]Score
	// LatestHeld is the share of GPRs that started by the latest start
	// estimated at submission, among those no higher-priority GPR
	// arrived behind (the bound's promise), and among all.
	LatestHeld, LatestHeldAll float64
}

// Score is how close one estimator came, over every GPR that started.
type Score struct {
	// Within1m, Within10m and Within10pc are the shares of GPRs whose
	// estimated start was within ±1 min, ±10 min and ±10 % of the
	// actual wait of their actual start.
	Within1m, Within10m, Within10pc float64
	// MAE is the mean absolute error; Bias the mean of estimate − actual
	// (positive: estimates late).
	MAE, Bias time.Duration
}

// Moment is when an estimate is taken.
const (
	AtSubmission = 0
	AtHalfWait   = 1
)

func (r *replay) result() Result {
	res := Result{Trace: r.t, Passes: r.passes, Evicted: r.evicted, Scores: map[Estimator][2]Score{}, WaitedScores: map[Estimator][2]Score{}}
	type acc struct {
		n, in1, in10, in10pc int
		abs, sum             float64
	}
	accs, waited := make([][2]acc, len(Estimators)), make([][2]acc, len(Estimators))
	var bound, boundHeld, boundAll int
	var waits []time.Duration
	for _, rec := range r.records {
		if rec.started.IsZero() || len(rec.series) == 0 {
			continue
		}
		res.Started++
		wait := rec.started.Sub(rec.job.Arrival)
		waits = append(waits, wait)
		if wait > 0 {
			res.Waited++
		}
		if !rec.started.After(rec.series[0].start[0].Add(time.Second)) {
			boundAll++
			if !rec.outranked {
				boundHeld++
			}
		}
		if !rec.outranked {
			bound++
		}
		for m, e := range []estimate{rec.series[0], rec.at(rec.job.Arrival.Add(wait / 2))} {
			for i := range Estimators {
				err := e.start[i].Sub(rec.started)
				sets := []*acc{&accs[i][m]}
				if wait > 0 {
					sets = append(sets, &waited[i][m])
				}
				for _, a := range sets {
					a.n++
					ab := math.Abs(float64(err))
					a.abs += ab
					a.sum += float64(err)
					if ab <= float64(time.Minute) {
						a.in1++
					}
					if ab <= float64(10*time.Minute) {
						a.in10++
					}
					if ab <= 0.1*float64(wait)+float64(time.Second) {
						a.in10pc++
					}
				}
			}
		}
	}
	score := func(a acc) Score {
		if a.n == 0 {
			return Score{}
		}
		n := float64(a.n)
		return Score{Within1m: float64(a.in1) / n, Within10m: float64(a.in10) / n, Within10pc: float64(a.in10pc) / n,
			MAE: time.Duration(a.abs / n), Bias: time.Duration(a.sum / n)}
	}
	for i, est := range Estimators {
		res.Scores[est] = [2]Score{score(accs[i][0]), score(accs[i][1])}
		res.WaitedScores[est] = [2]Score{score(waited[i][0]), score(waited[i][1])}
	}
	if len(waits) > 0 {
		slices.Sort(waits)
		res.WaitP50, res.WaitP90 = waits[len(waits)/2], waits[len(waits)*9/10]
	}
	if bound > 0 {
		res.LatestHeld = float64(boundHeld) / float64(bound)
	}
	if res.Started > 0 {
		res.LatestHeldAll = float64(boundAll) / float64(res.Started)
	}
	return res
}

// at is the last estimate made at or before t.
func (rec *record) at(t time.Time) estimate {
	e := rec.series[0]
	for _, s := range rec.series[1:] {
		if s.at.After(t) {
			break
		}
		e = s
	}
	return e
}

// Print writes the report: the trace, then one row per estimator and
// moment, each share also as a ratio to the baseline's.
func (res Result) Print(w io.Writer) {
	c := res.Trace.Config
	end := res.Trace.Jobs[len(res.Trace.Jobs)-1].Arrival
	fmt.Fprintf(w, "trace: seed %d, %d GPRs from %d workspaces over %d nodes (%v), load %.2f, %.1f days; %d passes, %d evictions\n",
		c.Seed, c.GPRs, c.Workspaces, c.Nodes, res.Trace.Nodes, c.Load, end.Sub(res.Trace.Start).Hours()/24, res.Passes, res.Evicted)
	fmt.Fprintf(w, "started %d GPRs, %d of them after a wait; wait p50 %s, p90 %s\n\n", res.Started, res.Waited,
		res.WaitP50.Round(time.Second), res.WaitP90.Round(time.Second))
	fmt.Fprintln(w, "every GPR that started:")
	printScores(w, res.Scores)
	fmt.Fprintf(w, "\nthe %d GPRs that waited:\n", res.Waited)
	printScores(w, res.WaitedScores)
	fmt.Fprintf(w, "\nlatest start (baseline at submission) held for %.2f %% of GPRs no higher-priority GPR arrived behind (%.2f %% of all)\n",
		100*res.LatestHeld, 100*res.LatestHeldAll)
}

// printScores writes one row per estimator and moment, the ±10 min share
// also as a ratio to the baseline's.
func printScores(w io.Writer, scores map[Estimator][2]Score) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "estimator\tmoment\t±1 min\t±10 min\t±10 %\tMAE\tbias\t±10 min vs baseline\t")
	base := scores[Baseline]
	for _, est := range Estimators {
		for m, name := range []string{"submission", "half wait"} {
			s := scores[est][m]
			ratio := math.NaN()
			if b := base[m].Within10m; b > 0 {
				ratio = s.Within10m / b
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f %%\t%.1f %%\t%.1f %%\t%s\t%s\t%.2f×\t\n", est, name,
				100*s.Within1m, 100*s.Within10m, 100*s.Within10pc, s.MAE.Round(time.Second), s.Bias.Round(time.Second), ratio)
		}
	}
	_ = tw.Flush()
}
