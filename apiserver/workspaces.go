package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
)

// WorkspaceFields are the fields of a workspace create or update request,
// as EGS clients send them.
type WorkspaceFields struct {
	Clusters   []string `json:"clusters" minItems:"1" maxItems:"32" doc:"Clusters the workspace spans (see GET /api/v1/inventory/list for cluster names; a single-cluster install has worker-1)"`
	Namespaces []string `json:"namespaces" minItems:"1" maxItems:"256" doc:"Namespaces of the workspace (DNS-1123 labels); missing ones are created, none is ever deleted"`
	Username   string   `json:"username" minLength:"1" maxLength:"256" doc:"User, team, job or project the workspace is for"`
	Email      string   `json:"email,omitempty" maxLength:"320" doc:"Email of the user"`

	OverlayNetworkDeploymentMode string `json:"overlayNetworkDeploymentMode,omitempty" enum:"single-network,multi-network,no-network" doc:"Accepted for EGS compatibility; gpuspace runs no overlay network. Default no-network"`
	SliceSubnet                  string `json:"sliceSubnet,omitempty" maxLength:"64" doc:"Accepted for EGS compatibility (informational)"`
	SliceGWType                  string `json:"sliceGWType,omitempty" maxLength:"64" doc:"Accepted for EGS compatibility (informational)"`
	StandardQosProfileName       string `json:"standardQosProfileName,omitempty" maxLength:"253" doc:"Accepted for EGS compatibility (informational)"`
	MaxClusters                  int32  `json:"maxClusters,omitempty" minimum:"1" maximum:"32" doc:"Most clusters the workspace may span; default 16"`
	SliceDescription             string `json:"sliceDescription,omitempty" maxLength:"1024" doc:"Description of the workspace"`
}

// CreateWorkspaceBody is the body of POST /slice-workspace and of PUT
// /slice-workspace (update naming the workspace in the body).
type CreateWorkspaceBody struct {
	_             struct{}        `additionalProperties:"true"`
	WorkspaceName schema.DNSLabel `json:"workspaceName" minLength:"1" doc:"Name of the workspace"`
	WorkspaceFields
}

// UpdateWorkspaceBody is the body of PUT /slice-workspace/{name}.
type UpdateWorkspaceBody struct {
	_             struct{}                `additionalProperties:"true"`
	WorkspaceName schema.OptionalDNSLabel `json:"workspaceName,omitempty" doc:"Optional; must equal the name in the path"`
	WorkspaceFields
}

// WorkspaceNameBody names a workspace in the body (delete).
type WorkspaceNameBody struct {
	_             struct{}        `additionalProperties:"true"`
	WorkspaceName schema.DNSLabel `json:"workspaceName" minLength:"1" doc:"Name of the workspace"`
}

// WorkspaceCreated is the data of create and update.
type WorkspaceCreated struct {
	WorkspaceName string `json:"workspaceName" example:"team-a"`
}

// NamespaceClusters is a namespace of a workspace and its clusters.
type NamespaceClusters struct {
	Namespace string   `json:"namespace"`
	Clusters  []string `json:"clusters"`
}

// WorkspaceSummary is a workspace in the list.
type WorkspaceSummary struct {
	Name                         string              `json:"name"`
	OverlayNetworkDeploymentMode string              `json:"overlayNetworkDeploymentMode"`
	MaxClusters                  int32               `json:"maxClusters"`
	SliceDescription             string              `json:"sliceDescription"`
	Clusters                     []string            `json:"clusters"`
	Namespaces                   []NamespaceClusters `json:"namespaces"`
	Username                     string              `json:"username"`
	Email                        string              `json:"email"`
	ActiveGPR                    string              `json:"activeGPR" doc:"GPR provisioned to the workspace now, if any"`
	QueuedGPRs                   int32               `json:"queuedGPRs" doc:"How many GPRs of the workspace are queued"`
	Ready                        bool                `json:"ready" doc:"Namespaces, ServiceAccount and RBAC are in place"`
}

// WorkspaceList is the data of GET /slice-workspace/list.
type WorkspaceList struct {
	Workspaces []WorkspaceSummary `json:"workspaces"`
}

// Enabled is EGS's {"enabled": bool}.
type Enabled struct {
	Enabled bool `json:"enabled"`
}

// WorkspaceDetails is the data of GET /slice-workspace/{name}: the EGS
// slice details. Overlay network fields are what the client wrote (gpuspace
// runs no overlay network); status reflects the workspace's readiness.
type WorkspaceDetails struct {
	Name                         string `json:"name"`
	OverlayNetworkDeploymentMode string `json:"overlayNetworkDeploymentMode"`
	SliceSubnet                  string `json:"sliceSubnet"`
	SliceType                    string `json:"sliceType"`
	SliceGatewayProvider         struct {
		SliceGatewayType        string `json:"sliceGatewayType"`
		SliceCaType             string `json:"sliceCaType"`
		SliceGatewayServiceType []struct {
			Cluster  string `json:"cluster"`
			Type     string `json:"type"`
			Protocol string `json:"protocol"`
		} `json:"sliceGatewayServiceType"`
	} `json:"sliceGatewayProvider"`
	SliceIpamType          string   `json:"sliceIpamType"`
	Clusters               []string `json:"clusters"`
	StandardQosProfileName string   `json:"standardQosProfileName"`
	QosProfileDetails      struct {
		QueueType               string `json:"queueType"`
		Priority                int    `json:"priority"`
		TcType                  string `json:"tcType"`
		BandwidthCeilingKbps    int    `json:"bandwidthCeilingKbps"`
		BandwidthGuaranteedKbps int    `json:"bandwidthGuaranteedKbps"`
		DscpClass               string `json:"dscpClass"`
	} `json:"qosProfileDetails"`
	NamespaceIsolationProfile struct {
		IsolationEnabled      bool                `json:"isolationEnabled"`
		ApplicationNamespaces []NamespaceClusters `json:"applicationNamespaces"`
		AllowedNamespaces     []NamespaceClusters `json:"allowedNamespaces"`
	} `json:"namespaceIsolationProfile"`
	ExternalGatewayConfig []struct {
		Ingress     Enabled  `json:"ingress"`
		Egress      Enabled  `json:"egress"`
		NsIngress   Enabled  `json:"nsIngress"`
		GatewayType string   `json:"gatewayType"`
		Clusters    []string `json:"clusters"`
	} `json:"externalGatewayConfig"`
	MaxClusters      int32  `json:"maxClusters"`
	RotationInterval int    `json:"rotationInterval"`
	RenewBefore      string `json:"renewBefore"`
	VpnConfig        struct {
		Cipher string `json:"cipher"`
	} `json:"vpnConfig"`
	Status struct {
		SliceHealthStatus string `json:"sliceHealthStatus" enum:"Normal,Warning,Deleting"`
		ComponentStatuses []struct {
			Component             string `json:"component"`
			ComponentHealthStatus string `json:"componentHealthStatus"`
		} `json:"componentStatuses"`
		LastUpdated string `json:"lastUpdated"`
	} `json:"status"`

	SliceDescription string `json:"sliceDescription"`
	Username         string `json:"username"`
	Email            string `json:"email"`
	ActiveGPR        string `json:"activeGPR"`
	QueuedGPRs       int32  `json:"queuedGPRs"`
	ServiceAccount   string `json:"serviceAccount" doc:"ServiceAccount of the workspace in each of its namespaces"`
	TotalCost        string `json:"totalCost" doc:"USD: what the workspace's GPRs have cost, completed ones and provisioned ones so far (GPU-hours × the price of their shape); empty when no price is configured"`
}

// ClusterInfo is a cluster of a workspace in the overlay metrics answer.
type ClusterInfo struct {
	ClusterName string `json:"clusterName"`
	Location    string `json:"location" doc:"Region (or zone) from the nodes' topology labels"`
	Provider    string `json:"provider" doc:"Cloud provider from the nodes' providerID (aws, gcp, azure, ...)"`
}

// NetworkMetric is a latency/throughput sample between clusters (EGS);
// gpuspace runs no overlay network, so it never reports any.
type NetworkMetric struct {
	SourceCluster string `json:"sourceCluster"`
	TargetCluster string `json:"targetCluster"`
	Latency       int    `json:"latency"`
	Throughput    struct {
		TxRate int `json:"txRate"`
		RxRate int `json:"rxRate"`
	} `json:"throughput"`
}

// OverlayMetrics is the data of GET /workspace/overlaynetworkmetrics/{ws}.
type OverlayMetrics struct {
	WorkspaceName  string          `json:"workspaceName"`
	Clusters       []ClusterInfo   `json:"clusters"`
	NetworkMetrics []NetworkMetric `json:"networkMetrics" doc:"Always empty: gpuspace runs no overlay network"`
}

type createWorkspaceInput struct {
	Body CreateWorkspaceBody
}

type updateWorkspaceInput struct {
	Name schema.DNSLabel `path:"name" doc:"Name of the workspace"`
	Body UpdateWorkspaceBody
}

type updateWorkspaceByBodyInput struct {
	Body CreateWorkspaceBody
}

type workspaceNameInput struct {
	Body WorkspaceNameBody
}

type getWorkspaceInput struct {
	Name schema.DNSLabel `path:"name" doc:"Name of the workspace"`
}

type overlayInput struct {
	Workspace schema.DNSLabel `path:"workspace" doc:"Name of the workspace"`
}

type noInput struct{}

func (s *Server) registerWorkspaces() {
	const tag = "Slice workspaces"
	register(s, opSpec{
		id: "createWorkspace", method: http.MethodPost, path: "/api/v1/slice-workspace", tag: tag,
		summary:     "Create a workspace",
		description: "Creates a slice workspace: a user and the namespaces they run GPU workloads in, on the given clusters. Namespaces are created if missing. Ask for GPUs for it with POST /api/v1/gpr.",
		roles:       rolesOwner, mcpName: "workspaces_create",
		errors: []int{http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.createWorkspace)
	register(s, opSpec{
		id: "listWorkspaces", method: http.MethodGet, path: "/api/v1/slice-workspace/list", tag: tag,
		summary:     "List workspaces",
		description: "Lists the workspaces the caller may see (a workspace-scoped key sees its own), with clusters, namespaces, the provisioned GPR and the queue length.",
		roles:       rolesReaders, scope: scopeEach, readOnly: true, idempotent: true, mcpName: "workspaces_list",
	}, s.listWorkspaces)
	register(s, opSpec{
		id: "getWorkspace", method: http.MethodGet, path: "/api/v1/slice-workspace/{name}", tag: tag,
		summary:     "Get a workspace",
		description: "Returns the details of one workspace.",
		roles:       rolesReaders, scope: readsWorkspace(inPath("name")), readOnly: true, idempotent: true, mcpName: "workspaces_get",
		errors: []int{http.StatusNotFound},
	}, s.getWorkspace)
	register(s, opSpec{
		id: "updateWorkspace", method: http.MethodPut, path: "/api/v1/slice-workspace/{name}", tag: tag,
		summary:     "Update a workspace",
		description: "Replaces a workspace's clusters, namespaces, user and EGS settings. Namespaces dropped from the list are released from the workspace, not deleted.",
		roles:       rolesOwner, idempotent: true, mcpName: "workspaces_update",
		errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.updateWorkspace)
	register(s, opSpec{
		id: "updateWorkspaceByBody", method: http.MethodPut, path: "/api/v1/slice-workspace", tag: tag,
		summary:     "Update a workspace named in the body",
		description: "The same as PUT /api/v1/slice-workspace/{name}, with workspaceName in the body (older EGS clients).",
		roles:       rolesOwner, idempotent: true, aliasOf: "updateWorkspace",
		errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, func(ctx context.Context, in *updateWorkspaceByBodyInput) (*envelope.Output[WorkspaceCreated], error) {
		return s.updateWorkspace(ctx, &updateWorkspaceInput{Name: in.Body.WorkspaceName, Body: UpdateWorkspaceBody{
			WorkspaceName: schema.OptionalDNSLabel(in.Body.WorkspaceName), WorkspaceFields: in.Body.WorkspaceFields}})
	})
	register(s, opSpec{
		id: "deleteWorkspace", method: http.MethodDelete, path: "/api/v1/slice-workspace", tag: tag,
		summary:     "Delete a workspace",
		description: "Deletes a workspace: its GPRs are released and removed, its RBAC removed; its namespaces and their data stay. Deletion completes in the background.",
		roles:       rolesOwner, destructive: true, idempotent: false, mcpName: "workspaces_delete",
		guidance: "Cannot be undone: the workspace's GPRs are released and removed. Confirm with the user first.",
		errors:   []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.deleteWorkspace)
	register(s, opSpec{
		id: "getWorkspaceOverlayMetrics", method: http.MethodGet, path: "/api/v1/workspace/overlaynetworkmetrics/{workspace}", tag: tag,
		summary:     "Get a workspace's overlay network metrics",
		description: "gpuspace runs no overlay network: this answers the workspace's clusters (location and provider from node topology labels and providerID) and an empty networkMetrics list.",
		roles:       rolesReaders, scope: readsWorkspace(inPath("workspace")), readOnly: true, idempotent: true, mcpName: "workspaces_network_metrics",
		errors: []int{http.StatusNotFound},
	}, s.overlayMetrics)
	s.registerKubeconfig(tag)
}

func (s *Server) createWorkspace(ctx context.Context, in *createWorkspaceInput) (*envelope.Output[WorkspaceCreated], error) {
	name := string(in.Body.WorkspaceName)
	if err := s.validateWorkspace(ctx, name, &in.Body.WorkspaceFields); err != nil {
		return nil, err
	}
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	applyWorkspaceFields(ws, &in.Body.WorkspaceFields)
	if ws.Spec.Description == "" {
		ws.Spec.Description = "Created via slice workspace API"
	}
	if err := s.client.Create(ctx, ws); err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("workspace %q", name))
	}
	s.awaitCache(ctx, ws, false)
	return envelope.OK(WorkspaceCreated{WorkspaceName: name}), nil
}

func (s *Server) updateWorkspace(ctx context.Context, in *updateWorkspaceInput) (*envelope.Output[WorkspaceCreated], error) {
	name := string(in.Name)
	if in.Body.WorkspaceName != "" && string(in.Body.WorkspaceName) != name {
		return nil, envelope.Validation(envelope.FieldError{Field: "workspaceName",
			Reason: fmt.Sprintf("%q differs from the workspace in the path, %q", in.Body.WorkspaceName, name)})
	}
	if _, err := s.workspace(ctx, name); err != nil {
		return nil, err // 404 before any complaint about the body
	}
	if err := s.validateWorkspace(ctx, name, &in.Body.WorkspaceFields); err != nil {
		return nil, err
	}
	var ws v1alpha1.Workspace
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if err := s.client.Get(ctx, types.NamespacedName{Name: name}, &ws); err != nil {
			return err
		}
		if ws.DeletionTimestamp != nil {
			return envelope.Conflict("workspace %q is being deleted", name)
		}
		applyWorkspaceFields(&ws, &in.Body.WorkspaceFields)
		return s.client.Update(ctx, &ws)
	})
	if err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("workspace %q", name))
	}
	s.awaitCache(ctx, &ws, false)
	return envelope.OK(WorkspaceCreated{WorkspaceName: name}), nil
}

func (s *Server) deleteWorkspace(ctx context.Context, in *workspaceNameInput) (*envelope.Output[envelope.Empty], error) {
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: string(in.Body.WorkspaceName)}}
	if err := s.client.Delete(ctx, ws); err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("workspace %q", ws.Name))
	}
	s.awaitCache(ctx, ws, true)
	return envelope.OK(envelope.Empty{}), nil
}

func (s *Server) listWorkspaces(ctx context.Context, _ *noInput) (*envelope.Output[WorkspaceList], error) {
	p := principal(ctx)
	var list v1alpha1.WorkspaceList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "workspaces")
	}
	out := WorkspaceList{Workspaces: []WorkspaceSummary{}}
	for i := range list.Items {
		ws := &list.Items[i]
		if ws.DeletionTimestamp != nil || !p.CanRead(ws.Name) {
			continue
		}
		out.Workspaces = append(out.Workspaces, summaryOf(ws))
	}
	slices.SortFunc(out.Workspaces, func(a, b WorkspaceSummary) int { return strings.Compare(a.Name, b.Name) })
	return envelope.OK(out), nil
}

func (s *Server) getWorkspace(ctx context.Context, in *getWorkspaceInput) (*envelope.Output[WorkspaceDetails], error) {
	ws, err := s.workspace(ctx, string(in.Name))
	if err != nil {
		return nil, err
	}
	out := detailsOf(ws)
	if out.TotalCost, err = s.view.WorkspaceCost(ctx, ws.Name, s.now()); err != nil {
		return nil, err
	}
	return envelope.OK(out), nil
}

func (s *Server) overlayMetrics(ctx context.Context, in *overlayInput) (*envelope.Output[OverlayMetrics], error) {
	ws, err := s.workspace(ctx, string(in.Workspace))
	if err != nil {
		if e, ok := err.(*envelope.Error); ok && e.StatusCode == http.StatusNotFound {
			return nil, envelope.New(http.StatusNotFound, envelope.KeyNotFound, "No metrics found for workspace",
				envelope.WithTitle("Workspace not found"))
		}
		return nil, err
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := OverlayMetrics{WorkspaceName: ws.Name, Clusters: []ClusterInfo{}, NetworkMetrics: []NetworkMetric{}}
	for _, c := range ws.Spec.Clusters {
		info := ClusterInfo{ClusterName: c}
		for _, n := range nodes {
			if n.Cluster != c {
				continue
			}
			if info.Location == "" {
				info.Location = locationOf(n.Node)
			}
			if info.Provider == "" {
				info.Provider = providerOf(n.Node)
			}
		}
		out.Clusters = append(out.Clusters, info)
	}
	return envelope.OK(out), nil
}

// workspace reads a workspace from the cache, then (a workspace created a
// moment ago) from the apiserver; 404 if there is none.
func (s *Server) workspace(ctx context.Context, name string) (*v1alpha1.Workspace, error) {
	var ws v1alpha1.Workspace
	key := types.NamespacedName{Name: name}
	err := s.cache.Get(ctx, key, &ws)
	if apierrors.IsNotFound(err) {
		err = s.client.Get(ctx, key, &ws)
	}
	if err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("workspace %q", name))
	}
	return &ws, nil
}

func namespacesOf(ws *v1alpha1.Workspace) []NamespaceClusters {
	out := make([]NamespaceClusters, 0, len(ws.Spec.Namespaces))
	for _, n := range ws.Spec.Namespaces {
		clusters := n.Clusters
		if len(clusters) == 0 {
			clusters = ws.Spec.Clusters
		}
		out = append(out, NamespaceClusters{Namespace: n.Namespace, Clusters: nonNil(slices.Clone(clusters))})
	}
	return out
}

func summaryOf(ws *v1alpha1.Workspace) WorkspaceSummary {
	return WorkspaceSummary{
		Name:                         ws.Name,
		OverlayNetworkDeploymentMode: string(orDefault(ws.Spec.OverlayNetworkDeploymentMode, v1alpha1.OverlayNoNetwork)),
		MaxClusters:                  orDefault(ws.Spec.MaxClusters, 16),
		SliceDescription:             ws.Spec.Description,
		Clusters:                     nonNil(slices.Clone(ws.Spec.Clusters)),
		Namespaces:                   namespacesOf(ws),
		Username:                     ws.Spec.Username,
		Email:                        ws.Spec.Email,
		ActiveGPR:                    ws.Status.ActiveGPR,
		QueuedGPRs:                   ws.Status.QueuedGPRs,
		Ready:                        workspaceReady(ws),
	}
}

func workspaceReady(ws *v1alpha1.Workspace) bool {
	for _, c := range ws.Status.Conditions {
		if c.Type == v1alpha1.WorkspaceReady {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

func detailsOf(ws *v1alpha1.Workspace) WorkspaceDetails {
	var d WorkspaceDetails
	d.Name = ws.Name
	d.OverlayNetworkDeploymentMode = string(orDefault(ws.Spec.OverlayNetworkDeploymentMode, v1alpha1.OverlayNoNetwork))
	d.SliceSubnet = ws.Spec.SliceSubnet
	d.SliceType = "Application"
	d.SliceGatewayProvider.SliceGatewayType = ws.Spec.SliceGatewayType
	d.SliceGatewayProvider.SliceCaType = "Local"
	d.SliceGatewayProvider.SliceGatewayServiceType = nonNil(d.SliceGatewayProvider.SliceGatewayServiceType)
	d.SliceIpamType = "Local"
	d.Clusters = nonNil(slices.Clone(ws.Spec.Clusters))
	d.StandardQosProfileName = ws.Spec.StandardQosProfileName
	d.NamespaceIsolationProfile.ApplicationNamespaces = namespacesOf(ws)
	d.NamespaceIsolationProfile.AllowedNamespaces = []NamespaceClusters{}
	d.ExternalGatewayConfig = nonNil(d.ExternalGatewayConfig)
	d.MaxClusters = orDefault(ws.Spec.MaxClusters, 16)
	d.Status.SliceHealthStatus = "Warning"
	if workspaceReady(ws) {
		d.Status.SliceHealthStatus = "Normal"
	}
	if ws.DeletionTimestamp != nil {
		d.Status.SliceHealthStatus = "Deleting"
	}
	d.Status.ComponentStatuses = nonNil(d.Status.ComponentStatuses)
	for _, c := range ws.Status.Conditions {
		if c.Type == v1alpha1.WorkspaceReady {
			d.Status.LastUpdated = rfc3339(&c.LastTransitionTime)
		}
	}
	d.SliceDescription = ws.Spec.Description
	d.Username = ws.Spec.Username
	d.Email = ws.Spec.Email
	d.ActiveGPR = ws.Status.ActiveGPR
	d.QueuedGPRs = ws.Status.QueuedGPRs
	d.ServiceAccount = ws.Status.ServiceAccount
	return d
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// nonNil makes a nil slice an empty one, so it marshals as [] (EGS clients
// iterate over these fields without checking for null).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func rfc3339(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}
