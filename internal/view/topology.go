package view

import (
	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// nodeDomains is each node's block as the plan's input has its topology
// domains (BlockOf), by name; nodes without topology labels are absent.
func (p *Plan) nodeDomains() map[string]string {
	out := map[string]string{}
	for _, n := range p.in.Nodes {
		if b := BlockOf(n.Domains); b != "" {
			out[n.Name] = b
		}
	}
	return out
}

// BlockOf is the domain displays group a node by: one level above the
// finest network level it has (the finest is often the node's own rack
// or host), the only one when it has one; the NVLink clique when it has
// no network levels.
func BlockOf(ds []domain.TopologyDomain) string {
	var net []domain.TopologyDomain
	clique := ""
	for _, d := range ds {
		if d.Level == v1alpha1.LabelGPUClique {
			clique = d.ID
			continue
		}
		net = append(net, d)
	}
	switch len(net) {
	case 0:
		return clique
	case 1:
		return net[0].ID
	}
	return net[len(net)-2].ID
}
