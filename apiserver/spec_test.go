package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

func specExamples(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/spec_examples.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkShape fails the test when r's data lacks the shape of example.
func checkShape(t *testing.T, what string, r result, example any) {
	t.Helper()
	if r.code != http.StatusOK {
		t.Errorf("%s: %d %s", what, r.code, r.raw)
		return
	}
	for _, d := range shapeDiff(example, r.body["data"], "data") {
		t.Errorf("%s: %s", what, d)
	}
}

// TestSpecEndpoints exercises the forms spec/000 and 001 document that the
// Postman collection does not send, with their example bodies, and checks
// the answers against the spec's example shapes.
func TestSpecEndpoints(t *testing.T) {
	ts := newTestServer(t)
	ex := specExamples(t)
	sfx := suffix()
	ws := "spec-" + sfx
	node := "spec-t4-" + sfx
	addNode(t, testenv.GPUNode{Name: node, InstanceType: "n1-standard-8", Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 1,
		ProviderID: "aws:///us-east-1a/i-0abc", Region: "us-east-1"})
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
		_ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ws+"-ns", metav1.DeleteOptions{})
	})

	// The spec's curl examples send JSON as application/x-www-form-urlencoded.
	create := `{"workspaceName": "` + ws + `", "clusters": ["worker-1"], "namespaces": ["` + ws + `-ns"], "username": "John Doe",
		"email": "john.doe@avesha.io", "overlayNetworkDeploymentMode": "single-network", "sliceSubnet": "10.0.0.0/16",
		"sliceGWType": "OpenVPN", "standardQosProfileName": "default"}`
	r := doHTTP(t, ts.http.URL, http.MethodPost, "/api/v1/slice-workspace", ts.owner, create,
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	checkShape(t, "create workspace (curl form)", r, ex["workspaceCreated"])
	readyWorkspace(t, ws)

	r = ts.do(http.MethodGet, "/api/v1/slice-workspace/"+ws, ts.owner, nil)
	checkShape(t, "workspace details", r, ex["workspaceDetails"])
	if d := r.data(); d["sliceSubnet"] != "10.0.0.0/16" || d["overlayNetworkDeploymentMode"] != "single-network" {
		t.Errorf("details do not read back what was written: %s", r.raw)
	}

	update := map[string]any{"clusters": []string{"worker-1"}, "namespaces": []string{ws + "-ns"}, "username": "Jane Doe", "email": "jane@example.com"}
	r = ts.do(http.MethodPut, "/api/v1/slice-workspace/"+ws, ts.owner, update)
	checkShape(t, "update workspace", r, ex["workspaceCreated"])
	update["workspaceName"] = ws
	update["username"] = "Jim Doe"
	r = ts.do(http.MethodPut, "/api/v1/slice-workspace", ts.owner, update)
	checkShape(t, "update workspace (name in body)", r, ex["workspaceCreated"])
	r = ts.do(http.MethodGet, "/api/v1/slice-workspace/"+ws, ts.owner, nil)
	if r.data()["username"] != "Jim Doe" {
		t.Errorf("update not read back: %s", r.raw)
	}
	r = ts.do(http.MethodPut, "/api/v1/slice-workspace/nope-"+sfx, ts.owner, update)
	if r.code != http.StatusUnprocessableEntity { // workspaceName in the body differs from the path
		t.Errorf("update with mismatched names: %d %s", r.code, r.raw)
	}
	delete(update, "workspaceName")
	r = ts.do(http.MethodPut, "/api/v1/slice-workspace/nope-"+sfx, ts.owner, update)
	if r.code != http.StatusNotFound {
		t.Errorf("update of a missing workspace: %d %s, want 404", r.code, r.raw)
	}

	r = ts.do(http.MethodGet, "/api/v1/workspace/overlaynetworkmetrics/"+ws, ts.owner, nil)
	checkShape(t, "overlay metrics", r, ex["overlayMetrics"])
	if c := r.data()["clusters"].([]any)[0].(map[string]any); c["provider"] != "aws" || c["location"] != "us-east-1" {
		t.Errorf("overlay clusters: %v, want provider aws at us-east-1", c)
	}
	r = ts.do(http.MethodGet, "/api/v1/workspace/overlaynetworkmetrics/nope-"+sfx, ts.owner, nil)
	if r.code != http.StatusNotFound || r.body["message"] != "Workspace not found" || r.errMsg() != "No metrics found for workspace" {
		t.Errorf("overlay metrics of a missing workspace: %d %s", r.code, r.raw)
	}

	r = ts.do(http.MethodGet, "/api/v1/inventory/list", ts.owner, nil)
	checkShape(t, "inventory", r, map[string]any{"items": []any{map[string]any{"gpuNodeName": "", "gpuModelName": "", "instanceType": "",
		"clusterName": "", "memory": 1.0, "gpuCount": 1.0, "gpuTempThreshold": "", "gpuPowerThreshold": ""}}})
	var mine map[string]any
	for _, it := range r.data()["items"].([]any) {
		if it.(map[string]any)["gpuNodeName"] == node {
			mine = it.(map[string]any)
		}
	}
	if mine == nil || mine["memory"] != 15.0 || mine["gpuShape"] != "T4" || mine["freeGPUs"] != 1.0 || mine["nodeHealth"] != "Healthy" {
		t.Errorf("inventory entry of %s: %v", node, mine)
	}

	gpr := map[string]any{"gprName": "gpr1", "sliceName": ws, "clusterName": "worker-1", "numberOfGPUs": 1, "instanceType": "n1-standard-8",
		"exitDuration": "0d0h5m", "numberOfGPUNodes": 1, "priority": 201, "memoryPerGpu": 15, "gpuShape": "Tesla-T4",
		"idleTimeOutDuration": "0d0h1m", "multiNode": false, "enforceIdleTimeOut": true, "overlayNetworkDeploymentMode": "no-network"}
	r = ts.do(http.MethodPost, "/api/v1/gpr/waittime", ts.owner, gpr)
	if r.code != http.StatusOK || r.data()["estimatedWaitTime"] != "0h0m0s" || r.data()["satisfiable"] != true {
		t.Errorf("waittime with a free node: %d %s", r.code, r.raw)
	}
	r = ts.do(http.MethodPost, "/api/v1/gpr", ts.owner, gpr)
	checkShape(t, "create GPR", r, ex["gprCreated"])
	id, _ := r.data()["gprId"].(string)
	if !strings.HasPrefix(id, "gpr-") || len(id) != len("gpr-1bb22a0b-9388") {
		t.Errorf("gprId %q, want gpr-xxxxxxxx-xxxx", id)
	}
	provision(t, id, node)
	r = ts.do(http.MethodGet, "/api/v1/gpr?gprId="+id, ts.owner, nil)
	checkShape(t, "get GPR", r, ex["gpr"])
	if d := r.data(); d["exitDuration"] != "0h5m0s" || d["idleTimeOutDuration"] != "0h1m0s" || d["memoryPerGPU"] != 15.0 {
		t.Errorf("GPR durations and memory: %s", r.raw)
	}
	r = ts.do(http.MethodGet, "/api/v1/inventory?sliceName="+ws, ts.owner, nil)
	checkShape(t, "inventory by slice", r, ex["inventoryBySlice"])
	// The node is held for 5 minutes: a second GPR waits for it.
	gpr["gprName"] = "gpr2"
	r = ts.do(http.MethodPost, "/api/v1/gpr/waittime", ts.owner, gpr)
	if w, _ := r.data()["estimatedWaitTime"].(string); r.code != http.StatusOK || !strings.HasPrefix(w, "0h4m") && w != "0h5m0s" {
		t.Errorf("waittime behind a 5-minute GPR: %d %s", r.code, r.raw)
	}
	gpr["gpuShape"] = "A100"
	r = ts.do(http.MethodPost, "/api/v1/gpr/waittime", ts.owner, gpr)
	if r.code != http.StatusOK || r.data()["satisfiable"] != false || !strings.Contains(r.data()["reason"].(string), "A100") {
		t.Errorf("waittime for a shape nobody has: %d %s", r.code, r.raw)
	}
}

// TestValidation checks each rule answers 4xx in the envelope with a
// message that names the field and the reason.
func TestValidation(t *testing.T) {
	ts := newTestServer(t)
	sfx := suffix()
	ws := "val-" + sfx
	createWorkspace(t, ts, ws, ws)
	t.Cleanup(func() {
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
	})
	gpr := func(k string, v any) map[string]any {
		b := map[string]any{"gprName": "g", "sliceName": ws, "numberOfGPUs": 1, "exitDuration": "0d1h0m"}
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	big := `{"workspaceName":"` + strings.Repeat("x", 2<<20) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		code               int
		key                string
		contains           []string
	}{
		{"priority too high", "POST", "/api/v1/gpr", gpr("priority", 500), 422, "VALIDATION_ERROR", []string{"priority", "300"}},
		{"priority zero", "POST", "/api/v1/gpr", gpr("priority", -1), 422, "VALIDATION_ERROR", []string{"priority", ">= 1"}},
		{"exitDuration Go form", "POST", "/api/v1/gpr", gpr("exitDuration", "5m"), 422, "VALIDATION_ERROR", []string{"exitDuration", "NdNhNm"}},
		{"exitDuration empty", "POST", "/api/v1/gpr", gpr("exitDuration", ""), 422, "VALIDATION_ERROR", []string{"exitDuration"}},
		{"exitDuration zero", "POST", "/api/v1/gpr", gpr("exitDuration", "0d0h0m"), 422, "VALIDATION_ERROR", []string{"exitDuration", "longer than zero"}},
		{"exitDuration missing", "POST", "/api/v1/gpr", gpr("exitDuration", nil), 422, "VALIDATION_ERROR", []string{"exitDuration: is required"}},
		{"numberOfGPUs zero", "POST", "/api/v1/gpr", gpr("numberOfGPUs", 0), 422, "VALIDATION_ERROR", []string{"numberOfGPUs", ">= 1"}},
		{"numberOfGPUNodes zero", "POST", "/api/v1/gpr", gpr("numberOfGPUNodes", 0), 422, "VALIDATION_ERROR", []string{"numberOfGPUNodes"}},
		{"gprName not DNS", "POST", "/api/v1/gpr", gpr("gprName", "Bad_Name"), 422, "VALIDATION_ERROR", []string{"gprName", "DNS-1123"}},
		{"both memory spellings differ", "POST", "/api/v1/gpr", map[string]any{"gprName": "g", "sliceName": ws, "numberOfGPUs": 1, "exitDuration": "0d1h0m", "memoryPerGPU": 15, "memoryPerGpu": 16}, 422, "VALIDATION_ERROR", []string{"memoryPerGpu", "memoryPerGPU"}},
		{"cluster not the workspace's", "POST", "/api/v1/gpr", gpr("clusterName", "worker-9"), 422, "VALIDATION_ERROR", []string{"clusterName", "worker-9"}},
		{"unknown workspace", "POST", "/api/v1/gpr", gpr("sliceName", "nope-"+sfx), 404, "NOT_FOUND", []string{"nope-" + sfx}},
		{"numberOfGPUs a string", "POST", "/api/v1/gpr", gpr("numberOfGPUs", "one"), 422, "VALIDATION_ERROR", []string{"numberOfGPUs", "number"}},
		{"malformed JSON", "POST", "/api/v1/gpr", `{"gprName": `, 400, "BAD_REQUEST", []string{"body"}},
		{"no body", "POST", "/api/v1/gpr", nil, 400, "BAD_REQUEST", []string{"body is required"}},
		{"body too large", "POST", "/api/v1/slice-workspace", big, 413, "PAYLOAD_TOO_LARGE", []string{"too large"}},
		{"workspace name not DNS", "POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "Bad Name", "clusters": []string{"worker-1"}, "namespaces": []string{"a"}, "username": "u"}, 422, "VALIDATION_ERROR", []string{"workspaceName"}},
		{"reserved workspace name", "POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "list", "clusters": []string{"worker-1"}, "namespaces": []string{"list-" + sfx}, "username": "u"}, 422, "VALIDATION_ERROR", []string{"workspaceName", "reserved"}},
		{"system namespace", "POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "sys-" + sfx, "clusters": []string{"worker-1"}, "namespaces": []string{"kube-system"}, "username": "u"}, 422, "VALIDATION_ERROR", []string{"namespaces[0]", "system namespace"}},
		{"unknown cluster", "POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "uc-" + sfx, "clusters": []string{"mars"}, "namespaces": []string{"uc-" + sfx}, "username": "u"}, 422, "VALIDATION_ERROR", []string{"clusters[0]", "mars"}},
		{"namespace of another workspace", "POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "dup-" + sfx, "clusters": []string{"worker-1"}, "namespaces": []string{ws}, "username": "u"}, 409, "CONFLICT", []string{ws}},
		{"no namespaces", "POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "nn-" + sfx, "clusters": []string{"worker-1"}, "namespaces": []string{}, "username": "u"}, 422, "VALIDATION_ERROR", []string{"namespaces"}},
		{"gprId missing in query", "GET", "/api/v1/gpr", nil, 422, "VALIDATION_ERROR", []string{"gprId"}},
		{"api key with a bad role", "POST", "/api/v1/api-key", map[string]any{"name": "k", "role": "Admiral"}, 422, "VALIDATION_ERROR", []string{"role"}},
		{"editor key without workspace", "POST", "/api/v1/api-key", map[string]any{"name": "k", "role": "Editor"}, 422, "VALIDATION_ERROR", []string{"workspaceName"}},
		{"api key valid in the past", "POST", "/api/v1/api-key", map[string]any{"name": "k", "role": "Viewer", "validUntil": "2020-01-01"}, 422, "VALIDATION_ERROR", []string{"validUntil"}},
		{"delete a missing key", "DELETE", "/api/v1/api-key", map[string]any{"apiKeyId": "0000000000000000"}, 404, "NOT_FOUND", []string{"not found"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(c.method, c.path, ts.owner, c.body)
			if r.code != c.code || r.errKey() != c.key || r.body["statusCode"] != float64(c.code) || r.body["data"] != nil {
				t.Fatalf("%d %s, want %d %s: %s", r.code, r.errKey(), c.code, c.key, trunc(r.raw))
			}
			for _, s := range c.contains {
				if !strings.Contains(r.errMsg(), s) {
					t.Errorf("message %q does not mention %q", r.errMsg(), s)
				}
			}
		})
	}

	// Extra EGS fields and the SDK's memoryPerGpu are accepted and read
	// back as memoryPerGPU.
	b := gpr("memoryPerGpu", 16)
	b["idleTimeOutDuration"], b["multiNode"], b["enableEviction"], b["requeueOnFailure"], b["someFutureField"] = "0d0h10m", true, true, true, "x"
	r := ts.do("POST", "/api/v1/gpr", ts.owner, b)
	if r.code != http.StatusOK {
		t.Fatalf("GPR with EGS extras: %d %s", r.code, r.raw)
	}
	r = ts.do("GET", "/api/v1/gpr?gprId="+r.data()["gprId"].(string), ts.owner, nil)
	if d := r.data(); d["memoryPerGPU"] != 16.0 || d["multiNode"] != true || d["priority"] != 101.0 || d["numberOfGPUNodes"] != 1.0 {
		t.Errorf("read back: %s", r.raw)
	}
}

// TestPanicAnswers500: a panicking handler costs one 500 envelope, not the
// connection, and the server goes on serving.
func TestPanicAnswers500(t *testing.T) {
	ts := newTestServer(t)
	huma.Register(ts.srv.API(), huma.Operation{OperationID: "boom", Method: http.MethodGet, Path: "/api/v1/test-panic"},
		func(context.Context, *struct{}) (*struct{}, error) { panic("boom") })
	r := ts.do(http.MethodGet, "/api/v1/test-panic", "", nil)
	if r.code != http.StatusInternalServerError || r.errKey() != "INTERNAL_ERROR" || strings.Contains(r.raw, "boom") {
		t.Errorf("panic: %d %s, want a 500 envelope that leaks nothing", r.code, r.raw)
	}
	if r := ts.do(http.MethodGet, "/api/v1/healthcheck", "", nil); r.code != http.StatusOK {
		t.Errorf("after a panic: %d", r.code)
	}
}
