package apiserver

import (
	"context"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestEndToEndWithControllers drives the whole flow through the API with
// the real controllers doing their part: workspace → ready (namespaces,
// ServiceAccount, RBAC) → kubeconfig that works → inventory → wait time →
// GPR → provisioned on the node → early release → complete → the state
// rules → delete.
func TestEndToEndWithControllers(t *testing.T) {
	startControllers(t)
	ts := newTestServer(t)
	ctx := context.Background()
	sfx := suffix()
	// A cluster of its own, so GPRs other tests left behind never compete.
	cluster, ws, ns, node := "e2e-"+sfx, "e2e-"+sfx, "e2e-ns-"+sfx, "e2e-a100-"+sfx
	addNode(t, testenv.GPUNode{Name: node, Cluster: cluster, InstanceType: "a2-highgpu-1g", Product: "NVIDIA-A100-SXM4-40GB", MemoryMiB: 40960, GPUs: 1})
	waitFor(t, "the API to see cluster "+cluster, func() bool {
		c, _ := ts.srv.knownClusters(ctx)
		for _, x := range c {
			if x == cluster {
				return true
			}
		}
		return false
	})

	r := ts.do(http.MethodPost, "/api/v1/slice-workspace", ts.owner, map[string]any{
		"workspaceName": ws, "clusters": []string{cluster}, "namespaces": []string{ns}, "username": "e2e"})
	if r.code != http.StatusOK {
		t.Fatalf("create workspace: %d %s", r.code, r.raw)
	}
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
		waitFor(t, "workspace gone", func() bool {
			return ts.do(http.MethodGet, "/api/v1/slice-workspace/"+ws, ts.owner, nil).code == http.StatusNotFound
		})
		_ = env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	waitFor(t, "workspace ready", func() bool {
		return ts.do(http.MethodGet, "/api/v1/slice-workspace/"+ws, ts.owner, nil).data()["status"].(map[string]any)["sliceHealthStatus"] == "Normal"
	})

	r = ts.do(http.MethodPost, "/api/v1/slice-workspace/kube-config", ts.owner, map[string]string{"workspaceName": ws})
	if r.code != http.StatusOK {
		t.Fatalf("kubeconfig: %d %s", r.code, r.raw)
	}
	cs := clientFor(t, r.data()["kubeConfig"].(string), ws+"/"+ns+"@"+cluster)
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, testPod(), metav1.CreateOptions{}); err != nil {
		t.Errorf("pod in the workspace namespace with the controller's RBAC: %v", err)
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, testPod(), metav1.CreateOptions{}); err == nil {
		t.Errorf("pod in default with the workspace kubeconfig: allowed")
	}

	gpr := map[string]any{"gprName": "train", "sliceName": ws, "clusterName": cluster, "numberOfGPUs": 1, "gpuShape": "A100",
		"memoryPerGPU": 40, "exitDuration": "0d1h0m", "priority": 250}
	r = ts.do(http.MethodPost, "/api/v1/gpr/waittime", ts.owner, gpr)
	if r.code != http.StatusOK || r.data()["estimatedWaitTime"] != "0h0m0s" {
		t.Errorf("waittime on a free node: %d %s", r.code, r.raw)
	}
	r = ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, gpr)
	if r.code != http.StatusOK {
		t.Fatalf("create GPR: %d %s", r.code, r.raw)
	}
	id := r.data()["gprId"].(string)
	status := func(id string) map[string]any {
		return ts.do(http.MethodGet, "/api/v1/gpr?gprId="+id, ts.owner, nil).data()["status"].(map[string]any)
	}
	waitFor(t, "GPR provisioned", func() bool { return status(id)["provisioningStatus"] == "Provisioned" })
	if nodes := status(id)["nodes"].([]any); len(nodes) != 1 || nodes[0] != node {
		t.Errorf("GPR nodes %v, want [%s]", nodes, node)
	}
	r = ts.do(http.MethodGet, "/api/v1/inventory?sliceName="+ws, ts.owner, nil)
	if items := r.data()["items"].([]any); len(items) != 1 {
		t.Errorf("workspace inventory: %s", r.raw)
	}

	// A second GPR waits behind the first (the node is held for an hour).
	gpr["gprName"] = "eval"
	r = ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, gpr)
	second := r.data()["gprId"].(string)
	waitFor(t, "second GPR estimated", func() bool {
		return ts.do(http.MethodGet, "/api/v1/gpr?gprId="+second, ts.owner, nil).data()["estimatedStartTime"] != ""
	})
	if r := ts.do(http.MethodPut, "/api/v1/gpr", ts.owner, map[string]any{"gprId": second, "earlyRelease": true}); r.code != http.StatusConflict ||
		r.errMsg() != "Cannot update early release of GPR in Queued state" {
		t.Errorf("early release of a queued GPR: %d %s", r.code, r.raw)
	}
	if r := ts.do(http.MethodDelete, "/api/v1/gpr", ts.owner, map[string]any{"gprId": id}); r.code != http.StatusConflict ||
		r.errMsg() != "Cannot delete GPR in Provisioned state" {
		t.Errorf("delete of a provisioned GPR: %d %s", r.code, r.raw)
	}

	// Early release: the first completes, the node passes to the second.
	if r := ts.do(http.MethodPut, "/api/v1/gpr", ts.owner, map[string]any{"gprId": id, "earlyRelease": true}); r.code != http.StatusOK {
		t.Fatalf("early release: %d %s", r.code, r.raw)
	}
	waitFor(t, "first GPR complete", func() bool { return status(id)["provisioningStatus"] == "Complete" })
	waitFor(t, "second GPR provisioned", func() bool { return status(second)["provisioningStatus"] == "Provisioned" })
	if r := ts.do(http.MethodDelete, "/api/v1/gpr", ts.owner, map[string]any{"gprId": id}); r.code != http.StatusConflict ||
		r.errMsg() != "Cannot delete GPR in Complete state" {
		t.Errorf("delete of a complete GPR: %d %s", r.code, r.raw)
	}
	r = ts.do(http.MethodGet, "/api/v1/inventory/list", ts.owner, nil)
	for _, it := range r.data()["items"].([]any) {
		n := it.(map[string]any)
		if n["gpuNodeName"] == node && (n["gpuNodeState"] != "NODE_RESERVED" || n["gprId"] != second) {
			t.Errorf("inventory of %s: %v, want reserved by %s", node, n, second)
		}
	}
	var nodeObj corev1.Node
	if err := env.Client.Get(ctx, keyOf(node), &nodeObj); err != nil || nodeObj.Labels["gpuspace.io/workspace"] != ws {
		t.Errorf("node binding label: %v %v", nodeObj.Labels, err)
	}
}
