package domain

import (
	"math"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func TestParsePrices(t *testing.T) {
	p, err := ParsePrices([]string{"H100=2.5", "nvidia-a100-sxm4-40gb=1.25", " Tesla-T4 = 0.35 "})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "A100=1.25,H100=2.5,T4=0.35" {
		t.Errorf("prices %s", got)
	}
	if usd, ok := p.Of("NVIDIA-H100-80GB-HBM3"); !ok || usd != 2.5 {
		t.Errorf("H100 price %v %v", usd, ok)
	}
	for _, bad := range []string{"H100", "=1", "H100=x", "H100=-1", "H100=NaN", "H100=Inf"} {
		if _, err := ParsePrices([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if p, err := ParsePrices(nil); err != nil || p != nil {
		t.Errorf("no prices: %v %v", p, err)
	}
}

func TestCost(t *testing.T) {
	prices := Prices{"H100": 2.5, "T4": 0.5}
	start := metav1.NewTime(t0)
	gpr := func(phase v1alpha1.ProvisioningStatus, shape string, done *metav1.Time) *v1alpha1.GPUProvisionRequest {
		return &v1alpha1.GPUProvisionRequest{
			Spec: v1alpha1.GPUProvisionRequestSpec{Workspace: "w", ClusterName: "c", NumberOfGPUs: 4, NumberOfGPUNodes: 2, GPUShape: shape},
			Status: v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: phase, Nodes: []string{"h1", "t1"},
				StartTimestamp: &start, CompletionTimestamp: done},
		}
	}
	done := metav1.NewTime(t0.Add(90 * time.Minute))
	nodes := map[string]GPUNode{"h1": {Name: "h1", Cluster: "east", Shape: "H100"}, "t1": {Name: "t1", Cluster: "west", Shape: "T4"}}
	for _, tt := range []struct {
		name   string
		g      *v1alpha1.GPUProvisionRequest
		prices Prices
		nodes  map[string]GPUNode
		now    time.Time
		want   string
	}{
		// 4 GPUs × 1.5 h on an H100 node (2.5) and on a T4 node (0.5).
		{"complete, by node shape", gpr(v1alpha1.GPRComplete, "", &done), prices, nodes, t0.Add(10 * time.Hour), "18.00"},
		// Live: 4 GPUs × 2 h × 2.5 on each of two nodes of the GPR's shape.
		{"provisioned, live, nodes gone", gpr(v1alpha1.GPRProvisioned, "H100", nil), prices, nil, t0.Add(2 * time.Hour), "40.00"},
		{"no prices", gpr(v1alpha1.GPRComplete, "", &done), nil, nodes, t0, ""},
		{"a shape without a price", gpr(v1alpha1.GPRProvisioned, "A100", nil), prices, nil, t0.Add(time.Hour), ""},
		{"queued", &v1alpha1.GPUProvisionRequest{}, prices, nil, t0, ""},
		{"free", gpr(v1alpha1.GPRComplete, "", &done), Prices{"H100": 0, "T4": 0}, nodes, t0, "0.00"},
		// An earlier run (requeued after it) counts: 3.25 + 18.00.
		{"complete after a requeue", withEarlier(gpr(v1alpha1.GPRComplete, "", &done), "3.25"), prices, nodes, t0, "21.25"},
		{"requeued, queued again", withEarlier(&v1alpha1.GPUProvisionRequest{}, "3.25"), prices, nil, t0, "3.25"},
	} {
		if got := CostString(tt.g, tt.prices, tt.nodes, tt.now); got != tt.want {
			t.Errorf("%s: cost %q, want %q", tt.name, got, tt.want)
		}
	}
	u := GPRUsage(gpr(v1alpha1.GPRComplete, "", &done), nodes, t0)
	if len(u) != 2 || u[0].Cluster != "east" || u[1].Shape != "T4" || math.Abs(u[0].GPUSeconds-4*5400) > 1e-9 {
		t.Errorf("usage %+v", u)
	}
}

func withEarlier(g *v1alpha1.GPUProvisionRequest, usd string) *v1alpha1.GPUProvisionRequest {
	g.Status.EarlierCost = usd
	return g
}
