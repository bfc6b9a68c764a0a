package planner

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// conflictHolder is the BoundTo of a node claimed by several GPRs: no GPR
// has this id ("~" is not allowed in object names), so the planner treats
// the node as held for ever.
const conflictHolder = "~conflict"

// RequestOf is a queued GPR as the planner sees it. It fails when the GPR's
// exitDuration does not parse: such a GPR is failed, never planned.
// CanEvict is left false: InputOf sets it from the workspace's policy.
func RequestOf(g *v1alpha1.GPUProvisionRequest) (Request, error) {
	d, err := domain.ExitDuration(g)
	if err != nil {
		return Request{}, err
	}
	return Request{
		ID: g.Name, Workspace: g.Spec.Workspace, Cluster: g.Spec.ClusterName,
		InstanceType: g.Spec.InstanceType, GPUShape: g.Spec.GPUShape,
		MemoryPerGPU: g.Spec.MemoryPerGPU, GPUsPerNode: g.Spec.NumberOfGPUs,
		Nodes: domain.NodeCount(g), Priority: domain.Priority(g),
		Created: domain.QueueCreated(g), Duration: d,
		Topology: TopologyOf(g.Spec.Topology),
	}, nil
}

// InputOf is the planner's input: provisioned GPRs hold the nodes in their
// status until their end, queued GPRs are requests (except those their
// workspace's policy holds), and nodes carry their GPU facts and holder
// (from GPR status alone). Queued GPRs that cannot be planned are returned
// in invalid with the reason, by name.
func InputOf(now time.Time, gprs []*v1alpha1.GPUProvisionRequest, nodes []*corev1.Node, defaultCluster string, opts ...InputOption) (in Input, invalid map[string]string) {
	o := inputOptions{policy: func(string) *v1alpha1.WorkspacePolicy { return nil }}
	for _, opt := range opts {
		opt(&o)
	}
	in.Now = now
	for _, g := range gprs {
		switch {
		case domain.IsProvisioned(g):
			in.Provisioned = append(in.Provisioned, provisionedOf(now, g, o.policy(g.Spec.Workspace)))
		case domain.PolicyHeld(g):
			// Not planned until its workspace's policy allows it.
		case domain.IsQueued(g):
			r, err := RequestOf(g)
			if err != nil {
				if invalid == nil {
					invalid = map[string]string{}
				}
				invalid[g.Name] = err.Error()
				continue
			}
			r.CanEvict = domain.CanEvict(g, o.policy(g.Spec.Workspace))
			in.Queued = append(in.Queued, r)
		}
	}
	in.Nodes = nodesOf(gprs, nodes, defaultCluster, o.topologies)
	return in, invalid
}

// provisionedOf is a provisioned GPR as the planner sees it: it holds its
// nodes until its end and is evictable once past its policy's minimum
// runtime.
func provisionedOf(now time.Time, g *v1alpha1.GPUProvisionRequest, policy *v1alpha1.WorkspacePolicy) Provisioned {
	end, ok := domain.End(g)
	if !ok {
		end = now // released by the controller's next pass
	}
	p := Provisioned{
		ID: g.Name, Workspace: g.Spec.Workspace, Nodes: slices.Clone(g.Status.Nodes), End: end,
		Priority: domain.Priority(g),
	}
	if t := g.Status.StartTimestamp; t != nil {
		p.Started = t.Time
		at, _ := domain.EvictableAt(g, policy)
		p.Evictable, p.EvictableAt = !now.Before(at), at
	}
	return p
}

// nodesOf is the GPU inventory with each node's holder; a node claimed by
// several GPRs is held by conflictHolder.
func nodesOf(gprs []*v1alpha1.GPUProvisionRequest, nodes []*corev1.Node, defaultCluster string, topos domain.Topologies) []Node {
	holders, conflicts := domain.Holders(gprs)
	conflicted := make(map[string]bool, len(conflicts))
	for _, c := range conflicts {
		conflicted[c.Node] = true
	}
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		f, ok := domain.GPUFacts(n, defaultCluster)
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
		out = append(out, Node{GPUNode: f, BoundTo: bound, Domains: domain.NodeDomains(n, topos.For(n, f.Cluster, f.Shape))})
	}
	return out
}

// InputOption changes how InputOf reads GPRs.
type InputOption func(*inputOptions)

type inputOptions struct {
	policy     func(workspace string) *v1alpha1.WorkspacePolicy
	topologies domain.Topologies // the zero value: the built-in ones
}

// WithPolicies makes InputOf read each workspace's WorkspacePolicy from
// policy (nil: none): whether its GPRs may evict (domain.EvictionAllowed)
// and how long its GPRs run before they may be evicted
// (domain.MinRuntimeBeforeEviction). Default: no workspace has a policy.
func WithPolicies(policy func(workspace string) *v1alpha1.WorkspacePolicy) InputOption {
	return func(o *inputOptions) { o.policy = policy }
}
