package e2e

import (
	"context"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// hubCluster is the cluster gpuspace runs in (gpuspace dev's, and the
// suite's admin kubeconfig's).
const hubCluster = "worker-1"

// TestMultiCluster is the multi-cluster journey, only through what a user
// has, against a system with a worker cluster besides the hub's own
// (`gpuspace dev --clusters 2`; skipped with one cluster): the inventory
// shows both clusters; a workspace on both gets a kubeconfig for the
// worker from the REST API, which reaches the worker's own API server and
// works in the workspace's namespace only; a GPR for the worker binds a
// node there; a GPU pod created with that kubeconfig is placed by the
// worker's own gpuspace-scheduler on the bound node and runs.
func TestMultiCluster(t *testing.T) {
	s := newSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var inv struct {
		Items []inventoryNode `json:"items"`
	}
	s.must(ctx, t, s.owner, http.MethodGet, "/api/v1/inventory/list", nil, &inv)
	var worker *inventoryNode
	clusters := map[string]bool{}
	for i, n := range inv.Items {
		clusters[n.ClusterName] = true
		if n.ClusterName != hubCluster && n.GPRID == "" && n.FreeGPUs > 0 && (worker == nil || n.GPUNodeName < worker.GPUNodeName) {
			worker = &inv.Items[i]
		}
	}
	if worker == nil {
		t.Skipf("the system has no free GPU node outside cluster %s (gpuspace dev --clusters 2 has); clusters: %v", hubCluster, clusters)
	}
	if !clusters[hubCluster] {
		t.Errorf("inventory has no node of the hub's cluster %s: %v", hubCluster, clusters)
	}
	c := worker.ClusterName
	t.Logf("worker cluster %s, node %s (%s, %d GPUs)", c, worker.GPUNodeName, worker.GPUShape, worker.GPUCount)

	ws, ns := unique("e2e-mc"), unique("e2e-mc-ns")
	s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/slice-workspace", map[string]any{
		"workspaceName": ws, "clusters": []string{hubCluster, c}, "namespaces": []string{ns},
		"username": "E2E User", "email": "e2e@example.com",
	}, nil)
	var gprID string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if gprID != "" {
			s.call(ctx, t, s.owner, http.MethodPut, "/api/v1/gpr", map[string]any{"gprId": gprID, "earlyRelease": true})
		}
		s.call(ctx, t, s.owner, http.MethodDelete, "/api/v1/slice-workspace", map[string]string{"workspaceName": ws})
	})

	// The workspace's kubeconfig for the worker: the worker's API server,
	// the workspace's namespace there and nothing else.
	var kc struct {
		KubeConfig string `json:"kubeConfig"`
	}
	eventually(t, time.Minute, "workspace kubeconfig for "+c, func() (bool, error) {
		code, env := s.call(ctx, t, s.owner, http.MethodPost, "/api/v1/slice-workspace/kube-config",
			map[string]string{"workspaceName": ws, "clusterName": c})
		if code != http.StatusOK {
			return false, nil
		}
		return true, jsonUnmarshal(env.Data, &kc)
	})
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc.KubeConfig))
	if err != nil {
		t.Fatal(err)
	}
	hubCfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv(envKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host == hubCfg.Host {
		t.Errorf("workspace kubeconfig for %s points at the hub's API server %s", c, cfg.Host)
	}
	user := kubeFromKubeconfig(t, kc.KubeConfig)
	if _, err := s.kube.CoreV1().Nodes().Get(ctx, worker.GPUNodeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node %s of %s in the hub's cluster: %v, want NotFound", worker.GPUNodeName, c, err)
	}
	eventually(t, time.Minute, "workspace namespace usable in "+c, func() (bool, error) {
		_, err := user.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil, err
	})
	if _, err := user.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("workspace kubeconfig for %s in namespace default: %v, want Forbidden", c, err)
	}

	// A GPR for the worker binds one of its nodes.
	var created struct {
		GPRID string `json:"gprId"`
	}
	s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/gpr", map[string]any{
		"gprName": "mc", "sliceName": ws, "clusterName": c, "numberOfGPUs": 1, "numberOfGPUNodes": 1,
		"instanceType": worker.InstanceType, "gpuShape": worker.GPUShape, "memoryPerGPU": worker.Memory,
		"exitDuration": "0d1h0m", "priority": 201,
	}, &created)
	gprID = created.GPRID
	bound := s.waitProvisioned(ctx, t, gprID)
	t.Logf("GPR %s provisioned on %v", gprID, bound)
	s.must(ctx, t, s.owner, http.MethodGet, "/api/v1/inventory/list", nil, &inv)
	for _, n := range inv.Items {
		if slices.Contains(bound, n.GPUNodeName) && n.ClusterName != c {
			t.Errorf("GPR for %s bound node %s of cluster %s", c, n.GPUNodeName, n.ClusterName)
		}
		if n.GPRID == gprID && !slices.Contains(bound, n.GPUNodeName) {
			t.Errorf("inventory shows node %s held by %s, which holds %v", n.GPUNodeName, gprID, bound)
		}
	}

	// A GPU pod created kubectl-style with the workspace's kubeconfig:
	// the worker's gpuspace-scheduler places it on the bound node.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-mc-gpu", Namespace: ns, Labels: map[string]string{"app": "e2e-gpu"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name: "cuda", Image: "registry.k8s.io/pause:3.10", Command: []string{"/pause"},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}},
			}},
		},
	}
	if _, err := user.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod in %s with the workspace kubeconfig: %v", c, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = user.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	})
	var got *corev1.Pod
	eventually(t, 2*time.Minute, "the GPU pod Running on the bound node in "+c, func() (bool, error) {
		got, err = user.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Spec.NodeName != "" && got.Status.Phase == corev1.PodRunning, nil
	})
	if !slices.Contains(bound, got.Spec.NodeName) {
		t.Fatalf("pod scheduled on %s, outside the GPR's nodes %v", got.Spec.NodeName, bound)
	}
	t.Logf("pod %s/%s Running on %s in %s", ns, pod.Name, got.Spec.NodeName, c)
}
