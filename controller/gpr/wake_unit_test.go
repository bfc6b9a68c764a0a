package gpr

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// TestNextWakeAtEndOfMinRuntime: a queued GPR that may evict waits on a
// victim inside its minimum runtime; nothing else happens when the
// protection ends, so the pass must wake then (not at the victim's
// expiry an hour later). Without an evictor, the protection wakes
// nothing; a zero minRuntimeBeforeEviction means evictable at once.
func TestNextWakeAtEndOfMinRuntime(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	started := now.Add(-20 * time.Second)
	victim := func(ws string) *v1alpha1.GPUProvisionRequest {
		g := &v1alpha1.GPUProvisionRequest{
			ObjectMeta: metav1.ObjectMeta{Name: "victim-" + ws},
			Spec:       v1alpha1.GPUProvisionRequestSpec{Workspace: ws, NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: 100, ExitDuration: "0d1h0m"},
		}
		domain.Start(g, []string{"n-" + ws}, started)
		return g
	}
	evictor := &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "evictor"},
		Spec:       v1alpha1.GPUProvisionRequestSpec{Workspace: "b", NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: 250, ExitDuration: "0d1h0m", EnableEviction: true},
	}
	domain.Admit(evictor)
	policy := func(ws, minRuntime string) v1alpha1.WorkspacePolicy {
		return v1alpha1.WorkspacePolicy{ObjectMeta: metav1.ObjectMeta{Name: ws}, Spec: v1alpha1.WorkspacePolicySpec{MinRuntimeBeforeEviction: minRuntime}}
	}
	tests := []struct {
		name     string
		gprs     []*v1alpha1.GPUProvisionRequest
		policies []v1alpha1.WorkspacePolicy
		want     time.Time
	}{
		{"protection ends before expiry", []*v1alpha1.GPUProvisionRequest{victim("a"), evictor}, []v1alpha1.WorkspacePolicy{policy("a", "0d0h1m")}, started.Add(time.Minute)},
		{"default protection", []*v1alpha1.GPUProvisionRequest{victim("a"), evictor}, nil, started.Add(domain.DefaultMinRuntimeBeforeEviction)},
		{"no evictor: expiry", []*v1alpha1.GPUProvisionRequest{victim("a")}, []v1alpha1.WorkspacePolicy{policy("a", "0d0h1m")}, started.Add(time.Hour)},
		{"zero protection: evictable now, expiry next", []*v1alpha1.GPUProvisionRequest{victim("a"), evictor}, []v1alpha1.WorkspacePolicy{policy("a", "0d0h0m")}, started.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pass{now: now, gprs: tt.gprs, policies: domain.PolicyIndex(tt.policies)}
			if got := p.nextWake(); !got.Equal(tt.want) {
				t.Errorf("nextWake = %v, want %v", got, tt.want)
			}
		})
	}
}
