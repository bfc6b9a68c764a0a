package gpr

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/duration"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// NodeInventory reads a Node's GPU facts from the labels the device plugin
// or NVIDIA's GPU feature discovery publish. It reports false for nodes
// without GPUs. The GPU count comes from nvidia.com/gpu.count, else from
// the node's nvidia.com/gpu capacity; a node without gpuspace.io/cluster
// belongs to defaultCluster. BoundTo is left empty: bindings come from GPR
// status, not from node labels.
func NodeInventory(n *corev1.Node, defaultCluster string) (planner.Node, bool) {
	l := n.Labels
	gpus, err := strconv.ParseInt(l[v1alpha1.LabelGPUCount], 10, 32)
	if err != nil || gpus <= 0 {
		q, ok := n.Status.Capacity[corev1.ResourceName(v1alpha1.ResourceGPU)]
		if !ok {
			return planner.Node{}, false
		}
		gpus = q.Value()
	}
	if gpus <= 0 {
		return planner.Node{}, false
	}
	mem, _ := strconv.ParseInt(l[v1alpha1.LabelGPUMemory], 10, 64)
	cluster := l[v1alpha1.LabelCluster]
	if cluster == "" {
		cluster = defaultCluster
	}
	return planner.Node{
		Name:         n.Name,
		Cluster:      cluster,
		InstanceType: l[v1alpha1.LabelInstanceType],
		Product:      l[v1alpha1.LabelGPUProduct],
		Shape:        l[v1alpha1.LabelGPUShape],
		MemoryMiB:    mem,
		GPUs:         int32(min(gpus, 1<<20)),
		Healthy:      NodeReady(n),
		Schedulable:  !n.Spec.Unschedulable,
	}, true
}

// NodeReady reports whether a node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Request turns a queued GPR into a planner request. It fails when the
// GPR's exitDuration cannot be parsed.
func Request(g *v1alpha1.GPUProvisionRequest) (planner.Request, error) {
	d, err := duration.Parse(g.Spec.ExitDuration)
	if err != nil {
		return planner.Request{}, fmt.Errorf("exitDuration: %w", err)
	}
	prio := g.Spec.Priority
	if prio == 0 {
		prio = v1alpha1.DefaultPriority
	}
	return planner.Request{
		ID:           g.Name,
		Workspace:    g.Spec.Workspace,
		Cluster:      g.Spec.ClusterName,
		InstanceType: g.Spec.InstanceType,
		GPUShape:     g.Spec.GPUShape,
		MemoryPerGPU: g.Spec.MemoryPerGPU,
		GPUsPerNode:  g.Spec.NumberOfGPUs,
		Nodes:        max(g.Spec.NumberOfGPUNodes, 1),
		Priority:     prio,
		Created:      g.CreationTimestamp.Time,
		Duration:     d,
	}, nil
}

// End is when a provisioned GPR expires. It reports false for a GPR that
// has no start time or whose exitDuration cannot be parsed.
func End(g *v1alpha1.GPUProvisionRequest) (time.Time, bool) {
	if g.Status.StartTimestamp == nil {
		return time.Time{}, false
	}
	d, err := duration.Parse(g.Spec.ExitDuration)
	if err != nil {
		return time.Time{}, false
	}
	return g.Status.StartTimestamp.Add(d), true
}

// IsQueued reports whether a GPR waits for nodes: Queued, or new and not
// yet looked at.
func IsQueued(g *v1alpha1.GPUProvisionRequest) bool {
	s := g.Status.ProvisioningStatus
	return s == "" || s == v1alpha1.GPRQueued
}

// Input builds the planner input from GPRs and nodes as the GPR controller
// does: provisioned GPRs hold the nodes in their status, queued GPRs are
// requests. GPRs whose spec cannot be planned are returned in invalid with
// the reason, by name. The REST API's wait-time preview adds its would-be
// GPR to Queued and calls planner.Compute on the result.
func Input(now time.Time, gprs []*v1alpha1.GPUProvisionRequest, nodes []*corev1.Node, defaultCluster string) (in planner.Input, invalid map[string]string) {
	in.Now = now
	holder := map[string]string{}
	for _, g := range gprs {
		switch {
		case g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned:
			end, ok := End(g)
			if !ok {
				// Hold the nodes; the controller releases such GPRs.
				end = now
			}
			in.Provisioned = append(in.Provisioned, planner.Provisioned{
				ID: g.Name, Workspace: g.Spec.Workspace, Nodes: slices.Clone(g.Status.Nodes), End: end,
			})
			for _, n := range g.Status.Nodes {
				holder[n] = g.Name
			}
		case IsQueued(g):
			r, err := Request(g)
			if err != nil {
				if invalid == nil {
					invalid = map[string]string{}
				}
				invalid[g.Name] = err.Error()
				continue
			}
			in.Queued = append(in.Queued, r)
		}
	}
	for _, n := range nodes {
		inv, ok := NodeInventory(n, defaultCluster)
		if !ok {
			continue
		}
		inv.BoundTo = holder[n.Name]
		in.Nodes = append(in.Nodes, inv)
	}
	return in, invalid
}

// binding returns the workspace and GPR a node's labels name, and whether
// it has gpuspace's taint; the workspace falls back to the taint's value.
func binding(n *corev1.Node) (ws, gpr string, tainted bool) {
	ws, gpr = n.Labels[v1alpha1.LabelWorkspace], n.Labels[v1alpha1.LabelGPR]
	for _, t := range n.Spec.Taints {
		if t.Key == v1alpha1.TaintWorkspace {
			tainted = true
			if ws == "" {
				ws = t.Value
			}
		}
	}
	return ws, gpr, tainted
}

// bindingTaint is the taint on a node bound to ws.
func bindingTaint(ws string) corev1.Taint {
	return corev1.Taint{Key: v1alpha1.TaintWorkspace, Value: ws, Effect: corev1.TaintEffectNoSchedule}
}

// withBinding returns n's taints with gpuspace's taint set for ws (or
// removed when ws is empty), and whether they changed.
func withBinding(taints []corev1.Taint, ws string) ([]corev1.Taint, bool) {
	out := make([]corev1.Taint, 0, len(taints)+1)
	found := false
	changed := false
	for _, t := range taints {
		if t.Key != v1alpha1.TaintWorkspace {
			out = append(out, t)
			continue
		}
		if ws == "" || found || t != bindingTaint(ws) {
			changed = true
			continue
		}
		found = true
		out = append(out, t)
	}
	if ws != "" && !found {
		out = append(out, bindingTaint(ws))
		changed = true
	}
	return out, changed
}

// joinNames lists names for messages.
func joinNames(names []string) string { return strings.Join(names, ", ") }
