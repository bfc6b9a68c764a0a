package view

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/holdtime"
)

// Reader is who a view is rendered for: what of a workspace it may read
// (auth.Principal).
type Reader interface {
	CanRead(workspace string) bool
}

// PlanNode is a GPU node on the timeline: its facts, and who holds it.
type PlanNode struct {
	Name         string `json:"name"`
	Cluster      string `json:"clusterName"`
	GPUShape     string `json:"gpuShape"`
	InstanceType string `json:"instanceType"`
	GPUs         int32  `json:"gpuCount"`
	MemoryGB     int    `json:"memory" doc:"Memory per GPU in GB"`
	Healthy      bool   `json:"healthy" doc:"Ready, schedulable and every GPU healthy: GPRs may start on it"`
	State        string `json:"state" enum:"free,held,unhealthy,conflicted" doc:"held wins over unhealthy: a held node that turns unhealthy stays its GPR's. conflicted: more than one provisioned GPR names the node in its status; it counts as held, by no one gpuspace picks, until a person resolves it (gprId and sliceName are empty)"`
	GPRID        string `json:"gprId" doc:"The provisioned GPR holding it; empty when free, or held by a workspace the caller may not read"`
	Workspace    string `json:"sliceName" doc:"Workspace of the holder, empty as gprId is"`
	Until        string `json:"until" doc:"When the holder's exitDuration ends (RFC 3339); empty when free"`
	// Domain is gpuspace's topology grouping (topology.go).
	Domain string `json:"domain,omitempty" doc:"The node's network block: its topology domain one level above the finest it has (e.g. builtin-gke/block-1); absent without topology labels"`
}

// PlanGPR is a provisioned or queued GPR on the timeline.
type PlanGPR struct {
	GPRID     string   `json:"gprId" doc:"Empty for a GPR of a workspace the caller may not read (shown, anonymous, so a wait can be explained)"`
	GPRName   string   `json:"gprName"`
	Workspace string   `json:"sliceName"`
	Phase     string   `json:"provisioningStatus" enum:"Queued,Provisioned"`
	Priority  int32    `json:"priority"`
	GPUs      int32    `json:"numberOfGPUs" doc:"GPUs per node"`
	Start     string   `json:"start" doc:"Provisioned: when it started; queued: the plan's likely start (estimatedStartTime); empty when the plan has none"`
	Latest    string   `json:"latestStart" doc:"Queued: its latest start, if every GPR ahead holds its nodes for its whole exitDuration and no higher-priority GPR arrives (latestStartTime); empty otherwise"`
	End       string   `json:"end" doc:"start + exitDuration; empty without a start"`
	LikelyEnd string   `json:"likelyEnd" doc:"When it likely releases its nodes, at or before end: its workspace's finished GPRs predict how long it holds them (for estimates only; it keeps its nodes until end unless released). Empty when unknown"`
	Nodes     []string `json:"nodes" doc:"Provisioned: the nodes it holds; queued: the nodes the current plan reserves for it (they may change, only the start is an estimate)"`
	Reason    string   `json:"reason" doc:"A queued GPR's failureReason (why it waits without an estimate), if any"`
}

// Timeline is the data of GET /plan.
type Timeline struct {
	Now   string     `json:"now" doc:"The time the plan was made for (RFC 3339)"`
	Nodes []PlanNode `json:"nodes"`
	GPRs  []PlanGPR  `json:"gprs" doc:"Provisioned GPRs, then queued GPRs in queue order"`
}

// TimelineOf renders a plan and the GPU nodes for p.
func TimelineOf(plan *Plan, nodes []Node, p Reader) Timeline {
	out := Timeline{Now: plan.now.UTC().Format(time.RFC3339), Nodes: []PlanNode{}, GPRs: []PlanGPR{}}
	holders, conflicts := domain.Holders(plan.gprs)
	conflicted := make(map[string]bool, len(conflicts))
	for _, c := range conflicts {
		conflicted[c.Node] = true
	}
	domains := plan.nodeDomains()
	for _, n := range nodes {
		pn := PlanNodeOf(n.GPUNode, holders[n.GPUNode.Name], conflicted[n.GPUNode.Name], p)
		pn.Domain = domains[n.GPUNode.Name]
		out.Nodes = append(out.Nodes, pn)
	}
	slices.SortFunc(out.Nodes, func(a, b PlanNode) int {
		return cmp.Or(strings.Compare(a.Cluster, b.Cluster), strings.Compare(a.GPUShape, b.GPUShape), strings.Compare(a.Name, b.Name))
	})
	var queued []PlanGPR
	f := plan.Forecast()
	for _, g := range plan.gprs {
		switch {
		case domain.IsProvisioned(g):
			out.GPRs = append(out.GPRs, PlanGPROf(g, f, p))
		case domain.IsQueued(g):
			queued = append(queued, PlanGPROf(g, f, p))
		}
	}
	slices.SortFunc(out.GPRs, func(a, b PlanGPR) int {
		return cmp.Or(strings.Compare(a.Start, b.Start), strings.Compare(a.GPRID, b.GPRID))
	})
	// Queue order, as the planner orders (priority, then age): estimates
	// then make sense read top to bottom.
	slices.SortStableFunc(queued, func(a, b PlanGPR) int {
		// Within a priority: by estimated start, those without one last.
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(noStart(a), noStart(b)), strings.Compare(a.Start, b.Start))
	})
	out.GPRs = append(out.GPRs, queued...)
	return out
}

// Node states (PlanNode.State).
const (
	NodeFree       = "free"
	NodeHeld       = "held"
	NodeUnhealthy  = "unhealthy"
	NodeConflicted = "conflicted"
)

// PlanNodeOf renders a node and its holder for p. A conflicted node (named
// by more than one provisioned GPR, domain.Holders) is shown as such, with
// no holder: the conflict is reported, never resolved by picking one.
func PlanNodeOf(f domain.GPUNode, holder *v1alpha1.GPUProvisionRequest, conflicted bool, p Reader) PlanNode {
	n := PlanNode{Name: f.Name, Cluster: f.Cluster, GPUShape: f.Shape, InstanceType: f.InstanceType,
		GPUs: f.GPUs, MemoryGB: f.MemoryGB(), Healthy: f.Healthy(), State: NodeFree}
	switch {
	case conflicted:
		n.State = NodeConflicted
		return n
	case !n.Healthy:
		n.State = NodeUnhealthy
	}
	if holder != nil {
		n.State = NodeHeld
		if end, ok := domain.End(holder); ok {
			n.Until = end.UTC().Format(time.RFC3339)
		}
		if p.CanRead(holder.Spec.Workspace) {
			n.GPRID, n.Workspace = holder.Name, holder.Spec.Workspace
		}
	}
	return n
}

// Forecast is what a plan says of GPRs' futures (Plan.Forecast). The zero
// Forecast says nothing: queued GPRs are rendered without a start and
// nobody's likely end is known.
type Forecast struct {
	Now            time.Time
	Likely, Latest domain.Estimates
	Place          map[string][]string
	Holds          holdtime.Predictor
}

// PlanGPROf renders a GPR for p: a queued one with the plan's likely start
// and reserved nodes, every one with its likely end, anonymous when p may
// not read its workspace.
func PlanGPROf(g *v1alpha1.GPUProvisionRequest, f Forecast, p Reader) PlanGPR {
	out := PlanGPR{GPRID: g.Name, GPRName: g.Spec.GPRName, Workspace: g.Spec.Workspace, Phase: string(domain.Phase(g)),
		Priority: domain.Priority(g), GPUs: g.Spec.NumberOfGPUs, Nodes: []string{}}
	var start time.Time
	switch {
	case domain.IsProvisioned(g):
		if g.Status.StartTimestamp != nil {
			start = g.Status.StartTimestamp.Time
		}
		out.Nodes = cloneNames(g.Status.Nodes)
	default:
		if t, ok := domain.EstimatedStart(g, f.Likely); ok {
			start = t
			out.Nodes = cloneNames(f.Place[g.Name])
		}
		if t, ok := domain.LatestStart(g, f.Latest); ok && !t.IsZero() {
			out.Latest = t.UTC().Format(time.RFC3339)
		}
		out.Reason = g.Status.FailureReason
	}
	if !start.IsZero() {
		out.Start = start.UTC().Format(time.RFC3339)
		if d, err := domain.ExitDuration(g); err == nil {
			out.End = start.Add(d).UTC().Format(time.RFC3339)
			if end, ok := f.likelyEnd(g, start, d); ok {
				out.LikelyEnd = end.UTC().Format(time.RFC3339)
			}
		}
	}
	if !p.CanRead(g.Spec.Workspace) {
		out.GPRID, out.GPRName, out.Workspace, out.Reason = "", "", "", ""
	}
	return out
}

// likelyEnd is when g, starting (or started) at start for requested,
// likely releases its nodes: the same prediction the likely estimates of
// the GPRs behind it plan with (holdtime.ForPlan).
func (f Forecast) likelyEnd(g *v1alpha1.GPUProvisionRequest, start time.Time, requested time.Duration) (time.Time, bool) {
	if f.Holds == nil {
		return time.Time{}, false
	}
	predicted := f.Holds.Predict(g.Spec.Workspace, requested)
	if domain.IsProvisioned(g) {
		return holdtime.Remaining(start, requested, predicted, f.Now), true
	}
	return start.Add(min(predicted, requested)), true
}

func noStart(g PlanGPR) int {
	if g.Start == "" {
		return 1
	}
	return 0
}

// cloneNames copies names for an answer: [] rather than null when none.
func cloneNames(names []string) []string {
	if names == nil {
		return []string{}
	}
	return slices.Clone(names)
}
