package domain

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func readyNode(name string, status corev1.ConditionStatus, reason string, since time.Time) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: status, Reason: reason, LastTransitionTime: metav1.NewTime(since),
		}}},
	}
}

func TestLostNodes(t *testing.T) {
	grace := 5 * time.Minute
	nodes := map[string]*corev1.Node{
		"ok":          readyNode("ok", corev1.ConditionTrue, "KubeletReady", t0.Add(-time.Hour)),
		"down-long":   readyNode("down-long", corev1.ConditionFalse, "KubeletNotReady", t0.Add(-grace)),
		"down-short":  readyNode("down-short", corev1.ConditionUnknown, "NodeStatusUnknown", t0.Add(-time.Minute)),
		"partitioned": readyNode("partitioned", corev1.ConditionUnknown, ReasonClusterUnreachable, t0.Add(-time.Hour)),
	}
	g := gpr("a", "w", v1alpha1.GPRProvisioned, "ok", "down-long", "down-short", "partitioned", "deleted")
	for _, tt := range []struct {
		name      string
		goneKnown bool
		want      []string
	}{
		{"inventory complete", true, []string{"down-long", "deleted"}},
		// A worker out of sight hides its nodes: missing is not deleted.
		{"inventory incomplete", false, []string{"down-long"}},
	} {
		lost, next := LostNodes(g, nodes, grace, t0, tt.goneKnown)
		if diff := cmp.Diff(tt.want, names(lost)); diff != "" {
			t.Errorf("%s: lost (-want +got):\n%s", tt.name, diff)
		}
		if want := t0.Add(4 * time.Minute); !next.Equal(want) {
			t.Errorf("%s: next %v, want %v (down-short's grace ends)", tt.name, next, want)
		}
	}
	if lost, _ := LostNodes(gpr("b", "w", v1alpha1.GPRComplete, "deleted"), nodes, grace, t0, true); len(lost) != 0 {
		t.Errorf("a complete GPR lost %v", lost)
	}
}

func TestReplaceAndDropNodes(t *testing.T) {
	lost := []LostNode{{Name: "n2", Why: "deleted"}}
	g := gpr("a", "w", v1alpha1.GPRProvisioned, "n1", "n2")
	g.Spec.NumberOfGPUNodes, g.Spec.NumberOfGPUs = 2, 8
	r := g.DeepCopy()
	ReplaceNodes(r, lost, []string{"n9"})
	if diff := cmp.Diff([]string{"n1", "n9"}, r.Status.Nodes); diff != "" || r.Status.NumGpusAllocated != 16 || !IsProvisioned(r) || Shortfall(r) != 0 {
		t.Errorf("replaced: %+v %s", r.Status, diff)
	}
	d := g.DeepCopy()
	DropNodes(d, lost, t0)
	c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.GPRNodesHealthy)
	if !IsProvisioned(d) || Shortfall(d) != 1 || d.Status.NumGpusAllocated != 8 || c == nil || c.Status != metav1.ConditionFalse || c.Reason != "NodeLost" {
		t.Errorf("dropped: %+v", d.Status)
	}
	DropNodes(d, []LostNode{{Name: "n1", Why: "deleted"}}, t0)
	if Phase(d) != v1alpha1.GPRComplete || d.Status.Reason != v1alpha1.ReasonNodeLost || len(d.Status.Nodes) != 1 {
		t.Errorf("no node left: %+v", d.Status)
	}
	q := g.DeepCopy()
	Requeue(q, v1alpha1.ReasonNodeLost, "lost n2", "")
	if WaitsOnReason(q) || !IsQueued(q) || q.Status.RetryCount != 1 {
		t.Errorf("a GPR requeued for a lost node is planned like any other: %+v", q.Status)
	}
}

func TestDelayedCount(t *testing.T) {
	g := gpr("a", "w", v1alpha1.GPRQueued)
	SetEstimate(g, t0.Add(time.Hour), true, t0)
	SetEstimate(g, t0.Add(30*time.Minute), true, t0)                // earlier: not delayed
	SetEstimate(g, t0.Add(30*time.Minute+30*time.Second), true, t0) // within tolerance: no write
	SetEstimate(g, t0.Add(2*time.Hour), true, t0)
	if g.Status.DelayedCount != 1 {
		t.Errorf("delayedCount %d, want 1", g.Status.DelayedCount)
	}
}
