package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// ControllerName names the projection controller.
const ControllerName = "gpuspace-gpr-projection"

// clusterKey is the namespace of a request that resyncs a whole worker
// (its name is the cluster's). GPRs are cluster-scoped: their requests
// have no namespace, so the two never meet.
const clusterKey = "(cluster)"

// workerTimeout bounds the calls to one worker in one reconcile, the
// first of which may wait for its GPR cache to sync.
const workerTimeout = 15 * time.Second

// projectionWorkers is how many GPRs are projected at once. A projection
// is two round trips to its worker (the object, then its status), so one
// at a time caps dispatch at about 1 / (2 × round trip) GPRs a second for
// all workers together; the workqueue never hands one GPR (or one
// worker's resync) to two workers at once, and a resync racing a GPR's
// reconcile over the same projection loses on its resourceVersion and is
// retried.
const projectionWorkers = 8

// notReadyRecheck is how often a resync of a worker that is not Ready is
// tried again.
const notReadyRecheck = 10 * time.Second

// recentTTL is how long a write of ours stands in for a worker cache
// that has not seen it: far longer than a watch event takes to arrive.
const recentTTL = 30 * time.Second

// Clusters is what the projection needs of the worker cluster registry
// (internal/clusters.Registry).
type Clusters interface {
	// Local is the hub's own cluster: never projected into.
	Local() string
	// Names are the local cluster and every registered one.
	Names() []string
	// Client is a worker's client; its reads come from its cache (the
	// first read of GPRs starts a GPR informer in the worker).
	Client(cluster string) (client.Client, bool)
	// Ready reports whether a cluster is reachable now.
	Ready(cluster string) bool
	// Source is the registry's events: worker nodes (updates filtered by
	// nodeUpdate) and Clusters whose Ready changed or cache synced.
	Source(h handler.EventHandler, nodeUpdate predicate.Predicate) source.Source
}

// Reconciler projects the hub's GPRs into the worker clusters.
type Reconciler struct {
	hub      client.Client
	clusters Clusters
	clock    clock.PassiveClock

	// synced are the workers whose GPR cache a resync has read: a GPR
	// reconcile reads only those, so that a worker whose cache cannot
	// sync (a credential without the projection's rights, no CRD) costs
	// its own resync's timeout, not every GPR's.
	mu     sync.Mutex
	synced map[string]bool
	// recent are the projections as our last write returned them, until
	// the worker's cache has caught up: a reconcile right after a write
	// (the hub often writes a GPR twice in a row) compares with what was
	// written, not with a cache that has not seen it yet, which would
	// create again (AlreadyExists) or update a stale version (Conflict).
	recent map[objKey]recentWrite
}

type objKey struct{ cluster, name string }

type recentWrite struct {
	obj *v1alpha1.GPUProvisionRequest
	at  time.Time
}

// Option configures a Reconciler.
type Option func(*Reconciler)

// WithClock sets the clock estimates are compared at (default the real
// one).
func WithClock(c clock.PassiveClock) Option { return func(r *Reconciler) { r.clock = c } }

// New returns a Reconciler reading hub GPRs with hub (the manager's cached
// client) and writing projections in the workers of c.
func New(hub client.Client, c Clusters, opts ...Option) *Reconciler {
	r := &Reconciler{hub: hub, clusters: c, clock: clock.RealClock{}, synced: map[string]bool{}, recent: map[objKey]recentWrite{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager runs the controller in mgr (leader only: it writes):
// a reconcile per hub GPR whose projected fields changed, and a resync of
// a worker when the registry reports its Ready changed or its cache
// synced, or its Cluster's status is written (at least every status
// interval: a resync that finds nothing to do writes nothing).
func (r *Reconciler) SetupWithManager(mgr manager.Manager, skipNameValidation *bool) error {
	resync := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		if _, ok := obj.(*v1alpha1.Cluster); !ok || obj.GetName() == r.clusters.Local() {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: clusterKey, Name: obj.GetName()}}}
	})
	noNodeUpdates := predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.GPUProvisionRequest{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: r.projectedChange})).
		Watches(&v1alpha1.Cluster{}, resync).
		WatchesRawSource(r.clusters.Source(resync, noNodeUpdates)).
		WithOptions(controller.Options{SkipNameValidation: skipNameValidation, MaxConcurrentReconciles: projectionWorkers}).
		Complete(r)
}

// projectedChange passes a hub GPR update that changes its projection or
// its target.
func (r *Reconciler) projectedChange(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1alpha1.GPUProvisionRequest)
	n, ok2 := e.ObjectNew.(*v1alpha1.GPUProvisionRequest)
	if !ok1 || !ok2 {
		return true
	}
	hub := r.clusters.Local()
	if Target(o, hub) != Target(n, hub) {
		return true
	}
	po, pn := Project(o, hub), Project(n, hub)
	return SpecChanged(po, pn) || StatusChanged(po, pn, r.clock.Now())
}

// Reconcile projects one GPR, or resyncs one worker.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req.Namespace == clusterKey {
		return r.resync(ctx, req.Name)
	}
	var g v1alpha1.GPUProvisionRequest
	err := r.hub.Get(ctx, req.NamespacedName, &g)
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, r.project(ctx, req.Name, nil)
	case err != nil:
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.project(ctx, req.Name, &g)
}

// project makes the GPR name (nil: gone on the hub) projected in its
// target worker and in no other reachable one.
func (r *Reconciler) project(ctx context.Context, name string, g *v1alpha1.GPUProvisionRequest) error {
	hub := r.clusters.Local()
	target := Target(g, hub)
	var errs []error
	for _, w := range r.clusters.Names() {
		if w == hub || !r.clusters.Ready(w) || !r.isSynced(w) {
			// Unreachable, or its cache not read yet: resynced once
			// it is Ready.
			continue
		}
		c, ok := r.clusters.Client(w)
		if !ok {
			continue
		}
		var err error
		if w == target {
			err = r.ensure(ctx, w, c, Project(g, hub))
		} else {
			err = r.remove(ctx, w, c, name)
		}
		if err != nil {
			r.failed(w, err)
			errs = append(errs, fmt.Errorf("cluster %s: %w", w, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Reconciler) isSynced(w string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced[w]
}

func (r *Reconciler) setSynced(w string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		r.synced[w] = true
	} else {
		delete(r.synced, w)
	}
}

// failed forgets that w's cache synced when a call to it timed out (its
// cache was replaced, or stopped syncing): the next resync finds out.
func (r *Reconciler) failed(w string, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		r.setSynced(w, false)
	}
}

// read is worker w's GPR name (nil: none): the cache's copy, or our last
// write of it where the cache has not caught up with that yet.
func (r *Reconciler) read(ctx context.Context, w string, c client.Client, name string) (*v1alpha1.GPUProvisionRequest, error) {
	var cached *v1alpha1.GPUProvisionRequest
	var g v1alpha1.GPUProvisionRequest
	switch err := c.Get(ctx, client.ObjectKey{Name: name}, &g); {
	case err == nil:
		cached = &g
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	k := objKey{w, name}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.recent[k]
	switch {
	case !ok:
		return cached, nil
	case r.clock.Since(rec.at) > recentTTL:
		delete(r.recent, k)
		return cached, nil
	case cached == nil || (cached.UID == rec.obj.UID && domain.OlderVersion(cached.ResourceVersion, rec.obj.ResourceVersion)):
		return rec.obj.DeepCopy(), nil
	default:
		// The cache has our write, or something newer.
		delete(r.recent, k)
		return cached, nil
	}
}

// wrote records obj as our last write to worker w.
func (r *Reconciler) wrote(w string, obj *v1alpha1.GPUProvisionRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recent[objKey{w, obj.Name}] = recentWrite{obj: obj.DeepCopy(), at: r.clock.Now()}
}

func (r *Reconciler) forget(w, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.recent, objKey{w, name})
}

// ensure makes want the projection in worker w, writing only what changed.
func (r *Reconciler) ensure(ctx context.Context, w string, c client.Client, want *v1alpha1.GPUProvisionRequest) error {
	log := logr.FromContextOrDiscard(ctx).WithValues("cluster", w, "gpr", want.Name)
	ctx, cancel := context.WithTimeout(ctx, workerTimeout)
	defer cancel()
	have, err := r.read(ctx, w, c, want.Name)
	switch {
	case err != nil:
		return fmt.Errorf("read projection %s: %w", want.Name, err)
	case have == nil:
		return r.create(ctx, w, c, want)
	case !IsProjection(have, r.clusters.Local()):
		// Someone else's GPR of that name in the worker: never touched.
		log.Info("worker has a GPR of this name that is not a projection of this hub; not projecting")
		return nil
	case Immutable(have, want):
		if err := r.delete(ctx, w, c, have); err != nil {
			return err
		}
		return r.create(ctx, w, c, want)
	}
	if SpecChanged(have, want) {
		next := have.DeepCopy()
		next.Labels, next.Annotations, next.Spec = want.Labels, want.Annotations, want.Spec
		if err := c.Update(ctx, next); err != nil {
			r.forget(w, want.Name)
			return fmt.Errorf("update projection %s: %w", want.Name, err)
		}
		r.wrote(w, next)
		have = next
	}
	if StatusChanged(have, want, r.clock.Now()) {
		next := have.DeepCopy()
		next.Status = want.Status
		if err := c.Status().Update(ctx, next); err != nil {
			r.forget(w, want.Name)
			return fmt.Errorf("update projection %s status: %w", want.Name, err)
		}
		r.wrote(w, next)
	}
	return nil
}

// create writes a new projection: the object, then its status (which the
// API server drops on create) if it has any the plugin reads.
func (r *Reconciler) create(ctx context.Context, w string, c client.Client, want *v1alpha1.GPUProvisionRequest) error {
	obj := want.DeepCopy()
	if err := c.Create(ctx, obj); err != nil {
		// AlreadyExists: someone else's, made after the cache looked;
		// the retry finds it.
		return fmt.Errorf("create projection %s: %w", want.Name, err)
	}
	r.wrote(w, obj)
	if !NeedsStatus(want) {
		return nil
	}
	obj.Status = want.Status
	if err := c.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("write projection %s status: %w", want.Name, err)
	}
	r.wrote(w, obj)
	return nil
}

// remove deletes this hub's projection name from worker w, if it has one.
func (r *Reconciler) remove(ctx context.Context, w string, c client.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, workerTimeout)
	defer cancel()
	have, err := r.read(ctx, w, c, name)
	switch {
	case meta.IsNoMatchError(err):
		// No GPR CRD in the worker: nothing projected there to remove
		// (ensure reports the missing CRD for the GPRs of that cluster).
		return nil
	case err != nil:
		return fmt.Errorf("read projection %s: %w", name, err)
	case have == nil || !IsProjection(have, r.clusters.Local()):
		return nil
	}
	return r.delete(ctx, w, c, have)
}

// delete deletes a projection, that very object (by UID): one made again
// since is left to the retry.
func (r *Reconciler) delete(ctx context.Context, w string, c client.Client, g *v1alpha1.GPUProvisionRequest) error {
	err := c.Delete(ctx, g, client.Preconditions{UID: ptr.To(g.UID)})
	r.forget(w, g.Name)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete projection %s: %w", g.Name, err)
	}
	return nil
}

// resync makes worker w's projections match the hub's GPRs: every GPR of
// w projected, every other projection of this hub deleted. A registered
// worker that is not Ready is looked at again after notReadyRecheck (no
// call to it: Ready is the registry's last heartbeat), in case the event
// of its return is missed.
func (r *Reconciler) resync(ctx context.Context, w string) (reconcile.Result, error) {
	hub := r.clusters.Local()
	c, ok := r.clusters.Client(w)
	if w == hub || !ok {
		return reconcile.Result{}, nil
	}
	if !r.clusters.Ready(w) {
		return reconcile.Result{RequeueAfter: notReadyRecheck}, nil
	}
	return reconcile.Result{}, r.sync(ctx, w, c)
}

// sync is resync of a Ready worker w reached by c.
func (r *Reconciler) sync(ctx context.Context, w string, c client.Client) error {
	hub := r.clusters.Local()
	// The worker's projections first: the first read of its GPR cache
	// waits for it to sync.
	lctx, cancel := context.WithTimeout(ctx, workerTimeout)
	defer cancel()
	var projected v1alpha1.GPUProvisionRequestList
	if err := c.List(lctx, &projected, client.MatchingLabels{v1alpha1.LabelProjectedFrom: hub}); err != nil {
		r.setSynced(w, false)
		return fmt.Errorf("cluster %s: list projections (the credential needs list and watch on gpuprovisionrequests.%s, see manifests/worker/credential.yaml): %w",
			w, v1alpha1.GroupName, err)
	}
	r.setSynced(w, true)
	var gprs v1alpha1.GPUProvisionRequestList
	if err := r.hub.List(ctx, &gprs); err != nil {
		return fmt.Errorf("list hub GPRs: %w", err)
	}
	var errs []error
	want := map[string]bool{}
	for i := range gprs.Items {
		g := &gprs.Items[i]
		if Target(g, hub) != w {
			continue
		}
		want[g.Name] = true
		if err := r.ensure(ctx, w, c, Project(g, hub)); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range projected.Items {
		p := &projected.Items[i]
		if want[p.Name] {
			continue
		}
		if err := r.remove(ctx, w, c, p.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.failed(w, err)
		return fmt.Errorf("cluster %s: %w", w, err)
	}
	return nil
}
