package domain

import "github.com/gpuspace/gpuspace/api/v1alpha1"

// Claims is the nodes a GPR holds by its status: the status.nodes of a
// provisioned GPR, none otherwise. It is the per-GPR half of Holders, for
// callers that keep the holders of nodes incrementally (the scheduler
// plugin's informer index).
func Claims(g *v1alpha1.GPUProvisionRequest) []string {
	if !IsProvisioned(g) {
		return nil
	}
	return g.Status.Nodes
}

// NodeBinding is what decides which pods a node takes: who holds it by GPR
// status, and the workspace its gpuspace.io/workspace label names. Status
// is the truth and labels trail it, in both directions: a node is named in
// a provisioned GPR's status before it is labelled, and its label outlives
// the GPR's completion until the controller takes it off. Deciding from
// both closes those windows without a live leader.
type NodeBinding struct {
	// Claimants is how many provisioned GPRs name the node in their
	// status: 0 (not held), 1, or more (a conflict; see Holders).
	Claimants int
	// Holder is the workspace of the one claimant; "" unless Claimants is 1.
	Holder string
	// Label is the node's gpuspace.io/workspace label, "" if none.
	Label string
}

// Refusal says why a node does not take a pod; "" means it does.
type Refusal string

// Refusals.
const (
	// RefusedBoundElsewhere: the node is held by, or labelled for, another
	// workspace (or held by several GPRs), and the pod is not of it.
	RefusedBoundElsewhere Refusal = "bound elsewhere"
	// RefusedNotHeld: a workspace's GPU pod on a node no GPR of its
	// workspace holds — unbound, or released with its label still on.
	RefusedNotHeld Refusal = "not held"
)

// Admits decides whether a node with binding b takes a pod of workspace
// ws ("" for none) that does (gpu) or does not request GPUs. Pods exempt
// from binding (system namespaces, DaemonSet and mirror pods) are not
// asked. The rule:
//
//   - A held node (one claimant) takes only its holder's pods, labelled
//     yet or not.
//   - A node held by several GPRs takes no one's pods: its holder is
//     unknown until a human resolves the conflict.
//   - A workspace's GPU pods run only on nodes a provisioned GPR of the
//     workspace holds. A node whose GPR completed (or is gone) takes none,
//     even while its stale label names the workspace.
//   - Otherwise the label decides, as it always has: a labelled node
//     keeps other workspaces' pods and pods of no workspace off (it is not
//     free until the controller has released it), and still takes the
//     labelled workspace's non-GPU pods.
func (b NodeBinding) Admits(ws string, gpu bool) Refusal {
	switch {
	case b.Claimants > 1:
		return RefusedBoundElsewhere
	case b.Claimants == 1:
		if ws != b.Holder {
			return RefusedBoundElsewhere
		}
		return ""
	case b.Label != "" && b.Label != ws:
		return RefusedBoundElsewhere
	case gpu && ws != "":
		return RefusedNotHeld
	}
	return ""
}

// ToleratesWorkspaceTaint reports whether a pod of workspace ws passes the
// node's workspace taint gpuspace.io/workspace=value: the pods of the
// workspace it names, and those of the node's holder (the taint may still
// name the previous workspace when a node changes hands).
func (b NodeBinding) ToleratesWorkspaceTaint(ws, value string) bool {
	return ws != "" && (ws == value || (b.Claimants == 1 && ws == b.Holder))
}
