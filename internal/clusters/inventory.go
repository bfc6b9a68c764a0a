package clusters

import (
	"context"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// InventoryComplete reports whether Nodes returns every registered
// cluster's nodes: each Cluster has a worker whose cache synced and whose
// last heartbeat succeeded. Only then is a node missing from the inventory
// deleted rather than out of sight — a worker that is unreachable, whose
// credential was revoked, or that is still starting hides its nodes, and
// the GPRs holding them must keep them.
func (r *Registry) InventoryComplete(ctx context.Context) bool {
	var list v1alpha1.ClusterList
	if err := r.hub.List(ctx, &list); err != nil {
		return false
	}
	for i := range list.Items {
		name := list.Items[i].Name
		if name == r.opts.Local {
			continue
		}
		w := r.worker(name)
		if w == nil {
			return false
		}
		if synced, st := w.status(); !synced || !st.ready {
			return false
		}
	}
	return true
}
