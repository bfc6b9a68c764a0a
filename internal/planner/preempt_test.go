package planner

import (
	"github.com/gpuspace/gpuspace/internal/domain"

	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// randomPreemptInput is a small inventory in one cluster, every node held
// by a provisioned GPR of random priority, and a queue in which some GPRs
// may evict.
func randomPreemptInput(rng *rand.Rand) Input {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	in := Input{Now: now}
	shapes := []string{"H100", "T4"}
	nNodes := 3 + rng.IntN(8)
	for i := range nNodes {
		in.Nodes = append(in.Nodes, Node{GPUNode: domain.GPUNode{Name: fmt.Sprintf("n%02d", i), Cluster: "c", Shape: shapes[rng.IntN(2)],
			MemoryMiB: 81920, GPUs: 8, HealthyGPUs: 8, Ready: rng.IntN(10) > 0, Schedulable: true}})
	}
	// Provisioned GPRs hold runs of nodes; some nodes stay free.
	for i := 0; i < nNodes; {
		k := 1 + rng.IntN(3)
		if rng.IntN(5) == 0 {
			i++
			continue
		}
		p := Provisioned{ID: fmt.Sprintf("p%d", i), Workspace: fmt.Sprintf("pw%d", i), End: now.Add(time.Duration(1+rng.IntN(5)) * time.Hour),
			Priority: int32(1 + rng.IntN(300)), Started: now.Add(-time.Duration(rng.IntN(100)) * time.Minute), Evictable: rng.IntN(4) > 0}
		for j := i; j < min(i+k, nNodes); j++ {
			p.Nodes = append(p.Nodes, in.Nodes[j].Name)
			in.Nodes[j].BoundTo = p.ID
		}
		in.Provisioned = append(in.Provisioned, p)
		i += k
	}
	for i := range 1 + rng.IntN(5) {
		in.Queued = append(in.Queued, Request{ID: fmt.Sprintf("q%d", i), Workspace: fmt.Sprintf("qw%d", i), Cluster: "c",
			GPUShape: shapes[rng.IntN(2)], GPUsPerNode: 1, Nodes: int32(1 + rng.IntN(3)), Priority: int32(1 + rng.IntN(300)),
			Created: now.Add(-time.Duration(i) * time.Minute), Duration: time.Hour, CanEvict: rng.IntN(2) == 0})
	}
	return in
}

// TestPreemptionProperties checks, on random small inputs: victims are
// evictable and of strictly lower priority than their evictor; every
// evictor starts in the same plan on nodes its victims held, and could not
// start without evicting; no node is started twice or held by a GPR that
// is not a victim; and the victims of each evictor are as few as brute
// force finds.
func TestPreemptionProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	evictions, minimal := 0, 0
	for iter := range 3000 {
		in := randomPreemptInput(rng)
		plan := Compute(in)
		noEvict := in
		noEvict.Queued = slices.Clone(in.Queued)
		for i := range noEvict.Queued {
			noEvict.Queued[i].CanEvict = false
		}
		base := Compute(noEvict)
		prov := map[string]*Provisioned{}
		for i := range in.Provisioned {
			prov[in.Provisioned[i].ID] = &in.Provisioned[i]
		}
		req := map[string]*Request{}
		for i := range in.Queued {
			req[in.Queued[i].ID] = &in.Queued[i]
		}
		victimsOf := map[string][]string{}
		victim := map[string]bool{}
		for _, e := range plan.Evictions {
			v, by := prov[e.Victim], req[e.By]
			if v == nil || by == nil {
				t.Fatalf("case %d: eviction %+v of unknown GPRs", iter, e)
			}
			if !v.Evictable || v.Priority >= by.Priority {
				t.Fatalf("case %d: %s (priority %d, evictable %v) evicted by %s (priority %d)", iter, v.ID, v.Priority, v.Evictable, by.ID, by.Priority)
			}
			if victim[v.ID] {
				t.Fatalf("case %d: %s evicted twice", iter, v.ID)
			}
			victim[v.ID] = true
			victimsOf[by.ID] = append(victimsOf[by.ID], v.ID)
			evictions++
		}
		held := map[string]string{}
		for _, p := range in.Provisioned {
			if !victim[p.ID] {
				for _, n := range p.Nodes {
					held[n] = p.ID
				}
			}
		}
		startedOn := map[string]string{}
		for _, s := range plan.Starts {
			for _, n := range s.Nodes {
				if other := startedOn[n]; other != "" || held[n] != "" {
					t.Fatalf("case %d: node %s given to %s, already %s/%s", iter, n, s.ID, other, held[n])
				}
				startedOn[n] = s.ID
			}
		}
		for by, vs := range victimsOf {
			s := slices.IndexFunc(plan.Starts, func(s Start) bool { return s.ID == by })
			if s < 0 {
				t.Fatalf("case %d: evictor %s does not start in the plan", iter, by)
			}
			if slices.ContainsFunc(base.Starts, func(s Start) bool { return s.ID == by }) {
				t.Fatalf("case %d: %s evicted although it starts on free nodes", iter, by)
			}
			victimNodes := map[string]bool{}
			for _, v := range vs {
				for _, n := range prov[v].Nodes {
					victimNodes[n] = true
				}
			}
			for _, n := range plan.Starts[s].Nodes {
				if !victimNodes[n] {
					t.Fatalf("case %d: evictor %s starts on %s, not a victim's node", iter, by, n)
				}
			}
			// At the head of the queue no reservation constrains the
			// choice: it must be as small as brute force finds.
			if head := slices.MinFunc(in.Queued, func(a, b Request) int { return queueOrder(&a, &b) }); head.ID == by {
				if best := bruteForceVictims(in, req[by]); len(vs) != best {
					t.Fatalf("case %d: %s evicted %d GPRs %v, brute force needs %d", iter, by, len(vs), vs, best)
				}
				minimal++
			}
		}
	}
	if evictions == 0 {
		t.Fatal("no case evicted anything: the generator tests nothing")
	}
	if minimal == 0 {
		t.Fatal("no evictor at the head of the queue: minimality tested nowhere")
	}
	t.Logf("%d evictions checked, %d victim sets against brute force", evictions, minimal)
}

// bruteForceVictims is the fewest lower-priority evictable GPRs whose
// healthy, schedulable nodes of the evictor's kind cover its need, by
// trying every subset.
func bruteForceVictims(in Input, r *Request) int {
	byName := map[string]*Node{}
	for i := range in.Nodes {
		byName[in.Nodes[i].Name] = &in.Nodes[i]
	}
	k := requestKey(r)
	var sizes []int
	for _, p := range in.Provisioned {
		if !p.Evictable || p.Priority >= r.Priority {
			continue
		}
		n := 0
		for _, name := range p.Nodes {
			if x := byName[name]; x.Healthy() && x.Cluster == k.cluster &&
				k.fits(x.Shape, strings.ToLower(x.InstanceType), x.MemoryMiB, x.GPUs) {
				n++
			}
		}
		if n > 0 {
			sizes = append(sizes, n)
		}
	}
	need := int(max(r.Nodes, 1))
	best := len(sizes) + 1
	for mask := 1; mask < 1<<len(sizes); mask++ {
		sum := 0
		for i, n := range sizes {
			if mask&(1<<i) != 0 {
				sum += n
			}
		}
		if sum >= need {
			best = min(best, bits.OnesCount(uint(mask)))
		}
	}
	return best
}

// TestPreemptionPicks: of three provisioned priority-100 GPRs, a
// priority-250 evictor needing one node evicts the most recently started;
// an equal-priority GPR evicts nothing; one inside its minimum runtime is
// never a victim.
func TestPreemptionPicks(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	in := Input{Now: now}
	for i, age := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
		name := fmt.Sprintf("n%d", i)
		id := fmt.Sprintf("p%d", i)
		in.Nodes = append(in.Nodes, Node{GPUNode: domain.GPUNode{Name: name, Cluster: "c", Shape: "H100", GPUs: 8, HealthyGPUs: 8, Ready: true, Schedulable: true}, BoundTo: id})
		in.Provisioned = append(in.Provisioned, Provisioned{ID: id, Workspace: "w" + id, Nodes: []string{name},
			End: now.Add(5 * time.Hour), Priority: 100, Started: now.Add(-age), Evictable: true})
	}
	urgent := Request{ID: "urgent", Workspace: "wu", Cluster: "c", GPUShape: "H100", GPUsPerNode: 8, Nodes: 1,
		Priority: 250, Created: now, Duration: time.Hour, CanEvict: true}

	in.Queued = []Request{urgent}
	plan := Compute(in)
	if want := []Eviction{{Victim: "p1", By: "urgent"}}; !slices.Equal(plan.Evictions, want) {
		t.Errorf("evictions %v, want %v (the most recently started)", plan.Evictions, want)
	}
	if len(plan.Starts) != 1 || plan.Starts[0].ID != "urgent" || !slices.Equal(plan.Starts[0].Nodes, []string{"n1"}) {
		t.Errorf("starts %v, want urgent on n1", plan.Starts)
	}
	if !plan.Estimates["urgent"].Equal(now) {
		t.Errorf("urgent estimated at %v, want now", plan.Estimates["urgent"])
	}

	equal := urgent
	equal.Priority = 100
	in.Queued = []Request{equal}
	if plan := Compute(in); len(plan.Evictions) != 0 || len(plan.Starts) != 0 {
		t.Errorf("equal priority: evictions %v starts %v, want none", plan.Evictions, plan.Starts)
	}

	for i := range in.Provisioned {
		in.Provisioned[i].Evictable = in.Provisioned[i].ID != "p1" // p1 inside its minimum runtime
	}
	in.Queued = []Request{urgent}
	if plan := Compute(in); !slices.Equal(plan.Evictions, []Eviction{{Victim: "p2", By: "urgent"}}) {
		t.Errorf("with p1 protected: evictions %v, want p2 (the next most recent)", plan.Evictions)
	}
}

// BenchmarkPlanWithEviction is BenchmarkPlan's largest case with 10 % of
// the queue allowed to evict and every provisioned GPR evictable at a
// random priority; compare its cpu-ns/op with BenchmarkPlan's
// queued=10000/nodes=5000 from the same run.
//
//	go test ./internal/planner -run '^$' -bench 'BenchmarkPlan(WithEviction)?$/queued=10000/nodes=5000' -benchmem
func BenchmarkPlanWithEviction(b *testing.B) {
	b.Run("queued=10000/nodes=5000", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		in := randomInput(rng, 5000, 10000, 2000)
		for i := range in.Provisioned {
			in.Provisioned[i].Priority = int32(1 + rng.IntN(300))
			in.Provisioned[i].Evictable = true
		}
		for i := range in.Queued {
			in.Queued[i].CanEvict = i%10 == 0
		}
		b.ReportAllocs()
		cpu := processCPU()
		var evictions int
		for b.Loop() {
			evictions = len(Compute(in).Evictions)
		}
		if used := processCPU() - cpu; used > 0 {
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
		b.ReportMetric(float64(evictions), "evictions")
	})
}

// TestEvictorEstimateAtEndOfProtection: an evictor whose victims are still
// inside their minimum runtime is estimated to start when enough of them
// leave it — the later of the two it needs — not at their end; one that
// may not evict, or needs more than the protected GPRs hold, waits for
// the ends.
func TestEvictorEstimateAtEndOfProtection(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	in := Input{Now: now}
	for i, protectedFor := range []time.Duration{time.Minute, 3 * time.Minute} {
		name := fmt.Sprintf("n%d", i)
		id := fmt.Sprintf("p%d", i)
		in.Nodes = append(in.Nodes, Node{GPUNode: domain.GPUNode{Name: name, Cluster: "c", Shape: "H100", MemoryMiB: 81920, GPUs: 8, HealthyGPUs: 8,
			Ready: true, Schedulable: true}, BoundTo: id})
		in.Provisioned = append(in.Provisioned, Provisioned{ID: id, Workspace: "w" + id, Nodes: []string{name}, End: now.Add(5 * time.Hour),
			Priority: 10, Started: now.Add(-time.Minute), EvictableAt: now.Add(protectedFor)})
	}
	for _, tc := range []struct {
		name     string
		nodes    int32
		canEvict bool
		want     time.Duration
	}{
		{"one node: the first protection to end", 1, true, time.Minute},
		{"two nodes: the later protection", 2, true, 3 * time.Minute},
		{"may not evict: the end", 1, false, 5 * time.Hour},
		{"more nodes than exist in time: the end", 3, true, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := in
			in.Queued = []Request{{ID: "q", Workspace: "wq", Cluster: "c", GPUShape: "H100", GPUsPerNode: 1, Nodes: tc.nodes,
				Priority: 200, Created: now, Duration: time.Hour, CanEvict: tc.canEvict}}
			plan := Compute(in)
			if len(plan.Starts) != 0 || len(plan.Evictions) != 0 {
				t.Fatalf("started %v, evicted %v while every victim is protected", plan.Starts, plan.Evictions)
			}
			got, ok := plan.Estimates["q"]
			if tc.want < 0 {
				if ok || len(plan.Unsatisfiable) != 1 {
					t.Errorf("estimate %v (ok %v), unsatisfiable %v: want unsatisfiable", got, ok, plan.Unsatisfiable)
				}
				return
			}
			if !ok || !got.Equal(now.Add(tc.want)) {
				t.Errorf("estimated start %v (ok %v), want %v", got, ok, now.Add(tc.want))
			}
		})
	}
}
