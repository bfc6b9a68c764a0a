package devcluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestDefaultNodesBlocks: each kind of default node sits in two blocks of
// its cloud's built-in topology, two nodes and one.
func TestDefaultNodesBlocks(t *testing.T) {
	ts := domain.TopologyIndex(nil)
	blocks := map[string]map[string]int{} // level -> block -> nodes
	for _, n := range DefaultNodes() {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels}}
		ds := domain.NodeDomains(node, ts.For(node, n.Cluster, ""))
		if len(ds) < 2 {
			t.Fatalf("node %s has domains %v, want a block and below", n.Name, ds)
		}
		b := ds[len(ds)-2]
		if blocks[b.Level] == nil {
			blocks[b.Level] = map[string]int{}
		}
		blocks[b.Level][b.ID]++
	}
	if len(blocks) != 2 {
		t.Fatalf("block levels %v, want EKS and GKE", blocks)
	}
	for level, bs := range blocks {
		if len(bs) != 2 {
			t.Errorf("%s: blocks %v, want 2", level, bs)
		}
	}
}
