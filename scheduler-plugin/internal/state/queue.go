package state

import (
	"container/heap"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// workspaceGPRs is one workspace's GPRs in the index: all of them, the
// provisioned ones, and a heap of the queued ones by queue order, so the
// head of its queue is found without walking them.
type workspaceGPRs struct {
	members     map[string]struct{}
	provisioned map[string]struct{}
	// queue holds exactly the queued members, each as the index last
	// recorded it: an update is a remove and an add, so the heap never
	// holds a stale copy (a lazy heap that skipped stale entries lost
	// live ones when a workspace was emptied and refilled by one update).
	queue queueHeap
}

func newWorkspaceGPRs() *workspaceGPRs {
	return &workspaceGPRs{
		members:     map[string]struct{}{},
		provisioned: map[string]struct{}{},
		queue:       queueHeap{at: map[string]*queued{}},
	}
}

// add records g in the workspace: O(log n).
func (w *workspaceGPRs) add(g GPR) {
	w.members[g.Name] = struct{}{}
	switch g.Phase {
	case gpuspacev1alpha1.GPRProvisioned:
		w.provisioned[g.Name] = struct{}{}
	case gpuspacev1alpha1.GPRQueued:
		heap.Push(&w.queue, &queued{GPR: g})
	}
}

// remove forgets g, whatever phase the workspace recorded it in: O(log n).
func (w *workspaceGPRs) remove(g GPR) {
	delete(w.members, g.Name)
	delete(w.provisioned, g.Name)
	if e, ok := w.queue.at[g.Name]; ok {
		heap.Remove(&w.queue, e.index)
	}
}

// head is the workspace's queued GPR that starts next.
func (w *workspaceGPRs) head() (GPR, bool) {
	if len(w.queue.entries) == 0 {
		return GPR{}, false
	}
	return w.queue.entries[0].GPR, true
}

// queued is a GPR in its workspace's queue and its index in the heap, kept
// by the heap's moves, so that it can be taken out wherever it is.
type queued struct {
	GPR
	index int
}

// queueHeap is a min-heap of queued GPRs by queue order (container/heap),
// the one that starts first on top; at finds a GPR's entry by name.
type queueHeap struct {
	entries []*queued
	at      map[string]*queued
}

func (h *queueHeap) Len() int { return len(h.entries) }
func (h *queueHeap) Less(i, j int) bool {
	return before(h.entries[i].GPR, h.entries[j].GPR)
}
func (h *queueHeap) Swap(i, j int) {
	h.entries[i], h.entries[j] = h.entries[j], h.entries[i]
	h.entries[i].index, h.entries[j].index = i, j
}
func (h *queueHeap) Push(x any) {
	e := x.(*queued)
	e.index = len(h.entries)
	h.entries = append(h.entries, e)
	h.at[e.Name] = e
}
func (h *queueHeap) Pop() any {
	last := len(h.entries) - 1
	e := h.entries[last]
	h.entries[last] = nil
	h.entries = h.entries[:last]
	delete(h.at, e.Name)
	return e
}
