package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/internal/admission"
)

// Checking and applying the fields a workspace request sets.

// validateWorkspace checks what the CRD schema cannot, with the rules the
// workspace controller applies to kubectl-created Workspaces
// (admission.ValidateWorkspace, admission.NamespaceTaken), plus the
// clusters this hub knows.
func (s *Server) validateWorkspace(ctx context.Context, name string, f *WorkspaceFields) error {
	known, err := s.knownClusters(ctx)
	if err != nil {
		return err
	}
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	applyWorkspaceFields(ws, f)
	ws.Spec.MaxClusters = f.MaxClusters // as asked, not applyWorkspaceFields's default of 16: 0 means unset, not checked
	if errs := admission.ValidateWorkspace(ws, admission.WorkspaceRules{SystemNamespace: s.cfg.Namespace, KnownClusters: known}); len(errs) > 0 {
		return envelope.Validation(workspaceFieldErrors(errs, known)...)
	}
	var list v1alpha1.WorkspaceList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return s.kubeErr(err, "workspaces")
	}
	if ns, owner, taken := admission.NamespaceTaken(ws, list.Items); taken {
		return envelope.Conflict("namespace %q already belongs to workspace %q", ns, owner)
	}
	return nil
}

// workspaceFieldErrors names admission's errors as the request body does:
// spec.namespaces[0].namespace is namespaces[0], metadata.name is
// workspaceName.
func workspaceFieldErrors(errs field.ErrorList, known []string) []envelope.FieldError {
	out := make([]envelope.FieldError, 0, len(errs))
	for _, e := range errs {
		name := strings.TrimPrefix(e.Field, "spec.")
		name = strings.TrimSuffix(name, ".namespace")
		if name == "metadata.name" {
			name = "workspaceName"
		}
		fe := envelope.FieldError{Field: name, Value: fmt.Sprint(e.BadValue), Reason: e.Detail}
		switch e.Type {
		case field.ErrorTypeDuplicate:
			fe.Reason = fmt.Sprintf("%q is listed twice", fe.Value)
		case field.ErrorTypeNotSupported:
			fe.Reason = fmt.Sprintf("unknown cluster %q; known clusters: %s", fe.Value, strings.Join(known, ", "))
		}
		out = append(out, fe)
	}
	return out
}

func applyWorkspaceFields(ws *v1alpha1.Workspace, f *WorkspaceFields) {
	ws.Spec.Username = f.Username
	ws.Spec.Email = f.Email
	ws.Spec.Clusters = slices.Clone(f.Clusters)
	ws.Spec.Namespaces = make([]v1alpha1.WorkspaceNamespace, len(f.Namespaces))
	for i, n := range f.Namespaces {
		ws.Spec.Namespaces[i] = v1alpha1.WorkspaceNamespace{Namespace: n}
	}
	ws.Spec.OverlayNetworkDeploymentMode = v1alpha1.OverlayNetworkMode(f.OverlayNetworkDeploymentMode)
	if ws.Spec.OverlayNetworkDeploymentMode == "" {
		ws.Spec.OverlayNetworkDeploymentMode = v1alpha1.OverlayNoNetwork
	}
	ws.Spec.SliceSubnet = f.SliceSubnet
	ws.Spec.SliceGatewayType = f.SliceGWType
	ws.Spec.StandardQosProfileName = f.StandardQosProfileName
	ws.Spec.MaxClusters = f.MaxClusters
	if ws.Spec.MaxClusters == 0 {
		ws.Spec.MaxClusters = 16
	}
	if f.SliceDescription != "" {
		ws.Spec.Description = f.SliceDescription
	}
}
