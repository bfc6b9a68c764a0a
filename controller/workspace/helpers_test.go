// The tests of package workspace_test drive the Workspace controller,
// with the rest of gpuspace's controllers (controller.Setup) beside it,
// on a real etcd and kube-apiserver.
package workspace_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// env is the control plane every test of the package shares.
var env *testenv.Env

// TestMain starts one control plane for the package; controller logs are
// dropped.
func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	testenv.Main(m, &env)
}

// world is one test's share of the control plane: running controllers, a
// name prefix and a cluster of its own, so that no test sees another's
// workspaces, nodes or GPRs.
type world struct {
	prefix, cluster string
	ctx             context.Context
	t               *testing.T
}

// caseLabel marks every object a test creates, for clean-up.
const caseLabel = "test.gpuspace.io/workspace-case"

// worlds numbers the tests' worlds, for their name prefixes.
var worlds atomic.Int32

// newWorld starts gpuspace's controllers for t; they stop, and what t
// created is removed, when t ends.
func newWorld(t *testing.T) *world {
	t.Helper()
	prefix := fmt.Sprintf("w%d", worlds.Add(1))
	w := &world{t: t, ctx: t.Context(), prefix: prefix, cluster: prefix + "-cluster"}
	mgr, err := controller.NewManager(env.Config, controller.ManagerOptions{})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	if err := controller.Setup(mgr, controller.Options{SkipNameValidation: true}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("controllers: %v", err)
		}
		w.removeAll()
	})
	return w
}

func (w *world) name(s string) string { return w.prefix + "-" + s }

func (w *world) labels() map[string]string { return map[string]string{caseLabel: w.prefix} }

// workspace creates workspace name in the world's cluster with a
// namespace name-ns for each of nss.
func (w *world) workspace(name string, nss ...string) string {
	w.t.Helper()
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: w.name(name), Labels: w.labels()}}
	ws.Spec.Username = "user-" + name
	ws.Spec.Clusters = []string{w.cluster}
	for _, ns := range nss {
		ws.Spec.Namespaces = append(ws.Spec.Namespaces, v1alpha1.WorkspaceNamespace{Namespace: w.name(name + "-" + ns)})
	}
	if err := env.Client.Create(w.ctx, ws); err != nil {
		w.t.Fatalf("create workspace %s: %v", ws.Name, err)
	}
	return ws.Name
}

// node adds a Ready node with 4 T4 GPUs to the world's cluster.
func (w *world) node(name string) string {
	w.t.Helper()
	n := testenv.GPUNode{
		Name: w.name(name), Cluster: w.cluster, Labels: w.labels(),
		InstanceType: "g4dn.12xlarge", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 4,
	}
	if _, err := env.AddGPUNode(w.ctx, n); err != nil {
		w.t.Fatalf("add node %s: %v", n.Name, err)
	}
	return n.Name
}

// oneDayGPR asks for one GPU on one node of the world's cluster for a day.
func (w *world) oneDayGPR(name, ws string) string {
	w.t.Helper()
	g := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: "gpr-" + w.name(name), Labels: w.labels()}}
	g.Spec = v1alpha1.GPUProvisionRequestSpec{
		GPRName: name, Workspace: ws, ClusterName: w.cluster, ExitDuration: "1d0h0m",
		NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: v1alpha1.DefaultPriority,
	}
	if err := env.Client.Create(w.ctx, g); err != nil {
		w.t.Fatalf("create GPR %s: %v", g.Name, err)
	}
	return g.Name
}

// eventually polls check until it returns nil and fails the test with its
// last error after a generous deadline: it waits for the controllers to
// converge, it does not time them.
func (w *world) eventually(check func() error) {
	w.t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(w.ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = check()
		return last == nil, nil
	})
	if err != nil {
		w.t.Fatalf("not converged: %v", errors.Join(last, err))
	}
}

// boundTo checks that node carries the binding of GPR id of workspace ws
// (labels and the workspace taint), or no binding at all for ws "".
func (w *world) boundTo(node, ws, id string) error {
	var n corev1.Node
	if err := env.Client.Get(w.ctx, client.ObjectKey{Name: node}, &n); err != nil {
		return err
	}
	if got, gotID := n.Labels[v1alpha1.LabelWorkspace], n.Labels[v1alpha1.LabelGPR]; got != ws || gotID != id {
		return fmt.Errorf("node %s labelled workspace %q GPR %q, want %q %q", node, got, gotID, ws, id)
	}
	var taints []string
	for _, t := range n.Spec.Taints {
		if t.Key == v1alpha1.TaintWorkspace {
			taints = append(taints, string(t.Effect)+"="+t.Value)
		}
	}
	want := []string{string(corev1.TaintEffectNoSchedule) + "=" + ws}
	if ws == "" {
		want = nil
	}
	if fmt.Sprint(taints) != fmt.Sprint(want) {
		return fmt.Errorf("node %s workspace taints %v, want %v", node, taints, want)
	}
	return nil
}

// removeAll deletes what the world created once its controllers have
// stopped: GPRs and nodes, and workspaces without their finalizer.
// Namespaces stay, as they would in a real cluster.
func (w *world) removeAll() {
	ctx, sel := context.Background(), client.MatchingLabels(w.labels())
	errs := []error{
		env.Client.DeleteAllOf(ctx, &v1alpha1.GPUProvisionRequest{}, sel),
		env.Client.DeleteAllOf(ctx, &corev1.Node{}, sel),
	}
	var wss v1alpha1.WorkspaceList
	errs = append(errs, env.Client.List(ctx, &wss, sel))
	for _, ws := range wss.Items {
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
		errs = append(errs, client.IgnoreNotFound(env.Client.Patch(ctx, &ws, patch)))
		errs = append(errs, client.IgnoreNotFound(env.Client.Delete(ctx, &ws)))
	}
	if err := errors.Join(errs...); err != nil {
		w.t.Errorf("clean up: %v", err)
	}
}
