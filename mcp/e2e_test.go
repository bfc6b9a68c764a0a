package mcp

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// TestEndToEnd drives every tool against the real control plane, with the
// workspace and GPR controllers running so that workspaces become ready
// and GPRs really provision, through two independent client libraries
// over every transport: mcp-go in process and over streamable HTTP, and
// the official Go SDK over stdio (`gpuspace mcp`, forwarding to the REST
// API over HTTP) and streamable HTTP.
func TestEndToEnd(t *testing.T) {
	startControllers(t)
	h := newHarness(t)
	ownerTok := h.token(t, h.owner)
	mcpURL := h.http.URL + "/mcp"

	clients := []struct {
		name    string
		connect func(t *testing.T) mcpClient
	}{
		{"mcpgo-inprocess", func(t *testing.T) mcpClient { return mcpgoInProcess(t, h.mcp, ownerTok) }},
		{"mcpgo-http", func(t *testing.T) mcpClient { return mcpgoHTTP(t, mcpURL, ownerTok) }},
		{"sdk-stdio", func(t *testing.T) mcpClient {
			return sdkStdio(t, StdioConfig{ServerURL: h.http.URL, APIKey: h.owner})
		}},
		{"sdk-http", func(t *testing.T) mcpClient { return sdkHTTP(t, mcpURL, ownerTok) }},
	}
	for i, tc := range clients {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.connect(t)
			listed := names(c.tools(t))
			called := flow(t, c, fmt.Sprintf("e2e%d-%s", i, suffix()))
			if diff := cmp.Diff(listed, called); diff != "" {
				t.Errorf("tools listed (-) but not called end to end (+):\n%s", diff)
			}
		})
	}
}

// flow is an agent's session: a workspace, the inventory, a wait-time
// estimate, a GPR that provisions, a second that queues and is deleted,
// early release, keys, and the workspace's deletion. It returns the tools
// it called, sorted.
func flow(t *testing.T, c mcpClient, ws string) []string {
	called := map[string]bool{}
	call := func(name string, args map[string]any) callResult {
		t.Helper()
		called[name] = true
		return c.call(t, name, args)
	}
	ctx := context.Background()
	node, instanceType := ws+"-node", "it-"+ws
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: node, InstanceType: instanceType,
		Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8}); err != nil {
		t.Fatalf("add node: %v", err)
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}) })
	namespace := ws + "-ns"
	wsArgs := map[string]any{"workspaceName": ws, "clusters": []any{"worker-1"}, "namespaces": []any{namespace}, "username": "alice"}

	// Workspace.
	if got := call("workspaces_create", wsArgs).data(t)["workspaceName"]; got != ws {
		t.Fatalf("workspaces_create: workspaceName %v", got)
	}
	waitFor(t, "workspace ready", func() bool {
		for _, w := range call("workspaces_list", nil).data(t)["workspaces"].([]any) {
			w := w.(map[string]any)
			if w["name"] == ws {
				return w["ready"] == true
			}
		}
		t.Fatalf("workspaces_list lacks %s", ws)
		return false
	})
	if got := call("workspaces_get", map[string]any{"name": ws}).data(t)["name"]; got != ws {
		t.Errorf("workspaces_get: name %v", got)
	}
	upd := map[string]any{"name": ws, "clusters": []any{"worker-1"}, "namespaces": []any{namespace}, "username": "bob"}
	call("workspaces_update", upd).data(t)
	if got := call("workspaces_get", map[string]any{"name": ws}).data(t)["username"]; got != "bob" {
		t.Errorf("after workspaces_update: username %v, want bob", got)
	}
	if got := call("workspaces_network_metrics", map[string]any{"workspace": ws}).data(t)["workspaceName"]; got != ws {
		t.Errorf("workspaces_network_metrics: workspaceName %v", got)
	}

	// Inventory and wait time.
	var inv map[string]any
	for _, n := range call("inventory_list", nil).data(t)["items"].([]any) {
		if n := n.(map[string]any); n["gpuNodeName"] == node {
			inv = n
		}
	}
	want := map[string]any{"gpuShape": "H100", "instanceType": instanceType, "gpuCount": 8.0, "freeGPUs": 8.0, "memory": 80.0}
	got := map[string]any{}
	for k := range want {
		got[k] = inv[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory_list entry of %s (-want +got):\n%s", node, diff)
	}
	gpr := map[string]any{"sliceName": ws, "gprName": "train", "numberOfGPUs": 8, "instanceType": instanceType,
		"gpuShape": "H100", "memoryPerGPU": 80, "exitDuration": "0d1h0m", "priority": 120}
	if wt := call("gprs_waittime", gpr).data(t); wt["satisfiable"] != true {
		t.Errorf("gprs_waittime: %v", wt)
	}

	// A GPR that provisions.
	a := call("gprs_create", gpr).data(t)["gprId"].(string)
	var got1 map[string]any
	waitFor(t, "GPR provisioned", func() bool {
		got1 = call("gprs_get", map[string]any{"gprId": a}).data(t)
		return status(got1) == "Provisioned"
	})
	if nodes := got1["status"].(map[string]any)["nodes"].([]any); !slices.Contains(nodes, any(node)) {
		t.Errorf("gprs_get: nodes %v, want %s", nodes, node)
	}
	items := call("inventory_workspace", map[string]any{"sliceName": ws}).data(t)["items"].([]any)
	if len(items) != 1 || !slices.Contains(items[0].(map[string]any)["nodeName"].([]any), any(node)) {
		t.Errorf("inventory_workspace: %v, want node %s", items, node)
	}
	kc := call("workspaces_kubeconfig", map[string]any{"workspaceName": ws}).data(t)["kubeConfig"].(string)
	if !strings.Contains(kc, namespace) {
		t.Errorf("workspaces_kubeconfig names no context for %s:\n%s", namespace, kc)
	}

	// A second GPR queues behind the first, changes priority, is deleted.
	b := call("gprs_create", gpr).data(t)["gprId"].(string)
	call("gprs_update", map[string]any{"gprId": b, "priority": 150}).data(t)
	if g := call("gprs_get", map[string]any{"gprId": b}).data(t); status(g) != "Queued" || g["priority"] != 150.0 {
		t.Errorf("second GPR: status %s priority %v, want Queued 150", status(g), g["priority"])
	}
	if g := call("gprs_get", map[string]any{"gprId": b}).data(t); g["latestStartTime"] == "" || g["estimatedStartTime"] == "" {
		t.Errorf("queued GPR without both estimates: likely %v, latest %v", g["estimatedStartTime"], g["latestStartTime"])
	}
	if acc := call("gprs_estimate_accuracy", map[string]any{"sliceName": ws}).data(t); acc["items"] == nil {
		t.Errorf("gprs_estimate_accuracy: no items in %v", acc)
	}
	var ids []string
	for _, g := range call("gprs_list", map[string]any{"sliceName": ws}).data(t)["items"].([]any) {
		ids = append(ids, g.(map[string]any)["gprId"].(string))
	}
	slices.Sort(ids)
	wantIDs := []string{a, b}
	slices.Sort(wantIDs)
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Errorf("gprs_list (-want +got):\n%s", diff)
	}
	call("gprs_delete", map[string]any{"gprId": b}).data(t)
	// A provisioned GPR cannot be deleted: the API's 409, as a tool error.
	if r := call("gprs_delete", map[string]any{"gprId": a}); !r.isError || !strings.HasPrefix(r.text, "CONFLICT (HTTP 409): ") {
		t.Errorf("gprs_delete of a provisioned GPR: isError %v, text %q", r.isError, r.text)
	}

	// Early release.
	call("gprs_update", map[string]any{"gprId": a, "earlyRelease": true}).data(t)
	waitFor(t, "GPR complete", func() bool {
		return status(call("gprs_get", map[string]any{"gprId": a}).data(t)) == "Complete"
	})

	// API keys.
	keyName := ws + "-viewer"
	if k := call("apikeys_create", map[string]any{"name": keyName, "role": "Viewer"}).data(t)["apiKey"]; k == "" || k == nil {
		t.Errorf("apikeys_create: no apiKey")
	}
	// The API lists keys from its cache and, unlike its other creates,
	// returns from apikeys_create before the cache has the new key: wait.
	waitFor(t, "apikeys_list shows "+keyName, func() bool {
		for _, k := range call("apikeys_list", nil).data(t)["items"].([]any) {
			if k.(map[string]any)["name"] == keyName {
				return true
			}
		}
		return false
	})
	call("apikeys_delete", map[string]any{"name": keyName}).data(t)

	// The workspace's policy.
	call("policies_update", map[string]any{"name": ws, "priorityRange": "high", "maxGPRs": 10}).data(t)
	if got := call("policies_get", map[string]any{"name": ws}).data(t)["priorityRange"]; got != "high" {
		t.Errorf("policies_get: priorityRange %v, want high", got)
	}
	call("policies_list", nil).data(t)

	// A GPR template, given to the workspace by a binding.
	tmpl := ws + "-tpl"
	tmplArgs := map[string]any{"name": tmpl, "clusterName": "worker-1", "numberOfGPUs": 8, "gpuShape": "H100", "exitDuration": "0d1h0m", "priority": 150}
	if got := call("gpr_templates_create", tmplArgs).data(t)["gprTemplateName"]; got != tmpl {
		t.Errorf("gpr_templates_create: gprTemplateName %v", got)
	}
	tmplArgs["priority"] = 160
	call("gpr_templates_update", tmplArgs).data(t)
	if got := call("gpr_templates_get", map[string]any{"gprTemplateName": tmpl}).data(t)["priority"]; got != 160.0 {
		t.Errorf("gpr_templates_get: priority %v, want 160", got)
	}
	call("gpr_templates_list", nil).data(t)
	bindArgs := map[string]any{"workspaceName": ws, "enableAutoGPR": false,
		"clusters": []any{map[string]any{"clusterName": "worker-1", "defaultTemplateName": tmpl, "templates": []any{tmpl}}}}
	call("gpr_template_bindings_create", bindArgs).data(t)
	bindArgs["enableAutoGPR"] = true
	call("gpr_template_bindings_update", bindArgs).data(t)
	if got := call("gpr_template_bindings_get", map[string]any{"gprTemplateBindingName": ws}).data(t)["enableAutoGPR"]; got != true {
		t.Errorf("gpr_template_bindings_get: enableAutoGPR %v, want true", got)
	}
	call("gpr_template_bindings_list", nil).data(t)
	if r := call("gpr_templates_delete", map[string]any{"gprTemplateName": tmpl}); !r.isError || !strings.HasPrefix(r.text, "CONFLICT (HTTP 409)") {
		t.Errorf("gpr_templates_delete of a bound template: %v %s, want CONFLICT", r.isError, r.text)
	}
	call("gpr_template_bindings_delete", map[string]any{"gprTemplateBindingName": ws}).data(t)
	call("gpr_templates_delete", map[string]any{"gprTemplateName": tmpl}).data(t)

	call("workspaces_delete", map[string]any{"workspaceName": ws}).data(t)
	if r := call("workspaces_get", map[string]any{"name": ws}); r.isError && !strings.HasPrefix(r.text, "NOT_FOUND (HTTP "+fmt.Sprint(http.StatusNotFound)+")") {
		t.Errorf("workspaces_get after delete: %s", r.text)
	}

	out := make([]string, 0, len(called))
	for n := range called {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func status(gpr map[string]any) string {
	s, _ := gpr["status"].(map[string]any)
	p, _ := s["provisioningStatus"].(string)
	return p
}
