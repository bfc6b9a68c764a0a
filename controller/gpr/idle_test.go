package gpr_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// idleTimeout gives a GPR an idleTimeOutDuration with enforceIdleTimeOut.
func idleTimeout(d string) func(*v1alpha1.GPUProvisionRequestSpec) {
	return func(s *v1alpha1.GPUProvisionRequestSpec) { s.IdleTimeOutDuration, s.EnforceIdleTimeOut = d, true }
}

// setIdleSince publishes a simulated node's idle-since (zero: busy), as
// its device plugin would.
func (h *harness) setIdleSince(node string, since time.Time) {
	h.t.Helper()
	if err := env.Nodes.SetIdleSince(h.ctx, node, since); err != nil {
		h.t.Fatalf("set idle since of %s: %v", node, err)
	}
}

// stays checks for a while that GPR id is still Provisioned: the passes
// the last poke started did not release it.
func (h *harness) stays(id string) {
	h.t.Helper()
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if g := h.getGPR(id); g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
			h.t.Fatalf("GPR %s is %s (%s) at %v, want still Provisioned", id, g.Status.ProvisioningStatus, g.Status.Reason, h.clock.Now())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// releasedIdle waits until GPR id is Complete with reason Idle, completed
// at want.
func (h *harness) releasedIdle(id string, want time.Time) *v1alpha1.GPUProvisionRequest {
	h.t.Helper()
	g := h.status(id, v1alpha1.GPRComplete)
	if g.Status.Reason != v1alpha1.ReasonIdle {
		h.t.Errorf("GPR %s reason %q, want %q", id, g.Status.Reason, v1alpha1.ReasonIdle)
	}
	if ct := g.Status.CompletionTimestamp; ct == nil || !ct.Time.Equal(want) {
		h.t.Errorf("GPR %s completed at %v, want %v", id, ct, want)
	}
	return g
}

// idleGPR provisions an idle-enforced GPR (idle timeout 10m, exit one day)
// on a new node and returns the node, the GPR and its start.
func (h *harness) idleGPR() (node, id string, start time.Time) {
	h.t.Helper()
	node = h.t4Node("n1")
	id = h.gpr("g", h.workspace("w"), exit("1d0h0m"), idleTimeout("0d0h10m"))
	g := h.status(id, v1alpha1.GPRProvisioned)
	h.nodeBound(node, id)
	return node, id, g.Status.StartTimestamp.Time
}

// TestIdleRelease: a GPR whose node was idle since before it started is
// released with reason Idle at start + idleTimeOutDuration, not a second
// before; its node is unbound, the workspace's pods on it are deleted and
// the Event says why.
func TestIdleRelease(t *testing.T) {
	h := newHarness(t)
	h.start()
	node, id, start := h.idleGPR()
	h.setIdleSince(node, start.Add(-time.Hour))

	ns := h.name("w-ns")
	h.eventually(func() error { return env.Client.Get(h.ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "notebook", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:    node,
			Containers:  []corev1.Container{{Name: "c", Image: "busybox"}},
			Tolerations: []corev1.Toleration{{Key: v1alpha1.TaintWorkspace, Value: h.getGPR(id).Spec.Workspace, Effect: corev1.TaintEffectNoSchedule}},
		},
	}
	if err := env.Client.Create(h.ctx, pod); err != nil {
		t.Fatalf("create pod: %v", err)
	}

	h.clock.SetTime(start)
	h.advance(10*time.Minute-time.Second, id)
	h.stays(id)
	h.advance(time.Second, id)
	h.releasedIdle(id, start.Add(10*time.Minute))
	h.nodeBound(node, "")
	h.eventually(func() error {
		err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		if err == nil {
			return fmt.Errorf("pod %s still exists", pod.Name)
		}
		return client.IgnoreNotFound(err)
	})
	h.eventually(func() error {
		evs, err := env.Kube.EventsV1().Events(metav1.NamespaceDefault).List(h.ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == id && e.Reason == "Released" && strings.Contains(e.Note, "(Idle)") {
				return nil
			}
		}
		return fmt.Errorf("no Released (Idle) event for %s", id)
	})
}

// TestIdleBusySpellResets: a busy spell in the middle restarts the count
// from the moment the node turned idle again.
func TestIdleBusySpellResets(t *testing.T) {
	h := newHarness(t)
	h.start()
	node, id, start := h.idleGPR()
	h.clock.SetTime(start)
	h.setIdleSince(node, start)

	h.advance(9*time.Minute, id)
	h.setIdleSince(node, time.Time{}) // busy
	h.advance(2*time.Minute, id)      // 11m after start, busy
	h.stays(id)
	idleAgain := start.Add(12 * time.Minute)
	h.clock.SetTime(idleAgain)
	h.setIdleSince(node, idleAgain)
	h.advance(10*time.Minute-time.Second, id)
	h.stays(id)
	h.advance(time.Second, id)
	h.releasedIdle(id, idleAgain.Add(10*time.Minute))
}

// TestIdleRestart: a controller stopped in the middle of an idle spell
// and started again releases at the same moment; idleness is counted from
// the published timestamps, not from when the controller saw it.
func TestIdleRestart(t *testing.T) {
	h := newHarness(t)
	stop := h.start()
	node, id, start := h.idleGPR()
	h.clock.SetTime(start)
	h.setIdleSince(node, start.Add(2*time.Minute))
	h.advance(5*time.Minute, id)
	h.stays(id)
	stop()

	h.clock.SetTime(start.Add(12*time.Minute - time.Second))
	h.start()
	h.stays(id)
	h.advance(time.Second, id)
	h.releasedIdle(id, start.Add(12*time.Minute))
}

// TestIdleNotEnforced: with enforceIdleTimeOut false, or no
// idleTimeOutDuration, or on a node that does not publish idleness, an
// idle GPR is never released for it.
func TestIdleNotEnforced(t *testing.T) {
	h := newHarness(t)
	h.start()
	cases := map[string]func(*v1alpha1.GPUProvisionRequestSpec){
		"off": func(s *v1alpha1.GPUProvisionRequestSpec) {
			s.IdleTimeOutDuration, s.EnforceIdleTimeOut = "0d0h10m", false
		},
		"no-timeout": func(s *v1alpha1.GPUProvisionRequestSpec) {
			s.IdleTimeOutDuration, s.EnforceIdleTimeOut = "", true
		},
		"unpublished": idleTimeout("0d0h10m"),
	}
	var ids []string
	for name, opt := range cases {
		node := h.t4Node(name)
		id := h.gpr(name, h.workspace(name), exit("1d0h0m"), opt)
		g := h.status(id, v1alpha1.GPRProvisioned)
		if name == "unpublished" {
			n := h.getNode(node)
			orig := n.DeepCopy()
			delete(n.Annotations, v1alpha1.AnnotationGPUsIdleSince)
			if err := env.Client.Patch(h.ctx, n, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
		} else {
			h.setIdleSince(node, g.Status.StartTimestamp.Add(-time.Hour))
		}
		ids = append(ids, id)
	}
	h.advance(3*time.Hour, ids[0])
	for _, id := range ids {
		h.stays(id)
	}
}

// TestIdlePolicyEnforces: a workspace policy with enforceIdleTimeOut
// releases an idle GPR that did not ask for enforcement itself.
func TestIdlePolicyEnforces(t *testing.T) {
	h := newHarness(t)
	h.start()
	node := h.t4Node("n1")
	ws := h.workspace("w")
	id := h.gpr("g", ws, exit("1d0h0m"), func(s *v1alpha1.GPUProvisionRequestSpec) { s.IdleTimeOutDuration = "0d0h10m" })
	start := h.status(id, v1alpha1.GPRProvisioned).Status.StartTimestamp.Time
	h.clock.SetTime(start)
	h.setIdleSince(node, start)
	h.advance(10*time.Minute, id)
	h.stays(id)

	// The clock moves first: the policy's own event starts a pass, which
	// must see the same time as the poke's.
	h.clock.SetTime(start.Add(10*time.Minute + time.Second))
	policy := &v1alpha1.WorkspacePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ws, Labels: h.labels()},
		Spec:       v1alpha1.WorkspacePolicySpec{EnforceIdleTimeOut: true},
	}
	if err := env.Client.Create(h.ctx, policy); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(h.ctx, policy) })
	h.advance(0, id)
	h.releasedIdle(id, start.Add(10*time.Minute+time.Second))
}

// TestIdleAllNodes: a GPR on two nodes is released only when both are
// idle, counted from the later of their idle-since times.
func TestIdleAllNodes(t *testing.T) {
	h := newHarness(t)
	h.start()
	a, b := h.t4Node("a"), h.t4Node("b")
	id := h.gpr("g", h.workspace("w"), exit("1d0h0m"), idleTimeout("0d0h10m"), nodeCount(2))
	start := h.status(id, v1alpha1.GPRProvisioned).Status.StartTimestamp.Time
	h.clock.SetTime(start)
	h.setIdleSince(a, start.Add(-time.Hour))
	h.setIdleSince(b, time.Time{}) // busy
	h.advance(30*time.Minute, id)
	h.stays(id)
	bIdle := h.clock.Now()
	h.setIdleSince(b, bIdle)
	h.advance(10*time.Minute-time.Second, id)
	h.stays(id)
	h.advance(time.Second, id)
	h.releasedIdle(id, bIdle.Add(10*time.Minute))
	h.nodeBound(a, "")
	h.nodeBound(b, "")
}
