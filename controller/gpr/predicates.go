package gpr

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// gprChanged passes GPR events that can change a decision: creates,
// deletes, spec, label or annotation changes, and status changes other
// than the estimate or an admission. The estimate writer's own updates
// would otherwise start a pass per write: its admissions after a burst
// (admitLater) too, while the pass already planned each of those GPRs
// as queued.
func gprChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.GPUProvisionRequest)
			n, ok2 := e.ObjectNew.(*v1alpha1.GPUProvisionRequest)
			if !ok1 || !ok2 {
				return true
			}
			return o.Generation != n.Generation || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
				!maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
				!equality.Semantic.DeepEqual(withoutEstimate(o.Status), withoutAdmission(o, n))
		},
	}
}

func withoutEstimate(s v1alpha1.GPUProvisionRequestStatus) v1alpha1.GPUProvisionRequestStatus {
	s.EstimatedStartTime, s.EstimatedWaitTime = nil, ""
	s.LatestStartTime, s.LatestWaitTime = nil, ""
	return s
}

// withoutAdmission is n's status without its estimates and, when n is o
// admitted (Queued with no reason, domain.Admit), without what admission
// set: the phase fields and the first estimate. domain.Phase counts a
// GPR not yet admitted as Queued already.
func withoutAdmission(o, n *v1alpha1.GPUProvisionRequest) v1alpha1.GPUProvisionRequestStatus {
	s := withoutEstimate(n.Status)
	if domain.NotAdmitted(o) && n.Status.ProvisioningStatus == v1alpha1.GPRQueued && n.Status.Reason == "" {
		s.ProvisioningStatus, s.Reason, s.InternalState = o.Status.ProvisioningStatus, o.Status.Reason, o.Status.InternalState
		s.ObservedGeneration, s.FirstEstimatedStartTime = o.Status.ObservedGeneration, o.Status.FirstEstimatedStartTime
	}
	return s
}

// workspaceChanged passes workspace events admission or release depend on:
// creates, deletes, the start of a deletion, and cluster changes.
func workspaceChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.Workspace)
			n, ok2 := e.ObjectNew.(*v1alpha1.Workspace)
			if !ok1 || !ok2 {
				return true
			}
			return !o.DeletionTimestamp.Equal(n.DeletionTimestamp) || !slices.Equal(o.Spec.Clusters, n.Spec.Clusters)
		},
	}
}

// nodeChanged passes node events that can change the plan, a binding or
// an idle release (the idle signal), and drops heartbeats.
func nodeChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Node)
			n, ok2 := e.ObjectNew.(*corev1.Node)
			if !ok1 || !ok2 {
				return true
			}
			return domain.NodeChangeMatters(o, n)
		},
	}
}
