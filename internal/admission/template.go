package admission

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// Templates are validated as the GPRs they make: TemplateGPR turns a
// template into the GPR it would make for a workspace on a cluster, and
// ValidateGPR judges that GPR. A template on its own is checked for what
// needs no workspace (ValidateTemplate); each use of it, by a workspace's
// binding on one of its clusters, for the rest (ValidateTemplateUse).

var (
	bindingClustersPath = field.NewPath("spec", "clusters")
	bindingWorkspace    = field.NewPath("spec", "workspace")
)

// TemplateGPR is the GPR template t makes for workspace ws on cluster
// (t's own cluster where it names one), without a name; gprName is the
// template's name. Admission has not run on it (DefaultGPR, ValidateGPR).
func TemplateGPR(t *v1alpha1.GPRTemplate, ws, cluster string) *v1alpha1.GPUProvisionRequest {
	if t.Spec.ClusterName != "" {
		cluster = t.Spec.ClusterName
	}
	s := &t.Spec
	return &v1alpha1.GPUProvisionRequest{
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: t.Name, Workspace: ws, ClusterName: cluster,
			NumberOfGPUs: s.NumberOfGPUs, NumberOfGPUNodes: s.NumberOfGPUNodes,
			InstanceType: s.InstanceType, GPUShape: s.GPUShape, MemoryPerGPU: s.MemoryPerGPU,
			Priority: s.Priority, ExitDuration: s.ExitDuration,
			IdleTimeOutDuration: s.IdleTimeOutDuration, EnforceIdleTimeOut: s.EnforceIdleTimeOut,
			EnableEviction: s.EnableEviction, RequeueOnFailure: s.RequeueOnFailure,
			GPUSharingMode: s.GPUSharingMode, Topology: s.Topology.DeepCopy(),
		},
	}
}

// ValidateTemplate checks what a template says on its own: every check of
// ValidateGPR that needs no workspace (the durations), on the GPR it
// makes. Errors name the template's fields (spec.exitDuration, ...), which
// are the GPR's.
func ValidateTemplate(t *v1alpha1.GPRTemplate) field.ErrorList {
	g := TemplateGPR(t, "", "")
	// A stand-in workspace on the template's own cluster: the workspace
	// checks pass, the rest of ValidateGPR judges the template.
	ws := &v1alpha1.Workspace{Spec: v1alpha1.WorkspaceSpec{Clusters: []string{g.Spec.ClusterName}}}
	DefaultGPR(g, ws)
	return ValidateGPR(g, ws)
}

// ValidateTemplateUse checks template t used by workspace ws on cluster,
// under the workspace's policy p (nil: none): t names no other cluster,
// and the GPR it makes there passes ValidateGPR (the workspace exists, is
// on the cluster, ...) and, defaulted by the policy, the policy's limits
// on one GPR (ValidateAgainstPolicy with no other GPR ahead).
func ValidateTemplateUse(t *v1alpha1.GPRTemplate, ws *v1alpha1.Workspace, cluster string, p *v1alpha1.WorkspacePolicy) field.ErrorList {
	if t.Spec.ClusterName != "" && t.Spec.ClusterName != cluster {
		return field.ErrorList{field.Invalid(clusterPath, t.Spec.ClusterName,
			fmt.Sprintf("template %q is for cluster %q, not %q", t.Name, t.Spec.ClusterName, cluster))}
	}
	name := ""
	if ws != nil {
		name = ws.Name
	}
	g := TemplateGPR(t, name, cluster)
	DefaultGPR(g, ws)
	DefaultForPolicy(g, p)
	return append(ValidateGPR(g, ws), ValidateAgainstPolicy(g, p, 0)...)
}

// DefaultTemplate fills what a template may leave out: one node, and the
// default priority (v1alpha1.DefaultPriority).
func DefaultTemplate(t *v1alpha1.GPRTemplate) {
	if t.Spec.NumberOfGPUNodes == 0 {
		t.Spec.NumberOfGPUNodes = 1
	}
	if t.Spec.Priority == 0 {
		t.Spec.Priority = v1alpha1.DefaultPriority
	}
}

// DefaultBinding fills what a binding may leave out: a cluster's default
// template is one of its templates, so it is added to them when missing.
func DefaultBinding(b *v1alpha1.GPRTemplateBinding) {
	for i := range b.Spec.Clusters {
		c := &b.Spec.Clusters[i]
		if c.DefaultTemplateName != "" && !slices.Contains(c.Templates, c.DefaultTemplateName) {
			c.Templates = append(c.Templates, c.DefaultTemplateName)
		}
	}
}

// ValidateBinding checks binding b of workspace ws (nil: it does not
// exist) whose policy is pol (nil: none): every cluster is one of the
// workspace's, named once, and every template it names exists (templates,
// by name; a missing one is absent from the map) and is valid for the
// workspace on that cluster (ValidateTemplateUse).
func ValidateBinding(b *v1alpha1.GPRTemplateBinding, ws *v1alpha1.Workspace, templates map[string]*v1alpha1.GPRTemplate, pol *v1alpha1.WorkspacePolicy) field.ErrorList {
	var errs field.ErrorList
	switch {
	case ws == nil:
		return append(errs, field.NotFound(bindingWorkspace, b.Spec.Workspace))
	case ws.DeletionTimestamp != nil:
		return append(errs, field.Invalid(bindingWorkspace, b.Spec.Workspace, "workspace is being deleted"))
	}
	seen := map[string]bool{}
	for i, c := range b.Spec.Clusters {
		p := bindingClustersPath.Index(i)
		switch {
		case seen[c.ClusterName]:
			errs = append(errs, field.Duplicate(p.Child("clusterName"), c.ClusterName))
			continue
		case !slices.Contains(ws.Spec.Clusters, c.ClusterName):
			errs = append(errs, field.NotSupported(p.Child("clusterName"), c.ClusterName, ws.Spec.Clusters))
			continue
		}
		seen[c.ClusterName] = true
		for j, name := range c.Templates {
			tp := p.Child("templates").Index(j)
			t := templates[name]
			if t == nil {
				errs = append(errs, field.NotFound(tp, name))
				continue
			}
			for _, e := range ValidateTemplateUse(t, ws, c.ClusterName, pol) {
				errs = append(errs, field.Invalid(tp, name, fmt.Sprintf("template %q on cluster %q: %s", name, c.ClusterName, e.Error())))
			}
		}
	}
	return errs
}

// BindingUses reports whether binding b names template (as a template or
// a default, on any cluster).
func BindingUses(b *v1alpha1.GPRTemplateBinding, template string) bool {
	for _, c := range b.Spec.Clusters {
		if c.DefaultTemplateName == template || slices.Contains(c.Templates, template) {
			return true
		}
	}
	return false
}

// AutoGPRTemplate is the cluster and template auto-GPR makes a GPR from for
// workspace ws under binding b: the default template of the first of the
// workspace's clusters (in the workspace's order) that has one in b. ok is
// false when auto-GPR is off or no cluster has a default.
func AutoGPRTemplate(b *v1alpha1.GPRTemplateBinding, ws *v1alpha1.Workspace) (cluster, template string, ok bool) {
	if b == nil || !b.Spec.EnableAutoGPR || ws == nil {
		return "", "", false
	}
	for _, wc := range ws.Spec.Clusters {
		for _, c := range b.Spec.Clusters {
			if c.ClusterName == wc && c.DefaultTemplateName != "" {
				return c.ClusterName, c.DefaultTemplateName, true
			}
		}
	}
	return "", "", false
}
