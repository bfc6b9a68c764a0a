package gpr_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// TestLifecycle: queued → provisioned → expired → the workspace's next GPR
// starts on the freed node, the expired workspace's pods are evicted, and
// estimates, events and metrics follow.
func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	h.start()
	node := h.t4Node("n1")
	ws := h.workspace("a")
	nsName := h.name("a-ns")

	first := h.gpr("first", ws)
	g1 := h.status(first, v1alpha1.GPRProvisioned)
	second := h.gpr("second", ws, func(s *v1alpha1.GPUProvisionRequestSpec) { s.Priority = 50 })

	if diff := cmp.Diff([]string{node}, g1.Status.Nodes); diff != "" {
		t.Errorf("first GPR nodes (-want +got):\n%s", diff)
	}
	if g1.Status.NumGpusAllocated != 1 || g1.Status.InternalState != v1alpha1.StateProvisioned || g1.Status.StartTimestamp == nil {
		t.Errorf("first GPR status = %+v", g1.Status)
	}
	h.nodeBound(node, first)

	// The second waits for the first: its estimate is the first's end.
	wantStart := g1.Status.StartTimestamp.Add(time.Minute)
	h.eventually(func() error {
		g := h.getGPR(second)
		if g.Status.ProvisioningStatus != v1alpha1.GPRQueued || g.Status.EstimatedStartTime == nil ||
			!g.Status.EstimatedStartTime.Time.Equal(wantStart) {
			return fmt.Errorf("second GPR status %+v, want Queued with estimate %v", g.Status, wantStart)
		}
		if want := duration.Format(wantStart.Sub(h.clock.Now())); g.Status.EstimatedWaitTime != want {
			return fmt.Errorf("second GPR wait %q, want %q", g.Status.EstimatedWaitTime, want)
		}
		return nil
	})
	if got := testutil.ToFloat64(metrics.QueueLength.WithLabelValues(ws)); got != 1 {
		t.Errorf("queue length metric for %s = %v, want 1", ws, got)
	}

	// A pod of the workspace runs on the node; it must go on release.
	h.eventually(func() error {
		var ns corev1.Namespace
		return env.Client.Get(h.ctx, client.ObjectKey{Name: nsName}, &ns)
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: nsName},
		Spec: corev1.PodSpec{
			NodeName:    node,
			Containers:  []corev1.Container{{Name: "c", Image: "busybox"}},
			Tolerations: []corev1.Toleration{{Key: v1alpha1.TaintWorkspace, Value: ws, Effect: corev1.TaintEffectNoSchedule}},
		},
	}
	if err := env.Client.Create(h.ctx, pod); err != nil {
		t.Fatalf("create pod: %v", err)
	}

	h.advance(61*time.Second, first)
	done := h.status(first, v1alpha1.GPRComplete)
	if done.Status.CompletionTimestamp == nil || done.Status.InternalState != v1alpha1.StateReleased {
		t.Errorf("first GPR after expiry = %+v", done.Status)
	}
	g2 := h.status(second, v1alpha1.GPRProvisioned)
	if diff := cmp.Diff([]string{node}, g2.Status.Nodes); diff != "" {
		t.Errorf("second GPR nodes (-want +got):\n%s", diff)
	}
	h.nodeBound(node, second)
	// Same workspace, so the pod stays: eviction is for pods of a
	// workspace that lost the node.
	if err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}); err != nil {
		t.Errorf("pod of the workspace that keeps the node: %v", err)
	}

	// Expiry of the last GPR unbinds the node and evicts the pod.
	h.advance(61*time.Second, second)
	h.status(second, v1alpha1.GPRComplete)
	h.nodeBound(node, "")
	h.eventually(func() error {
		var p corev1.Pod
		err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), &p)
		if err == nil {
			return fmt.Errorf("pod %s still exists (deleting: %v)", pod.Name, p.DeletionTimestamp != nil)
		}
		return client.IgnoreNotFound(err)
	})
	h.eventually(func() error {
		var w v1alpha1.Workspace
		if err := env.Client.Get(h.ctx, client.ObjectKey{Name: ws}, &w); err != nil {
			return err
		}
		if w.Status.ActiveGPR != "" || w.Status.QueuedGPRs != 0 {
			return fmt.Errorf("workspace status active=%q queued=%d, want none", w.Status.ActiveGPR, w.Status.QueuedGPRs)
		}
		return nil
	})
}

// TestPriorityAndBackfill: a high-priority GPR waiting for two nodes keeps
// its reservation; a short low-priority GPR backfills the free node, a
// long one does not, and the queue then runs in priority order.
func TestPriorityAndBackfill(t *testing.T) {
	h := newHarness(t)
	h.start()
	n1, n2 := h.t4Node("n1"), h.t4Node("n2")

	// Holds one node for 10 minutes.
	p0 := h.gpr("p0", h.workspace("w0"), exit("0d0h10m"), priority(300))
	g0 := h.status(p0, v1alpha1.GPRProvisioned)
	end0 := g0.Status.StartTimestamp.Add(10 * time.Minute)

	head := h.gpr("head", h.workspace("w1"), nodeCount(2), exit("0d0h10m"), priority(250))
	long := h.gpr("long", h.workspace("w2"), exit("0d0h11m"), priority(50))
	short := h.gpr("short", h.workspace("w3"), exit("0d0h5m"), priority(50))

	gs := h.status(short, v1alpha1.GPRProvisioned)
	free := n1
	if g0.Status.Nodes[0] == n1 {
		free = n2
	}
	if diff := cmp.Diff([]string{free}, gs.Status.Nodes); diff != "" {
		t.Errorf("backfilled GPR nodes (-want +got):\n%s", diff)
	}
	h.eventually(func() error {
		for _, c := range []struct {
			id   string
			want time.Time
		}{{head, end0}, {long, end0.Add(10 * time.Minute)}} {
			g := h.getGPR(c.id)
			if g.Status.ProvisioningStatus != v1alpha1.GPRQueued || g.Status.EstimatedStartTime == nil || !g.Status.EstimatedStartTime.Time.Equal(c.want) {
				return fmt.Errorf("GPR %s: %s estimate %v, want Queued at %v", c.id, g.Status.ProvisioningStatus, g.Status.EstimatedStartTime, c.want)
			}
		}
		return nil
	})

	// The backfilled GPR ends; the long one still must not start (it would
	// delay head).
	h.advance(5*time.Minute+time.Second, short)
	h.status(short, v1alpha1.GPRComplete)
	h.nodeBound(free, "")
	if g := h.getGPR(long); g.Status.ProvisioningStatus != v1alpha1.GPRQueued {
		t.Fatalf("long GPR %s after the backfill ended, want Queued", g.Status.ProvisioningStatus)
	}

	// p0 ends: head takes both nodes; then long runs.
	h.advance(5*time.Minute, head)
	h.status(p0, v1alpha1.GPRComplete)
	gh := h.status(head, v1alpha1.GPRProvisioned)
	if diff := cmp.Diff([]string{n1, n2}, gh.Status.Nodes); diff != "" {
		t.Errorf("head GPR nodes (-want +got):\n%s", diff)
	}
	if g := h.getGPR(long); g.Status.ProvisioningStatus != v1alpha1.GPRQueued {
		t.Errorf("long GPR is %s while head holds every node", g.Status.ProvisioningStatus)
	}
	h.advance(10*time.Minute+time.Second, head)
	h.status(head, v1alpha1.GPRComplete)
	h.status(long, v1alpha1.GPRProvisioned)
}

// TestEarlyRelease: setting earlyRelease on a provisioned GPR releases its
// nodes at once.
func TestEarlyRelease(t *testing.T) {
	h := newHarness(t)
	h.start()
	node, id := h.oneDayGPR()
	h.nodeBound(node, id)

	g := h.getGPR(id)
	orig := g.DeepCopy()
	g.Spec.EarlyRelease = true
	if err := env.Client.Patch(h.ctx, g, client.MergeFrom(orig)); err != nil {
		t.Fatalf("set earlyRelease: %v", err)
	}
	done := h.status(id, v1alpha1.GPRComplete)
	if done.Status.CompletionTimestamp == nil {
		t.Errorf("completionTimestamp not set")
	}
	h.nodeBound(node, "")
}

// TestUnsatisfiable: a GPR no node could ever satisfy goes to Error with
// the unmet constraint; the others are unaffected.
func TestUnsatisfiable(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.t4Node("n1")
	h.t4Node("n2")
	ws := h.workspace("w")
	shape := h.gpr("shape", ws, func(s *v1alpha1.GPUProvisionRequestSpec) { s.GPUShape = "A100" })
	count := h.gpr("count", ws, nodeCount(3), func(s *v1alpha1.GPUProvisionRequestSpec) {
		s.GPUShape, s.NumberOfGPUs = "T4", 4
	})
	ok := h.gpr("ok", ws, priority(1))

	for id, want := range map[string]string{
		shape: "no node with gpuShape A100 in cluster " + h.cluster,
		count: "only 2 nodes with 4 GPUs of shape T4 in cluster " + h.cluster + ", 3 requested",
	} {
		g := h.status(id, v1alpha1.GPRError)
		if g.Status.FailureReason != want || g.Status.InternalState != v1alpha1.StateFailed {
			t.Errorf("GPR %s: failureReason %q (%s), want %q", id, g.Status.FailureReason, g.Status.InternalState, want)
		}
	}
	h.status(ok, v1alpha1.GPRProvisioned)
}

// TestNodeHealth: a bound node that turns NotReady is reported on the GPR
// as a condition and an event, and the binding stays (within the grace,
// see TestLostNode); one that is deleted is lost.
func TestNodeHealth(t *testing.T) {
	h := newHarness(t)
	h.start()
	node, id := h.oneDayGPR()

	if err := env.SetNodeReady(h.ctx, node, false); err != nil {
		t.Fatal(err)
	}
	h.eventually(func() error {
		g := h.getGPR(id)
		c := meta.FindStatusCondition(g.Status.Conditions, v1alpha1.GPRNodesHealthy)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "NodeNotReady" {
			return fmt.Errorf("NodesHealthy = %+v, want False/NodeNotReady", c)
		}
		if g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned || !slices.Equal(g.Status.Nodes, []string{node}) {
			return fmt.Errorf("GPR lost its node: %+v", g.Status)
		}
		return nil
	})
	h.eventually(func() error {
		evs, err := env.Kube.EventsV1().Events(metav1.NamespaceDefault).List(h.ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == id && e.Reason == "NodeNotReady" && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("no NodeNotReady event for %s", id)
	})

	if err := env.Client.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}); err != nil {
		t.Fatal(err)
	}
	// Deleted, it is lost at once (no grace): with no node left and no
	// requeueOnFailure the GPR is released, reason NodeLost.
	g := h.status(id, v1alpha1.GPRComplete)
	c := meta.FindStatusCondition(g.Status.Conditions, v1alpha1.GPRNodesHealthy)
	if g.Status.Reason != v1alpha1.ReasonNodeLost || c == nil || c.Status != metav1.ConditionFalse || c.Reason != "NodeLost" {
		t.Errorf("after its node was deleted: reason %q, NodesHealthy %+v; want NodeLost", g.Status.Reason, c)
	}
}

// TestConcurrentGPRs: 50 GPRs of 10 workspaces created at once for 3
// nodes. On every state a watch observes, no node is in two provisioned
// GPRs and no workspace has two; in the end every GPR ran.
//
// The apiserver may close a watch at any time (a busy apiserver drops
// watchers that fall behind a burst of events), so the observer resumes
// from the last resourceVersion it saw and misses no state; a watch that
// cannot resume fails the test instead of silently observing nothing.
func TestConcurrentGPRs(t *testing.T) {
	h := newHarness(t)
	h.start()
	nodes := []string{h.t4Node("n1"), h.t4Node("n2"), h.t4Node("n3")}
	var wss []string
	for i := range 10 {
		wss = append(wss, h.workspace(fmt.Sprintf("w%d", i)))
	}

	obs := h.observeGPRs()

	const total = 50
	ids := make([]string, total)
	errs := make([]error, total)
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() {
			// t.Fatal must not run off the test goroutine: collect errors.
			g := h.gprObject(fmt.Sprintf("g%02d", i), wss[i%len(wss)], priority(int32(1+i*7%300)))
			errs[i] = env.Client.Create(h.ctx, g)
			ids[i] = g.Name
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("create GPRs: %v", err)
	}

	// list returns the test's GPRs, failing at once unless all are there:
	// an empty or short list must not pass for a converged queue.
	list := func() []v1alpha1.GPUProvisionRequest {
		t.Helper()
		var l v1alpha1.GPUProvisionRequestList
		if err := env.Client.List(h.ctx, &l, client.MatchingLabels(h.labels())); err != nil {
			t.Fatalf("list GPRs: %v", err)
		}
		if len(l.Items) != total {
			t.Fatalf("listed %d GPRs with labels %v, want %d", len(l.Items), h.labels(), total)
		}
		return l.Items
	}

	// Run the queue: each round, expire whatever holds the nodes. Every
	// round completes at least one GPR, so 60 rounds are plenty.
	for round := 0; ; round++ {
		remaining := 0
		for _, g := range list() {
			if g.Status.ProvisioningStatus != v1alpha1.GPRComplete {
				remaining++
			}
		}
		if remaining == 0 {
			break
		}
		if round > 60 {
			t.Fatalf("after %d rounds %d of %d GPRs have not completed", round, remaining, total)
		}
		h.eventually(func() error {
			// Converged when no queued GPR could start: every node is
			// busy, or its workspace already has a GPR.
			items := list()
			busy, wsBusy := 0, map[string]bool{}
			for _, g := range items {
				if g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned {
					busy++
					wsBusy[g.Spec.Workspace] = true
				}
			}
			for _, g := range items {
				if (g.Status.ProvisioningStatus == v1alpha1.GPRQueued || g.Status.ProvisioningStatus == "") &&
					!wsBusy[g.Spec.Workspace] && busy < len(nodes) {
					return fmt.Errorf("round %d: GPR %s waits with %d of %d nodes busy", round, g.Name, busy, len(nodes))
				}
			}
			return nil
		})
		h.advance(61*time.Second, ids[0])
		h.eventually(func() error {
			for _, g := range list() {
				if g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned &&
					!g.Status.StartTimestamp.Add(time.Minute).After(h.clock.Now()) {
					return fmt.Errorf("round %d: GPR %s is due but still provisioned", round, g.Name)
				}
			}
			return nil
		})
		obs.check()
	}
	for _, n := range nodes {
		h.nodeBound(n, "")
	}
	// The watch saw every GPR complete, so it saw every state up to the
	// end, and none held a node or a workspace twice.
	h.eventually(func() error {
		obs.check()
		if n := obs.completed(); n != total {
			return fmt.Errorf("watch saw %d of %d GPRs complete", n, total)
		}
		return nil
	})
}

// gprObserver checks every state of the test's GPRs that a watch delivers.
type gprObserver struct {
	t          *testing.T
	mu         sync.Mutex
	done       map[string]bool
	phases     map[string]map[v1alpha1.ProvisioningStatus]bool
	violations []string
	err        error
}

// observeGPRs starts watching the test's GPRs from the current
// resourceVersion until the test ends. The watch resumes where it left off
// when the apiserver closes it; an error it cannot resume from (410 Gone)
// is reported by check.
func (h *harness) observeGPRs() *gprObserver {
	h.t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		h.t.Fatal(err)
	}
	var initial v1alpha1.GPUProvisionRequestList
	if err := wc.List(h.ctx, &initial, client.MatchingLabels(h.labels())); err != nil {
		h.t.Fatalf("list GPRs: %v", err)
	}
	sel := labels.SelectorFromSet(h.labels()).String()
	var watches atomic.Int32
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		if watches.Add(1) > 1 {
			h.t.Logf("GPR watch closed by the apiserver; resuming at resourceVersion %s", o.ResourceVersion)
		}
		o.LabelSelector = sel
		return wc.Watch(ctx, &v1alpha1.GPUProvisionRequestList{}, &client.ListOptions{Raw: &o})
	}}
	ctx, cancel := context.WithCancel(h.ctx)
	w, err := watchtools.NewRetryWatcherWithContext(ctx, initial.ResourceVersion, lw)
	if err != nil {
		cancel()
		h.t.Fatalf("watch GPRs: %v", err)
	}
	obs := &gprObserver{t: h.t, done: map[string]bool{}, phases: map[string]map[v1alpha1.ProvisioningStatus]bool{}}
	state := map[string]*v1alpha1.GPUProvisionRequest{}
	for i := range initial.Items {
		state[initial.Items[i].Name] = &initial.Items[i]
	}
	finished := make(chan struct{})
	h.t.Cleanup(func() {
		cancel()
		w.Stop()
		<-finished
	})
	go func() {
		defer close(finished)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				obs.fail(fmt.Errorf("watch GPRs: %v", apierrors.FromObject(ev.Object)))
				return
			}
			g, ok := ev.Object.(*v1alpha1.GPUProvisionRequest)
			if !ok {
				obs.fail(fmt.Errorf("watch GPRs: unexpected %s event with %T", ev.Type, ev.Object))
				return
			}
			if ev.Type == watch.Deleted {
				delete(state, g.Name)
				continue
			}
			state[g.Name] = g
			obs.observe(g, state)
		}
		if ctx.Err() == nil {
			obs.fail(errors.New("watch GPRs: watch ended"))
		}
	}()
	return obs
}

func (o *gprObserver) observe(g *v1alpha1.GPUProvisionRequest, state map[string]*v1alpha1.GPUProvisionRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if g.Status.ProvisioningStatus == v1alpha1.GPRComplete {
		o.done[g.Name] = true
	}
	if o.phases[g.Name] == nil {
		o.phases[g.Name] = map[v1alpha1.ProvisioningStatus]bool{}
	}
	o.phases[g.Name][g.Status.ProvisioningStatus] = true
	holder, wsHolder := map[string]string{}, map[string]string{}
	for _, s := range state {
		if s.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
			continue
		}
		if other, ok := wsHolder[s.Spec.Workspace]; ok {
			o.violations = append(o.violations, fmt.Sprintf("workspace %s has GPRs %s and %s provisioned", s.Spec.Workspace, other, s.Name))
		}
		wsHolder[s.Spec.Workspace] = s.Name
		for _, n := range s.Status.Nodes {
			if other, ok := holder[n]; ok {
				o.violations = append(o.violations, fmt.Sprintf("node %s in GPRs %s and %s", n, other, s.Name))
			}
			holder[n] = s.Name
		}
	}
}

func (o *gprObserver) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

// check fails the test on any violation seen so far or a broken watch.
// Call it from the test goroutine.
func (o *gprObserver) check() {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		o.t.Fatalf("%d violations, first: %s", len(o.violations), o.violations[0])
	}
	if o.err != nil {
		o.t.Fatal(o.err)
	}
}

// sawPhase reports whether the watch saw GPR name in phase.
func (o *gprObserver) sawPhase(name string, phase v1alpha1.ProvisioningStatus) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.phases[name][phase]
}

// completed returns how many GPRs the watch saw complete.
func (o *gprObserver) completed() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.done)
}
