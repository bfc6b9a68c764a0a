package apiserver

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/view"
)

// The event stream (GET /api/v1/events): GPR and inventory changes as
// server-sent events, from the informer handlers of the cache the API
// reads (it never writes). Each change is kept in a bounded ring with
// increasing ids and sent to every connected client that may read it,
// rendered to JSON once, when the first client sends it (so changes nobody
// is connected for cost no rendering); a client that reconnects with
// Last-Event-ID gets what it missed from the ring, or a reset event when
// that is gone.

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
	nodeAdded        = "added"
	nodeFactsChanged = "changed"
	nodeBound        = "bound"
	nodeReleased     = "released"
	nodeUnhealthy    = "unhealthy"
	nodeHealthy      = "healthy"
	nodeRemoved      = "removed"
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
	Change string        `json:"change" enum:"added,changed,bound,released,unhealthy,healthy,removed" doc:"added (a new GPU node); changed (its GPU facts: labels, GPU count, shape); bound; released; unhealthy; healthy; removed"`
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
	// rendered guards the one rendering of the event's JSON (render),
	// shared by every copy of the event.
	rendered *sync.Once
}

// render renders the event's JSON, once for every client: the first
// client that sends it pays, the others (and resuming ones) reuse it.
func (e streamEvent) render() {
	e.rendered.Do(func() {
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
	})
}

// broadcaster is the event stream's state: what it saw last of each
// GPR, node and workspace, the ring of events, and who listens. (Not
// "hub": that word is the control cluster in the multi-cluster code.)
type broadcaster struct {
	s *Server

	mu     sync.RWMutex
	ring   []streamEvent // ring[id % eventRing]
	base   uint64        // ids are base+1, base+2, ...
	next   uint64        // the id the next event gets
	notify chan struct{} // closed and replaced on each publish

	// Derived state, for telling changes apart (under mu).
	gprs  map[string]*v1alpha1.GPUProvisionRequest
	nodes map[string]domain.GPUNode
	// claims is, per node, the provisioned GPRs whose status names it
	// (domain.Claims): its holder, or a conflict when there are several.
	claims map[string][]string
	// sent is the estimate and nodes last sent per queued GPR.
	sent map[string]view.PlanGPR
	// workspaces is each workspace's summary as last told.
	workspaces map[string]WorkspaceSummary

	kick chan struct{}

	// closed is closed by close (a shutdown): every stream ends and new
	// ones are refused, so a graceful HTTP shutdown need not wait for them.
	closed    chan struct{}
	closeOnce sync.Once

	// life guards attaching to the informers and the plan pass, which
	// runs while clients are connected.
	life sync.Mutex
	// regs are the handlers attached, by informer (attach): each is
	// attached once for the life of the process, whatever failed before.
	regs      map[string]toolscache.ResourceEventHandlerRegistration
	clients   int
	stopPlans context.CancelFunc
}

func newBroadcaster(s *Server) *broadcaster {
	// Ids of one process start above the microsecond clock, so a client
	// resuming from another process (a restart, another replica) has an
	// id this one never issued and gets a reset, not wrong events.
	base := uint64(time.Now().UnixMicro())
	return &broadcaster{
		s: s, ring: make([]streamEvent, eventRing), base: base, next: base + 1,
		notify: make(chan struct{}),
		gprs:   map[string]*v1alpha1.GPUProvisionRequest{}, nodes: map[string]domain.GPUNode{}, claims: map[string][]string{},
		sent: map[string]view.PlanGPR{}, workspaces: map[string]WorkspaceSummary{}, kick: make(chan struct{}, 1),
		closed: make(chan struct{}), regs: map[string]toolscache.ResourceEventHandlerRegistration{},
	}
}

// close ends every stream and refuses new ones.
func (h *broadcaster) close() { h.closeOnce.Do(func() { close(h.closed) }) }

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// publishLocked appends events under h.mu (held) and wakes every
// client; rendering waits for the first client that sends them.
func (h *broadcaster) publishLocked(evs ...streamEvent) {
	if len(evs) == 0 {
		return
	}
	for _, e := range evs {
		e.id = h.next
		h.next++
		e.rendered = new(sync.Once)
		h.ring[e.id%eventRing] = e
	}
	close(h.notify)
	h.notify = make(chan struct{})
	h.kickPlan()
}

func (h *broadcaster) kickPlan() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// latest is the newest id (base when none).
func (h *broadcaster) latestLocked() uint64 { return h.next - 1 }

// after returns the events after id, whether id is still covered by the
// ring, and the channel closed on the next publish.
func (h *broadcaster) after(id uint64, buf []streamEvent) ([]streamEvent, bool, <-chan struct{}) {
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
