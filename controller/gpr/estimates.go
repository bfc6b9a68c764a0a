package gpr

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
)

// estimateWriter writes moved estimates between plan passes. Each pass
// hands it the full set of writes its plan calls for, replacing what is
// still pending from the pass before (the newer plan wins). It takes the
// pass lock around each write, so a pass waits for at most one estimate
// write in flight and never conflicts with one; a write that conflicts
// with a newer version of its GPR is dropped — the next pass decides
// again. It runs only on the leader.
//
// Writing starts once the plans stop changing for estimateSettle (at most
// estimateMaxDelay after the first change): in a burst of creates each
// pass moves estimates a little, and only the last plan is worth writing.
// REST and MCP reads show the current plan anyway; what waits is only the
// stored copy kubectl shows.
type estimateWriter struct {
	client  client.Client
	passMu  *sync.Mutex
	written *versions
	clock   clock.PassiveClock

	mu      sync.Mutex
	pending []*v1alpha1.GPUProvisionRequest
	kick    chan struct{}
}

func newEstimateWriter(c client.Client, passMu *sync.Mutex, written *versions, clk clock.PassiveClock) *estimateWriter {
	return &estimateWriter{client: c, passMu: passMu, written: written, clock: clk, kick: make(chan struct{}, 1)}
}

// Debounce of estimate writes; see estimateWriter.
const (
	estimateSettle   = 500 * time.Millisecond
	estimateMaxDelay = 5 * time.Second
)

// submit replaces the pending writes, soonest estimate first: the GPRs
// nearest their turn are the ones whose readers notice first.
func (w *estimateWriter) submit(gs []*v1alpha1.GPUProvisionRequest) {
	slices.SortFunc(gs, func(a, b *v1alpha1.GPUProvisionRequest) int {
		return cmp.Compare(startUnix(a), startUnix(b))
	})
	w.mu.Lock()
	w.pending = gs
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func startUnix(g *v1alpha1.GPUProvisionRequest) int64 {
	if t := g.Status.EstimatedStartTime; t != nil {
		return t.Unix()
	}
	return 1<<63 - 1
}

// next pops the next pending write; nil when there is none.
func (w *estimateWriter) next() *v1alpha1.GPUProvisionRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	g := w.pending[0]
	w.pending = w.pending[1:]
	return g
}

// Start runs the writer until ctx ends (manager.Runnable).
func (w *estimateWriter) Start(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithName("estimates")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		}
		if !w.settle(ctx) {
			return nil
		}
		for g := w.next(); g != nil && ctx.Err() == nil; g = w.next() {
			w.passMu.Lock()
			err := w.written.writeStatus(ctx, w.client, g)
			w.passMu.Unlock()
			switch {
			case err == nil:
				metrics.StatusWrites.WithLabelValues("estimate").Inc()
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
				// Changed or gone since the plan: the next pass decides.
			default:
				log.Error(err, "write estimate", "gpr", g.Name)
			}
		}
	}
}

// settle waits until no plan was submitted for estimateSettle, or
// estimateMaxDelay passed; false when ctx ended.
func (w *estimateWriter) settle(ctx context.Context) bool {
	deadline := time.NewTimer(estimateMaxDelay)
	defer deadline.Stop()
	quiet := time.NewTimer(estimateSettle)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-quiet.C:
			return true
		case <-w.kick:
			quiet.Reset(estimateSettle)
		}
	}
}
