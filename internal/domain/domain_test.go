package domain

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func gpuNode(name string, labels map[string]string, capacity, allocatable string) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	if capacity != "" {
		n.Status.Capacity = corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse(capacity)}
	}
	if allocatable != "" {
		n.Status.Allocatable = corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse(allocatable)}
	}
	return n
}

func TestGPUFacts(t *testing.T) {
	h100 := map[string]string{
		v1alpha1.LabelGPUProduct: "NVIDIA-H100-80GB-HBM3", v1alpha1.LabelGPUMemory: "81559", v1alpha1.LabelGPUCount: "8",
		v1alpha1.LabelInstanceType: "p5.48xlarge",
	}
	tests := []struct {
		name    string
		node    *corev1.Node
		cluster string
		want    GPUNode
		ok      bool
		healthy bool
	}{{
		// The API used to count allocatable first (7) and the controller
		// the label first (8): they disagreed on this node.
		name: "one unhealthy GPU: 8 installed, 7 healthy, not plannable", node: gpuNode("a", h100, "8", "7"), cluster: "prod",
		want: GPUNode{Name: "a", Cluster: "prod", InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", Shape: "H100",
			MemoryMiB: 81559, GPUs: 8, HealthyGPUs: 7, Ready: true, Schedulable: true},
		ok: true, healthy: false,
	}, {
		// The API used to put unlabelled nodes in worker-1 whatever
		// --cluster-name said.
		name: "unlabelled cluster is the configured default", node: gpuNode("b", map[string]string{}, "4", "4"), cluster: "prod",
		want: GPUNode{Name: "b", Cluster: "prod", GPUs: 4, HealthyGPUs: 4, Ready: true, Schedulable: true},
		ok:   true, healthy: true,
	}, {
		name: "labelled cluster wins", node: gpuNode("c", map[string]string{v1alpha1.LabelCluster: "east"}, "1", ""), cluster: "prod",
		want: GPUNode{Name: "c", Cluster: "east", GPUs: 1, HealthyGPUs: 1, Ready: true, Schedulable: true},
		ok:   true, healthy: true,
	}, {
		name: "shape label normalised", node: gpuNode("g", map[string]string{v1alpha1.LabelGPUShape: "nvidia-h100", v1alpha1.LabelGPUCount: "1"}, "", ""), cluster: "prod",
		want: GPUNode{Name: "g", Cluster: "prod", Shape: "H100", GPUs: 1, HealthyGPUs: 1, Ready: true, Schedulable: true},
		ok:   true, healthy: true,
	}, {
		name: "no GPUs", node: gpuNode("d", nil, "", ""), cluster: "prod",
	}, {
		name: "feature discovery label only", node: gpuNode("e", map[string]string{v1alpha1.LabelGPUCount: "2"}, "", ""), cluster: "prod",
		want: GPUNode{Name: "e", Cluster: "prod", GPUs: 2, HealthyGPUs: 2, Ready: true, Schedulable: true},
		ok:   true, healthy: true,
	}, {
		name: "all GPUs unhealthy: listed, not plannable", node: gpuNode("f", map[string]string{v1alpha1.LabelGPUCount: "2"}, "2", "0"), cluster: "prod",
		want: GPUNode{Name: "f", Cluster: "prod", GPUs: 2, HealthyGPUs: 0, Ready: true, Schedulable: true},
		ok:   true, healthy: false,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := GPUFacts(tc.node, tc.cluster)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("facts (-want +got):\n%s", diff)
			}
			if ok && got.Healthy() != tc.healthy {
				t.Errorf("Healthy() = %v, want %v", got.Healthy(), tc.healthy)
			}
		})
	}
}

func gpr(name, ws string, phase v1alpha1.ProvisioningStatus, nodes ...string) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec:       v1alpha1.GPUProvisionRequestSpec{Workspace: ws, NumberOfGPUs: 1, ExitDuration: "0d1h0m", ClusterName: "prod"},
		Status:     v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: phase, Nodes: nodes},
	}
}

func TestHolders(t *testing.T) {
	gprs := []*v1alpha1.GPUProvisionRequest{
		gpr("a", "wa", v1alpha1.GPRProvisioned, "n1", "n2"),
		gpr("b", "wb", v1alpha1.GPRProvisioned, "n2", "n3"),
		gpr("c", "wc", v1alpha1.GPRComplete, "n4"),
		gpr("d", "wd", "", "n5"), // not started: holds nothing
	}
	holders, conflicts := Holders(gprs)
	got := map[string]string{}
	for n, g := range holders {
		got[n] = g.Name
	}
	if diff := cmp.Diff(map[string]string{"n1": "a", "n3": "b"}, got); diff != "" {
		t.Errorf("holders (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Claim{{Node: "n2", GPRs: []string{"a", "b"}}}, conflicts); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
}

func TestPhaseAndPriority(t *testing.T) {
	g := gpr("a", "wa", "")
	if Phase(g) != v1alpha1.GPRQueued || !IsQueued(g) || IsProvisioned(g) || IsFinished(g) {
		t.Errorf("empty status: phase %q", Phase(g))
	}
	if Priority(g) != v1alpha1.DefaultPriority || NodeCount(g) != 1 {
		t.Errorf("defaults: priority %d nodes %d", Priority(g), NodeCount(g))
	}
	g.Spec.Priority, g.Spec.NumberOfGPUNodes = 250, 3
	if Priority(g) != 250 || NodeCount(g) != 3 {
		t.Errorf("set: priority %d nodes %d", Priority(g), NodeCount(g))
	}
}

func TestDue(t *testing.T) {
	start := metav1.NewTime(t0.Add(-time.Hour))
	tests := []struct {
		name   string
		mut    func(*v1alpha1.GPUProvisionRequest)
		now    time.Time
		reason v1alpha1.GPRReason
		due    bool
	}{
		{"a second before the end", func(*v1alpha1.GPUProvisionRequest) {}, t0.Add(-time.Second), "", false},
		{"at the end", func(*v1alpha1.GPUProvisionRequest) {}, t0, v1alpha1.ReasonExpired, true},
		{"early release", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.EarlyRelease = true }, t0.Add(-time.Minute), v1alpha1.ReasonEarlyReleased, true},
		{"end unknown", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.ExitDuration = "x" }, t0.Add(-time.Minute), v1alpha1.ReasonExpired, true},
		{"queued is never due", func(g *v1alpha1.GPUProvisionRequest) { g.Status.ProvisioningStatus = v1alpha1.GPRQueued }, t0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := gpr("a", "wa", v1alpha1.GPRProvisioned, "n1")
			g.Status.StartTimestamp = &start
			tc.mut(g)
			reason, due := Due(g, tc.now)
			if reason != tc.reason || due != tc.due {
				t.Errorf("Due = %q, %v; want %q, %v", reason, due, tc.reason, tc.due)
			}
		})
	}
}

func TestEstimateTolerance(t *testing.T) {
	g := gpr("a", "wa", v1alpha1.GPRQueued)
	if !EstimateMoved(g, t0, true, t0) {
		t.Error("a first estimate did not count as moved")
	}
	if EstimateMoved(g, time.Time{}, false, t0) {
		t.Error("no estimate before or after counted as moved")
	}
	g.Status.EstimatedStartTime = &metav1.Time{Time: t0.Add(time.Hour)}
	tests := []struct {
		name  string
		start time.Time
		moved bool
	}{
		{"30s later on an hour's wait", t0.Add(time.Hour + 30*time.Second), false},
		{"5m earlier on an hour's wait (10% is 6m)", t0.Add(55 * time.Minute), false},
		{"7m earlier", t0.Add(53 * time.Minute), true},
		{"2m later", t0.Add(time.Hour + 2*time.Minute), false},
		{"10m later (10% of 70m is 7m)", t0.Add(70 * time.Minute), true},
	}
	for _, tc := range tests {
		if got := EstimateMoved(g, tc.start, true, t0); got != tc.moved {
			t.Errorf("%s: moved = %v, want %v", tc.name, got, tc.moved)
		}
	}
	if !EstimateMoved(g, time.Time{}, false, t0) {
		t.Error("losing the estimate did not count as moved")
	}
}

func TestTransitions(t *testing.T) {
	g := gpr("a", "wa", "")
	g.Generation = 3
	Admit(g)
	SetEstimate(g, t0.Add(90*time.Second), true, t0)
	if g.Status.InternalState != v1alpha1.StateQueued || g.Status.EstimatedWaitTime != "0h1m30s" {
		t.Errorf("admitted: %+v", g.Status)
	}
	Start(g, []string{"n1", "n2"}, t0)
	if Phase(g) != v1alpha1.GPRProvisioned || g.Status.NumGpusAllocated != 2 || g.Status.EstimatedStartTime != nil ||
		g.Status.InternalState != v1alpha1.StateProvisioned || g.Status.ObservedGeneration != 3 {
		t.Errorf("started: %+v", g.Status)
	}
	Release(g, v1alpha1.ReasonEarlyReleased, t0.Add(time.Minute))
	if Phase(g) != v1alpha1.GPRComplete || g.Status.Reason != v1alpha1.ReasonEarlyReleased ||
		g.Status.InternalState != v1alpha1.StateReleased || !g.Status.CompletionTimestamp.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("released: %+v", g.Status)
	}
	if _, held := Holders([]*v1alpha1.GPUProvisionRequest{g}); len(held) != 0 {
		t.Errorf("released GPR still claims nodes")
	}
	h := gpr("b", "wb", v1alpha1.GPRProvisioned, "n3")
	Requeue(h, v1alpha1.ReasonEvicted, "evicted by gpr-x", "1.50")
	if Phase(h) != v1alpha1.GPRQueued || len(h.Status.Nodes) != 0 || h.Status.RetryCount != 1 || h.Status.Reason != v1alpha1.ReasonEvicted || h.Status.EarlierCost != "1.50" {
		t.Errorf("requeued: %+v", h.Status)
	}
	f := gpr("c", "wc", "")
	Fail(f, v1alpha1.ReasonInvalid, "nope")
	if Phase(f) != v1alpha1.GPRError || f.Status.InternalState != v1alpha1.StateFailed || f.Status.FailureReason != "nope" {
		t.Errorf("failed: %+v", f.Status)
	}
}

func TestOlderVersion(t *testing.T) {
	if !OlderVersion("9", "10") || OlderVersion("10", "9") || OlderVersion("x", "10") || OlderVersion("10", "10") {
		t.Error("OlderVersion compares resource versions wrong")
	}
}
