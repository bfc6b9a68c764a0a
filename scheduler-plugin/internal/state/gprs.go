package state

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/resourceversion"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// GPR is what the plugins need to know about one GPUProvisionRequest.
type GPR struct {
	Name            string
	Workspace       string
	Priority        int32
	Phase           gpuspacev1alpha1.ProvisioningStatus
	EstimatedStart  time.Time
	Created         time.Time
	ResourceVersion string
}

// GPRFrom extracts a GPR from the API object.
func GPRFrom(g *gpuspacev1alpha1.GPUProvisionRequest) GPR {
	out := GPR{
		Name:            g.Name,
		Workspace:       g.Spec.Workspace,
		Priority:        g.Spec.Priority,
		Phase:           g.Status.ProvisioningStatus,
		Created:         g.CreationTimestamp.Time,
		ResourceVersion: g.ResourceVersion,
	}
	if out.Priority == 0 {
		out.Priority = gpuspacev1alpha1.DefaultPriority
	}
	if out.Phase == "" {
		// A GPR the controller has not looked at yet waits like a queued one.
		out.Phase = gpuspacev1alpha1.GPRQueued
	}
	if t := g.Status.EstimatedStartTime; t != nil {
		out.EstimatedStart = t.Time
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
}

// GPRIndex indexes GPRs by workspace. It is fed by an informer and, so that
// a queueing hint never acts on a stale view, by the hints themselves; the
// resource version decides which of two copies of an object is newer.
type GPRIndex struct {
	mu          sync.RWMutex
	byName      map[string]GPR
	byWorkspace map[string]map[string]struct{}
	summaries   map[string]Summary
	// deleted remembers deletions, so that a late copy of a deleted GPR
	// (from the other watch) does not resurrect it.
	deleted map[string]tombstone
}

type tombstone struct {
	rv string
	at time.Time
}

// tombstoneTTL bounds how long deletions are remembered: far longer than
// two watches of the same apiserver can be apart.
const tombstoneTTL = 10 * time.Minute

// NewGPRIndex returns an empty index.
func NewGPRIndex() *GPRIndex {
	return &GPRIndex{
		byName:      map[string]GPR{},
		byWorkspace: map[string]map[string]struct{}{},
		summaries:   map[string]Summary{},
		deleted:     map[string]tombstone{},
	}
}

// newer reports whether resource version a is newer than b. Versions that
// cannot be compared (fake clients) count as newer, so updates are applied.
func newer(a, b string) bool {
	if b == "" || a == "" {
		return true
	}
	c, err := resourceversion.CompareResourceVersion(a, b)
	if err != nil {
		return a != b
	}
	return c > 0
}

// Upsert records g unless the index already holds a newer copy. It reports
// whether the index changed.
func (x *GPRIndex) Upsert(g GPR) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t, ok := x.deleted[g.Name]; ok {
		if t.rv != "" && g.ResourceVersion != "" && !newer(g.ResourceVersion, t.rv) {
			return false
		}
		delete(x.deleted, g.Name)
	}
	old, had := x.byName[g.Name]
	if had {
		if !newer(g.ResourceVersion, old.ResourceVersion) {
			return false
		}
		if old.Workspace != g.Workspace {
			x.unlink(old)
		}
	}
	x.byName[g.Name] = g
	set := x.byWorkspace[g.Workspace]
	if set == nil {
		set = map[string]struct{}{}
		x.byWorkspace[g.Workspace] = set
	}
	set[g.Name] = struct{}{}
	x.resummarise(g.Workspace)
	return true
}

// Delete forgets the GPR name, deleted at resource version rv.
func (x *GPRIndex) Delete(name, rv string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	for n, t := range x.deleted {
		if now.Sub(t.at) > tombstoneTTL {
			delete(x.deleted, n)
		}
	}
	x.deleted[name] = tombstone{rv: rv, at: now}
	old, had := x.byName[name]
	if !had {
		return false
	}
	x.unlink(old)
	return true
}

func (x *GPRIndex) unlink(g GPR) {
	delete(x.byName, g.Name)
	if set := x.byWorkspace[g.Workspace]; set != nil {
		delete(set, g.Name)
		if len(set) == 0 {
			delete(x.byWorkspace, g.Workspace)
		}
	}
	x.resummarise(g.Workspace)
}

// resummarise recomputes one workspace's summary; the caller holds mu.
func (x *GPRIndex) resummarise(ws string) {
	var s Summary
	for name := range x.byWorkspace[ws] {
		g := x.byName[name]
		switch g.Phase {
		case gpuspacev1alpha1.GPRProvisioned:
			// One per workspace by design; if two are seen during a
			// handover, the higher-priority (then older) one wins.
			if s.Provisioned.Name == "" || before(g, s.Provisioned) {
				s.Provisioned = g
			}
		case gpuspacev1alpha1.GPRQueued:
			if s.Next.Name == "" || before(g, s.Next) {
				s.Next = g
			}
		}
	}
	switch {
	case s.Provisioned.Name != "":
		s.Priority = s.Provisioned.Priority
	case s.Next.Name != "":
		s.Priority = s.Next.Priority
	}
	if s == (Summary{}) {
		delete(x.summaries, ws)
		return
	}
	x.summaries[ws] = s
}

// before orders a workspace's queue: higher priority first, then older,
// then by name so the order is total.
func before(a, b GPR) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.Name < b.Name
}

// Workspace returns the summary of ws's GPRs.
func (x *GPRIndex) Workspace(ws string) Summary {
	x.mu.RLock()
	s := x.summaries[ws]
	x.mu.RUnlock()
	return s
}

// Get returns the GPR name.
func (x *GPRIndex) Get(name string) (GPR, bool) {
	x.mu.RLock()
	g, ok := x.byName[name]
	x.mu.RUnlock()
	return g, ok
}
