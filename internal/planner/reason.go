package planner

import (
	"fmt"
	"strings"

	"github.com/gpuspace/gpuspace/internal/util/gpushape"
)

// reason says which constraint of r the inventory cannot meet, checking
// them in the order users think of them: cluster, shape, instance type,
// memory per GPU, GPUs per node, then the number of nodes. It runs only
// for unsatisfiable GPRs, so it may scan the cluster's groups.
func (st *state) reason(r *Request, need int) string {
	groups := st.byCluster[r.Cluster]
	if len(groups) == 0 {
		return fmt.Sprintf("no GPU node in cluster %s", r.Cluster)
	}
	shape := gpushape.Normalize(r.GPUShape)
	instanceType := strings.ToLower(r.InstanceType)

	// Each step keeps the groups that pass one more constraint and
	// describes what has been required so far.
	var quals []string
	filter := func(keep func(*group) bool) bool {
		var kept []*group
		for _, g := range groups {
			if keep(g) {
				kept = append(kept, g)
			}
		}
		groups = kept
		return len(kept) > 0
	}
	fail := func() string {
		return fmt.Sprintf("no node with %s in cluster %s", strings.Join(quals, " and "), r.Cluster)
	}
	if shape != "" {
		quals = append(quals, "gpuShape "+r.GPUShape)
		if !filter(func(g *group) bool { return g.shape == shape }) {
			return fail()
		}
	}
	if instanceType != "" {
		quals = append(quals, "instanceType "+r.InstanceType)
		if !filter(func(g *group) bool { return g.instanceType == instanceType }) {
			return fail()
		}
	}
	if r.MemoryPerGPU > 0 {
		var most int64
		for _, g := range groups {
			most = max(most, g.memMiB)
		}
		quals = append(quals, fmt.Sprintf("%d GB per GPU", r.MemoryPerGPU))
		if !filter(func(g *group) bool { return MemoryFits(g.memMiB, r.MemoryPerGPU) }) {
			return fmt.Sprintf("%s (the most is %d MiB)", fail(), most)
		}
	}
	// The count phrase reads "N GPUs of shape S", as users ask for them.
	gpus := fmt.Sprintf("%d GPUs", max(r.GPUsPerNode, 1))
	if shape != "" {
		gpus += " of shape " + r.GPUShape
		quals = quals[1:]
	}
	quals = append([]string{gpus}, quals...)
	if !filter(func(g *group) bool { return g.gpus >= r.GPUsPerNode }) {
		return fail()
	}
	total := 0
	for _, g := range groups {
		total += g.total
	}
	noun := "nodes"
	if total == 1 {
		noun = "node"
	}
	return fmt.Sprintf("only %d %s with %s in cluster %s, %d requested",
		total, noun, strings.Join(quals, " and "), r.Cluster, need)
}
