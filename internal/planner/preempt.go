package planner

import (
	"cmp"
	"container/heap"
	"slices"
	"strings"
)

// Preemption is part of the one planning pass (see Compute's queue loop):
// a queued GPR that may evict (Request.CanEvict), whose workspace holds
// nothing and which cannot start on free nodes, may at its turn in the
// queue evict provisioned GPRs of strictly lower priority that are
// Evictable. It takes only victims' nodes it matches that are healthy,
// schedulable and not yet reserved by any GPR ahead of it in the queue, so
// it never delays the estimated start of a GPR ahead of it, and a pass
// never evicts for a GPR that could start on free nodes. The victims are
// the fewest GPRs whose such nodes cover its need; among sets of that size,
// the lowest priorities, then the most recently started. A GPR is evicted
// at most once per plan, and an evictor (queued) is never a victim. The
// evictor starts in the same plan; the victims' other nodes stay busy
// until their end in this plan (the controller frees them, and the next
// plan uses them).

// preemptState is the planner's working state for preemption.
type preemptState struct {
	provisioned []Provisioned
	// ends is each provisioned GPR's end, as an offset from now.
	ends map[string]int64
	// byKind caches, per kind of request, the evictable GPRs holding
	// matching nodes, with those nodes.
	byKind  map[reqKey][]candidate
	evicted map[string]bool
	// evictAt is, for each provisioned GPR, when it may be evicted, as an
	// offset from now: 0 when Evictable; absent when unknown.
	evictAt map[string]int64
}

// candidate is a provisioned GPR that could be evicted, with the nodes it
// holds that a kind of request matches.
type candidate struct {
	p     *Provisioned
	nodes []*node
}

// preemption prepares st for evictFor; called before nodes are built.
func (st *state) preemption(in Input) {
	st.byName = make(map[string]*node, len(in.Nodes))
	st.pre = &preemptState{provisioned: in.Provisioned, ends: make(map[string]int64, len(in.Provisioned)),
		byKind: map[reqKey][]candidate{}, evicted: map[string]bool{}}
	st.pre.evictAt = make(map[string]int64, len(in.Provisioned))
	for _, p := range in.Provisioned {
		st.pre.ends[p.ID] = max(p.End.Sub(in.Now).Nanoseconds(), 0)
		switch {
		case p.Evictable:
			st.pre.evictAt[p.ID] = 0
		case !p.EvictableAt.IsZero():
			st.pre.evictAt[p.ID] = max(p.EvictableAt.Sub(in.Now).Nanoseconds(), 0)
		}
	}
}

// evictableIn is how soon, as an offset from now, r could evict enough
// lower-priority GPRs for need nodes once their minimum runtimes end, the
// earliest first; never when it may not evict or they are too few. It is
// an estimate only: nothing is reserved (the pass that starts r is woken
// then and evicts as usual), and a victim that ends before its protection
// does is left to the plain reservation.
func (st *state) evictableIn(r *Request, m *match, need int) int64 {
	if !r.CanEvict || st.pre == nil {
		return never
	}
	inMatch := make(map[*group]bool, len(m.groups))
	for _, g := range m.groups {
		inMatch[g] = true
	}
	type protected struct {
		at    int64
		nodes int
	}
	var ps []protected
	for i := range st.pre.provisioned {
		p := &st.pre.provisioned[i]
		at, ok := st.pre.evictAt[p.ID]
		if !ok || p.Priority >= r.Priority || st.pre.evicted[p.ID] || at >= st.pre.ends[p.ID] {
			continue
		}
		n := 0
		for _, name := range p.Nodes {
			if nd := st.byName[name]; nd != nil && inMatch[nd.g] && st.free(p.ID, nd) {
				n++
			}
		}
		if n > 0 {
			ps = append(ps, protected{at: at, nodes: n})
		}
	}
	slices.SortFunc(ps, func(a, b protected) int { return cmp.Compare(a.at, b.at) })
	got := 0
	for _, p := range ps {
		if got += p.nodes; got >= need {
			return p.at
		}
	}
	return never
}

// evictFor evicts for r, if it may and must, and starts it on its victims'
// nodes: it records the evictions in plan and returns the nodes' names,
// sorted; nil when it evicts nothing.
func (st *state) evictFor(r *Request, m *match, need int, dur int64, plan *Plan) []string {
	if !r.CanEvict || st.pre == nil {
		return nil
	}
	k := requestKey(r)
	all, ok := st.pre.byKind[k]
	if !ok {
		all = st.candidates(m)
		st.pre.byKind[k] = all
	}
	victims := chooseVictims(st.eligible(all, r), need)
	if victims == nil {
		return nil
	}
	return st.evict(r, victims, need, dur, plan)
}

// evict evicts victims for r and starts it on need of their nodes.
func (st *state) evict(r *Request, victims []candidate, need int, dur int64, plan *Plan) []string {
	var picked []*node
	for _, c := range victims {
		st.pre.evicted[c.p.ID] = true
		plan.Evictions = append(plan.Evictions, Eviction{Victim: c.p.ID, By: r.ID})
		for _, n := range c.nodes {
			if len(picked) < need && st.free(c.p.ID, n) {
				picked = append(picked, n)
			}
		}
	}
	names := make([]string, len(picked))
	for i, n := range picked {
		names[i] = n.name
		// Held by the evictor from now until its end.
		heap.Remove(&n.g.heap, n.heapIdx)
		n.freeAt = dur
		heap.Push(&n.g.heap, n)
	}
	slices.Sort(names)
	return names
}

// free reports whether node n, held by provisioned GPR id, can go to an
// evictor: healthy and schedulable, and not reserved by a GPR ahead (it is
// still in its group's heap at exactly the holder's end).
func (st *state) free(id string, n *node) bool {
	return n.heapIdx >= 0 && n.freeAt == st.pre.ends[id]
}

// candidates are the evictable provisioned GPRs holding nodes of the
// groups m matches, with those nodes.
func (st *state) candidates(m *match) []candidate {
	inMatch := make(map[*group]bool, len(m.groups))
	for _, g := range m.groups {
		inMatch[g] = true
	}
	var out []candidate
	for i := range st.pre.provisioned {
		p := &st.pre.provisioned[i]
		if !p.Evictable {
			continue
		}
		var nodes []*node
		for _, name := range p.Nodes {
			if n := st.byName[name]; n != nil && inMatch[n.g] {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) > 0 {
			slices.SortFunc(nodes, func(a, b *node) int { return strings.Compare(a.name, b.name) })
			out = append(out, candidate{p: p, nodes: nodes})
		}
	}
	return out
}

// eligible are the candidates r may evict now: of lower priority, not
// evicted yet, with the nodes still free to take.
func (st *state) eligible(cs []candidate, r *Request) []candidate {
	var out []candidate
	for _, c := range cs {
		if c.p.Priority >= r.Priority || st.pre.evicted[c.p.ID] {
			continue
		}
		var nodes []*node
		for _, n := range c.nodes {
			if st.free(c.p.ID, n) {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) > 0 {
			out = append(out, candidate{p: c.p, nodes: nodes})
		}
	}
	return out
}

// chooseVictims picks the fewest candidates whose nodes add up to need:
// taking the largest first gives the smallest count; then, among sets of
// that count, it prefers the lowest priority, then the most recently
// started, keeping a candidate only if the slots left can still reach
// need. nil when all of them together are too few.
func chooseVictims(cs []candidate, need int) []candidate {
	sizes := make([]int, len(cs))
	for i, c := range cs {
		sizes[i] = len(c.nodes)
	}
	slices.SortFunc(sizes, func(a, b int) int { return cmp.Compare(b, a) })
	count, sum := 0, 0
	for _, n := range sizes {
		if sum >= need {
			break
		}
		sum += n
		count++
	}
	if sum < need {
		return nil
	}
	pref := slices.Clone(cs)
	slices.SortFunc(pref, victimOrder)
	var out []candidate
	got := 0
	for i, c := range pref {
		if len(out) == count || got >= need {
			break
		}
		// Could the slots after this one still reach need?
		if got+len(c.nodes)+largest(pref[i+1:], count-len(out)-1) < need {
			continue
		}
		out = append(out, c)
		got += len(c.nodes)
	}
	return out
}

// largest is the sum of the k largest node counts in cs.
func largest(cs []candidate, k int) int {
	if k <= 0 {
		return 0
	}
	sizes := make([]int, len(cs))
	for i, c := range cs {
		sizes[i] = len(c.nodes)
	}
	slices.SortFunc(sizes, func(a, b int) int { return cmp.Compare(b, a) })
	sum := 0
	for _, s := range sizes[:min(k, len(sizes))] {
		sum += s
	}
	return sum
}

// victimOrder: lowest priority first, then the most recently started, then
// by id.
func victimOrder(a, b candidate) int {
	return cmp.Or(
		cmp.Compare(a.p.Priority, b.p.Priority),
		b.p.Started.Compare(a.p.Started),
		strings.Compare(a.p.ID, b.p.ID),
	)
}
