package projection

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mt(t time.Time) *metav1.Time { v := metav1.NewTime(t); return &v }

func hubGPR() *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{
			Name: "gpr-a", CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour)), ResourceVersion: "7", UID: "u1",
			Labels:      map[string]string{v1alpha1.LabelAutoGPR: "ws", "team": "x"},
			Annotations: map[string]string{v1alpha1.AnnotationTemplate: "small", "note": "y"},
		},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: "a", Workspace: "ws", ClusterName: "worker-2", NumberOfGPUs: 8, NumberOfGPUNodes: 2,
			GPUShape: "H100", Priority: 150, ExitDuration: "0d1h0m", EnableEviction: true, PreferredClusters: []string{"worker-2"},
		},
		Status: v1alpha1.GPUProvisionRequestStatus{
			ProvisioningStatus: v1alpha1.GPRQueued, FailureReason: "f", EstimatedStartTime: mt(t0.Add(10 * time.Minute)),
			EstimatedWaitTime: "0h10m0s", DelayedCount: 3,
		},
	}
}

func TestProject(t *testing.T) {
	got := Project(hubGPR(), "worker-1")
	want := &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "gpr-a",
			Labels:      map[string]string{v1alpha1.LabelProjectedFrom: "worker-1", v1alpha1.LabelAutoGPR: "ws"},
			Annotations: map[string]string{v1alpha1.AnnotationProjectedCreated: "2026-03-01T11:00:00Z", v1alpha1.AnnotationTemplate: "small"},
		},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: "a", Workspace: "ws", ClusterName: "worker-2", NumberOfGPUs: 8, NumberOfGPUNodes: 2,
			Priority: 150, ExitDuration: "0d1h0m",
		},
		Status: v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: v1alpha1.GPRQueued, EstimatedStartTime: mt(t0.Add(10 * time.Minute))},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Project (-want +got):\n%s", d)
	}

	// Provisioned: nodes and start, no estimate.
	g := hubGPR()
	g.Status.ProvisioningStatus, g.Status.Nodes, g.Status.StartTimestamp = v1alpha1.GPRProvisioned, []string{"n1", "n2"}, mt(t0)
	got = Project(g, "worker-1")
	wantStatus := v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: v1alpha1.GPRProvisioned, Nodes: []string{"n1", "n2"}, StartTimestamp: mt(t0)}
	if d := cmp.Diff(wantStatus, got.Status); d != "" {
		t.Errorf("Project of a provisioned GPR, status (-want +got):\n%s", d)
	}
}

func TestTarget(t *testing.T) {
	now := metav1.NewTime(t0)
	for _, tt := range []struct {
		name   string
		mutate func(*v1alpha1.GPUProvisionRequest)
		want   string
	}{
		{"queued on a worker", func(*v1alpha1.GPUProvisionRequest) {}, "worker-2"},
		{"never a phase yet", func(g *v1alpha1.GPUProvisionRequest) { g.Status = v1alpha1.GPUProvisionRequestStatus{} }, "worker-2"},
		{"provisioned", func(g *v1alpha1.GPUProvisionRequest) { g.Status.ProvisioningStatus = v1alpha1.GPRProvisioned }, "worker-2"},
		{"complete", func(g *v1alpha1.GPUProvisionRequest) { g.Status.ProvisioningStatus = v1alpha1.GPRComplete }, ""},
		{"error", func(g *v1alpha1.GPUProvisionRequest) { g.Status.ProvisioningStatus = v1alpha1.GPRError }, ""},
		{"being deleted", func(g *v1alpha1.GPUProvisionRequest) { g.DeletionTimestamp = &now }, ""},
		{"of the hub's own cluster", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.ClusterName = "worker-1" }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := hubGPR()
			tt.mutate(g)
			if got := Target(g, "worker-1"); got != tt.want {
				t.Errorf("Target = %q, want %q", got, tt.want)
			}
		})
	}
	if got := Target(nil, "worker-1"); got != "" {
		t.Errorf("Target(nil) = %q", got)
	}
}

// TestChanged: what is rewritten, and what is not. Only what the plugin
// reads counts; an estimate counts when it moved beyond the tolerance.
func TestChanged(t *testing.T) {
	now := t0
	type want struct{ spec, status bool }
	for _, tt := range []struct {
		name   string
		mutate func(*v1alpha1.GPUProvisionRequest)
		want   want
	}{
		{"unchanged", func(*v1alpha1.GPUProvisionRequest) {}, want{}},
		{"fields the plugin does not read", func(g *v1alpha1.GPUProvisionRequest) {
			g.Spec.GPUShape, g.Spec.EnableEviction = "A100", false
			g.Status.FailureReason, g.Status.EstimatedWaitTime, g.Status.DelayedCount, g.Status.Cost = "other", "0h9m0s", 4, "1.00"
			g.Labels["team"], g.Annotations["note"] = "z", "w"
			g.ResourceVersion = "8"
		}, want{}},
		{"estimate within the tolerance", func(g *v1alpha1.GPUProvisionRequest) {
			g.Status.EstimatedStartTime = mt(t0.Add(10*time.Minute + 50*time.Second))
		}, want{}},
		{"estimate moved", func(g *v1alpha1.GPUProvisionRequest) { g.Status.EstimatedStartTime = mt(t0.Add(20 * time.Minute)) }, want{status: true}},
		{"estimate lost", func(g *v1alpha1.GPUProvisionRequest) { g.Status.EstimatedStartTime = nil }, want{status: true}},
		{"latest start gained", func(g *v1alpha1.GPUProvisionRequest) { g.Status.LatestStartTime = mt(t0.Add(3 * time.Hour)) }, want{status: true}},
		{"provisioned", func(g *v1alpha1.GPUProvisionRequest) {
			g.Status.ProvisioningStatus, g.Status.Nodes, g.Status.StartTimestamp = v1alpha1.GPRProvisioned, []string{"n1"}, mt(t0)
		}, want{status: true}},
		{"priority", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.Priority = 200 }, want{spec: true}},
		{"priority back to the default", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.Priority = v1alpha1.DefaultPriority }, want{spec: true}},
		{"auto-GPR template", func(g *v1alpha1.GPUProvisionRequest) { g.Annotations[v1alpha1.AnnotationTemplate] = "big" }, want{spec: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			have := Project(hubGPR(), "worker-1")
			g := hubGPR()
			tt.mutate(g)
			w := Project(g, "worker-1")
			got := want{spec: SpecChanged(have, w), status: StatusChanged(have, w, now)}
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); d != "" {
				t.Errorf("changed (-want +got):\n%s", d)
			}
		})
	}

	// A projection created without a phase (the API server drops status
	// on create) reads as Queued: a queued GPR without an estimate needs
	// no status write.
	g := hubGPR()
	g.Status.EstimatedStartTime = nil
	if NeedsStatus(Project(g, "worker-1")) {
		t.Error("a queued GPR without an estimate needs a status write")
	}
	if !NeedsStatus(Project(hubGPR(), "worker-1")) {
		t.Error("a queued GPR with an estimate needs no status write")
	}
	// The hub's priority 0 (stored before defaulting) and 101 are one.
	a, b := Project(hubGPR(), "h"), Project(hubGPR(), "h")
	a.Spec.Priority, b.Spec.Priority = 0, v1alpha1.DefaultPriority
	if SpecChanged(a, b) {
		t.Error("priority 0 and the default priority differ")
	}
}
