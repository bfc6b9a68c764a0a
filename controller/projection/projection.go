// Package projection keeps, in each registered worker cluster, the small
// copy of the hub's GPRs that the worker's gpuspace-scheduler reads: the
// scheduler plugin indexes GPUProvisionRequests from an informer in its own
// cluster (which workspace holds which node, QueueSort priority, the
// estimate in a held pod's message), and a worker holds no credential for
// the hub.
//
// A projection is a GPUProvisionRequest of the same name in the worker,
// labelled gpuspace.io/projected-from=<hub cluster>, carrying only what the
// plugin reads: spec.workspace, spec.priority, spec.clusterName,
// spec.numberOfGPUNodes (and the CRD's required gprName, numberOfGPUs,
// exitDuration), the auto-GPR label and template annotation, the hub's
// creation time as an annotation, and status.provisioningStatus, nodes,
// startTimestamp and estimatedStartTime. Same CRD, so the plugin keeps one
// way of reading GPRs in every cluster and the hub's own cluster (where the
// real GPRs are) needs no projection at all.
//
// Which cluster: a GPR of spec.clusterName W (W not the hub's own cluster)
// that is queued or provisioned is projected into W; anything else there
// under that name and label is deleted. Writes are a budget: a projection
// is written only when something the plugin reads changed (phase, nodes,
// start, priority, an estimate that moved beyond domain.EstimateTolerance),
// compared with the worker's own object from the hub's cache of it, so an
// unchanged GPR makes no write, after a hub restart too. A worker that is
// not reachable is skipped; when it is Ready again, the whole cluster is
// resynced: missing projections made, stale ones (of GPRs that finished or
// went while it was away) deleted.
package projection

import (
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// Target is the worker cluster a hub GPR is projected into, or "" when it
// is projected nowhere: finished, being deleted, or of the hub's own
// cluster hub.
func Target(g *v1alpha1.GPUProvisionRequest, hub string) string {
	if g == nil || g.DeletionTimestamp != nil || domain.IsFinished(g) {
		return ""
	}
	if c := g.Spec.ClusterName; c != "" && c != hub {
		return c
	}
	return ""
}

// Project is the projection of hub GPR g, projected by the hub cluster
// hub.
func Project(g *v1alpha1.GPUProvisionRequest, hub string) *v1alpha1.GPUProvisionRequest {
	p := &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{
			Name:        g.Name,
			Labels:      map[string]string{v1alpha1.LabelProjectedFrom: hub},
			Annotations: map[string]string{v1alpha1.AnnotationProjectedCreated: g.CreationTimestamp.UTC().Format(time.RFC3339)},
		},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName:          g.Spec.GPRName,
			Workspace:        g.Spec.Workspace,
			ClusterName:      g.Spec.ClusterName,
			NumberOfGPUs:     g.Spec.NumberOfGPUs,
			NumberOfGPUNodes: g.Spec.NumberOfGPUNodes,
			Priority:         g.Spec.Priority,
			ExitDuration:     g.Spec.ExitDuration,
		},
		Status: v1alpha1.GPUProvisionRequestStatus{
			ProvisioningStatus: g.Status.ProvisioningStatus,
			Nodes:              slices.Clone(g.Status.Nodes),
			StartTimestamp:     g.Status.StartTimestamp.DeepCopy(),
			EstimatedStartTime: g.Status.EstimatedStartTime.DeepCopy(),
			LatestStartTime:    g.Status.LatestStartTime.DeepCopy(),
		},
	}
	// Auto-GPR's provenance: the plugin names the template in the hold
	// message.
	if v, ok := g.Labels[v1alpha1.LabelAutoGPR]; ok {
		p.Labels[v1alpha1.LabelAutoGPR] = v
	}
	if v, ok := g.Annotations[v1alpha1.AnnotationTemplate]; ok {
		p.Annotations[v1alpha1.AnnotationTemplate] = v
	}
	if !domain.IsQueued(g) {
		// An estimate means nothing once started; the hub may still
		// have the last one stored.
		p.Status.EstimatedStartTime, p.Status.LatestStartTime = nil, nil
	}
	return p
}

// IsProjection reports whether a worker's GPR is a projection of hub.
func IsProjection(g *v1alpha1.GPUProvisionRequest, hub string) bool {
	return g.Labels[v1alpha1.LabelProjectedFrom] == hub
}

// Immutable reports whether have and want differ in a field the CRD does
// not let change (workspace, clusterName): have is then another GPR's
// leftover and is replaced, not updated.
func Immutable(have, want *v1alpha1.GPUProvisionRequest) bool {
	return have.Spec.Workspace != want.Spec.Workspace || have.Spec.ClusterName != want.Spec.ClusterName
}

// SpecChanged reports whether the worker's projection have needs its
// metadata or spec rewritten to be want.
func SpecChanged(have, want *v1alpha1.GPUProvisionRequest) bool {
	hs, ws := have.Spec, want.Spec
	return hs.GPRName != ws.GPRName || hs.Workspace != ws.Workspace || hs.ClusterName != ws.ClusterName ||
		hs.NumberOfGPUs != ws.NumberOfGPUs || domain.NodeCount(have) != domain.NodeCount(want) ||
		domain.Priority(have) != domain.Priority(want) || hs.ExitDuration != ws.ExitDuration ||
		!maps.Equal(have.Labels, want.Labels) || !maps.Equal(have.Annotations, want.Annotations)
}

// StatusChanged reports whether the worker's projection have needs its
// status rewritten to be want, at now: a change of phase (as the domain
// reads it: no phase is Queued), nodes or start, or an estimate gained,
// lost or moved beyond domain.EstimateTolerance (likely or latest).
func StatusChanged(have, want *v1alpha1.GPUProvisionRequest, now time.Time) bool {
	if domain.Phase(have) != domain.Phase(want) || !slices.Equal(have.Status.Nodes, want.Status.Nodes) ||
		!timeEqual(have.Status.StartTimestamp, want.Status.StartTimestamp) {
		return true
	}
	likely, latest := want.Status.EstimatedStartTime, want.Status.LatestStartTime
	return domain.EstimateMoved(have, timeOf(likely), likely != nil, now) || domain.LatestMoved(have, timeOf(latest), latest != nil, now)
}

// timeOf is t's time; zero for nil.
func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// NeedsStatus reports whether a projection just created (the API server
// drops status on create) needs a status write to be want.
func NeedsStatus(want *v1alpha1.GPUProvisionRequest) bool {
	return StatusChanged(&v1alpha1.GPUProvisionRequest{}, want, time.Time{})
}

func timeEqual(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	// Stored times have whole seconds.
	return a.Time.Truncate(time.Second).Equal(b.Time.Truncate(time.Second))
}
