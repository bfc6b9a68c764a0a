package gpr_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestConcurrentEvictionsWithRestarts: three low-priority day-long GPRs
// (requeueOnFailure) hold the three nodes past their minimum runtime; 12
// evicting GPRs of higher priorities are created at once while the
// controllers are restarted three times. On every state the watch sees, no
// node is in two provisioned GPRs and no workspace has two; no victim is
// ever lost (it is never Complete or Error, only Provisioned or back in
// the queue); every eviction was by a strictly higher priority; every
// evictor runs; and once they are done the victims have their nodes back.
func TestConcurrentEvictionsWithRestarts(t *testing.T) {
	h := newHarness(t)
	stop := h.start()
	nodes := []string{h.t4Node("n1"), h.t4Node("n2"), h.t4Node("n3")}
	requeue := func(s *v1alpha1.GPUProvisionRequestSpec) { s.RequeueOnFailure = true }
	var low []string
	for i := range 3 {
		id := h.gpr(fmt.Sprintf("low%d", i), h.workspace(fmt.Sprintf("wl%d", i)), priority(int32(10+i)), exit("1d0h0m"), requeue)
		h.status(id, v1alpha1.GPRProvisioned)
		low = append(low, id)
	}
	h.clock.SetTime(h.clock.Now().Add(10 * time.Minute)) // past the 5 min minimum runtime
	var wss []string
	for i := range 6 {
		wss = append(wss, h.workspace(fmt.Sprintf("we%d", i)))
	}
	obs := h.observeGPRs()

	const evictors = 12
	ids := make([]string, evictors)
	errs := make([]error, evictors)
	var wg sync.WaitGroup
	for i := range evictors {
		wg.Go(func() {
			time.Sleep(time.Duration(i%4) * 150 * time.Millisecond)
			g := h.gprObject(fmt.Sprintf("e%02d", i), wss[i%len(wss)], priority(int32(101+i*17)), exit("0d1h0m"), evicting)
			errs[i] = env.Client.Create(h.ctx, g)
			ids[i] = g.Name
		})
	}
	for range 3 { // restarts while the creates land and passes evict
		time.Sleep(200 * time.Millisecond)
		stop()
		stop = h.start()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("create GPRs: %v", err)
	}

	get := func() map[string]*v1alpha1.GPUProvisionRequest {
		t.Helper()
		var l v1alpha1.GPUProvisionRequestList
		if err := env.Client.List(h.ctx, &l, client.MatchingLabels(h.labels())); err != nil {
			t.Fatalf("list GPRs: %v", err)
		}
		out := map[string]*v1alpha1.GPUProvisionRequest{}
		for i := range l.Items {
			out[l.Items[i].Name] = &l.Items[i]
		}
		if len(out) != evictors+len(low) {
			t.Fatalf("listed %d GPRs, want %d", len(out), evictors+len(low))
		}
		return out
	}
	// Rounds: converge (every node busy), check, expire the hour.
	for round := 0; ; round++ {
		all := get()
		pending := 0
		for _, id := range ids {
			if all[id].Status.ProvisioningStatus != v1alpha1.GPRComplete {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if round > 8 {
			t.Fatalf("after %d rounds %d of %d evictors have not run", round, pending, evictors)
		}
		h.eventually(func() error {
			// Converged: every node held, and no queued evictor outranks
			// a provisioned GPR past its minimum runtime.
			var held, queued []*v1alpha1.GPUProvisionRequest
			for _, g := range get() {
				switch {
				case domain.IsProvisioned(g):
					held = append(held, g)
				case domain.IsQueued(g) && g.Spec.EnableEviction:
					queued = append(queued, g)
				}
			}
			if len(held) != len(nodes) {
				return fmt.Errorf("round %d: %d of %d nodes held", round, len(held), len(nodes))
			}
			for _, p := range held {
				if end, ok := domain.End(p); !ok || !end.After(h.clock.Now()) {
					return fmt.Errorf("round %d: %s is due but still provisioned", round, p.Name)
				}
			}
			for _, q := range queued {
				for _, p := range held {
					evictable := !h.clock.Now().Before(p.Status.StartTimestamp.Add(domain.DefaultMinRuntimeBeforeEviction))
					if evictable && domain.Priority(p) < domain.Priority(q) {
						return fmt.Errorf("round %d: %s (priority %d) waits while %s (priority %d) may be evicted",
							round, q.Name, domain.Priority(q), p.Name, domain.Priority(p))
					}
				}
			}
			return nil
		})
		obs.check()
		h.advance(61*time.Minute, ids[0])
	}
	// The victims get their nodes back.
	for _, id := range low {
		h.status(id, v1alpha1.GPRProvisioned)
	}
	all := get()
	for _, g := range all {
		if by := g.Status.EvictedBy; by != "" {
			if e := all[by]; e == nil || domain.Priority(e) <= domain.Priority(g) {
				t.Errorf("GPR %s (priority %d) evicted by %s, not of a higher priority", g.Name, domain.Priority(g), by)
			}
		}
	}
	evicted := 0
	for _, id := range low {
		if obs.sawPhase(id, v1alpha1.GPRComplete) || obs.sawPhase(id, v1alpha1.GPRError) {
			t.Errorf("victim %s was lost (seen Complete or Error)", id)
		}
		if g := all[id]; g.Status.RetryCount > 0 {
			evicted++
		}
	}
	if evicted == 0 {
		t.Error("no low-priority GPR was ever evicted: the test did not exercise eviction")
	}
	obs.check()
}
