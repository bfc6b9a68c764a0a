package gpr

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// oneWorker is a registry with one Ready worker cluster, "edge", whose
// nodes are those of its own API (a second fake client).
type oneWorker struct{ edge client.Client }

func (w oneWorker) Nodes(ctx context.Context) ([]*corev1.Node, error) {
	var l corev1.NodeList
	if err := w.edge.List(ctx, &l); err != nil {
		return nil, err
	}
	out := make([]*corev1.Node, len(l.Items))
	for i := range l.Items {
		n := l.Items[i].DeepCopy()
		n.Labels[v1alpha1.LabelCluster] = "edge"
		out[i] = n
	}
	return out, nil
}

func (oneWorker) ClusterOf(n *corev1.Node) string {
	if n.Labels[v1alpha1.LabelCluster] == "edge" {
		return "edge"
	}
	return v1alpha1.DefaultCluster
}

func (w oneWorker) Client(c string) (client.Client, bool) { return w.edge, c == "edge" }

func (w oneWorker) APIReader(c string) (client.Reader, bool)                     { return w.edge, c == "edge" }
func (oneWorker) Ready(string) bool                                              { return true }
func (oneWorker) Registered(c string) bool                                       { return true }
func (oneWorker) InventoryComplete(context.Context) bool                         { return true }
func (oneWorker) Source(handler.EventHandler, predicate.Predicate) source.Source { return nil }

// TestLiveRelistKeepsWorkerNodes: a pass that would fail a GPR re-reads
// the local nodes live before failing it, and must plan again over the
// workers' nodes too: a GPR for a worker starts in that same pass, and
// the unsatisfiable one fails.
func TestLiveRelistKeepsWorkerNodes(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	scheme, node := testWorld(t)
	edgeNode := node.DeepCopy()
	edgeNode.Name = "edge-n1"
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "w"}, Spec: v1alpha1.WorkspaceSpec{Clusters: []string{v1alpha1.DefaultCluster, "edge"}}}
	ws2 := ws.DeepCopy()
	ws2.Name = "w2"
	onEdge := testGPR("on-edge", "w", 101, now.Add(-time.Minute))
	onEdge.Spec.ClusterName = "edge"
	never := testGPR("never", "w2", 101, now.Add(-time.Minute))
	never.Spec.GPUShape = "B200" // no node anywhere
	byNode := func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }
	hub := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.GPUProvisionRequest{}).
		WithIndex(&corev1.Pod{}, "spec.nodeName", byNode).WithObjects(ws, ws2, onEdge, never).Build()
	edge := fake.NewClientBuilder().WithScheme(scheme).
		WithIndex(&corev1.Pod{}, "spec.nodeName", byNode).WithObjects(edgeNode).Build()
	r := New(hub, hub, clocktesting.NewFakePassiveClock(now), nil, v1alpha1.DefaultCluster, WithClusters(oneWorker{edge: edge}))

	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("pass: %v", err)
	}
	for name, want := range map[string]v1alpha1.ProvisioningStatus{"on-edge": v1alpha1.GPRProvisioned, "never": v1alpha1.GPRError} {
		var g v1alpha1.GPUProvisionRequest
		if err := hub.Get(ctx, client.ObjectKey{Name: name}, &g); err != nil {
			t.Fatal(err)
		}
		if g.Status.ProvisioningStatus != want {
			t.Errorf("GPR %s is %q after one pass, want %q (%s)", name, g.Status.ProvisioningStatus, want, g.Status.FailureReason)
		}
	}
	var n corev1.Node
	if err := edge.Get(ctx, client.ObjectKey{Name: "edge-n1"}, &n); err != nil {
		t.Fatal(err)
	}
	if n.Labels[v1alpha1.LabelGPR] != "on-edge" {
		t.Errorf("edge node labels %v, want bound to on-edge in its own cluster", n.Labels)
	}
}
