package devcluster

import (
	"strings"
	"testing"

	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestSplitNodes: nodes go to the cluster they name; a cluster beyond
// --clusters is an error naming the valid ones.
func TestSplitNodes(t *testing.T) {
	nodes := []nodesim.Node{{Name: "a"}, {Name: "b", Cluster: "worker-1"}, {Name: "c", Cluster: "worker-3"}}
	hub, workers, err := splitNodes(nodes, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(hub) != 2 || len(workers["worker-3"]) != 1 || len(workers["worker-2"]) != 0 {
		t.Errorf("hub %v, workers %v", hub, workers)
	}
	if _, _, err := splitNodes(nodes, 2); err == nil || !strings.Contains(err.Error(), "worker-1..worker-2") {
		t.Errorf("worker-3 with --clusters 2: %v", err)
	}
}

// TestDefaultWorkerNodes: each worker has GPU shapes of its own, none the
// hub's H100, node names unique across clusters.
func TestDefaultWorkerNodes(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range DefaultNodes() {
		seen[n.Name] = true
	}
	shapes := map[int]map[string]bool{}
	for i := 2; i <= 4; i++ {
		shapes[i] = map[string]bool{}
		for _, n := range DefaultWorkerNodes(i) {
			if seen[n.Name] {
				t.Errorf("node name %s twice", n.Name)
			}
			seen[n.Name] = true
			if n.Cluster != WorkerName(i) {
				t.Errorf("node %s in cluster %s, want %s", n.Name, n.Cluster, WorkerName(i))
			}
			f, ok := domain.GPUFacts(nodesim.NodeObject(n), "")
			if !ok {
				t.Fatalf("node %s has no GPUs", n.Name)
			}
			shapes[i][f.Shape] = true
		}
	}
	if !shapes[2]["A100"] || !shapes[2]["T4"] || !shapes[3]["L4"] || !shapes[4]["L40S"] || shapes[2]["H100"] {
		t.Errorf("shapes per worker: %v", shapes)
	}
}
