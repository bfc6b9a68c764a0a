package planner

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// The test topology "t": blocks, then sub-blocks.
const (
	lvBlock = "example.com/block"
	lvSub   = "example.com/subblock"
)

// inDom puts a node in sub-block sub of block b.
func inDom(n Node, b, sub string) Node {
	n.Domains = []domain.TopologyDomain{{Level: lvBlock, ID: "t/" + b}, {Level: lvSub, ID: "t/" + b + "/" + sub}}
	return n
}

func required(level string, slice int) func(*Request) {
	return func(r *Request) { r.Topology = &TopologyRequest{Level: level, Required: true, SliceSize: slice} }
}

func preferred(level string) func(*Request) {
	return func(r *Request) { r.Topology = &TopologyRequest{Level: level} }
}

// block builds free nodes name-0..n-1 in block b (one sub-block each).
func block(b string, n int) []Node {
	var out []Node
	for i := range n {
		out = append(out, inDom(h100(fmt.Sprintf("%s-%d", b, i)), b, "s"))
	}
	return out
}

func held(ns []Node, id string) []Node {
	for i := range ns {
		ns[i].BoundTo = id
	}
	return ns
}

func prov(id string, end time.Duration, ns ...[]Node) Provisioned {
	p := Provisioned{ID: id, Workspace: "busy-" + id, End: at(end)}
	for _, n := range slices.Concat(ns...) {
		p.Nodes = append(p.Nodes, n.Name)
	}
	return p
}

func TestComputeTopology(t *testing.T) {
	a3, b5 := block("a", 3), block("b", 5)
	busyA, busyB := held(block("a", 4)[3:], "pa"), held(block("b", 4)[2:], "pb")
	tests := []struct {
		name  string
		in    Input
		want  Plan
		place map[string][]string
	}{{
		name: "required: the tightest block that fits",
		in:   Input{Nodes: slices.Concat(b5, a3), Queued: []Request{req("g", "w", nodes(3), required(lvBlock, 0))}},
		want: Plan{Starts: []Start{{ID: "g", Nodes: []string{"a-0", "a-1", "a-2"}}}, Estimates: map[string]time.Time{"g": t0}},
	}, {
		name: "required: waits for the block that is free soonest, not for any 4 nodes",
		in: Input{
			Nodes:       slices.Concat(a3, busyA, block("b", 2), busyB),
			Provisioned: []Provisioned{prov("pa", 2*time.Hour, busyA), prov("pb", time.Hour, busyB)},
			Queued:      []Request{req("g", "w", nodes(4), required(lvBlock, 0))},
		},
		want:  Plan{Estimates: map[string]time.Time{"g": at(time.Hour)}},
		place: map[string][]string{"g": {"b-0", "b-1", "b-2", "b-3"}},
	}, {
		name: "required: no block large enough is unsatisfiable",
		in:   Input{Nodes: slices.Concat(a3, block("b", 3)), Queued: []Request{req("g", "w", nodes(4), required(lvBlock, 0))}},
		want: Plan{Estimates: map[string]time.Time{}, Unsatisfiable: []Unsatisfiable{{ID: "g",
			Reason: "no example.com/block domain holds 4 matching nodes (the largest has 3)"}}},
	}, {
		name: "required: a level no node has is unsatisfiable",
		in:   Input{Nodes: a3, Queued: []Request{req("g", "w", nodes(2), required("example.com/rack", 0))}},
		want: Plan{Estimates: map[string]time.Time{}, Unsatisfiable: []Unsatisfiable{{ID: "g",
			Reason: "no matching node has topology level example.com/rack"}}},
	}, {
		name: "preferred: the fewest blocks, the last the tightest",
		in: Input{Nodes: slices.Concat(a3, block("b", 2), block("c", 4)),
			Queued: []Request{req("g", "w", nodes(6), preferred(lvBlock))}},
		want: Plan{Starts: []Start{{ID: "g", Nodes: []string{"b-0", "b-1", "c-0", "c-1", "c-2", "c-3"}}}, Estimates: map[string]time.Time{"g": t0}},
	}, {
		name: "preferred: one block when one fits",
		in:   Input{Nodes: slices.Concat(b5, a3), Queued: []Request{req("g", "w", nodes(4), preferred(lvBlock))}},
		want: Plan{Starts: []Start{{ID: "g", Nodes: []string{"b-0", "b-1", "b-2", "b-3"}}}, Estimates: map[string]time.Time{"g": t0}},
	}, {
		name: "the queue head's block is not fragmented by backfill",
		in: Input{
			Nodes:       slices.Concat(block("a", 2), held(block("a", 4)[2:], "pa"), block("c", 1)),
			Provisioned: []Provisioned{prov("pa", time.Hour, held(block("a", 4)[2:], "pa"))},
			Queued: []Request{
				req("head", "w1", nodes(4), required(lvBlock, 0), prio(200)),
				req("long", "w2", dur(3*time.Hour)),
			},
		},
		want: Plan{Starts: []Start{{ID: "long", Nodes: []string{"c-0"}}}, Estimates: map[string]time.Time{"head": at(time.Hour), "long": t0}},
	}, {
		name: "slices: each slice in one block",
		in:   Input{Nodes: slices.Concat(a3, block("b", 2), block("c", 1)), Queued: []Request{req("g", "w", nodes(4), required(lvBlock, 2))}},
		want: Plan{Starts: []Start{{ID: "g", Nodes: []string{"a-0", "a-1", "b-0", "b-1"}}}, Estimates: map[string]time.Time{"g": t0}},
	}, {
		name: "clique: nodes with NVLink cliques start in one",
		in: Input{Nodes: []Node{clique(h100("x-0"), "X"), clique(h100("x-1"), "X"), clique(h100("y-0"), "Y"),
			clique(h100("y-1"), "Y"), clique(h100("y-2"), "Y")}, Queued: []Request{req("g", "w", nodes(3))}},
		want: Plan{Starts: []Start{{ID: "g", Nodes: []string{"y-0", "y-1", "y-2"}}}, Estimates: map[string]time.Time{"g": t0}},
	}, {
		name: "pinned: replacement inside the domain of the kept nodes",
		in: Input{Nodes: slices.Concat(b5, a3), Queued: []Request{req("g", "w", func(r *Request) {
			r.Topology = &TopologyRequest{Level: lvBlock, Required: true, Domain: "t/b"}
		})}},
		want: Plan{Starts: []Start{{ID: "g", Nodes: []string{"b-0"}}}, Estimates: map[string]time.Time{"g": t0}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = t0
			tt.in.Placements = tt.place != nil
			got := Compute(tt.in)
			if tt.place != nil {
				for id, want := range tt.place {
					if !slices.Equal(got.Placements[id], want) {
						t.Errorf("placement of %s = %v, want %v", id, got.Placements[id], want)
					}
				}
				got.Placements = nil
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func clique(n Node, c string) Node {
	n.Domains = []domain.TopologyDomain{{Level: v1alpha1.LabelGPUClique, ID: "clique/" + c}}
	return n
}

// TestEvictionInOneDomain: an evictor with a required level takes its
// victims inside one domain, even where a single victim elsewhere would
// do (its nodes span two blocks).
func TestEvictionInOneDomain(t *testing.T) {
	nodes := slices.Concat(block("a", 1), block("b", 3))
	owner := map[string]string{"a-0": "va", "b-0": "va", "b-1": "vb1", "b-2": "vb2"}
	for i := range nodes {
		nodes[i].BoundTo = owner[nodes[i].Name]
	}
	victim := func(id string, p int32, ns ...string) Provisioned {
		return Provisioned{ID: id, Workspace: id, Nodes: ns, End: at(time.Hour), Priority: p, Evictable: true}
	}
	in := Input{Now: t0, Nodes: nodes, Provisioned: []Provisioned{
		victim("va", 1, "a-0", "b-0"), victim("vb1", 2, "b-1"), victim("vb2", 3, "b-2"),
	}, Queued: []Request{req("g", "w", nodes2, prio(200), required(lvBlock, 0), func(r *Request) { r.CanEvict = true })}}
	got := Compute(in)
	if want := []Eviction{{Victim: "va", By: "g"}, {Victim: "vb1", By: "g"}}; !slices.Equal(got.Evictions, want) {
		t.Errorf("evictions = %v, want %v", got.Evictions, want)
	}
	if want := []string{"b-0", "b-1"}; !slices.Equal(startOf(got, "g"), want) {
		t.Errorf("start = %v, want %v", startOf(got, "g"), want)
	}
}

var nodes2 = nodes(2)

// randomTopoInput is randomInput over a topology of blocks and sub-blocks,
// some of the multi-node GPRs requiring or preferring a level.
func randomTopoInput(r *rand.Rand, nNodes, nQueued, nWS, blocks, subs int) Input {
	in := randomInput(r, nNodes, nQueued, nWS)
	for i := range in.Nodes {
		b, s := r.IntN(blocks), r.IntN(subs)
		in.Nodes[i] = inDom(in.Nodes[i], fmt.Sprint("b", b), fmt.Sprint("s", s))
	}
	for i := range in.Queued {
		q := &in.Queued[i]
		if r.IntN(3) == 0 {
			q.Nodes = 2 + int32(r.IntN(8))
		}
		level := []string{lvBlock, lvSub}[r.IntN(2)]
		switch r.IntN(4) {
		case 0:
			q.Topology = &TopologyRequest{Level: level, Required: true}
		case 1:
			q.Topology = &TopologyRequest{Level: level}
		case 2:
			if q.Nodes%2 == 0 {
				q.Topology = &TopologyRequest{Level: level, Required: true, SliceSize: 2}
			}
		}
	}
	return in
}

// domainOf is a node's domain at level.
func domainOf(n Node, level string) string {
	for _, d := range n.Domains {
		if d.Level == level {
			return d.ID
		}
	}
	return ""
}

// minDomains is the fewest domains of level whose counts cover need.
func minDomains(count map[string]int, need int) int {
	var cs []int
	for _, c := range count {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	slices.Reverse(cs)
	for i, c := range cs {
		if need -= c; need <= 0 {
			return i + 1
		}
	}
	return -1
}

// TestTopologyInvariants checks plans for random topologies:
//
//   - required: every start and reservation in one domain of the level
//     (with a slice size, whole slices per domain);
//   - preferred: a start uses no more domains than the fewest the nodes
//     free to it allow, and no fewer than the fewest the nodes free now
//     allow (ignoring the GPRs ahead);
//   - the plan does not depend on input order, and a GPR's estimate and
//     start depend only on the GPRs ahead of it: a backfilled GPR never
//     delays the queue head by fragmenting its domain.
func TestTopologyInvariants(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			in := randomTopoInput(r, 80, 40, 10, 2+r.IntN(3), 1+r.IntN(3))
			in.Placements = true
			plan := Compute(in)
			checkStarts(t, in, plan)

			if diff := cmp.Diff(plan, Compute(shuffledInput(in, r))); diff != "" {
				t.Fatalf("plan depends on input order (-first +shuffled):\n%s", diff)
			}

			byName := map[string]Node{}
			for _, n := range in.Nodes {
				byName[n.Name] = n
			}
			queue := slices.Clone(in.Queued)
			sortQueue(queue)
			for i, q := range queue {
				part := in
				part.Queued = queue[:i+1]
				sub := Compute(part)
				if got, want := sub.Estimates[q.ID], plan.Estimates[q.ID]; !got.Equal(want) {
					t.Errorf("GPR %s: estimate %v with only the GPRs ahead of it, %v with the whole queue", q.ID, got, want)
				}
				if got, want := startOf(sub, q.ID), startOf(plan, q.ID); !slices.Equal(got, want) {
					t.Errorf("GPR %s: start %v with only the GPRs ahead of it, %v with the whole queue", q.ID, got, want)
				}
				if q.Topology == nil {
					continue
				}
				count := map[string]int{}
				for _, name := range plan.Placements[q.ID] {
					count[domainOf(byName[name], q.Topology.Level)]++
				}
				switch {
				case q.Topology.Required && q.Topology.SliceSize > 0:
					for d, c := range count {
						if c%q.Topology.SliceSize != 0 {
							t.Errorf("GPR %s: %d nodes in %s, not whole slices of %d", q.ID, c, d, q.Topology.SliceSize)
						}
					}
				case q.Topology.Required:
					if len(count) > 1 {
						t.Errorf("GPR %s requires one %s, placed in %v", q.ID, q.Topology.Level, count)
					}
				case startOf(plan, q.ID) != nil:
					checkPreferred(t, in, part, sub, q, len(count))
				}
			}
		})
	}
}

// checkPreferred bounds the domains a preferred GPR q started on: no fewer
// than the free nodes allow, no more than the free nodes no GPR ahead
// starts on or reserves (sub: the plan of the queue up to q) allow.
func checkPreferred(t *testing.T, in, part Input, sub Plan, q Request, used int) {
	t.Helper()
	taken := map[string]bool{}
	for id, ns := range sub.Placements {
		if id != q.ID {
			for _, n := range ns {
				taken[n] = true
			}
		}
	}
	all, untaken := map[string]int{}, map[string]int{}
	for _, n := range in.Nodes {
		d := domainOf(n, q.Topology.Level)
		if d == "" || !n.Healthy() || n.BoundTo != "" || !matches(n, q) {
			continue
		}
		all[d]++
		if !taken[n.Name] {
			untaken[d]++
		}
	}
	need := int(max(q.Nodes, 1))
	lo, hi := minDomains(all, need), minDomains(untaken, need)
	if used < lo || (hi > 0 && used > hi) {
		t.Errorf("GPR %s prefers %s: started in %d domains, the fewest possible is between %d and %d", q.ID, q.Topology.Level, used, lo, hi)
	}
}

func matches(n Node, r Request) bool {
	k := requestKey(&r)
	return n.Cluster == r.Cluster && k.fits(n.Shape, strings.ToLower(n.InstanceType), n.MemoryMiB, n.GPUs)
}

// BenchmarkPlanTopology is BenchmarkPlan's largest case (10k queued × 5,000
// nodes) without topology and over a 3-level topology (10 blocks of 10
// sub-blocks, then hosts) where a third of the GPRs ask for 2-9 nodes and
// most of those name a level. Besides cpu-ns/op it reports one-domain-%:
// the share of multi-node GPRs started now whose nodes are in one
// sub-block, against the same queue placed topology-blind. Run with
//
//	go test ./internal/planner -run '^$' -bench BenchmarkPlanTopology -benchmem
func BenchmarkPlanTopology(b *testing.B) {
	topo := randomTopoInput(rand.New(rand.NewPCG(1, 2)), 5000, 10000, 2000, 10, 10)
	blind := topo
	blind.Queued = slices.Clone(topo.Queued)
	for i := range blind.Queued {
		blind.Queued[i].Topology = nil
	}
	plain := blind
	plain.Nodes = slices.Clone(topo.Nodes)
	for i := range plain.Nodes {
		plain.Nodes[i].Domains = nil
	}
	for _, c := range []struct {
		name string
		in   Input
	}{{"topology=none", plain}, {"topology=blind", blind}, {"topology=3-level", topo}} {
		b.Run(c.name, func(b *testing.B) {
			share := oneDomainShare(topo, Compute(c.in))
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				Compute(c.in)
			}
			if used := processCPU() - cpu; used > 0 {
				b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
			b.ReportMetric(share, "one-domain-%")
		})
	}
}

// oneDomainShare is the percentage of multi-node starts of plan that are
// in one sub-block of in's nodes.
func oneDomainShare(in Input, plan Plan) float64 {
	byName := map[string]Node{}
	for _, n := range in.Nodes {
		byName[n.Name] = n
	}
	multi, one := 0, 0
	for _, s := range plan.Starts {
		if len(s.Nodes) < 2 {
			continue
		}
		multi++
		ds := map[string]bool{}
		for _, n := range s.Nodes {
			ds[domainOf(byName[n], lvSub)] = true
		}
		if len(ds) == 1 {
			one++
		}
	}
	if multi == 0 {
		return 0
	}
	return 100 * float64(one) / float64(multi)
}

// shuffledInput is in with its nodes and queue in a random order.
func shuffledInput(in Input, r *rand.Rand) Input {
	in.Nodes = slices.Clone(in.Nodes)
	in.Queued = slices.Clone(in.Queued)
	r.Shuffle(len(in.Nodes), func(i, j int) { in.Nodes[i], in.Nodes[j] = in.Nodes[j], in.Nodes[i] })
	r.Shuffle(len(in.Queued), func(i, j int) { in.Queued[i], in.Queued[j] = in.Queued[j], in.Queued[i] })
	return in
}
