package planner

import (
	"github.com/gpuspace/gpuspace/internal/domain"

	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// h100 returns a free, healthy 8×H100-80GB node in worker-1.
func h100(name string) Node {
	return Node{GPUNode: domain.GPUNode{Name: name, Cluster: "worker-1", InstanceType: "p5.48xlarge",
		Product: "NVIDIA-H100-80GB-HBM3", Shape: "H100",
		MemoryMiB: 81559, GPUs: 8, HealthyGPUs: 8, Ready: true, Schedulable: true}}
}

// t4 returns a free, healthy 4×T4 node in worker-1, with a shape label.
func t4(name string) Node {
	return Node{GPUNode: domain.GPUNode{Name: name, Cluster: "worker-1", InstanceType: "g4dn.12xlarge",
		Product: "Tesla-T4", Shape: "T4",
		MemoryMiB: 15360, GPUs: 4, HealthyGPUs: 4, Ready: true, Schedulable: true}}
}

func with(n Node, f func(*Node)) Node { f(&n); return n }

// req returns a queued GPR for one node with one GPU of any kind in
// worker-1, priority 101, created at t0 plus age order, for an hour.
func req(id, ws string, f ...func(*Request)) Request {
	r := Request{ID: id, Workspace: ws, Cluster: "worker-1", GPUsPerNode: 1, Nodes: 1, Priority: 101,
		Created: t0.Add(-time.Hour), Duration: time.Hour}
	for _, f := range f {
		f(&r)
	}
	return r
}

func prio(p int32) func(*Request)            { return func(r *Request) { r.Priority = p } }
func dur(d time.Duration) func(*Request)     { return func(r *Request) { r.Duration = d } }
func nodes(n int32) func(*Request)           { return func(r *Request) { r.Nodes = n } }
func gpus(n int32) func(*Request)            { return func(r *Request) { r.GPUsPerNode = n } }
func shape(s string) func(*Request)          { return func(r *Request) { r.GPUShape = s } }
func mem(gb int32) func(*Request)            { return func(r *Request) { r.MemoryPerGPU = gb } }
func itype(s string) func(*Request)          { return func(r *Request) { r.InstanceType = s } }
func created(d time.Duration) func(*Request) { return func(r *Request) { r.Created = t0.Add(d) } }

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestCompute(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want Plan
	}{{
		name: "empty",
		in:   Input{Now: t0},
		want: Plan{},
	}, {
		name: "one GPR starts on the tightest fit",
		in: Input{Now: t0, Nodes: []Node{h100("a"), t4("b"), t4("c")},
			Queued: []Request{req("g1", "ws", gpus(2))}},
		want: Plan{Starts: []Start{{"g1", []string{"b"}}}, Estimates: map[string]time.Time{"g1": t0}},
	}, {
		name: "requested shape aliases match case-insensitively",
		in: Input{Now: t0, Nodes: []Node{h100("a"), t4("b")},
			Queued: []Request{req("g1", "w1", shape("h100")), req("g2", "w2", shape("Tesla-T4"), created(time.Second))}},
		want: Plan{
			Starts:    []Start{{"g1", []string{"a"}}, {"g2", []string{"b"}}},
			Estimates: map[string]time.Time{"g1": t0, "g2": t0},
		},
	}, {
		name: "T4 reporting 15360 MiB satisfies 16 GB",
		in: Input{Now: t0, Nodes: []Node{t4("b")},
			Queued: []Request{req("g1", "ws", shape("T4"), mem(16))}},
		want: Plan{Starts: []Start{{"g1", []string{"b"}}}, Estimates: map[string]time.Time{"g1": t0}},
	}, {
		name: "H100 reporting 81559 MiB satisfies 80 GB, T4 does not",
		in: Input{Now: t0, Nodes: []Node{t4("b"), h100("z")},
			Queued: []Request{req("g1", "ws", mem(80))}},
		want: Plan{Starts: []Start{{"g1", []string{"z"}}}, Estimates: map[string]time.Time{"g1": t0}},
	}, {
		name: "instance type matches case-insensitively",
		in: Input{Now: t0, Nodes: []Node{t4("b"), h100("z")},
			Queued: []Request{req("g1", "ws", itype("P5.48XLARGE"))}},
		want: Plan{Starts: []Start{{"g1", []string{"z"}}}, Estimates: map[string]time.Time{"g1": t0}},
	}, {
		name: "unhealthy, cordoned and bound nodes are never chosen",
		in: Input{Now: t0,
			Nodes: []Node{
				with(t4("a"), func(n *Node) { n.Ready = false }),
				with(t4("b"), func(n *Node) { n.Schedulable = false }),
				with(t4("c"), func(n *Node) { n.BoundTo = "p1" }),
				t4("d"),
			},
			Provisioned: []Provisioned{{ID: "p1", Workspace: "other", Nodes: []string{"c"}, End: at(2 * time.Hour)}},
			Queued:      []Request{req("g1", "ws", nodes(2))}},
		// Only d is free; c frees at +2h.
		want: Plan{Estimates: map[string]time.Time{"g1": at(2 * time.Hour)}},
	}, {
		name: "status.nodes of a provisioned GPR count even before the node is labelled",
		in: Input{Now: t0, Nodes: []Node{t4("a")},
			Provisioned: []Provisioned{{ID: "p1", Workspace: "other", Nodes: []string{"a"}, End: at(time.Hour)}},
			Queued:      []Request{req("g1", "ws")}},
		want: Plan{Estimates: map[string]time.Time{"g1": at(time.Hour)}},
	}, {
		name: "one provisioned GPR per workspace",
		in: Input{Now: t0, Nodes: []Node{t4("a"), t4("b"), t4("c")},
			Provisioned: []Provisioned{{ID: "p1", Workspace: "ws", Nodes: []string{"a"}, End: at(30 * time.Minute)}},
			Queued:      []Request{req("g1", "ws"), req("g2", "ws", created(time.Second)), req("g3", "other", created(2*time.Second))}},
		// g1 and g2 reserve a, which frees when their workspace does, so
		// b and c stay free for g3 (which would not fit in a 30-minute
		// hole).
		want: Plan{
			Starts:    []Start{{"g3", []string{"b"}}},
			Estimates: map[string]time.Time{"g1": at(30 * time.Minute), "g2": at(90 * time.Minute), "g3": t0},
		},
	}, {
		name: "within a workspace: priority, then creation time",
		in: Input{Now: t0, Nodes: []Node{t4("a"), t4("b")},
			Queued: []Request{
				req("old-low", "ws", prio(50), created(-time.Hour)),
				req("new-high", "ws", prio(250), dur(2*time.Hour)),
				req("new-low", "ws", prio(50), created(time.Hour)),
			}},
		want: Plan{
			Starts: []Start{{"new-high", []string{"a"}}},
			Estimates: map[string]time.Time{
				"new-high": t0, "old-low": at(2 * time.Hour), "new-low": at(3 * time.Hour),
			},
		},
	}, {
		name: "across workspaces: higher priority first, then older",
		in: Input{Now: t0, Nodes: []Node{t4("a")},
			Queued: []Request{
				req("low", "w1", prio(50), created(-time.Hour)),
				req("high-young", "w2", prio(250), created(time.Minute)),
				req("high-old", "w3", prio(250)),
			}},
		want: Plan{
			Starts: []Start{{"high-old", []string{"a"}}},
			Estimates: map[string]time.Time{
				"high-old": t0, "high-young": at(time.Hour), "low": at(2 * time.Hour),
			},
		},
	}, {
		name: "backfill: a short lower-priority GPR fits before the reservation",
		in: Input{Now: t0, Nodes: []Node{t4("a"), with(t4("b"), func(n *Node) { n.BoundTo = "p1" })},
			Provisioned: []Provisioned{{ID: "p1", Workspace: "w0", Nodes: []string{"b"}, End: at(2 * time.Hour)}},
			Queued: []Request{
				req("head", "w1", prio(250), nodes(2)),
				req("short", "w2", prio(50), dur(2*time.Hour)),
			}},
		want: Plan{
			Starts:    []Start{{"short", []string{"a"}}},
			Estimates: map[string]time.Time{"head": at(2 * time.Hour), "short": t0},
		},
	}, {
		name: "no backfill that would delay a higher-priority GPR",
		in: Input{Now: t0, Nodes: []Node{t4("a"), with(t4("b"), func(n *Node) { n.BoundTo = "p1" })},
			Provisioned: []Provisioned{{ID: "p1", Workspace: "w0", Nodes: []string{"b"}, End: at(2 * time.Hour)}},
			Queued: []Request{
				req("head", "w1", prio(250), nodes(2)),
				req("long", "w2", prio(50), dur(2*time.Hour+time.Minute)),
			}},
		want: Plan{Estimates: map[string]time.Time{"head": at(2 * time.Hour), "long": at(3 * time.Hour)}},
	}, {
		name: "backfill on a node nobody reserved",
		in: Input{Now: t0, Nodes: []Node{h100("big"), t4("a"), with(t4("b"), func(n *Node) { n.BoundTo = "p1" })},
			Provisioned: []Provisioned{{ID: "p1", Workspace: "w0", Nodes: []string{"b"}, End: at(time.Hour)}},
			Queued: []Request{
				req("head", "w1", prio(250), shape("T4"), nodes(2)),
				req("any", "w2", prio(50), dur(48*time.Hour)),
			}},
		want: Plan{
			Starts:    []Start{{"any", []string{"big"}}},
			Estimates: map[string]time.Time{"head": at(time.Hour), "any": t0},
		},
	}, {
		name: "a busy workspace's next GPR reserves the node it holds, not a free one",
		in: Input{Now: t0, Nodes: []Node{t4("x"), t4("y")},
			Provisioned: []Provisioned{{ID: "p", Workspace: "a", Nodes: []string{"x"}, End: at(time.Hour)}},
			Queued: []Request{
				req("a-next", "a", prio(250)),
				req("b-long", "b", prio(50), dur(2*time.Hour)),
			}},
		want: Plan{
			Starts:    []Start{{"b-long", []string{"y"}}},
			Estimates: map[string]time.Time{"a-next": at(time.Hour), "b-long": t0},
		},
	}, {
		name: "a reservation takes free nodes when busy ones would start it later",
		in: Input{Now: t0, Nodes: []Node{t4("x"), t4("y"), t4("z")},
			Provisioned: []Provisioned{{ID: "p", Workspace: "a", Nodes: []string{"x"}, End: at(time.Hour)}},
			Queued: []Request{
				req("head", "w", prio(250), nodes(3)),
				req("short", "b", prio(50), dur(time.Hour)),
				req("long", "c", prio(50), dur(61*time.Minute)),
			}},
		want: Plan{
			Starts:    []Start{{"short", []string{"y"}}},
			Estimates: map[string]time.Time{"head": at(time.Hour), "short": t0, "long": at(2 * time.Hour)},
		},
	}, {
		name: "matching nodes all unhealthy: no estimate, no reservation, the workspace waits",
		in: Input{Now: t0, Nodes: []Node{with(h100("a"), func(n *Node) { n.Ready = false }), t4("b")},
			Queued: []Request{
				req("h", "w1", shape("H100"), prio(250)),
				req("next", "w1", shape("T4"), created(time.Minute)),
				req("t", "w2", prio(50)),
			}},
		want: Plan{Starts: []Start{{"t", []string{"b"}}}, Estimates: map[string]time.Time{"t": t0}},
	}, {
		name: "node bound to an unknown GPR is not planned on",
		in: Input{Now: t0, Nodes: []Node{with(t4("a"), func(n *Node) { n.BoundTo = "ghost" })},
			Queued: []Request{req("g", "w")}},
		want: Plan{Estimates: map[string]time.Time{}},
	}, {
		name: "provisioned GPR past its end: estimate now, but no start",
		in: Input{Now: t0, Nodes: []Node{with(t4("a"), func(n *Node) { n.BoundTo = "p1" })},
			Provisioned: []Provisioned{{ID: "p1", Workspace: "w0", Nodes: []string{"a"}, End: at(-time.Minute)}},
			Queued:      []Request{req("g", "w")}},
		want: Plan{Estimates: map[string]time.Time{"g": t0}},
	}, {
		name: "unsatisfiable GPRs fail and do not block their workspace",
		in: Input{Now: t0, Nodes: []Node{h100("a"), h100("b"), t4("c")},
			Queued: []Request{
				req("cluster", "w", func(r *Request) { r.Cluster = "worker-9" }),
				req("shape", "w", shape("A100")),
				req("itype", "w", shape("T4"), itype("p5.48xlarge")),
				req("memory", "w", shape("T4"), mem(24)),
				req("gpus", "w", gpus(16), shape("H100")),
				req("count", "w", gpus(8), shape("H100"), nodes(4)),
				req("count-mem", "w", gpus(2), mem(40), nodes(3)),
				req("ok", "w", created(time.Hour)),
			}},
		want: Plan{
			Starts:    []Start{{"ok", []string{"c"}}},
			Estimates: map[string]time.Time{"ok": t0},
			Unsatisfiable: []Unsatisfiable{
				{"cluster", "no GPU node in cluster worker-9"},
				{"count", "only 2 nodes with 8 GPUs of shape H100 in cluster worker-1, 4 requested"},
				{"count-mem", "only 2 nodes with 2 GPUs and 40 GB per GPU in cluster worker-1, 3 requested"},
				{"gpus", "no node with 16 GPUs of shape H100 in cluster worker-1"},
				{"itype", "no node with gpuShape T4 and instanceType p5.48xlarge in cluster worker-1"},
				{"memory", "no node with gpuShape T4 and 24 GB per GPU in cluster worker-1 (the most is 15360 MiB)"},
				{"shape", "no node with gpuShape A100 in cluster worker-1"},
			},
		},
	}, {
		name: "unhealthy and bound nodes still count for satisfiability",
		in: Input{Now: t0, Nodes: []Node{with(t4("a"), func(n *Node) { n.Ready = false }), with(t4("b"), func(n *Node) { n.BoundTo = "p" })},
			Provisioned: []Provisioned{{ID: "p", Workspace: "w0", Nodes: []string{"b"}, End: at(time.Hour)}},
			Queued:      []Request{req("g", "w", nodes(2))}},
		want: Plan{Estimates: map[string]time.Time{}},
	}, {
		name: "nodes without GPUs are ignored",
		in: Input{Now: t0, Nodes: []Node{with(t4("a"), func(n *Node) { n.GPUs = 0 })},
			Queued: []Request{req("g", "w")}},
		want: Plan{Estimates: map[string]time.Time{}, Unsatisfiable: []Unsatisfiable{{"g", "no GPU node in cluster worker-1"}}},
	}, {
		name: "multi-node GPR across groups prefers the tighter fit",
		in: Input{Now: t0, Nodes: []Node{h100("a"), t4("c"), t4("b")},
			Queued: []Request{req("g", "w", nodes(2), gpus(4))}},
		want: Plan{Starts: []Start{{"g", []string{"b", "c"}}}, Estimates: map[string]time.Time{"g": t0}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.in)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Compute() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMemoryFits(t *testing.T) {
	tests := []struct {
		mib  int64
		gb   int32
		want bool
	}{
		{15360, 16, true},  // T4 "16 GB"
		{15360, 17, false}, // beyond 10%
		{81559, 80, true},  // H100 80GB HBM3
		{40960, 80, false}, // A100 40GB
		{40960, 40, true},
		{14746, 16, true}, // 16×1024×0.9 = 14745.6
		{14745, 16, false},
		{0, 0, true},
	}
	for _, tt := range tests {
		if got := MemoryFits(tt.mib, tt.gb); got != tt.want {
			t.Errorf("MemoryFits(%d MiB, %d GB) = %v, want %v", tt.mib, tt.gb, got, tt.want)
		}
	}
}

// TestComputeInvariants checks properties of plans for random inputs:
// the plan does not depend on input order; started GPRs get distinct free,
// healthy, schedulable, matching nodes; at most one GPR per workspace
// starts, none where one is provisioned; and the plan for a GPR depends only
// on the GPRs ahead of it, which is what makes backfill harmless: dropping
// every GPR behind one leaves its estimate and its start unchanged.
func TestComputeInvariants(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			in := randomInput(rand.New(rand.NewPCG(seed, 7)), 60, 40, 8)
			plan := Compute(in)

			shuffled := in
			r := rand.New(rand.NewPCG(seed, 8))
			shuffled.Nodes = slices.Clone(in.Nodes)
			shuffled.Queued = slices.Clone(in.Queued)
			r.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
			r.Shuffle(len(shuffled.Queued), func(i, j int) { shuffled.Queued[i], shuffled.Queued[j] = shuffled.Queued[j], shuffled.Queued[i] })
			if diff := cmp.Diff(plan, Compute(shuffled)); diff != "" {
				t.Fatalf("plan depends on input order (-first +shuffled):\n%s", diff)
			}

			checkStarts(t, in, plan)

			// Truncating the queue after each GPR keeps its outcome.
			queue := slices.Clone(in.Queued)
			sortQueue(queue)
			for i := range queue {
				part := in
				part.Queued = queue[:i+1]
				sub := Compute(part)
				id := queue[i].ID
				if got, want := sub.Estimates[id], plan.Estimates[id]; !got.Equal(want) {
					t.Errorf("GPR %s: estimate %v with only the GPRs ahead of it, %v with the whole queue", id, got, want)
				}
				if got, want := startOf(sub, id), startOf(plan, id); !slices.Equal(got, want) {
					t.Errorf("GPR %s: start %v with only the GPRs ahead of it, %v with the whole queue", id, got, want)
				}
			}
		})
	}
}

func startOf(p Plan, id string) []string {
	for _, s := range p.Starts {
		if s.ID == id {
			return s.Nodes
		}
	}
	return nil
}

func sortQueue(q []Request) {
	slices.SortFunc(q, func(a, b Request) int {
		if a.Priority != b.Priority {
			return int(b.Priority - a.Priority)
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
}

func checkStarts(t *testing.T, in Input, plan Plan) {
	t.Helper()
	byName := map[string]Node{}
	for _, n := range in.Nodes {
		byName[n.Name] = n
	}
	reqs := map[string]Request{}
	for _, r := range in.Queued {
		reqs[r.ID] = r
	}
	busyWS := map[string]bool{}
	for _, p := range in.Provisioned {
		busyWS[p.Workspace] = true
	}
	used := map[string]string{}
	for _, s := range plan.Starts {
		r := reqs[s.ID]
		if busyWS[r.Workspace] {
			t.Errorf("GPR %s starts in workspace %s, which already has a GPR", s.ID, r.Workspace)
		}
		busyWS[r.Workspace] = true
		if len(s.Nodes) != int(r.Nodes) {
			t.Errorf("GPR %s starts on %d nodes, want %d", s.ID, len(s.Nodes), r.Nodes)
		}
		if !plan.Estimates[s.ID].Equal(in.Now) {
			t.Errorf("GPR %s starts now but its estimate is %v", s.ID, plan.Estimates[s.ID])
		}
		for _, name := range s.Nodes {
			n := byName[name]
			if prev, ok := used[name]; ok {
				t.Errorf("node %s given to %s and %s", name, prev, s.ID)
			}
			used[name] = s.ID
			if !n.Healthy() || n.BoundTo != "" {
				t.Errorf("GPR %s starts on unusable node %+v", s.ID, n)
			}
			if n.Cluster != r.Cluster || n.GPUs < r.GPUsPerNode || !MemoryFits(n.MemoryMiB, r.MemoryPerGPU) ||
				(r.GPUShape != "" && n.Shape != r.GPUShape) {
				t.Errorf("GPR %+v starts on non-matching node %+v", r, n)
			}
		}
	}
	for id, est := range plan.Estimates {
		if est.Before(in.Now) {
			t.Errorf("GPR %s estimated at %v, before now", id, est)
		}
	}
}

var shapes = []struct {
	product, shape string
	mib            int64
	gpus           int32
	itype          string
}{
	{"NVIDIA-H100-80GB-HBM3", "H100", 81559, 8, "p5.48xlarge"},
	{"NVIDIA-A100-SXM4-40GB", "A100", 40960, 8, "p4d.24xlarge"},
	{"NVIDIA-A100-SXM4-80GB", "A100", 81920, 8, "p4de.24xlarge"},
	{"Tesla-T4", "T4", 15360, 4, "g4dn.12xlarge"},
	{"Tesla-T4", "T4", 15360, 1, "g4dn.xlarge"},
	{"NVIDIA-L40S", "L40S", 46068, 4, "g6e.12xlarge"},
}

// randomInput builds an inventory of nNodes nodes in two clusters, a third
// of them bound to provisioned GPRs, a few unhealthy or cordoned, and nQueued
// queued GPRs over nWS workspaces.
func randomInput(r *rand.Rand, nNodes, nQueued, nWS int) Input {
	in := Input{Now: t0}
	clusters := []string{"worker-1", "worker-1", "worker-1", "worker-2"}
	var prov []Provisioned
	for i := range nNodes {
		s := shapes[r.IntN(len(shapes))]
		n := Node{GPUNode: domain.GPUNode{
			Name: fmt.Sprintf("node-%05d", i), Cluster: clusters[r.IntN(len(clusters))],
			InstanceType: s.itype, Product: s.product, Shape: s.shape, MemoryMiB: s.mib, GPUs: s.gpus,
			HealthyGPUs: s.gpus, Ready: r.IntN(50) != 0, Schedulable: r.IntN(50) != 0,
		}}
		if r.IntN(3) == 0 {
			id := fmt.Sprintf("prov-%05d", i)
			n.BoundTo = id
			prov = append(prov, Provisioned{ID: id, Workspace: fmt.Sprintf("busy-%d", i), Nodes: []string{n.Name},
				End: t0.Add(time.Duration(1+r.IntN(48*60)) * time.Minute)})
		}
		in.Nodes = append(in.Nodes, n)
	}
	in.Provisioned = prov
	for i := range nQueued {
		s := shapes[r.IntN(len(shapes))]
		q := Request{
			ID: fmt.Sprintf("gpr-%06d", i), Workspace: fmt.Sprintf("ws-%d", r.IntN(nWS)),
			Cluster: clusters[r.IntN(len(clusters))], GPUsPerNode: 1 + int32(r.IntN(int(s.gpus))),
			Nodes: 1 + int32(r.IntN(3)), Priority: 1 + int32(r.IntN(300)),
			Created:  t0.Add(-time.Duration(r.IntN(100000)) * time.Second),
			Duration: time.Duration(1+r.IntN(24*60)) * time.Minute,
		}
		switch r.IntN(4) {
		case 0:
			q.GPUShape = s.shape
		case 1:
			q.GPUShape, q.MemoryPerGPU = s.shape, int32(s.mib/1024)
		case 2:
			q.InstanceType = s.itype
		}
		in.Queued = append(in.Queued, q)
	}
	return in
}

// TestPlacements: with Input.Placements the plan names the nodes each GPR
// starts on now or is reserved on; without, it names none.
func TestPlacements(t *testing.T) {
	in := Input{
		Now:         t0,
		Nodes:       []Node{with(h100("h-a"), func(n *Node) { n.BoundTo = "busy" }), h100("h-b"), t4("t-a")},
		Provisioned: []Provisioned{{ID: "busy", Workspace: "w0", Nodes: []string{"h-a"}, End: at(time.Hour)}},
		Queued: []Request{
			req("now", "w1", shape("H100")),
			req("later", "w2", shape("H100"), nodes(2), created(time.Minute)),
			req("t4", "w3", shape("T4")),
		},
	}
	if p := Compute(in); p.Placements != nil {
		t.Errorf("placements without asking: %v", p.Placements)
	}
	in.Placements = true
	p := Compute(in)
	want := map[string][]string{"now": {"h-b"}, "later": {"h-a", "h-b"}, "t4": {"t-a"}}
	if diff := cmp.Diff(want, p.Placements); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
	if got := p.Estimates["later"]; !got.Equal(at(time.Hour)) {
		t.Errorf("later starts %v, want %v", got, at(time.Hour))
	}
}
