package domain

import (
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// A provisioned GPR loses a node when the node is deleted, or stays
// NotReady longer than a grace: a kubelet restart or a short network blip
// must not cost a team its nodes, a dead machine must not hold a GPR short
// for ever. A node of a worker cluster the hub cannot reach is never lost:
// a partition releases nothing, whatever it lasts.

// DefaultNodeLostGrace is how long a held node may stay NotReady before it
// counts as lost (gpuspace serve --node-lost-grace): the kube-controller-
// manager's default pod eviction timeout, so a node gpuspace gives up is
// one Kubernetes gives up too.
const DefaultNodeLostGrace = 5 * time.Minute

// ReasonClusterUnreachable is the Ready condition reason the hub gives the
// nodes of a worker cluster it cannot reach (their last known state).
const ReasonClusterUnreachable = "ClusterUnreachable"

// LostNode is a node a provisioned GPR holds and has lost, and why.
type LostNode struct {
	Name, Why string
}

// LostNodes are the nodes provisioned GPR g holds that are lost at now:
// missing from nodes (by name) when goneKnown — the caller can tell a
// deleted node from one of a cluster whose inventory it cannot see — or
// NotReady for at least grace since the Ready condition last changed.
// next is when the first node NotReady now becomes lost if it stays so
// (zero: none).
func LostNodes(g *v1alpha1.GPUProvisionRequest, nodes map[string]*corev1.Node, grace time.Duration, now time.Time, goneKnown bool) (lost []LostNode, next time.Time) {
	if !IsProvisioned(g) {
		return nil, time.Time{}
	}
	for _, name := range g.Status.Nodes {
		n, ok := nodes[name]
		if !ok {
			if goneKnown {
				lost = append(lost, LostNode{Name: name, Why: "gone: deleted, or its cluster unregistered"})
			}
			continue
		}
		since, notReady := notReadySince(n)
		if !notReady || since.IsZero() {
			continue
		}
		if at := since.Add(grace); now.Before(at) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		lost = append(lost, LostNode{Name: name, Why: fmt.Sprintf("NotReady since %s", since.UTC().Format(time.RFC3339))})
	}
	return lost, next
}

// notReadySince is when a node's Ready condition last became other than
// True, and whether it is; a node of an unreachable cluster reports false.
func notReadySince(n *corev1.Node) (time.Time, bool) {
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue || c.Reason == ReasonClusterUnreachable {
			return time.Time{}, false
		}
		return c.LastTransitionTime.Time, true
	}
	return time.Time{}, false
}

// Shortfall is how many nodes a provisioned GPR holds fewer than it asked
// for: it lost nodes that nothing replaced yet.
func Shortfall(g *v1alpha1.GPUProvisionRequest) int {
	if !IsProvisioned(g) {
		return 0
	}
	return max(int(NodeCount(g))-len(g.Status.Nodes), 0)
}

// names are the names of lost nodes.
func names(lost []LostNode) []string {
	out := make([]string, len(lost))
	for i, l := range lost {
		out[i] = l.Name
	}
	return out
}

// DescribeLost says which nodes were lost and why ("h100-1 (deleted)").
func DescribeLost(lost []LostNode) string {
	s := ""
	for i, l := range lost {
		if i > 0 {
			s += ", "
		}
		s += l.Name + " (" + l.Why + ")"
	}
	return s
}

// ReplaceNodes gives a provisioned GPR the nodes repl in place of the lost
// ones (and of any it lost before): it stays Provisioned from its start,
// and its NodesHealthy condition says what was replaced.
func ReplaceNodes(g *v1alpha1.GPUProvisionRequest, lost []LostNode, repl []string) {
	kept := slices.DeleteFunc(slices.Clone(g.Status.Nodes), func(n string) bool { return slices.Contains(names(lost), n) })
	g.Status.Nodes = append(kept, repl...)
	g.Status.NumGpusAllocated = g.Spec.NumberOfGPUs * int32(len(g.Status.Nodes))
	msg := fmt.Sprintf("replaced by free nodes %v", repl)
	if len(lost) > 0 {
		msg = fmt.Sprintf("lost %s; %s", DescribeLost(lost), msg)
	}
	meta.SetStatusCondition(&g.Status.Conditions, metav1.Condition{
		Type: v1alpha1.GPRNodesHealthy, Status: metav1.ConditionTrue, Reason: ReasonNodesReplaced,
		Message: msg, ObservedGeneration: g.Generation,
	})
}

// DropNodes takes the lost nodes out of a provisioned GPR that keeps
// running on the others (no requeueOnFailure, and no free node to replace
// them now): its NodesHealthy condition is False with reason NodeLost and
// says how many it holds; a later pass replaces them when a matching node
// is free. A GPR left with no node is released with reason NodeLost.
func DropNodes(g *v1alpha1.GPUProvisionRequest, lost []LostNode, now time.Time) {
	kept := slices.DeleteFunc(slices.Clone(g.Status.Nodes), func(n string) bool { return slices.Contains(names(lost), n) })
	cond := metav1.Condition{
		Type: v1alpha1.GPRNodesHealthy, Status: metav1.ConditionFalse, Reason: string(v1alpha1.ReasonNodeLost),
		ObservedGeneration: g.Generation,
	}
	if len(kept) == 0 {
		// Its nodes stay in status as the record of what it held.
		Release(g, v1alpha1.ReasonNodeLost, now)
		g.Status.FailureReason = "lost " + DescribeLost(lost)
		cond.Message = g.Status.FailureReason + "; no node left"
	} else {
		g.Status.Nodes = kept
		g.Status.NumGpusAllocated = g.Spec.NumberOfGPUs * int32(len(kept))
		cond.Message = fmt.Sprintf("lost %s; holds %d of %d nodes, a free matching node will replace each lost one",
			DescribeLost(lost), len(kept), NodeCount(g))
	}
	meta.SetStatusCondition(&g.Status.Conditions, cond)
}
