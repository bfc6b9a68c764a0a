package gpr

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// laggingClient serves some GPRs from a stale snapshot, as an informer
// cache that has not yet seen the latest writes does.
type laggingClient struct {
	client.Client
	stale map[string]*v1alpha1.GPUProvisionRequest
	// noNodes hides every node, as a cache that has not seen them yet.
	noNodes bool
}

func (c *laggingClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := c.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	if l, ok := list.(*corev1.NodeList); ok && c.noNodes {
		l.Items = nil
	}
	if l, ok := list.(*v1alpha1.GPUProvisionRequestList); ok {
		for i := range l.Items {
			if s, ok := c.stale[l.Items[i].Name]; ok {
				l.Items[i] = *s.DeepCopy()
			}
		}
	}
	return nil
}

// testWorld returns a scheme and a Ready node with 4 T4 GPUs in the
// default cluster.
func testWorld(t *testing.T) (*runtime.Scheme, *corev1.Node) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{
			v1alpha1.LabelGPUProduct: "Tesla-T4", v1alpha1.LabelGPUMemory: "15360", v1alpha1.LabelGPUCount: "4",
		}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Capacity:   corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse("4")},
		},
	}
	return scheme, node
}

// fakeClient is a fake API with the GPR status subresource, and a
// Workspace on the default cluster for each GPR's workspace, so the GPRs
// pass admission.
func fakeClient(scheme *runtime.Scheme, objs ...client.Object) client.WithWatch {
	seen := map[string]bool{}
	for _, o := range objs {
		if g, ok := o.(*v1alpha1.GPUProvisionRequest); ok && !seen[g.Spec.Workspace] {
			seen[g.Spec.Workspace] = true
			objs = append(objs, &v1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{Name: g.Spec.Workspace},
				Spec:       v1alpha1.WorkspaceSpec{Clusters: []string{v1alpha1.DefaultCluster}},
			})
		}
	}
	// Binding a node lists its pods by spec.nodeName, as the apiserver
	// serves that field selector.
	byNode := func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }
	return fake.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&v1alpha1.GPUProvisionRequest{}).
		WithIndex(&corev1.Pod{}, "spec.nodeName", byNode).
		WithObjects(objs...).Build()
}

func testGPR(name, ws string, prio int32, created time.Time) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName: name, Workspace: ws, ClusterName: v1alpha1.DefaultCluster,
			NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: prio, ExitDuration: "0d1h0m",
		},
	}
}

// TestStaleCacheNeverDoubleBinds: after a pass starts GPR a on the only
// node, the next pass runs on a cache that still shows a queued, while a
// higher-priority b has arrived. Planning on the stale a would give b the
// node a holds; the reconciler must use its own last write instead.
func TestStaleCacheNeverDoubleBinds(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	scheme, node := testWorld(t)
	a := testGPR("a", "wa", 101, now.Add(-2*time.Minute))
	fc := fakeClient(scheme, node, a)
	lag := &laggingClient{Client: fc, stale: map[string]*v1alpha1.GPUProvisionRequest{}}
	r := New(lag, fc, clocktesting.NewFakePassiveClock(now), nil, v1alpha1.DefaultCluster)

	var before v1alpha1.GPUProvisionRequest
	if err := fc.Get(ctx, client.ObjectKey{Name: "a"}, &before); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	var got v1alpha1.GPUProvisionRequest
	if err := fc.Get(ctx, client.ObjectKey{Name: "a"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
		t.Fatalf("a is %q after the first pass, want Provisioned", got.Status.ProvisioningStatus)
	}

	lag.stale["a"] = &before
	wb := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "wb"}, Spec: v1alpha1.WorkspaceSpec{Clusters: []string{v1alpha1.DefaultCluster}}}
	if err := fc.Create(ctx, wb); err != nil {
		t.Fatal(err)
	}
	if err := fc.Create(ctx, testGPR("b", "wb", 300, now.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("second pass: %v", err)
	}
	if err := fc.Get(ctx, client.ObjectKey{Name: "b"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ProvisioningStatus != v1alpha1.GPRQueued {
		t.Errorf("b is %q on nodes %v while a holds n1, want Queued", got.Status.ProvisioningStatus, got.Status.Nodes)
	}
	if got.Status.EstimatedStartTime == nil || !got.Status.EstimatedStartTime.Time.Equal(now.Add(time.Hour)) {
		t.Errorf("b estimated start %v, want a's end %v", got.Status.EstimatedStartTime, now.Add(time.Hour))
	}
}

// TestNodeMissingFromCacheDoesNotFail: a GPR for a node the cache has not
// seen yet is not failed as unsatisfiable: the reconciler checks a live
// node list before failing anyone.
func TestNodeMissingFromCacheDoesNotFail(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	scheme, node := testWorld(t)
	fc := fakeClient(scheme, node, testGPR("a", "wa", 101, now))
	r := New(&laggingClient{Client: fc, noNodes: true}, fc, clocktesting.NewFakePassiveClock(now), nil, v1alpha1.DefaultCluster)
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("pass: %v", err)
	}
	var got v1alpha1.GPUProvisionRequest
	if err := fc.Get(ctx, client.ObjectKey{Name: "a"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
		t.Errorf("a is %q (%s), want Provisioned on the node the cache missed", got.Status.ProvisioningStatus, got.Status.FailureReason)
	}
}

// TestSteadyStateWritesNothing: once the queue is planned, passes that find
// nothing changed (time moved on, but no GPR or node did) write no GPR and
// no node: estimates are absolute times, not countdowns.
func TestSteadyStateWritesNothing(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	scheme, node := testWorld(t)
	fc := fakeClient(scheme, node,
		testGPR("a", "wa", 101, now.Add(-3*time.Minute)),
		testGPR("b", "wb", 101, now.Add(-2*time.Minute)),
		testGPR("c", "wa", 101, now.Add(-time.Minute)))
	clk := clocktesting.NewFakePassiveClock(now)
	r := New(fc, fc, clk, nil, v1alpha1.DefaultCluster)
	versions := func() map[string]string {
		v := map[string]string{}
		var gprs v1alpha1.GPUProvisionRequestList
		var nodes corev1.NodeList
		if err := fc.List(ctx, &gprs); err != nil {
			t.Fatal(err)
		}
		if err := fc.List(ctx, &nodes); err != nil {
			t.Fatal(err)
		}
		for _, g := range gprs.Items {
			v[g.Name] = g.ResourceVersion + " " + string(g.Status.ProvisioningStatus)
		}
		for _, n := range nodes.Items {
			v[n.Name] = n.ResourceVersion
		}
		return v
	}
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	first := versions()
	if first["a"] == "" || first["b"] == "" {
		t.Fatalf("GPRs missing: %v", first)
	}
	for range 3 {
		clk.SetTime(clk.Now().Add(10 * time.Second))
		if _, err := r.Reconcile(ctx, planRequest); err != nil {
			t.Fatalf("pass: %v", err)
		}
		if diff := cmp.Diff(first, versions()); diff != "" {
			t.Fatalf("a pass with nothing changed wrote objects (-before +after):\n%s", diff)
		}
	}
}

// TestRequeueOnFailure: an unsatisfiable GPR with requeueOnFailure stays
// queued with the reason, and starts once a matching node joins.
func TestRequeueOnFailure(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	scheme, node := testWorld(t)
	g := testGPR("a", "wa", 101, now)
	g.Spec.GPUShape, g.Spec.RequeueOnFailure = "H100", true
	fc := fakeClient(scheme, node, g)
	r := New(fc, fc, clocktesting.NewFakePassiveClock(now), nil, v1alpha1.DefaultCluster)
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("pass: %v", err)
	}
	var got v1alpha1.GPUProvisionRequest
	if err := fc.Get(ctx, client.ObjectKey{Name: "a"}, &got); err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.GPUProvisionRequestStatus{
		ProvisioningStatus: v1alpha1.GPRQueued, InternalState: v1alpha1.StateQueued, ObservedGeneration: got.Generation,
		FailureReason: "no node with gpuShape H100 in cluster worker-1", Reason: v1alpha1.ReasonUnsatisfiable,
	}
	if diff := cmp.Diff(want, got.Status); diff != "" {
		t.Fatalf("status (-want +got):\n%s", diff)
	}

	h100 := node.DeepCopy()
	h100.Name, h100.ResourceVersion = "h", ""
	h100.Labels[v1alpha1.LabelGPUProduct] = "NVIDIA-H100-80GB-HBM3"
	if err := fc.Create(ctx, h100); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, planRequest); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if err := fc.Get(ctx, client.ObjectKey{Name: "a"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ProvisioningStatus != v1alpha1.GPRProvisioned || got.Status.FailureReason != "" {
		t.Errorf("after an H100 node joined: %s, reason %q, want Provisioned", got.Status.ProvisioningStatus, got.Status.FailureReason)
	}
}
