package gpr

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/domain"
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
//
// The plans have settled when no pass submitted for estimateSettle and no
// GPR is arriving (arriving: none created in the last arrivalQuiet, none
// waiting for admission that no pass planned yet): a pass that plans a
// few thousand GPRs of a burst takes seconds, a pause that long is not
// the end of the burst, and every GPR still to be planned may overtake
// those queued. When the plans settled, every pending write is made, soonest
// start first. When they are still changing (a burst: arrivals at mixed
// priorities overtake queued GPRs and move their estimates on every
// pass), a GPR's estimate is written only if its last write — by this
// writer, or the admission write that came with its creation — is at
// least estimateInterval old; the others wait for the burst to end, or
// for their interval. Without that, every GPR behind a stream of
// higher-priority arrivals was rewritten on every flush while the burst
// lasted.
//
// In a burst it also writes the admissions (admitLater): the pass leaves
// a new GPR's status empty and hands the writer its admission, Queued
// with its estimates, which is written once the burst ends or the GPR
// has waited admitMaxDelay. With random priorities most GPRs admitted
// during a burst are overtaken by later arrivals, and an admission with
// the estimate of its moment cost a second write to correct it.
type estimateWriter struct {
	client client.Client
	// cache reads the GPRs waiting for admission (arriving).
	cache client.Reader
	// limiter, when set, paces the writes before the pass lock is taken:
	// a write that waited for its client's rate limiter inside the lock
	// held every pass back for that wait. The client then has no limiter
	// of its own (WithEstimateRate).
	limiter flowcontrol.RateLimiter
	passMu  *sync.Mutex
	written *versions
	clock   clock.PassiveClock

	mu      sync.Mutex
	pending []*v1alpha1.GPUProvisionRequest
	// gen counts submits, so that a drain puts back only the writes the
	// newest plan still calls for.
	gen  uint64
	kick chan struct{}
	// last is when this writer last wrote each GPR's estimate; entries
	// older than estimateMaxInterval are dropped, since they no longer
	// hold any write back.
	last map[string]time.Time
	// admitting are the GPRs whose admission the newest submit hands the
	// writer (admitLater), by name.
	admitting map[string]bool
}

// WithEstimateRate paces estimate writes at qps with bursts of burst,
// waiting outside the pass lock; use it with a WithEstimateClient client
// that has no rate limiter of its own (rest.Config QPS below zero).
func WithEstimateRate(qps float32, burst int) Option {
	return func(r *Reconciler) { r.estimates.limiter = flowcontrol.NewTokenBucketRateLimiter(qps, max(burst, 1)) }
}

func newEstimateWriter(c client.Client, passMu *sync.Mutex, written *versions, clk clock.PassiveClock) *estimateWriter {
	return &estimateWriter{client: c, cache: c, passMu: passMu, written: written, clock: clk, kick: make(chan struct{}, 1),
		last: map[string]time.Time{}}
}

// Debounce of estimate writes; see estimateWriter.
const (
	estimateSettle   = 500 * time.Millisecond
	estimateMaxDelay = 5 * time.Second
)

// The interval between two writes of one GPR's estimate while the plans
// keep changing: the GPR's estimate tolerance (domain.EstimateTolerance:
// 10 % of its wait, at least a minute), at most estimateMaxInterval. A
// stored estimate may be that far off anyway, so it may lag that long
// during a burst: a GPR near its turn is refreshed every minute, one a
// day away every ten minutes at most. Once the burst ends every moved
// estimate is written at once.
const (
	estimateMinInterval = domain.MinEstimateTolerance
	estimateMaxInterval = 10 * time.Minute
)

// estimateInterval is how long after its last write g's new estimate may
// be written while the plans keep changing.
func estimateInterval(g *v1alpha1.GPUProvisionRequest, now time.Time) time.Duration {
	wait := time.Duration(0)
	if t := g.Status.EstimatedStartTime; t != nil {
		wait = max(t.Sub(now), 0)
	}
	return min(max(domain.EstimateTolerance(wait), estimateMinInterval), estimateMaxInterval)
}

// dueAt is when g's pending estimate may be written while the plans keep
// changing: an interval after its last write by this writer or, for a
// GPR this writer never wrote, after its creation (admission wrote its
// first estimate just after); an admission the pass left to the writer,
// admitMaxDelay after its creation. w.mu is held.
func (w *estimateWriter) dueAt(g *v1alpha1.GPUProvisionRequest, now time.Time) time.Time {
	last := g.CreationTimestamp.Time
	if w.admitting[g.Name] {
		return last.Add(admitMaxDelay)
	}
	if t, ok := w.last[g.Name]; ok && t.After(last) {
		last = t
	}
	return last.Add(estimateInterval(g, now))
}

// submit replaces the pending writes with moved estimates and the
// admissions the pass left to the writer (admitLater), soonest estimate
// first: the GPRs nearest their turn are the ones whose readers notice
// first.
func (w *estimateWriter) submit(moved, admissions []*v1alpha1.GPUProvisionRequest) {
	gs := append(moved, admissions...)
	slices.SortFunc(gs, func(a, b *v1alpha1.GPUProvisionRequest) int {
		return cmp.Compare(startUnix(a), startUnix(b))
	})
	admitting := make(map[string]bool, len(admissions))
	for _, g := range admissions {
		admitting[g.Name] = true
	}
	w.mu.Lock()
	w.pending = gs
	w.admitting = admitting
	w.gen++
	w.mu.Unlock()
	w.poke()
}

// estimateArrivalWindow bounds how old a GPR still waiting for admission
// may be to count as arriving: one that cannot be admitted (its status
// write refused) holds the writer in burst mode that long at most.
const estimateArrivalWindow = estimateMaxInterval

// Admission during a burst (admitLater). A burst is burstArrivals GPRs
// created within burstWindow, or more than burstArrivals waiting for
// admission (the writer is still admitting an earlier burst); it is over
// once no GPR was created for arrivalQuiet (creation times have second
// precision) and every GPR waiting for admission was planned. A few GPRs
// created together are admitted by the pass at once, as a single one is.
// A GPR waits for its admission admitMaxDelay at most, also in a burst
// that never ends: the minimum tolerance, which a stored estimate may be
// off by anyway.
const (
	burstWindow   = 10 * time.Second
	burstArrivals = 20
	arrivalQuiet  = 2 * time.Second
	admitMaxDelay = domain.MinEstimateTolerance
)

// admitLater reports whether a pass at now leaves the admission of new
// GPRs to the estimate writer (see estimateWriter): GPRs are arriving in
// a burst. Until the writer admits one, its status stays empty — kubectl
// shows neither a state nor an estimate, REST and MCP show the plan's —
// but it is planned like any queued GPR: one that can start now starts
// in this pass, one admission refuses is failed in this pass.
func admitLater(gprs []*v1alpha1.GPUProvisionRequest, now time.Time) bool {
	recent, waiting := 0, 0
	for _, g := range gprs {
		if g.DeletionTimestamp != nil {
			continue
		}
		if now.Sub(g.CreationTimestamp.Time) < burstWindow {
			recent++
		}
		if domain.NotAdmitted(g) {
			waiting++
		}
	}
	return recent >= burstArrivals || waiting > burstArrivals
}

// arriving reports whether GPRs are still arriving by the cache: one was
// created in the last arrivalQuiet, or one created in the last
// estimateArrivalWindow waits for admission that no pass has planned yet
// (not among the writer's admissions). The queue is still growing, and
// its estimates will move again.
func (w *estimateWriter) arriving(ctx context.Context, now time.Time) bool {
	var l v1alpha1.GPUProvisionRequestList
	if err := w.cache.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		return false // unknown: write what moved
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range l.Items {
		g := &l.Items[i]
		if g.DeletionTimestamp != nil {
			continue
		}
		age := now.Sub(g.CreationTimestamp.Time)
		if age < arrivalQuiet || domain.NotAdmitted(g) && age < estimateArrivalWindow && !w.admitting[g.Name] {
			return true
		}
	}
	return false
}

// poke wakes the writer.
func (w *estimateWriter) poke() {
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

// next pops the next pending write and the submit it came from; nil when
// there is none.
func (w *estimateWriter) next() (*v1alpha1.GPUProvisionRequest, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil, w.gen
	}
	g := w.pending[0]
	w.pending = w.pending[1:]
	return g, w.gen
}

// Start runs the writer until ctx ends (manager.Runnable).
func (w *estimateWriter) Start(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithName("estimates")
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		case <-retry.C:
		}
		settled, ok := w.settle(ctx)
		if !ok {
			return nil
		}
		if due := w.drain(ctx, log, settled); !due.IsZero() {
			// Held back: look again when one is due, or soon enough to
			// see the burst end (no submit says so: passes stop with
			// the arrivals).
			retry.Reset(min(max(due.Sub(w.clock.Now()), estimateSettle), arrivalQuiet))
		}
	}
}

// drain writes the pending estimates, soonest first: all of them when
// settled, else those due (dueAt). The others are put back, unless a
// newer plan replaced them meanwhile; it returns the earliest time one of
// them is due (zero: none held back).
func (w *estimateWriter) drain(ctx context.Context, log logr.Logger, settled bool) time.Time {
	var held []*v1alpha1.GPUProvisionRequest
	var heldGen uint64
	var due time.Time
	for g, gen := w.next(); g != nil && ctx.Err() == nil; g, gen = w.next() {
		now := w.clock.Now()
		if !settled {
			w.mu.Lock()
			at := w.dueAt(g, now)
			w.mu.Unlock()
			if at.After(now) {
				if gen != heldGen {
					held, heldGen, due = held[:0], gen, time.Time{}
				}
				held = append(held, g)
				if due.IsZero() || at.Before(due) {
					due = at
				}
				continue
			}
		}
		w.write(ctx, log, g, now)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forget(w.clock.Now())
	if len(held) == 0 || heldGen != w.gen {
		return time.Time{} // nothing held, or a newer plan decides
	}
	// No submit since next found the list empty: the held writes, still
	// soonest first, are what the newest plan calls for.
	w.pending = held
	return due
}

// write writes one GPR's estimate under the pass lock, once the limiter
// allows it.
func (w *estimateWriter) write(ctx context.Context, log logr.Logger, g *v1alpha1.GPUProvisionRequest, now time.Time) {
	if w.limiter != nil {
		if err := w.limiter.Wait(ctx); err != nil {
			return // ctx ended
		}
	}
	w.passMu.Lock()
	err := w.written.writeStatus(ctx, w.client, g)
	w.passMu.Unlock()
	switch {
	case err == nil:
		metrics.StatusWrites.WithLabelValues("estimate").Inc()
		w.mu.Lock()
		w.last[g.Name] = now
		w.mu.Unlock()
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		// Changed or gone since the plan: the next pass decides.
	default:
		log.Error(err, "write estimate", "gpr", g.Name)
	}
}

// forget drops the write times that no longer hold a write back. w.mu is
// held.
func (w *estimateWriter) forget(now time.Time) {
	for name, t := range w.last {
		if now.Sub(t) >= estimateMaxInterval {
			delete(w.last, name)
		}
	}
}

// settle waits until no plan was submitted for estimateSettle, or
// estimateMaxDelay passed with plans still changing; settled reports the
// first with no GPR arriving. ok is false when ctx ended.
func (w *estimateWriter) settle(ctx context.Context) (settled, ok bool) {
	deadline := time.NewTimer(estimateMaxDelay)
	defer deadline.Stop()
	quiet := time.NewTimer(estimateSettle)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, false
		case <-deadline.C:
			return false, true
		case <-quiet.C:
			return !w.arriving(ctx, w.clock.Now()), true
		case <-w.kick:
			quiet.Reset(estimateSettle)
		}
	}
}
