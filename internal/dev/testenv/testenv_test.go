package testenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func TestGPUNodeIsReadyWithCapacityAndLabels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := env.AddGPUNode(ctx, testenv.GPUNode{
		Name: "h100-0", InstanceType: "p5.48xlarge", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Status.Allocatable[v1alpha1.ResourceGPU]; got.Value() != 8 {
		t.Errorf("allocatable %s = %s, want 8", v1alpha1.ResourceGPU, got.String())
	}
	if got := node.Status.Allocatable[v1alpha1.ResourceGPUMemory]; got.Value() != 8*79 {
		t.Errorf("allocatable %s = %s, want %d", v1alpha1.ResourceGPUMemory, got.String(), 8*79)
	}
	wantLabels := map[string]string{
		v1alpha1.LabelGPUShape:     "H100",
		v1alpha1.LabelGPUProduct:   "NVIDIA-H100-80GB-HBM3",
		v1alpha1.LabelGPUMemory:    "81559",
		v1alpha1.LabelGPUCount:     "8",
		v1alpha1.LabelInstanceType: "p5.48xlarge",
		v1alpha1.LabelCluster:      v1alpha1.DefaultCluster,
	}
	for k, v := range wantLabels {
		if node.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, node.Labels[k], v)
		}
	}
	if !ready(node) {
		t.Errorf("node not Ready: %+v", node.Status.Conditions)
	}
	for _, taint := range node.Spec.Taints {
		if taint.Key == corev1.TaintNodeNotReady {
			t.Errorf("node still has the not-ready taint")
		}
	}

	if err := env.SetNodeReady(ctx, "h100-0", false); err != nil {
		t.Fatal(err)
	}
	node, err = env.Kube.CoreV1().Nodes().Get(ctx, "h100-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ready(node) {
		t.Errorf("node Ready after SetNodeReady(false)")
	}
}

func TestPodsOnSimulatedNodesRunAndDelete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: "t4-0", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1}); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sim-pods"}}
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "sim-pods"},
		Spec: corev1.PodSpec{
			NodeName:   "t4-0",
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	if _, err := env.Kube.CoreV1().Pods("sim-pods").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := env.Kube.CoreV1().Pods("sim-pods").Get(ctx, "p", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod never Running: %v", err)
	}
	// A graceful delete is confirmed by the simulated kubelet.
	if err := env.Kube.CoreV1().Pods("sim-pods").Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.Kube.CoreV1().Pods("sim-pods").Get(ctx, "p", metav1.GetOptions{})
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("pod never deleted: %v", err)
	}
}

// TestStopLeavesNothing starts a second control plane and checks that Stop
// removes its processes and directory.
func TestStopLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	e, err := testenv.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second control plane ready in %s", time.Since(start).Round(time.Millisecond))
	dir := filepath.Dir(e.Kubeconfig)
	if err := e.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state dir %s still exists (stat: %v)", dir, err)
	}
	out, _ := exec.Command("pgrep", "-f", dir).Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("processes still running for %s: %s", dir, s)
	}
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
