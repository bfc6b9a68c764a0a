package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/sse"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// GET /events: the SSE writer, replay from Last-Event-ID, filtering by
// what the caller may read, and the subscription to the informers.

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
	h := newBroadcaster(s)
	s.events = h
	sse.Register(s.api, op, map[string]any{
		"ready": ReadyEvent{}, "gpr": &GPREvent{}, "node": &NodeEvent{}, "workspace": &WorkspaceEvent{}, "reset": ResetEvent{},
	}, func(ctx context.Context, in *eventsInput, send sse.Sender) { s.streamEvents(ctx, h, in, send) })
}

func (s *Server) streamEvents(ctx context.Context, h *broadcaster, in *eventsInput, send sse.Sender) {
	p := principal(ctx)
	if !s.Ready() {
		_ = send.Data(ResetEvent{Reason: "the server is starting; reconnect shortly"})
		return
	}
	done, err := h.subscribe(ctx)
	switch {
	case errors.Is(err, errStreamsClosed):
		_ = send.Data(ResetEvent{Reason: "the server is shutting down; reconnect shortly"})
		return
	case err != nil:
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
			e.render()
			if err := send(sse.Message{ID: int(e.id), Data: data}); err != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-h.closed:
			return
		case <-wake:
		case <-beat.C:
			if err := send.Comment("keep-alive"); err != nil {
				return
			}
		}
	}
}

// subscribe attaches the broadcaster to the cache's informers the first time a
// client connects (the handlers then stay: events between clients go into
// the ring, for those that come back) and runs the plan pass while any
// client is connected. It returns the call that ends the subscription.
func (h *broadcaster) subscribe(ctx context.Context) (func(), error) {
	h.life.Lock()
	defer h.life.Unlock()
	select {
	case <-h.closed:
		return nil, errStreamsClosed
	default:
	}
	if err := h.attachLocked(ctx); err != nil {
		return nil, err
	}
	for _, r := range h.regs {
		// The informer replays what it holds to a new handler first; a
		// client's ready comes after that state, so it misses nothing.
		for !r.HasSynced() {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-h.closed:
				return nil, errStreamsClosed
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

// errStreamsClosed refuses a stream during shutdown.
var errStreamsClosed = errors.New("the server is shutting down")

// attachLocked adds the broadcaster's handler to each informer that does
// not have it yet (h.life held). A failure leaves the handlers attached so
// far in place, and the next subscribe attaches only the rest: a handler
// attached twice would double every event for the life of the process.
func (h *broadcaster) attachLocked(ctx context.Context) error {
	for _, k := range []struct {
		name    string
		obj     client.Object
		handler func() toolscache.ResourceEventHandler
	}{
		{"gpr", &v1alpha1.GPUProvisionRequest{}, h.gprHandler},
		{"node", &corev1.Node{}, h.nodeHandler},
		{"workspace", &v1alpha1.Workspace{}, h.workspaceHandler},
	} {
		if _, ok := h.regs[k.name]; ok {
			continue
		}
		inf, err := h.s.cache.GetInformer(ctx, k.obj)
		if err != nil {
			return fmt.Errorf("informer for %s: %w", k.name, err)
		}
		reg, err := inf.AddEventHandler(k.handler())
		if err != nil {
			return fmt.Errorf("handler on the %s informer: %w", k.name, err)
		}
		h.regs[k.name] = reg
	}
	return nil
}
