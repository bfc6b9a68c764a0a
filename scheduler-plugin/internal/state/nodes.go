package state

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// NodeIndex maps workspaces to the nodes bound to them (node label
// gpuspace.io/workspace). Like GPRIndex it is fed by the node informer and
// by the plugin's queueing hints, newest resource version wins.
type NodeIndex struct {
	mu          sync.RWMutex
	byWorkspace map[string]sets.Set[string]
	nodes       map[string]nodeEntry
}

type nodeEntry struct {
	workspace string
	rv        string
}

// NewNodeIndex returns an empty index.
func NewNodeIndex() *NodeIndex {
	return &NodeIndex{byWorkspace: map[string]sets.Set[string]{}, nodes: map[string]nodeEntry{}}
}

// Upsert records node's binding unless a newer copy was seen. It reports
// whether the node's workspace changed.
func (x *NodeIndex) Upsert(node *v1.Node) bool {
	ws := node.Labels[gpuspacev1alpha1.LabelWorkspace]
	x.mu.Lock()
	defer x.mu.Unlock()
	old, had := x.nodes[node.Name]
	if had && !newer(node.ResourceVersion, old.rv) {
		return false
	}
	x.nodes[node.Name] = nodeEntry{workspace: ws, rv: node.ResourceVersion}
	if had && old.workspace == ws {
		return false
	}
	if had {
		x.unlink(node.Name, old.workspace)
	}
	if ws != "" {
		set := x.byWorkspace[ws]
		if set == nil {
			set = sets.New[string]()
			x.byWorkspace[ws] = set
		}
		set.Insert(node.Name)
	}
	return true
}

// Delete forgets the node.
func (x *NodeIndex) Delete(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old, had := x.nodes[name]
	if !had {
		return
	}
	delete(x.nodes, name)
	x.unlink(name, old.workspace)
}

func (x *NodeIndex) unlink(name, ws string) {
	if ws == "" {
		return
	}
	if set := x.byWorkspace[ws]; set != nil {
		set.Delete(name)
		if set.Len() == 0 {
			delete(x.byWorkspace, ws)
		}
	}
}

// Nodes returns a copy of the set of nodes bound to ws (nil when none).
func (x *NodeIndex) Nodes(ws string) sets.Set[string] {
	x.mu.RLock()
	defer x.mu.RUnlock()
	set := x.byWorkspace[ws]
	if set.Len() == 0 {
		return nil
	}
	return set.Clone()
}

// Count returns how many nodes are bound to ws.
func (x *NodeIndex) Count(ws string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.byWorkspace[ws].Len()
}
