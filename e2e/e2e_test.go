// Package e2e is gpuspace's end-to-end suite: it drives a live system only
// through what users have — the REST API, MCP at /mcp, and kubeconfigs —
// and checks what they would see. `make e2e` runs it against `gpuspace dev`;
// `make e2e-kind` against a kind cluster. See client_test.go for the
// environment it reads.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

type inventoryNode struct {
	GPUNodeName  string `json:"gpuNodeName"`
	GPUShape     string `json:"gpuShape"`
	InstanceType string `json:"instanceType"`
	ClusterName  string `json:"clusterName"`
	Memory       int    `json:"memory"`
	GPUCount     int    `json:"gpuCount"`
	FreeGPUs     int    `json:"freeGPUs"`
	GPRID        string `json:"gprId"`
}

type gpr struct {
	GPRID             string `json:"gprId"`
	SliceName         string `json:"sliceName"`
	EstimatedWaitTime string `json:"estimatedWaitTime"`
	Status            struct {
		ProvisioningStatus string   `json:"provisioningStatus"`
		Nodes              []string `json:"nodes"`
		InternalState      string   `json:"internalState"`
	} `json:"status"`
}

// pickShape returns the GPU shape with the most free nodes in the hub's
// cluster (the one the suite's admin kubeconfig reaches), and a node of
// it, so the suite fits whatever inventory the system has.
func pickShape(t *testing.T, nodes []inventoryNode) inventoryNode {
	t.Helper()
	free := map[string][]inventoryNode{}
	for _, n := range nodes {
		if n.GPRID == "" && n.FreeGPUs > 0 && (n.ClusterName == hubCluster || n.ClusterName == "") {
			free[n.GPUShape] = append(free[n.GPUShape], n)
		}
	}
	var best []inventoryNode
	shapes := make([]string, 0, len(free))
	for s := range free {
		shapes = append(shapes, s)
	}
	sort.Strings(shapes)
	for _, s := range shapes {
		if len(free[s]) > len(best) {
			best = free[s]
		}
	}
	if len(best) < 2 {
		t.Fatalf("the e2e suite needs two free GPU nodes of one shape; inventory: %+v", nodes)
	}
	return best[0]
}

// TestWorkspaceToGPUs is the user's journey: API key → token → workspace →
// kubeconfig → GPR → a Deployment runs on the bound nodes only → a second
// GPR waits → early release evicts the pods → the second GPR is provisioned
// and the workload moves there.
func TestWorkspaceToGPUs(t *testing.T) {
	s := newSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ws, ns := unique("e2e-ws"), unique("e2e-ns")
	s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/slice-workspace", map[string]any{
		"workspaceName": ws, "clusters": []string{"worker-1"}, "namespaces": []string{ns},
		"username": "E2E User", "email": "e2e@example.com",
	}, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// The test's GPU pods go first: the workspace's namespaces are kept
		// when it is deleted, and pods left running would keep their node's
		// GPUs busy for the next test (the idle-release test uses them).
		_ = s.kube.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		for ctx.Err() == nil {
			pods, err := s.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=e2e-gpu"})
			if err == nil && len(pods.Items) == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		s.call(ctx, t, s.owner, http.MethodDelete, "/api/v1/slice-workspace", map[string]string{"workspaceName": ws})
	})

	// The workspace's own kubeconfig: works in its namespace only.
	var kc struct {
		KubeConfig string `json:"kubeConfig"`
	}
	eventually(t, time.Minute, "workspace kubeconfig", func() (bool, error) {
		code, env := s.call(ctx, t, s.owner, http.MethodPost, "/api/v1/slice-workspace/kube-config",
			map[string]string{"workspaceName": ws, "clusterName": "worker-1"})
		if code != http.StatusOK {
			return false, nil
		}
		return true, jsonUnmarshal(env.Data, &kc)
	})
	user := kubeFromKubeconfig(t, kc.KubeConfig)
	if _, err := user.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{}); err == nil {
		t.Errorf("workspace kubeconfig can list pods in kube-system")
	}

	var inv struct {
		Items []inventoryNode `json:"items"`
	}
	s.must(ctx, t, s.owner, http.MethodGet, "/api/v1/inventory/list", nil, &inv)
	node := pickShape(t, inv.Items)
	t.Logf("using shape %s (%s, %d GPUs per node)", node.GPUShape, node.InstanceType, node.GPUCount)

	request := func(name string, nodes int) map[string]any {
		return map[string]any{
			"gprName": name, "sliceName": ws, "clusterName": node.ClusterName,
			"numberOfGPUs": 1, "numberOfGPUNodes": nodes, "instanceType": node.InstanceType,
			"gpuShape": node.GPUShape, "memoryPerGPU": node.Memory, "exitDuration": "0d1h0m", "priority": 201,
		}
	}
	var first struct {
		GPRID string `json:"gprId"`
	}
	s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/gpr", request("first", 2), &first)
	bound := s.waitProvisioned(ctx, t, first.GPRID)
	t.Logf("GPR %s provisioned on %v", first.GPRID, bound)

	// A Deployment created with the workspace's kubeconfig lands on the
	// GPR's nodes and nowhere else.
	dep := gpuDeployment(ns, 2)
	if _, err := user.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment with the workspace kubeconfig: %v", err)
	}
	s.waitPodsRunningOn(ctx, t, ns, bound, 1)

	// A second GPR of the same workspace waits for the first to end.
	var wait struct {
		EstimatedWaitTime string `json:"estimatedWaitTime"`
		Satisfiable       bool   `json:"satisfiable"`
	}
	s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/gpr/waittime", request("second", 1), &wait)
	if !wait.Satisfiable || wait.EstimatedWaitTime == "0h0m0s" || wait.EstimatedWaitTime == "" {
		t.Errorf("waittime of a second GPR while the first holds nodes for 1h: %+v, want a non-zero wait", wait)
	}
	var second struct {
		GPRID string `json:"gprId"`
	}
	s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/gpr", request("second", 1), &second)
	if g := s.getGPR(ctx, t, second.GPRID); g.Status.ProvisioningStatus != "Queued" {
		t.Errorf("second GPR is %s, want Queued behind the first", g.Status.ProvisioningStatus)
	}

	// Early release: the nodes are freed, the pods evicted, the second GPR
	// starts and the Deployment's new pods run on its node.
	s.must(ctx, t, s.owner, http.MethodPut, "/api/v1/gpr", map[string]any{"gprId": first.GPRID, "earlyRelease": true}, nil)
	eventually(t, time.Minute, "first GPR Complete", func() (bool, error) {
		return s.getGPR(ctx, t, first.GPRID).Status.ProvisioningStatus == "Complete", nil
	})
	next := s.waitProvisioned(ctx, t, second.GPRID)
	t.Logf("GPR %s provisioned on %v", second.GPRID, next)
	s.waitPodsRunningOn(ctx, t, ns, next, 1)
	for _, n := range bound {
		nd, err := s.kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(next, n) && nd.Labels["gpuspace.io/workspace"] != "" {
			t.Errorf("released node %s still labelled for workspace %q", n, nd.Labels["gpuspace.io/workspace"])
		}
	}
	s.must(ctx, t, s.owner, http.MethodPut, "/api/v1/gpr", map[string]any{"gprId": second.GPRID, "earlyRelease": true}, nil)
}

// TestViewerCannotMutate: a Viewer key reads but every write is a 403 in
// the envelope.
func TestViewerCannotMutate(t *testing.T) {
	s := newSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var created struct {
		APIKey string `json:"apiKey"`
	}
	s.must(ctx, t, s.owner, http.MethodPost, "/api/v1/api-key", map[string]any{
		"name": unique("e2e-viewer"), "userName": "viewer", "role": "Viewer", "description": "e2e",
	}, &created)
	viewer := s.token(t, created.APIKey)

	s.must(ctx, t, viewer, http.MethodGet, "/api/v1/inventory/list", nil, nil)
	s.must(ctx, t, viewer, http.MethodGet, "/api/v1/slice-workspace/list", nil, nil)
	writes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/v1/slice-workspace", map[string]any{"workspaceName": "viewer-ws", "clusters": []string{"worker-1"}, "namespaces": []string{"viewer-ns"}, "username": "v", "email": "v@example.com"}},
		{http.MethodPost, "/api/v1/gpr", map[string]any{"gprName": "v", "sliceName": "viewer-ws", "clusterName": "worker-1", "numberOfGPUs": 1, "numberOfGPUNodes": 1, "exitDuration": "0d0h5m"}},
		{http.MethodPost, "/api/v1/api-key", map[string]any{"name": "escalate", "userName": "v", "role": "Owner"}},
	}
	for _, w := range writes {
		code, env := s.call(ctx, t, viewer, w.method, w.path, w.body)
		if code != http.StatusForbidden || env.Error == nil {
			t.Errorf("Viewer %s %s: HTTP %d %+v, want 403 with an error envelope", w.method, w.path, code, env)
		}
	}
}

func (s *suite) getGPR(ctx context.Context, t *testing.T, id string) gpr {
	t.Helper()
	var g gpr
	s.must(ctx, t, s.owner, http.MethodGet, "/api/v1/gpr?gprId="+id, nil, &g)
	return g
}

func (s *suite) waitProvisioned(ctx context.Context, t *testing.T, id string) []string {
	t.Helper()
	var g gpr
	eventually(t, 2*time.Minute, "GPR "+id+" Provisioned", func() (bool, error) {
		g = s.getGPR(ctx, t, id)
		if g.Status.ProvisioningStatus == "Error" {
			t.Fatalf("GPR %s went to Error: %+v", id, g)
		}
		return g.Status.ProvisioningStatus == "Provisioned" && len(g.Status.Nodes) > 0, nil
	})
	return g.Status.Nodes
}

// waitPodsRunningOn waits until at least min pods of ns run and every
// scheduled pod is on one of nodes. A pod on a node the workspace has just
// lost is deleted in the plan pass that wrote the start the caller saw, a
// moment later: it is waited for, and fails the test only if it stays.
func (s *suite) waitPodsRunningOn(ctx context.Context, t *testing.T, ns string, nodes []string, min int) {
	t.Helper()
	eventually(t, 2*time.Minute, "workspace pods Running on the GPR's nodes only", func() (bool, error) {
		pods, err := s.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=e2e-gpu"})
		if err != nil {
			return false, err
		}
		running := 0
		var outside error
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
				continue
			}
			if !slices.Contains(nodes, p.Spec.NodeName) {
				outside = fmt.Errorf("pod %s runs on %s, outside the workspace's nodes %v", p.Name, p.Spec.NodeName, nodes)
				continue
			}
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running >= min && outside == nil, outside
	})
}

func gpuDeployment(ns string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": "e2e-gpu"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-gpu", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name:    "cuda",
						Image:   "registry.k8s.io/pause:3.10",
						Command: []string{"/pause"},
						Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
						},
					}},
				},
			},
		},
	}
}

func kubeFromKubeconfig(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
	if err != nil {
		t.Fatalf("parse workspace kubeconfig: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
