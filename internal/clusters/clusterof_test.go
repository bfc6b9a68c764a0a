package clusters

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestClusterOf: a node is in the worker its gpuspace.io/cluster label
// names only when that is a running worker; a local node labelled with a
// cluster inside the local one (label clusters of a single-cluster
// install) is the local cluster's, reached with the hub's client.
func TestClusterOf(t *testing.T) {
	r := New(nil, nil, nil, nil, Options{Local: "hub"})
	r.workers["edge-2"] = &worker{name: "edge-2"}
	node := func(label string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
		if label != "" {
			n.Labels = map[string]string{v1alpha1.LabelCluster: label}
		}
		return n
	}
	for label, want := range map[string]string{"": "hub", "hub": "hub", "edge-2": "edge-2", "east": "hub"} {
		if got := r.ClusterOf(node(label)); got != want {
			t.Errorf("ClusterOf(label %q) = %q, want %q", label, got, want)
		}
	}
}
