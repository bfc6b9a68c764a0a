package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
)

// Checking and applying the fields a workspace request sets.

// validateWorkspace checks what the CRD schema cannot: namespace names,
// namespaces another workspace owns, system namespaces, known clusters.
func (s *Server) validateWorkspace(ctx context.Context, name string, f *WorkspaceFields) error {
	var bad []envelope.FieldError
	bad = append(bad, dnsLabel("workspaceName", name)...)
	if slices.Contains(reservedWorkspaceNames, name) {
		bad = append(bad, envelope.FieldError{Field: "workspaceName", Reason: fmt.Sprintf("%q is reserved (it is a path under /slice-workspace/)", name)})
	}
	seen := map[string]bool{}
	for i, ns := range f.Namespaces {
		field := fmt.Sprintf("namespaces[%d]", i)
		if errs := dnsLabel(field, ns); errs != nil {
			bad = append(bad, errs...)
			continue
		}
		if seen[ns] {
			bad = append(bad, envelope.FieldError{Field: field, Reason: fmt.Sprintf("namespace %q is listed twice", ns)})
		}
		seen[ns] = true
		if strings.HasPrefix(ns, "kube-") || ns == s.cfg.Namespace {
			bad = append(bad, envelope.FieldError{Field: field, Reason: fmt.Sprintf("namespace %q is a system namespace and cannot belong to a workspace", ns)})
		}
	}
	known, err := s.knownClusters(ctx)
	if err != nil {
		return err
	}
	cseen := map[string]bool{}
	for i, c := range f.Clusters {
		field := fmt.Sprintf("clusters[%d]", i)
		switch {
		case cseen[c]:
			bad = append(bad, envelope.FieldError{Field: field, Reason: fmt.Sprintf("cluster %q is listed twice", c)})
		case !slices.Contains(known, c):
			bad = append(bad, envelope.FieldError{Field: field, Reason: fmt.Sprintf("unknown cluster %q; known clusters: %s", c, strings.Join(known, ", "))})
		}
		cseen[c] = true
	}
	if f.MaxClusters > 0 && int(f.MaxClusters) < len(f.Clusters) {
		bad = append(bad, envelope.FieldError{Field: "maxClusters", Reason: fmt.Sprintf("%d is fewer than the %d clusters listed", f.MaxClusters, len(f.Clusters))})
	}
	if len(bad) > 0 {
		return envelope.Validation(bad...)
	}
	// A namespace belongs to one workspace: its ServiceAccount and node
	// binding would otherwise be shared.
	var list v1alpha1.WorkspaceList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return s.kubeErr(err, "workspaces")
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name == name {
			continue
		}
		for _, n := range other.Spec.Namespaces {
			if seen[n.Namespace] {
				return envelope.Conflict("namespace %q already belongs to workspace %q", n.Namespace, other.Name)
			}
		}
	}
	return nil
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
