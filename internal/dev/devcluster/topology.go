package devcluster

import "fmt"

// The built-in topologies' labels the default nodes carry, coarse to fine
// as domain.BuiltinTopologies lists them, down to the level that splits
// them in two blocks.
var (
	// EKS: one spine (layer 1), two blocks (layer 2), a leaf per node.
	eksLayers = []string{"topology.k8s.aws/network-node-layer-1", "topology.k8s.aws/network-node-layer-2", "topology.k8s.aws/network-node-layer-3"}
	// GKE: two blocks, a sub-block per node.
	gkeLevels = []string{"cloud.google.com/gce-topology-block", "cloud.google.com/gce-topology-subblock"}
)

// devBlocks are the topology labels of default node i: nodes 0 and 1 in
// block 1, the others in block 2 (the next-to-last level), under one root
// where there are levels above, each node in its own domain at the last.
func devBlocks(i int, levels []string, prefix string) map[string]string {
	block := 1
	if i >= 2 {
		block = 2
	}
	l := map[string]string{}
	for _, above := range levels[:len(levels)-2] {
		l[above] = prefix + "-root"
	}
	l[levels[len(levels)-2]] = fmt.Sprintf("%s-%d", prefix, block)
	l[levels[len(levels)-1]] = fmt.Sprintf("%s-%d-%d", prefix, block, i)
	return l
}
