package apiserver

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/view"
)

// Allocation is a GPR holding a node.
type Allocation struct {
	GPRName             string `json:"gprName" doc:"The GPR's id (EGS calls it gprName here)"`
	GPRDisplayName      string `json:"gprDisplayName" doc:"The GPR's gprName"`
	SliceName           string `json:"sliceName"`
	TotalGPUsAllocated  int    `json:"totalGPUsAllocated"`
	AllocationTimeStamp struct {
		Seconds string `json:"seconds"`
		Nanos   int    `json:"nanos"`
	} `json:"allocationTimeStamp"`
}

// InventoryNode is a GPU node.
type InventoryNode struct {
	GPUNodeName       string       `json:"gpuNodeName"`
	GPUShape          string       `json:"gpuShape" doc:"Normalised GPU model, e.g. H100, T4: what a GPR's gpuShape matches"`
	GPUModelName      string       `json:"gpuModelName" doc:"GPU product name as the node reports it"`
	InstanceType      string       `json:"instanceType"`
	ClusterName       string       `json:"clusterName"`
	Memory            int          `json:"memory" doc:"Memory per GPU in GB (a GPR's memoryPerGPU)"`
	GPUCount          int          `json:"gpuCount"`
	FreeGPUs          int          `json:"freeGPUs" doc:"GPUs not held by a GPR (nodes are bound whole, so 0 or gpuCount)"`
	GPUTempThreshold  string       `json:"gpuTempThreshold"`
	GPUPowerThreshold string       `json:"gpuPowerThreshold"`
	CloudProvider     string       `json:"cloudProvider"`
	Cloud             string       `json:"cloud"`
	Region            string       `json:"region"`
	NodeHealth        string       `json:"nodeHealth" enum:"Healthy,Unhealthy"`
	GPUNodeState      string       `json:"gpuNodeState" enum:"NODE_RESERVED,NODE_AVAILABLE"`
	GPRID             string       `json:"gprId" doc:"GPR holding the node, empty if none"`
	Allocation        []Allocation `json:"allocation"`
	view.IdleView
}

// Inventory is the data of GET /inventory/list. items is the spec's name
// for the list, managedNodes the Postman collection's; both are sent.
type Inventory struct {
	Items          []InventoryNode `json:"items"`
	ManagedNodes   []InventoryNode `json:"managedNodes"`
	UnmanagedNodes []InventoryNode `json:"unmanagedNodes" doc:"Always empty: gpuspace manages every GPU node"`
}

// WorkspaceInventoryItem is a group of like nodes allocated to a workspace.
type WorkspaceInventoryItem struct {
	NodeName          []string `json:"nodeName"`
	InstanceType      string   `json:"instanceType"`
	GPUShape          string   `json:"gpuShape"`
	Memory            int      `json:"memory" doc:"Memory per GPU in GB"`
	MemoryPerGpu      int      `json:"memoryPerGpu" doc:"Memory per GPU in GB (collection's name)"`
	TotalGpus         int      `json:"totalGpus"`
	GPUPerNode        int      `json:"gpuPerNode"`
	TotalGPUNodes     int      `json:"totalGpuNodes"`
	ClusterName       string   `json:"clusterName"`
	GPUSlicingProfile []string `json:"gpuSlicingProfile"`
}

// WorkspaceInventory is the data of GET /inventory?sliceName=.
type WorkspaceInventory struct {
	Items []WorkspaceInventoryItem `json:"items"`
}

type inventoryBySliceInput struct {
	SliceName schema.DNSLabel `query:"sliceName" required:"true" doc:"Workspace name"`
}

func (s *Server) registerInventory() {
	const tag = "Inventory"
	register(s, opSpec{
		id: "listInventory", method: http.MethodGet, path: "/api/v1/inventory/list", tag: tag,
		summary:     "List the GPU inventory",
		description: "Lists every GPU node: name, GPU shape and model, instance type, cluster, memory per GPU (GB), GPU count, free GPUs, health, which GPR holds it, and its GPU use (utilisation, timeSinceNoUtilization, and whether it publishes idleness: a node that does not is never idle-released). Use the shapes, instance types and memory sizes here in GPR requests.",
		roles:       rolesReaders, scope: scopeNone, readOnly: true, idempotent: true, mcpName: "inventory_list", units: unitsMemory,
	}, s.listInventory)
	register(s, opSpec{
		id: "getWorkspaceInventory", method: http.MethodGet, path: "/api/v1/inventory", tag: tag,
		summary:     "List the GPU nodes allocated to a workspace",
		description: "Lists the nodes the workspace's provisioned GPR holds now, grouped by instance type and GPU shape. Empty when no GPR of the workspace is provisioned.",
		roles:       rolesReaders, scope: readsWorkspace(inQuery("sliceName")), readOnly: true, idempotent: true, mcpName: "inventory_workspace", units: unitsMemory,
		errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.workspaceInventory)
}

// inventory is the GPU nodes and the provisioned GPR holding each
// (domain.Holders: from GPR status alone).
func (s *Server) inventory(ctx context.Context) ([]view.Node, map[string]*v1alpha1.GPUProvisionRequest, error) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	var list v1alpha1.GPUProvisionRequestList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, s.kubeErr(err, "GPRs")
	}
	gprs := make([]*v1alpha1.GPUProvisionRequest, len(list.Items))
	for i := range list.Items {
		gprs[i] = &list.Items[i]
	}
	held, _ := domain.Holders(gprs)
	return nodes, held, nil
}

func (s *Server) listInventory(ctx context.Context, _ *noInput) (*envelope.Output[Inventory], error) {
	nodes, held, err := s.inventory(ctx)
	if err != nil {
		return nil, err
	}
	items := make([]InventoryNode, 0, len(nodes))
	now := s.now()
	for _, n := range nodes {
		provider := providerOf(n.Node)
		in := InventoryNode{
			GPUNodeName: n.GPUNode.Name, GPUShape: n.Shape, GPUModelName: n.Product,
			InstanceType: n.InstanceType, ClusterName: n.Cluster, Memory: n.MemoryGB(),
			GPUCount: int(n.GPUs), FreeGPUs: int(n.HealthyGPUs), CloudProvider: provider, Cloud: provider,
			Region: n.Labels[labelRegion], NodeHealth: "Healthy", GPUNodeState: "NODE_AVAILABLE",
			Allocation: []Allocation{}, IdleView: view.NodeIdle(n.Node, now),
		}
		if !n.Healthy() {
			in.NodeHealth = "Unhealthy"
		}
		if g := held[n.GPUNode.Name]; g != nil {
			in.FreeGPUs = 0
			in.GPUNodeState = "NODE_RESERVED"
			in.GPRID = g.Name
			a := Allocation{GPRName: g.Name, GPRDisplayName: g.Spec.GPRName, SliceName: g.Spec.Workspace, TotalGPUsAllocated: int(g.Spec.NumberOfGPUs)}
			if g.Status.StartTimestamp != nil {
				a.AllocationTimeStamp.Seconds = itoa64(g.Status.StartTimestamp.Unix())
			}
			in.Allocation = append(in.Allocation, a)
		}
		items = append(items, in)
	}
	return envelope.OK(Inventory{Items: items, ManagedNodes: items, UnmanagedNodes: []InventoryNode{}}), nil
}

func (s *Server) workspaceInventory(ctx context.Context, in *inventoryBySliceInput) (*envelope.Output[WorkspaceInventory], error) {
	if _, err := s.workspace(ctx, string(in.SliceName)); err != nil {
		return nil, err
	}
	nodes, held, err := s.inventory(ctx)
	if err != nil {
		return nil, err
	}
	groups := map[string]*WorkspaceInventoryItem{}
	var order []string
	for _, n := range nodes {
		g := held[n.GPUNode.Name]
		if g == nil || g.Spec.Workspace != string(in.SliceName) {
			continue
		}
		mem := n.MemoryGB()
		key := strings.Join([]string{n.Cluster, n.InstanceType, n.Shape, itoa64(int64(mem)), itoa64(int64(n.GPUs))}, "\x00")
		it := groups[key]
		if it == nil {
			it = &WorkspaceInventoryItem{InstanceType: n.InstanceType, GPUShape: n.Shape, Memory: mem, MemoryPerGpu: mem,
				GPUPerNode: int(n.GPUs), ClusterName: n.Cluster, GPUSlicingProfile: []string{}}
			groups[key] = it
			order = append(order, key)
		}
		it.NodeName = append(it.NodeName, n.GPUNode.Name)
		it.TotalGPUNodes++
		it.TotalGpus += int(n.GPUs)
	}
	slices.Sort(order)
	out := WorkspaceInventory{Items: make([]WorkspaceInventoryItem, 0, len(order))}
	for _, k := range order {
		out.Items = append(out.Items, *groups[k])
	}
	return envelope.OK(out), nil
}
