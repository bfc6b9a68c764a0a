package gpr_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

const gkeBlock = "cloud.google.com/gce-topology-block"

// blockNode adds a Ready T4 node in GKE block b (the built-in GKE
// topology applies: no Topology object is needed).
func (h *harness) blockNode(name, b string) string {
	return h.addNode(testenv.GPUNode{Name: h.name(name), InstanceType: "g4dn.12xlarge", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 4,
		Labels: map[string]string{gkeBlock: h.prefix + "-" + b}})
}

func requiredBlock(s *v1alpha1.GPUProvisionRequestSpec) {
	s.Topology = &v1alpha1.GPRTopology{Required: gkeBlock}
}

// TestTopologyPlacement, on the real control plane: a GPR requiring one
// GKE block starts on the block that fits (not on any three nodes); one
// no block could ever hold fails with the reason; a lost node is replaced
// inside the GPR's block although a node of another block is free.
func TestTopologyPlacement(t *testing.T) {
	h := newHarness(t)
	h.start()
	a1, a2 := h.blockNode("a1", "a"), h.blockNode("a2", "a")
	b1, b2, b3 := h.blockNode("b1", "b"), h.blockNode("b2", "b"), h.blockNode("b3", "b")

	three := h.gpr("three", h.workspace("w"), exit("1d0h0m"), nodeCount(3), requiredBlock)
	g := h.status(three, v1alpha1.GPRProvisioned)
	if got, want := slices.Sorted(slices.Values(g.Status.Nodes)), []string{b1, b2, b3}; !slices.Equal(got, want) {
		t.Fatalf("GPR requiring one block holds %v, want block b %v", got, want)
	}

	big := h.gpr("big", h.workspace("w2"), exit("1d0h0m"), nodeCount(4), requiredBlock)
	g = h.status(big, v1alpha1.GPRError)
	if want := "no " + gkeBlock + " domain holds 4 matching nodes (the largest has 3)"; !strings.Contains(g.Status.FailureReason, want) {
		t.Errorf("failureReason %q, want it to say %q", g.Status.FailureReason, want)
	}

	// b4 and b5 join block b; a1 and a2 of block a stay free, as tight a
	// fit for one node. Losing b2 (deleted) brings in b4, not a node of
	// block a.
	b4 := h.blockNode("b4", "b")
	h.blockNode("b5", "b")
	if err := env.Client.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: b2}}); err != nil {
		t.Fatal(err)
	}
	h.nodesHealthy(three, "NodesReplaced", b1, b3, b4)
	for _, n := range []string{a1, a2} {
		if err := bound(h.getNode(n), nil); err != nil {
			t.Error(fmt.Errorf("node of the other block: %w", err))
		}
	}
}
