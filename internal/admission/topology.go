package admission

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

var (
	topologyPath  = specPath.Child("topology")
	requiredPath  = topologyPath.Child("required")
	preferredPath = topologyPath.Child("preferred")
	slicePath     = topologyPath.Child("sliceSize")
)

// validateTopologyShape checks what a GPR's topology says on its own:
// exactly one level, a slice size only with a required level and dividing
// the node count, and the hostname level only for one node (a node is its
// own domain there).
func validateTopologyShape(g *v1alpha1.GPUProvisionRequest) field.ErrorList {
	t := g.Spec.Topology
	if t == nil {
		return nil
	}
	var errs field.ErrorList
	nodes := domain.NodeCount(g)
	switch {
	case t.Required != "" && t.Preferred != "":
		errs = append(errs, field.Invalid(preferredPath, t.Preferred, "name one of required and preferred, not both"))
	case t.Required == "" && t.Preferred == "":
		errs = append(errs, field.Required(requiredPath, "a topology names a level as required or preferred"))
	}
	if t.Required == v1alpha1.LabelHostname && nodes > 1 && t.SliceSize != 1 {
		errs = append(errs, field.Invalid(requiredPath, t.Required,
			fmt.Sprintf("%s is one node: %d nodes cannot be in one domain of it", v1alpha1.LabelHostname, nodes)))
	}
	switch s := t.SliceSize; {
	case s < 0:
		errs = append(errs, field.Invalid(slicePath, s, "sliceSize must not be negative"))
	case s > 0 && t.Required == "":
		errs = append(errs, field.Invalid(slicePath, s, "sliceSize needs a required level: each slice is in one domain of it"))
	case s > 0 && nodes%s != 0:
		errs = append(errs, field.Invalid(slicePath, s,
			fmt.Sprintf("sliceSize %d does not divide numberOfGPUNodes %d", s, nodes)))
	}
	return errs
}

// ValidateTopologyLevel checks that the level a GPR's topology names is a
// level of some topology ts knows (the Topology objects, the built-in ones,
// or the NVLink clique). Only where a GPR is created (REST, MCP): a
// queued GPR whose level's Topology was deleted since is the planner's to
// report as unsatisfiable.
func ValidateTopologyLevel(g *v1alpha1.GPUProvisionRequest, ts domain.Topologies) field.ErrorList {
	t := g.Spec.Topology
	if t == nil || t.Level() == "" || ts.HasLevel(t.Level()) {
		return nil
	}
	path := requiredPath
	if t.Required == "" {
		path = preferredPath
	}
	return field.ErrorList{field.Invalid(path, t.Level(), fmt.Sprintf("%q is not a level of any topology; levels: %s",
		t.Level(), strings.Join(ts.Levels(), ", ")))}
}

// defaultTopologyForPolicy gives a GPR of at least the policy's minNodes
// that names no topology the policy's level, as required.
func defaultTopologyForPolicy(g *v1alpha1.GPUProvisionRequest, p *v1alpha1.WorkspacePolicy) {
	pt := p.Spec.Topology
	if pt == nil || g.Spec.Topology != nil || domain.NodeCount(g) < pt.MinNodes {
		return
	}
	g.Spec.Topology = &v1alpha1.GPRTopology{Required: pt.Level}
}

// validateTopologyPolicy: a GPR of at least the policy's minNodes must
// name a topology (DefaultForPolicy gives it the policy's level).
func validateTopologyPolicy(g *v1alpha1.GPUProvisionRequest, p *v1alpha1.WorkspacePolicy) field.ErrorList {
	pt := p.Spec.Topology
	if pt == nil || g.Spec.Topology.Level() != "" || domain.NodeCount(g) < pt.MinNodes {
		return nil
	}
	return field.ErrorList{field.Required(topologyPath,
		fmt.Sprintf("GPRs of %d nodes or more must name a topology level, e.g. required: %s", pt.MinNodes, pt.Level)+by(p, "topology"))}
}
