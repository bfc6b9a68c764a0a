package domain

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestQueueKey: priority first, then age — a projection's age is its hub
// GPR's — then name.
func TestQueueKey(t *testing.T) {
	old := gpr("old", "w", v1alpha1.GPRQueued)
	young := gpr("young", "w", v1alpha1.GPRQueued)
	young.CreationTimestamp = metav1.NewTime(old.CreationTimestamp.Add(time.Minute))
	if QueueKeyOf(old).Compare(QueueKeyOf(young)) >= 0 {
		t.Error("older GPR does not go first")
	}
	young.Spec.Priority = 300
	if QueueKeyOf(young).Compare(QueueKeyOf(old)) >= 0 {
		t.Error("higher priority does not go first")
	}
	young.Spec.Priority = 0
	// Projected into a worker after old was created there, but created on
	// the hub before it.
	young.Labels = map[string]string{v1alpha1.LabelProjectedFrom: "hub"}
	young.Annotations = map[string]string{v1alpha1.AnnotationProjectedCreated: old.CreationTimestamp.Add(-time.Minute).Format(time.RFC3339)}
	if QueueKeyOf(young).Compare(QueueKeyOf(old)) >= 0 {
		t.Error("a projection's hub age is not its queue age")
	}
	if QueueKeyOf(old).Compare(QueueKeyOf(old)) != 0 {
		t.Error("a GPR does not compare equal to itself")
	}
}
