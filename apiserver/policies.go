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
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// PolicyClusterConstraints are a policy's GPU constraints for one cluster.
type PolicyClusterConstraints struct {
	ClusterName     string   `json:"clusterName" minLength:"1" maxLength:"63" doc:"Cluster the constraints apply to (one of the workspace's)"`
	GPUShapes       []string `json:"gpuShapes,omitempty" maxItems:"64" doc:"GPU shapes the workspace's GPRs may ask for in this cluster; replaces gpuShapes there"`
	MaxGPUPerGPR    int32    `json:"maxGpuPerGpr,omitempty" minimum:"0" doc:"Most GPUs per GPR in this cluster (numberOfGPUs × numberOfGPUNodes); replaces maxGpuPerGpr there; 0 keeps it"`
	MaxMemoryPerGPR int32    `json:"maxMemoryPerGpr,omitempty" minimum:"0" doc:"Most GPU memory in GB per GPR in this cluster; replaces maxMemoryPerGpr there; 0 keeps it"`
}

// WorkspacePolicyBody is the body of PUT /workspace-policies/{name}. It
// replaces the whole policy: fields left out take EGS's defaults.
type WorkspacePolicyBody struct {
	_ struct{} `additionalProperties:"true"`

	PriorityRange            string                     `json:"priorityRange,omitempty" enum:"low,medium,high" doc:"Highest priority band the workspace's GPRs may use: low (1-100), medium (up to 200), high (up to 300); default low"`
	MaxGPRs                  *int32                     `json:"maxGPRs,omitempty" minimum:"0" maximum:"100000" doc:"GPRs the workspace may have queued or provisioned at once; default 3"`
	MaxExitDurationPerGPR    schema.PolicyDuration      `json:"maxExitDurationPerGPR,omitempty" doc:"Longest exitDuration of a GPR, in weeks (W) or months (M, 30 days); default 1W"`
	EnforceIdleTimeOut       bool                       `json:"enforceIdleTimeOut,omitempty" doc:"Every GPR must give idleTimeOutDuration and is released when its GPUs stay idle that long"`
	RequeueOnFailure         *bool                      `json:"requeueOnFailure,omitempty" doc:"The workspace's GPRs go back to the queue when they fail or are evicted; default true"`
	EnableAutoEviction       *bool                      `json:"enableAutoEviction,omitempty" doc:"The workspace's GPRs with enableEviction may evict lower-priority GPRs; default true"`
	MinRuntimeBeforeEviction schema.OptionalDuration    `json:"minRuntimeBeforeEviction,omitempty" doc:"How long (NdNhNm) a GPR of the workspace runs before it may be evicted; default 0d0h5m"`
	GPUShapes                []string                   `json:"gpuShapes,omitempty" maxItems:"64" doc:"GPU shapes the workspace's GPRs may ask for (e.g. H100, T4); empty allows any"`
	MaxGPUPerGPR             int32                      `json:"maxGpuPerGpr,omitempty" minimum:"0" doc:"Most GPUs one GPR may hold in all (numberOfGPUs × numberOfGPUNodes); 0 is no limit"`
	MaxMemoryPerGPR          int32                      `json:"maxMemoryPerGpr,omitempty" minimum:"0" doc:"Most GPU memory in GB one GPR may ask for in all (memoryPerGPU × GPUs); 0 is no limit"`
	ClusterConstraints       []PolicyClusterConstraints `json:"clusterConstraints,omitempty" maxItems:"64" doc:"GPU constraints for one cluster, replacing the workspace-wide ones there"`
	// Topology is gpuspace's (topology.go).
	Topology *PolicyTopology `json:"topology,omitempty" doc:"gpuspace: a topology level the workspace's GPRs of minNodes or more must name (given to them when they name none)"`
}

// WorkspacePolicy is a workspace's policy as the API reports it, with
// every default filled in.
type WorkspacePolicy struct {
	WorkspaceName            string                     `json:"workspaceName"`
	PriorityRange            string                     `json:"priorityRange" enum:"low,medium,high"`
	MaxGPRs                  int32                      `json:"maxGPRs"`
	MaxExitDurationPerGPR    string                     `json:"maxExitDurationPerGPR" doc:"Weeks (W) or months (M, 30 days)"`
	EnforceIdleTimeOut       bool                       `json:"enforceIdleTimeOut"`
	RequeueOnFailure         bool                       `json:"requeueOnFailure"`
	EnableAutoEviction       bool                       `json:"enableAutoEviction"`
	MinRuntimeBeforeEviction string                     `json:"minRuntimeBeforeEviction" doc:"Go duration, e.g. 0h5m0s"`
	GPUShapes                []string                   `json:"gpuShapes"`
	MaxGPUPerGPR             int32                      `json:"maxGpuPerGpr"`
	MaxMemoryPerGPR          int32                      `json:"maxMemoryPerGpr"`
	ClusterConstraints       []PolicyClusterConstraints `json:"clusterConstraints"`
	CreatedAt                string                     `json:"createdAt"`
	// Topology is gpuspace's (topology.go); absent when it sets none.
	Topology *PolicyTopology `json:"topology,omitempty" doc:"gpuspace: the topology level required of large GPRs"`
}

// WorkspacePolicyList is the data of GET /workspace-policies.
type WorkspacePolicyList struct {
	Items []WorkspacePolicy `json:"items"`
}

type policyNameInput struct {
	Name schema.DNSLabel `path:"name" doc:"Workspace name (a policy is named after its workspace)"`
}

type policyPutInput struct {
	Name schema.DNSLabel `path:"name" doc:"Workspace name (a policy is named after its workspace)"`
	Body WorkspacePolicyBody
}

func (s *Server) registerPolicies() {
	const tag = "Workspace policies"
	register(s, opSpec{
		id: "listWorkspacePolicies", method: http.MethodGet, path: "/api/v1/workspace-policies", tag: tag,
		summary:     "List workspace policies",
		description: "Lists the policies of the workspaces the caller may read. A workspace without a policy has no limits.",
		roles:       rolesReaders, scope: scopeEach, readOnly: true, idempotent: true, mcpName: "policies_list",
	}, s.listPolicies)
	register(s, opSpec{
		id: "getWorkspacePolicy", method: http.MethodGet, path: "/api/v1/workspace-policies/{name}", tag: tag,
		summary:     "Get a workspace's policy",
		description: "Returns the limits of one workspace's GPRs: priority range, maxGPRs, max exitDuration, GPU shapes, GPUs and memory per GPR (globally and per cluster), eviction and requeue. 404 when the workspace has no policy, which means no limits.",
		roles:       rolesReaders, scope: readsWorkspace(inPath("name")), readOnly: true, idempotent: true, mcpName: "policies_get",
		guidance: "Read it before gprs_create when a GPR is refused with a WorkspacePolicy limit: the answer says which priorities, shapes and sizes the workspace may ask for.",
		errors:   []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.getPolicy)
	register(s, opSpec{
		id: "putWorkspacePolicy", method: http.MethodPut, path: "/api/v1/workspace-policies/{name}", tag: tag,
		summary:     "Set a workspace's policy",
		description: "Creates or replaces the policy of a workspace; fields left out take EGS's defaults (priorityRange low, maxGPRs 3, maxExitDurationPerGPR 1W, requeueOnFailure and enableAutoEviction true). Enforced when GPRs are created; tightening it never touches provisioned GPRs, and queued GPRs it no longer allows are held (status reason Policy) until it allows them again.",
		roles:       rolesOwner, idempotent: true, mcpName: "policies_update", units: []Unit{UnitGPUMemory, UnitDurations},
		guidance: "Replaces the whole policy: send every limit you want to keep. Queued GPRs the new policy forbids stay queued but held; provisioned ones keep their nodes.",
		errors:   []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.putPolicy)
}

func (s *Server) listPolicies(ctx context.Context, _ *noInput) (*envelope.Output[WorkspacePolicyList], error) {
	p := principal(ctx)
	var list v1alpha1.WorkspacePolicyList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "workspace policies")
	}
	out := WorkspacePolicyList{Items: []WorkspacePolicy{}}
	for i := range list.Items {
		if p.CanRead(list.Items[i].Name) {
			out.Items = append(out.Items, policyOf(&list.Items[i]))
		}
	}
	slices.SortFunc(out.Items, func(a, b WorkspacePolicy) int { return strings.Compare(a.WorkspaceName, b.WorkspaceName) })
	return envelope.OK(out), nil
}

func (s *Server) getPolicy(ctx context.Context, in *policyNameInput) (*envelope.Output[WorkspacePolicy], error) {
	if _, err := s.sliceWorkspace(ctx, string(in.Name)); err != nil {
		return nil, err
	}
	pol, err := s.policy(ctx, string(in.Name))
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return nil, envelope.NotFound("workspace %q has no policy: its GPRs have no limits", in.Name)
	}
	return envelope.OK(policyOf(pol)), nil
}

// policy is a workspace's policy from the cache, then (one written a
// moment ago) the apiserver; nil when it has none.
func (s *Server) policy(ctx context.Context, workspace string) (*v1alpha1.WorkspacePolicy, error) {
	pol, err := s.view.Policy(ctx, workspace)
	return pol, s.viewErr(err)
}

func (s *Server) putPolicy(ctx context.Context, in *policyPutInput) (*envelope.Output[WorkspacePolicy], error) {
	ws, err := s.sliceWorkspace(ctx, string(in.Name))
	if err != nil {
		return nil, err
	}
	b := &in.Body
	var bad []envelope.FieldError
	for i, c := range b.ClusterConstraints {
		if !slices.Contains(ws.Spec.Clusters, c.ClusterName) {
			bad = append(bad, envelope.FieldError{Field: fmt.Sprintf("clusterConstraints[%d].clusterName", i), Value: c.ClusterName,
				Reason: fmt.Sprintf("workspace %q is not on cluster %q; its clusters: %s", ws.Name, c.ClusterName, strings.Join(ws.Spec.Clusters, ", "))})
		}
		if slices.ContainsFunc(b.ClusterConstraints[:i], func(o PolicyClusterConstraints) bool { return o.ClusterName == c.ClusterName }) {
			bad = append(bad, envelope.FieldError{Field: fmt.Sprintf("clusterConstraints[%d].clusterName", i), Value: c.ClusterName, Reason: "is given twice"})
		}
	}
	bad, err = s.checkPolicyTopology(ctx, b.Topology, bad)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, envelope.Validation(bad...)
	}
	spec := v1alpha1.WorkspacePolicySpec{
		PriorityRange: v1alpha1.PriorityBand(b.PriorityRange), MaxGPRs: b.MaxGPRs,
		MaxExitDurationPerGPR: string(b.MaxExitDurationPerGPR), EnforceIdleTimeOut: b.EnforceIdleTimeOut,
		RequeueOnFailure: b.RequeueOnFailure, EnableAutoEviction: b.EnableAutoEviction,
		MinRuntimeBeforeEviction: string(b.MinRuntimeBeforeEviction),
		GPUConstraints:           v1alpha1.GPUConstraints{GPUShapes: b.GPUShapes, MaxGPUPerGPR: b.MaxGPUPerGPR, MaxMemoryPerGPR: b.MaxMemoryPerGPR},
		Topology:                 b.Topology.spec(),
	}
	for _, c := range b.ClusterConstraints {
		spec.ClusterConstraints = append(spec.ClusterConstraints, v1alpha1.ClusterGPUConstraints{ClusterName: c.ClusterName,
			GPUConstraints: v1alpha1.GPUConstraints{GPUShapes: c.GPUShapes, MaxGPUPerGPR: c.MaxGPUPerGPR, MaxMemoryPerGPR: c.MaxMemoryPerGPR}})
	}
	what := fmt.Sprintf("workspace policy %q", ws.Name)
	var pol v1alpha1.WorkspacePolicy
	// Conflict: written meanwhile; already exists: created meanwhile.
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err = retry.OnError(retry.DefaultBackoff, retriable, func() error {
		pol = v1alpha1.WorkspacePolicy{}
		err := s.client.Get(ctx, types.NamespacedName{Name: ws.Name}, &pol)
		switch {
		case apierrors.IsNotFound(err):
			// Deleted with its workspace (garbage collection).
			pol = v1alpha1.WorkspacePolicy{ObjectMeta: metav1.ObjectMeta{Name: ws.Name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "Workspace", Name: ws.Name, UID: ws.UID, Controller: ptr.To(false),
			}}}, Spec: spec}
			return s.client.Create(ctx, &pol)
		case err == nil:
			pol.Spec = spec
			return s.client.Update(ctx, &pol)
		}
		return err
	})
	if err != nil {
		return nil, s.kubeErr(err, what)
	}
	s.awaitCache(ctx, &pol, false)
	return envelope.OK(policyOf(&pol)), nil
}

// policyOf renders a policy with its defaults filled in, as the rules
// read it.
func policyOf(p *v1alpha1.WorkspacePolicy) WorkspacePolicy {
	maxGPRs, _ := domain.MaxGPRs(p)
	out := WorkspacePolicy{
		WorkspaceName: p.Name, PriorityRange: string(domain.PolicyBand(p)), MaxGPRs: maxGPRs,
		MaxExitDurationPerGPR:    orDefault(p.Spec.MaxExitDurationPerGPR, v1alpha1.DefaultPolicyMaxExitDurationPerGPR),
		EnforceIdleTimeOut:       p.Spec.EnforceIdleTimeOut,
		RequeueOnFailure:         domain.RequeueOnFailure(&v1alpha1.GPUProvisionRequest{}, p),
		EnableAutoEviction:       domain.EvictionAllowed(p),
		MinRuntimeBeforeEviction: duration.Format(domain.MinRuntimeBeforeEviction(p)),
		GPUShapes:                nonNil(slices.Clone(p.Spec.GPUShapes)),
		MaxGPUPerGPR:             p.Spec.MaxGPUPerGPR, MaxMemoryPerGPR: p.Spec.MaxMemoryPerGPR,
		ClusterConstraints: []PolicyClusterConstraints{},
		CreatedAt:          rfc3339(&p.CreationTimestamp),
		Topology:           policyTopologyOut(p.Spec.Topology),
	}
	for _, c := range p.Spec.ClusterConstraints {
		out.ClusterConstraints = append(out.ClusterConstraints, PolicyClusterConstraints{ClusterName: c.ClusterName,
			GPUShapes: slices.Clone(c.GPUShapes), MaxGPUPerGPR: c.MaxGPUPerGPR, MaxMemoryPerGPR: c.MaxMemoryPerGPR})
	}
	return out
}
