package labels

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/device-plugin/health"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// manifestDir holds the DaemonSet's RBAC and admission policy.
const manifestDir = "../../manifests/device-plugin"

// applyManifests creates the objects of the named manifest files.
func applyManifests(t *testing.T, ctx context.Context, files ...string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(manifestDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for doc := range strings.SplitSeq(string(b), "\n---\n") {
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			o := obj.(client.Object)
			if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("create %s %s: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
			}
		}
	}
}

// pluginClient is the device plugin's ServiceAccount as a pod on node
// sees it: its bound token names the node.
func pluginClient(t *testing.T, node string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:gpuspace-device-plugin:gpuspace-device-plugin",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:gpuspace-device-plugin", "system:authenticated"},
		Extra:    map[string][]string{"authentication.kubernetes.io/node-name": {node}},
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestManifestsConfineThePluginToItsNode checks manifests/device-plugin's
// RBAC and ValidatingAdmissionPolicy on the real apiserver: the plugin
// labels its own node, and nothing else.
func TestManifestsConfineThePluginToItsNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applyManifests(t, ctx, "namespace.yaml", "rbac.yaml", "admission-policy.yaml")
	createNode(t, ctx, "gpu-own", map[string]string{"kubernetes.io/hostname": "gpu-own"}, "kubelet")
	createNode(t, ctx, "gpu-other", map[string]string{"kubernetes.io/hostname": "gpu-other"}, "kubelet")
	gpus := gpusOf(t, "dgxh100")
	c := pluginClient(t, "gpu-own")

	// The policy takes effect once the apiserver has compiled it: wait
	// until labelling the other node is refused.
	other := &Labeler{Client: c, Node: "gpu-other", Log: logr.Discard()}
	for {
		_, err := other.Apply(ctx, gpus)
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			if !strings.Contains(err.Error(), "only change the node it runs on") {
				t.Errorf("labelling another node refused for the wrong reason: %v", err)
			}
			break
		}
		if err == nil {
			// Before the policy is active RBAC alone lets it through;
			// undo and try again.
			env.Kube.CoreV1().Nodes().Patch(ctx, "gpu-other", types.JSONPatchType,
				[]byte(`[{"op":"remove","path":"/metadata/labels/gpuspace.io~1gpu.shape"}]`), metav1.PatchOptions{})
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the admission policy never refused labelling another node; last: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}

	own := &Labeler{Client: c, Node: "gpu-own", Log: logr.Discard()}
	if _, err := own.Apply(ctx, gpus); err != nil {
		t.Fatalf("labelling its own node: %v", err)
	}
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, "gpu-own", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels["gpuspace.io/gpu.shape"] != "H100" {
		t.Errorf("own node labels: %v", n.Labels)
	}

	// Anything but the GPU labels on its own node is refused.
	refused := []struct {
		name  string
		patch string
	}{
		{"another label", `{"metadata":{"labels":{"gpuspace.io/workspace":"stolen"}}}`},
		{"removing a label", `{"metadata":{"labels":{"kubernetes.io/hostname":null}}}`},
		{"a taint", `{"spec":{"taints":[{"key":"x","effect":"NoSchedule"}]}}`},
		{"an annotation", `{"metadata":{"annotations":{"x":"y"}}}`},
	}
	for _, tt := range refused {
		_, err := c.CoreV1().Nodes().Patch(ctx, "gpu-own", types.MergePatchType, []byte(tt.patch), metav1.PatchOptions{})
		if err == nil || !strings.Contains(err.Error(), "only change the node's GPU labels") {
			t.Errorf("%s on its own node: %v, want refused by the policy", tt.name, err)
		}
	}
	// And RBAC keeps it from everything but get and patch.
	if err := c.CoreV1().Nodes().Delete(ctx, "gpu-own", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("deleting its node: %v, want Forbidden", err)
	}
	if _, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing nodes: %v, want Forbidden", err)
	}
	if _, err := c.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets: %v, want Forbidden", err)
	}
	// Events about its node are allowed.
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "gpu-own.", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "gpu-own"},
		Reason:         "GPUUnhealthy", Message: "test", Type: corev1.EventTypeWarning,
	}
	if _, err := c.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Errorf("recording an event: %v", err)
	}
}

// TestNVMLFailureEvent runs a health monitor whose NVML stops answering,
// recording with the plugin's own (impersonated) credentials: a Warning
// NVMLUnresponsive event about the node reaches the API.
func TestNVMLFailureEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applyManifests(t, ctx, "namespace.yaml", "rbac.yaml")
	createNode(t, ctx, "gpu-events", nil, "kubelet")

	m, err := nvml.NewMock("t4x1")
	if err != nil {
		t.Fatal(err)
	}
	lib, _, err := m.InitLib()
	if err != nil {
		t.Fatal(err)
	}
	rec, stopRec := health.NewNodeRecorder(pluginClient(t, "gpu-events"), "gpu-events")
	defer stopRec()
	mon := health.NewMonitor(lib, m.UUIDs(), health.Config{ProbeInterval: 10 * time.Millisecond, Recorder: rec})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { mon.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	m.SetFailing(gonvml.ERROR_UNKNOWN)
	for {
		evs, err := env.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node,involvedObject.name=gpu-events,reason=NVMLUnresponsive",
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs.Items) > 0 {
			e := evs.Items[0]
			if e.Type != corev1.EventTypeWarning || e.Source.Component != "gpuspace-device-plugin" {
				t.Errorf("event %+v: want a Warning from gpuspace-device-plugin", e)
			}
			if len(mon.Unhealthy()) != 1 {
				t.Errorf("unhealthy = %v, want the one GPU", mon.Unhealthy())
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("no NVMLUnresponsive event recorded")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
