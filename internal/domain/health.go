package domain

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// Reasons of a provisioned GPR's NodesHealthy condition (besides
// v1alpha1.ReasonNodeLost, set by DropNodes, and ReasonClusterUnreachable).
// Readers match on these constants, never on literals.
const (
	// ReasonNodesReady: every node the GPR holds is Ready.
	ReasonNodesReady = "NodesReady"
	// ReasonNodeGone: a node the GPR holds no longer exists.
	ReasonNodeGone = "NodeGone"
	// ReasonNodeNotReady: a node the GPR holds is not Ready.
	ReasonNodeNotReady = "NodeNotReady"
	// ReasonNodesReplaced: lost nodes were replaced by free ones
	// (ReplaceNodes); it stands while the rest are Ready.
	ReasonNodesReplaced = "NodesReplaced"
	// ReasonNodeClaimedTwice: a node the GPR holds is in the status of
	// another provisioned GPR too (Holders' conflicts). gpuspace never
	// writes that and never resolves it by guessing: the node keeps the
	// binding it has until an operator corrects one GPR's status.
	ReasonNodeClaimedTwice = "NodeClaimedTwice"
)

// ClaimedTwice is the NodesHealthy condition of provisioned GPR g when it
// shares a node with another provisioned GPR (conflicts, from Holders):
// False, naming each shared node and the other GPRs; ok is false when g
// shares none. It overrides NodesHealthy: which GPR runs there is the
// question a reader must see first.
func ClaimedTwice(g *v1alpha1.GPUProvisionRequest, conflicts []Claim) (c metav1.Condition, ok bool) {
	var parts []string
	for _, cl := range conflicts {
		if !slices.Contains(cl.GPRs, g.Name) {
			continue
		}
		others := slices.DeleteFunc(slices.Clone(cl.GPRs), func(id string) bool { return id == g.Name })
		parts = append(parts, fmt.Sprintf("node %s is also in the status of GPR %s", cl.Node, joinNames(others)))
	}
	if len(parts) == 0 {
		return metav1.Condition{}, false
	}
	return metav1.Condition{
		Type: v1alpha1.GPRNodesHealthy, Status: metav1.ConditionFalse, Reason: ReasonNodeClaimedTwice, ObservedGeneration: g.Generation,
		Message: strings.Join(parts, "; ") + ": the node's binding is left as it is until one GPR's status.nodes is corrected",
	}, true
}

// msgNodesReady is the message of a NodesHealthy condition that is True
// because every node is Ready.
const msgNodesReady = "all nodes are Ready"

// NodesHealthy is the NodesHealthy condition of a provisioned GPR given
// the nodes in sight, by name: True while every node it holds is Ready,
// else False naming the nodes gone and not Ready; not-Ready nodes that are
// all of unreachable worker clusters say so (ReasonClusterUnreachable), as
// nothing is released meanwhile.
func NodesHealthy(g *v1alpha1.GPUProvisionRequest, nodes map[string]*corev1.Node) metav1.Condition {
	var gone, notReady []string
	for _, name := range g.Status.Nodes {
		n, ok := nodes[name]
		switch {
		case !ok:
			gone = append(gone, name)
		case !NodeReady(n):
			notReady = append(notReady, name)
		}
	}
	c := metav1.Condition{
		Type: v1alpha1.GPRNodesHealthy, Status: metav1.ConditionTrue, Reason: ReasonNodesReady,
		Message: msgNodesReady, ObservedGeneration: g.Generation,
	}
	switch {
	case len(gone) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonNodeGone
		c.Message = "nodes no longer exist: " + joinNames(gone)
		if len(notReady) > 0 {
			c.Message += "; nodes not Ready: " + joinNames(notReady)
		}
	case len(notReady) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonNodeNotReady
		c.Message = "nodes not Ready: " + joinNames(notReady)
		if why, ok := clustersUnreachable(notReady, nodes); ok {
			c.Reason = ReasonClusterUnreachable
			c.Message = fmt.Sprintf("nodes not Ready: %s; %s; the GPR keeps its nodes and nothing is released until the cluster is reachable again",
				joinNames(notReady), why)
		}
	}
	return c
}

// clustersUnreachable is why the notReady nodes are not Ready when every
// one of them is of an unreachable worker cluster (the Ready condition the
// registry marks with ReasonClusterUnreachable): each cluster's message.
func clustersUnreachable(notReady []string, nodes map[string]*corev1.Node) (string, bool) {
	var why []string
	for _, name := range notReady {
		var ready *corev1.NodeCondition
		for i, c := range nodes[name].Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = &nodes[name].Status.Conditions[i]
			}
		}
		if ready == nil || ready.Reason != ReasonClusterUnreachable {
			return "", false
		}
		if !slices.Contains(why, ready.Message) {
			why = append(why, ready.Message)
		}
	}
	return strings.Join(why, "; "), true
}

// joinNames lists node names for a message.
func joinNames(names []string) string { return strings.Join(names, ", ") }
