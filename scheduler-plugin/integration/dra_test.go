package integration

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
)

// DRA test drivers: GPUs under the default GPU DeviceClass, and a device
// class that is not a GPU.
const (
	draGPUClass = "gpu.nvidia.com"
	draNICClass = "nic.example.com"
)

// addDeviceClass creates a DeviceClass selecting the devices of the driver
// of the same name, unless another test made it.
func addDeviceClass(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	_, err := env.Kube.ResourceV1().DeviceClasses().Create(ctx, &resourcev1.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{
			CEL: &resourcev1.CELDeviceSelector{Expression: `device.driver == "` + name + `"`}}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		must(t, err)
	}
}

// addDevices publishes n devices of driver on node, as its DRA driver's
// kubelet plugin would.
func addDevices(ctx context.Context, t testing.TB, node, driver string, n int) {
	t.Helper()
	devices := make([]resourcev1.Device, n)
	for i := range devices {
		devices[i].Name = "dev-" + string(rune('a'+i))
	}
	_, err := env.Kube.ResourceV1().ResourceSlices().Create(ctx, &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-" + strings.ReplaceAll(driver, ".", "-")},
		Spec: resourcev1.ResourceSliceSpec{Driver: driver, NodeName: ptr.To(node), Devices: devices,
			Pool: resourcev1.ResourcePool{Name: node, ResourceSliceCount: 1}},
	}, metav1.CreateOptions{})
	must(t, err)
}

// draPod is a pod whose only device comes from a ResourceClaim of its own,
// created here, for one device of class.
func draPod(ctx context.Context, t testing.TB, ns, name, class string) *v1.Pod {
	t.Helper()
	claim := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "dev", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: class}}}}},
	}
	_, err := env.Kube.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
	must(t, err)
	p := cpuPod(ns, name)
	p.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "dev", ResourceClaimName: ptr.To(name)}}
	p.Spec.Containers[0].Resources.Claims = []v1.ResourceClaim{{Name: "dev"}}
	return p
}

// TestDRAClaimPods: a pod that gets a GPU through a DRA ResourceClaim is a
// GPU pod to WorkspaceBinding, on a real scheduler with its DRA plugin
// allocating the devices: another workspace's is refused a bound node
// even when it tolerates every taint; a workspace's own lands only on its
// bound nodes; one of a workspace with no GPR is held for one. A claim for
// a device that is not a GPU makes no GPU pod.
func TestDRAClaimPods(t *testing.T) {
	ctx := ctxFor(t)
	for _, n := range []string{"dra-a1", "dra-b1", "dra-free"} {
		addNode(ctx, t, n, 8)
		addDevices(ctx, t, n, draGPUClass, 4)
	}
	addDevices(ctx, t, "dra-free", draNICClass, 2)
	addDeviceClass(ctx, t, draGPUClass)
	addDeviceClass(ctx, t, draNICClass)
	createNamespace(ctx, t, "dra-alpha", "dra-alpha")
	createNamespace(ctx, t, "dra-beta", "dra-beta")
	createNamespace(ctx, t, "dra-gamma", "dra-gamma")
	createGPR(ctx, t, "gpr-dra-alpha", "dra-alpha", 150, gpuspacev1alpha1.GPRProvisioned, nil, "dra-a1")
	createGPR(ctx, t, "gpr-dra-beta", "dra-beta", 150, gpuspacev1alpha1.GPRProvisioned, nil, "dra-b1")
	bindNode(ctx, t, "dra-a1", "dra-alpha", "gpr-dra-alpha")
	bindNode(ctx, t, "dra-b1", "dra-beta", "gpr-dra-beta")
	startScheduler(t, loadProfiles(t), registry())

	// refused creates a DRA GPU pod aimed at node and waits until the
	// scheduler finds it unschedulable.
	refused := func(t *testing.T, ns, name, node string, tolerations ...v1.Toleration) {
		t.Helper()
		p := draPod(ctx, t, ns, name, draGPUClass)
		p.Spec.NodeSelector = map[string]string{v1.LabelHostname: node}
		p.Spec.Tolerations = tolerations
		createPod(ctx, t, p)
		if got := waitPod(ctx, t, ns, name, "found unschedulable", unschedulable); got.Spec.NodeName != "" {
			t.Errorf("%s/%s bound to %s", ns, name, got.Spec.NodeName)
		}
	}
	t.Run("another workspace's DRA GPU pod is refused a bound node", func(t *testing.T) {
		refused(t, "dra-beta", "aimed", "dra-a1", v1.Toleration{Operator: v1.TolerationOpExists})
	})
	t.Run("a workspace's DRA GPU pod lands on its bound node", func(t *testing.T) {
		createPod(ctx, t, draPod(ctx, t, "dra-beta", "own", draGPUClass))
		if got := waitPod(ctx, t, "dra-beta", "own", "bound", bound); got.Spec.NodeName != "dra-b1" {
			t.Errorf("dra-beta/own on %s, want dra-b1", got.Spec.NodeName)
		}
	})
	t.Run("a workspace's DRA GPU pod stays off a node its GPR does not hold", func(t *testing.T) {
		refused(t, "dra-alpha", "off", "dra-free")
	})
	t.Run("a DRA GPU pod of a workspace with no GPR is held", func(t *testing.T) {
		createPod(ctx, t, draPod(ctx, t, "dra-gamma", "held", draGPUClass))
		got := waitPod(ctx, t, "dra-gamma", "held", "held", heldFor)
		if c := scheduledCondition(got); !strings.Contains(c.Message, "workspace dra-gamma has no queued or provisioned GPUProvisionRequest") {
			t.Errorf("held with %q", c.Message)
		}
	})
	t.Run("a DRA pod of a device that is not a GPU is no GPU pod", func(t *testing.T) {
		p := draPod(ctx, t, "dra-gamma", "nic", draNICClass)
		createPod(ctx, t, p)
		if got := waitPod(ctx, t, "dra-gamma", "nic", "bound", bound); got.Spec.NodeName != "dra-free" {
			t.Errorf("dra-gamma/nic on %s, want dra-free (the only node with NICs)", got.Spec.NodeName)
		}
	})
}
