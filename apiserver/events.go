package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/sse"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/view"
)

// The event stream (GET /api/v1/events): GPR and inventory changes as
// server-sent events, from the informer handlers of the cache the API
// reads (it never writes). Each change is rendered to JSON once, kept in a
// bounded ring with increasing ids, and sent to every connected client
// that may read it; a client that reconnects with Last-Event-ID gets what
// it missed from the ring, or a reset event when that is gone.

// Stream tuning.
const (
	// eventRing is how many recent events a reconnecting client can get.
	eventRing = 4096
	// heartbeatEvery is the comment line that keeps idle connections and
	// proxies open.
	heartbeatEvery = 15 * time.Second
	// planSettle is how long the plan pass waits after a change for more
	// before it recomputes estimates (a burst of events, one plan).
	planSettle = 100 * time.Millisecond
	// estimateRecheck re-plans with no event, as time passes (expiries
	// move estimates without an event).
	estimateRecheck = 10 * time.Second
	// retryMillis is the reconnect delay the stream asks EventSource for.
	retryMillis = 2000
)

// GPR changes (GPREvent.Change).
const (
	changeCreated     = "created"
	changeUpdated     = "updated"
	changeEstimate    = "estimate"
	changeProvisioned = "provisioned"
	changeReleased    = "released"
	changeFailed      = "failed"
	changeRequeued    = "requeued"
	changeDeleted     = "deleted"
)

// Node changes (NodeEvent.Change).
const (
	nodeAdded     = "added"
	nodeBound     = "bound"
	nodeReleased  = "released"
	nodeUnhealthy = "unhealthy"
	nodeHealthy   = "healthy"
	nodeRemoved   = "removed"
)

// GPREvent is a change of a GPR (event gpr).
type GPREvent struct {
	Change    string `json:"change" enum:"created,updated,estimate,provisioned,released,failed,requeued,deleted" doc:"What happened: created; updated (name, priority, early release asked); estimate (the plan moved its estimated start or reserved nodes); provisioned; released (Complete, with reason); failed (Error); requeued (back to Queued); deleted"`
	Time      string `json:"time" doc:"When the stream saw the change (RFC 3339, ms)"`
	GPRID     string `json:"gprId"`
	Workspace string `json:"sliceName"`
	Reason    string `json:"reason,omitempty" doc:"released, failed, requeued: why (Expired, EarlyReleased, Idle, Evicted, WorkspaceDeleted, Unsatisfiable, Invalid)"`
	Message   string `json:"message,omitempty" doc:"failureReason, when there is one"`
	// Plan is the GPR's place on the timeline after the change (start,
	// end, nodes held or reserved); absent when deleted or finished.
	Plan *view.PlanGPR `json:"plan,omitempty" doc:"The GPR on the timeline (as GET /plan shows it); absent once finished or deleted"`
	// GPR is the whole GPR, as GET /gpr answers; absent for estimate and
	// deleted.
	GPR *GPR `json:"gpr,omitempty" doc:"The GPR as GET /gpr answers it; absent for estimate and deleted"`

	raw []byte
}

// NodeEvent is a change of a GPU node (event node).
type NodeEvent struct {
	Change string        `json:"change" enum:"added,bound,released,unhealthy,healthy,removed"`
	Time   string        `json:"time"`
	Node   view.PlanNode `json:"node" doc:"The node after the change, as GET /plan shows it"`

	raw []byte
}

// WorkspaceEvent is a change of a workspace (event workspace).
type WorkspaceEvent struct {
	Change    string           `json:"change" enum:"created,updated,deleted"`
	Time      string           `json:"time"`
	Name      string           `json:"name"`
	Workspace WorkspaceSummary `json:"workspace" doc:"The workspace as GET /slice-workspace/list shows it (its name alone when deleted)"`

	raw []byte
}

// MarshalJSON sends the rendering made once for every client.
func (e WorkspaceEvent) MarshalJSON() ([]byte, error) {
	if e.raw != nil {
		return e.raw, nil
	}
	type plain WorkspaceEvent
	return json.Marshal(plain(e))
}

// ResetEvent tells a client that what it holds may be stale: the events
// after its Last-Event-ID are no longer kept (or it came from another
// server). Read the state again (GET /plan, /gpr/list, /inventory/list).
type ResetEvent struct {
	Reason string `json:"reason"`
}

// ReadyEvent is the first event of every connection: the stream is
// subscribed, so state read after it misses nothing.
type ReadyEvent struct {
	LastEventID string `json:"lastEventId" doc:"The id of the newest event so far; resume from it with Last-Event-ID"`
	Role        string `json:"role"`
	Workspace   string `json:"workspace" doc:"The workspace the caller is limited to, if any"`
}

// MarshalJSON sends the rendering made once for every client.
func (e GPREvent) MarshalJSON() ([]byte, error) {
	if e.raw != nil {
		return e.raw, nil
	}
	type plain GPREvent
	return json.Marshal(plain(e))
}

// MarshalJSON sends the rendering made once for every client.
func (e NodeEvent) MarshalJSON() ([]byte, error) {
	if e.raw != nil {
		return e.raw, nil
	}
	type plain NodeEvent
	return json.Marshal(plain(e))
}

// streamEvent is one event of the ring.
type streamEvent struct {
	id uint64
	// workspace is the GPR's workspace; for a node, its holder's ("" when
	// free).
	workspace string
	gpr       *GPREvent
	node      *NodeEvent
	ws        *WorkspaceEvent
	// anon is the node event without its holder, for callers who may not
	// read the holder's workspace.
	anon *NodeEvent
}

// hub is the event stream's state.
type hub struct {
	s *Server

	mu     sync.RWMutex
	ring   []streamEvent // ring[id % eventRing]
	base   uint64        // ids are base+1, base+2, ...
	next   uint64        // the id the next event gets
	notify chan struct{} // closed and replaced on each publish

	// Derived state, for telling changes apart (under mu).
	gprs  map[string]*v1alpha1.GPUProvisionRequest
	nodes map[string]domain.GPUNode
	// sent is the estimate and nodes last sent per queued GPR.
	sent map[string]view.PlanGPR
	// workspaces is each workspace's summary as last told.
	workspaces map[string]WorkspaceSummary

	kick chan struct{}

	// life guards attaching to the informers and the plan pass, which
	// runs while clients are connected.
	life      sync.Mutex
	attached  bool
	regs      []toolscache.ResourceEventHandlerRegistration
	clients   int
	stopPlans context.CancelFunc
}

func newHub(s *Server) *hub {
	// Ids of one process start above the microsecond clock, so a client
	// resuming from another process (a restart, another replica) has an
	// id this one never issued and gets a reset, not wrong events.
	base := uint64(time.Now().UnixMicro())
	return &hub{
		s: s, ring: make([]streamEvent, eventRing), base: base, next: base + 1,
		notify: make(chan struct{}),
		gprs:   map[string]*v1alpha1.GPUProvisionRequest{}, nodes: map[string]domain.GPUNode{},
		sent: map[string]view.PlanGPR{}, workspaces: map[string]WorkspaceSummary{}, kick: make(chan struct{}, 1),
	}
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// publish appends events under h.mu (held) and wakes every client.
func (h *hub) publishLocked(evs ...streamEvent) {
	if len(evs) == 0 {
		return
	}
	for _, e := range evs {
		e.id = h.next
		h.next++
		if e.gpr != nil {
			e.gpr.raw, _ = json.Marshal(*e.gpr)
		}
		if e.node != nil {
			e.node.raw, _ = json.Marshal(*e.node)
		}
		if e.anon != nil {
			e.anon.raw, _ = json.Marshal(*e.anon)
		}
		if e.ws != nil {
			e.ws.raw, _ = json.Marshal(*e.ws)
		}
		h.ring[e.id%eventRing] = e
	}
	close(h.notify)
	h.notify = make(chan struct{})
	h.kickPlan()
}

func (h *hub) kickPlan() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// latest is the newest id (base when none).
func (h *hub) latestLocked() uint64 { return h.next - 1 }

// after returns the events after id, whether id is still covered by the
// ring, and the channel closed on the next publish.
func (h *hub) after(id uint64, buf []streamEvent) ([]streamEvent, bool, <-chan struct{}) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	latest := h.latestLocked()
	oldest := h.base + 1
	if latest >= eventRing {
		oldest = max(oldest, latest-eventRing+1)
	}
	if id > latest || id+1 < oldest {
		return buf, false, h.notify
	}
	for i := id + 1; i <= latest; i++ {
		buf = append(buf, h.ring[i%eventRing])
	}
	return buf, true, h.notify
}

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

func (h *hub) gprHandler() toolscache.ResourceEventHandler {
	return handler(h.gprChanged, h.gprDeleted)
}

func (h *hub) nodeHandler() toolscache.ResourceEventHandler {
	return handler(h.nodeChanged, func(n *corev1.Node) { h.nodeDeleted(n.Name) })
}

func (h *hub) workspaceHandler() toolscache.ResourceEventHandler {
	return handler(func(w *v1alpha1.Workspace, initial bool) { h.workspaceChanged(w, initial, false) },
		func(w *v1alpha1.Workspace) { h.workspaceChanged(w, false, true) })
}

// workspaceChanged tells a workspace created, deleted, or changed in what
// the workspace list shows (its status bookkeeping aside).
func (h *hub) workspaceChanged(w *v1alpha1.Workspace, initial, deleted bool) {
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

// gprChanged tells what changed between the GPR the hub saw last and g.
func (h *hub) gprChanged(g *v1alpha1.GPUProvisionRequest, initial bool) {
	now := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.gprs[g.Name]
	h.gprs[g.Name] = g
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
	r := gprOf(g, now, nil)
	ev.GPR = &r
	if !domain.IsFinished(g) {
		pg := view.PlanGPROf(g, nil, nil, &auth.Principal{})
		pg.GPRID, pg.GPRName, pg.Workspace = g.Name, g.Spec.GPRName, g.Spec.Workspace
		if domain.IsQueued(g) {
			if prev, ok := h.sent[g.Name]; ok {
				pg.Start, pg.End, pg.Nodes = prev.Start, prev.End, prev.Nodes
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
func (h *hub) bindingsLocked(old, g *v1alpha1.GPUProvisionRequest, now time.Time) []streamEvent {
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
			evs = append(evs, h.nodeEventLocked(nodeBound, n, g, now))
		}
	}
	for _, n := range before {
		if !slices.Contains(after, n) {
			evs = append(evs, h.nodeEventLocked(nodeReleased, n, nil, now))
		}
	}
	return evs
}

// nodeEventLocked renders a node event; holder is the GPR holding it now.
func (h *hub) nodeEventLocked(change, name string, holder *v1alpha1.GPUProvisionRequest, now time.Time) streamEvent {
	f, ok := h.nodes[name]
	if !ok {
		f = domain.GPUNode{Name: name}
	}
	full := view.PlanNodeOf(f, holder, &auth.Principal{})
	e := streamEvent{node: &NodeEvent{Change: change, Time: stamp(now), Node: full}}
	if holder != nil {
		e.workspace = holder.Spec.Workspace
		anon := full
		anon.GPRID, anon.Workspace = "", ""
		e.anon = &NodeEvent{Change: change, Time: e.node.Time, Node: anon}
	}
	return e
}

func (h *hub) gprDeleted(g *v1alpha1.GPUProvisionRequest) {
	now := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.gprs[g.Name]
	if old == nil {
		old = g
	}
	delete(h.gprs, g.Name)
	delete(h.sent, g.Name)
	evs := []streamEvent{{workspace: g.Spec.Workspace, gpr: &GPREvent{Change: changeDeleted, Time: stamp(now), GPRID: g.Name, Workspace: g.Spec.Workspace}}}
	evs = append(evs, h.bindingsLocked(old, nil, now)...)
	h.publishLocked(evs...)
}

// holderLocked is the provisioned GPR whose status names node (the first,
// should two: the conflict is the controller's to report).
func (h *hub) holderLocked(node string) *v1alpha1.GPUProvisionRequest {
	for _, g := range h.gprs {
		if domain.IsProvisioned(g) && slices.Contains(g.Status.Nodes, node) {
			return g
		}
	}
	return nil
}

func (h *hub) nodeChanged(n *corev1.Node, initial bool) {
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
		change = nodeAdded // facts changed (labels, GPU count): the node as it is now
	default:
		return // heartbeats, idle signals: nothing the stream tells
	}
	h.publishLocked(h.nodeEventLocked(change, n.Name, h.holderLocked(n.Name), now))
}

func (h *hub) removedLocked(f domain.GPUNode, now time.Time) streamEvent {
	n := view.PlanNodeOf(f, nil, &auth.Principal{})
	return streamEvent{node: &NodeEvent{Change: nodeRemoved, Time: stamp(now), Node: n}}
}

func (h *hub) nodeDeleted(name string) {
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
func (h *hub) run(ctx context.Context) {
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

func (h *hub) estimates(ctx context.Context) error {
	plan, err := h.s.view.Plan(ctx)
	if err != nil {
		return err
	}
	now := h.s.now()
	everyone := &auth.Principal{}
	h.mu.Lock()
	defer h.mu.Unlock()
	var evs []streamEvent
	for _, g := range plan.GPRs() {
		if !domain.IsQueued(g) {
			continue
		}
		pg := view.PlanGPROf(g, plan.Estimates(), plan.Placements(), everyone)
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
	if (a.Start == "") != (b.Start == "") {
		return true
	}
	if a.Start == "" {
		return false
	}
	ta, err1 := time.Parse(time.RFC3339, a.Start)
	tb, err2 := time.Parse(time.RFC3339, b.Start)
	if err1 != nil || err2 != nil {
		return a.Start != b.Start
	}
	d := tb.Sub(ta)
	if d < 0 {
		d = -d
	}
	return d > domain.EstimateTolerance(max(tb.Sub(now), 0))
}

// eventsInput is GET /events's input.
type eventsInput struct {
	LastEventID string        `header:"Last-Event-ID" doc:"Resume after this event id (EventSource sends it on reconnect); an id no longer kept gets a reset event"`
	After       string        `query:"lastEventId" doc:"Same as the Last-Event-ID header, for clients that cannot set headers"`
	Timeout     time.Duration `query:"timeout" doc:"End the stream after this long (Go duration, e.g. 30s); default: until the client goes or the token expires"`
}

// registerEvents registers GET /events.
func (s *Server) registerEvents() {
	o := Op{
		id: "streamEvents", method: http.MethodGet, path: "/api/v1/events", tag: "Events",
		summary: "Stream GPR and inventory changes (server-sent events)",
		description: "A text/event-stream of changes, instead of polling: event gpr (created, updated, estimate, provisioned, released with its reason, failed, requeued, deleted) for GPRs the caller may read, " +
			"event node (added, bound, released, unhealthy, healthy, removed) for every GPU node (the holder named only when the caller may read its workspace), event workspace (created, updated, deleted) for workspaces the caller may read. " +
			"The first event is ready; read state after it and apply what follows. Every event has an id: reconnect with Last-Event-ID to get what was missed, or a reset event (read the state again) when it is no longer kept. " +
			"A comment line every 15 s keeps the connection open. The stream ends when the bearer token expires; reconnect with a new one.",
		roles: rolesReaders, scope: scopeEach, readOnly: true, idempotent: true,
	}
	// register's operation, for a streaming handler: same declaration in
	// Metadata (the auth middleware enforces its roles), same security.
	op := huma.Operation{
		OperationID: o.id, Method: o.method, Path: o.path, Summary: o.summary, Tags: []string{o.tag},
		Description: o.description + fmt.Sprintf("\n\nRoles: %s.", roleList(o.roles)),
		Errors:      []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusInternalServerError, http.StatusServiceUnavailable},
		Security:    []map[string][]string{{"bearer": {}}},
		Metadata:    map[string]any{metaOp: &o},
	}
	h := newHub(s)
	sse.Register(s.api, op, map[string]any{
		"ready": ReadyEvent{}, "gpr": &GPREvent{}, "node": &NodeEvent{}, "workspace": &WorkspaceEvent{}, "reset": ResetEvent{},
	}, func(ctx context.Context, in *eventsInput, send sse.Sender) { s.streamEvents(ctx, h, in, send) })
}

func (s *Server) streamEvents(ctx context.Context, h *hub, in *eventsInput, send sse.Sender) {
	p := principal(ctx)
	if !s.Ready() {
		_ = send.Data(ResetEvent{Reason: "the server is starting; reconnect shortly"})
		return
	}
	done, err := h.subscribe(ctx)
	if err != nil {
		s.log.Warn("event stream: subscribe", zap.Error(err))
		_ = send.Data(ResetEvent{Reason: "the server cannot stream now; reconnect shortly"})
		return
	}
	defer done()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	deadline := p.TokenExpiry
	if in.Timeout > 0 {
		if d := time.Now().Add(in.Timeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}

	h.mu.RLock()
	cursor := h.latestLocked()
	h.mu.RUnlock()
	resume := in.LastEventID
	if resume == "" {
		resume = in.After
	}
	reset := false
	if resume != "" {
		id, err := strconv.ParseUint(resume, 10, 64)
		_, ok, _ := h.after(id, nil)
		if err == nil && ok {
			cursor = id
		} else {
			reset = true
		}
	}
	if err := send(sse.Message{ID: int(cursor), Retry: retryMillis, Data: ReadyEvent{
		LastEventID: strconv.FormatUint(cursor, 10), Role: string(p.Role), Workspace: p.Workspace,
	}}); err != nil {
		return
	}
	if reset {
		if err := send.Data(ResetEvent{Reason: "the events after Last-Event-ID " + resume + " are no longer kept; read the state again"}); err != nil {
			return
		}
	}
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	var buf []streamEvent
	for {
		evs, ok, wake := h.after(cursor, buf[:0])
		buf = evs
		if !ok {
			// Fell behind the ring (a client too slow to keep up).
			h.mu.RLock()
			cursor = h.latestLocked()
			h.mu.RUnlock()
			if err := send(sse.Message{ID: int(cursor), Data: ResetEvent{Reason: "the stream fell behind; read the state again"}}); err != nil {
				return
			}
			continue
		}
		for _, e := range evs {
			cursor = e.id
			var data any
			switch {
			case e.gpr != nil:
				if !p.CanRead(e.workspace) {
					continue
				}
				data = e.gpr
			case e.node != nil:
				data = e.node
				if e.anon != nil && !p.CanRead(e.workspace) {
					data = e.anon
				}
			case e.ws != nil:
				if !p.CanRead(e.workspace) {
					continue
				}
				data = e.ws
			default:
				continue
			}
			if err := send(sse.Message{ID: int(e.id), Data: data}); err != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-beat.C:
			if err := send.Comment("keep-alive"); err != nil {
				return
			}
		}
	}
}

// subscribe attaches the hub to the cache's informers the first time a
// client connects (the handlers then stay: events between clients go into
// the ring, for those that come back) and runs the plan pass while any
// client is connected. It returns the call that ends the subscription.
func (h *hub) subscribe(ctx context.Context) (func(), error) {
	h.life.Lock()
	defer h.life.Unlock()
	if !h.attached {
		for obj, handler := range map[client.Object]toolscache.ResourceEventHandler{
			&v1alpha1.GPUProvisionRequest{}: h.gprHandler(),
			&corev1.Node{}:                  h.nodeHandler(),
			&v1alpha1.Workspace{}:           h.workspaceHandler(),
		} {
			inf, err := h.s.cache.GetInformer(ctx, obj)
			if err != nil {
				return nil, err
			}
			reg, err := inf.AddEventHandler(handler)
			if err != nil {
				return nil, err
			}
			h.regs = append(h.regs, reg)
		}
		h.attached = true
	}
	for _, r := range h.regs {
		// The informer replays what it holds to a new handler first; a
		// client's ready comes after that state, so it misses nothing.
		for !r.HasSynced() {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	h.clients++
	if h.clients == 1 {
		pctx, cancel := context.WithCancel(context.Background())
		h.stopPlans = cancel
		go h.run(pctx)
	}
	return func() {
		h.life.Lock()
		defer h.life.Unlock()
		h.clients--
		if h.clients == 0 {
			h.stopPlans()
		}
	}, nil
}
