package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
	"github.com/gpuspace/gpuspace/internal/admission"
)

// GPR template bindings: which templates a workspace may use per cluster,
// and auto-GPR's default template.

// BindingClusterRequest is one cluster of a binding request.
type BindingClusterRequest struct {
	_                   struct{}                `additionalProperties:"true"`
	ClusterName         string                  `json:"clusterName" minLength:"1" maxLength:"63" doc:"One of the workspace's clusters"`
	DefaultTemplateName schema.OptionalDNSLabel `json:"defaultTemplateName,omitempty" doc:"Template auto-GPR makes GPRs from on this cluster; added to templates if missing"`
	Templates           []schema.DNSLabel       `json:"templates,omitempty" maxItems:"64" doc:"Templates the workspace may use on this cluster"`
}

// GPRTemplateBindingRequest is the body of POST and PUT
// /gpr-template-binding, as the EGS SDK sends it.
type GPRTemplateBindingRequest struct {
	_             struct{}                `additionalProperties:"true"`
	WorkspaceName schema.DNSLabel         `json:"workspaceName" minLength:"1" doc:"Workspace the templates are for; the binding is named after it"`
	Clusters      []BindingClusterRequest `json:"clusters,omitempty" maxItems:"32"`
	EnableAutoGPR bool                    `json:"enableAutoGPR,omitempty" doc:"A GPU pod of the workspace waiting for lack of a GPR makes one GPR from the default template"`
}

// GPRTemplateBindingName names a binding in a body (delete).
type GPRTemplateBindingName struct {
	_                      struct{}        `additionalProperties:"true"`
	GPRTemplateBindingName schema.DNSLabel `json:"gprTemplateBindingName" minLength:"1" doc:"Name of the binding (its workspace's name)"`
}

// BindingCluster is one cluster of a binding as EGS reports it, with the
// state of each template it names.
type BindingCluster struct {
	ClusterName           string            `json:"clusterName"`
	DefaultTemplateName   string            `json:"defaultTemplateName"`
	Templates             []string          `json:"templates"`
	DefaultTemplateStatus string            `json:"defaultTemplateStatus" doc:"Ready, or why the default template cannot be used; empty without one"`
	TemplateStatus        map[string]string `json:"templateStatus" doc:"Each template's state: Ready, NotFound, or Invalid: why"`
}

// GPRTemplateBindingWritten is the data of binding create and update.
type GPRTemplateBindingWritten struct {
	Name          string           `json:"name"`
	Namespace     string           `json:"namespace" doc:"Always empty: bindings are cluster-scoped"`
	Clusters      []BindingCluster `json:"clusters"`
	EnableAutoGPR bool             `json:"enableAutoGPR"`
}

// GPRTemplateBinding is a binding as EGS reports it (get).
type GPRTemplateBinding struct {
	Name          string           `json:"name"`
	Clusters      []BindingCluster `json:"clusters"`
	EnableAutoGPR bool             `json:"enableAutoGPR"`
}

// GPRTemplateBindingList is the data of GET /gpr-template-binding/list.
type GPRTemplateBindingList struct {
	TemplateBindings []GPRTemplateBinding `json:"templateBindings"`
}

type bindingInput struct{ Body GPRTemplateBindingRequest }
type bindingNameBodyInput struct{ Body GPRTemplateBindingName }
type bindingNameQueryInput struct {
	GPRTemplateBindingName schema.DNSLabel `query:"gprTemplateBindingName" required:"true" doc:"Name of the binding (its workspace's name)"`
}

// bindingFromRequest builds the binding of a create or update body and
// runs admission on it: the workspace exists (404 otherwise), its
// clusters and templates are valid (422).
func (s *Server) bindingFromRequest(ctx context.Context, r *GPRTemplateBindingRequest) (*v1alpha1.GPRTemplateBinding, error) {
	ws, err := s.sliceWorkspace(ctx, string(r.WorkspaceName))
	if err != nil {
		return nil, err
	}
	b := &v1alpha1.GPRTemplateBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ws.Name},
		Spec:       v1alpha1.GPRTemplateBindingSpec{Workspace: ws.Name, EnableAutoGPR: r.EnableAutoGPR},
	}
	for _, c := range r.Clusters {
		bc := v1alpha1.GPRTemplateBindingCluster{ClusterName: c.ClusterName, DefaultTemplateName: string(c.DefaultTemplateName)}
		for _, t := range c.Templates {
			if !slices.Contains(bc.Templates, string(t)) {
				bc.Templates = append(bc.Templates, string(t))
			}
		}
		b.Spec.Clusters = append(b.Spec.Clusters, bc)
	}
	admission.DefaultBinding(b)
	templates, err := s.templatesOf(ctx, b)
	if err != nil {
		return nil, err
	}
	pol, err := s.policy(ctx, ws.Name)
	if err != nil {
		return nil, err
	}
	if errs := admission.ValidateBinding(b, ws, templates, pol); len(errs) > 0 {
		out := make([]envelope.FieldError, 0, len(errs))
		for _, e := range errs {
			fe := envelope.FieldError{Field: strings.TrimPrefix(e.Field, "spec."), Value: fmt.Sprint(e.BadValue), Reason: e.Detail}
			switch e.Type {
			case field.ErrorTypeNotFound:
				fe.Reason = fmt.Sprintf("GPR template %q does not exist", fe.Value)
			case field.ErrorTypeNotSupported:
				fe.Reason = fmt.Sprintf("workspace %q is not on cluster %q; its clusters: %s", ws.Name, fe.Value, strings.Join(ws.Spec.Clusters, ", "))
			case field.ErrorTypeDuplicate:
				fe.Reason = "cluster named twice"
			}
			out = append(out, fe)
		}
		return nil, envelope.Validation(out...)
	}
	// The binding goes with its workspace.
	b.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "Workspace", Name: ws.Name, UID: ws.UID,
	}}
	return b, nil
}

// templatesOf reads the templates binding b names; a missing one is absent.
func (s *Server) templatesOf(ctx context.Context, b *v1alpha1.GPRTemplateBinding) (map[string]*v1alpha1.GPRTemplate, error) {
	out := map[string]*v1alpha1.GPRTemplate{}
	for _, c := range b.Spec.Clusters {
		for _, name := range c.Templates {
			if _, done := out[name]; done {
				continue
			}
			t, err := s.template(ctx, name)
			var e *envelope.Error
			switch {
			case errors.As(err, &e) && e.StatusCode == http.StatusNotFound:
				out[name] = nil
			case err != nil:
				return nil, err
			default:
				out[name] = t
			}
		}
	}
	for k, v := range out {
		if v == nil {
			delete(out, k)
		}
	}
	return out, nil
}

func (s *Server) createBinding(ctx context.Context, in *bindingInput) (*envelope.Output[GPRTemplateBindingWritten], error) {
	b, err := s.bindingFromRequest(ctx, &in.Body)
	if err != nil {
		return nil, err
	}
	if err := s.client.Create(ctx, b); err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR template binding %q", b.Name))
	}
	s.awaitCache(ctx, b, false)
	return s.bindingWritten(ctx, b)
}

func (s *Server) updateBinding(ctx context.Context, in *bindingInput) (*envelope.Output[GPRTemplateBindingWritten], error) {
	want, err := s.bindingFromRequest(ctx, &in.Body)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("GPR template binding %q", want.Name)
	var cur v1alpha1.GPRTemplateBinding
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur = v1alpha1.GPRTemplateBinding{}
		if err := s.client.Get(ctx, types.NamespacedName{Name: want.Name}, &cur); err != nil {
			return err
		}
		cur.Spec = want.Spec
		if len(cur.OwnerReferences) == 0 {
			cur.OwnerReferences = want.OwnerReferences
		}
		return s.client.Update(ctx, &cur)
	})
	if err != nil {
		return nil, s.kubeErr(err, what)
	}
	s.awaitCache(ctx, &cur, false)
	return s.bindingWritten(ctx, &cur)
}

func (s *Server) bindingWritten(ctx context.Context, b *v1alpha1.GPRTemplateBinding) (*envelope.Output[GPRTemplateBindingWritten], error) {
	out, err := s.bindingOut(ctx, b)
	if err != nil {
		return nil, err
	}
	return envelope.OK(GPRTemplateBindingWritten{Name: out.Name, Clusters: out.Clusters, EnableAutoGPR: out.EnableAutoGPR}), nil
}

func (s *Server) getBinding(ctx context.Context, in *bindingNameQueryInput) (*envelope.Output[GPRTemplateBinding], error) {
	b, err := s.binding(ctx, string(in.GPRTemplateBindingName))
	if err != nil {
		return nil, err
	}
	out, err := s.bindingOut(ctx, b)
	if err != nil {
		return nil, err
	}
	return envelope.OK(out), nil
}

func (s *Server) listBindings(ctx context.Context, _ *noInput) (*envelope.Output[GPRTemplateBindingList], error) {
	var l v1alpha1.GPRTemplateBindingList
	if err := s.cache.List(ctx, &l); err != nil {
		return nil, s.kubeErr(err, "GPR template bindings")
	}
	slices.SortFunc(l.Items, func(a, b v1alpha1.GPRTemplateBinding) int { return strings.Compare(a.Name, b.Name) })
	out := GPRTemplateBindingList{TemplateBindings: make([]GPRTemplateBinding, 0, len(l.Items))}
	for i := range l.Items {
		b, err := s.bindingOut(ctx, &l.Items[i])
		if err != nil {
			return nil, err
		}
		out.TemplateBindings = append(out.TemplateBindings, b)
	}
	return envelope.OK(out), nil
}

func (s *Server) deleteBinding(ctx context.Context, in *bindingNameBodyInput) (*envelope.Output[envelope.Empty], error) {
	name := string(in.Body.GPRTemplateBindingName)
	b, err := s.binding(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.client.Delete(ctx, b, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &b.UID}}); err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR template binding %q", name))
	}
	s.awaitCache(ctx, b, true)
	return envelope.OK(envelope.Empty{}), nil
}

// binding reads a binding; 404 if none.
func (s *Server) binding(ctx context.Context, name string) (*v1alpha1.GPRTemplateBinding, error) {
	var b v1alpha1.GPRTemplateBinding
	return &b, s.getCached(ctx, name, &b, fmt.Sprintf("GPR template binding %q", name))
}

// bindingOut is binding b as EGS reports it, with each template's state
// for its workspace now: Ready, NotFound, or Invalid with why.
func (s *Server) bindingOut(ctx context.Context, b *v1alpha1.GPRTemplateBinding) (GPRTemplateBinding, error) {
	ws, err := s.workspaceIfAny(ctx, b.Spec.Workspace)
	if err != nil {
		return GPRTemplateBinding{}, err
	}
	templates, err := s.templatesOf(ctx, b)
	if err != nil {
		return GPRTemplateBinding{}, err
	}
	pol, err := s.policy(ctx, b.Spec.Workspace)
	if err != nil {
		return GPRTemplateBinding{}, err
	}
	out := GPRTemplateBinding{Name: b.Name, EnableAutoGPR: b.Spec.EnableAutoGPR, Clusters: make([]BindingCluster, 0, len(b.Spec.Clusters))}
	for _, c := range b.Spec.Clusters {
		bc := BindingCluster{
			ClusterName: c.ClusterName, DefaultTemplateName: c.DefaultTemplateName,
			Templates: append([]string{}, c.Templates...), TemplateStatus: map[string]string{},
		}
		for _, name := range c.Templates {
			bc.TemplateStatus[name] = templateState(templates[name], ws, c.ClusterName, pol)
		}
		if c.DefaultTemplateName != "" {
			bc.DefaultTemplateStatus = templateState(templates[c.DefaultTemplateName], ws, c.ClusterName, pol)
		}
		out.Clusters = append(out.Clusters, bc)
	}
	return out, nil
}

// templateState is what a binding's answer says of template t (nil: it
// does not exist) for workspace ws on cluster under its policy pol.
func templateState(t *v1alpha1.GPRTemplate, ws *v1alpha1.Workspace, cluster string, pol *v1alpha1.WorkspacePolicy) string {
	if t == nil {
		return templateNotFound
	}
	errs := admission.ValidateTemplateUse(t, ws, cluster, pol)
	if len(errs) == 0 {
		return templateReady
	}
	return "Invalid: " + errs.ToAggregate().Error()
}
