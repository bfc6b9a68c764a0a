package workspace

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/admission"
)

// WithRecorder makes the controller report refused Workspaces as Events.
func (r *Reconciler) WithRecorder(rec events.EventRecorder) *Reconciler {
	r.recorder = rec
	return r
}

// refusal is why ws must not be acted on, "" when it may: the checks REST
// and MCP apply before create (admission.ValidateWorkspace,
// admission.NamespaceTaken), applied here to Workspaces made with kubectl.
// Of two workspaces listing one namespace, the one created first keeps it.
func (r *Reconciler) refusal(ctx context.Context, ws *v1alpha1.Workspace) (string, error) {
	if errs := admission.ValidateWorkspace(ws, admission.WorkspaceRules{}); len(errs) > 0 {
		return errs.ToAggregate().Error(), nil
	}
	var list v1alpha1.WorkspaceList
	if err := r.client.List(ctx, &list); err != nil {
		return "", fmt.Errorf("list workspaces: %w", err)
	}
	var before []v1alpha1.Workspace
	for i := range list.Items {
		if admission.Precedes(&list.Items[i], ws) {
			before = append(before, list.Items[i])
		}
	}
	if ns, owner, taken := admission.NamespaceTaken(ws, before); taken {
		return admission.NamespaceTakenMessage(ns, owner), nil
	}
	return "", nil
}

// refuse marks ws refused: its Ready condition False with reason
// admission.ReasonWorkspaceRefused and why, and a Warning Event when that
// is new. Nothing else is done for it: no namespace, ServiceAccount or
// RoleBinding.
func (r *Reconciler) refuse(ctx context.Context, ws *v1alpha1.Workspace, why string) error {
	old := meta.FindStatusCondition(ws.Status.Conditions, v1alpha1.WorkspaceReady)
	if old != nil && old.Status == metav1.ConditionFalse && old.Reason == admission.ReasonWorkspaceRefused &&
		old.Message == why && old.ObservedGeneration == ws.Generation {
		return nil
	}
	nws := ws.DeepCopy()
	nws.Status.ObservedGeneration = ws.Generation
	meta.SetStatusCondition(&nws.Status.Conditions, metav1.Condition{
		Type: v1alpha1.WorkspaceReady, Status: metav1.ConditionFalse, Reason: admission.ReasonWorkspaceRefused,
		Message: why, ObservedGeneration: ws.Generation,
	})
	if err := r.client.Status().Update(ctx, nws); err != nil {
		return fmt.Errorf("refuse workspace %s: %w", ws.Name, err)
	}
	if r.recorder != nil {
		r.recorder.Eventf(nws, nil, corev1.EventTypeWarning, admission.ReasonWorkspaceRefused, "Admit", "%s", why)
	}
	logr.FromContextOrDiscard(ctx).Info("workspace refused at admission", "workspace", ws.Name, "reason", why)
	return nil
}
