package gpr_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestBindEvictsStrayGPUPods: a node bound to a workspace is its alone. A
// GPU pod left on a free node by a workspace deleted meanwhile (its
// namespace no longer labelled) is deleted when a GPR binds the node; a
// pod without GPUs there (an agent, a DaemonSet's) stays.
func TestBindEvictsStrayGPUPods(t *testing.T) {
	h := newHarness(t)
	h.start()
	node := h.t4Node("n1")
	ns := h.name("released")
	if _, err := env.Kube.CoreV1().Namespaces().Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := func(name string, gpus int64) *corev1.Pod {
		c := corev1.Container{Name: "c", Image: "busybox"}
		if gpus > 0 {
			c.Resources.Limits = corev1.ResourceList{v1alpha1.ResourceGPU: *resource.NewQuantity(gpus, resource.DecimalSI)}
		}
		p, err := env.Kube.CoreV1().Pods(ns).Create(h.ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	stray, agent := pod("stray-train", 4), pod("agent", 0)

	id := h.gpr("g", h.workspace("w"), exit("1d0h0m"))
	h.status(id, v1alpha1.GPRProvisioned)
	h.nodeBound(node, id)
	h.podLeaves(ns, stray.Name, fmt.Sprintf("GPU pod of no workspace on node %s bound to %s", node, id))
	p, err := env.Kube.CoreV1().Pods(ns).Get(h.ctx, agent.Name, metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil {
		t.Errorf("pod %s without GPUs was deleted (err %v)", agent.Name, err)
	}
}
