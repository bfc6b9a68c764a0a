package integration

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestExclusiveWithoutLeader: the windows a controller killed mid-way
// leaves between a GPR's status and its nodes' labels do not open
// exclusivity. No gpuspace controller runs here: the GPR statuses are
// written directly, and the labels are left as a dead leader left them.
//
//   - ll-held is named by ll-alpha's Provisioned GPR but not labelled or
//     tainted yet: it takes ll-alpha's GPU pods and no pod of another
//     workspace or of none.
//   - ll-stale was ll-omega's: that GPR is Complete, its label and taint
//     linger. ll-omega's next GPR holds ll-o2, so its GPU pods pass
//     PreEnqueue; none lands on ll-stale.
func TestExclusiveWithoutLeader(t *testing.T) {
	ctx := ctxFor(t)
	for _, n := range []string{"ll-held", "ll-stale", "ll-o2"} {
		addNode(ctx, t, n, 8)
	}
	createNamespace(ctx, t, "ll-alpha", "ll-alpha")
	createNamespace(ctx, t, "ll-beta", "ll-beta")
	createNamespace(ctx, t, "ll-omega", "ll-omega")
	createNamespace(ctx, t, "ll-plain", "")
	alpha := createGPR(ctx, t, "gpr-ll-alpha", "ll-alpha", 150, gpuspacev1alpha1.GPRProvisioned, nil, "ll-held")
	createGPR(ctx, t, "gpr-ll-omega-1", "ll-omega", 101, gpuspacev1alpha1.GPRComplete, nil, "ll-stale")
	bindNode(ctx, t, "ll-stale", "ll-omega", "gpr-ll-omega-1")
	createGPR(ctx, t, "gpr-ll-omega-2", "ll-omega", 101, gpuspacev1alpha1.GPRProvisioned, nil, "ll-o2")
	bindNode(ctx, t, "ll-o2", "ll-omega", "gpr-ll-omega-2")
	startScheduler(t, loadProfiles(t), registry())

	pinned := func(p *v1.Pod, node string) *v1.Pod {
		p.Spec.NodeSelector = map[string]string{v1.LabelHostname: node}
		return p
	}
	stays := func(t *testing.T, p *v1.Pod) {
		t.Helper()
		createPod(ctx, t, p)
		if got := waitPod(ctx, t, p.Namespace, p.Name, "found unschedulable", unschedulable); got.Spec.NodeName != "" {
			t.Errorf("%s/%s bound to %s", p.Namespace, p.Name, got.Spec.NodeName)
		}
	}

	t.Run("provisioned, not labelled: no stranger", func(t *testing.T) {
		stays(t, pinned(cpuPod("ll-beta", "to-held"), "ll-held"))
		stays(t, pinned(cpuPod("ll-plain", "to-held"), "ll-held"))
		stays(t, pinned(gpuPod("ll-plain", "gpu-to-held"), "ll-held"))
	})
	t.Run("provisioned, not labelled: the holder's GPU pods", func(t *testing.T) {
		createPod(ctx, t, gpuPod("ll-alpha", "gpu"))
		if got := waitPod(ctx, t, "ll-alpha", "gpu", "bound", bound); got.Spec.NodeName != "ll-held" {
			t.Errorf("ll-alpha's GPU pod on %s, want ll-held", got.Spec.NodeName)
		}
	})
	t.Run("completed, label lingers: none of the old workspace's GPU pods", func(t *testing.T) {
		stays(t, pinned(gpuPod("ll-omega", "to-stale"), "ll-stale"))
		for _, name := range []string{"gpu-0", "gpu-1", "gpu-2", "gpu-3"} {
			createPod(ctx, t, gpuPod("ll-omega", name))
		}
		for _, name := range []string{"gpu-0", "gpu-1", "gpu-2", "gpu-3"} {
			if got := waitPod(ctx, t, "ll-omega", name, "bound", bound); got.Spec.NodeName != "ll-o2" {
				t.Errorf("ll-omega/%s on %s, want ll-o2 (the node its provisioned GPR holds)", name, got.Spec.NodeName)
			}
		}
	})
	t.Run("completed, label lingers: not free for others yet", func(t *testing.T) {
		stays(t, pinned(cpuPod("ll-beta", "to-stale"), "ll-stale"))
	})

	// The windows close by status alone: once ll-alpha's GPR completes
	// (its node never labelled), a stranger's pod waiting for ll-held
	// lands there; once ll-stale's label is reconciled, so does one
	// waiting for ll-stale.
	t.Run("released by status: the stranger lands", func(t *testing.T) {
		setGPRStatus(ctx, t, alpha, gpuspacev1alpha1.GPRComplete, nil)
		if got := waitPod(ctx, t, "ll-beta", "to-held", "bound", bound); got.Spec.NodeName != "ll-held" {
			t.Errorf("ll-beta/to-held on %s", got.Spec.NodeName)
		}
		bindNode(ctx, t, "ll-stale", "", "")
		if got := waitPod(ctx, t, "ll-beta", "to-stale", "bound", bound); got.Spec.NodeName != "ll-stale" {
			t.Errorf("ll-beta/to-stale on %s", got.Spec.NodeName)
		}
	})
}
