package domain

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// conflictHolder is the BoundTo of a node claimed by several GPRs: no GPR
// has this id ("~" is not allowed in object names), so the planner treats
// the node as held for ever.
const conflictHolder = "~conflict"

// PlannerNode is a GPU node as the planner sees it.
func PlannerNode(n GPUNode, boundTo string) planner.Node {
	return planner.Node{
		Name: n.Name, Cluster: n.Cluster, InstanceType: n.InstanceType,
		Product: n.Product, Shape: n.Shape, MemoryMiB: n.MemoryMiB, GPUs: n.GPUs,
		Healthy:     n.Ready && n.HealthyGPUs >= n.GPUs,
		Schedulable: n.Schedulable, BoundTo: boundTo,
	}
}

// Request is a queued GPR as the planner sees it. It fails when the GPR's
// exitDuration does not parse: such a GPR is failed, never planned.
func Request(g *v1alpha1.GPUProvisionRequest) (planner.Request, error) {
	d, err := ExitDuration(g)
	if err != nil {
		return planner.Request{}, err
	}
	return planner.Request{
		ID: g.Name, Workspace: g.Spec.Workspace, Cluster: g.Spec.ClusterName,
		InstanceType: g.Spec.InstanceType, GPUShape: g.Spec.GPUShape,
		MemoryPerGPU: g.Spec.MemoryPerGPU, GPUsPerNode: g.Spec.NumberOfGPUs,
		Nodes: NodeCount(g), Priority: Priority(g),
		Created: g.CreationTimestamp.Time, Duration: d,
	}, nil
}

// Input is the planner's input: provisioned GPRs hold the nodes in their
// status until their end, queued GPRs are requests, and nodes carry their
// GPU facts and holder (from GPR status alone). Queued GPRs that cannot be
// planned are returned in invalid with the reason, by name.
func Input(now time.Time, gprs []*v1alpha1.GPUProvisionRequest, nodes []*corev1.Node, defaultCluster string) (in planner.Input, invalid map[string]string) {
	in.Now = now
	holders, conflicts := Holders(gprs)
	for _, g := range gprs {
		switch {
		case IsProvisioned(g):
			end, ok := End(g)
			if !ok {
				end = now // released by the controller's next pass
			}
			in.Provisioned = append(in.Provisioned, planner.Provisioned{
				ID: g.Name, Workspace: g.Spec.Workspace, Nodes: slices.Clone(g.Status.Nodes), End: end,
			})
		case IsQueued(g):
			r, err := Request(g)
			if err != nil {
				if invalid == nil {
					invalid = map[string]string{}
				}
				invalid[g.Name] = err.Error()
				continue
			}
			in.Queued = append(in.Queued, r)
		}
	}
	conflicted := make(map[string]bool, len(conflicts))
	for _, c := range conflicts {
		conflicted[c.Node] = true
	}
	in.Nodes = make([]planner.Node, 0, len(nodes))
	for _, n := range nodes {
		f, ok := GPUFacts(n, defaultCluster)
		if !ok {
			continue
		}
		var bound string
		switch {
		case conflicted[n.Name]:
			bound = conflictHolder
		case holders[n.Name] != nil:
			bound = holders[n.Name].Name
		}
		in.Nodes = append(in.Nodes, PlannerNode(f, bound))
	}
	return in, invalid
}
