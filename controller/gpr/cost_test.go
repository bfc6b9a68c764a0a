package gpr_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestCostOnCompletion: status.cost is GPU-hours × the price of the
// nodes' shape, on the controllers' (fake) clock, written in the write
// that completes the GPR; a shape without a price leaves it empty; the
// usage counters follow the GPUs held.
func TestCostOnCompletion(t *testing.T) {
	h := newHarness(t)
	h.prices = domain.Prices{"T4": 0.35}
	h.start()
	h.t4Node("n1")
	h.addNode(testenv.GPUNode{Name: h.name("a1"), InstanceType: "a2-highgpu-1g", Product: "NVIDIA-A100-SXM4-40GB", MemoryMiB: 40960, GPUs: 1})
	ws := h.workspace("w")
	id := h.gpr("g", ws, exit("1d0h0m"), func(s *v1alpha1.GPUProvisionRequestSpec) { s.NumberOfGPUs, s.GPUShape = 4, "T4" })
	h.status(id, v1alpha1.GPRProvisioned)
	if c := h.getGPR(id).Status.Cost; c != "" {
		t.Fatalf("cost %q written while provisioned: it is computed on read", c)
	}
	h.advance(150*time.Minute, id)
	h.setSpec(id, func(s *v1alpha1.GPUProvisionRequestSpec) { s.EarlyRelease = true })
	g := h.status(id, v1alpha1.GPRComplete)
	// 4 GPUs × 2.5 h × 0.35 USD.
	if g.Status.Cost != "3.50" {
		t.Errorf("cost %q, want 3.50 (held %s)", g.Status.Cost, g.Status.CompletionTimestamp.Sub(g.Status.StartTimestamp.Time))
	}

	// No price for A100: empty, not 0.
	ws2 := h.workspace("w2")
	id2 := h.gpr("g2", ws2, exit("1d0h0m"), func(s *v1alpha1.GPUProvisionRequestSpec) { s.GPUShape = "A100" })
	h.status(id2, v1alpha1.GPRProvisioned)
	h.advance(time.Hour, id2)
	h.setSpec(id2, func(s *v1alpha1.GPUProvisionRequestSpec) { s.EarlyRelease = true })
	if g := h.status(id2, v1alpha1.GPRComplete); g.Status.Cost != "" {
		t.Errorf("cost without a price %q, want empty", g.Status.Cost)
	}

	// The counters advance when scraped.
	h.eventually(func() error {
		if _, err := ctrlmetrics.Registry.Gather(); err != nil {
			return err
		}
		secs := testutil.ToFloat64(metrics.GPUSeconds.WithLabelValues(ws, h.cluster, "T4"))
		usd := testutil.ToFloat64(metrics.GPRCost.WithLabelValues(ws))
		if secs != 4*150*60 || math.Abs(usd-3.5) > 1e-9 {
			return fmt.Errorf("gpu seconds %v, cost %v; want 36000 and 3.5", secs, usd)
		}
		return nil
	})
}
