package admission

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func TestTemplates(t *testing.T) {
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: v1alpha1.WorkspaceSpec{Clusters: []string{"prod", "east"}}}
	tmpl := func(name, cluster, exit string) *v1alpha1.GPRTemplate {
		return &v1alpha1.GPRTemplate{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.GPRTemplateSpec{ClusterName: cluster, NumberOfGPUs: 8, ExitDuration: exit}}
	}
	if errs := ValidateTemplate(tmpl("ok", "", "0d1h0m")); len(errs) != 0 {
		t.Errorf("valid template: %v", errs)
	}
	if errs := ValidateTemplate(tmpl("bad", "prod", "0d0h0m")); len(errs) != 1 || errs[0].Field != "spec.exitDuration" {
		t.Errorf("zero exitDuration: %v, want one error on spec.exitDuration", errs)
	}
	if errs := ValidateTemplateUse(tmpl("any", "", "0d1h0m"), ws, "east", nil); len(errs) != 0 {
		t.Errorf("a template of no cluster on the workspace's cluster: %v", errs)
	}
	if errs := ValidateTemplateUse(tmpl("prod", "prod", "0d1h0m"), ws, "east", nil); len(errs) != 1 || !strings.Contains(errs[0].Detail, `for cluster "prod", not "east"`) {
		t.Errorf("a template of another cluster: %v", errs)
	}
	if errs := ValidateTemplateUse(tmpl("any", "", "0d1h0m"), ws, "west", nil); len(errs) != 1 || errs[0].Field != "spec.clusterName" {
		t.Errorf("a cluster not the workspace's: %v", errs)
	}
	// The workspace's policy limits what its templates may ask for.
	pol := &v1alpha1.WorkspacePolicy{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: v1alpha1.WorkspacePolicySpec{
		PriorityRange: v1alpha1.BandHigh, GPUConstraints: v1alpha1.GPUConstraints{MaxGPUPerGPR: 4}}}
	if errs := ValidateTemplateUse(tmpl("any", "", "0d1h0m"), ws, "east", pol); len(errs) != 1 || errs[0].Field != "spec.numberOfGPUs" || !strings.Contains(errs[0].Detail, `WorkspacePolicy "team"`) {
		t.Errorf("8 GPUs under a policy of at most 4: %v", errs)
	}
	g := TemplateGPR(tmpl("h100", "", "0d2h0m"), "team", "east")
	if g.Spec.GPRName != "h100" || g.Spec.Workspace != "team" || g.Spec.ClusterName != "east" || g.Spec.NumberOfGPUs != 8 || g.Spec.ExitDuration != "0d2h0m" {
		t.Errorf("TemplateGPR: %+v", g.Spec)
	}

	b := &v1alpha1.GPRTemplateBinding{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: v1alpha1.GPRTemplateBindingSpec{
		Workspace: "team", EnableAutoGPR: true,
		Clusters: []v1alpha1.GPRTemplateBindingCluster{
			{ClusterName: "east", DefaultTemplateName: "any"},
			{ClusterName: "prod", DefaultTemplateName: "prod", Templates: []string{"missing"}},
			{ClusterName: "west"},
			{ClusterName: "east"},
		},
	}}
	DefaultBinding(b)
	if got := b.Spec.Clusters[0].Templates; len(got) != 1 || got[0] != "any" {
		t.Errorf("DefaultBinding: templates %v, want the default added", got)
	}
	templates := map[string]*v1alpha1.GPRTemplate{"any": tmpl("any", "", "0d1h0m"), "prod": tmpl("prod", "prod", "0d1h0m")}
	var got []string
	for _, e := range ValidateBinding(b, ws, templates, nil) {
		got = append(got, e.Field+": "+string(e.Type))
	}
	want := []string{"spec.clusters[1].templates[0]: FieldValueNotFound", "spec.clusters[2].clusterName: FieldValueNotSupported", "spec.clusters[3].clusterName: FieldValueDuplicate"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("ValidateBinding:\n got %v\nwant %v", got, want)
	}
	if errs := ValidateBinding(b, nil, templates, nil); len(errs) != 1 || errs[0].Field != "spec.workspace" {
		t.Errorf("binding of a missing workspace: %v", errs)
	}
	if !BindingUses(b, "prod") || !BindingUses(b, "missing") || BindingUses(b, "other") {
		t.Error("BindingUses")
	}
	// Auto-GPR uses the default of the workspace's first cluster that has
	// one: prod comes first in the workspace.
	if c, tm, ok := AutoGPRTemplate(b, ws); !ok || c != "prod" || tm != "prod" {
		t.Errorf("AutoGPRTemplate = %s, %s, %v; want prod, prod", c, tm, ok)
	}
	b.Spec.EnableAutoGPR = false
	if _, _, ok := AutoGPRTemplate(b, ws); ok {
		t.Error("AutoGPRTemplate with auto-GPR off")
	}
}

// TestDefaultTemplate: what a template leaves out is filled, what it sets
// is kept.
func TestDefaultTemplate(t *testing.T) {
	empty := &v1alpha1.GPRTemplate{}
	DefaultTemplate(empty)
	if empty.Spec.NumberOfGPUNodes != 1 || empty.Spec.Priority != v1alpha1.DefaultPriority {
		t.Errorf("defaults: nodes %d, priority %d", empty.Spec.NumberOfGPUNodes, empty.Spec.Priority)
	}
	set := &v1alpha1.GPRTemplate{Spec: v1alpha1.GPRTemplateSpec{NumberOfGPUNodes: 3, Priority: 250}}
	DefaultTemplate(set)
	if set.Spec.NumberOfGPUNodes != 3 || set.Spec.Priority != 250 {
		t.Errorf("set: nodes %d, priority %d", set.Spec.NumberOfGPUNodes, set.Spec.Priority)
	}
}
