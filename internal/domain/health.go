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
)

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
