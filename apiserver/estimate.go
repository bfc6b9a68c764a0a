package apiserver

import (
	"context"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/duration"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// Estimate is when a would-be GPR would start.
type Estimate struct {
	// Satisfiable is false when no inventory could ever satisfy the GPR.
	Satisfiable bool
	// Reason says why not, or why there is no estimate (matching nodes
	// exist but are unhealthy or cordoned).
	Reason string
	// Start is the estimated start; zero when there is none.
	Start time.Time
}

// Estimator answers POST /gpr/waittime: given a would-be GPR (created now,
// no name), the GPU nodes and every existing GPR, when would it start?
// Implementations must not change their arguments (they are cache
// objects).
type Estimator interface {
	Estimate(ctx context.Context, gpr *v1alpha1.GPUProvisionRequest, nodes []corev1.Node, gprs []v1alpha1.GPUProvisionRequest, now time.Time) (Estimate, error)
}

// PlannerEstimator runs the planner — the one the GPR controller plans
// with — over the current inventory, provisioned and queued GPRs plus the
// would-be GPR, and answers the estimate the plan gives it.
type PlannerEstimator struct{}

// wouldBeID is the id the would-be GPR has in the plan: no real GPR can
// have it ("~" is not allowed in object names).
const wouldBeID = "~waittime"

// Estimate implements Estimator.
func (PlannerEstimator) Estimate(_ context.Context, g *v1alpha1.GPUProvisionRequest, nodes []corev1.Node, gprs []v1alpha1.GPUProvisionRequest, now time.Time) (Estimate, error) {
	in := PlannerInput(nodes, gprs, now)
	r := requestOf(g)
	r.ID = wouldBeID
	in.Queued = append(in.Queued, r)
	plan := planner.Compute(in)
	for _, u := range plan.Unsatisfiable {
		if u.ID == wouldBeID {
			return Estimate{Reason: u.Reason}, nil
		}
	}
	start, ok := plan.Estimates[wouldBeID]
	if !ok {
		return Estimate{Satisfiable: true, Reason: "the nodes that match are unhealthy or cordoned; no estimate until they recover"}, nil
	}
	return Estimate{Satisfiable: true, Start: start}, nil
}

// PlannerInput builds the planner's input from cache objects: GPU nodes
// with their bindings, provisioned GPRs with their end times, queued GPRs.
func PlannerInput(nodes []corev1.Node, gprs []v1alpha1.GPUProvisionRequest, now time.Time) planner.Input {
	in := planner.Input{Now: now, Nodes: make([]planner.Node, 0, len(nodes))}
	bound := map[string]string{}
	for i := range gprs {
		g := &gprs[i]
		switch phase(g) {
		case v1alpha1.GPRProvisioned:
			end := now
			if d, err := duration.Parse(g.Spec.ExitDuration); err == nil && g.Status.StartTimestamp != nil {
				end = g.Status.StartTimestamp.Add(d)
			}
			in.Provisioned = append(in.Provisioned, planner.Provisioned{ID: g.Name, Workspace: g.Spec.Workspace, Nodes: g.Status.Nodes, End: end})
			for _, n := range g.Status.Nodes {
				bound[n] = g.Name
			}
		case v1alpha1.GPRQueued:
			in.Queued = append(in.Queued, requestOf(g))
		}
	}
	for i := range nodes {
		n := &nodes[i]
		mib, _ := strconv.ParseInt(n.Labels[v1alpha1.LabelGPUMemory], 10, 64)
		var ready bool
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		in.Nodes = append(in.Nodes, planner.Node{
			Name: n.Name, Cluster: clusterOf(n), InstanceType: instanceTypeOf(n),
			Product: gpuProduct(n), Shape: n.Labels[v1alpha1.LabelGPUShape], MemoryMiB: mib,
			GPUs: int32(gpuCount(n)), Healthy: ready, Schedulable: !n.Spec.Unschedulable,
			BoundTo: orDefault(bound[n.Name], n.Labels[v1alpha1.LabelGPR]),
		})
	}
	return in
}

func requestOf(g *v1alpha1.GPUProvisionRequest) planner.Request {
	d, _ := duration.Parse(g.Spec.ExitDuration)
	return planner.Request{
		ID: g.Name, Workspace: g.Spec.Workspace, Cluster: g.Spec.ClusterName,
		InstanceType: g.Spec.InstanceType, GPUShape: g.Spec.GPUShape, MemoryPerGPU: g.Spec.MemoryPerGPU,
		GPUsPerNode: g.Spec.NumberOfGPUs, Nodes: g.Spec.NumberOfGPUNodes,
		Priority: orDefault(g.Spec.Priority, int32(v1alpha1.DefaultPriority)),
		Created:  g.CreationTimestamp.Time, Duration: d,
	}
}
