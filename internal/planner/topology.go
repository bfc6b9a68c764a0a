package planner

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// Topology-aware placement is part of the one planning pass: a request
// with a topology (Request.Topology, or implicitly the NVLink clique of
// nodes that have one) is started, reserved and given evictions through
// the methods of topoPlan instead of the plain ones, on the same node
// state. Groups are split by domain (a group's nodes share their domains),
// so a domain is a set of groups and the plain startNow and reserve work
// on it unchanged.
//
//   - required: all nodes (or, with a slice size, each slice) in one
//     domain at the level. Start now in the domain that fits with the
//     fewest free nodes (best fit: the least fragmentation); else reserve
//     in the domain where the nodes are free soonest. Its reservation is
//     the domain's nodes, so EASY backfill, which never crosses a
//     reservation, cannot fragment the domain the GPR waits for. No domain
//     large enough: unsatisfiable, with the reason.
//   - preferred: one domain if one fits now; else the fewest domains of
//     the level (the largest first, the last one the tightest fit); else
//     anywhere. Reserved in one domain when that is no later than
//     anywhere.

// TopologyRequest is where a request's nodes must or should sit.
type TopologyRequest struct {
	// Level is the topology level: a node label, or
	// v1alpha1.LabelGPUClique.
	Level string
	// Required: all nodes (each slice) in one domain of Level; else as few
	// domains as possible.
	Required bool
	// SliceSize, with Required: the nodes in slices of this many, each in
	// one domain. 0: one slice.
	SliceSize int
	// Domain pins the nodes to one domain of Level (its
	// domain.TopologyDomain ID): lost-node replacement next to the nodes a
	// GPR keeps.
	Domain string
}

// TopologyOf is the planner's view of a GPR's topology; nil for none.
func TopologyOf(t *v1alpha1.GPRTopology) *TopologyRequest {
	if t.Level() == "" {
		return nil
	}
	return &TopologyRequest{Level: t.Level(), Required: t.Required != "", SliceSize: int(t.SliceSize)}
}

// tdomain is one domain of a level, as the groups of a match inside it.
type tdomain struct {
	id string
	m  match
}

// domainsOf are the domains of level among m's groups, by id; groups
// without the level are in none.
func domainsOf(m *match, level string) []*tdomain {
	if ds, ok := m.topo[level]; ok {
		return ds
	}
	byID := map[string]*tdomain{}
	var ds []*tdomain
	for _, g := range m.groups {
		i := slices.IndexFunc(g.domains, func(d domain.TopologyDomain) bool { return d.Level == level })
		if i < 0 {
			continue
		}
		id := g.domains[i].ID
		d := byID[id]
		if d == nil {
			d = &tdomain{id: id}
			byID[id] = d
			ds = append(ds, d)
		}
		d.m.groups = append(d.m.groups, g)
		d.m.total += g.total
	}
	slices.SortFunc(ds, func(a, b *tdomain) int { return strings.Compare(a.id, b.id) })
	if m.topo == nil {
		m.topo = map[string][]*tdomain{}
	}
	m.topo[level] = ds
	return ds
}

// topoPlan is how one request is placed by topology; nil places it
// anywhere (the plain methods).
type topoPlan struct {
	TopologyRequest
	doms []*tdomain
}

// topologyFor is r's placement by topology: its own, else a required
// NVLink clique when its nodes have cliques and one can hold it (else
// preferred); nil when neither applies.
func (st *state) topologyFor(r *Request, m *match, need int) *topoPlan {
	if r.Topology == nil {
		if need < 2 {
			return nil
		}
		ds := domainsOf(m, v1alpha1.LabelGPUClique)
		if len(ds) == 0 {
			return nil
		}
		most := 0
		for _, d := range ds {
			most = max(most, d.m.total)
		}
		return &topoPlan{TopologyRequest: TopologyRequest{Level: v1alpha1.LabelGPUClique, Required: need <= most}, doms: ds}
	}
	tp := &topoPlan{TopologyRequest: *r.Topology, doms: domainsOf(m, r.Topology.Level)}
	if tp.Domain != "" {
		tp.doms = slices.DeleteFunc(slices.Clone(tp.doms), func(d *tdomain) bool { return d.id != tp.Domain })
	}
	if tp.SliceSize <= 0 || tp.SliceSize >= need || !tp.Required {
		tp.SliceSize = 0
	}
	if !tp.Required && len(tp.doms) == 0 {
		return nil // nothing to prefer
	}
	return tp
}

// unsatisfiable is why no domain could ever hold the request, or "".
func (tp *topoPlan) unsatisfiable(need int) string {
	if tp == nil || !tp.Required {
		return ""
	}
	if len(tp.doms) == 0 {
		if tp.Domain != "" {
			return fmt.Sprintf("no matching node in %s domain %s", tp.Level, tp.Domain)
		}
		return fmt.Sprintf("no matching node has topology level %s", tp.Level)
	}
	most, fit := 0, 0
	for _, d := range tp.doms {
		most = max(most, d.m.total)
		if tp.SliceSize > 0 {
			fit += d.m.total / tp.SliceSize
		}
	}
	if tp.SliceSize > 0 {
		if fit*tp.SliceSize < need {
			return fmt.Sprintf("only %d slices of %d matching nodes fit in %s domains, %d requested",
				fit, tp.SliceSize, tp.Level, need/tp.SliceSize)
		}
		return ""
	}
	if most < need {
		return fmt.Sprintf("no %s domain holds %d matching nodes (the largest has %d)", tp.Level, need, most)
	}
	return ""
}

// freeNow is how many of d's nodes a GPR of dur could start on now:
// unreserved ones and holes that last long enough (startNow's count).
func freeNow(d *tdomain, dur int64) int {
	n := 0
	for _, g := range d.m.groups {
		n += g.nUnreserved
		// Holes are sorted by holeEnd descending.
		n += sort.Search(len(g.holes), func(i int) bool { return g.holes[i].holeEnd < dur })
	}
	return n
}

// fit is one domain's share of a placement.
type fit struct {
	d     *tdomain
	nodes int
}

// startNow starts the request now by its topology (or anywhere, for a nil
// plan); nil if it cannot.
func (tp *topoPlan) startNow(st *state, m *match, need int, dur int64) []string {
	if tp == nil {
		return st.startNow(m, need, dur)
	}
	free := make([]int, len(tp.doms))
	for i, d := range tp.doms {
		free[i] = freeNow(d, dur)
	}
	if tp.SliceSize > 0 {
		return st.startIn(tp.inSlices(free, need), dur)
	}
	// One domain: the tightest that fits.
	best := -1
	for i, f := range free {
		if f >= need && (best < 0 || f < free[best]) {
			best = i
		}
	}
	if best >= 0 {
		return st.startNow(&tp.doms[best].m, need, dur)
	}
	if tp.Required {
		return nil
	}
	if fits := fewestDomains(tp.doms, free, need); fits != nil {
		return st.startIn(fits, dur)
	}
	return st.startNow(m, need, dur)
}

// fewestDomains covers need with the fewest domains of free: the largest
// first, the last one the tightest that covers the rest; nil if all
// together are too few.
func fewestDomains(doms []*tdomain, free []int, need int) []fit {
	order := make([]int, len(doms))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(free[b], free[a]) })
	var fits []fit
	left := need
	for j, i := range order {
		if free[i] == 0 {
			break
		}
		if free[i] >= left {
			// The tightest of the rest that covers what is left.
			last := i
			for _, k := range order[j+1:] {
				if free[k] >= left {
					last = k
				}
			}
			return append(fits, fit{doms[last], left})
		}
		fits = append(fits, fit{doms[i], free[i]})
		left -= free[i]
	}
	return nil
}

// slices covers need in whole slices from free, the domains with the most
// slices first (the fewest domains); nil if they are too few.
func (tp *topoPlan) inSlices(free []int, need int) []fit {
	k := tp.SliceSize
	slots := make([]int, len(free))
	for i, f := range free {
		slots[i] = f / k * k
	}
	return fewestDomains(tp.doms, slots, need)
}

// startIn starts the request on its share of each domain; the shares were
// counted by freeNow, so each start succeeds.
func (st *state) startIn(fits []fit, dur int64) []string {
	if fits == nil {
		return nil
	}
	var names []string
	for _, f := range fits {
		names = append(names, st.startNow(&f.d.m, f.nodes, dur)...)
	}
	slices.Sort(names)
	return names
}

// reserve reserves the request by its topology (anywhere for a nil plan)
// and returns its start, or never.
func (tp *topoPlan) reserve(st *state, m *match, need int, dur, ready int64) int64 {
	if tp == nil {
		return st.reserve(m, need, dur, ready)
	}
	if tp.SliceSize > 0 {
		return tp.reserveSlices(st, need, dur, ready)
	}
	best, bt := (*tdomain)(nil), never
	for _, d := range tp.doms {
		if d.m.total < need {
			continue
		}
		// A domain that cannot start sooner, or as soon with a tighter
		// fit, is not probed.
		if lb := lowerBound(&d.m, need, ready); lb > bt || (lb == bt && (best == nil || d.m.total >= best.m.total)) {
			continue
		}
		if t := st.probe(&d.m, need, ready); t < bt || (t == bt && best != nil && t != never && d.m.total < best.m.total) {
			best, bt = d, t
		}
	}
	if !tp.Required && (best == nil || bt > st.probe(m, need, ready)) {
		return st.reserve(m, need, dur, ready)
	}
	if best == nil || bt == never {
		return never
	}
	return st.reserve(&best.m, need, dur, ready)
}

// reserveSlices reserves need/SliceSize slices at the earliest time, not
// before ready, at which the domains hold that many, all from that time.
func (tp *topoPlan) reserveSlices(st *state, need int, dur, ready int64) int64 {
	k := tp.SliceSize
	// No domain gives more than need nodes: its need soonest are enough.
	// They are merged, soonest first, until the slices are enough.
	avail := make([]int, len(tp.doms))
	rs := st.runs[:0]
	for i, d := range tp.doms {
		for _, g := range d.m.groups {
			avail[i] += g.nUnreserved
			if s := g.smallest(st, need); len(s) > 0 {
				rs = rs.push(run{s: s[:min(need, len(s))], d: i})
			}
		}
	}
	have := 0
	for _, a := range avail {
		have += a / k
	}
	t := ready
	for len(rs) > 0 {
		if rs[0].at() == never || (rs[0].at() > t && have*k >= need) {
			break
		}
		var r run
		rs, r = rs.pop()
		have -= avail[r.d] / k
		avail[r.d]++
		have += avail[r.d] / k
		t = max(t, r.at())
		if r.i+1 < len(r.s) {
			rs = rs.push(run{s: r.s, i: r.i + 1, d: r.d})
		}
	}
	st.runs = rs[:0]
	if have*k < need {
		return never
	}
	for i := range avail {
		avail[i] = avail[i] / k * k
	}
	fits := fewestDomains(tp.doms, avail, need)
	var all []string
	got := t
	for _, f := range fits {
		got = max(got, st.reserve(&f.d.m, f.nodes, dur, t))
		if st.placed != nil {
			all = append(all, (*st.placed)[st.placeID]...)
		}
	}
	if st.placed != nil {
		slices.Sort(all)
		(*st.placed)[st.placeID] = all
	}
	return got
}

// probe is when reserve(m, need, _, ready) would start, without reserving:
// not before ready, once need nodes are free (those free now, then the
// busy ones in the order they free up).
func (st *state) probe(m *match, need int, ready int64) int64 {
	free := 0
	for _, g := range m.groups {
		free += g.nUnreserved
	}
	k := need - free
	if k <= 0 {
		return ready
	}
	if at := st.kthSoonest(m.groups, k); at != never {
		return max(ready, at)
	}
	return never
}

// lowerBound is no later than probe(m, need, ready): ready when enough
// nodes are free now, else when the first busy one frees up (never when
// none will).
func lowerBound(m *match, need int, ready int64) int64 {
	free, first := 0, never
	for _, g := range m.groups {
		free += g.nUnreserved
		if len(g.heap) > 0 {
			first = min(first, g.heap[0].freeAt)
		}
	}
	if free >= need {
		return ready
	}
	if first == never {
		return never
	}
	return max(ready, first)
}

// kthSoonest is the k-th smallest freeAt (k >= 1) over the groups' heaps,
// from their cached smallest values; never when they hold fewer. It keeps
// the k smallest seen so far: most groups' first value is already later,
// so each costs one comparison.
func (st *state) kthSoonest(groups []*group, k int) int64 {
	best := st.soon[:0] // ascending, at most k
	for _, g := range groups {
		for _, v := range g.smallest(st, k) {
			if len(best) == k && v >= best[k-1] {
				break
			}
			if len(best) < k {
				best = append(best, v)
			}
			i := len(best) - 1
			for ; i > 0 && best[i-1] > v; i-- {
				best[i] = best[i-1]
			}
			best[i] = v
		}
	}
	st.soon = best
	if len(best) < k {
		return never
	}
	return best[k-1]
}

// soonest caches a group's smallest freeAt values while its version
// stays: most groups are probed by many requests between changes.
type soonest struct {
	ver  uint64 // the group's ver + 1 when valid
	at   []int64
	full bool // at holds every heap node
}

// smallest is at least the k smallest freeAt values of g's heap,
// ascending (all of them when fewer).
func (g *group) smallest(st *state, k int) []int64 {
	c := &g.soon
	if c.ver != g.ver+1 {
		c.ver, c.at, c.full = g.ver+1, c.at[:0], false
	}
	if len(c.at) < k && !c.full {
		want := max(k, 16)
		c.at = st.smallestFreeAt(g.heap, want, c.at[:0])
		c.full = len(c.at) < want
	}
	return c.at
}

// smallestFreeAt appends the k smallest freeAt values of h to out,
// ascending, walking the heap from its root without changing it.
func (st *state) smallestFreeAt(h nodeHeap, k int, out []int64) []int64 {
	f := st.front[:0]
	if len(h) > 0 {
		f = f.push(cursor{h, 0})
	}
	for ; k > 0 && len(f) > 0; k-- {
		var c cursor
		f, c = f.pop()
		out = append(out, c.at())
		if j := 2*c.i + 1; j < len(c.h) {
			f = f.push(cursor{c.h, j})
		}
		if j := 2*c.i + 2; j < len(c.h) {
			f = f.push(cursor{c.h, j})
		}
	}
	st.front = f[:0]
	return out
}

// cursor is one node of a group's heap, run one value of a sorted list;
// frontier and runs are binary min-heaps of them (minHeap; hand-written:
// container/heap's interface allocates).
type cursor struct {
	h nodeHeap
	i int
}

func (c cursor) at() int64 { return c.h[c.i].freeAt }

type run struct {
	s []int64
	i int
	d int // the domain, for reserveSlices
}

func (r run) at() int64 { return r.s[r.i] }

type (
	frontier = minHeap[cursor]
	runs     = minHeap[run]
)

// minHeap is a binary min-heap by at().
type minHeap[T interface{ at() int64 }] []T

func (f minHeap[T]) push(c T) minHeap[T] {
	f = append(f, c)
	for i := len(f) - 1; i > 0; {
		p := (i - 1) / 2
		if f[p].at() <= f[i].at() {
			break
		}
		f[p], f[i] = f[i], f[p]
		i = p
	}
	return f
}

func (f minHeap[T]) pop() (minHeap[T], T) {
	top := f[0]
	last := len(f) - 1
	f[0] = f[last]
	f = f[:last]
	for i := 0; ; {
		l, s := 2*i+1, i
		if l < len(f) && f[l].at() < f[s].at() {
			s = l
		}
		if r := l + 1; r < len(f) && f[r].at() < f[s].at() {
			s = r
		}
		if s == i {
			break
		}
		f[i], f[s] = f[s], f[i]
		i = s
	}
	return f, top
}

// evictFor evicts for the request inside one domain where it can (the
// domain needing the fewest victims); a preferred or no topology falls
// back to victims anywhere.
func (tp *topoPlan) evictFor(st *state, r *Request, m *match, need int, dur int64, plan *Plan) []string {
	if tp == nil || tp.SliceSize > 0 {
		if tp != nil && tp.Required {
			return nil // slices are not evicted for
		}
		return st.evictFor(r, m, need, dur, plan)
	}
	if !r.CanEvict || st.pre == nil {
		return nil
	}
	var best []candidate
	for _, d := range tp.doms {
		if d.m.total < need {
			continue
		}
		if v := chooseVictims(st.eligible(st.candidates(&d.m), r), need); v != nil && (best == nil || len(v) < len(best)) {
			best = v
		}
	}
	if best == nil {
		if tp.Required {
			return nil
		}
		return st.evictFor(r, m, need, dur, plan)
	}
	return st.evict(r, best, need, dur, plan)
}

// domainKey identifies a node's domains: nodes of one kind and one key
// form one group.
func domainKey(ds []domain.TopologyDomain) string {
	switch len(ds) {
	case 0:
		return ""
	case 1:
		return ds[0].ID
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return strings.Join(ids, "\x00")
}

// WithTopologies makes InputOf read the nodes' topology domains under ts
// (domain.TopologyIndex of the Topology objects). Default: the built-in
// topologies only.
func WithTopologies(ts domain.Topologies) InputOption {
	return func(o *inputOptions) { o.topologies = ts }
}

// PinToDomainOf pins r to the domain node is in at r's level (for a GPR
// without a topology, node's NVLink clique), so that replacements for a
// GPR's lost nodes sit beside the nodes it keeps. It reports false, and
// leaves r as it is, when node has no domain there.
func PinToDomainOf(in Input, r *Request, node string) bool {
	level := v1alpha1.LabelGPUClique
	if r.Topology != nil {
		level = r.Topology.Level
	}
	for _, n := range in.Nodes {
		if n.Name != node {
			continue
		}
		for _, d := range n.Domains {
			if d.Level == level {
				t := TopologyRequest{Level: level, Required: true}
				if r.Topology != nil {
					t = *r.Topology
				}
				t.Domain, t.SliceSize = d.ID, 0
				r.Topology = &t
				return true
			}
		}
	}
	return false
}
