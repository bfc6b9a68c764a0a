package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func TestNodeDomains(t *testing.T) {
	custom := v1alpha1.Topology{ObjectMeta: metav1.ObjectMeta{Name: "lab"}, Spec: v1alpha1.TopologySpec{
		Levels:       []v1alpha1.TopologyLevel{{NodeLabel: "lab/row"}, {NodeLabel: "lab/rack"}, {NodeLabel: v1alpha1.LabelHostname}},
		NodeSelector: v1alpha1.TopologyNodeSelector{GPUShapes: []string{"h100"}},
	}}
	ts := TopologyIndex([]v1alpha1.Topology{custom})
	node := func(labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}}
	}
	tests := []struct {
		name   string
		labels map[string]string
		shape  string
		want   []TopologyDomain
	}{{
		name:   "custom topology by shape; hostname left out",
		labels: map[string]string{"lab/row": "r1", "lab/rack": "k2", v1alpha1.LabelHostname: "n"},
		shape:  "H100",
		want:   []TopologyDomain{{"lab/row", "lab/r1"}, {"lab/rack", "lab/r1/k2"}},
	}, {
		name:   "custom topology not selected for another shape",
		labels: map[string]string{"lab/row": "r1"},
		shape:  "T4",
		want:   nil,
	}, {
		name: "GKE built in; stops at the first missing level",
		labels: map[string]string{"cloud.google.com/gce-topology-block": "b1",
			"cloud.google.com/gce-topology-host": "h1"},
		want: []TopologyDomain{{"cloud.google.com/gce-topology-block", "builtin-gke/b1"}},
	}, {
		name:   "NVLink clique after the levels",
		labels: map[string]string{"oci.oraclecloud.com/host.network_block_id": "nb", v1alpha1.LabelGPUClique: "uuid.3"},
		want: []TopologyDomain{{"oci.oraclecloud.com/host.network_block_id", "builtin-oci/nb"},
			{v1alpha1.LabelGPUClique, "clique/uuid.3"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := node(tt.labels)
			got := NodeDomains(n, ts.For(n, "c", tt.shape))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("domains (-want +got):\n%s", diff)
			}
		})
	}
	for level, want := range map[string]bool{"lab/rack": true, "topology.k8s.aws/network-node-layer-2": true,
		v1alpha1.LabelGPUClique: true, "example.com/unknown": false} {
		if got := ts.HasLevel(level); got != want {
			t.Errorf("HasLevel(%s) = %v, want %v", level, got, want)
		}
	}
}
