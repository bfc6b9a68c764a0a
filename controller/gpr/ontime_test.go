package gpr_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// These tests run the controllers on a runningClock: nothing pokes a pass
// at the deadline, so a decision made on time was made by the pass's own
// timer. Lateness is measured on the status timestamps the controllers
// wrote (whole seconds, from their clock), never on the test's polling.

// onTime is the most a decision may be late: the pass wakes 100 ms after
// a deadline, and timestamps are whole seconds.
const onTime = time.Second

// lateness fails the test if at is more than onTime after due.
func lateness(t *testing.T, what string, at *metav1.Time, due time.Time) {
	t.Helper()
	if at == nil {
		t.Fatalf("%s: no timestamp", what)
	}
	if late := at.Sub(due); late > onTime || late < 0 {
		t.Errorf("%s at %s, due %s: %s late, want within %s", what, at.Format(time.RFC3339), due.Format(time.RFC3339), late, onTime)
	}
}

// expiresOnTime jumps the clock to just before GPR id's expiry, pokes a
// pass (which sets the timer), and checks the timer completed it on time.
func (h *harness) expiresOnTime(id string) {
	h.t.Helper()
	g := h.getGPR(id)
	due, ok := domain.End(g)
	if !ok {
		h.t.Fatalf("GPR %s has no end", id)
	}
	h.advance(due.Add(-2*time.Second).Sub(h.clock.Now()), id)
	done := h.status(id, v1alpha1.GPRComplete)
	lateness(h.t, "GPR "+id+" completed", done.Status.CompletionTimestamp, due)
}

// waitEvent waits for an Event about the object named regarding with the
// given reason whose note contains note.
func (h *harness) waitEvent(regarding, reason, note string) {
	h.t.Helper()
	h.eventually(func() error {
		var evs eventsv1.EventList
		if err := env.Client.List(h.ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == regarding && e.Reason == reason && strings.Contains(e.Note, note) {
				return nil
			}
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Name == regarding {
				seen = append(seen, e.Reason+": "+e.Note)
			}
		}
		return fmt.Errorf("no %s event on %s with %q; events on it: %q", reason, regarding, note, seen)
	})
}

// TestExpiryOnTimeWhileAnotherGPRCannotBeWritten: one GPR whose status
// the apiserver refuses on every pass (a persistent error) neither delays
// the start of a new GPR on an idle node nor the expiry of a provisioned
// one: both happen within a second. (Before, the pass returned the error,
// and controller-runtime's backoff replaced the expiry timer.)
func TestExpiryOnTimeWhileAnotherGPRCannotBeWritten(t *testing.T) {
	h := newRunningHarness(t)
	h.t4Node("n1")
	h.t4Node("n2")
	poison := h.poisonGPR()
	h.start()
	h.waitEvent(poison, "RefusalNotRecorded", "does not exist") // failing on every pass now

	ws := h.workspace("w")
	created := h.clock.Now().Truncate(time.Second)
	id := h.gpr("due", ws, exit("0d0h1m"))
	g := h.status(id, v1alpha1.GPRProvisioned)
	lateness(t, "GPR "+id+" provisioned on an idle node", g.Status.StartTimestamp, created)
	h.expiresOnTime(id)
}

// TestNodeClaimedTwiceDelaysNothing: a node in the status of two
// provisioned GPRs (never written by gpuspace; here by the test, as a
// mistaken manual edit would) is reported on both GPRs as a NodesHealthy
// condition and on the node as an Event, its binding is left alone, and
// a third GPR still expires on time.
func TestNodeClaimedTwiceDelaysNothing(t *testing.T) {
	h := newRunningHarness(t)
	h.t4Node("n1")
	h.t4Node("n2")
	h.t4Node("n3")
	h.start()
	a := h.gpr("a", h.workspace("wa"), exit("1d0h0m"))
	shared := h.status(a, v1alpha1.GPRProvisioned).Status.Nodes[0]
	b := h.gpr("b", h.workspace("wb"), exit("1d0h0m"))
	h.status(b, v1alpha1.GPRProvisioned)
	c := h.gpr("c", h.workspace("wc"), exit("0d0h1m"))
	h.status(c, v1alpha1.GPRProvisioned)
	h.nodeBound(shared, a)

	g := h.getGPR(b)
	g.Status.Nodes = []string{shared}
	if err := env.Client.Status().Update(h.ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a, b} {
		h.eventually(func() error {
			cond := meta.FindStatusCondition(h.getGPR(id).Status.Conditions, v1alpha1.GPRNodesHealthy)
			if cond == nil || cond.Reason != domain.ReasonNodeClaimedTwice || !strings.Contains(cond.Message, shared) {
				return fmt.Errorf("GPR %s NodesHealthy is %+v, want %s naming %s", id, cond, domain.ReasonNodeClaimedTwice, shared)
			}
			return nil
		})
	}
	h.waitEvent(shared, domain.ReasonNodeClaimedTwice, a+", "+b)
	if err := bound(h.getNode(shared), h.getGPR(a)); err != nil {
		t.Errorf("the claimed node's binding changed: %v", err)
	}
	h.expiresOnTime(c)
}

// TestEvictorStartsWhenProtectionEnds: an evicting GPR that arrives while
// its victim is inside its workspace's minimum runtime is estimated to
// start when the protection ends, and starts then, within a second,
// without any event to wake the pass.
func TestEvictorStartsWhenProtectionEnds(t *testing.T) {
	h := newRunningHarness(t)
	h.t4Node("n1")
	victimWS := h.workspace("victim")
	pol := &v1alpha1.WorkspacePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: victimWS, Labels: h.labels()},
		Spec:       v1alpha1.WorkspacePolicySpec{MinRuntimeBeforeEviction: "0d0h1m"},
	}
	if err := env.Client.Create(h.ctx, pol); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pol) })
	h.start()
	victim := h.gpr("victim", victimWS, priority(50), exit("1d0h0m"))
	started := h.status(victim, v1alpha1.GPRProvisioned).Status.StartTimestamp.Time
	protectedUntil := started.Add(time.Minute)

	h.clock.SetTime(protectedUntil.Add(-5 * time.Second))
	evictor := h.gpr("evictor", h.workspace("evictor"), priority(250), evicting)
	h.eventually(func() error {
		g := h.getGPR(evictor)
		if g.Status.EstimatedStartTime == nil {
			return fmt.Errorf("GPR %s has no stored estimate yet (%s)", evictor, g.Status.ProvisioningStatus)
		}
		return nil
	})
	if est := h.getGPR(evictor).Status.EstimatedStartTime; est.Sub(protectedUntil).Abs() > time.Second {
		t.Errorf("evictor estimated to start at %s, want when the victim's protection ends, %s", est.Format(time.RFC3339), protectedUntil.Format(time.RFC3339))
	}
	g := h.status(evictor, v1alpha1.GPRProvisioned)
	lateness(t, "evicting GPR "+evictor+" provisioned", g.Status.StartTimestamp, protectedUntil)
}

// TestStrayPodSweptAfterRestart: a GPU pod of another workspace on a node
// already bound (as after a crash between the binding's Patch and its
// eviction: labels and taint match, nothing will change them) is deleted
// by the first pass after the controllers start, and the deletion is
// reported on the pod and on the GPR holding the node.
func TestStrayPodSweptAfterRestart(t *testing.T) {
	h := newHarness(t)
	stop := h.start()
	node := h.t4Node("n1")
	id := h.gpr("g", h.workspace("w"), exit("1d0h0m"))
	h.status(id, v1alpha1.GPRProvisioned)
	h.nodeBound(node, id)
	stop()

	ns := h.name("other")
	if _, err := env.Kube.CoreV1().Namespaces().Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	stray := gpuPod(t, h, ns, "stray", node, nil)
	h.start()
	h.podLeaves(ns, stray, fmt.Sprintf("GPU pod of no workspace on node %s, bound to %s before the restart", node, id))
	h.waitEvent(id, "StrayGPUPodEvicted", ns+"/"+stray)
	h.waitEvent(stray, "StrayGPUPodEvicted", node)
}

// gpuPod creates a pod asking for one GPU, placed on node, and returns its
// name.
func gpuPod(t *testing.T, h *harness, ns, name, node string, labels map[string]string) string {
	t.Helper()
	c := corev1.Container{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{v1alpha1.ResourceGPU: *resource.NewQuantity(1, resource.DecimalSI)}}}
	p, err := env.Kube.CoreV1().Pods(ns).Create(h.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Name
}

// TestLikelyAndLatestStart: a workspace whose last two GPRs held their
// node for 10 and 20 minutes of the hour they asked for holds the only
// node now; the GPR queued behind it is stored with its likely start 15
// minutes after that start (the mean of the two), its latest start at
// the running GPR's expiry, and the first estimate kept beside them.
func TestLikelyAndLatestStart(t *testing.T) {
	h := newHarness(t)
	h.t4Node("n1")
	early := h.workspace("early")
	for i, held := range []time.Duration{10 * time.Minute, 20 * time.Minute} {
		id := h.gpr(fmt.Sprintf("done%d", i), early, exit("0d1h0m"))
		g := h.getGPR(id)
		start := h.clock.Now().Add(-time.Duration(3-i) * time.Hour)
		domain.Start(g, []string{"gone"}, start)
		domain.Release(g, v1alpha1.ReasonEarlyReleased, start.Add(held))
		if err := env.Client.Status().Update(h.ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	running := h.gpr("running", early, exit("0d1h0m"))
	started := h.status(running, v1alpha1.GPRProvisioned).Status.StartTimestamp.Time
	next := h.gpr("next", h.workspace("next"), exit("0d1h0m"))
	h.eventually(func() error {
		g := h.getGPR(next)
		st := g.Status
		if st.EstimatedStartTime == nil || st.LatestStartTime == nil || st.FirstEstimatedStartTime == nil {
			return fmt.Errorf("GPR %s stored estimates: likely %v, latest %v, first %v", next, st.EstimatedStartTime, st.LatestStartTime, st.FirstEstimatedStartTime)
		}
		if want := started.Add(15 * time.Minute); !st.EstimatedStartTime.Time.Equal(want) {
			return fmt.Errorf("likely start %s, want %s (the workspace's last two holds, 10 and 20 min)", st.EstimatedStartTime.Time, want)
		}
		if want := started.Add(time.Hour); !st.LatestStartTime.Time.Equal(want) {
			return fmt.Errorf("latest start %s, want the running GPR's expiry %s", st.LatestStartTime.Time, want)
		}
		if st.LatestWaitTime == "" || st.EstimatedWaitTime == "" {
			return fmt.Errorf("waits %q (likely) and %q (latest), want both", st.EstimatedWaitTime, st.LatestWaitTime)
		}
		return nil
	})

	// When it starts, its error against the first estimate is recorded:
	// the histogram of its cluster and shape counts one more.
	first := h.getGPR(next).Status.FirstEstimatedStartTime.Time
	hist := metrics.StartEstimateError.WithLabelValues(h.getGPR(next).Spec.ClusterName, "any") // no shape asked
	before := histogramCount(t, hist)
	h.setSpec(running, func(s *v1alpha1.GPUProvisionRequestSpec) { s.EarlyRelease = true })
	g := h.status(next, v1alpha1.GPRProvisioned)
	if g.Status.FirstEstimatedStartTime == nil || !g.Status.FirstEstimatedStartTime.Time.Equal(first) {
		t.Errorf("first estimate after start %v, want it kept: %s", g.Status.FirstEstimatedStartTime, first)
	}
	// The pass observes it once the start write has returned: wait for it.
	h.eventually(func() error {
		if got := histogramCount(t, hist); got != before+1 {
			return fmt.Errorf("gpuspace_gpr_start_estimate_error_seconds count %d after the start, want %d", got, before+1)
		}
		return nil
	})
}

// histogramCount is how many observations o has seen.
func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
