package workspacebinding

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	pt "github.com/gpuspace/gpuspace/scheduler-plugin/internal/plugintest"
)

// TestPreEnqueueNamesAutoGPRTemplate: a pod waiting for a GPR that
// auto-GPR made is told so, with the template.
func TestPreEnqueueNamesAutoGPRTemplate(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	g := pt.GPR("gpr-auto-1", "auto", 150, gpuspacev1alpha1.GPRQueued)
	g.Labels = map[string]string{gpuspacev1alpha1.LabelAutoGPR: "auto", gpuspacev1alpha1.LabelAutoGPRSequence: "1"}
	g.Annotations = map[string]string{gpuspacev1alpha1.AnnotationTemplate: "h100-8x1"}
	h := pt.NewHandle(ctx, t, []runtime.Object{pt.Namespace("team-auto", "auto")}, g)
	pl, err := newPlugin(ctx, noConditions(), h.Handle, h.NewDynamic())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.Start(ctx)
	got := pl.PreEnqueue(ctx, pt.GPUPod("team-auto", "p").Obj()).Message()
	want := "waiting for GPUProvisionRequest gpr-auto-1 of workspace auto (Queued, priority 150, made by auto-GPR from template h100-8x1); start not estimated yet"
	if got != want {
		t.Errorf("PreEnqueue message\n got %q\nwant %q", got, want)
	}
}
