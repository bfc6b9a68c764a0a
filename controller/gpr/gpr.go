// Package gpr is the GPU provision request controller: it keeps the GPR
// queue, starts GPRs on the nodes the planner chooses, binds those nodes to
// the GPR's workspace, and releases them on expiry, early release or the
// workspace's deletion.
//
// All decisions are made in one serialised pass over the whole inventory,
// triggered by any GPR change that matters and any relevant Node change,
// so two decisions never race. Reconcile is the pass, as a list of steps:
//
//  1. release: provisioned GPRs that are due, status Complete first; then
//     GPRs that lost a node get a free one in its place, go back to the
//     queue, or run short (recoverNodes);
//  2. admit: GPRs the admission package refuses are failed with the reason
//     before any planning; new ones are marked Queued with their estimate;
//  3. plan and start: status.nodes is written first (the source of truth);
//  4. bind: node labels and taints follow the provisioned GPRs' status,
//     and a workspace's pods leave nodes it no longer holds;
//  5. fail or hold what no inventory can satisfy; node health conditions;
//  6. estimates: handed to a writer that runs between passes, writes only
//     estimates that moved beyond domain.EstimateTolerance, on a client of
//     its own, so no decision ever waits behind one.
//
// Every rule about a GPR or a node comes from internal/domain; every
// transition is a domain function. Each step is idempotent and derived
// from stored state, so a pass interrupted anywhere is completed by the
// next one, also after a restart.
package gpr

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// ControllerName names the controller, its event source and its logger.
const ControllerName = "gpuspace-gpr"

// planRequest is the single key every event maps to.
var planRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: "plan"}}

// conflictRetry is how soon a pass that lost an optimistic-concurrency race
// runs again, with fresher caches.
const conflictRetry = 200 * time.Millisecond

// passErrorRetry is how soon a pass runs again after a step failed for
// some object (a refused or failed write): soon enough that a passing
// fault heals quickly, seldom enough that a persistent one costs little.
const passErrorRetry = 5 * time.Second

// evictionRetry is how soon a pass runs again after a binding, an eviction
// or a release failed: another workspace's pods may be running on the
// node, or a due GPR holds its nodes, meanwhile.
const evictionRetry = time.Second

// Reconciler runs plan passes. Create it with New.
type Reconciler struct {
	client         client.Client
	apiReader      client.Reader
	clock          clock.PassiveClock
	recorder       events.EventRecorder
	defaultCluster string
	estimates      *estimateWriter
	// prices per GPU-hour by GPU shape, for status.cost (WithPrices).
	prices domain.Prices
	// nodeLostGrace is how long a held node may stay NotReady before it
	// is lost (WithNodeLostGrace).
	nodeLostGrace time.Duration

	// passMu is held by a pass while it decides and writes decisions, and
	// by the estimate writer around each write, so estimates go out only
	// between passes and never make a decision wait or conflict.
	passMu sync.Mutex
	// written holds what this reconciler wrote last (see versions).
	written versions
	// clusters are the worker clusters (WithClusters); nil: only the
	// cluster the controller runs in.
	clusters Clusters
	// gpuResources make a pod a GPU pod (WithGPUResourceNames); nil:
	// domain.DefaultGPUResourceNames.
	gpuResources []corev1.ResourceName
	// evictions are the nodes whose eviction has not succeeded yet:
	// retried on every pass until it does.
	evictions owedEvictions
	// swept is set once a pass has checked every bound node for stray GPU
	// pods: the first pass after a start does, so that a crash between a
	// binding's Patch and its eviction is repaired.
	swept bool
}

// Option configures a Reconciler.
type Option func(*Reconciler)

// WithGPUResourceNames sets the extended resources that make a pod a GPU
// pod, evicted from a node bound to another workspace: the scheduler
// plugin's gpuResourceNames, so that the two agree. Default (nil):
// domain.DefaultGPUResourceNames.
func WithGPUResourceNames(names []corev1.ResourceName) Option {
	return func(r *Reconciler) { r.gpuResources = names }
}

// WithEstimateClient makes the estimate writer write through c, a client
// with a rate limit of its own, so estimate bookkeeping never spends the
// budget of decision writes. Default: the decision client.
func WithEstimateClient(c client.Client) Option {
	return func(r *Reconciler) { r.estimates.client = c }
}

// New returns a Reconciler. apiReader reads uncached (pods for eviction,
// and live confirmation before a final decision); defaultCluster is the
// cluster of nodes without a gpuspace.io/cluster label.
func New(c client.Client, apiReader client.Reader, clk clock.PassiveClock, recorder events.EventRecorder, defaultCluster string, opts ...Option) *Reconciler {
	r := &Reconciler{
		client: c, apiReader: apiReader, clock: clk, recorder: recorder, defaultCluster: defaultCluster,
		written:       versions{m: map[string]*v1alpha1.GPUProvisionRequest{}},
		nodeLostGrace: domain.DefaultNodeLostGrace,
	}
	r.estimates = newEstimateWriter(c, &r.passMu, &r.written, clk)
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager registers the controller and its estimate writer. Every
// GPR event that can change a decision and every Node event that can
// change the plan or a binding enqueues the one plan key; estimate-only
// GPR updates (the writer's own) do not.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, skipNameValidation *bool) error {
	toPlan := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{planRequest}
	})
	if err := mgr.Add(r.estimates); err != nil {
		return fmt.Errorf("add estimate writer: %w", err)
	}
	if err := mgr.Add(r.usageMetrics()); err != nil {
		return fmt.Errorf("add usage metrics: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.clusters != nil {
		b = b.WatchesRawSource(r.clusters.Source(toPlan, nodeChanged()))
	}
	return b.
		Named(ControllerName).
		Watches(&v1alpha1.GPUProvisionRequest{}, toPlan, builder.WithPredicates(gprChanged())).
		Watches(&v1alpha1.Workspace{}, toPlan, builder.WithPredicates(workspaceChanged())).
		Watches(&v1alpha1.WorkspacePolicy{}, toPlan).
		Watches(&corev1.Node{}, toPlan, builder.WithPredicates(nodeChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: skipNameValidation}).
		Complete(r)
}

// Reconcile runs one plan pass. The request is always the plan key.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (res reconcile.Result, err error) {
	log := logr.FromContextOrDiscard(ctx)
	defer func() {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Lost a race with another writer or a stale cache: run again
			// soon, quietly.
			log.V(1).Info("plan pass raced, retrying", "error", err.Error())
			res, err = reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		if err != nil {
			metrics.ReconcileErrors.WithLabelValues(ControllerName).Inc()
		}
	}()

	r.passMu.Lock()
	p, err := r.decide(ctx)
	r.passMu.Unlock()
	if err != nil {
		return reconcile.Result{}, err
	}
	// Bookkeeping after the decisions. The gauges first: a reader who sees
	// an estimate written sees the queue that produced it. Estimates go to
	// the writer, which writes them between passes.
	r.observe(p.gprs)
	r.estimates.submit(p.estimateWrites(), p.admissions)
	res = reconcile.Result{}
	if next := p.nextWake(); !next.IsZero() {
		// Wake just after the next expiry, measured on the real clock
		// reading (now is truncated).
		res.RequeueAfter = max(next.Sub(r.clock.Now()), 0) + 100*time.Millisecond
	}
	if len(p.errs) > 0 {
		// A step failed for some objects; the pass went on for the rest.
		// Retry soon, but never return the error: controller-runtime
		// would then drop RequeueAfter for its exponential backoff (up to
		// 16 minutes) and expiries, idle releases and lost-node deadlines
		// would fire that late.
		retry := passErrorRetry
		for _, e := range p.errs {
			if apierrors.IsConflict(e.err) || apierrors.IsNotFound(e.err) {
				// A lost race or a stale cache: run again soon, quietly.
				log.V(1).Info("plan pass step raced, retrying", "step", e.step, "error", e.err.Error())
				retry = conflictRetry
				continue
			}
			switch e.step {
			case "bind":
				// A stray GPU pod runs on another workspace's node until
				// its eviction succeeds: retry that soon.
				retry = min(retry, evictionRetry)
			case "release":
				// A due GPR is late until its release is written: the
				// fault suite's due-complete promise is 2 s.
				retry = min(retry, evictionRetry)
			}
			metrics.PassErrors.WithLabelValues(e.step).Inc()
			log.Error(e.err, "plan pass step failed; the rest of the pass went on", "step", e.step)
		}
		if res.RequeueAfter == 0 || res.RequeueAfter > retry {
			res.RequeueAfter = retry
		}
	}
	return res, nil
}

// decide runs the steps that make and write decisions. Only a failure to
// read what the pass is made of ends it; a decision that cannot be written
// is that object's problem, collected in p.errs (pass.fail), and the pass
// goes on for every other object.
func (r *Reconciler) decide(ctx context.Context) (*pass, error) {
	p, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	for _, step := range []func(context.Context, *pass) error{
		r.release, r.recoverNodes, r.admit, r.planAndStart, r.bindNodes, r.failUnsatisfiable, r.nodeHealth,
	} {
		if err := step(ctx, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// event records an Event on a GPR.
func (r *Reconciler) event(g *v1alpha1.GPUProvisionRequest, typ, reason, action, note string, args ...any) {
	if r.recorder != nil {
		r.recorder.Eventf(g, nil, typ, reason, action, note, args...)
	}
}

// observe sets the queue and allocation gauges from the pass's view.
func (r *Reconciler) observe(gprs []*v1alpha1.GPUProvisionRequest) {
	queued := map[string]int{}
	var gpus, provisioned int
	for _, g := range gprs {
		switch {
		case domain.IsQueued(g):
			queued[g.Spec.Workspace]++
		case domain.IsProvisioned(g):
			gpus += int(g.Status.NumGpusAllocated)
			provisioned++
		}
	}
	metrics.QueueLength.Reset()
	for ws, n := range queued {
		metrics.QueueLength.WithLabelValues(ws).Set(float64(n))
	}
	metrics.ProvisionedGPUs.Set(float64(gpus))
	metrics.ProvisionedGPRs.Set(float64(provisioned))
}

// joinNames lists names for messages.
func joinNames(names []string) string { return strings.Join(names, ", ") }
