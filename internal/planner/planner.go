package planner

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/gpushape"
)

// never is the offset of a time that is not known: a node that may never
// become free, or a workspace whose queue is blocked.
const never = int64(math.MaxInt64)

// node is the planner's working state of one usable or unusable node.
// Times are nanoseconds after Input.Now.
type node struct {
	name string
	g    *group
	// freeAt is when the node's last planned use ends (0: free now);
	// never if it cannot be planned on (unhealthy, cordoned, unknown
	// holder).
	freeAt int64
	// holeEnd is when the first reservation on a node that is free now
	// begins; never when there is none.
	holeEnd int64
	// heapIdx is the node's index in g.heap, -1 if not there.
	heapIdx int
	// unreserved: free now, not started on, no reservation; the node is in
	// g.unreserved. hole: free now with a reservation later; in g.holes.
	unreserved, hole bool
}

// group is the nodes of one kind: same cluster, shape, instance type,
// memory and GPU count. GPRs are matched against groups, never against
// single nodes, which keeps planning linear in the queue length.
type group struct {
	cluster, shape, instanceType string // instanceType lower-cased
	memMiB                       int64
	gpus                         int32
	// domains are its nodes' topology domains (topology.go), dom their
	// key.
	domains []domain.TopologyDomain
	dom     string
	// ver counts changes to heap and unreserved; soon caches the heap's
	// smallest freeAt values while ver stays (topology.go).
	ver  uint64
	soon soonest
	// rank is the group's place in groupLess order over all groups, so
	// that comparing nodes does not compare strings.
	rank int
	// total counts every node of the group, whatever its state: it decides
	// whether a GPR could ever be satisfied.
	total int
	// heap holds the nodes that can be planned on and are not in
	// unreserved, by freeAt then name.
	heap nodeHeap
	// unreserved holds nodes free now without reservation, by name, from
	// cursor on; entries whose flag is cleared are skipped. nUnreserved
	// counts those still flagged.
	unreserved  []*node
	cursor      int
	nUnreserved int
	// holes holds nodes free now with a reservation later, by holeEnd
	// descending then name.
	holes []*node
}

// firstUnreserved advances the cursor past nodes that left the unreserved
// list and returns the first one still in it, or nil.
func (g *group) firstUnreserved() *node {
	for g.cursor < len(g.unreserved) && !g.unreserved[g.cursor].unreserved {
		g.cursor++
	}
	if g.cursor < len(g.unreserved) {
		return g.unreserved[g.cursor]
	}
	return nil
}

func groupLess(a, b *group) int {
	return cmp.Or(
		cmp.Compare(a.gpus, b.gpus),
		cmp.Compare(a.memMiB, b.memMiB),
		strings.Compare(a.instanceType, b.instanceType),
		strings.Compare(a.shape, b.shape),
		strings.Compare(a.cluster, b.cluster),
		strings.Compare(a.dom, b.dom),
	)
}

type groupKey struct {
	cluster, shape, instanceType string
	memMiB                       int64
	gpus                         int32
	dom                          string // topology domains (topology.go)
}

type reqKey struct {
	cluster, shape, instanceType string
	memGB, gpus                  int32
}

// match is what a kind of request matches, computed once per kind.
type match struct {
	groups []*group // best fit first
	total  int
	// topo caches the domains of each level (topology.go).
	topo map[string][]*tdomain
}

type state struct {
	byCluster map[string][]*group // best fit first
	matches   map[reqKey]*match
	scratch   []*node
	// byName and pre are set when some GPR may evict (preempt.go).
	byName map[string]*node
	pre    *preemptState
	// placed, when set, collects each reservation's nodes under placeID.
	placed  *map[string][]string
	placeID string
	// front and runs are probe's scratch (topology.go).
	front frontier
	runs  runs
	soon  []int64
}

// Compute makes the plan for in. It does not modify in.
func Compute(in Input) Plan {
	now := in.Now
	st := &state{byCluster: map[string][]*group{}, matches: map[reqKey]*match{}}
	if slices.ContainsFunc(in.Queued, func(r Request) bool { return r.CanEvict }) {
		st.preemption(in)
	}

	// Who holds which node, and until when.
	holderEnd := make(map[string]int64, len(in.Provisioned))
	gprEnd := make(map[string]int64, len(in.Provisioned))
	// wsReady is when a workspace's next GPR may start; wsWaits is true
	// once one of its GPRs is provisioned or planned, so no other may start
	// now.
	wsReady := map[string]int64{}
	wsWaits := map[string]bool{}
	for _, p := range in.Provisioned {
		end := max(p.End.Sub(now).Nanoseconds(), 0)
		gprEnd[p.ID] = end
		for _, n := range p.Nodes {
			holderEnd[n] = max(holderEnd[n], end)
		}
		wsReady[p.Workspace] = max(wsReady[p.Workspace], end)
		wsWaits[p.Workspace] = true
	}

	groups := map[groupKey]*group{}
	nodes := make([]*node, 0, len(in.Nodes))
	for i := range in.Nodes {
		n := &in.Nodes[i]
		if n.GPUs <= 0 {
			continue
		}
		k := groupKey{n.Cluster, n.Shape, strings.ToLower(n.InstanceType), n.MemoryMiB, n.GPUs, domainKey(n.Domains)}
		g := groups[k]
		if g == nil {
			g = &group{cluster: k.cluster, shape: k.shape, instanceType: k.instanceType, memMiB: k.memMiB, gpus: k.gpus,
				domains: n.Domains, dom: k.dom}
			groups[k] = g
			st.byCluster[n.Cluster] = append(st.byCluster[n.Cluster], g)
		}
		g.total++
		ns := &node{name: n.Name, g: g, freeAt: never, holeEnd: never, heapIdx: -1}
		if st.byName != nil {
			st.byName[n.Name] = ns
		}
		end, held := holderEnd[n.Name]
		if !held && n.BoundTo != "" {
			end, held = gprEnd[n.BoundTo]
			if !held {
				end, held = never, true // bound to a GPR we do not know
			}
		}
		switch {
		case !n.Healthy():
			// Cannot be planned on until it recovers.
		case held:
			ns.freeAt = end
		default:
			ns.freeAt = 0
			ns.unreserved = true
		}
		nodes = append(nodes, ns)
	}
	// Sorting by name makes every per-group list ordered by name.
	slices.SortFunc(nodes, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	for _, n := range nodes {
		switch {
		case n.unreserved:
			n.g.unreserved = append(n.g.unreserved, n)
			n.g.nUnreserved++
		case n.freeAt != never:
			n.heapIdx = len(n.g.heap)
			n.g.heap = append(n.g.heap, n)
		}
	}
	all := make([]*group, 0, len(groups))
	for _, g := range groups {
		all = append(all, g)
	}
	slices.SortFunc(all, groupLess)
	for i, g := range all {
		g.rank = i
		heap.Init(&g.heap)
	}
	for _, gs := range st.byCluster {
		slices.SortFunc(gs, groupLess)
	}

	queue := make([]*Request, len(in.Queued))
	for i := range in.Queued {
		queue[i] = &in.Queued[i]
	}
	slices.SortFunc(queue, queueOrder)

	plan := Plan{Estimates: make(map[string]time.Time, len(queue))}
	if in.Placements {
		plan.Placements = make(map[string][]string, len(queue))
		st.placed = &plan.Placements
	}
	for _, r := range queue {
		m := st.match(r)
		need := int(max(r.Nodes, 1))
		if m.total < need {
			plan.Unsatisfiable = append(plan.Unsatisfiable, Unsatisfiable{ID: r.ID, Reason: st.reason(r, need)})
			continue
		}
		tp := st.topologyFor(r, m, need)
		if reason := tp.unsatisfiable(need); reason != "" {
			plan.Unsatisfiable = append(plan.Unsatisfiable, Unsatisfiable{ID: r.ID, Reason: reason})
			continue
		}
		dur := max(r.Duration.Nanoseconds(), 1)
		ready := wsReady[r.Workspace]
		if ready == never {
			continue // an earlier GPR of the workspace has no estimate
		}
		mayEvict := !wsWaits[r.Workspace]
		if mayEvict {
			wsWaits[r.Workspace] = true
			if picked := tp.startNow(st, m, need, dur); picked != nil {
				plan.Starts = append(plan.Starts, Start{ID: r.ID, Nodes: picked})
				plan.Estimates[r.ID] = now
				if in.Placements {
					plan.Placements[r.ID] = picked
				}
				wsReady[r.Workspace] = dur
				continue
			}
			if picked := tp.evictFor(st, r, m, need, dur, &plan); picked != nil {
				plan.Starts = append(plan.Starts, Start{ID: r.ID, Nodes: picked})
				plan.Estimates[r.ID] = now
				if in.Placements {
					plan.Placements[r.ID] = picked
				}
				wsReady[r.Workspace] = dur
				continue
			}
		}
		evictAt := never
		if mayEvict {
			// It may evict, but its victims are still protected: it
			// starts when enough of them are not, if that is sooner than
			// free nodes (read before reserve takes nodes).
			evictAt = st.evictableIn(r, m, need)
		}
		st.placeID = r.ID
		t := tp.reserve(st, m, need, dur, ready)
		if t == never {
			wsReady[r.Workspace] = never
			continue
		}
		if evictAt != never {
			t = min(t, max(evictAt, ready))
		}
		plan.Estimates[r.ID] = now.Add(time.Duration(t))
		wsReady[r.Workspace] = addSat(t, dur)
	}
	return plan
}

// queueOrder is the queue's order, domain's (QueueKey.Compare).
func queueOrder(a, b *Request) int {
	return domain.QueueKey{Priority: a.Priority, Created: a.Created, Name: a.ID}.
		Compare(domain.QueueKey{Priority: b.Priority, Created: b.Created, Name: b.ID})
}

// requestKey is the kind of node a request needs.
func requestKey(r *Request) reqKey {
	return reqKey{r.Cluster, gpushape.Normalize(r.GPUShape), strings.ToLower(r.InstanceType), r.MemoryPerGPU, r.GPUsPerNode}
}

// fits reports whether nodes of a kind (within k's cluster; shape
// normalised, instance type lower-cased) satisfy the request kind k.
func (k reqKey) fits(shape, instanceType string, memMiB int64, gpus int32) bool {
	return (k.shape == "" || shape == k.shape) &&
		(k.instanceType == "" || instanceType == k.instanceType) &&
		MemoryFits(memMiB, k.memGB) && gpus >= k.gpus
}

func addSat(a, b int64) int64 {
	if a > never-b {
		return never
	}
	return a + b
}

// match returns the groups a request's kind matches, best fit first.
func (st *state) match(r *Request) *match {
	k := requestKey(r)
	if m, ok := st.matches[k]; ok {
		return m
	}
	m := &match{}
	for _, g := range st.byCluster[k.cluster] {
		if k.fits(g.shape, g.instanceType, g.memMiB, g.gpus) {
			m.groups = append(m.groups, g)
			m.total += g.total
		}
	}
	st.matches[k] = m
	return m
}

// startNow picks need nodes that are free now and stay free for dur, and
// marks them started; it returns their names sorted, or nil if there are
// not enough.
//
// Nodes with a reservation later (holes) are used first when the GPR ends
// before the reservation begins, which keeps nodes without reservations for
// GPRs that need them for longer.
func (st *state) startNow(m *match, need int, dur int64) []string {
	picked := st.scratch[:0]
	for _, g := range m.groups {
		for _, n := range g.holes {
			if len(picked) == need || n.holeEnd < dur {
				break // holes are sorted by holeEnd descending
			}
			picked = append(picked, n)
		}
		for i := g.cursor; i < len(g.unreserved) && len(picked) < need; i++ {
			if n := g.unreserved[i]; n.unreserved {
				picked = append(picked, n)
			}
		}
		if len(picked) == need {
			break
		}
	}
	st.scratch = picked[:0]
	if len(picked) < need {
		return nil
	}
	names := make([]string, len(picked))
	for i, n := range picked {
		names[i] = n.name
		g := n.g
		if n.hole {
			// Picked from the front of g.holes, in order.
			n.hole = false
			g.holes = g.holes[1:]
			continue // freeAt stays the end of its reservation
		}
		g.takeUnreserved(n)
		n.freeAt = dur
		heap.Push(&g.heap, n)
	}
	slices.Sort(names)
	return names
}

// reserve finds the earliest time, not before ready, at which need matching
// nodes are free, and reserves them from then for dur. It returns the time,
// or never if there are not enough nodes that will become free.
//
// Nodes free now are reserved only when busy nodes cannot do as well: a
// GPR whose workspace is busy until ready takes nodes that free up by then,
// so the nodes free now stay open for backfill.
func (st *state) reserve(m *match, need int, dur, ready int64) int64 {
	free := 0
	for _, g := range m.groups {
		free += g.nUnreserved
	}
	picked := st.scratch[:0]
	t := ready
	for len(picked) < need {
		var best *group
		for _, g := range m.groups {
			if len(g.heap) > 0 && (best == nil || nodeLess(g.heap[0], best.heap[0])) {
				best = g
			}
		}
		// Take the next busy node if it is free by t anyway, or if the
		// nodes free now are too few to make up the rest.
		if best == nil || (best.heap[0].freeAt > t && len(picked) >= need-free) {
			break
		}
		n := heap.Pop(&best.heap).(*node)
		t = max(t, n.freeAt)
		picked = append(picked, n)
	}
	busy := len(picked)
	for _, g := range m.groups {
		for n := g.firstUnreserved(); n != nil && len(picked) < need; n = g.nextUnreserved(n) {
			picked = append(picked, n)
		}
	}
	st.scratch = picked[:0]
	if len(picked) < need {
		for _, n := range picked[:busy] {
			heap.Push(&n.g.heap, n)
		}
		return never
	}
	if st.placed != nil {
		names := make([]string, len(picked))
		for i, n := range picked {
			names[i] = n.name
		}
		slices.Sort(names)
		(*st.placed)[st.placeID] = names
	}
	for _, n := range picked {
		if n.unreserved {
			// Free now and reserved from t: now a hole [0, t).
			n.g.takeUnreserved(n)
			n.hole = true
			n.holeEnd = t
			n.g.insertHole(n)
		}
		n.freeAt = addSat(t, dur)
		heap.Push(&n.g.heap, n)
	}
	return t
}

// takeUnreserved removes n from g's unreserved nodes.
func (g *group) takeUnreserved(n *node) {
	g.ver++
	n.unreserved = false
	g.nUnreserved--
	g.firstUnreserved()
}

// nextUnreserved returns the unreserved node after n in g's list, or nil.
func (g *group) nextUnreserved(n *node) *node {
	i, _ := slices.BinarySearchFunc(g.unreserved, n.name, func(a *node, name string) int { return strings.Compare(a.name, name) })
	for i++; i < len(g.unreserved); i++ {
		if g.unreserved[i].unreserved {
			return g.unreserved[i]
		}
	}
	return nil
}

func (g *group) insertHole(n *node) {
	i, _ := slices.BinarySearchFunc(g.holes, n, func(a, b *node) int {
		return cmp.Or(cmp.Compare(b.holeEnd, a.holeEnd), strings.Compare(a.name, b.name))
	})
	g.holes = slices.Insert(g.holes, i, n)
}

// nodeLess orders nodes for reservations: earliest free first, then the
// tighter fit, then by name.
func nodeLess(a, b *node) bool {
	if a.freeAt != b.freeAt {
		return a.freeAt < b.freeAt
	}
	if a.g.rank != b.g.rank {
		return a.g.rank < b.g.rank
	}
	return a.name < b.name
}

// nodeHeap is a min-heap of nodes by nodeLess.
type nodeHeap []*node

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return nodeLess(h[i], h[j]) }
func (h nodeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h *nodeHeap) Push(x any) {
	n := x.(*node)
	n.g.ver++
	n.heapIdx = len(*h)
	*h = append(*h, n)
}

func (h *nodeHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	n.g.ver++
	n.heapIdx = -1
	*h = old[:len(old)-1]
	return n
}
