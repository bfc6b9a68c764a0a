package gpr_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
)

// setStatus writes a GPR's status as a controller would have before it
// crashed.
func (h *harness) setStatus(id string, f func(*v1alpha1.GPUProvisionRequestStatus)) {
	h.t.Helper()
	g := h.getGPR(id)
	f(&g.Status)
	if err := env.Client.Status().Update(h.ctx, g); err != nil {
		h.t.Fatalf("set status of %s: %v", id, err)
	}
}

// setBinding labels and taints a node as bound to ws/id, or clears it.
func (h *harness) setBinding(node, ws, id string) {
	h.t.Helper()
	n := h.getNode(node)
	orig := n.DeepCopy()
	delete(n.Labels, v1alpha1.LabelWorkspace)
	delete(n.Labels, v1alpha1.LabelGPR)
	n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == v1alpha1.TaintWorkspace })
	if ws != "" {
		n.Labels[v1alpha1.LabelWorkspace], n.Labels[v1alpha1.LabelGPR] = ws, id
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: v1alpha1.TaintWorkspace, Value: ws, Effect: corev1.TaintEffectNoSchedule})
	}
	if err := env.Client.Patch(h.ctx, n, client.MergeFrom(orig)); err != nil {
		h.t.Fatalf("set binding of %s: %v", node, err)
	}
}

// TestRestartConverges: the controller stops between binding steps; a new
// instance heals every half-done step from GPR status, releases what fell
// due while it was down, and starts what that freed.
func TestRestartConverges(t *testing.T) {
	h := newHarness(t)
	a, b, c := h.t4Node("a"), h.t4Node("b"), h.t4Node("c")
	w1, w2, w3 := h.workspace("w1"), h.workspace("w2"), h.workspace("w3")

	stop := h.start()
	g1 := h.gpr("g1", w1, exit("0d1h0m"))
	if got := h.status(g1, v1alpha1.GPRProvisioned).Status.Nodes; !slices.Equal(got, []string{a}) {
		t.Fatalf("g1 nodes %v, want [%s]", got, a)
	}
	h.nodeBound(a, g1)
	stop()

	// What a crash can leave behind:
	// g1's status was written but its node not labelled yet;
	h.setBinding(a, "", "")
	// g0 was released but its node not unlabelled yet;
	g0 := h.gpr("g0", w2)
	h.setStatus(g0, func(s *v1alpha1.GPUProvisionRequestStatus) {
		s.ProvisioningStatus, s.InternalState, s.Nodes = v1alpha1.GPRComplete, v1alpha1.StateReleased, []string{b}
		s.StartTimestamp = &metav1.Time{Time: h.clock.Now().Add(-time.Hour)}
		s.CompletionTimestamp = &metav1.Time{Time: h.clock.Now()}
	})
	h.setBinding(b, w2, g0)
	// g2 expired while no controller ran; g3 of the same workspace waits.
	g2 := h.gpr("g2", w3, exit("0d0h5m"))
	h.setStatus(g2, func(s *v1alpha1.GPUProvisionRequestStatus) {
		s.ProvisioningStatus, s.InternalState, s.Nodes = v1alpha1.GPRProvisioned, v1alpha1.StateProvisioned, []string{c}
		s.StartTimestamp = &metav1.Time{Time: h.clock.Now().Add(-20 * time.Minute)}
		s.NumGpusAllocated = 1
	})
	h.setBinding(c, w3, g2)
	g3 := h.gpr("g3", w3, exit("0d1h0m"))

	restart := h.clock.Now()
	h.start()
	h.nodeBound(a, g1)
	if got := h.getGPR(g1); got.Status.ProvisioningStatus != v1alpha1.GPRProvisioned || !slices.Equal(got.Status.Nodes, []string{a}) {
		t.Errorf("g1 after restart: %+v", got.Status)
	}
	done := h.status(g2, v1alpha1.GPRComplete)
	if ct := done.Status.CompletionTimestamp; ct == nil || ct.Time.Before(restart) {
		t.Errorf("g2 completionTimestamp %v, want the restart time %v", ct, restart)
	}
	started := h.status(g3, v1alpha1.GPRProvisioned)
	if len(started.Status.Nodes) != 1 || (started.Status.Nodes[0] != b && started.Status.Nodes[0] != c) {
		t.Fatalf("g3 nodes %v, want one of %s, %s", started.Status.Nodes, b, c)
	}
	free := b
	if started.Status.Nodes[0] == b {
		free = c
	}
	h.nodeBound(started.Status.Nodes[0], g3)
	h.nodeBound(free, "")
}

// TestLeaderElection: two instances with leader election; only the leader
// writes, and when it stops the other takes over.
func TestLeaderElection(t *testing.T) {
	h := newHarness(t)
	h.t4Node("n1")
	h.t4Node("n2")
	mo := controller.ManagerOptions{
		LeaderElection: true, LeaderElectionNamespace: metav1.NamespaceDefault, LeaderElectionID: h.name("lease"),
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
	}
	names := []string{h.name("replica-a"), h.name("replica-b")}
	mgrs := make([]manager.Manager, 2)
	stops := make([]func(), 2)
	for i, n := range names {
		mgrs[i], stops[i] = h.startManager(n, mo)
	}
	leader := -1
	select {
	case <-mgrs[0].Elected():
		leader = 0
	case <-mgrs[1].Elected():
		leader = 1
	case <-time.After(30 * time.Second):
		t.Fatal("no replica elected")
	}
	other := 1 - leader

	g1 := h.gpr("g1", h.workspace("w1"), exit("1d0h0m"))
	h.status(g1, v1alpha1.GPRProvisioned)
	if got := statusWriters(h.getGPR(g1)); !slices.Equal(got, []string{names[leader]}) {
		t.Errorf("status of g1 written by %v, want only the leader %s", got, names[leader])
	}
	select {
	case <-mgrs[other].Elected():
		t.Fatal("both replicas elected")
	default:
	}

	stops[leader]()
	select {
	case <-mgrs[other].Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("the other replica did not take over")
	}
	g2 := h.gpr("g2", h.workspace("w2"), exit("1d0h0m"))
	h.status(g2, v1alpha1.GPRProvisioned)
	if got := statusWriters(h.getGPR(g2)); !slices.Equal(got, []string{names[other]}) {
		t.Errorf("status of g2 written by %v, want only the new leader %s", got, names[other])
	}
}

// statusWriters lists the field managers of a GPR's status.
func statusWriters(g *v1alpha1.GPUProvisionRequest) []string {
	var out []string
	for _, m := range g.ManagedFields {
		if m.Subresource == "status" && !slices.Contains(out, m.Manager) {
			out = append(out, m.Manager)
		}
	}
	slices.Sort(out)
	return out
}

// TestMetricsEndpoint: the manager's metrics server serves gpuspace's
// metrics.
func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h.startManager(h.name("metrics"), controller.ManagerOptions{MetricsBindAddress: addr})
	h.t4Node("n1")
	ws := h.workspace("w")
	first := h.gpr("first", ws, exit("1d0h0m"))
	h.gpr("second", ws)
	h.status(first, v1alpha1.GPRProvisioned)

	want := []string{
		fmt.Sprintf("gpuspace_gpr_queue_length{workspace=%q} 1", ws),
		"gpuspace_provisioned_gpus ",
		"gpuspace_gpr_wait_seconds_bucket",
		"gpuspace_reconcile_errors_total",
	}
	h.eventually(func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				return fmt.Errorf("/metrics lacks %q", w)
			}
		}
		return nil
	})
}
