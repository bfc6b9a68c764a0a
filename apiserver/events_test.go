package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/view"
)

// sseEvent is one server-sent event as a client reads it.
type sseEvent struct {
	id, event string
	data      map[string]any
	at        time.Time
}

// sseClient reads GET /api/v1/events.
type sseClient struct {
	t      testing.TB
	resp   *http.Response
	events chan sseEvent
	// close disconnects the client.
	close context.CancelFunc
}

func openEvents(t testing.TB, base, token, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /events: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 1024), close: cancel}
	go func() {
		defer close(c.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.event != "" || e.data != nil {
					e.at = time.Now()
					c.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &e.data)
			}
		}
	}()
	return c
}

// next returns the next event that match accepts, failing after timeout.
func (c *sseClient) next(timeout time.Duration, match func(sseEvent) bool) sseEvent {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				c.t.Fatal("event stream ended")
			}
			if match(e) {
				return e
			}
		case <-deadline:
			c.t.Fatal("no matching event in time")
		}
	}
}

func gprChange(id, change string) func(sseEvent) bool {
	return func(e sseEvent) bool {
		return e.event == "gpr" && e.data["gprId"] == id && e.data["change"] == change
	}
}

func newStreamGPR(t testing.TB, ws, name string) *v1alpha1.GPUProvisionRequest {
	t.Helper()
	g := &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.GPUProvisionRequestSpec{GPRName: "stream", Workspace: ws, ClusterName: "worker-1",
			NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: 101, ExitDuration: "0d1h0m", GPUShape: "NOSUCH"},
	}
	if err := env.Client.Create(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), g) })
	return g
}

// TestEventStream: status changes reach a connected client as gpr and
// node events, scoped to what the caller may read; a client resuming
// with Last-Event-ID gets what it missed, one with an unknown id a reset.
// It reports the delay from each status write to the event (the p99 must
// stay under 250 ms).
func TestEventStream(t *testing.T) {
	ts := newTestServer(t)
	wsA, wsB := "ev-a-"+suffix(), "ev-b-"+suffix()
	otherKey := ts.createKey(auth.KeyRequest{Name: "viewer-b", Role: auth.RoleViewer, Workspace: wsB})
	viewerB := ts.token(otherKey)

	owner := openEvents(t, ts.http.URL, ts.owner, "")
	ready := owner.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })
	if ready.data["role"] != "Owner" || ready.id == "" {
		t.Fatalf("ready: %+v", ready)
	}
	scoped := openEvents(t, ts.http.URL, viewerB, "")
	scoped.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })

	const rounds = 40
	var delays []time.Duration
	var lastSeen string
	for i := range rounds {
		name := fmt.Sprintf("gpr-%08x-evts", i)
		g := newStreamGPR(t, wsA, name)
		owner.next(10*time.Second, gprChange(name, changeCreated))

		// Queued → Provisioned on a node → Complete (released, Expired).
		g.Status.ProvisioningStatus = v1alpha1.GPRProvisioned
		g.Status.Nodes = []string{"ev-node-" + suffix()}
		now := metav1.Now()
		g.Status.StartTimestamp = &now
		start := time.Now()
		if err := env.Client.Status().Update(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		e := owner.next(10*time.Second, gprChange(name, changeProvisioned))
		delays = append(delays, e.at.Sub(start))
		owner.next(10*time.Second, func(e sseEvent) bool {
			n, _ := e.data["node"].(map[string]any)
			return e.event == "node" && e.data["change"] == nodeBound && n["gprId"] == name && n["sliceName"] == wsA
		})

		g.Status.ProvisioningStatus = v1alpha1.GPRComplete
		g.Status.Reason = v1alpha1.ReasonExpired
		start = time.Now()
		if err := env.Client.Status().Update(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		e = owner.next(10*time.Second, gprChange(name, changeReleased))
		delays = append(delays, e.at.Sub(start))
		if e.data["reason"] != string(v1alpha1.ReasonExpired) {
			t.Errorf("released: reason %v, want Expired", e.data["reason"])
		}
		lastSeen = e.id
	}
	slices.Sort(delays)
	p50, p99 := delays[len(delays)/2], delays[len(delays)*99/100]
	t.Logf("event delay, status write to client, %d changes: p50 %v, p99 %v, max %v", len(delays), p50, p99, delays[len(delays)-1])
	if p99 > 250*time.Millisecond {
		t.Errorf("event delay p99 %v, want under 250ms", p99)
	}

	// The Viewer of workspace B saw none of workspace A's GPRs, and saw
	// the bound node without its holder.
	sawNode := false
drain:
	for {
		select {
		case e := <-scoped.events:
			if e.event == "gpr" {
				t.Errorf("viewer of %s got a GPR event of %v", wsB, e.data["sliceName"])
			}
			if e.event == "node" && e.data["change"] == nodeBound {
				sawNode = true
				if n, _ := e.data["node"].(map[string]any); n["gprId"] != "" || n["sliceName"] != "" {
					t.Errorf("viewer of %s sees the holder of a node: %v", wsB, n)
				}
			}
		default:
			break drain
		}
	}
	if !sawNode {
		t.Errorf("viewer of %s got no node events", wsB)
	}

	// Workspaces: the Viewer of B is told of B, not of A.
	createWorkspace(t, ts, wsA, wsA)
	createWorkspace(t, ts, wsB, wsB)
	t.Cleanup(func() {
		for _, ws := range []string{wsA, wsB} {
			ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
		}
	})
	owner.next(10*time.Second, func(e sseEvent) bool {
		return e.event == "workspace" && e.data["name"] == wsB && e.data["change"] == "created"
	})
	e := scoped.next(10*time.Second, func(e sseEvent) bool { return e.event == "workspace" })
	if e.data["name"] != wsB {
		t.Errorf("viewer of %s told of workspace %v", wsB, e.data["name"])
	}

	// Resume: a GPR deleted while nobody listened is told to a client
	// that comes back with the last id it saw.
	name := fmt.Sprintf("gpr-%08x-evts", 0)
	if err := env.Client.Delete(context.Background(), &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	owner.next(10*time.Second, gprChange(name, changeDeleted))
	again := openEvents(t, ts.http.URL, ts.owner, lastSeen)
	again.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })
	again.next(10*time.Second, gprChange(name, changeDeleted))

	// An id this server never issued: reset.
	stale := openEvents(t, ts.http.URL, ts.owner, "12")
	stale.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })
	stale.next(10*time.Second, func(e sseEvent) bool { return e.event == "reset" })

	// No token: 401 in the envelope, before any stream.
	r := ts.do(http.MethodGet, "/api/v1/events", "", nil)
	if r.code != http.StatusUnauthorized {
		t.Errorf("no token: %d", r.code)
	}
}

// TestEventStreamMemory measures what a connected, idle client costs the
// server: n raw connections (no client-side reader goroutines), each past
// its ready event, and the heap and stacks they add.
func TestEventStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement")
	}
	ts := newTestServer(t)
	u, _ := url.Parse(ts.http.URL)
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	const n = 500
	before := measure()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 4096)
	for range n {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /api/v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", u.Host, ts.owner)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := ""
		for !strings.Contains(got, "event: ready") {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("read: %v (%q)", err, got)
			}
			got += string(buf[:k])
		}
	}
	after := measure()
	per := float64(int64(after)-int64(before)) / n
	t.Logf("memory per connected event-stream client: %.1f KiB (heap+stacks, %d clients)", per/1024, n)
	if per > 256<<10 {
		t.Errorf("%.0f bytes per client, want under 256 KiB", per)
	}
}

// TestPlanTimeline: GET /plan draws the holder of each node until its end
// and the nodes the plan reserves for each queued GPR; a key limited to
// one workspace sees other workspaces' GPRs without their ids.
func TestPlanTimeline(t *testing.T) {
	ts := newTestServer(t)
	sfx := suffix()
	wsA, wsB := "pl-a-"+sfx, "pl-b-"+sfx
	n0, n1 := "pl-h100-0-"+sfx, "pl-h100-1-"+sfx
	for _, n := range []string{n0, n1} {
		addNode(t, testenv.GPUNode{Name: n, InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8})
	}
	a := newStreamGPR(t, wsA, "gpr-00000001-plan")
	a.Status.ProvisioningStatus = v1alpha1.GPRProvisioned
	a.Status.Nodes = []string{n0}
	start := metav1.Now()
	a.Status.StartTimestamp = &start
	if err := env.Client.Status().Update(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	b := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: "gpr-00000002-plan"},
		Spec: v1alpha1.GPUProvisionRequestSpec{GPRName: "queued", Workspace: wsB, ClusterName: "worker-1",
			NumberOfGPUs: 8, NumberOfGPUNodes: 2, Priority: 101, ExitDuration: "0d1h0m", GPUShape: "H100"}}
	if err := env.Client.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), b) })

	find := func(r result, id string) map[string]any {
		for _, g := range r.data()["gprs"].([]any) {
			if m := g.(map[string]any); m["gprId"] == id {
				return m
			}
		}
		return nil
	}
	var r result
	waitFor(t, "both GPRs in the plan", func() bool {
		r = ts.do(http.MethodGet, "/api/v1/plan", ts.owner, nil)
		qb := find(r, b.Name)
		return find(r, a.Name) != nil && qb != nil && qb["start"] != ""
	})
	qb := find(r, b.Name)
	// B needs both nodes; n0 is A's for an hour, so B starts at A's end.
	if got := fmt.Sprint(qb["nodes"]); got != fmt.Sprint([]any{n0, n1}) {
		t.Errorf("B planned on %s, want [%s %s]", got, n0, n1)
	}
	if qb["start"] != find(r, a.Name)["end"] {
		t.Errorf("B starts %v, want A's end %v", qb["start"], find(r, a.Name)["end"])
	}
	held := false
	for _, n := range r.data()["nodes"].([]any) {
		if m := n.(map[string]any); m["name"] == n0 {
			held = m["state"] == "held" && m["gprId"] == a.Name && m["until"] == find(r, a.Name)["end"]
		}
	}
	if !held {
		t.Errorf("node %s not shown held by %s until its end: %v", n0, a.Name, r.data()["nodes"])
	}

	viewerA := ts.token(ts.createKey(auth.KeyRequest{Name: "pl-view-a", Role: auth.RoleViewer, Workspace: wsA}))
	r = ts.do(http.MethodGet, "/api/v1/plan", viewerA, nil)
	if find(r, b.Name) != nil {
		t.Errorf("a Viewer of %s sees %s of %s", wsA, b.Name, wsB)
	}
	anon := 0
	for _, g := range r.data()["gprs"].([]any) {
		if m := g.(map[string]any); m["gprId"] == "" && m["sliceName"] == "" && m["start"] != "" {
			anon++
		}
	}
	if anon < 1 || find(r, a.Name) == nil {
		t.Errorf("a Viewer of %s: want its GPR and the other one anonymous: %v", wsA, r.data()["gprs"])
	}
}

// nodeChange matches a node event of node with change.
func nodeChange(node, change string) func(sseEvent) bool {
	return func(e sseEvent) bool {
		n, _ := e.data["node"].(map[string]any)
		return e.event == "node" && e.data["change"] == change && n["name"] == node
	}
}

// TestEventStreamConflictedNode: a node two provisioned GPRs name in their
// status is shown conflicted, with no holder — never one of them picked —
// on the stream and in GET /plan; once one lets go, the other holds it.
func TestEventStreamConflictedNode(t *testing.T) {
	ts := newTestServer(t)
	sfx := suffix()
	node := "cf-h100-" + sfx
	addNode(t, testenv.GPUNode{Name: node, InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8})
	owner := openEvents(t, ts.http.URL, ts.owner, "")
	owner.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })

	a := newStreamGPR(t, "cf-a-"+sfx, "gpr-00000001-conf")
	b := newStreamGPR(t, "cf-b-"+sfx, "gpr-00000002-conf")
	provision(t, a.Name, node)
	e := owner.next(10*time.Second, nodeChange(node, nodeBound))
	if n := e.data["node"].(map[string]any); n["state"] != view.NodeHeld || n["gprId"] != a.Name {
		t.Errorf("bound to %s alone: %v, want held by it", a.Name, n)
	}
	provision(t, b.Name, node)
	e = owner.next(10*time.Second, nodeChange(node, nodeBound))
	if n := e.data["node"].(map[string]any); n["state"] != view.NodeConflicted || n["gprId"] != "" || n["sliceName"] != "" {
		t.Errorf("named by %s and %s: %v, want conflicted with no holder", a.Name, b.Name, n)
	}
	waitFor(t, "GET /plan to show the node conflicted", func() bool {
		r := ts.do(http.MethodGet, "/api/v1/plan", ts.owner, nil)
		for _, n := range r.data()["nodes"].([]any) {
			if m := n.(map[string]any); m["name"] == node {
				return m["state"] == view.NodeConflicted && m["gprId"] == ""
			}
		}
		return false
	})

	setGPRStatus(t, a.Name, func(s *v1alpha1.GPUProvisionRequestStatus) {
		s.ProvisioningStatus, s.Reason = v1alpha1.GPRComplete, v1alpha1.ReasonExpired
	})
	e = owner.next(10*time.Second, nodeChange(node, nodeReleased))
	if n := e.data["node"].(map[string]any); n["state"] != view.NodeHeld || n["gprId"] != b.Name {
		t.Errorf("released by %s: %v, want held by %s", a.Name, n, b.Name)
	}
}

// failingInformers is the API's real cache with one fault: the nth
// GetInformer call after arm fails, once.
type failingInformers struct {
	cache.Cache
	calls, failAt atomic.Int32
}

func (c *failingInformers) arm(n int32) { c.calls.Store(0); c.failAt.Store(n) }

func (c *failingInformers) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	if n := c.failAt.Load(); n > 0 && c.calls.Add(1) == n {
		c.failAt.Store(0)
		return nil, errors.New("injected: informer unavailable")
	}
	return c.Cache.GetInformer(ctx, obj, opts...)
}

// TestEventStreamAttachesOnce: a first subscription that fails half-way
// through attaching to the informers (the third informer fails) leaves no
// handler attached twice: once a later client subscribes, each change is
// told once, for GPRs and workspaces alike. (Deletes show a second handler
// at once; other changes it may tell late, out of order.)
func TestEventStreamAttachesOnce(t *testing.T) {
	ns := "gs-test-" + suffix()
	scheme := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(env.Config, scheme, ns)
	if err != nil {
		t.Fatal(err)
	}
	apiservertest.RunUntilCleanup(t, "cache", c.Start)
	fc := &failingInformers{Cache: c}
	ts := newTestServerIn(t, ns, WithCache(fc))

	fc.arm(3)
	failed := openEvents(t, ts.http.URL, ts.owner, "")
	failed.next(10*time.Second, func(e sseEvent) bool { return e.event == "reset" })
	owner := openEvents(t, ts.http.URL, ts.owner, "")
	owner.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })

	sfx := suffix()
	ctx := context.Background()
	g := newStreamGPR(t, "at-"+sfx, "gpr-00000001-once")
	lastGPR := newStreamGPR(t, "at-"+sfx, "gpr-00000002-once")
	owner.next(10*time.Second, gprChange(lastGPR.Name, changeCreated))
	ws, lastWS := "at-ws-"+sfx, "at-ws2-"+sfx
	for _, name := range []string{ws, lastWS} {
		w := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.WorkspaceSpec{
			Username: "u", Clusters: []string{"worker-1"}, Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: name}}}}
		if err := env.Client.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
		owner.next(10*time.Second, workspaceChange(name, "created"))
	}
	// Delete each, then a sentinel of each kind: once both sentinels are
	// told, so are the deletes before them, by every handler that tells
	// them.
	for _, obj := range []client.Object{g, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: ws}},
		lastGPR, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: lastWS}}} {
		if err := env.Client.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	gprDeleted, wsDeleted := 0, 0
	count := func(e sseEvent) {
		switch {
		case gprChange(g.Name, changeDeleted)(e):
			gprDeleted++
		case workspaceChange(ws, "deleted")(e):
			wsDeleted++
		}
	}
	for sawGPR, sawWS := false, false; !sawGPR || !sawWS; {
		e := owner.next(10*time.Second, func(sseEvent) bool { return true })
		count(e)
		sawGPR = sawGPR || gprChange(lastGPR.Name, changeDeleted)(e)
		sawWS = sawWS || workspaceChange(lastWS, "deleted")(e)
	}
	// A second handler delivers from a goroutine of its own, so its copies
	// may trail the sentinels: give them a second.
	for trail := time.After(time.Second); ; {
		select {
		case e := <-owner.events:
			count(e)
			continue
		case <-trail:
		}
		break
	}
	if gprDeleted != 1 || wsDeleted != 1 {
		t.Errorf("GPR %s told deleted %d times, workspace %s %d times; want once each", g.Name, gprDeleted, ws, wsDeleted)
	}
}

// workspaceChange matches a workspace event of name with change.
func workspaceChange(name, change string) func(sseEvent) bool {
	return func(e sseEvent) bool {
		return e.event == "workspace" && e.data["name"] == name && e.data["change"] == change
	}
}

// TestEventStreamRendersForClientsOnly: with no client connected, changes
// still go into the ring (for clients that come back) but are not rendered
// to JSON; a client resuming with Last-Event-ID gets them rendered.
func TestEventStreamRendersForClientsOnly(t *testing.T) {
	ts := newTestServer(t)
	h := ts.srv.events
	first := openEvents(t, ts.http.URL, ts.owner, "")
	ready := first.next(10*time.Second, func(e sseEvent) bool { return e.event == "ready" })
	first.close()
	waitFor(t, "the client gone", func() bool {
		h.life.Lock()
		defer h.life.Unlock()
		return h.clients == 0
	})

	g := newStreamGPR(t, "rd-"+suffix(), "gpr-00000001-rndr")
	cursor, err := strconv.ParseUint(ready.id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var created streamEvent
	waitFor(t, "the GPR's creation in the ring", func() bool {
		evs, _, _ := h.after(cursor, nil)
		for _, e := range evs {
			if e.gpr != nil && e.gpr.GPRID == g.Name && e.gpr.Change == changeCreated {
				created = e
				return true
			}
		}
		return false
	})
	if created.gpr.raw != nil {
		t.Errorf("an event no client was sent was rendered: %s", created.gpr.raw)
	}

	again := openEvents(t, ts.http.URL, ts.owner, ready.id)
	e := again.next(10*time.Second, gprChange(g.Name, changeCreated))
	if e.id != strconv.FormatUint(created.id, 10) || e.data["gpr"] == nil {
		t.Errorf("resumed: %+v, want event %d with the GPR", e, created.id)
	}
}
