package gpr_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// nodesHealthy waits until GPR id holds exactly nodes and its
// NodesHealthy condition has reason; it returns the GPR.
func (h *harness) nodesHealthy(id, reason string, nodes ...string) *v1alpha1.GPUProvisionRequest {
	h.t.Helper()
	var g *v1alpha1.GPUProvisionRequest
	h.eventually(func() error {
		g = h.getGPR(id)
		got := slices.Sorted(slices.Values(g.Status.Nodes))
		c := meta.FindStatusCondition(g.Status.Conditions, v1alpha1.GPRNodesHealthy)
		switch {
		case g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned:
			return fmt.Errorf("GPR %s is %s, want Provisioned", id, g.Status.ProvisioningStatus)
		case !slices.Equal(got, slices.Sorted(slices.Values(nodes))):
			return fmt.Errorf("GPR %s holds %v, want %v", id, got, nodes)
		case c == nil || c.Reason != reason:
			return fmt.Errorf("GPR %s NodesHealthy %+v, want reason %s", id, c, reason)
		}
		return nil
	})
	return g
}

// TestLostNode: a held node NotReady within the grace is kept; beyond it,
// it is lost. A GPR without requeueOnFailure keeps running on its other
// node (NodeLost, the lost node unbound) until a free matching node comes,
// which replaces the lost one. A GPR with requeueOnFailure whose node is
// deleted goes back to the queue (reason NodeLost, retryCount 1, what its
// run cost kept in earlierCost), starts again on a new node, and its final
// cost counts both runs.
func TestLostNode(t *testing.T) {
	h := newHarness(t)
	h.prices = domain.Prices{"T4": 1}
	h.start()
	h.t4Node("n1")
	h.t4Node("n2")
	two := h.gpr("two", h.workspace("w"), exit("1d0h0m"), nodeCount(2))
	g := h.status(two, v1alpha1.GPRProvisioned)
	kept, down := g.Status.Nodes[0], g.Status.Nodes[1]

	if err := env.SetNodeReady(h.ctx, down, false); err != nil {
		t.Fatal(err)
	}
	h.nodesHealthy(two, "NodeNotReady", kept, down)
	h.advance(4*time.Minute, two) // inside the 5 min grace
	time.Sleep(time.Second)
	h.nodesHealthy(two, "NodeNotReady", kept, down)

	h.advance(2*time.Minute, two)
	g = h.nodesHealthy(two, string(v1alpha1.ReasonNodeLost), kept)
	if g.Status.NumGpusAllocated != 1 {
		t.Errorf("numGpusAllocated %d with one node, want 1", g.Status.NumGpusAllocated)
	}
	h.nodeBound(down, "")
	h.nodeBound(kept, two)

	// A free matching node replaces the lost one.
	fresh := h.t4Node("n3")
	h.nodesHealthy(two, "NodesReplaced", kept, fresh)
	h.nodeBound(fresh, two)

	// requeueOnFailure: the recovered node is the only free one.
	if err := env.SetNodeReady(h.ctx, down, true); err != nil {
		t.Fatal(err)
	}
	// It names its shape: the cost of a run on a node since deleted is
	// priced by the GPR's shape.
	one := h.gpr("one", h.workspace("w2"), exit("1d0h0m"), func(s *v1alpha1.GPUProvisionRequestSpec) { s.RequeueOnFailure, s.GPUShape = true, "T4" })
	g = h.status(one, v1alpha1.GPRProvisioned)
	if g.Status.Nodes[0] != down {
		t.Fatalf("GPR one on %v, want the only free node %s", g.Status.Nodes, down)
	}
	h.advance(time.Hour, one)
	if err := env.Client.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: down}}); err != nil {
		t.Fatal(err)
	}
	q := h.status(one, v1alpha1.GPRQueued)
	if q.Status.Reason != v1alpha1.ReasonNodeLost || q.Status.RetryCount != 1 || len(q.Status.Nodes) != 0 || q.Status.EarlierCost != "1.00" {
		t.Errorf("requeued status %+v, want reason NodeLost, retryCount 1, no nodes, earlierCost 1.00 (1 GPU-hour at 1 USD)", q.Status)
	}
	h.t4Node("n4")
	h.status(one, v1alpha1.GPRProvisioned)
	h.advance(30*time.Minute, one)
	h.setSpec(one, func(s *v1alpha1.GPUProvisionRequestSpec) { s.EarlyRelease = true })
	if c := h.status(one, v1alpha1.GPRComplete).Status.Cost; c != "1.50" {
		t.Errorf("cost %q, want 1.50 (1 h before the loss + 30 min after)", c)
	}
}
