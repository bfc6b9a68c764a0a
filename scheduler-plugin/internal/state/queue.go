package state

import (
	"container/heap"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// workspaceGPRs is one workspace's GPRs in the index: all of them, the
// provisioned ones, and a heap of the queued ones by queue order, so the
// head of its queue is found without walking them.
type workspaceGPRs struct {
	members     map[string]struct{}
	provisioned map[string]struct{}
	// queued counts the queued members.
	queued int
	// queue holds an entry for each queued member, at its place when it
	// was added, and stale entries: a GPR that left the queue or moved in
	// it is not taken out, but skipped (and dropped) when it comes to the
	// top (head). Every queued member has an entry at its current place.
	queue queueHeap
}

// add records g in the workspace; push says whether its queue entry must
// be pushed (false when the entry at its place is there already).
func (w *workspaceGPRs) add(g GPR, push bool) {
	w.members[g.Name] = struct{}{}
	switch g.Phase {
	case gpuspacev1alpha1.GPRProvisioned:
		w.provisioned[g.Name] = struct{}{}
	case gpuspacev1alpha1.GPRQueued:
		w.queued++
		if push {
			heap.Push(&w.queue, queueEntry{name: g.Name, key: g.queueKey()})
		}
	}
}

// remove forgets g; its queue entry, if any, goes stale.
func (w *workspaceGPRs) remove(g GPR) {
	delete(w.members, g.Name)
	delete(w.provisioned, g.Name)
	if g.Phase == gpuspacev1alpha1.GPRQueued {
		w.queued--
	}
}

// head is the workspace's queued GPR that starts next, dropping the stale
// entries above it. Once stale entries outnumber the live ones, the heap is
// rebuilt from the members, so it stays within a constant of their number.
func (w *workspaceGPRs) head(byName map[string]GPR, ws string) (GPR, bool) {
	if len(w.queue) > 2*w.queued+64 {
		w.rebuild(byName)
	}
	for len(w.queue) > 0 {
		top := w.queue[0]
		if g, ok := byName[top.name]; ok && g.Workspace == ws && g.Phase == gpuspacev1alpha1.GPRQueued &&
			g.queueKey().Compare(top.key) == 0 {
			return g, true
		}
		heap.Pop(&w.queue)
	}
	return GPR{}, false
}

// rebuild makes the heap anew from the queued members.
func (w *workspaceGPRs) rebuild(byName map[string]GPR) {
	w.queue = w.queue[:0]
	for name := range w.members {
		if g := byName[name]; g.Phase == gpuspacev1alpha1.GPRQueued {
			w.queue = append(w.queue, queueEntry{name: name, key: g.queueKey()})
		}
	}
	heap.Init(&w.queue)
}

// queueEntry is a GPR's place in its workspace's queue.
type queueEntry struct {
	name string
	key  domain.QueueKey
}

// queueHeap is a min-heap of queue places: the GPR that starts first on
// top (container/heap).
type queueHeap []queueEntry

func (h queueHeap) Len() int           { return len(h) }
func (h queueHeap) Less(i, j int) bool { return h[i].key.Compare(h[j].key) < 0 }
func (h queueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *queueHeap) Push(x any)        { *h = append(*h, x.(queueEntry)) }
func (h *queueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
