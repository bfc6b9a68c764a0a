package devcluster

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
)

// DefaultNodes is the simulated inventory of the local system: three
// 8×H100-80GB nodes and three 1×T4 nodes, of different instance types and
// providers, in one cluster. Each kind sits in two network blocks (two
// nodes and one) under its cloud's topology labels (devBlocks).
func DefaultNodes() []nodesim.Node {
	var nodes []nodesim.Node
	for i := range 3 {
		nodes = append(nodes, nodesim.Node{
			Name:         fmt.Sprintf("h100-node-%d", i),
			Cluster:      v1alpha1.DefaultCluster,
			InstanceType: "p5.48xlarge",
			Product:      "NVIDIA-H100-80GB-HBM3",
			MemoryMiB:    81559,
			GPUs:         8,
			Region:       "us-east-1",
			Zone:         "us-east-1a",
			ProviderID:   fmt.Sprintf("aws:///us-east-1a/i-0h100node%d", i),
			Labels:       devBlocks(i, eksLayers, "nn"),
		})
	}
	for i := range 3 {
		nodes = append(nodes, nodesim.Node{
			Name:         fmt.Sprintf("t4-node-%d", i),
			Cluster:      v1alpha1.DefaultCluster,
			InstanceType: "n1-standard-8",
			Product:      "Tesla-T4",
			MemoryMiB:    15360,
			GPUs:         1,
			Region:       "us-central1",
			Zone:         "us-central1-a",
			ProviderID:   fmt.Sprintf("gce://gpuspace-dev/us-central1-a/t4-node-%d", i),
			Labels:       devBlocks(i, gkeLevels, "block"),
		})
	}
	return nodes
}

// nodesFile is the YAML of --nodes: a list of simulated nodes.
//
//	nodes:
//	- name: a100-0
//	  instanceType: a2-highgpu-8g
//	  product: NVIDIA-A100-SXM4-40GB
//	  memoryMiB: 40960
//	  gpus: 8
type nodesFile struct {
	Nodes []nodesim.Node `json:"nodes"`
}

// LoadNodes reads a --nodes file, checking each entry.
func LoadNodes(path string) ([]nodesim.Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read nodes file: %w", err)
	}
	var f nodesFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("parse nodes file %s: %w", path, err)
	}
	if len(f.Nodes) == 0 {
		return nil, fmt.Errorf("nodes file %s: no nodes listed under 'nodes:'", path)
	}
	seen := map[string]bool{}
	for i := range f.Nodes {
		n := &f.Nodes[i]
		switch {
		case n.Name == "":
			return nil, fmt.Errorf("nodes file %s: nodes[%d].name is required", path, i)
		case seen[n.Name]:
			return nil, fmt.Errorf("nodes file %s: nodes[%d].name %q is listed twice", path, i, n.Name)
		case n.GPUs < 1:
			return nil, fmt.Errorf("nodes file %s: nodes[%d].gpus must be at least 1", path, i)
		case n.Product == "":
			return nil, fmt.Errorf("nodes file %s: nodes[%d].product is required (e.g. NVIDIA-H100-80GB-HBM3)", path, i)
		case n.MemoryMiB < 1:
			return nil, fmt.Errorf("nodes file %s: nodes[%d].memoryMiB must be at least 1", path, i)
		}
		seen[n.Name] = true
		if n.Cluster == "" {
			n.Cluster = v1alpha1.DefaultCluster
		}
	}
	return f.Nodes, nil
}
