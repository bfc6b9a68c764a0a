package apiserver

import (
	"context"
	"reflect"
	"slices"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/view"
)

// Change detection: the informer handlers compare each object with what
// the broadcaster saw last and publish what a client can tell, and the plan
// pass publishes moved estimates.

// handler is an informer handler for objects of type T: changed gets adds
// (initial: the informer's first list) and updates, deleted gets deletes.
func handler[T client.Object](changed func(obj T, initial bool), deleted func(obj T)) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if o, ok := obj.(T); ok {
				changed(o, initial)
			}
		},
		UpdateFunc: func(_, obj any) {
			if o, ok := obj.(T); ok {
				changed(o, false)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(T); ok {
				deleted(o)
			}
		},
	}
}

func (h *broadcaster) gprHandler() toolscache.ResourceEventHandler {
	return handler(h.gprChanged, h.gprDeleted)
}

func (h *broadcaster) nodeHandler() toolscache.ResourceEventHandler {
	return handler(h.nodeChanged, func(n *corev1.Node) { h.nodeDeleted(n.Name) })
}

func (h *broadcaster) workspaceHandler() toolscache.ResourceEventHandler {
	return handler(func(w *v1alpha1.Workspace, initial bool) { h.workspaceChanged(w, initial, false) },
		func(w *v1alpha1.Workspace) { h.workspaceChanged(w, false, true) })
}

// workspaceChanged tells a workspace created, deleted, or changed in what
// the workspace list shows (its status bookkeeping aside).
func (h *broadcaster) workspaceChanged(w *v1alpha1.Workspace, initial, deleted bool) {
	sum := summaryOf(w)
	now := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.workspaces[w.Name]
	change := "updated"
	switch {
	case deleted:
		delete(h.workspaces, w.Name)
		change, sum = "deleted", WorkspaceSummary{Name: w.Name, Clusters: []string{}, Namespaces: []NamespaceClusters{}}
	case initial:
		h.workspaces[w.Name] = sum
		return
	case !had:
		change = "created"
		h.workspaces[w.Name] = sum
	case reflect.DeepEqual(old, sum):
		return
	default:
		h.workspaces[w.Name] = sum
	}
	h.publishLocked(streamEvent{workspace: w.Name, ws: &WorkspaceEvent{Change: change, Time: stamp(now), Name: w.Name, Workspace: sum}})
}

// gprChanged tells what changed between the GPR the broadcaster saw last and g.
func (h *broadcaster) gprChanged(g *v1alpha1.GPUProvisionRequest, initial bool) {
	now := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.gprs[g.Name]
	h.gprs[g.Name] = g
	h.reclaimLocked(old, g)
	if initial {
		return
	}
	if old != nil && old.ResourceVersion == g.ResourceVersion {
		return // a resync
	}
	var change string
	op, np := v1alpha1.ProvisioningStatus(""), domain.Phase(g)
	if old != nil {
		op = domain.Phase(old)
	}
	switch {
	case old == nil:
		change = changeCreated
	case op == np:
		if old.Spec.Priority == g.Spec.Priority && old.Spec.GPRName == g.Spec.GPRName && old.Spec.EarlyRelease == g.Spec.EarlyRelease {
			return // status bookkeeping (a stored estimate): the plan pass tells estimates
		}
		change = changeUpdated
	case np == v1alpha1.GPRProvisioned:
		change = changeProvisioned
	case np == v1alpha1.GPRComplete:
		change = changeReleased
	case np == v1alpha1.GPRError:
		change = changeFailed
	case np == v1alpha1.GPRQueued:
		change = changeRequeued
	default:
		change = changeUpdated
	}
	ev := &GPREvent{Change: change, Time: stamp(now), GPRID: g.Name, Workspace: g.Spec.Workspace, Message: g.Status.FailureReason}
	if change == changeReleased || change == changeFailed || change == changeRequeued {
		ev.Reason = string(g.Status.Reason)
	}
	// The stored estimate here; the plan pass follows with the current one.
	r := gprOf(g, now, domain.PlanEstimates{})
	ev.GPR = &r
	if !domain.IsFinished(g) {
		pg := view.PlanGPROf(g, view.Forecast{}, &auth.Principal{})
		pg.GPRID, pg.GPRName, pg.Workspace = g.Name, g.Spec.GPRName, g.Spec.Workspace
		if domain.IsQueued(g) {
			if prev, ok := h.sent[g.Name]; ok {
				pg.Start, pg.Latest, pg.End, pg.LikelyEnd, pg.Nodes = prev.Start, prev.Latest, prev.End, prev.LikelyEnd, prev.Nodes
			}
		}
		ev.Plan = &pg
	}
	if !domain.IsQueued(g) {
		delete(h.sent, g.Name)
	}
	evs := []streamEvent{{workspace: g.Spec.Workspace, gpr: ev}}
	evs = append(evs, h.bindingsLocked(old, g, now)...)
	h.publishLocked(evs...)
}

// bindingsLocked are the node events of a GPR's change: nodes it holds
// now and did not (bound), nodes it held and does not (released). Holding
// is GPR status alone (domain.IsProvisioned, status.nodes).
func (h *broadcaster) bindingsLocked(old, g *v1alpha1.GPUProvisionRequest, now time.Time) []streamEvent {
	held := func(x *v1alpha1.GPUProvisionRequest) []string {
		if x == nil || !domain.IsProvisioned(x) {
			return nil
		}
		return x.Status.Nodes
	}
	before, after := held(old), held(g)
	var evs []streamEvent
	for _, n := range after {
		if !slices.Contains(before, n) {
			evs = append(evs, h.nodeEventLocked(nodeBound, n, now))
		}
	}
	for _, n := range before {
		if !slices.Contains(after, n) {
			evs = append(evs, h.nodeEventLocked(nodeReleased, n, now))
		}
	}
	return evs
}

// reclaimLocked moves the node claims of a GPR from its old copy to its
// new one (nil: none, deleted).
func (h *broadcaster) reclaimLocked(old, g *v1alpha1.GPUProvisionRequest) {
	if old != nil {
		for _, n := range domain.Claims(old) {
			c := slices.DeleteFunc(h.claims[n], func(name string) bool { return name == old.Name })
			if len(c) == 0 {
				delete(h.claims, n)
			} else {
				h.claims[n] = c
			}
		}
	}
	if g != nil {
		for _, n := range domain.Claims(g) {
			h.claims[n] = append(h.claims[n], g.Name)
		}
	}
}

// holderLocked is the provisioned GPR whose status names node (nil when
// none), and whether several do: then there is no holder, as for
// domain.Holders — the stream shows the node conflicted, never one of
// them picked at random.
func (h *broadcaster) holderLocked(node string) (holder *v1alpha1.GPUProvisionRequest, conflicted bool) {
	switch c := h.claims[node]; len(c) {
	case 0:
		return nil, false
	case 1:
		return h.gprs[c[0]], false
	default:
		return nil, true
	}
}

// nodeEventLocked renders a node event, with the node's holder (or its
// conflict) as the stream knows it now.
func (h *broadcaster) nodeEventLocked(change, name string, now time.Time) streamEvent {
	f, ok := h.nodes[name]
	if !ok {
		f = domain.GPUNode{Name: name}
	}
	holder, conflicted := h.holderLocked(name)
	full := view.PlanNodeOf(f, holder, conflicted, &auth.Principal{})
	e := streamEvent{node: &NodeEvent{Change: change, Time: stamp(now), Node: full}}
	if holder != nil {
		e.workspace = holder.Spec.Workspace
		anon := full
		anon.GPRID, anon.Workspace = "", ""
		e.anon = &NodeEvent{Change: change, Time: e.node.Time, Node: anon}
	}
	return e
}

func (h *broadcaster) gprDeleted(g *v1alpha1.GPUProvisionRequest) {
	now := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.gprs[g.Name]
	if old == nil {
		old = g
	}
	delete(h.gprs, g.Name)
	h.reclaimLocked(old, nil)
	delete(h.sent, g.Name)
	evs := []streamEvent{{workspace: g.Spec.Workspace, gpr: &GPREvent{Change: changeDeleted, Time: stamp(now), GPRID: g.Name, Workspace: g.Spec.Workspace}}}
	evs = append(evs, h.bindingsLocked(old, nil, now)...)
	h.publishLocked(evs...)
}

func (h *broadcaster) nodeChanged(n *corev1.Node, initial bool) {
	f, ok := domain.GPUFacts(n, h.s.cfg.DefaultCluster)
	now := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.nodes[n.Name]
	if !ok {
		if had {
			delete(h.nodes, n.Name)
			h.publishLocked(h.removedLocked(old, now))
		}
		return
	}
	h.nodes[n.Name] = f
	if initial {
		return
	}
	var change string
	switch {
	case !had:
		change = nodeAdded
	case old.Healthy() && !f.Healthy():
		change = nodeUnhealthy
	case !old.Healthy() && f.Healthy():
		change = nodeHealthy
	case old != f:
		change = nodeFactsChanged // facts changed (labels, GPU count): the node as it is now
	default:
		return // heartbeats, idle signals: nothing the stream tells
	}
	h.publishLocked(h.nodeEventLocked(change, n.Name, now))
}

func (h *broadcaster) removedLocked(f domain.GPUNode, now time.Time) streamEvent {
	n := view.PlanNodeOf(f, nil, false, &auth.Principal{})
	return streamEvent{node: &NodeEvent{Change: nodeRemoved, Time: stamp(now), Node: n}}
}

func (h *broadcaster) nodeDeleted(name string) {
	now := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.nodes[name]
	if !had {
		return
	}
	delete(h.nodes, name)
	h.publishLocked(h.removedLocked(old, now))
}

// run is the plan pass: after changes settle (and every estimateRecheck
// as time passes) it takes the current plan and tells each queued GPR
// whose estimated start moved (domain.EstimateTolerance, the rule stored
// estimates follow) or whose reserved nodes changed.
func (h *broadcaster) run(ctx context.Context) {
	t := time.NewTimer(estimateRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
			select {
			case <-ctx.Done():
				return
			case <-time.After(planSettle):
			}
			// Drain a kick that came while settling: this pass covers it.
			select {
			case <-h.kick:
			default:
			}
		case <-t.C:
		}
		t.Reset(estimateRecheck)
		if err := h.estimates(ctx); err != nil && ctx.Err() == nil {
			h.s.log.Warn("event stream: plan", zap.Error(err))
		}
	}
}

func (h *broadcaster) estimates(ctx context.Context) error {
	plan, err := h.s.view.Plan(ctx)
	if err != nil {
		return err
	}
	now := h.s.now()
	everyone := &auth.Principal{}
	h.mu.Lock()
	defer h.mu.Unlock()
	var evs []streamEvent
	f := plan.Forecast()
	for _, g := range plan.GPRs() {
		if !domain.IsQueued(g) {
			continue
		}
		pg := view.PlanGPROf(g, f, everyone)
		prev, had := h.sent[g.Name]
		if had && !estimateMoved(prev, pg, now) && slices.Equal(prev.Nodes, pg.Nodes) {
			continue
		}
		if !had && pg.Start == "" {
			h.sent[g.Name] = pg
			continue
		}
		h.sent[g.Name] = pg
		evs = append(evs, streamEvent{workspace: g.Spec.Workspace, gpr: &GPREvent{
			Change: changeEstimate, Time: stamp(now), GPRID: g.Name, Workspace: g.Spec.Workspace, Plan: &pg,
		}})
	}
	for name := range h.sent {
		if !plan.Knows(name) {
			delete(h.sent, name)
		}
	}
	h.publishLocked(evs...)
	return nil
}

// estimateMoved reports whether the start of b differs from a's enough to
// tell (domain.EstimateTolerance of the wait), or one has a start and the
// other none.
func estimateMoved(a, b view.PlanGPR, now time.Time) bool {
	return startMoved(a.Start, b.Start, now) || startMoved(a.Latest, b.Latest, now)
}

// startMoved reports whether a start (RFC 3339, empty: none) moved from a
// to b by more than the tolerance at now.
func startMoved(a, b string, now time.Time) bool {
	if (a == "") != (b == "") {
		return true
	}
	if a == "" {
		return false
	}
	ta, err1 := time.Parse(time.RFC3339, a)
	tb, err2 := time.Parse(time.RFC3339, b)
	if err1 != nil || err2 != nil {
		return a != b
	}
	d := tb.Sub(ta)
	if d < 0 {
		d = -d
	}
	return d > domain.EstimateTolerance(max(tb.Sub(now), 0))
}
