package gpr_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestBindEvictsStrayDRAGPUPods: a pod that gets its GPU through a DRA
// claim is a GPU pod to eviction too. Left on a free node by a workspace
// deleted meanwhile, it is deleted when a GPR binds the node, whether its
// claim is its own ResourceClaim or made from a ResourceClaimTemplate; a
// pod whose claim asks for a device that is not a GPU stays.
func TestBindEvictsStrayDRAGPUPods(t *testing.T) {
	h := newHarness(t)
	h.start()
	node, ns := h.t4Node("n1"), h.name("dra-released")
	devices := func(class string) resourcev1.ResourceClaimSpec {
		return resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "dev", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: class}}}}}
	}
	pods := []struct {
		name  string
		claim corev1.PodResourceClaim
		gpu   bool
	}{
		{"claim-gpu", corev1.PodResourceClaim{Name: "dev", ResourceClaimName: ptr.To("gpu")}, true},
		{"template-gpu", corev1.PodResourceClaim{Name: "dev", ResourceClaimTemplateName: ptr.To("one-gpu")}, true},
		{"claim-nic", corev1.PodResourceClaim{Name: "dev", ResourceClaimName: ptr.To("nic")}, false},
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gpu"}, Spec: devices("gpu.nvidia.com")},
		&resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nic"}, Spec: devices("nic.example.com")},
		&resourcev1.ResourceClaimTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "one-gpu"},
			Spec: resourcev1.ResourceClaimTemplateSpec{Spec: devices("gpu.nvidia.com")}},
	}
	for _, p := range pods {
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.name},
			Spec: corev1.PodSpec{NodeName: node, ResourceClaims: []corev1.PodResourceClaim{p.claim},
				Containers: []corev1.Container{{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "dev"}}}}}},
		})
	}
	for _, o := range objs {
		if err := env.Client.Create(h.ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}

	id := h.gpr("g", h.workspace("w"), exit("1d0h0m"))
	h.status(id, v1alpha1.GPRProvisioned)
	h.nodeBound(node, id)
	for _, p := range pods {
		if p.gpu {
			h.podLeaves(ns, p.name, fmt.Sprintf("DRA GPU pod of no workspace on node %s bound to %s", node, id))
		}
	}
	for _, p := range pods {
		if got, err := env.Kube.CoreV1().Pods(ns).Get(h.ctx, p.name, metav1.GetOptions{}); !p.gpu && (err != nil || got.DeletionTimestamp != nil) {
			t.Errorf("pod %s, whose claim is no GPU, was deleted (err %v)", p.name, err)
		}
	}
}
