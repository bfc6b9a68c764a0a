package labels

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func gpusOf(t *testing.T, server string) []nvml.GPU {
	t.Helper()
	_, _, gpus := nvml.MustMock(t, server)
	return gpus
}

func TestFor(t *testing.T) {
	tests := []struct {
		server string
		want   map[string]string
	}{
		{"dgxh100", map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory": "81920",
			"nvidia.com/gpu.count": "8", "gpuspace.io/gpu.shape": "H100"}},
		{"dgxa100", map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "nvidia.com/gpu.memory": "40960",
			"nvidia.com/gpu.count": "8", "gpuspace.io/gpu.shape": "A100"}},
		{"dgxh200", map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-H200-141GB-HBM3e", "nvidia.com/gpu.memory": "144384",
			"nvidia.com/gpu.count": "8", "gpuspace.io/gpu.shape": "H200"}},
		{"dgxb200", map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-B200-180GB-HBM3e", "nvidia.com/gpu.memory": "184320",
			"nvidia.com/gpu.count": "8", "gpuspace.io/gpu.shape": "B200"}},
		{"t4x1", map[string]string{
			"nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.memory": "15360",
			"nvidia.com/gpu.count": "1", "gpuspace.io/gpu.shape": "T4"}},
		// Two A100s outnumber the A30 and the T4; count is all four.
		{"mixed", map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-A100-PCIE-80GB", "nvidia.com/gpu.memory": "81920",
			"nvidia.com/gpu.count": "4", "gpuspace.io/gpu.shape": "A100"}},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, For(gpusOf(t, tt.server))); diff != "" {
				t.Errorf("For (-want +got):\n%s", diff)
			}
		})
	}
	if got := For(nil); len(got) != 0 {
		t.Errorf("For(no GPUs) = %v, want no labels", got)
	}
}

func TestLabelValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"},
		{" Tesla T4 ", "Tesla-T4"},
		{"NVIDIA GeForce RTX 4090 (rev a1)", "NVIDIA-GeForce-RTX-4090-rev-a1"},
		{strings.Repeat("A", 70), strings.Repeat("A", 63)},
		{"(x)", "x"},
	}
	for _, tt := range tests {
		if got := LabelValue(tt.in); got != tt.want {
			t.Errorf("LabelValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func createNode(t *testing.T, ctx context.Context, name string, labels map[string]string, manager string) *corev1.Node {
	t.Helper()
	n, err := env.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{FieldManager: manager})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Kube.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return n
}

// owned lists the labels a field manager owns on a node.
func owned(t *testing.T, n *corev1.Node, manager string) []string {
	t.Helper()
	var out []string
	for k := range n.Labels {
		for _, mf := range n.ManagedFields {
			if mf.Manager == manager && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:`+k+`"`) {
				out = append(out, k)
			}
		}
	}
	return out
}

func TestApply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createNode(t, ctx, "gpu-plain", map[string]string{"kubernetes.io/hostname": "gpu-plain"}, "kubelet")
	l := &Labeler{Client: env.Kube, Node: "gpu-plain", Log: logr.Discard()}

	if _, err := l.Apply(ctx, gpusOf(t, "dgxh100")); err != nil {
		t.Fatal(err)
	}
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, "gpu-plain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kubernetes.io/hostname": "gpu-plain",
		"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory": "81920",
		"nvidia.com/gpu.count": "8", "gpuspace.io/gpu.shape": "H100",
	}
	if diff := cmp.Diff(want, n.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got := len(owned(t, n, FieldManager)); got != 4 {
		t.Errorf("%s owns %d labels, want 4: %v", FieldManager, got, n.ManagedFields)
	}

	// The GPUs change (a T4 node image on the same name): the labels follow,
	// and no label of the old set is left over.
	if _, err := l.Apply(ctx, gpusOf(t, "t4x1")); err != nil {
		t.Fatal(err)
	}
	n, _ = env.Kube.CoreV1().Nodes().Get(ctx, "gpu-plain", metav1.GetOptions{})
	want["nvidia.com/gpu.product"], want["nvidia.com/gpu.memory"] = "Tesla-T4", "15360"
	want["nvidia.com/gpu.count"], want["gpuspace.io/gpu.shape"] = "1", "T4"
	if diff := cmp.Diff(want, n.Labels); diff != "" {
		t.Errorf("labels after the GPUs changed (-want +got):\n%s", diff)
	}

	// No GPUs at all: our labels go, others stay.
	if _, err := l.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n, _ = env.Kube.CoreV1().Nodes().Get(ctx, "gpu-plain", metav1.GetOptions{})
	if diff := cmp.Diff(map[string]string{"kubernetes.io/hostname": "gpu-plain"}, n.Labels); diff != "" {
		t.Errorf("labels without GPUs (-want +got):\n%s", diff)
	}
}

func TestApplyLeavesFeatureDiscoveryLabels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name    string
		labels  map[string]string
		manager string
	}{
		// GFD writes its labels with an update under its own manager.
		{"owned by gpu-feature-discovery", map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-GFD", "nvidia.com/gpu.memory": "81559",
			"nvidia.com/gpu.count": "8"}, "gpu-feature-discovery"},
		// Labels present with GFD's timestamp, whoever wrote them.
		{"gfd timestamp", map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-GFD", "nvidia.com/gpu.memory": "81559",
			"nvidia.com/gpu.count": "8", "nvidia.com/gfd.timestamp": "1700000000"}, FieldManager + "-not"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := []string{"gpu-gfd", "gpu-gfd-ts"}[i]
			createNode(t, ctx, name, tt.labels, tt.manager)
			l := &Labeler{Client: env.Kube, Node: name, Log: logr.Discard()}
			applied, err := l.Apply(ctx, gpusOf(t, "dgxh100"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"gpuspace.io/gpu.shape": "H100"}, applied); diff != "" {
				t.Errorf("applied (-want +got):\n%s", diff)
			}
			n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"gpuspace.io/gpu.shape": "H100"}
			for k, v := range tt.labels {
				want[k] = v
			}
			if diff := cmp.Diff(want, n.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"gpuspace.io/gpu.shape"}, owned(t, n, FieldManager)); diff != "" {
				t.Errorf("labels owned by %s (-want +got):\n%s", FieldManager, diff)
			}
		})
	}
}

func TestApplyNeverCreatesANode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := &Labeler{Client: env.Kube, Node: "no-such-node", Log: logr.Discard()}
	if _, err := l.Apply(ctx, gpusOf(t, "t4x1")); !apierrors.IsNotFound(err) {
		t.Errorf("Apply to a missing node: %v, want NotFound", err)
	}
	if _, err := env.Kube.CoreV1().Nodes().Get(ctx, "no-such-node", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node exists after Apply: %v", err)
	}
}

// TestRunRetries starts labelling before the node exists, as a plugin
// scheduled early may: the labels arrive once the node does.
func TestRunRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := &Labeler{Client: env.Kube, Node: "gpu-late", Log: logr.Discard()}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Run(runCtx, gpusOf(t, "t4x1"), time.Hour, 20*time.Millisecond); close(done) }()
	defer func() { stop(); <-done }()
	time.Sleep(50 * time.Millisecond)
	createNode(t, ctx, "gpu-late", nil, "kubelet")
	for {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, "gpu-late", metav1.GetOptions{})
		if err == nil && n.Labels["gpuspace.io/gpu.shape"] == "T4" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("labels never applied: %v %v", n.Labels, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
