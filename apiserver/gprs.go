package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
	"github.com/gpuspace/gpuspace/internal/admission"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/duration"
	"github.com/gpuspace/gpuspace/internal/util/index"
	"github.com/gpuspace/gpuspace/internal/view"
)

// GPRRequest is the body of POST /gpr and POST /gpr/waittime.
type GPRRequest struct {
	_ struct{} `additionalProperties:"true"`

	GPRName          schema.DNSLabel `json:"gprName" minLength:"1" doc:"Name of the request (not unique; gprId is the id)"`
	SliceName        schema.DNSLabel `json:"sliceName" minLength:"1" doc:"Workspace the GPUs are for"`
	ClusterName      string          `json:"clusterName,omitempty" maxLength:"63" doc:"Cluster to provision in; default the workspace's first cluster"`
	NumberOfGPUs     int32           `json:"numberOfGPUs" minimum:"1" maximum:"64" doc:"GPUs per node"`
	NumberOfGPUNodes int32           `json:"numberOfGPUNodes,omitempty" minimum:"1" maximum:"1024" default:"1" doc:"Distinct nodes; default 1"`
	InstanceType     string          `json:"instanceType,omitempty" maxLength:"128" doc:"Node instance type (see inventory); empty for any"`
	GPUShape         string          `json:"gpuShape,omitempty" maxLength:"128" doc:"GPU model, e.g. H100, A100, Tesla-T4 (see inventory); empty for any"`
	MemoryPerGPU     *int32          `json:"memoryPerGPU,omitempty" minimum:"0" maximum:"4096" doc:"Memory per GPU in GB, at least; 0 or absent for any"`
	MemoryPerGpu     *int32          `json:"memoryPerGpu,omitempty" minimum:"0" maximum:"4096" doc:"Same as memoryPerGPU (the EGS SDK's spelling)"`
	Priority         int32           `json:"priority,omitempty" minimum:"1" maximum:"300" default:"101" doc:"1-300: low 1-100, medium 101-200, high 201-300; default 101"`
	ExitDuration     schema.Duration `json:"exitDuration" doc:"How long the nodes are held once provisioned, as NdNhNm (e.g. 0d0h5m)"`

	IdleTimeOutDuration    schema.OptionalDuration `json:"idleTimeOutDuration,omitempty" doc:"With enforceIdleTimeOut: once all of the GPR's GPUs have been idle this long (NdNhNm; counted from no earlier than its start), it is released with reason Idle"`
	EnforceIdleTimeOut     *bool                   `json:"enforceIdleTimeOut,omitempty" doc:"Release the GPR when its GPUs stay idle for idleTimeOutDuration. Default: true when idleTimeOutDuration is given (as EGS), else false"`
	MultiNode              bool                    `json:"multiNode,omitempty"`
	EnableEviction         bool                    `json:"enableEviction,omitempty" doc:"Lets this GPR, while queued, evict lower-priority provisioned GPRs. Stored and reported only: nothing evicts yet"`
	RequeueOnFailure       bool                    `json:"requeueOnFailure,omitempty" doc:"Keeps a GPR no inventory can satisfy queued, with the reason in failureReason, instead of failing it (Error). Requeueing after an eviction comes with eviction: nothing evicts yet"`
	PreferredClusters      []string                `json:"preferredClusters,omitempty" maxItems:"32"`
	GPUSharingMode         string                  `json:"gpuSharingMode,omitempty" maxLength:"64"`
	DedicatedNodes         bool                    `json:"dedicatedNodes,omitempty"`
	EnableRDMA             bool                    `json:"enableRDMA,omitempty"`
	EnableSecondaryNetwork bool                    `json:"enableSecondaryNetwork,omitempty"`
	// Topology is gpuspace's (topology.go).
	Topology *GPRTopology `json:"topology,omitempty" doc:"gpuspace: where the nodes must or should sit, by topology level"`
}

// GPRUpdate is the body of PUT /gpr.
type GPRUpdate struct {
	_            struct{}         `additionalProperties:"true"`
	GPRID        schema.GPRID     `json:"gprId" minLength:"1" doc:"Id of the GPR (from create)"`
	Priority     *int32           `json:"priority,omitempty" minimum:"1" maximum:"300" doc:"New priority, 1-300"`
	EarlyRelease *bool            `json:"earlyRelease,omitempty" doc:"true releases a provisioned GPR's nodes now; a queued GPR cannot be early-released (delete it instead)"`
	GPRName      *schema.DNSLabel `json:"gprName,omitempty" minLength:"1" doc:"New name"`
}

// GPRID names a GPR in a body (delete).
type GPRID struct {
	_     struct{}     `additionalProperties:"true"`
	GPRID schema.GPRID `json:"gprId" minLength:"1" doc:"Id of the GPR"`
}

// GPRCreated is the data of POST /gpr.
type GPRCreated struct {
	GPRID string `json:"gprId" example:"gpr-1bb22a0b-9388"`
}

// GPRStatus is a GPR's status as EGS reports it.
type GPRStatus struct {
	ProvisioningStatus  string   `json:"provisioningStatus" enum:"Queued,Provisioned,Complete,Error"`
	FailureReason       string   `json:"failureReason"`
	NumGpusAllocated    int32    `json:"numGpusAllocated"`
	StartTimestamp      string   `json:"startTimestamp"`
	CompletionTimestamp string   `json:"completionTimestamp"`
	Cost                string   `json:"cost" doc:"USD, with two decimals: GPU-hours × the operator's price per GPU-hour of the shape; live while Provisioned, final once Complete; empty when no price is configured"`
	Nodes               []string `json:"nodes"`
	InternalState       string   `json:"internalState"`
	RetryCount          int32    `json:"retryCount"`
	DelayedCount        int32    `json:"delayedCount"`
	view.GPRIdleView
}

// GPR is a GPU provision request as EGS reports it.
type GPR struct {
	GPRID                  string    `json:"gprId"`
	SliceName              string    `json:"sliceName"`
	ClusterName            string    `json:"clusterName"`
	NumberOfGPUs           int32     `json:"numberOfGPUs"`
	NumberOfGPUNodes       int32     `json:"numberOfGPUNodes"`
	InstanceType           string    `json:"instanceType"`
	MemoryPerGPU           int32     `json:"memoryPerGPU"`
	Priority               int32     `json:"priority"`
	GPUSharingMode         string    `json:"gpuSharingMode"`
	EstimatedStartTime     string    `json:"estimatedStartTime"`
	EstimatedWaitTime      string    `json:"estimatedWaitTime" doc:"Go duration, e.g. 0h2m40s"`
	LatestStartTime        string    `json:"latestStartTime" doc:"gpuspace: a queued GPR's latest start (RFC 3339), if every GPR ahead holds its nodes for its whole exitDuration and no higher-priority GPR arrives; estimatedStartTime is the likely start"`
	LatestWaitTime         string    `json:"latestWaitTime" doc:"gpuspace: how long until the latest start, as a Go duration"`
	ExitDuration           string    `json:"exitDuration" doc:"Go duration, e.g. 0h5m0s"`
	EarlyRelease           bool      `json:"earlyRelease"`
	GPRName                string    `json:"gprName"`
	GPUShape               string    `json:"gpuShape"`
	MultiNode              bool      `json:"multiNode"`
	DedicatedNodes         bool      `json:"dedicatedNodes"`
	EnableRDMA             bool      `json:"enableRDMA"`
	EnableSecondaryNetwork bool      `json:"enableSecondaryNetwork"`
	Status                 GPRStatus `json:"status"`
	EnforceIdleTimeOut     bool      `json:"enforceIdleTimeOut"`
	IdleTimeOutDuration    string    `json:"idleTimeOutDuration"`
	EnableEviction         bool      `json:"enableEviction"`
	RequeueOnFailure       bool      `json:"requeueOnFailure"`
	PreferredClusters      []string  `json:"preferredClusters"`
	CreatedAt              string    `json:"createdAt"`
	// Topology is gpuspace's (topology.go); absent when the GPR names none.
	Topology *GPRTopology `json:"topology,omitempty" doc:"gpuspace: the GPR's topology, as requested (or given by its workspace's policy)"`
}

// GPRList is the data of GET /gpr/list.
type GPRList struct {
	Items []GPR `json:"items"`
}

// WaitTime is the data of POST /gpr/waittime.
type WaitTime struct {
	EstimatedStartTime string `json:"estimatedStartTime" doc:"When the GPR would start if created now (RFC 3339); empty if it never could"`
	EstimatedWaitTime  string `json:"estimatedWaitTime" doc:"How long until then, as a Go duration (0h2m40s)"`
	LatestStartTime    string `json:"latestStartTime" doc:"gpuspace: when it would start at the latest, if every GPR ahead holds its nodes for its whole exitDuration and no higher-priority GPR arrives (RFC 3339)"`
	LatestWaitTime     string `json:"latestWaitTime" doc:"gpuspace: how long until the latest start, as a Go duration"`
	Satisfiable        bool   `json:"satisfiable" doc:"false if no node in the inventory could ever satisfy the request"`
	Reason             string `json:"reason" doc:"Why not, when not satisfiable"`
}

type gprRequestInput struct {
	Body GPRRequest
}

type gprUpdateInput struct {
	Body GPRUpdate
}

type gprIDBodyInput struct {
	Body GPRID
}

type gprIDQueryInput struct {
	GPRID schema.GPRID `query:"gprId" required:"true" doc:"Id of the GPR"`
}

type gprListInput struct {
	SliceName schema.OptionalDNSLabel `query:"sliceName" doc:"Workspace whose GPRs to list; empty for every workspace the caller may read"`
}

func (s *Server) registerGPRs() {
	const tag = "GPU provision requests"
	register(s, opSpec{
		id: "createGPR", method: http.MethodPost, path: "/api/v1/gpr", tag: tag,
		summary:     "Create a GPU provision request",
		description: "Queues a request for numberOfGPUNodes nodes with numberOfGPUs GPUs each (of gpuShape / instanceType / memoryPerGPU GB) for exitDuration (NdNhNm) at priority 1-300. One GPR per workspace is provisioned at a time; the others wait in priority order. Returns gprId; follow it with GET /api/v1/gpr?gprId=. Check POST /api/v1/gpr/waittime first to see when it would start.",
		roles:       rolesEditors, scope: writesWorkspace(inBody("sliceName")), mcpName: "gprs_create", units: unitsGPR,
		guidance: "Before creating, read inventory_list for the shapes, instance types and memory sizes that exist, and call gprs_waittime with the same arguments to learn when it would start. " +
			"Not idempotent: every call queues another GPR. The answer's data.gprId is the id every other gprs_ tool takes; the GPR starts Queued, poll gprs_get until Provisioned.",
		errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.createGPR)
	register(s, opSpec{
		id: "estimateGPRWaitTime", method: http.MethodPost, path: "/api/v1/gpr/waittime", tag: tag,
		summary:     "Estimate a GPU provision request's wait time",
		description: "Takes the body of a GPR create and answers when it would start if created now, without creating anything.",
		roles:       rolesReaders, scope: readsWorkspace(inBody("sliceName")), readOnly: true, idempotent: true, mcpName: "gprs_waittime", units: unitsGPR,
		guidance: "Takes exactly the arguments of gprs_create. satisfiable: false with a reason means no node could ever match: change the request rather than wait.",
		errors:   []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.waitTime)
	register(s, opSpec{
		id: "updateGPR", method: http.MethodPut, path: "/api/v1/gpr", tag: tag,
		summary:     "Update or early-release a GPU provision request",
		description: "Changes a GPR's priority or name, or (earlyRelease: true) releases a provisioned GPR's nodes now. A queued GPR cannot be early-released (409): delete it instead.",
		roles:       rolesEditors, scope: writesGPR(inBody("gprId")), destructive: true, idempotent: true, mcpName: "gprs_update",
		guidance: "Pass gprId and only what changes. earlyRelease: true ends a Provisioned GPR now and frees its nodes for others; it cannot be undone.",
		errors:   []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.updateGPR)
	register(s, opSpec{
		id: "deleteGPR", method: http.MethodDelete, path: "/api/v1/gpr", tag: tag,
		summary:     "Delete a queued GPU provision request",
		description: "Deletes a GPR that is still queued (or failed). A provisioned or completed GPR cannot be deleted (409): early-release a provisioned one with PUT /api/v1/gpr.",
		roles:       rolesEditors, scope: writesGPR(inBody("gprId")), destructive: true, mcpName: "gprs_delete",
		guidance: "Only for a GPR that is still Queued (or failed with Error). A Provisioned GPR answers 409 CONFLICT: end it with gprs_update earlyRelease: true instead.",
		errors:   []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.deleteGPR)
	register(s, opSpec{
		id: "getGPR", method: http.MethodGet, path: "/api/v1/gpr", tag: tag,
		summary:     "Get a GPU provision request",
		description: "Returns one GPR: its request, status (Queued, Provisioned, Complete, Error), nodes, and estimated start and wait while queued.",
		roles:       rolesReaders, scope: readsGPR(inQuery("gprId")), readOnly: true, idempotent: true, mcpName: "gprs_get", units: unitsGPR,
		guidance: "While Queued, estimatedStartTime and estimatedWaitTime say when it is likely to start, latestStartTime and latestWaitTime when it starts at the latest (unless a higher-priority GPR arrives); status.nodes lists the nodes once Provisioned.",
		errors:   []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.getGPR)
	register(s, opSpec{
		id: "listGPRs", method: http.MethodGet, path: "/api/v1/gpr/list", tag: tag,
		summary:     "List GPU provision requests",
		description: "Lists the GPRs of a workspace (sliceName), or of every workspace the caller may read, highest priority first.",
		roles:       rolesReaders, scope: readsWorkspace(inQuery("sliceName")), readOnly: true, idempotent: true, mcpName: "gprs_list", units: unitsGPR,
		errors: []int{http.StatusNotFound},
	}, s.listGPRs)
	// The limits of a workspace's GPRs.
	s.registerPolicies()
}

func (s *Server) createGPR(ctx context.Context, in *gprRequestInput) (*envelope.Output[GPRCreated], error) {
	g, err := s.gprFromRequest(ctx, &in.Body, true)
	if err != nil {
		return nil, err
	}
	for range 3 { // ids are random; a collision is retried with another
		g.Name, err = newGPRID()
		if err != nil {
			return nil, s.kubeErr(err, "GPR id")
		}
		g.ResourceVersion = ""
		err = s.client.Create(ctx, g)
		if !apierrors.IsAlreadyExists(err) {
			break
		}
	}
	if err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR %q", g.Spec.GPRName))
	}
	s.awaitCache(ctx, g, false)
	return envelope.OK(GPRCreated{GPRID: g.Name}), nil
}

func (s *Server) waitTime(ctx context.Context, in *gprRequestInput) (*envelope.Output[WaitTime], error) {
	g, err := s.gprFromRequest(ctx, &in.Body, false)
	if err != nil {
		return nil, err
	}
	now := s.now()
	g.CreationTimestamp = metav1.NewTime(now)
	est, err := s.view.Estimate(ctx, g, now)
	if err != nil {
		return nil, err
	}
	out := WaitTime{Satisfiable: est.Satisfiable, Reason: est.Reason}
	if est.Satisfiable && !est.Start.IsZero() {
		out.EstimatedStartTime, out.EstimatedWaitTime = startAndWait(est.Start, now)
		out.LatestStartTime, out.LatestWaitTime = startAndWait(est.Latest, now)
	}
	return envelope.OK(out), nil
}

// gprFromRequest checks the caller's rights on the workspace, builds the
// GPR object (without a name) and runs admission on it — the checks the
// GPR controller applies to GPRs created any other way.
func (s *Server) gprFromRequest(ctx context.Context, r *GPRRequest, write bool) (*v1alpha1.GPUProvisionRequest, error) {
	ws, err := s.sliceWorkspace(ctx, string(r.SliceName))
	if err != nil {
		return nil, err
	}
	if ws.DeletionTimestamp != nil {
		return nil, envelope.Conflict("workspace %q is being deleted", ws.Name)
	}
	var mem int32
	switch {
	case r.MemoryPerGPU != nil && r.MemoryPerGpu != nil && *r.MemoryPerGPU != *r.MemoryPerGpu:
		return nil, envelope.Validation(envelope.FieldError{Field: "memoryPerGpu",
			Reason: fmt.Sprintf("%d differs from memoryPerGPU %d; send one of them", *r.MemoryPerGpu, *r.MemoryPerGPU)})
	case r.MemoryPerGPU != nil:
		mem = *r.MemoryPerGPU
	case r.MemoryPerGpu != nil:
		mem = *r.MemoryPerGpu
	}
	g := &v1alpha1.GPUProvisionRequest{
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: string(r.GPRName), Workspace: ws.Name, ClusterName: r.ClusterName,
			NumberOfGPUs: r.NumberOfGPUs, NumberOfGPUNodes: r.NumberOfGPUNodes,
			InstanceType: r.InstanceType, GPUShape: r.GPUShape, MemoryPerGPU: mem,
			Priority: r.Priority, ExitDuration: string(r.ExitDuration),
			IdleTimeOutDuration: string(r.IdleTimeOutDuration), EnforceIdleTimeOut: domain.DefaultEnforceIdleTimeOut(r.EnforceIdleTimeOut, string(r.IdleTimeOutDuration)),
			MultiNode: r.MultiNode, EnableEviction: r.EnableEviction, RequeueOnFailure: r.RequeueOnFailure,
			PreferredClusters: r.PreferredClusters, GPUSharingMode: r.GPUSharingMode,
			DedicatedNodes: r.DedicatedNodes, EnableRDMA: r.EnableRDMA, EnableSecondaryNetwork: r.EnableSecondaryNetwork,
			Topology: r.Topology.spec(),
		},
	}
	admission.DefaultGPR(g, ws)
	pol, err := s.policy(ctx, ws.Name)
	if err != nil {
		return nil, err
	}
	admission.DefaultForPolicy(g, pol)
	errs := admission.ValidateGPR(g, ws)
	if errs, err = s.validateTopologyLevel(ctx, g, errs); err != nil {
		return nil, err
	}
	if pol != nil {
		// maxGPRs counts the workspace's queued and provisioned GPRs, all
		// ahead of this one. The controller checks again (concurrent
		// creates): the newest over the limit is held.
		var list v1alpha1.GPUProvisionRequestList
		if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy, client.MatchingFields{index.GPRWorkspace: ws.Name}); err != nil {
			return nil, s.kubeErr(err, "GPRs")
		}
		errs = append(errs, admission.ValidateAgainstPolicy(g, pol, domain.CountQueuedOrProvisioned(list.Items, ws.Name))...)
	}
	if len(errs) > 0 {
		return nil, envelope.Validation(requestFieldErrors(errs, ws)...)
	}
	return g, nil
}

// requestFields are the REST names of the GPR fields admission names.
var requestFields = map[string]string{
	"spec.workspace":           "sliceName",
	"spec.clusterName":         "clusterName",
	"spec.exitDuration":        "exitDuration",
	"spec.idleTimeOutDuration": "idleTimeOutDuration",
	"spec.priority":            "priority",
	"spec.numberOfGPUs":        "numberOfGPUs",
	"spec.memoryPerGPU":        "memoryPerGPU",
	"spec.gpuShape":            "gpuShape",
}

// requestFieldErrors turns admission's errors into the envelope's, with
// the fields named as the request names them.
func requestFieldErrors(errs field.ErrorList, ws *v1alpha1.Workspace) []envelope.FieldError {
	out := make([]envelope.FieldError, 0, len(errs))
	for _, e := range errs {
		name := requestFields[e.Field]
		if name == "" {
			name = e.Field
		}
		fe := envelope.FieldError{Field: name, Value: fmt.Sprint(e.BadValue), Reason: e.Detail}
		switch e.Type {
		case field.ErrorTypeNotSupported:
			fe.Reason = fmt.Sprintf("workspace %q is not on cluster %q; its clusters: %s", ws.Name, fe.Value, strings.Join(ws.Spec.Clusters, ", "))
		case field.ErrorTypeNotFound:
			fe.Reason = "does not exist"
		}
		out = append(out, fe)
	}
	return out
}

// sliceWorkspace is workspace for a sliceName, answering a missing one as
// EGS does ("Slice Workspace Not Found").
func (s *Server) sliceWorkspace(ctx context.Context, name string) (*v1alpha1.Workspace, error) {
	ws, err := s.workspace(ctx, name)
	var e *envelope.Error
	if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
		return nil, envelope.New(http.StatusNotFound, envelope.KeyNotFound,
			fmt.Sprintf("workspace %q not found (sliceName)", name), envelope.WithTitle("Slice Workspace Not Found"))
	}
	return ws, err
}

// gpr reads a GPR from the cache, then the apiserver; 404 if none.
func (s *Server) gpr(ctx context.Context, id string) (*v1alpha1.GPUProvisionRequest, error) {
	var g v1alpha1.GPUProvisionRequest
	key := types.NamespacedName{Name: id}
	err := s.cache.Get(ctx, key, &g)
	if apierrors.IsNotFound(err) {
		err = s.client.Get(ctx, key, &g)
	}
	if err != nil {
		return nil, s.kubeErr(err, fmt.Sprintf("GPR %q", id))
	}
	return &g, nil
}

func (s *Server) getGPR(ctx context.Context, in *gprIDQueryInput) (*envelope.Output[GPR], error) {
	g, err := s.gpr(ctx, string(in.GPRID))
	if err != nil {
		return nil, err
	}
	est, err := s.estimatesFor(ctx, g)
	if err != nil {
		return nil, err
	}
	nodes, err := s.view.NodeFacts(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := gprOf(g, now, est)
	out.Status.Cost = s.view.CostOf(g, nodes, now)
	if out.Status.GPRIdleView, err = s.view.IdleReader().GPR(ctx, g, now); err != nil {
		return nil, err
	}
	return envelope.OK(out), nil
}

// estimatesFor are the current plan's estimates, for rendering g. A GPR
// the cache's plan does not know yet (created a moment ago) gets its
// estimate as a would-be GPR of the same age.
func (s *Server) estimatesFor(ctx context.Context, g *v1alpha1.GPUProvisionRequest) (domain.PlanEstimates, error) {
	plan, err := s.view.Plan(ctx)
	if err != nil {
		return domain.PlanEstimates{}, err
	}
	if !domain.IsQueued(g) || plan.Knows(g.Name) {
		return plan.Estimates(), nil
	}
	est, err := s.view.Estimate(ctx, g, s.now())
	if err != nil || est.Start.IsZero() {
		return domain.PlanEstimates{Likely: domain.Estimates{}, Latest: domain.Estimates{}}, err
	}
	return domain.PlanEstimates{Likely: domain.Estimates{g.Name: est.Start}, Latest: domain.Estimates{g.Name: est.Latest}}, nil
}

// workspaceGPRs lists the GPRs of workspace ws from the cache (every GPR
// when ws is empty): 404 when ws does not exist. The items share the
// cache's objects: read them, never change them.
func (s *Server) workspaceGPRs(ctx context.Context, ws string) (*v1alpha1.GPUProvisionRequestList, error) {
	opts := []client.ListOption{client.UnsafeDisableDeepCopy}
	if ws != "" {
		if _, err := s.sliceWorkspace(ctx, ws); err != nil {
			return nil, err
		}
		opts = append(opts, client.MatchingFields{index.GPRWorkspace: ws})
	}
	var list v1alpha1.GPUProvisionRequestList
	if err := s.cache.List(ctx, &list, opts...); err != nil {
		return nil, s.kubeErr(err, "GPRs")
	}
	return &list, nil
}

func (s *Server) listGPRs(ctx context.Context, in *gprListInput) (*envelope.Output[GPRList], error) {
	p := principal(ctx)
	ws := string(in.SliceName)
	if ws == "" && p.Workspace != "" {
		ws = p.Workspace
	}
	list, err := s.workspaceGPRs(ctx, ws)
	if err != nil {
		return nil, err
	}
	plan, err := s.view.Plan(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := s.view.NodeFacts(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	items := make([]GPR, 0, len(list.Items))
	idle := s.view.IdleReader()
	est := plan.Estimates()
	for i := range list.Items {
		g := gprOf(&list.Items[i], now, est)
		g.Status.Cost = s.view.CostOf(&list.Items[i], nodes, now)
		if g.Status.GPRIdleView, err = idle.GPR(ctx, &list.Items[i], now); err != nil {
			return nil, err
		}
		items = append(items, g)
	}
	slices.SortFunc(items, func(a, b GPR) int {
		if a.Priority != b.Priority {
			return int(b.Priority - a.Priority)
		}
		if c := strings.Compare(a.CreatedAt, b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.GPRID, b.GPRID)
	})
	return envelope.OK(GPRList{Items: items}), nil
}

// gprOf renders a GPR as EGS does: durations as Go durations, times as
// RFC 3339 or "". A queued GPR's estimates are the plan's (est: likely in
// the EGS fields, and the latest start), so they are as fresh as the
// cache whatever is stored; a started one shows its start.
func gprOf(g *v1alpha1.GPUProvisionRequest, now time.Time, est domain.PlanEstimates) GPR {
	out := GPR{
		GPRID: g.Name, SliceName: g.Spec.Workspace, ClusterName: g.Spec.ClusterName,
		NumberOfGPUs: g.Spec.NumberOfGPUs, NumberOfGPUNodes: domain.NodeCount(g),
		InstanceType: g.Spec.InstanceType, MemoryPerGPU: g.Spec.MemoryPerGPU,
		Priority: domain.Priority(g), GPUSharingMode: orDefault(g.Spec.GPUSharingMode, "Virtual Machine"),
		EstimatedWaitTime: "0h0m0s",
		ExitDuration:      duration.ToGo(g.Spec.ExitDuration),
		EarlyRelease:      g.Spec.EarlyRelease, GPRName: g.Spec.GPRName, GPUShape: g.Spec.GPUShape,
		MultiNode: g.Spec.MultiNode, DedicatedNodes: g.Spec.DedicatedNodes, EnableRDMA: g.Spec.EnableRDMA,
		EnableSecondaryNetwork: g.Spec.EnableSecondaryNetwork,
		EnforceIdleTimeOut:     g.Spec.EnforceIdleTimeOut,
		IdleTimeOutDuration:    duration.ToGo(g.Spec.IdleTimeOutDuration),
		EnableEviction:         g.Spec.EnableEviction, RequeueOnFailure: g.Spec.RequeueOnFailure,
		PreferredClusters: nonNil(slices.Clone(g.Spec.PreferredClusters)),
		CreatedAt:         rfc3339(&g.CreationTimestamp), Topology: topologyOut(g.Spec.Topology),
		Status: GPRStatus{
			ProvisioningStatus: string(domain.Phase(g)), FailureReason: g.Status.FailureReason,
			NumGpusAllocated:    g.Status.NumGpusAllocated,
			StartTimestamp:      rfc3339(g.Status.StartTimestamp),
			CompletionTimestamp: rfc3339(g.Status.CompletionTimestamp),
			Cost:                g.Status.Cost, Nodes: nonNil(slices.Clone(g.Status.Nodes)),
			InternalState: string(domain.InternalState(domain.Phase(g))),
			RetryCount:    g.Status.RetryCount, DelayedCount: g.Status.DelayedCount,
		},
	}
	switch {
	case domain.IsQueued(g):
		out.EstimatedWaitTime = ""
		if start, ok := domain.EstimatedStart(g, est.Likely); ok {
			out.EstimatedStartTime, out.EstimatedWaitTime = startAndWait(start, now)
		}
		if latest, ok := domain.LatestStart(g, est.Latest); ok {
			out.LatestStartTime, out.LatestWaitTime = startAndWait(latest, now)
		}
	case g.Status.StartTimestamp != nil:
		out.EstimatedStartTime = rfc3339(g.Status.StartTimestamp)
	}
	return out
}

// startAndWait renders an estimated start seen at now, in whole seconds
// and never in the past, and the wait until it.
func startAndWait(start, now time.Time) (string, string) {
	start = start.Truncate(time.Second)
	if start.Before(now) {
		start = now
	}
	return start.UTC().Format(time.RFC3339), duration.Format(domain.WaitAt(start, now))
}

// normalizeGoDuration writes a Go duration with hours, minutes and seconds
// ("2m40s" -> "0h2m40s").
func normalizeGoDuration(s string) string {
	if s == "" {
		return ""
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	return duration.Format(d)
}

// newGPRID returns an EGS-style id: gpr-xxxxxxxx-xxxx.
func newGPRID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate GPR id: %w", err)
	}
	h := hex.EncodeToString(b)
	return "gpr-" + h[:8] + "-" + h[8:], nil
}

func itoa64(v int64) string { return strconv.FormatInt(v, 10) }
