package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
	"github.com/gpuspace/gpuspace/internal/admission"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// GPRTemplateRequest is the body of POST and PUT /gpr-template, as the EGS
// SDK sends it (create_gpr_template, update_gpr_template).
type GPRTemplateRequest struct {
	_ struct{} `additionalProperties:"true"`

	Name             schema.DNSLabel        `json:"name" minLength:"1" doc:"Name of the template"`
	ClusterName      string                 `json:"clusterName,omitempty" maxLength:"63" doc:"Cluster the GPRs are for; empty: the cluster the template is bound for"`
	NumberOfGPUs     int32                  `json:"numberOfGPUs" minimum:"1" maximum:"64" doc:"GPUs per node"`
	NumberOfGPUNodes int32                  `json:"numberOfGPUNodes,omitempty" minimum:"1" maximum:"1024" default:"1" doc:"Distinct nodes; default 1"`
	MemoryPerGpu     *int32                 `json:"memoryPerGpu,omitempty" minimum:"0" maximum:"4096" doc:"Memory per GPU in GB, at least (the EGS SDK's spelling)"`
	MemoryPerGPU     *int32                 `json:"memoryPerGPU,omitempty" minimum:"0" maximum:"4096" doc:"Same as memoryPerGpu"`
	GPUShape         string                 `json:"gpuShape,omitempty" maxLength:"128" doc:"GPU model, e.g. H100 (see inventory); empty for any"`
	InstanceType     string                 `json:"instanceType,omitempty" maxLength:"128" doc:"Node instance type; empty for any"`
	ExitDuration     schema.LenientDuration `json:"exitDuration" minLength:"1" doc:"How long the nodes are held, as NdNhNm (0d1h0m) or hours and minutes (1h)"`
	Priority         int32                  `json:"priority,omitempty" minimum:"1" maximum:"300" default:"101" doc:"1-300; default 101"`

	EnforceIdleTimeOut  bool                   `json:"enforceIdleTimeOut,omitempty" doc:"Release the GPR's nodes when its GPUs stay idle for idleTimeOutDuration"`
	IdleTimeOutDuration schema.LenientDuration `json:"idleTimeOutDuration,omitempty" doc:"NdNhNm or hours and minutes; required with enforceIdleTimeOut"`
	EnableEviction      bool                   `json:"enableEviction,omitempty" doc:"The GPRs may evict lower-priority provisioned GPRs while queued"`
	RequeueOnFailure    bool                   `json:"requeueOnFailure,omitempty" doc:"The GPRs stay queued when no inventory can satisfy them"`
	GPUSharingMode      string                 `json:"gpuSharingMode,omitempty" maxLength:"64"`
	// Topology is gpuspace's (topology.go).
	Topology *GPRTopology `json:"topology,omitempty" doc:"gpuspace: the GPRs' topology"`
}

// GPRTemplateName names a template in a body (delete).
type GPRTemplateName struct {
	_               struct{}        `additionalProperties:"true"`
	GPRTemplateName schema.DNSLabel `json:"gprTemplateName" minLength:"1" doc:"Name of the template"`
}

// GPRTemplateWritten is the data of template create and update.
type GPRTemplateWritten struct {
	GPRTemplateName string `json:"gprTemplateName" example:"h100-8x1"`
}

// GPRTemplate is a template as EGS reports it (get_gpr_template).
type GPRTemplate struct {
	Name                string `json:"name"`
	ClusterName         string `json:"clusterName"`
	NumberOfGPUs        int32  `json:"numberOfGPUs"`
	NumberOfGPUNodes    int32  `json:"numberOfGPUNodes"`
	MemoryPerGpu        int32  `json:"memoryPerGpu" doc:"GB per GPU, at least; 0: any"`
	GPUShape            string `json:"gpuShape"`
	InstanceType        string `json:"instanceType"`
	ExitDuration        string `json:"exitDuration" doc:"Go duration, e.g. 1h0m0s"`
	GPUSharingMode      string `json:"gpuSharingMode"`
	Priority            int32  `json:"priority"`
	EnforceIdleTimeOut  bool   `json:"enforceIdleTimeOut"`
	IdleTimeOutDuration string `json:"idleTimeOutDuration" doc:"Go duration; empty when none"`
	EnableEviction      bool   `json:"enableEviction"`
	RequeueOnFailure    bool   `json:"requeueOnFailure"`
	// Topology is gpuspace's (topology.go); absent when it names none.
	Topology *GPRTopology `json:"topology,omitempty" doc:"gpuspace: the GPRs' topology"`
}

// GPRTemplateList is the data of GET /gpr-template/list.
type GPRTemplateList struct {
	Items []GPRTemplate `json:"items"`
}

type gprTemplateInput struct{ Body GPRTemplateRequest }
type gprTemplateNameBodyInput struct{ Body GPRTemplateName }
type gprTemplateNameQueryInput struct {
	GPRTemplateName schema.DNSLabel `query:"gprTemplateName" required:"true" doc:"Name of the template"`
}

// Template states in a binding's answer.
const (
	templateReady    = "Ready"
	templateNotFound = "NotFound"
)

func (s *Server) registerTemplates() {
	const tag = "GPR templates"
	units := []Unit{UnitGPUMemory, UnitDurations}
	register(s, opSpec{
		id: "createGPRTemplate", method: http.MethodPost, path: "/api/v1/gpr-template", tag: tag,
		summary:     "Create a GPR template",
		description: "Creates a named set of GPR fields (GPUs per node, nodes, shape, instance type, memory per GPU, exitDuration, priority, idle timeout, eviction, requeue). Workspaces get templates through a GPR template binding; auto-GPR makes GPRs from a binding's default template. Validated as the GPR it would make.",
		roles:       rolesOwner, mcpName: "gpr_templates_create", units: units,
		guidance: "Read inventory_list first for the shapes, instance types and memory sizes that exist. Then give the template to workspaces with gpr_template_bindings_create.",
		errors:   []int{http.StatusConflict, http.StatusUnprocessableEntity},
	}, s.createTemplate)
	register(s, opSpec{
		id: "updateGPRTemplate", method: http.MethodPut, path: "/api/v1/gpr-template", tag: tag,
		summary:     "Update a GPR template",
		description: "Replaces a template's fields (send them all, as on create). The template must stay valid for every workspace whose binding uses it. GPRs made from it earlier keep what they asked for.",
		roles:       rolesOwner, idempotent: true, mcpName: "gpr_templates_update", units: units,
		guidance: "Send every field, as for gpr_templates_create: fields left out take their defaults.",
		errors:   []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.updateTemplate)
	register(s, opSpec{
		id: "getGPRTemplate", method: http.MethodGet, path: "/api/v1/gpr-template", tag: tag,
		summary:     "Get a GPR template",
		description: "Returns one template's fields; durations as Go durations (1h0m0s).",
		roles:       rolesReaders, scope: scopeNone, readOnly: true, idempotent: true, mcpName: "gpr_templates_get", units: units,
		errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.getTemplate)
	register(s, opSpec{
		id: "listGPRTemplates", method: http.MethodGet, path: "/api/v1/gpr-template/list", tag: tag,
		summary:     "List GPR templates",
		description: "Lists every template, by name.",
		roles:       rolesReaders, scope: scopeNone, readOnly: true, idempotent: true, mcpName: "gpr_templates_list", units: units,
	}, s.listTemplates)
	register(s, opSpec{
		id: "deleteGPRTemplate", method: http.MethodDelete, path: "/api/v1/gpr-template", tag: tag,
		summary:     "Delete a GPR template",
		description: "Deletes a template no binding uses; one a binding uses answers 409 naming the binding. GPRs made from it are not touched.",
		roles:       rolesOwner, destructive: true, mcpName: "gpr_templates_delete",
		guidance: "A 409 names the binding that uses the template: update that binding (gpr_template_bindings_update) first.",
		errors:   []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, s.deleteTemplate)

	const btag = "GPR template bindings"
	register(s, opSpec{
		id: "createGPRTemplateBinding", method: http.MethodPost, path: "/api/v1/gpr-template-binding", tag: btag,
		summary:     "Create a GPR template binding",
		description: "Gives a workspace its templates per cluster, a default template per cluster and enableAutoGPR: with it on, a GPU pod of the workspace that waits for lack of a GPR makes one GPR from the default template of the workspace's first cluster that has one — one at a time, and none while the workspace has a queued or provisioned GPR. The binding is named after the workspace.",
		roles:       rolesOwner, mcpName: "gpr_template_bindings_create",
		guidance: "Create the templates first (gpr_templates_create). Each clusterName must be one of the workspace's clusters.",
		errors:   []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, s.createBinding)
	register(s, opSpec{
		id: "updateGPRTemplateBinding", method: http.MethodPut, path: "/api/v1/gpr-template-binding", tag: btag,
		summary:     "Update a GPR template binding",
		description: "Replaces a workspace's binding: its clusters, templates, defaults and enableAutoGPR.",
		roles:       rolesOwner, idempotent: true, mcpName: "gpr_template_bindings_update",
		guidance: "Send the whole binding: clusters left out lose their templates.",
		errors:   []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.updateBinding)
	register(s, opSpec{
		id: "getGPRTemplateBinding", method: http.MethodGet, path: "/api/v1/gpr-template-binding", tag: btag,
		summary:     "Get a GPR template binding",
		description: "Returns a workspace's binding (named after the workspace) with the state of each template it names.",
		roles:       rolesOwner, readOnly: true, idempotent: true, mcpName: "gpr_template_bindings_get",
		errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.getBinding)
	register(s, opSpec{
		id: "listGPRTemplateBindings", method: http.MethodGet, path: "/api/v1/gpr-template-binding/list", tag: btag,
		summary:     "List GPR template bindings",
		description: "Lists every workspace's binding, by name.",
		roles:       rolesOwner, readOnly: true, idempotent: true, mcpName: "gpr_template_bindings_list",
	}, s.listBindings)
	register(s, opSpec{
		id: "deleteGPRTemplateBinding", method: http.MethodDelete, path: "/api/v1/gpr-template-binding", tag: btag,
		summary:     "Delete a GPR template binding",
		description: "Deletes a workspace's binding: auto-GPR stops for it. GPRs made from its templates are not touched.",
		roles:       rolesOwner, destructive: true, mcpName: "gpr_template_bindings_delete",
		errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.deleteBinding)
}

// templateFromRequest builds the template of a create or update body and
// runs admission's template checks on it.
func templateFromRequest(r *GPRTemplateRequest) (*v1alpha1.GPRTemplate, error) {
	var bad []envelope.FieldError
	var mem int32
	switch {
	case r.MemoryPerGPU != nil && r.MemoryPerGpu != nil && *r.MemoryPerGPU != *r.MemoryPerGpu:
		bad = append(bad, envelope.FieldError{Field: "memoryPerGpu",
			Reason: fmt.Sprintf("%d differs from memoryPerGPU %d; send one of them", *r.MemoryPerGpu, *r.MemoryPerGPU)})
	case r.MemoryPerGpu != nil:
		mem = *r.MemoryPerGpu
	case r.MemoryPerGPU != nil:
		mem = *r.MemoryPerGPU
	}
	exit, err := duration.Normalize(string(r.ExitDuration))
	if err != nil {
		bad = append(bad, envelope.FieldError{Field: "exitDuration", Value: string(r.ExitDuration), Reason: admission.DurationReason(err)})
	}
	idle := ""
	if r.IdleTimeOutDuration != "" {
		if idle, err = duration.Normalize(string(r.IdleTimeOutDuration)); err != nil {
			bad = append(bad, envelope.FieldError{Field: "idleTimeOutDuration", Value: string(r.IdleTimeOutDuration), Reason: admission.DurationReason(err)})
		}
	}
	if r.EnforceIdleTimeOut && r.IdleTimeOutDuration == "" {
		bad = append(bad, envelope.FieldError{Field: "idleTimeOutDuration", Reason: "is required with enforceIdleTimeOut"})
	}
	if len(bad) > 0 {
		return nil, envelope.Validation(bad...)
	}
	t := &v1alpha1.GPRTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: string(r.Name)},
		Spec: v1alpha1.GPRTemplateSpec{
			ClusterName: r.ClusterName, NumberOfGPUs: r.NumberOfGPUs, NumberOfGPUNodes: r.NumberOfGPUNodes,
			InstanceType: r.InstanceType, GPUShape: r.GPUShape, MemoryPerGPU: mem,
			Priority: r.Priority, ExitDuration: exit, IdleTimeOutDuration: idle,
			EnforceIdleTimeOut: r.EnforceIdleTimeOut, EnableEviction: r.EnableEviction,
			RequeueOnFailure: r.RequeueOnFailure, GPUSharingMode: r.GPUSharingMode,
			Topology: r.Topology.spec(),
		},
	}
	admission.DefaultTemplate(t)
	if errs := admission.ValidateTemplate(t); len(errs) > 0 {
		return nil, envelope.Validation(templateFieldErrors(errs)...)
	}
	return t, nil
}

// templateFieldErrors names admission's errors as the template body does.
func templateFieldErrors(errs field.ErrorList) []envelope.FieldError {
	out := make([]envelope.FieldError, 0, len(errs))
	for _, e := range errs {
		out = append(out, envelope.FieldError{Field: strings.TrimPrefix(e.Field, "spec."), Value: fmt.Sprint(e.BadValue), Reason: e.Detail})
	}
	return out
}

func (s *Server) createTemplate(ctx context.Context, in *gprTemplateInput) (*envelope.Output[GPRTemplateWritten], error) {
	t, err := templateFromRequest(&in.Body)
	if err != nil {
		return nil, err
	}
	if err := s.client.Create(ctx, t); err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR template %q", t.Name))
	}
	s.awaitCache(ctx, t, false)
	return envelope.OK(GPRTemplateWritten{GPRTemplateName: t.Name}), nil
}

func (s *Server) updateTemplate(ctx context.Context, in *gprTemplateInput) (*envelope.Output[GPRTemplateWritten], error) {
	want, err := templateFromRequest(&in.Body)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("GPR template %q", want.Name)
	// The template must stay valid for every workspace that uses it.
	uses, err := s.templateUses(ctx, want.Name)
	if err != nil {
		return nil, err
	}
	var bad []envelope.FieldError
	for _, u := range uses {
		ws, err := s.workspaceIfAny(ctx, u.binding.Spec.Workspace)
		if err != nil {
			return nil, err
		}
		pol, err := s.policy(ctx, u.binding.Spec.Workspace)
		if err != nil {
			return nil, err
		}
		for _, cluster := range u.clusters {
			for _, e := range admission.ValidateTemplateUse(want, ws, cluster, pol) {
				bad = append(bad, envelope.FieldError{Field: strings.TrimPrefix(e.Field, "spec."), Value: fmt.Sprint(e.BadValue),
					Reason: fmt.Sprintf("for workspace %q on cluster %q (binding %q): %s", u.binding.Spec.Workspace, cluster, u.binding.Name, e.Detail)})
			}
		}
	}
	if len(bad) > 0 {
		return nil, envelope.Validation(bad...)
	}
	var cur v1alpha1.GPRTemplate
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur = v1alpha1.GPRTemplate{}
		if err := s.client.Get(ctx, types.NamespacedName{Name: want.Name}, &cur); err != nil {
			return err
		}
		cur.Spec = want.Spec
		return s.client.Update(ctx, &cur)
	})
	if err != nil {
		return nil, s.kubeErr(err, what)
	}
	s.awaitCache(ctx, &cur, false)
	return envelope.OK(GPRTemplateWritten{GPRTemplateName: cur.Name}), nil
}

func (s *Server) getTemplate(ctx context.Context, in *gprTemplateNameQueryInput) (*envelope.Output[GPRTemplate], error) {
	t, err := s.template(ctx, string(in.GPRTemplateName))
	if err != nil {
		return nil, err
	}
	return envelope.OK(templateOut(t)), nil
}

func (s *Server) listTemplates(ctx context.Context, _ *noInput) (*envelope.Output[GPRTemplateList], error) {
	var l v1alpha1.GPRTemplateList
	if err := s.cache.List(ctx, &l); err != nil {
		return nil, s.kubeErr(err, "GPR templates")
	}
	out := GPRTemplateList{Items: make([]GPRTemplate, 0, len(l.Items))}
	for i := range l.Items {
		out.Items = append(out.Items, templateOut(&l.Items[i]))
	}
	slices.SortFunc(out.Items, func(a, b GPRTemplate) int { return strings.Compare(a.Name, b.Name) })
	return envelope.OK(out), nil
}

func (s *Server) deleteTemplate(ctx context.Context, in *gprTemplateNameBodyInput) (*envelope.Output[envelope.Empty], error) {
	name := string(in.Body.GPRTemplateName)
	t, err := s.template(ctx, name)
	if err != nil {
		return nil, err
	}
	uses, err := s.templateUses(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(uses) > 0 {
		names := make([]string, 0, len(uses))
		for _, u := range uses {
			names = append(names, u.binding.Name)
		}
		return nil, envelope.New(http.StatusConflict, envelope.KeyConflict,
			fmt.Sprintf("GPR template %q is used by GPR template binding %s; remove it from the binding first", name, quoteAll(names)),
			envelope.WithTitle("GPR Template In Use"))
	}
	if err := s.client.Delete(ctx, t, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &t.UID}}); err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR template %q", name))
	}
	s.awaitCache(ctx, t, true)
	return envelope.OK(envelope.Empty{}), nil
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// template reads a template; 404 if none.
func (s *Server) template(ctx context.Context, name string) (*v1alpha1.GPRTemplate, error) {
	var t v1alpha1.GPRTemplate
	return &t, s.getCached(ctx, name, &t, fmt.Sprintf("GPR template %q", name))
}

// getCached reads the cluster-scoped object name into obj from the cache,
// then (not there yet) the apiserver; 404 naming what if neither has it.
func (s *Server) getCached(ctx context.Context, name string, obj client.Object, what string) error {
	key := types.NamespacedName{Name: name}
	err := s.cache.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		err = s.client.Get(ctx, key, obj)
	}
	if err != nil {
		return s.kubeErr(err, what)
	}
	return nil
}

func templateOut(t *v1alpha1.GPRTemplate) GPRTemplate {
	return GPRTemplate{
		Name: t.Name, ClusterName: t.Spec.ClusterName,
		NumberOfGPUs: t.Spec.NumberOfGPUs, NumberOfGPUNodes: domain.NodeCount(&v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{NumberOfGPUNodes: t.Spec.NumberOfGPUNodes}}),
		MemoryPerGpu: t.Spec.MemoryPerGPU, GPUShape: t.Spec.GPUShape, InstanceType: t.Spec.InstanceType,
		ExitDuration: duration.ToGo(t.Spec.ExitDuration), GPUSharingMode: t.Spec.GPUSharingMode,
		Priority: t.Spec.Priority, EnforceIdleTimeOut: t.Spec.EnforceIdleTimeOut,
		IdleTimeOutDuration: duration.ToGo(t.Spec.IdleTimeOutDuration),
		EnableEviction:      t.Spec.EnableEviction, RequeueOnFailure: t.Spec.RequeueOnFailure,
		Topology: topologyOut(t.Spec.Topology),
	}
}

// templateUse is a binding that names a template, and the clusters it
// names it for.
type templateUse struct {
	binding  *v1alpha1.GPRTemplateBinding
	clusters []string
}

// templateUses returns the bindings that name template, by name.
func (s *Server) templateUses(ctx context.Context, template string) ([]templateUse, error) {
	var l v1alpha1.GPRTemplateBindingList
	if err := s.cache.List(ctx, &l); err != nil {
		return nil, s.kubeErr(err, "GPR template bindings")
	}
	var out []templateUse
	for i := range l.Items {
		b := &l.Items[i]
		if !admission.BindingUses(b, template) {
			continue
		}
		u := templateUse{binding: b}
		for _, c := range b.Spec.Clusters {
			if c.DefaultTemplateName == template || slices.Contains(c.Templates, template) {
				u.clusters = append(u.clusters, c.ClusterName)
			}
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b templateUse) int { return strings.Compare(a.binding.Name, b.binding.Name) })
	return out, nil
}

// workspaceIfAny is the workspace name, or nil when it does not exist.
func (s *Server) workspaceIfAny(ctx context.Context, name string) (*v1alpha1.Workspace, error) {
	ws, err := s.workspace(ctx, name)
	var e *envelope.Error
	if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	return ws, err
}
