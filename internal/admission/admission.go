// Package admission defaults and validates GPRs against the objects they
// refer to — the workspace exists and is not being deleted, the cluster is
// one of the workspace's, the durations parse — the same way on every path:
// the REST API and MCP call it before they create a GPR, and the GPR
// controller calls it on every GPR it has not admitted yet, so an object
// created with kubectl that fails it is failed with its reason before any
// planning and never binds a node.
//
// Why a controller-side check rather than a webhook or a
// ValidatingAdmissionPolicy: the checks are cross-object (a
// ValidatingAdmissionPolicy cannot look a Workspace up by the GPR's
// spec.workspace), and a webhook would put gpuspace in the kube-apiserver's
// write path — every GPR write failing while gpuspace is down or its
// serving certificate is not trusted. The CRD schema still refuses
// malformed fields at the kube-apiserver; this package adds what needs
// other objects.
package admission

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// Paths of the GPR fields the checks name, as the CRD spells them.
var (
	specPath      = field.NewPath("spec")
	workspacePath = specPath.Child("workspace")
	clusterPath   = specPath.Child("clusterName")
	exitPath      = specPath.Child("exitDuration")
	idlePath      = specPath.Child("idleTimeOutDuration")
)

// DefaultGPR fills what a GPR may leave out: the cluster (the workspace's
// first), the priority (DefaultPriority) and the node count (1). ws may be
// nil (workspace missing): only the workspace-free defaults apply.
func DefaultGPR(g *v1alpha1.GPUProvisionRequest, ws *v1alpha1.Workspace) {
	if g.Spec.ClusterName == "" && ws != nil && len(ws.Spec.Clusters) > 0 {
		g.Spec.ClusterName = ws.Spec.Clusters[0]
	}
	g.Spec.Priority = domain.Priority(g)
	g.Spec.NumberOfGPUNodes = domain.NodeCount(g)
}

// ValidateGPR checks a GPR against its workspace (nil: it does not exist).
// Every problem is returned, each naming its field.
func ValidateGPR(g *v1alpha1.GPUProvisionRequest, ws *v1alpha1.Workspace) field.ErrorList {
	var errs field.ErrorList
	switch {
	case ws == nil:
		errs = append(errs, field.NotFound(workspacePath, g.Spec.Workspace))
	case ws.DeletionTimestamp != nil:
		errs = append(errs, field.Invalid(workspacePath, g.Spec.Workspace, "workspace is being deleted"))
	case !slices.Contains(ws.Spec.Clusters, g.Spec.ClusterName):
		errs = append(errs, field.NotSupported(clusterPath, g.Spec.ClusterName, ws.Spec.Clusters))
	}
	if _, err := duration.Parse(g.Spec.ExitDuration); err != nil {
		errs = append(errs, field.Invalid(exitPath, g.Spec.ExitDuration, DurationReason(err)))
	}
	if d := g.Spec.IdleTimeOutDuration; d != "" {
		if _, err := duration.Parse(d); err != nil {
			errs = append(errs, field.Invalid(idlePath, d, DurationReason(err)))
		}
	}
	return append(errs, validateTopologyShape(g)...)
}

// DurationReason says what is wrong with an EGS duration, for users.
func DurationReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, duration.ErrEmpty):
		return "is required, as NdNhNm (e.g. 0d0h5m)"
	case errors.Is(err, duration.ErrZero):
		return "must be longer than zero"
	case errors.Is(err, duration.ErrOverflow):
		return "is too long"
	}
	return "must be NdNhNm, e.g. 0d2h30m"
}

// Message is a failed GPR's failureReason for errs: each problem with the
// field it names, in the workspace's words where there is one.
func Message(g *v1alpha1.GPUProvisionRequest, ws *v1alpha1.Workspace, errs field.ErrorList) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		switch {
		case e.Field == workspacePath.String() && e.Type == field.ErrorTypeNotFound:
			parts = append(parts, fmt.Sprintf("workspace %q does not exist", g.Spec.Workspace))
		case e.Field == clusterPath.String() && e.Type == field.ErrorTypeNotSupported && ws != nil:
			parts = append(parts, fmt.Sprintf("workspace %q is not on cluster %q; its clusters: %s",
				ws.Name, g.Spec.ClusterName, strings.Join(ws.Spec.Clusters, ", ")))
		default:
			parts = append(parts, e.Error())
		}
	}
	return "refused at admission: " + strings.Join(parts, "; ")
}
