package admission

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/duration"
)

// Paths of the GPR fields the policy checks name.
var (
	priorityPath = specPath.Child("priority")
	gpusPath     = specPath.Child("numberOfGPUs")
	memoryPath   = specPath.Child("memoryPerGPU")
	shapePath    = specPath.Child("gpuShape")
)

// DefaultForPolicy applies a workspace policy's defaults to a GPR (nil
// policy: none): a GPR at the default priority in a workspace whose range
// is lower runs at the top of that range, and a policy that enforces idle
// time-out turns enforceIdleTimeOut on. Call it after DefaultGPR.
func DefaultForPolicy(g *v1alpha1.GPUProvisionRequest, p *v1alpha1.WorkspacePolicy) {
	if p == nil {
		return
	}
	g.Spec.Priority = domain.PolicyPriority(p, g.Spec.Priority)
	if p.Spec.EnforceIdleTimeOut {
		g.Spec.EnforceIdleTimeOut = true
	}
	defaultTopologyForPolicy(g, p)
}

// ValidateAgainstPolicy checks a GPR against its workspace's policy (nil:
// the workspace has none, and nothing is limited). ahead is how many of
// the workspace's queued or provisioned GPRs count before this one against
// maxGPRs: for a GPR about to be created, all of them; for a queued one,
// its domain.PolicyRanks rank. Every limit it breaks is returned, each
// naming its field, the policy and the limit.
func ValidateAgainstPolicy(g *v1alpha1.GPUProvisionRequest, p *v1alpha1.WorkspacePolicy, ahead int) field.ErrorList {
	if p == nil {
		return nil
	}
	named := func(limit string) string { return by(p, limit) }
	errs := ValidatePolicyPriority(g, p)
	if n, ok := domain.MaxGPRs(p); ok && int64(ahead) >= int64(n) {
		errs = append(errs, field.Forbidden(workspacePath,
			fmt.Sprintf("workspace %q may have at most %d GPRs queued or provisioned at once, and has %d", g.Spec.Workspace, n, ahead)+named("maxGPRs")))
	}
	if limit, ok := domain.MaxExitDuration(p); ok {
		if d, err := duration.Parse(g.Spec.ExitDuration); err == nil && d > limit {
			errs = append(errs, field.Invalid(exitPath, g.Spec.ExitDuration,
				fmt.Sprintf("exitDuration %s is longer than the workspace's limit of %s", duration.Format(d), domain.PolicyDurationWords(p.Spec.MaxExitDurationPerGPR))+named("maxExitDurationPerGPR")))
		}
	}
	if p.Spec.EnforceIdleTimeOut && g.Spec.IdleTimeOutDuration == "" {
		errs = append(errs, field.Required(idlePath,
			"idleTimeOutDuration (NdNhNm) is required: the workspace's policy releases idle GPUs"+named("enforceIdleTimeOut")))
	}
	c := domain.Constraints(p, g.Spec.ClusterName)
	if !domain.ShapeAllowed(c, g.Spec.GPUShape) {
		what := fmt.Sprintf("gpuShape %q is not allowed", g.Spec.GPUShape)
		if g.Spec.GPUShape == "" {
			what = "gpuShape is required"
		}
		errs = append(errs, field.Invalid(shapePath, g.Spec.GPUShape,
			fmt.Sprintf("%s in cluster %q; allowed: %s", what, g.Spec.ClusterName, domain.ShapeList(c.GPUShapes))+named("gpuShapes")))
	}
	if n := domain.TotalGPUs(g); c.MaxGPUPerGPR > 0 && n > int64(c.MaxGPUPerGPR) {
		errs = append(errs, field.Invalid(gpusPath, g.Spec.NumberOfGPUs,
			fmt.Sprintf("%d GPUs (numberOfGPUs %d × numberOfGPUNodes %d) are more than the workspace's limit of %d GPUs per GPR in cluster %q",
				n, g.Spec.NumberOfGPUs, domain.NodeCount(g), c.MaxGPUPerGPR, g.Spec.ClusterName)+named("maxGpuPerGpr")))
	}
	if c.MaxMemoryPerGPR > 0 {
		switch m := domain.TotalMemoryGB(g); {
		case g.Spec.MemoryPerGPU == 0:
			errs = append(errs, field.Required(memoryPath,
				fmt.Sprintf("memoryPerGPU (GB) is required: the workspace may ask for at most %d GB of GPU memory per GPR in cluster %q", c.MaxMemoryPerGPR, g.Spec.ClusterName)+named("maxMemoryPerGpr")))
		case m > int64(c.MaxMemoryPerGPR):
			errs = append(errs, field.Invalid(memoryPath, g.Spec.MemoryPerGPU,
				fmt.Sprintf("%d GB of GPU memory (%d GPUs × %d GB) is more than the workspace's limit of %d GB per GPR in cluster %q",
					m, domain.TotalGPUs(g), g.Spec.MemoryPerGPU, c.MaxMemoryPerGPR, g.Spec.ClusterName)+named("maxMemoryPerGpr")))
		}
	}
	return append(errs, validateTopologyPolicy(g, p)...)
}

// PolicyMessage is a held GPR's failureReason for a policy's errs.
func PolicyMessage(errs field.ErrorList) string {
	msg := "held by the workspace's policy:"
	for i, e := range errs {
		if i > 0 {
			msg += ";"
		}
		msg += " " + e.Detail
	}
	return msg
}

// ValidatePolicyPriority checks a GPR's priority against its workspace's
// policy (nil: any priority): it must not be above the policy's range. A
// priority change of any GPR, queued or provisioned, is checked with it.
func ValidatePolicyPriority(g *v1alpha1.GPUProvisionRequest, p *v1alpha1.WorkspacePolicy) field.ErrorList {
	pr := domain.Priority(g)
	if p == nil || pr <= domain.MaxPriority(p) {
		return nil
	}
	band := domain.PolicyBand(p)
	lo, hi := domain.BandRange(band)
	return field.ErrorList{field.Invalid(priorityPath, pr,
		fmt.Sprintf("priority %d is above the workspace's %q range (%d-%d)", pr, band, lo, hi)+by(p, "priorityRange"))}
}

// by names the policy and the limit a message is about.
func by(p *v1alpha1.WorkspacePolicy, limit string) string {
	return fmt.Sprintf(" (WorkspacePolicy %q, %s)", p.Name, limit)
}
