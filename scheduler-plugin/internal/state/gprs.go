package state

import (
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// GPR is what the plugins need to know about one GPUProvisionRequest.
type GPR struct {
	Name      string
	Workspace string
	Priority  int32
	Phase     gpuspacev1alpha1.ProvisioningStatus
	// EstimatedStart is the likely start the controller stored (the EGS
	// field); LatestStart the start if every GPR ahead holds its nodes
	// for its whole request. Zero when not estimated.
	EstimatedStart  time.Time
	LatestStart     time.Time
	Created         time.Time
	ResourceVersion string
	// Nodes are the nodes the GPR holds by its status (domain.Claims):
	// none unless it is provisioned.
	Nodes []string
	// Template is the GPRTemplate auto-GPR made the GPR from; empty for a
	// GPR someone created.
	Template string
}

// GPRFrom extracts a GPR from the API object; the domain package
// interprets it (phase, effective priority, claimed nodes).
func GPRFrom(g *gpuspacev1alpha1.GPUProvisionRequest) GPR {
	out := GPR{
		Name:            g.Name,
		Workspace:       g.Spec.Workspace,
		Priority:        domain.Priority(g),
		Phase:           domain.Phase(g),
		Created:         domain.QueueCreated(g),
		ResourceVersion: g.ResourceVersion,
		Nodes:           domain.Claims(g),
	}
	if g.Labels[gpuspacev1alpha1.LabelAutoGPR] != "" {
		out.Template = g.Annotations[gpuspacev1alpha1.AnnotationTemplate]
	}
	if t := g.Status.EstimatedStartTime; t != nil {
		out.EstimatedStart = t.Time
	}
	if t := g.Status.LatestStartTime; t != nil {
		out.LatestStart = t.Time
	}
	return out
}

// Summary is a workspace's GPRs as the plugins see them.
type Summary struct {
	// Provisioned is the workspace's provisioned GPR (at most one per
	// workspace); its Name is empty when there is none.
	Provisioned GPR
	// Next is the queued GPR that starts next: the head of the workspace's
	// queue (priority, then age). Its Name is empty when none is queued.
	Next GPR
	// Priority orders the workspace's pods in the scheduling queue: the
	// provisioned GPR's priority, else the next queued one's, else 0.
	Priority int32
	// Nodes are the nodes the workspace's provisioned GPRs name in their
	// status (nil when none); shared, never modified. A node also claimed
	// by another workspace's GPR is in it too: Binding reports the
	// conflict.
	Nodes sets.Set[string]
}

// GPRIndex indexes GPRs by workspace and by the nodes they hold. It is fed
// by an informer and, so that a queueing hint never acts on a stale view,
// by the hints themselves; the resource version decides which of two
// copies of an object is newer.
type GPRIndex struct {
	mu          sync.RWMutex
	byName      map[string]GPR
	byWorkspace map[string]*workspaceGPRs
	summaries   map[string]Summary
	// claims maps a node to the provisioned GPRs whose status names it:
	// its holder, or a conflict when there are several.
	claims map[string][]string
	// deleted remembers deletions, so that a late copy of a deleted GPR
	// (from the other watch) does not resurrect it.
	deleted map[string]tombstone
	// expiry is the deletions in the order they were made, so the
	// expired ones are dropped from its front (expire): amortised O(1)
	// per Delete, where sweeping the whole map on each would make a bulk
	// delete quadratic. An entry whose tombstone was replaced or removed
	// since is skipped. expiry[:expired] are dropped already.
	expiry  []tombstone
	expired int
	// now is the clock of tombstones (time.Now; tests set it).
	now func() time.Time
}

type tombstone struct {
	name string
	rv   string
	at   time.Time
}

// tombstoneTTL bounds how long deletions are remembered: far longer than
// two watches of the same apiserver can be apart.
const tombstoneTTL = 10 * time.Minute

// NewGPRIndex returns an empty index.
func NewGPRIndex() *GPRIndex {
	return &GPRIndex{
		byName:      map[string]GPR{},
		byWorkspace: map[string]*workspaceGPRs{},
		summaries:   map[string]Summary{},
		claims:      map[string][]string{},
		deleted:     map[string]tombstone{},
		now:         time.Now,
	}
}

// stale reports whether a copy at resource version rv is no news to an
// index that holds (or deleted) version have: the same version, or an
// older one by domain.OlderVersion. Versions that cannot be compared (fake
// clients) are applied.
func stale(rv, have string) bool {
	return (rv != "" && rv == have) || domain.OlderVersion(rv, have)
}

// Upsert records g unless the index already holds a newer copy. It reports
// whether the index changed.
func (x *GPRIndex) Upsert(g GPR) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t, ok := x.deleted[g.Name]; ok {
		if stale(g.ResourceVersion, t.rv) {
			return false
		}
		delete(x.deleted, g.Name)
	}
	old, had := x.byName[g.Name]
	if had {
		if stale(g.ResourceVersion, old.ResourceVersion) {
			return false
		}
		x.forget(old)
	}
	x.byName[g.Name] = g
	for _, n := range g.Nodes {
		x.claims[n] = append(x.claims[n], g.Name)
	}
	w := x.byWorkspace[g.Workspace]
	if w == nil {
		w = newWorkspaceGPRs()
		x.byWorkspace[g.Workspace] = w
	}
	w.add(g)
	if had && old.Workspace != g.Workspace {
		x.resummarise(old.Workspace)
	}
	x.resummarise(g.Workspace)
	return true
}

// Delete forgets the GPR name, deleted at resource version rv.
func (x *GPRIndex) Delete(name, rv string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now()
	x.expire(now)
	t := tombstone{name: name, rv: rv, at: now}
	x.deleted[name] = t
	x.expiry = append(x.expiry, t)
	old, had := x.byName[name]
	if !had {
		return false
	}
	x.unlink(old)
	return true
}

// expire forgets the deletions older than tombstoneTTL; the caller holds
// mu. Deletions are appended in time order, so the expired ones are a
// prefix of x.expiry.
func (x *GPRIndex) expire(now time.Time) {
	for ; x.expired < len(x.expiry) && now.Sub(x.expiry[x.expired].at) > tombstoneTTL; x.expired++ {
		t := x.expiry[x.expired]
		if cur, ok := x.deleted[t.name]; ok && cur == t {
			delete(x.deleted, t.name)
		}
		x.expiry[x.expired] = tombstone{}
	}
	// Compact once the dropped prefix is half the slice: each entry is
	// copied O(1) times on average.
	if x.expired > 0 && x.expired >= len(x.expiry)/2 {
		x.expiry = x.expiry[:copy(x.expiry, x.expiry[x.expired:])]
		x.expired = 0
	}
}

// unlink drops g from the index; the caller holds mu.
func (x *GPRIndex) unlink(g GPR) {
	x.forget(g)
	delete(x.byName, g.Name)
	x.resummarise(g.Workspace)
}

// forget drops g's claims and its place in its workspace, but not its
// entry in byName; the caller holds mu and resummarises.
func (x *GPRIndex) forget(g GPR) {
	x.unclaim(g)
	w := x.byWorkspace[g.Workspace]
	if w == nil {
		return
	}
	w.remove(g)
	if len(w.members) == 0 {
		delete(x.byWorkspace, g.Workspace)
	}
}

// unclaim drops g's claims on nodes; the caller holds mu.
func (x *GPRIndex) unclaim(g GPR) {
	for _, n := range g.Nodes {
		c := slices.DeleteFunc(x.claims[n], func(name string) bool { return name == g.Name })
		if len(c) == 0 {
			delete(x.claims, n)
		} else {
			x.claims[n] = c
		}
	}
}

// resummarise recomputes one workspace's summary; the caller holds mu. It
// costs the workspace's provisioned GPRs (one, by design) and O(1) for the
// head of its queue — not a walk of its GPRs, which would make a bulk
// delete of one workspace's queue quadratic.
func (x *GPRIndex) resummarise(ws string) {
	w := x.byWorkspace[ws]
	if w == nil {
		delete(x.summaries, ws)
		return
	}
	var s Summary
	for name := range w.provisioned {
		s.addProvisioned(x.byName[name])
	}
	if next, ok := w.head(); ok {
		s.Next = next
	}
	s.setPriority()
	if s.Provisioned.Name == "" && s.Next.Name == "" {
		delete(x.summaries, ws)
		return
	}
	x.summaries[ws] = s
}

// addProvisioned counts g, a provisioned GPR of the workspace, in s.
func (s *Summary) addProvisioned(g GPR) {
	// One per workspace by design; if two are seen during a handover,
	// the higher-priority (then older) one wins.
	if s.Provisioned.Name == "" || before(g, s.Provisioned) {
		s.Provisioned = g
	}
	if len(g.Nodes) > 0 && s.Nodes == nil {
		s.Nodes = sets.New[string]()
	}
	s.Nodes.Insert(g.Nodes...)
}

// setPriority sets s.Priority from its provisioned and next GPRs.
func (s *Summary) setPriority() {
	switch {
	case s.Provisioned.Name != "":
		s.Priority = s.Provisioned.Priority
	case s.Next.Name != "":
		s.Priority = s.Next.Priority
	}
}

// before orders a workspace's queue as the planner does (domain.QueueKey).
func before(a, b GPR) bool {
	return a.queueKey().Compare(b.queueKey()) < 0
}

// queueKey is the GPR's place in the queue.
func (g GPR) queueKey() domain.QueueKey {
	return domain.QueueKey{Priority: g.Priority, Created: g.Created, Name: g.Name}
}

// Workspace returns the summary of ws's GPRs.
func (x *GPRIndex) Workspace(ws string) Summary {
	x.mu.RLock()
	s := x.summaries[ws]
	x.mu.RUnlock()
	return s
}

// Binding is node's binding: the provisioned GPRs that name it in their
// status and its gpuspace.io/workspace label. O(1), allocation-free.
func (x *GPRIndex) Binding(node, label string) domain.NodeBinding {
	b := domain.NodeBinding{Label: label}
	x.mu.RLock()
	c := x.claims[node]
	b.Claimants = len(c)
	if len(c) == 1 {
		b.Holder = x.byName[c[0]].Workspace
	}
	x.mu.RUnlock()
	return b
}

// Get returns the GPR name.
func (x *GPRIndex) Get(name string) (GPR, bool) {
	x.mu.RLock()
	g, ok := x.byName[name]
	x.mu.RUnlock()
	return g, ok
}
