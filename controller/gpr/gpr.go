// Package gpr is the GPU provision request controller: it keeps the GPR
// queue, starts GPRs on the nodes the planner chooses, binds those nodes to
// the GPR's workspace, and releases them on expiry or early release.
//
// All decisions are made in one serialised "plan" pass over the whole
// inventory, triggered by any GPR change and any relevant Node change, so
// two decisions never race. A pass:
//
//  1. releases provisioned GPRs that are due (exitDuration elapsed, from
//     status.startTimestamp) or early-released: status Complete first;
//  2. plans over the nodes and the remaining GPRs, then writes the starts
//     (status.nodes first: the status is the source of truth), the
//     failures and the changed estimates;
//  3. reconciles node labels and taints from the provisioned GPRs' status,
//     evicting a workspace's pods from nodes it no longer holds;
//  4. requeues itself for the next expiry.
//
// Each step is idempotent and derived from stored state, so a pass
// interrupted anywhere is completed by the next one, also after a restart.
package gpr

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/duration"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// ControllerName names the controller, its event source and its logger.
const ControllerName = "gpuspace-gpr"

// planRequest is the single key every event maps to.
var planRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: "plan"}}

// conflictRetry is how soon a pass that lost an optimistic-concurrency race
// runs again, with fresher caches.
const conflictRetry = 200 * time.Millisecond

// Reconciler runs plan passes. Create it with New.
type Reconciler struct {
	client         client.Client
	apiReader      client.Reader
	clock          clock.PassiveClock
	recorder       events.EventRecorder
	defaultCluster string

	// written holds the GPRs this reconciler wrote, as the apiserver
	// returned them, until the cache shows that version: a pass must never
	// plan on a cached GPR older than its own last write, or it could give
	// a node that GPR already holds to another.
	mu      sync.Mutex
	written map[string]*v1alpha1.GPUProvisionRequest
}

// New returns a Reconciler. apiReader reads pods uncached (for eviction);
// defaultCluster is the cluster of nodes without a gpuspace.io/cluster
// label.
func New(c client.Client, apiReader client.Reader, clk clock.PassiveClock, recorder events.EventRecorder, defaultCluster string) *Reconciler {
	return &Reconciler{
		client: c, apiReader: apiReader, clock: clk, recorder: recorder, defaultCluster: defaultCluster,
		written: map[string]*v1alpha1.GPUProvisionRequest{},
	}
}

// SetupWithManager registers the controller. Every GPR event and every
// Node event that can change the plan or a binding enqueues the one plan
// key.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, skipNameValidation *bool) error {
	toPlan := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{planRequest}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		Watches(&v1alpha1.GPUProvisionRequest{}, toPlan).
		Watches(&corev1.Node{}, toPlan, builder.WithPredicates(nodeChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: skipNameValidation}).
		Complete(r)
}

// nodeChanged passes node events that can change the plan or a binding,
// and drops heartbeats.
func nodeChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Node)
			n, ok2 := e.ObjectNew.(*corev1.Node)
			if !ok1 || !ok2 {
				return true
			}
			return !maps.Equal(o.Labels, n.Labels) ||
				!equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
				o.Spec.Unschedulable != n.Spec.Unschedulable ||
				NodeReady(o) != NodeReady(n) ||
				!o.Status.Capacity[v1alpha1.ResourceGPU].Equal(n.Status.Capacity[v1alpha1.ResourceGPU])
		},
	}
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
	// Status timestamps have second precision; planning on whole seconds
	// keeps estimates, wait times and expiries consistent with them.
	now := r.clock.Now().Truncate(time.Second)

	gprs, err := r.listGPRs(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	var nodeList corev1.NodeList
	if err := r.client.List(ctx, &nodeList); err != nil {
		return reconcile.Result{}, fmt.Errorf("list nodes: %w", err)
	}
	nodes := make([]*corev1.Node, len(nodeList.Items))
	nodeByName := make(map[string]*corev1.Node, len(nodes))
	for i := range nodeList.Items {
		nodes[i] = &nodeList.Items[i]
		nodeByName[nodes[i].Name] = nodes[i]
	}

	// 1. Release what is due, status first. Any failure ends the pass:
	// the planner must not hand out nodes a GPR still holds.
	for i, g := range gprs {
		if g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
			continue
		}
		end, ok := End(g)
		if !g.Spec.EarlyRelease && ok && now.Before(end) {
			continue
		}
		ng := g.DeepCopy()
		ng.Status.ProvisioningStatus = v1alpha1.GPRComplete
		ng.Status.InternalState = v1alpha1.StateReleased
		ng.Status.CompletionTimestamp = &metav1.Time{Time: now}
		ng.Status.ObservedGeneration = g.Generation
		if err := r.writeStatus(ctx, ng); err != nil {
			return reconcile.Result{}, fmt.Errorf("release GPR %s: %w", g.Name, err)
		}
		gprs[i] = ng
		why := "exitDuration elapsed"
		if g.Spec.EarlyRelease {
			why = "early release"
		}
		r.event(ng, corev1.EventTypeNormal, "Released", "Release", "Released nodes %s (%s)", joinNames(g.Status.Nodes), why)
		log.Info("released GPR", "gpr", g.Name, "workspace", g.Spec.Workspace, "nodes", g.Status.Nodes, "reason", why)
	}

	// 2. Plan, then write starts. Starts are written one by one; a failed
	// one ends the pass, which is safe: the GPRs written so far hold
	// disjoint nodes.
	in, invalid := Input(now, gprs, nodes, r.defaultCluster)
	plan := planner.Compute(in)
	if len(plan.Unsatisfiable) > 0 {
		// Failing a GPR is final, so confirm against a live node list: a
		// node created just before the GPR may not be in the cache yet.
		// This costs a list only in passes that would fail a GPR.
		var live corev1.NodeList
		if err := r.apiReader.List(ctx, &live); err != nil {
			return reconcile.Result{}, fmt.Errorf("list nodes: %w", err)
		}
		nodes = make([]*corev1.Node, len(live.Items))
		nodeByName = make(map[string]*corev1.Node, len(nodes))
		for i := range live.Items {
			nodes[i] = &live.Items[i]
			nodeByName[nodes[i].Name] = nodes[i]
		}
		in, invalid = Input(now, gprs, nodes, r.defaultCluster)
		plan = planner.Compute(in)
	}
	byName := make(map[string]int, len(gprs))
	for i, g := range gprs {
		byName[g.Name] = i
	}
	for _, s := range plan.Starts {
		i := byName[s.ID]
		g := gprs[i]
		ng := g.DeepCopy()
		ng.Status.ProvisioningStatus = v1alpha1.GPRProvisioned
		ng.Status.InternalState = v1alpha1.StateProvisioned
		ng.Status.Nodes = s.Nodes
		ng.Status.NumGpusAllocated = g.Spec.NumberOfGPUs * int32(len(s.Nodes))
		ng.Status.StartTimestamp = &metav1.Time{Time: now}
		ng.Status.EstimatedStartTime = &metav1.Time{Time: now}
		ng.Status.EstimatedWaitTime = duration.Format(0)
		ng.Status.FailureReason = ""
		ng.Status.ObservedGeneration = g.Generation
		meta.SetStatusCondition(&ng.Status.Conditions, metav1.Condition{
			Type: v1alpha1.GPRNodesHealthy, Status: metav1.ConditionTrue, Reason: "NodesReady",
			Message: "all nodes are Ready", ObservedGeneration: g.Generation,
		})
		if err := r.writeStatus(ctx, ng); err != nil {
			return reconcile.Result{}, fmt.Errorf("start GPR %s: %w", g.Name, err)
		}
		gprs[i] = ng
		metrics.WaitSeconds.Observe(now.Sub(g.CreationTimestamp.Time).Seconds())
		r.event(ng, corev1.EventTypeNormal, "Provisioned", "Bind", "Provisioned nodes %s", joinNames(s.Nodes))
		log.Info("provisioned GPR", "gpr", g.Name, "workspace", g.Spec.Workspace, "nodes", s.Nodes)
	}

	// Status changes that need no ordering: failures, estimates, new GPRs
	// and node health. Errors are collected, the pass goes on.
	var errs []error
	failed := map[string]string{}
	maps.Copy(failed, invalid)
	for _, u := range plan.Unsatisfiable {
		failed[u.ID] = u.Reason
	}
	for i, g := range gprs {
		ng := g.DeepCopy()
		switch {
		case failed[g.Name] != "" && g.Spec.RequeueOnFailure && invalid[g.Name] == "":
			// Asked to wait for inventory that may come: stay queued,
			// saying why, with no estimate.
			ng.Status.ProvisioningStatus = v1alpha1.GPRQueued
			ng.Status.InternalState = v1alpha1.StateQueued
			ng.Status.FailureReason = failed[g.Name]
			ng.Status.EstimatedStartTime = nil
			ng.Status.EstimatedWaitTime = ""
		case failed[g.Name] != "":
			ng.Status.ProvisioningStatus = v1alpha1.GPRError
			ng.Status.InternalState = v1alpha1.StateFailed
			ng.Status.FailureReason = failed[g.Name]
			ng.Status.EstimatedStartTime = nil
			ng.Status.EstimatedWaitTime = ""
		case IsQueued(g):
			ng.Status.ProvisioningStatus = v1alpha1.GPRQueued
			ng.Status.InternalState = v1alpha1.StateQueued
			ng.Status.FailureReason = ""
			setEstimate(ng, plan.Estimates, now)
		case g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned:
			r.setNodesHealthy(ng, nodeByName)
		default:
			continue
		}
		if equality.Semantic.DeepEqual(g.Status, ng.Status) {
			continue
		}
		ng.Status.ObservedGeneration = g.Generation
		if err := r.writeStatus(ctx, ng); err != nil {
			errs = append(errs, fmt.Errorf("update GPR %s status: %w", g.Name, err))
			continue
		}
		gprs[i] = ng
		if ng.Status.ProvisioningStatus == v1alpha1.GPRError && g.Status.ProvisioningStatus != v1alpha1.GPRError {
			r.event(ng, corev1.EventTypeWarning, "Unsatisfiable", "Plan", "%s", ng.Status.FailureReason)
			log.Info("GPR cannot be satisfied", "gpr", g.Name, "reason", ng.Status.FailureReason)
		}
		if c := meta.FindStatusCondition(ng.Status.Conditions, v1alpha1.GPRNodesHealthy); c != nil && c.Status == metav1.ConditionFalse &&
			!meta.IsStatusConditionFalse(g.Status.Conditions, v1alpha1.GPRNodesHealthy) {
			r.event(ng, corev1.EventTypeWarning, c.Reason, "Watch", "%s", c.Message)
		}
	}

	// 3. Node labels and taints follow the provisioned GPRs' status.
	holders := map[string]*v1alpha1.GPUProvisionRequest{}
	for _, g := range gprs {
		if g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
			continue
		}
		for _, n := range g.Status.Nodes {
			if other := holders[n]; other != nil {
				// Never written by this controller; report, do not guess.
				errs = append(errs, fmt.Errorf("node %s is in the status of GPRs %s and %s", n, other.Name, g.Name))
				continue
			}
			holders[n] = g
		}
	}
	for _, n := range nodes {
		if err := r.reconcileNode(ctx, n, holders[n.Name]); err != nil {
			errs = append(errs, err)
		}
	}

	// 4. Metrics, and a pass at the next expiry.
	r.observe(gprs)
	var next time.Time
	for _, p := range in.Provisioned {
		if slices.ContainsFunc(plan.Starts, func(s planner.Start) bool { return s.ID == p.ID }) {
			continue
		}
		if next.IsZero() || p.End.Before(next) {
			next = p.End
		}
	}
	for _, s := range plan.Starts {
		if end, ok := End(gprs[byName[s.ID]]); ok && (next.IsZero() || end.Before(next)) {
			next = end
		}
	}
	if err := errors.Join(errs...); err != nil {
		return reconcile.Result{}, err
	}
	if !next.IsZero() {
		// Wake just after the next expiry, measured on the real clock
		// reading (now is truncated).
		return reconcile.Result{RequeueAfter: max(next.Sub(r.clock.Now()), 0) + 100*time.Millisecond}, nil
	}
	return reconcile.Result{}, nil
}

// setEstimate writes a queued GPR's estimated start. The wait time is
// written with it and only when the estimate moves, so a steady queue
// causes no writes; readers compute the current wait from
// estimatedStartTime.
func setEstimate(g *v1alpha1.GPUProvisionRequest, est map[string]time.Time, now time.Time) {
	t, ok := est[g.Name]
	if !ok {
		g.Status.EstimatedStartTime = nil
		g.Status.EstimatedWaitTime = ""
		return
	}
	t = t.Truncate(time.Second)
	if old := g.Status.EstimatedStartTime; old != nil && old.Time.Equal(t) {
		return
	}
	g.Status.EstimatedStartTime = &metav1.Time{Time: t}
	g.Status.EstimatedWaitTime = duration.Format(max(t.Sub(now), 0))
}

// setNodesHealthy sets the NodesHealthy condition of a provisioned GPR.
func (r *Reconciler) setNodesHealthy(g *v1alpha1.GPUProvisionRequest, nodes map[string]*corev1.Node) {
	var gone, notReady []string
	for _, name := range g.Status.Nodes {
		n, ok := nodes[name]
		switch {
		case !ok:
			gone = append(gone, name)
		case !NodeReady(n):
			notReady = append(notReady, name)
		}
	}
	c := metav1.Condition{
		Type: v1alpha1.GPRNodesHealthy, Status: metav1.ConditionTrue, Reason: "NodesReady",
		Message: "all nodes are Ready", ObservedGeneration: g.Generation,
	}
	switch {
	case len(gone) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, "NodeGone"
		c.Message = "nodes no longer exist: " + joinNames(gone)
		if len(notReady) > 0 {
			c.Message += "; nodes not Ready: " + joinNames(notReady)
		}
	case len(notReady) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, "NodeNotReady"
		c.Message = "nodes not Ready: " + joinNames(notReady)
	}
	meta.SetStatusCondition(&g.Status.Conditions, c)
}

// reconcileNode makes a node's binding labels and taint match its holder
// (nil: none). When the node leaves a workspace, that workspace's pods on
// it are deleted gracefully.
func (r *Reconciler) reconcileNode(ctx context.Context, n *corev1.Node, holder *v1alpha1.GPUProvisionRequest) error {
	curWS, _, _ := binding(n)
	var ws, id string
	if holder != nil {
		ws, id = holder.Spec.Workspace, holder.Name
	}
	taints, taintsChanged := withBinding(n.Spec.Taints, ws)
	if labelIs(n, v1alpha1.LabelWorkspace, ws) && labelIs(n, v1alpha1.LabelGPR, id) && !taintsChanged {
		return nil
	}
	orig := n.DeepCopy()
	nn := n.DeepCopy()
	if nn.Labels == nil {
		nn.Labels = map[string]string{}
	}
	if ws == "" {
		delete(nn.Labels, v1alpha1.LabelWorkspace)
		delete(nn.Labels, v1alpha1.LabelGPR)
	} else {
		nn.Labels[v1alpha1.LabelWorkspace] = ws
		nn.Labels[v1alpha1.LabelGPR] = id
	}
	nn.Spec.Taints = taints
	patch := client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
	if err := r.client.Patch(ctx, nn, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("bind node %s to %q: %w", n.Name, ws, err)
	}
	logr.FromContextOrDiscard(ctx).Info("node binding", "node", n.Name, "workspace", ws, "gpr", id, "was", curWS)
	if curWS != "" && curWS != ws {
		return r.evict(ctx, n.Name, curWS)
	}
	return nil
}

// labelIs reports whether node n has label k set to v, or, for v empty,
// does not have it.
func labelIs(n *corev1.Node, k, v string) bool {
	cur, ok := n.Labels[k]
	if v == "" {
		return !ok
	}
	return ok && cur == v
}

// evict deletes, gracefully, the pods of workspace ws on a node: the pods
// in namespaces labelled gpuspace.io/workspace=ws.
func (r *Reconciler) evict(ctx context.Context, node, ws string) error {
	var pods corev1.PodList
	if err := r.apiReader.List(ctx, &pods, client.MatchingFieldsSelector{
		Selector: fields.OneTermEqualSelector("spec.nodeName", node),
	}); err != nil {
		return fmt.Errorf("list pods on node %s: %w", node, err)
	}
	nsWS := map[string]string{}
	var errs []error
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		owner, ok := nsWS[p.Namespace]
		if !ok {
			var ns corev1.Namespace
			if err := r.client.Get(ctx, client.ObjectKey{Name: p.Namespace}, &ns); err == nil {
				owner = ns.Labels[v1alpha1.LabelWorkspace]
			}
			nsWS[p.Namespace] = owner
		}
		if owner != ws {
			continue
		}
		err := r.client.Delete(ctx, p, client.Preconditions{UID: &p.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("evict pod %s/%s from node %s: %w", p.Namespace, p.Name, node, err))
			continue
		}
		logr.FromContextOrDiscard(ctx).Info("evicted pod", "pod", p.Namespace+"/"+p.Name, "node", node, "workspace", ws)
	}
	return errors.Join(errs...)
}

// listGPRs lists GPRs from the cache, replacing any the cache has at a
// version older than this reconciler's own last write.
func (r *Reconciler) listGPRs(ctx context.Context) ([]*v1alpha1.GPUProvisionRequest, error) {
	var list v1alpha1.GPUProvisionRequestList
	if err := r.client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list GPRs: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*v1alpha1.GPUProvisionRequest, len(list.Items))
	seen := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		g := &list.Items[i]
		seen[g.Name] = true
		if w, ok := r.written[g.Name]; ok {
			if w.UID == g.UID && olderVersion(g.ResourceVersion, w.ResourceVersion) {
				g = w.DeepCopy()
			} else {
				delete(r.written, g.Name)
			}
		}
		out[i] = g
	}
	for name := range r.written {
		if !seen[name] {
			delete(r.written, name) // deleted since
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.GPUProvisionRequest) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// olderVersion reports whether resourceVersion a is older than b. Resource
// versions are opaque to clients, but the apiserver's are etcd revisions;
// if either does not parse, the cache is trusted.
func olderVersion(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}

// writeStatus updates g's status with optimistic concurrency (g's
// resourceVersion) and remembers the result.
func (r *Reconciler) writeStatus(ctx context.Context, g *v1alpha1.GPUProvisionRequest) error {
	if err := r.client.Status().Update(ctx, g); err != nil {
		return err
	}
	r.mu.Lock()
	r.written[g.Name] = g.DeepCopy()
	r.mu.Unlock()
	return nil
}

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
		case IsQueued(g):
			queued[g.Spec.Workspace]++
		case g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned:
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
