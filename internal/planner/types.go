// Package planner decides which queued GPU provision requests (GPRs) start
// now, on which nodes, and when every other queued GPR is expected to start.
//
// It is pure Go with no Kubernetes client, so that the GPR controller and the
// REST API's wait-time preview compute the same plan from the same input, and
// so that it can be tested and benchmarked in isolation.
//
// # Semantics
//
//   - A workspace has at most one provisioned GPR. Its queued GPRs run one
//     after the other in queue order.
//   - Queue order, within and across workspaces: priority (higher first),
//     then creation time (older first), then id.
//   - Every queued GPR, in queue order, is either started now or given a
//     reservation: the earliest time at which enough matching nodes are free
//     after the provisioned GPRs' end times and the reservations of the GPRs
//     before it. The reservation is its estimated start. It goes on nodes
//     that free up by then rather than on nodes free now where it can, so
//     that the free nodes stay open for backfill.
//   - Backfill (EASY style): a GPR that comes later in the queue starts now
//     only on nodes that are free now and stay free, for its whole duration,
//     until the earliest reservation a GPR before it holds on them. So a
//     backfilled GPR never delays the estimated start of a GPR ahead of it.
//   - A node is chosen only if it is healthy, schedulable and bound to no
//     GPR. Among usable nodes the tightest fit wins (fewest GPUs, then least
//     memory), then the node name, so equal input gives an equal plan.
//   - A GPR that no node of the inventory could satisfy, whatever the nodes'
//     health or bindings, is Unsatisfiable, with a reason naming the
//     constraint that cannot be met.
//   - A GPR whose matching nodes exist but are unhealthy or cordoned (or
//     bound to a GPR the planner does not know) has no estimate: it waits
//     until they come back, and holds no reservation meanwhile.
package planner

import (
	"time"

	"github.com/gpuspace/gpuspace/internal/domain"
)

// Node is one GPU node of the inventory: its GPU facts as domain.GPUFacts
// reads them (shape already normalised; Healthy covers Ready, cordon and
// failed GPUs) and the GPR that holds it.
type Node struct {
	domain.GPUNode
	// BoundTo is the id of the GPR the node is bound to, or "".
	BoundTo string
	// Domains are the node's topology domains, coarse to fine
	// (domain.NodeDomains; topology.go).
	Domains []domain.TopologyDomain
}

// Provisioned is a GPR that holds nodes now.
type Provisioned struct {
	// ID of the GPR.
	ID string
	// Workspace the GPR belongs to.
	Workspace string
	// Nodes the GPR holds.
	Nodes []string
	// End is when the GPR expires and its nodes become free.
	End time.Time
	// Priority of the GPR; only lower-priority GPRs than an evictor's are
	// ever evicted.
	Priority int32
	// Started is when the GPR started: among victims of equal priority the
	// most recently started go first.
	Started time.Time
	// Evictable is true when the GPR may be evicted now (past its minimum
	// runtime). The caller decides; the planner never evicts others.
	Evictable bool
	// EvictableAt is when a GPR not Evictable yet will be (the end of its
	// minimum runtime; zero: unknown, or never): an evictor that waits for
	// it is estimated to start then, not at the GPR's end.
	EvictableAt time.Time
}

// Request is a queued GPR.
type Request struct {
	// ID of the GPR.
	ID string
	// Workspace the GPR belongs to.
	Workspace string
	// Cluster the nodes must belong to.
	Cluster string
	// InstanceType the nodes must have; empty means any.
	InstanceType string
	// GPUShape the nodes' GPUs must be, as users write it ("H100",
	// "Tesla-T4"); empty means any.
	GPUShape string
	// MemoryPerGPU is the least memory per GPU in GB; 0 means any. See
	// MemoryFits for the tolerance.
	MemoryPerGPU int32
	// GPUsPerNode is how many GPUs each node must have at least.
	GPUsPerNode int32
	// Nodes is how many distinct nodes; 0 counts as 1.
	Nodes int32
	// Priority: higher first.
	Priority int32
	// Created is when the GPR was created; older first among equal
	// priorities.
	Created time.Time
	// Duration is how long the GPR holds its nodes once started.
	Duration time.Duration
	// CanEvict lets the GPR evict lower-priority evictable GPRs when it
	// cannot start otherwise (enableEviction, allowed by its policy).
	CanEvict bool
	// Topology is where the nodes must or should sit (topology.go); nil:
	// anywhere, but in one NVLink clique where the nodes have cliques.
	Topology *TopologyRequest
}

// Input is everything the planner looks at.
type Input struct {
	// Now is the time the plan is made for.
	Now time.Time
	// Nodes is the GPU inventory.
	Nodes []Node
	// Provisioned are the GPRs holding nodes now.
	Provisioned []Provisioned
	// Queued are the GPRs waiting, in any order.
	Queued []Request
	// Placements asks for Plan.Placements (displays; the controller does
	// not need them and skips the allocation).
	Placements bool
}

// Start is a GPR to provision now.
type Start struct {
	// ID of the GPR.
	ID string
	// Nodes to bind to it, sorted by name.
	Nodes []string
}

// Eviction is a provisioned GPR evicted for a higher-priority one.
type Eviction struct {
	// Victim is the evicted GPR.
	Victim string
	// By is the GPR that takes its nodes.
	By string
}

// Unsatisfiable is a GPR no node of the inventory could ever satisfy.
type Unsatisfiable struct {
	// ID of the GPR.
	ID string
	// Reason names the constraint that cannot be met, e.g. "no node with
	// gpuShape A100 in cluster worker-1".
	Reason string
}

// Plan is the planner's decision.
type Plan struct {
	// Starts are the GPRs to provision now, in queue order.
	Starts []Start
	// Estimates is the estimated start of every queued GPR that has one,
	// by id; GPRs in Starts have Now. GPRs that are unsatisfiable or wait
	// for unhealthy nodes have none.
	Estimates map[string]time.Time
	// Unsatisfiable are the GPRs to fail, in queue order.
	Unsatisfiable []Unsatisfiable
	// Evictions are the provisioned GPRs to evict now, for GPRs in Starts
	// that start on their nodes in this plan.
	Evictions []Eviction
	// Placements are the nodes each GPR with an estimate starts on (now,
	// or at its reservation), sorted by name; only with Input.Placements.
	// A reservation's nodes are where the plan puts the GPR today: they
	// may change with the next plan, and only its start is promised.
	Placements map[string][]string
}

// MemoryFits reports whether a GPU with nodeMiB MiB of memory satisfies a
// request for gb GB.
//
// The rule: nodeMiB >= gb × 1024 × 0.9, i.e. the node may report up to 10%
// less than the requested GB read as GiB. NVML reports usable memory, which
// is less than the marketed size: a "16 GB" T4 reports 15360 MiB (15 GiB)
// and an "80 GB" H100 reports 81559 MiB, so requests for 16 GB and 80 GB
// must match them, while a 40 GB A100 (40960 MiB) must not satisfy a request
// for 80 GB. gb <= 0 matches any node.
func MemoryFits(nodeMiB int64, gb int32) bool {
	if gb <= 0 {
		return true
	}
	// Integer form of nodeMiB >= gb*1024*0.9, exact for every input.
	return nodeMiB*10 >= int64(gb)*1024*9
}
