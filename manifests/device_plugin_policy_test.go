package manifests_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestDevicePluginPolicy: with manifests/base applied, the device plugin's
// ServiceAccount (on a token naming its node) may write its node's GPU
// labels and idle-signal annotations, and nothing else: not another
// annotation, not another node.
func TestDevicePluginPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	apply(ctx, t, build(t, "base"), false)
	own, other := "policy-own", "policy-other"
	for _, name := range []string{own, other} {
		if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: name, InstanceType: "g4dn.xlarge", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:gpuspace-device-plugin:gpuspace-device-plugin",
		Groups:   []string{"system:serviceaccounts", "system:authenticated"},
		Extra:    map[string][]string{"authentication.kubernetes.io/node-name": {own}},
	}
	plugin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	patch := func(node string, annotations map[string]any) error {
		body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
		_, err := plugin.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, body, metav1.PatchOptions{})
		return err
	}
	// The policy takes effect shortly after it is created: wait until it
	// refuses a foreign annotation.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		// A new value each time: an unchanged one is no change at all.
		err := patch(own, map[string]any{"example.com/other": strconv.Itoa(i)})
		if err != nil && strings.Contains(err.Error(), "may only change") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("foreign annotation by the device plugin: %v, want refused by the policy", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := patch(own, map[string]any{
		v1alpha1.AnnotationGPUsIdleSince: "2026-12-01T12:00:00Z", v1alpha1.AnnotationGPUUtilization: "0",
	}); err != nil {
		t.Errorf("idle annotations on its own node: %v", err)
	}
	if err := patch(own, map[string]any{v1alpha1.AnnotationGPUsIdleSince: ""}); err != nil {
		t.Errorf("idle annotation turned busy on its own node: %v", err)
	}
	if err := patch(own, map[string]any{v1alpha1.AnnotationGPUUtilization: nil}); err != nil {
		t.Errorf("utilisation annotation removed on its own node: %v", err)
	}
	if err := patch(other, map[string]any{v1alpha1.AnnotationGPUsIdleSince: ""}); err == nil {
		t.Errorf("idle annotation on another node: allowed, want refused")
	}
}
