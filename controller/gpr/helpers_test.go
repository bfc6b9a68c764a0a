package gpr_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// labelCase marks every object a test creates, for watches and clean-up.
const labelCase = "test.gpuspace.io/case"

var caseSeq atomic.Int32

// harness is one test's world: its own cluster name (so the planner never
// mixes its nodes with another test's), name prefix and fake clock.
type harness struct {
	t       *testing.T
	ctx     context.Context
	prefix  string
	cluster string
	clock   testClock
	kicks   int
	// prices are the controllers' GPU prices (set before start).
	prices domain.Prices
}

// testClock is the controllers' clock in a test: a fake one frozen until
// set (newHarness), or one that runs with real time from where it was set
// (runningClock), for tests about what happens on time by itself.
type testClock interface {
	clock.PassiveClock
	SetTime(time.Time)
}

// runningClock runs at real time's pace from an offset SetTime chooses:
// the controllers' timers fire by themselves, and a test can still jump
// to just before a deadline.
type runningClock struct{ offset atomic.Int64 }

func (c *runningClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *runningClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *runningClock) SetTime(t time.Time)             { c.offset.Store(int64(time.Until(t))) }

// newRunningHarness is newHarness on a runningClock.
func newRunningHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.clock = &runningClock{}
	return h
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := fmt.Sprintf("t%d", caseSeq.Add(1))
	h := &harness{
		t: t, ctx: ctx, prefix: p, cluster: p + "-cluster",
		clock: clocktesting.NewFakePassiveClock(time.Now().Truncate(time.Second)),
	}
	t.Cleanup(h.cleanup)
	return h
}

// startManager runs a manager with gpuspace's controllers on the fake
// clock until the returned stop function is called (or the test ends).
func (h *harness) startManager(name string, mo controller.ManagerOptions) (mgr manager.Manager, stop func()) {
	h.t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.UserAgent = name
	mgr, err := controller.NewManager(cfg, mo)
	if err != nil {
		h.t.Fatalf("NewManager: %v", err)
	}
	if err := controller.Setup(mgr, controller.Options{Clock: h.clock, SkipNameValidation: true, GPUPrices: h.prices}); err != nil {
		h.t.Fatalf("Setup: %v", err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("manager %s: %v", name, err)
		}
	}
	h.t.Cleanup(stop)
	return mgr, stop
}

// start runs the controllers without leader election.
func (h *harness) start() (stop func()) {
	_, stop = h.startManager("gpuspace-"+h.prefix, controller.ManagerOptions{})
	return stop
}

func (h *harness) name(s string) string { return h.prefix + "-" + s }

func (h *harness) labels() map[string]string { return map[string]string{labelCase: h.prefix} }

// t4Node adds a Ready node with 4 T4 GPUs in the test's cluster.
func (h *harness) t4Node(name string) string {
	return h.addNode(testenv.GPUNode{Name: h.name(name), InstanceType: "g4dn.12xlarge", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 4})
}

func (h *harness) addNode(n testenv.GPUNode) string {
	h.t.Helper()
	n.Cluster = h.cluster
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[labelCase] = h.prefix
	if _, err := env.AddGPUNode(h.ctx, n); err != nil {
		h.t.Fatalf("add node: %v", err)
	}
	return n.Name
}

func (h *harness) workspace(name string, namespaces ...string) string {
	h.t.Helper()
	ws := &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: h.name(name), Labels: h.labels()},
		Spec:       v1alpha1.WorkspaceSpec{Username: "user-" + name, Clusters: []string{h.cluster}},
	}
	if len(namespaces) == 0 {
		namespaces = []string{"ns"}
	}
	for _, ns := range namespaces {
		ws.Spec.Namespaces = append(ws.Spec.Namespaces, v1alpha1.WorkspaceNamespace{Namespace: h.name(name + "-" + ns)})
	}
	if err := env.Client.Create(h.ctx, ws); err != nil {
		h.t.Fatalf("create workspace: %v", err)
	}
	return ws.Name
}

// gpr creates a GPR for one node with one GPU in the test's cluster, for
// one minute, at the default priority; opts change that. It must be called
// from the test goroutine.
func (h *harness) gpr(name, ws string, opts ...func(*v1alpha1.GPUProvisionRequestSpec)) string {
	h.t.Helper()
	g := h.gprObject(name, ws, opts...)
	if err := env.Client.Create(h.ctx, g); err != nil {
		h.t.Fatalf("create GPR: %v", err)
	}
	return g.Name
}

// gprObject returns the GPR h.gpr would create, without creating it.
func (h *harness) gprObject(name, ws string, opts ...func(*v1alpha1.GPUProvisionRequestSpec)) *v1alpha1.GPUProvisionRequest {
	g := &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "gpr-" + h.name(name), Labels: h.labels()},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: name, Workspace: ws, ClusterName: h.cluster,
			NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: v1alpha1.DefaultPriority, ExitDuration: "0d0h1m",
		},
	}
	for _, o := range opts {
		o(&g.Spec)
	}
	return g
}

// oneDayGPR provisions a one-day GPR of a new workspace on a new node.
func (h *harness) oneDayGPR() (node, id string) {
	h.t.Helper()
	node = h.t4Node("n1")
	id = h.gpr("g", h.workspace("w"), exit("1d0h0m"))
	h.status(id, v1alpha1.GPRProvisioned)
	return node, id
}

func priority(p int32) func(*v1alpha1.GPUProvisionRequestSpec) {
	return func(s *v1alpha1.GPUProvisionRequestSpec) { s.Priority = p }
}

func exit(d string) func(*v1alpha1.GPUProvisionRequestSpec) {
	return func(s *v1alpha1.GPUProvisionRequestSpec) { s.ExitDuration = d }
}

func nodeCount(n int32) func(*v1alpha1.GPUProvisionRequestSpec) {
	return func(s *v1alpha1.GPUProvisionRequestSpec) { s.NumberOfGPUNodes = n }
}

func (h *harness) getGPR(name string) *v1alpha1.GPUProvisionRequest {
	h.t.Helper()
	var g v1alpha1.GPUProvisionRequest
	if err := env.Client.Get(h.ctx, client.ObjectKey{Name: name}, &g); err != nil {
		h.t.Fatalf("get GPR %s: %v", name, err)
	}
	return &g
}

func (h *harness) getNode(name string) *corev1.Node {
	h.t.Helper()
	var n corev1.Node
	if err := env.Client.Get(h.ctx, client.ObjectKey{Name: name}, &n); err != nil {
		h.t.Fatalf("get node %s: %v", name, err)
	}
	return &n
}

// eventually polls check until it returns nil, failing the test with the
// last error after a generous deadline. It waits for the controllers to
// converge; it does not assert how fast they do.
func (h *harness) eventually(check func() error) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || h.ctx.Err() != nil {
			h.t.Fatalf("not converged: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// status waits until GPR name is in phase want and returns it.
func (h *harness) status(name string, want v1alpha1.ProvisioningStatus) *v1alpha1.GPUProvisionRequest {
	h.t.Helper()
	var g *v1alpha1.GPUProvisionRequest
	h.eventually(func() error {
		g = h.getGPR(name)
		if g.Status.ProvisioningStatus != want {
			return fmt.Errorf("GPR %s is %q, want %q (reason %q)", name, g.Status.ProvisioningStatus, want, g.Status.FailureReason)
		}
		return nil
	})
	return g
}

// bound checks that node carries the binding of GPR g (or none for g nil).
func bound(n *corev1.Node, g *v1alpha1.GPUProvisionRequest) error {
	ws, id := "", ""
	if g != nil {
		ws, id = g.Spec.Workspace, g.Name
	}
	if n.Labels[v1alpha1.LabelWorkspace] != ws || n.Labels[v1alpha1.LabelGPR] != id {
		return fmt.Errorf("node %s labels workspace=%q gpr=%q, want %q %q", n.Name,
			n.Labels[v1alpha1.LabelWorkspace], n.Labels[v1alpha1.LabelGPR], ws, id)
	}
	var taints []corev1.Taint
	for _, t := range n.Spec.Taints {
		if t.Key == v1alpha1.TaintWorkspace {
			taints = append(taints, t)
		}
	}
	want := []corev1.Taint{{Key: v1alpha1.TaintWorkspace, Value: ws, Effect: corev1.TaintEffectNoSchedule}}
	if g == nil {
		want = nil
	}
	if !slices.EqualFunc(taints, want, func(a, b corev1.Taint) bool { return a.MatchTaint(&b) && a.Value == b.Value }) {
		return fmt.Errorf("node %s workspace taints %v, want %v", n.Name, taints, want)
	}
	return nil
}

// nodeBound waits until node carries exactly the binding of GPR id ("" for
// none).
func (h *harness) nodeBound(node, id string) {
	h.t.Helper()
	h.eventually(func() error {
		var g *v1alpha1.GPUProvisionRequest
		if id != "" {
			g = h.getGPR(id)
		}
		return bound(h.getNode(node), g)
	})
}

// advance moves the fake clock and pokes a GPR so that a plan pass runs
// now rather than at the real-time requeue.
func (h *harness) advance(d time.Duration, poke string) {
	h.t.Helper()
	h.clock.SetTime(h.clock.Now().Add(d))
	h.kicks++
	g := h.getGPR(poke)
	orig := g.DeepCopy()
	if g.Annotations == nil {
		g.Annotations = map[string]string{}
	}
	g.Annotations["test.gpuspace.io/kick"] = fmt.Sprint(h.kicks)
	if err := env.Client.Patch(h.ctx, g, client.MergeFrom(orig)); err != nil {
		h.t.Fatalf("poke GPR %s: %v", poke, err)
	}
}

// cleanup removes what the test created, finalizers included; namespaces
// stay, as they would in a real cluster.
func (h *harness) cleanup() {
	ctx := context.Background()
	sel := client.MatchingLabels(h.labels())
	var gprs v1alpha1.GPUProvisionRequestList
	var wss v1alpha1.WorkspaceList
	var nodes corev1.NodeList
	errs := []error{
		env.Client.DeleteAllOf(ctx, &v1alpha1.GPUProvisionRequest{}, sel),
		env.Client.List(ctx, &wss, sel),
		env.Client.DeleteAllOf(ctx, &corev1.Node{}, sel),
		env.Client.List(ctx, &gprs, sel),
		env.Client.List(ctx, &nodes, sel),
	}
	for i := range wss.Items {
		ws := &wss.Items[i]
		orig := ws.DeepCopy()
		ws.Finalizers = nil
		if err := env.Client.Patch(ctx, ws, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
		if err := env.Client.Delete(ctx, ws); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		h.t.Errorf("clean up: %v", err)
	}
}

// podLeaves waits until pod ns/name is gone or being deleted (graceful: no
// kubelet finishes it here); why says what the pod is, for the failure.
func (h *harness) podLeaves(ns, name, why string) {
	h.t.Helper()
	h.eventually(func() error {
		p, err := env.Kube.CoreV1().Pods(ns).Get(h.ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		case p.DeletionTimestamp != nil:
			return nil
		}
		return fmt.Errorf("%s: pod %s/%s still there", why, ns, name)
	})
}
