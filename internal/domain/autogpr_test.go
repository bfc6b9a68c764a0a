package domain

import (
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func autoGPR(ws string, seq int, phase v1alpha1.ProvisioningStatus, gen int64) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{
			Name:        AutoGPRName(ws, seq),
			Labels:      map[string]string{v1alpha1.LabelAutoGPR: ws, v1alpha1.LabelAutoGPRSequence: strconv.Itoa(seq)},
			Annotations: map[string]string{v1alpha1.AnnotationTemplateGeneration: strconv.FormatInt(gen, 10)},
		},
		Spec:   v1alpha1.GPUProvisionRequestSpec{Workspace: ws},
		Status: v1alpha1.GPUProvisionRequestStatus{ProvisioningStatus: phase},
	}
}

func TestNextAutoGPR(t *testing.T) {
	manual := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: "gpr-manual"}, Spec: v1alpha1.GPUProvisionRequestSpec{Workspace: "a"}}
	for _, c := range []struct {
		name    string
		gprs    []*v1alpha1.GPUProvisionRequest
		make    bool
		seq     int
		waiting string
		failed  bool
	}{
		{name: "none yet", make: true, seq: 1},
		{name: "a queued GPR someone made", gprs: []*v1alpha1.GPUProvisionRequest{manual}, seq: 1, waiting: "gpr-manual"},
		{name: "the last one queued", gprs: []*v1alpha1.GPUProvisionRequest{autoGPR("a", 1, v1alpha1.GPRQueued, 1)}, seq: 2, waiting: AutoGPRName("a", 1)},
		{name: "the last one provisioned", gprs: []*v1alpha1.GPUProvisionRequest{autoGPR("a", 1, v1alpha1.GPRProvisioned, 1)}, seq: 2, waiting: AutoGPRName("a", 1)},
		{name: "the last one complete", gprs: []*v1alpha1.GPUProvisionRequest{autoGPR("a", 1, v1alpha1.GPRComplete, 1), autoGPR("a", 2, v1alpha1.GPRComplete, 1)}, make: true, seq: 3},
		{name: "the last one failed, same template", gprs: []*v1alpha1.GPUProvisionRequest{autoGPR("a", 1, v1alpha1.GPRError, 2)}, seq: 2, failed: true},
		{name: "the last one failed, template changed since", gprs: []*v1alpha1.GPUProvisionRequest{autoGPR("a", 1, v1alpha1.GPRError, 1)}, make: true, seq: 2},
		{name: "another workspace's", gprs: []*v1alpha1.GPUProvisionRequest{autoGPR("b", 4, v1alpha1.GPRQueued, 2)}, make: true, seq: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := NextAutoGPR("a", c.gprs, 2)
			if got.Make != c.make || got.Sequence != c.seq || got.Waiting != c.waiting || (got.Failed != nil) != c.failed {
				t.Errorf("got make %v seq %d waiting %q failed %v; want %v %d %q %v", got.Make, got.Sequence, got.Waiting, got.Failed != nil, c.make, c.seq, c.waiting, c.failed)
			}
			if got.Name != AutoGPRName("a", c.seq) {
				t.Errorf("name %s, want AutoGPRName(a, %d)", got.Name, c.seq)
			}
		})
	}
	if AutoGPRName("a", 1) == AutoGPRName("a", 2) || AutoGPRName("a", 1) == AutoGPRName("b", 1) || AutoGPRName("a", 1) != AutoGPRName("a", 1) {
		t.Error("AutoGPRName is not one name per (workspace, sequence)")
	}
	if n := AutoGPRName("a", 1); len(n) != len("gpr-1bb22a0b-9388") {
		t.Errorf("AutoGPRName %q is not shaped like a GPR id", n)
	}
}
