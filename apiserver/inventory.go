package apiserver

import (
	"context"
	"net/http"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
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
	SliceName string `query:"sliceName" required:"true" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" doc:"Workspace name"`
}

func (s *Server) registerInventory() {
	const tag = "Inventory"
	register(s, opSpec{
		id: "listInventory", method: http.MethodGet, path: "/api/v1/inventory/list", tag: tag,
		summary:     "List the GPU inventory",
		description: "Lists every GPU node: name, GPU shape and model, instance type, cluster, memory per GPU (GB), GPU count, free GPUs, health, and which GPR holds it. Use the shapes, instance types and memory sizes here in GPR requests.",
		roles:       rolesReaders, readOnly: true, idempotent: true, mcpName: "inventory_list",
	}, s.listInventory)
	register(s, opSpec{
		id: "getWorkspaceInventory", method: http.MethodGet, path: "/api/v1/inventory", tag: tag,
		summary:     "List the GPU nodes allocated to a workspace",
		description: "Lists the nodes the workspace's provisioned GPR holds now, grouped by instance type and GPU shape. Empty when no GPR of the workspace is provisioned.",
		roles:       rolesReaders, readOnly: true, idempotent: true, mcpName: "inventory_workspace",
		errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.workspaceInventory)
}

// holders maps node name to the provisioned GPR holding it.
func (s *Server) holders(ctx context.Context) (map[string]*v1alpha1.GPUProvisionRequest, error) {
	var list v1alpha1.GPUProvisionRequestList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, s.kubeErr(err, "GPRs")
	}
	out := map[string]*v1alpha1.GPUProvisionRequest{}
	for i := range list.Items {
		g := &list.Items[i]
		if g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
			continue
		}
		for _, n := range g.Status.Nodes {
			out[n] = g
		}
	}
	return out, nil
}

// inventory is the GPU nodes and which provisioned GPR holds each.
func (s *Server) inventory(ctx context.Context) ([]corev1.Node, map[string]*v1alpha1.GPUProvisionRequest, error) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	held, err := s.holders(ctx)
	if err != nil {
		return nil, nil, err
	}
	return nodes, held, nil
}

func (s *Server) listInventory(ctx context.Context, _ *noInput) (*envelope.Output[Inventory], error) {
	nodes, held, err := s.inventory(ctx)
	if err != nil {
		return nil, err
	}
	items := make([]InventoryNode, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		count := gpuCount(n)
		provider := providerOf(n)
		in := InventoryNode{
			GPUNodeName: n.Name, GPUShape: gpuShapeOf(n), GPUModelName: gpuProduct(n),
			InstanceType: instanceTypeOf(n), ClusterName: clusterOf(n), Memory: gpuMemoryGB(n),
			GPUCount: count, FreeGPUs: count, CloudProvider: provider, Cloud: provider,
			Region: n.Labels[labelRegion], NodeHealth: "Healthy", GPUNodeState: "NODE_AVAILABLE",
			Allocation: []Allocation{},
		}
		if !healthy(n) {
			in.NodeHealth = "Unhealthy"
		}
		if g := held[n.Name]; g != nil {
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
	if _, err := s.readableWorkspace(ctx, in.SliceName, "read the inventory"); err != nil {
		return nil, err
	}
	nodes, held, err := s.inventory(ctx)
	if err != nil {
		return nil, err
	}
	groups := map[string]*WorkspaceInventoryItem{}
	var order []string
	for i := range nodes {
		n := &nodes[i]
		g := held[n.Name]
		if g == nil || g.Spec.Workspace != in.SliceName {
			continue
		}
		key := strings.Join([]string{clusterOf(n), instanceTypeOf(n), gpuShapeOf(n), itoa64(int64(gpuMemoryGB(n))), itoa64(int64(gpuCount(n)))}, "\x00")
		it := groups[key]
		if it == nil {
			mem := gpuMemoryGB(n)
			it = &WorkspaceInventoryItem{InstanceType: instanceTypeOf(n), GPUShape: gpuShapeOf(n), Memory: mem, MemoryPerGpu: mem,
				GPUPerNode: gpuCount(n), ClusterName: clusterOf(n), GPUSlicingProfile: []string{}}
			groups[key] = it
			order = append(order, key)
		}
		it.NodeName = append(it.NodeName, n.Name)
		it.TotalGPUNodes++
		it.TotalGpus += gpuCount(n)
	}
	slices.Sort(order)
	out := WorkspaceInventory{Items: make([]WorkspaceInventoryItem, 0, len(order))}
	for _, k := range order {
		out.Items = append(out.Items, *groups[k])
	}
	return envelope.OK(out), nil
}
