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
// status until their end, queued GPRs are requests (except those their
// workspace's policy holds), and nodes carry their
// GPU facts and holder (from GPR status alone). Queued GPRs that cannot be
// planned are returned in invalid with the reason, by name.
func Input(now time.Time, gprs []*v1alpha1.GPUProvisionRequest, nodes []*corev1.Node, defaultCluster string, opts ...InputOption) (in planner.Input, invalid map[string]string) {
	o := inputOptions{policy: func(string) *v1alpha1.WorkspacePolicy { return nil }}
	for _, opt := range opts {
		opt(&o)
	}
	in.Now = now
	holders, conflicts := Holders(gprs)
	for _, g := range gprs {
		switch {
		case IsProvisioned(g):
			end, ok := End(g)
			if !ok {
				end = now // released by the controller's next pass
			}
			p := planner.Provisioned{
				ID: g.Name, Workspace: g.Spec.Workspace, Nodes: slices.Clone(g.Status.Nodes), End: end,
				Priority: Priority(g),
			}
			if t := g.Status.StartTimestamp; t != nil {
				p.Started = t.Time
				p.Evictable = !now.Before(t.Add(MinRuntimeBeforeEviction(o.policy(g.Spec.Workspace))))
			}
			in.Provisioned = append(in.Provisioned, p)
		case PolicyHeld(g):
			// Not planned until its workspace's policy allows it.
		case IsQueued(g):
			r, err := Request(g)
			if err != nil {
				if invalid == nil {
					invalid = map[string]string{}
				}
				invalid[g.Name] = err.Error()
				continue
			}
			r.CanEvict = CanEvict(g, o.policy(g.Spec.Workspace))
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

// CanEvict reports whether a queued GPR may evict lower-priority GPRs:
// enableEviction, in a workspace whose policy allows eviction (nil: no
// policy, allowed).
func CanEvict(g *v1alpha1.GPUProvisionRequest, policy *v1alpha1.WorkspacePolicy) bool {
	return g.Spec.EnableEviction && EvictionAllowed(policy)
}

// InputOption changes how Input reads GPRs.
type InputOption func(*inputOptions)

type inputOptions struct {
	policy func(workspace string) *v1alpha1.WorkspacePolicy
}

// WithPolicies makes Input read each workspace's WorkspacePolicy from
// policy (nil: none): whether its GPRs may evict (EvictionAllowed) and how
// long its GPRs run before they may be evicted (MinRuntimeBeforeEviction).
// Default: no workspace has a policy.
func WithPolicies(policy func(workspace string) *v1alpha1.WorkspacePolicy) InputOption {
	return func(o *inputOptions) { o.policy = policy }
}
