package gpr

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

	w.submit(moved())
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
	w.submit(moved()[:1])
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

// TestEstimateArriving: GPRs created but not admitted yet mean the burst
// goes on; once all are admitted, or the only one left is too old to be
// a burst's (its admission cannot be written), it is over.
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
}
