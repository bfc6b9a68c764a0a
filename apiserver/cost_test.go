package apiserver

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestLiveCost: a provisioned GPR's cost is GPU-hours so far × the price
// of its node's shape, on the API's clock, on every read, never stored; a
// completed one shows what the controller wrote; the workspace's details
// add them up. Without prices costs are empty (TestWorkspacePolicyLimits
// and the rest run without).
func TestLiveCost(t *testing.T) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	var later atomic.Int64 // added to now: the API's clock
	ns := "gs-cost-" + suffix()
	srv, err := New(Config{RESTConfig: env.Config, Namespace: ns, GPUPrices: domain.Prices{"H100": 2}},
		WithClock(func() time.Time { return now.Add(time.Duration(later.Load())) }))
	if err != nil {
		t.Fatal(err)
	}
	h := apiservertest.Start(t, env.Client, ns, srv)
	ts := &testServer{h: h, t: t, srv: srv, http: h.HTTP, ns: ns, owner: h.Owner, ownKey: h.OwnerKey}
	sfx := suffix()
	ws, node := "cost-"+sfx, "cost-h100-"+sfx
	createWorkspace(t, ts, ws, ws+"-ns")
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
	})
	addNode(t, testenv.GPUNode{Name: node, InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8})

	started := metav1.NewTime(now.Add(-3 * time.Hour))
	done := metav1.NewTime(now.Add(-4 * time.Hour))
	mk := func(id string, st v1alpha1.GPUProvisionRequestStatus) {
		t.Helper()
		g := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: id}, Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: "c", Workspace: ws, ClusterName: "worker-1", NumberOfGPUs: 8, ExitDuration: "1d0h0m"}}
		if err := env.Client.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, g) })
		g.Status = st
		if err := env.Client.Status().Update(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	live, old := "gpr-cost-"+sfx+"-1", "gpr-cost-"+sfx+"-2"
	mk(live, v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: v1alpha1.GPRProvisioned, Nodes: []string{node}, NumGpusAllocated: 8, StartTimestamp: &started})
	mk(old, v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: v1alpha1.GPRComplete, Nodes: []string{node}, NumGpusAllocated: 8,
		StartTimestamp: &metav1.Time{Time: done.Add(-time.Hour)}, CompletionTimestamp: &done, Cost: "10.50"})

	// 8 GPUs × 3 h × 2 USD.
	waitFor(t, "the live cost", func() bool {
		r := ts.do("GET", "/api/v1/gpr?gprId="+live, ts.owner, nil)
		return r.code == 200 && r.data()["status"].(map[string]any)["cost"] == "48.00"
	})
	if r := ts.do("GET", "/api/v1/gpr/list?sliceName="+ws, ts.owner, nil); r.code != 200 || len(r.data()["items"].([]any)) != 2 {
		t.Fatalf("list: %d %s", r.code, r.raw)
	} else {
		for _, it := range r.data()["items"].([]any) {
			g := it.(map[string]any)
			if want := map[string]string{live: "48.00", old: "10.50"}[g["gprId"].(string)]; g["status"].(map[string]any)["cost"] != want {
				t.Errorf("listed %s costs %v, want %s", g["gprId"], g["status"].(map[string]any)["cost"], want)
			}
		}
	}
	r := wantOK(t, ts.do("GET", "/api/v1/slice-workspace/"+ws, ts.owner, nil))
	if got := r.data()["totalCost"]; got != "58.50" {
		t.Errorf("workspace totalCost %v, want 58.50", got)
	}
	// Six minutes later the live cost moved (8 GPUs × 3.1 h × 2 USD);
	// nothing was written.
	later.Store(int64(6 * time.Minute))
	r = wantOK(t, ts.do("GET", "/api/v1/gpr?gprId="+live, ts.owner, nil))
	if got := r.data()["status"].(map[string]any)["cost"]; got != "49.60" {
		t.Errorf("cost six minutes later %v, want 49.60", got)
	}
	var g v1alpha1.GPUProvisionRequest
	if err := env.Client.Get(ctx, keyOf(live), &g); err != nil || g.Status.Cost != "" {
		t.Errorf("stored cost %q (%v): live costs are never written", g.Status.Cost, err)
	}
}
