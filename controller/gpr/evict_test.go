package gpr

import (
	"context"
	"errors"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// crashingClient fails the first status write of one GPR, as a process
// killed between two writes of a pass would leave things.
type crashingClient struct {
	client.Client
	failFor string
	failed  bool
}

func (c *crashingClient) Status() client.SubResourceWriter {
	return &crashingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

type crashingStatus struct {
	client.SubResourceWriter
	c *crashingClient
}

func (s *crashingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if obj.GetName() == s.c.failFor && !s.c.failed {
		s.c.failed = true
		return errors.New("killed")
	}
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

// TestEvictionCrashBetweenWrites: the pass that evicts writes the victim
// (requeued) and then dies before the evictor's start. A new reconciler
// (a restart) must start the evictor on the freed node; the victim is never
// lost and the node is never in two provisioned GPRs' status.
func TestEvictionCrashBetweenWrites(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	scheme, node := testWorld(t)
	victim := testGPR("victim", "wv", 100, now.Add(-time.Hour))
	victim.Spec.ExitDuration, victim.Spec.RequeueOnFailure = "1d0h0m", true
	victim.Status = v1alpha1.GPUProvisionRequestStatus{}
	domain.Start(victim, []string{node.Name}, now.Add(-10*time.Minute))
	urgent := testGPR("urgent", "wu", 250, now.Add(-time.Minute))
	urgent.Spec.EnableEviction = true
	fc := fakeClient(scheme, node, victim, urgent)
	clk := clocktesting.NewFakePassiveClock(now)

	crash := &crashingClient{Client: fc, failFor: "urgent"}
	// The failed start is the evictor's problem: the pass returns no error
	// (it would lose the timers) but a retry.
	if res, err := New(crash, fc, clk, nil, v1alpha1.DefaultCluster).Reconcile(ctx, planRequest); err != nil || res.RequeueAfter <= 0 || res.RequeueAfter > passErrorRetry {
		t.Fatalf("the pass with the failing start returned %+v, %v; want a retry within %s and no error", res, err, passErrorRetry)
	}
	get := func(name string) *v1alpha1.GPUProvisionRequest {
		var g v1alpha1.GPUProvisionRequest
		if err := fc.Get(ctx, client.ObjectKey{Name: name}, &g); err != nil {
			t.Fatal(err)
		}
		return &g
	}
	if v := get("victim"); !domain.IsQueued(v) || v.Status.EvictedBy != "urgent" || len(v.Status.Nodes) != 0 {
		t.Fatalf("after the crash the victim is %s (evictedBy %q, nodes %v), want queued, evicted by urgent, holding nothing",
			domain.Phase(v), v.Status.EvictedBy, v.Status.Nodes)
	}

	// The restart: a new reconciler on the same state.
	if _, err := New(fc, fc, clk, nil, v1alpha1.DefaultCluster).Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("pass after the restart: %v", err)
	}
	u, v := get("urgent"), get("victim")
	if !domain.IsProvisioned(u) || len(u.Status.Nodes) != 1 || u.Status.Nodes[0] != node.Name {
		t.Errorf("urgent is %s on %v, want Provisioned on %s", domain.Phase(u), u.Status.Nodes, node.Name)
	}
	if !domain.IsQueued(v) || v.Status.Reason != v1alpha1.ReasonEvicted {
		t.Errorf("victim is %s (%s), want Queued with reason Evicted", domain.Phase(v), v.Status.Reason)
	}
	holders, conflicts := domain.Holders([]*v1alpha1.GPUProvisionRequest{u, v})
	if len(conflicts) != 0 || holders[node.Name] == nil || holders[node.Name].Name != "urgent" {
		t.Errorf("holders %v conflicts %v, want only urgent on %s", holders, conflicts, node.Name)
	}
	if !v.CreationTimestamp.Equal(&victim.CreationTimestamp) {
		t.Errorf("victim's age changed: created %v, was %v", v.CreationTimestamp, victim.CreationTimestamp)
	}
}
