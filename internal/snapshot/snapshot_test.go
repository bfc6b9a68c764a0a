package snapshot_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/snapshot"
)

type workers []*corev1.Node

func (w workers) Nodes(context.Context) ([]*corev1.Node, error) { return w, nil }

// TestReadAndInput: a snapshot has the local and the workers' nodes, the
// GPRs and the policies, and its input obeys the policies (a workspace
// whose policy forbids eviction has GPRs that cannot evict).
func TestReadAndInput(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	local := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Status: corev1.NodeStatus{
		Capacity: corev1.ResourceList{v1alpha1.ResourceGPU: resource.MustParse("1")},
	}}
	no := false
	pol := &v1alpha1.WorkspacePolicy{ObjectMeta: metav1.ObjectMeta{Name: "ws"}, Spec: v1alpha1.WorkspacePolicySpec{EnableAutoEviction: &no}}
	g := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: "g"},
		Spec: v1alpha1.GPUProvisionRequestSpec{Workspace: "ws", NumberOfGPUs: 1, ExitDuration: "0d1h0m", EnableEviction: true}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(local, pol, g).Build()
	worker := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", Labels: map[string]string{v1alpha1.LabelCluster: "w"}}}
	s, err := snapshot.Reader{Client: c, Workers: workers{worker}}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.GPRs) != 1 || len(s.Nodes) != 2 || s.Policies.Of("ws") == nil || s.Policies.Of("other") != nil {
		t.Fatalf("snapshot: %d GPRs, %d nodes, policies %v", len(s.GPRs), len(s.Nodes), s.Policies)
	}
	in, invalid := s.Input(time.Now(), "local-cluster")
	if len(invalid) != 0 || len(in.Queued) != 1 || in.Queued[0].CanEvict {
		t.Errorf("input: queued %+v, invalid %v; want g queued, unable to evict", in.Queued, invalid)
	}
	if len(in.Nodes) != 1 || in.Nodes[0].Cluster != "local-cluster" {
		t.Errorf("input nodes %+v; want the local GPU node in local-cluster", in.Nodes)
	}
}
