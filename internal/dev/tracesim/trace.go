// Package tracesim replays a synthetic GPR trace on a simulated clock
// through gpuspace's planner and domain transitions, to measure how well
// wait-time estimates predict the actual start (make bench
// BENCH=EstimateAccuracy; go run ./hack/estimate-accuracy).
//
// The trace generator is ours, seeded and reproducible; docs/benchmarks.md
// describes it. Nothing waits on the wall clock: the replay jumps from
// event to event.
package tracesim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Config sizes a trace. The zero value of a field takes the default.
type Config struct {
	// Seed makes the trace; the same seed gives the same trace.
	Seed uint64
	// GPRs is how many GPRs arrive (default 10,000).
	GPRs int
	// Nodes is the pool's size, 8 GPUs each (default 400).
	Nodes int
	// Workspaces submit the GPRs, each with its own habit (default one
	// per node, at least 40: each then holds nodes about a third of the
	// time). A workspace runs one GPR at a time (gpuspace's rule), so its
	// GPRs queue behind each other.
	Workspaces int
	// Load is the offered load: node-hours actually held per node-hour
	// of capacity (default 0.95: queues form by day and in bursts, and
	// drain by night).
	Load float64
}

func (c Config) withDefaults() Config {
	if c.GPRs <= 0 {
		c.GPRs = 10000
	}
	if c.Nodes <= 0 {
		c.Nodes = 400
	}
	if c.Workspaces <= 0 {
		c.Workspaces = max(40, c.Nodes)
	}
	if c.Load <= 0 {
		c.Load = 0.95
	}
	return c
}

// Shapes of the pool, with the share of nodes (and of GPRs) of each.
var shapes = []struct {
	name  string
	share float64
}{{"H100", 0.5}, {"A100", 0.3}, {"L4", 0.2}}

// Habit is how a workspace's GPRs end.
type Habit string

const (
	// HabitEarly workspaces release after 10–40 % of what they asked for.
	HabitEarly Habit = "early"
	// HabitFull workspaces hold every GPR to its expiry.
	HabitFull Habit = "full"
	// HabitMixed workspaces do both: half release early (heavy-tailed
	// towards short holds), a fifth are released as idle some way in, the
	// rest run to expiry.
	HabitMixed Habit = "mixed"
)

// Job is one GPR of the trace.
type Job struct {
	ID        string
	Workspace string
	Arrival   time.Time
	Shape     string
	Nodes     int32
	Requested time.Duration
	// Held is how long it holds its nodes once started (at most
	// Requested): the trace's truth, unknown to the estimators.
	Held     time.Duration
	Priority int32
	CanEvict bool
}

// Trace is a generated workload.
type Trace struct {
	Config Config
	Start  time.Time
	Nodes  map[string]int // nodes per shape
	Habits map[string]Habit
	Jobs   []Job
}

// epoch is where every trace's clock starts (a Monday, 00:00 UTC).
var epoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// Generate makes the trace for c.
func Generate(c Config) Trace {
	c = c.withDefaults()
	rng := rand.New(rand.NewPCG(c.Seed, 0x9e3779b97f4a7c15))
	t := Trace{Config: c, Start: epoch, Nodes: map[string]int{}, Habits: map[string]Habit{}}
	left := c.Nodes
	for i, s := range shapes {
		n := int(math.Round(float64(c.Nodes) * s.share))
		if i == len(shapes)-1 {
			n = left
		}
		t.Nodes[s.name], left = n, left-n
	}
	wss := make([]string, c.Workspaces)
	for i := range wss {
		wss[i] = fmt.Sprintf("ws%02d", i)
		switch r := rng.Float64(); {
		case r < 0.3:
			t.Habits[wss[i]] = HabitEarly
		case r < 0.5:
			t.Habits[wss[i]] = HabitFull
		default:
			t.Habits[wss[i]] = HabitMixed
		}
	}
	// The arrival rate that offers c.Load of the pool, from the mean
	// node-hours a GPR holds (estimated on a sample of the same mix).
	var nodeHours float64
	const sample = 4000
	for range sample {
		j := job(rng, wss, t.Habits)
		nodeHours += float64(j.Nodes) * j.Held.Hours()
	}
	perHour := c.Load * float64(c.Nodes) / (nodeHours / sample)
	at := epoch
	for len(t.Jobs) < c.GPRs {
		// Day and night: the rate swings ±60 % around the mean, highest
		// at 14:00; now and then a workspace submits a burst at once.
		hour := float64(at.Sub(epoch)%(24*time.Hour)) / float64(time.Hour)
		rate := perHour * (1 + 0.6*math.Sin(2*math.Pi*(hour-8)/24))
		at = at.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Hour)))
		n := 1
		if rng.Float64() < 0.02 {
			n = 3 + rng.IntN(8)
		}
		ws := wss[rng.IntN(len(wss))]
		for k := 0; k < n && len(t.Jobs) < c.GPRs; k++ {
			j := job(rng, []string{ws}, t.Habits)
			j.ID, j.Arrival = fmt.Sprintf("g%05d", len(t.Jobs)), at.Add(time.Duration(k)*time.Second)
			t.Jobs = append(t.Jobs, j)
		}
	}
	slices.SortStableFunc(t.Jobs, func(a, b Job) int { return a.Arrival.Compare(b.Arrival) })
	return t
}

// job draws one GPR of a workspace among wss.
func job(rng *rand.Rand, wss []string, habits map[string]Habit) Job {
	j := Job{Workspace: wss[rng.IntN(len(wss))], Priority: 101}
	j.Shape = pick(rng, []float64{shapes[0].share, shapes[1].share, shapes[2].share}, []string{shapes[0].name, shapes[1].name, shapes[2].name})
	j.Nodes = pick(rng, []float64{0.55, 0.2, 0.15, 0.1}, []int32{1, 2, 4, 8})
	j.Requested = pick(rng, []float64{0.2, 0.2, 0.25, 0.2, 0.15}, []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 24 * time.Hour})
	j.Held = held(rng, habits[j.Workspace], j.Requested)
	switch r := rng.Float64(); {
	case r < 0.05:
		j.Priority, j.CanEvict = int32(201+rng.IntN(50)), rng.Float64() < 0.3
	case r < 0.15:
		j.Priority = int32(150 + rng.IntN(51))
	}
	return j
}

// held is how long a GPR of habit h that asks for req holds its nodes.
func held(rng *rand.Rand, h Habit, req time.Duration) time.Duration {
	f := 1.0
	switch h {
	case HabitEarly:
		f = 0.1 + 0.3*rng.Float64()
	case HabitMixed:
		switch r := rng.Float64(); {
		case r < 0.5:
			u := rng.Float64()
			f = 0.02 + 0.98*u*u*u // heavy tail towards short holds
		case r < 0.7:
			// Idle release: work, then the idle timeout (30 min).
			f = min(1, (0.2+0.5*rng.Float64())+float64(30*time.Minute)/float64(req))
		}
	}
	return time.Duration(f * float64(req)).Truncate(time.Second)
}

// pick draws one of vs with the given weights.
func pick[T any](rng *rand.Rand, weights []float64, vs []T) T {
	r := rng.Float64()
	for i, w := range weights {
		if r < w {
			return vs[i]
		}
		r -= w
	}
	return vs[len(vs)-1]
}
