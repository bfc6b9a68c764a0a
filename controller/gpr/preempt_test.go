package gpr_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func evicting(s *v1alpha1.GPUProvisionRequestSpec) { s.EnableEviction = true }

// TestPreemption: three priority-100 GPRs hold the three nodes, started a
// minute apart; an equal-priority GPR that may evict evicts nothing; once
// they are past their minimum runtime, a priority-250 GPR with
// enableEviction evicts the most recently started one, whose pod is
// deleted, and starts on its node in the same pass; the victim, requeued
// with evictedBy and its age, gets a node back when the evictor completes.
func TestPreemption(t *testing.T) {
	h := newHarness(t)
	h.start()
	var nodes, victims []string
	for i := range 3 {
		nodes = append(nodes, h.t4Node(fmt.Sprintf("n%d", i)))
	}
	for i := range 3 {
		id := h.gpr(fmt.Sprintf("low%d", i), h.workspace(fmt.Sprintf("w%d", i)), priority(100), exit("1d0h0m"),
			func(s *v1alpha1.GPUProvisionRequestSpec) { s.RequeueOnFailure = true })
		h.status(id, v1alpha1.GPRProvisioned)
		victims = append(victims, id)
		h.clock.SetTime(h.clock.Now().Add(time.Minute))
	}
	youngest := h.getGPR(victims[2])
	node := youngest.Status.Nodes[0]
	h.nodeBound(node, youngest.Name)

	// A pod of the youngest's workspace on its node.
	ns := h.name("w2-ns")
	h.eventually(func() error {
		_, err := env.Kube.CoreV1().Namespaces().Get(h.ctx, ns, metav1.GetOptions{})
		return err
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: ns},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if _, err := env.Kube.CoreV1().Pods(ns).Create(h.ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Creation times have whole seconds and ties go by name: make the
	// victims older than equal for the queue's order at the end.
	time.Sleep(1100 * time.Millisecond)
	equal := h.gpr("equal", h.workspace("we"), priority(100), evicting)
	urgent := h.gpr("urgent", h.workspace("wu"), priority(250), exit("0d1h0m"), evicting)
	// Inside the minimum runtime (the youngest ran 1 minute): nothing.
	h.advance(time.Minute, urgent)
	time.Sleep(time.Second)
	for _, id := range victims {
		if g := h.getGPR(id); g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
			t.Fatalf("GPR %s is %s inside its minimum runtime, want Provisioned", id, g.Status.ProvisioningStatus)
		}
	}

	h.advance(10*time.Minute, urgent)
	u := h.status(urgent, v1alpha1.GPRProvisioned)
	if len(u.Status.Nodes) != 1 || u.Status.Nodes[0] != node {
		t.Errorf("urgent on %v, want the youngest victim's node %s", u.Status.Nodes, node)
	}
	v := h.status(victims[2], v1alpha1.GPRQueued)
	if v.Status.Reason != v1alpha1.ReasonEvicted || v.Status.EvictedBy != urgent || v.Status.RetryCount != 1 || len(v.Status.Nodes) != 0 {
		t.Errorf("victim status %+v, want Queued, Evicted by %s, retryCount 1, no nodes", v.Status, urgent)
	}
	for _, id := range victims[:2] {
		if g := h.getGPR(id); g.Status.ProvisioningStatus != v1alpha1.GPRProvisioned {
			t.Errorf("older GPR %s is %s, want still Provisioned", id, g.Status.ProvisioningStatus)
		}
	}
	if g := h.getGPR(equal); g.Status.ProvisioningStatus != v1alpha1.GPRQueued {
		t.Errorf("equal-priority GPR is %s, want Queued (it must never evict)", g.Status.ProvisioningStatus)
	}
	h.nodeBound(node, urgent)
	h.eventually(func() error {
		p, err := env.Kube.CoreV1().Pods(ns).Get(h.ctx, "train", metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil) {
			return nil
		}
		return fmt.Errorf("victim's pod still running on %s: %v", node, err)
	})

	// The evictor completes: the victim, older than equal, gets the node.
	h.advance(time.Hour, urgent)
	h.status(urgent, v1alpha1.GPRComplete)
	back := h.status(victims[2], v1alpha1.GPRProvisioned)
	if back.Status.Nodes[0] != node {
		t.Errorf("victim back on %v, want %s", back.Status.Nodes, node)
	}
}
