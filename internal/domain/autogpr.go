package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// AutoGPR is what auto-GPR may do for a workspace whose GPU pods are held
// for lack of a GPR, given the workspace's GPRs.
type AutoGPR struct {
	// Make is true when a GPR should be made now.
	Make bool
	// Sequence is the number of the GPR to make: one more than the highest
	// of the workspace's auto GPRs.
	Sequence int
	// Name is that GPR's name, AutoGPRName(workspace, Sequence).
	Name string
	// Waiting names the workspace's queued or provisioned GPR when there
	// is one: the pods wait for it, nothing is made.
	Waiting string
	// Failed is the workspace's last auto GPR when it failed (Error) from
	// the same template generation: making another would fail the same
	// way, so nothing is made until the template changes.
	Failed *v1alpha1.GPUProvisionRequest
}

// NextAutoGPR decides auto-GPR for workspace ws with GPRs gprs (all of the
// workspace's) and the current generation of the template it would use:
// exactly one GPR at a time — none while any GPR of the workspace is
// queued or provisioned, and none again after one made from the same
// template generation failed.
func NextAutoGPR(ws string, gprs []*v1alpha1.GPUProvisionRequest, templateGeneration int64) AutoGPR {
	var out AutoGPR
	var last *v1alpha1.GPUProvisionRequest
	for _, g := range gprs {
		if g.Spec.Workspace != ws {
			continue
		}
		if IsQueued(g) || IsProvisioned(g) {
			out.Waiting = g.Name
		}
		if g.Labels[v1alpha1.LabelAutoGPR] != ws {
			continue
		}
		if n, err := strconv.Atoi(g.Labels[v1alpha1.LabelAutoGPRSequence]); err == nil && n > out.Sequence {
			out.Sequence, last = n, g
		}
	}
	out.Sequence++
	out.Name = AutoGPRName(ws, out.Sequence)
	if out.Waiting != "" {
		return out
	}
	if last != nil && Phase(last) == v1alpha1.GPRError &&
		last.Annotations[v1alpha1.AnnotationTemplateGeneration] == strconv.FormatInt(templateGeneration, 10) {
		out.Failed = last
		return out
	}
	out.Make = true
	return out
}

// AutoGPRName is the name of workspace ws's auto GPR number seq: an EGS-like
// id (gpr-xxxxxxxx-xxxx) derived from both, so every attempt at the same
// GPR — after a restart, from a stale cache — names the same object and
// the second create fails instead of making a second GPR.
func AutoGPRName(ws string, seq int) string {
	sum := sha256.Sum256([]byte("auto-gpr/" + ws + "/" + strconv.Itoa(seq)))
	h := hex.EncodeToString(sum[:6])
	return "gpr-" + h[:8] + "-" + h[8:12]
}
