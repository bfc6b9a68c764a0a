package state

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestGPRFromProjection: a projected GPR (in a worker cluster) is as old
// as the hub GPR it projects, not as its own creationTimestamp; the
// annotation means nothing on a GPR that is not a projection.
func TestGPRFromProjection(t *testing.T) {
	projectedAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hubCreated := projectedAt.Add(-time.Hour)
	g := func(labels map[string]string) *gpuspacev1alpha1.GPUProvisionRequest {
		return &gpuspacev1alpha1.GPUProvisionRequest{
			ObjectMeta: metav1.ObjectMeta{
				Name: "gpr-a", CreationTimestamp: metav1.NewTime(projectedAt), Labels: labels,
				Annotations: map[string]string{gpuspacev1alpha1.AnnotationProjectedCreated: hubCreated.Format(time.RFC3339)},
			},
			Spec:   gpuspacev1alpha1.GPUProvisionRequestSpec{Workspace: "ws", Priority: 150},
			Status: gpuspacev1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: gpuspacev1alpha1.GPRProvisioned, Nodes: []string{"n1"}},
		}
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   time.Time
	}{
		{"projection", map[string]string{gpuspacev1alpha1.LabelProjectedFrom: "hub"}, hubCreated},
		{"not a projection", nil, projectedAt},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := GPRFrom(g(tt.labels))
			want := GPR{Name: "gpr-a", Workspace: "ws", Priority: 150, Phase: gpuspacev1alpha1.GPRProvisioned,
				Created: tt.want, Nodes: []string{"n1"}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("GPRFrom (-want +got):\n%s", d)
			}
		})
	}
}
