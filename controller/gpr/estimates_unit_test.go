package gpr

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestEstimateInterval: while plans keep changing, a GPR's estimate is
// rewritten no more often than its tolerance, between a minute and ten.
func TestEstimateInterval(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		wait, want time.Duration
	}{
		{0, time.Minute},
		{5 * time.Minute, time.Minute},
		{time.Hour, 6 * time.Minute},
		{24 * time.Hour, 10 * time.Minute},
	} {
		g := &v1alpha1.GPUProvisionRequest{}
		g.Status.EstimatedStartTime = &metav1.Time{Time: now.Add(tc.wait)}
		if got := estimateInterval(g, now); got != tc.want {
			t.Errorf("wait %s: interval %s, want %s", tc.wait, got, tc.want)
		}
	}
}

// TestEstimateWriterBurst: during a burst (plans still changing) only the
// estimates whose last write is an interval old are written — a GPR's
// admission, at its creation, counts as its first write — and the rest
// wait, soonest first, for their interval or for the plans to settle,
// when all are written.
func TestEstimateWriterBurst(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	scheme, _ := testWorld(t)
	old := testGPR("old", "wa", 101, now.Add(-10*time.Minute))
	fresh := testGPR("fresh", "wb", 101, now.Add(-10*time.Second))
	rewritten := testGPR("rewritten", "wc", 101, now.Add(-5*time.Minute))
	for _, g := range []*v1alpha1.GPUProvisionRequest{old, fresh, rewritten} {
		domain.Admit(g)
		domain.SetEstimate(g, now.Add(2*time.Minute), true, now.Add(-time.Minute))
	}
	c := fakeClient(scheme, old, fresh, rewritten)
	w := newEstimateWriter(c, &sync.Mutex{}, &versions{m: map[string]*v1alpha1.GPUProvisionRequest{}}, clk)
	w.last["rewritten"] = now.Add(-30 * time.Second)

	// The plan moves all three by an hour: an interval of 6 minutes.
	moved := func() []*v1alpha1.GPUProvisionRequest {
		var out []*v1alpha1.GPUProvisionRequest
		for _, name := range []string{"fresh", "rewritten", "old"} {
			var g v1alpha1.GPUProvisionRequest
			if err := c.Get(ctx, client.ObjectKey{Name: name}, &g); err != nil {
				t.Fatal(err)
			}
			domain.SetEstimate(&g, now.Add(time.Hour), true, now)
			out = append(out, &g)
		}
		return out
	}
	stored := func(name string) time.Time {
		var g v1alpha1.GPUProvisionRequest
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &g); err != nil {
			t.Fatal(err)
		}
		return g.Status.EstimatedStartTime.Time
	}

	w.submit(moved(), nil)
	due := w.drain(ctx, logr.Discard(), false)
	if got := stored("old"); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("old: stored %s, want the new estimate written", got)
	}
	for _, name := range []string{"fresh", "rewritten"} {
		if got := stored(name); !got.Equal(now.Add(2 * time.Minute)) {
			t.Errorf("%s: stored %s, want it held back", name, got)
		}
	}
	if want := now.Add(-30 * time.Second).Add(6 * time.Minute); !due.Equal(want) {
		t.Errorf("due %s, want %s (rewritten's last write + 6 minutes)", due, want)
	}
	if len(w.pending) != 2 {
		t.Fatalf("pending %d writes, want the 2 held back", len(w.pending))
	}

	// A newer plan replaces what was held; once settled, all are written.
	w.submit(moved()[:1], nil)
	w.drain(ctx, logr.Discard(), true)
	if got := stored("fresh"); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("fresh: stored %s after the plans settled, want the new estimate", got)
	}
	if got := stored("rewritten"); !got.Equal(now.Add(2 * time.Minute)) {
		t.Errorf("rewritten: stored %s, want it left: the newer plan did not call for it", got)
	}
	if len(w.pending) != 0 {
		t.Errorf("pending %d writes after a settled drain, want none", len(w.pending))
	}
}

// TestEstimateArriving: GPRs created but not planned yet mean the burst
// goes on, as does a GPR created within arrivalQuiet; once all are
// admitted or handed to the writer to admit, or the only one left is too
// old to be a burst's (its admission cannot be written), it is over.
func TestEstimateArriving(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	scheme, _ := testWorld(t)
	admitted := testGPR("admitted", "wa", 101, now.Add(-time.Minute))
	domain.Admit(admitted)
	fresh := testGPR("fresh", "wb", 101, now.Add(-time.Second))
	stuck := testGPR("stuck", "wc", 101, now.Add(-time.Hour))
	c := fakeClient(scheme, admitted, fresh, stuck)
	w := newEstimateWriter(c, &sync.Mutex{}, nil, clocktesting.NewFakeClock(now))
	if !w.arriving(ctx, now) {
		t.Error("a GPR created a second ago waits for admission: want arriving")
	}
	if err := c.Delete(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if w.arriving(ctx, now) {
		t.Error("only an hour-old GPR waits for admission: want none arriving")
	}
	planned := testGPR("planned", "wd", 101, now.Add(-5*time.Second))
	if err := c.Create(ctx, planned); err != nil {
		t.Fatal(err)
	}
	if !w.arriving(ctx, now) {
		t.Error("a GPR created 5 s ago no pass planned waits for admission: want arriving")
	}
	w.submit(nil, []*v1alpha1.GPUProvisionRequest{planned})
	if w.arriving(ctx, now) {
		t.Error("the only GPR waiting is the writer's to admit, created 5 s ago: want none arriving")
	}
	just := testGPR("just", "we", 101, now.Add(-time.Second))
	domain.Admit(just)
	if err := c.Create(ctx, just); err != nil {
		t.Fatal(err)
	}
	if !w.arriving(ctx, now) {
		t.Error("a GPR was created a second ago: want arriving")
	}
}

// TestAdmitLater: a pass admits a few new GPRs itself; burstArrivals
// created within burstWindow, or more than burstArrivals still waiting
// for admission, are a burst whose admissions the writer makes.
func TestAdmitLater(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	gprs := func(n int, age time.Duration, admitted bool) []*v1alpha1.GPUProvisionRequest {
		var out []*v1alpha1.GPUProvisionRequest
		for i := range n {
			g := testGPR(fmt.Sprintf("g%d", i), "wa", 101, now.Add(-age))
			if admitted {
				domain.Admit(g)
			}
			out = append(out, g)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		gprs []*v1alpha1.GPUProvisionRequest
		want bool
	}{
		{"one new", gprs(1, 0, false), false},
		{"a few new", gprs(burstArrivals-1, time.Second, false), false},
		{"a burst", gprs(burstArrivals, time.Second, false), true},
		{"a burst, admitted as it came", gprs(burstArrivals, time.Second, true), true},
		{"an old queue", gprs(100, time.Hour, true), false},
		{"an earlier burst still to admit", gprs(burstArrivals+1, time.Minute, false), true},
	} {
		if got := admitLater(tc.gprs, now); got != tc.want {
			t.Errorf("%s: admitLater %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestBurstAdmittedByWriter: a pass that sees a burst of new GPRs at
// mixed priorities writes none of them: each stays unadmitted (no stale
// estimate to show), planned as queued, and its admission, Queued with
// its estimates, is the writer's. While the burst goes on the writer
// holds it back for admitMaxDelay; once settled it writes them all. A
// single GPR created later is admitted by its pass at once.
func TestBurstAdmittedByWriter(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	scheme, node := testWorld(t)
	holder := testGPR("holder", "w0", 101, now.Add(-time.Hour))
	objs := []client.Object{node, holder}
	for i := range burstArrivals {
		objs = append(objs, testGPR(fmt.Sprintf("q%02d", i), fmt.Sprintf("w%d", i+1), int32(101+i%4), now))
	}
	c := fakeClient(scheme, objs...)
	r := New(c, c, clk, nil, v1alpha1.DefaultCluster)
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatal(err)
	}
	var l v1alpha1.GPUProvisionRequestList
	if err := c.List(ctx, &l); err != nil {
		t.Fatal(err)
	}
	for i := range l.Items {
		g := &l.Items[i]
		if g.Name != "holder" && !domain.NotAdmitted(g) && !domain.IsProvisioned(g) {
			t.Errorf("%s: status %q written by the pass in a burst, want it left to the writer", g.Name, g.Status.ProvisioningStatus)
		}
	}
	if n := len(r.estimates.pending); n != burstArrivals {
		t.Fatalf("writer holds %d admissions, want %d (the holder started on the node)", n, burstArrivals)
	}

	due := r.estimates.drain(ctx, logr.Discard(), false)
	if want := now.Add(admitMaxDelay); !due.Equal(want) {
		t.Errorf("admissions due %s during the burst, want %s", due, want)
	}
	r.estimates.drain(ctx, logr.Discard(), true)
	if err := c.List(ctx, &l); err != nil {
		t.Fatal(err)
	}
	for i := range l.Items {
		g := &l.Items[i]
		if domain.IsQueued(g) && (domain.NotAdmitted(g) || g.Status.EstimatedStartTime == nil) {
			t.Errorf("%s: %q, estimate %v after the burst settled, want Queued with an estimate", g.Name, g.Status.ProvisioningStatus, g.Status.EstimatedStartTime)
		}
	}

	clk.Step(time.Minute)
	if err := c.Create(ctx, testGPR("late", "w1", 101, clk.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatal(err)
	}
	var late v1alpha1.GPUProvisionRequest
	if err := c.Get(ctx, client.ObjectKey{Name: "late"}, &late); err != nil {
		t.Fatal(err)
	}
	if domain.NotAdmitted(&late) || late.Status.EstimatedStartTime == nil {
		t.Errorf("late: %q, estimate %v, want the pass to admit a single new GPR with its estimate", late.Status.ProvisioningStatus, late.Status.EstimatedStartTime)
	}
}

// TestAdmissionStartsNoPass: the writer's admission of a burst's GPR
// (Queued, with its estimates) changes no decision, so it starts no pass;
// a hold or a start does.
func TestAdmissionStartsNoPass(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	o := testGPR("g", "wa", 101, now)
	admitted := o.DeepCopy()
	domain.Admit(admitted)
	domain.SetEstimates(admitted, now.Add(time.Hour), now.Add(2*time.Hour), true, now)
	held := o.DeepCopy()
	domain.Hold(held, v1alpha1.ReasonUnsatisfiable, "no such nodes")
	started := o.DeepCopy()
	domain.Start(started, []string{"n1"}, now)
	p := gprChanged()
	if p.Update(event.UpdateEvent{ObjectOld: o, ObjectNew: admitted}) {
		t.Error("an admission with estimates starts a pass")
	}
	for name, n := range map[string]*v1alpha1.GPUProvisionRequest{"hold": held, "start": started} {
		if !p.Update(event.UpdateEvent{ObjectOld: o, ObjectNew: n}) {
			t.Errorf("a %s starts no pass", name)
		}
	}
}
