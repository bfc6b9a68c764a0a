package clusters_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/clusters"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestWorkerGPRIdleReleaseKeepsCost: a GPR on a worker cluster whose GPUs
// stay idle is released as Idle — idleness is confirmed on a live read of
// the node in the worker, not on the hub, where it does not exist — and
// its final cost is priced by that node's shape (the GPR names none), as
// the cost shown while it ran was.
func TestWorkerGPRIdleReleaseKeepsCost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := startMCWorld(t, ctx)
	w.stop()
	const price = 0.8
	startHub(t, ctx, controller.Options{Clock: w.clock, GPUPrices: domain.Prices{"L4": price}}, clusters.Options{Heartbeat: 300 * time.Millisecond})
	w.readyIs(edge3, metav1.ConditionTrue, v1alpha1.ClusterReasonReachable)

	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "mci-idle"}, Spec: v1alpha1.WorkspaceSpec{
		Username: "mci-idle", Clusters: []string{edge3}, Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: "mci-idle"}},
	}}
	if err := hub.Client.Create(ctx, ws); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Client.Delete(context.Background(), ws) })
	id := w.gpr("mci-idle-gpr", ws.Name, edge3, "", 4, 1, func(s *v1alpha1.GPUProvisionRequestSpec) {
		s.ExitDuration, s.IdleTimeOutDuration, s.EnforceIdleTimeOut = "1d0h0m", "0d0h10m", true
	})
	start := w.waitGPR(id, "Provisioned on edge-3", provisioned).Status.StartTimestamp.Time

	// Eleven minutes on, the node publishes that its GPUs have been idle
	// since the start (its device plugin would): that node event wakes
	// the pass.
	held := 11 * time.Minute
	w.clock.SetTime(start.Add(held))
	if err := w.workers[edge3].Nodes.SetIdleSince(ctx, "e3-l4-0", start); err != nil {
		t.Fatal(err)
	}
	g := w.waitGPR(id, "Complete (Idle)", completed(v1alpha1.ReasonIdle))
	if want := domain.FormatCost(4 * held.Hours() * price); g.Status.Cost != want {
		t.Errorf("final cost %q, want %q (4 L4 GPUs for %s at %.2f USD per GPU-hour)", g.Status.Cost, want, held, price)
	}
}
