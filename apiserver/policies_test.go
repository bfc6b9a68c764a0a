package apiserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// TestWorkspacePolicyLimits: a policy an Owner sets, which the
// workspace's Viewer reads, caps priority, maxGPRs, shapes, GPUs and
// memory per GPR and exitDuration; each GPR over a limit is refused with a
// 422 naming the policy, the field and the limit, by create and waittime
// alike. A workspace without a policy has no limits.
func TestWorkspacePolicyLimits(t *testing.T) {
	ts := newTestServer(t)
	sfx := suffix()
	ws, other := "pol-"+sfx, "pol-other-"+sfx
	createWorkspace(t, ts, ws, ws+"-ns")
	createWorkspace(t, ts, other, other+"-ns")
	t.Cleanup(func() {
		for _, w := range []string{ws, other} {
			ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": w})
		}
	})
	viewer := ts.token(ts.createKey(auth.KeyRequest{Name: "pol-view", Role: auth.RoleViewer, Workspace: ws}))
	otherViewer := ts.token(ts.createKey(auth.KeyRequest{Name: "pol-view-o", Role: auth.RoleViewer, Workspace: other}))
	editor := ts.token(ts.createKey(auth.KeyRequest{Name: "pol-ed", Role: auth.RoleEditor, Workspace: ws}))

	// No policy: no limits, and the policy answers 404 saying so.
	if r := ts.do("GET", "/api/v1/workspace-policies/"+ws, viewer, nil); r.code != http.StatusNotFound || !strings.Contains(r.errMsg(), "no limits") {
		t.Fatalf("policy of a workspace without one: %d %s", r.code, r.raw)
	}
	gpr := func(kv ...any) map[string]any {
		b := map[string]any{"gprName": "p", "sliceName": ws, "numberOfGPUs": 1, "exitDuration": "0d1h0m", "gpuShape": "H100", "memoryPerGPU": 80, "priority": 150}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(b, kv[i].(string))
			} else {
				b[kv[i].(string)] = kv[i+1]
			}
		}
		return b
	}
	wantOK(t, ts.do("POST", "/api/v1/gpr/waittime", editor, gpr("priority", 300, "numberOfGPUs", 64, "exitDuration", "100d0h0m")))

	// Only the Owner writes a policy; it is filled in with EGS's defaults.
	body := map[string]any{"priorityRange": "medium", "maxGPRs": 2, "gpuShapes": []string{"H100", "Tesla-T4"}, "maxGpuPerGpr": 8,
		"maxMemoryPerGpr": 640, "clusterConstraints": []map[string]any{{"clusterName": "worker-1", "maxGpuPerGpr": 4}}}
	if r := ts.do("PUT", "/api/v1/workspace-policies/"+ws, editor, body); r.code != http.StatusForbidden {
		t.Fatalf("editor writes a policy: %d %s", r.code, r.raw)
	}
	if r := ts.do("PUT", "/api/v1/workspace-policies/"+ws, ts.owner, map[string]any{"clusterConstraints": []map[string]any{{"clusterName": "elsewhere"}}}); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.errMsg(), "not on cluster") {
		t.Fatalf("policy for a foreign cluster: %d %s", r.code, r.raw)
	}
	if r := ts.do("PUT", "/api/v1/workspace-policies/"+ws, ts.owner, map[string]any{"maxExitDurationPerGPR": "3D"}); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.errMsg(), "weeks or months") {
		t.Fatalf("bad maxExitDurationPerGPR: %d %s", r.code, r.raw)
	}
	r := wantOK(t, ts.do("PUT", "/api/v1/workspace-policies/"+ws, ts.owner, body))
	d := r.data()
	if d["workspaceName"] != ws || d["priorityRange"] != "medium" || d["maxGPRs"] != float64(2) || d["maxExitDurationPerGPR"] != "1W" ||
		d["requeueOnFailure"] != true || d["enableAutoEviction"] != true || d["minRuntimeBeforeEviction"] != "0h5m0s" {
		t.Fatalf("stored policy: %s", r.raw)
	}

	// Every role of the workspace reads it; a viewer of another does not.
	if r := ts.do("GET", "/api/v1/workspace-policies/"+ws, viewer, nil); r.code != http.StatusOK || r.data()["maxGpuPerGpr"] != float64(8) {
		t.Fatalf("viewer reads the policy: %d %s", r.code, r.raw)
	}
	if r := ts.do("GET", "/api/v1/workspace-policies/"+ws, otherViewer, nil); r.code != http.StatusForbidden {
		t.Fatalf("viewer of another workspace reads the policy: %d %s", r.code, r.raw)
	}
	r = wantOK(t, ts.do("GET", "/api/v1/workspace-policies", viewer, nil))
	if items := r.data()["items"].([]any); len(items) != 1 || items[0].(map[string]any)["workspaceName"] != ws {
		t.Fatalf("viewer lists %s", r.raw)
	}
	if items := wantOK(t, ts.do("GET", "/api/v1/workspace-policies", otherViewer, nil)).data()["items"].([]any); len(items) != 0 {
		t.Fatalf("viewer of another workspace lists %v", items)
	}

	refused := []struct {
		name  string
		body  map[string]any
		field string
		says  string
	}{
		{"priority", gpr("priority", 250), "priority", `priority 250 is above the workspace's "medium" range (101-200)`},
		{"shape", gpr("gpuShape", "A100"), "gpuShape", `gpuShape "A100" is not allowed in cluster "worker-1"; allowed: H100, Tesla-T4`},
		{"no shape", gpr("gpuShape", nil), "gpuShape", "gpuShape is required"},
		{"GPUs per GPR, the cluster's limit", gpr("numberOfGPUs", 2, "numberOfGPUNodes", 3), "numberOfGPUs", "6 GPUs (numberOfGPUs 2 × numberOfGPUNodes 3) are more than the workspace's limit of 4 GPUs per GPR"},
		{"memory", gpr("numberOfGPUs", 4, "memoryPerGPU", 200), "memoryPerGPU", "800 GB of GPU memory (4 GPUs × 200 GB) is more than the workspace's limit of 640 GB"},
		{"duration", gpr("exitDuration", "8d0h0m"), "exitDuration", "exitDuration 192h0m0s is longer than the workspace's limit of 1W (7 days)"},
	}
	for _, c := range refused {
		for _, path := range []string{"/api/v1/gpr", "/api/v1/gpr/waittime"} {
			r := ts.do("POST", path, editor, c.body)
			if r.code != http.StatusUnprocessableEntity || !strings.Contains(r.errMsg(), c.field+": "+c.says) || !strings.Contains(r.errMsg(), `WorkspacePolicy "`+ws+`"`) {
				t.Errorf("%s at %s: %d %s, want 422 naming %s: %s", c.name, path, r.code, r.raw, c.field, c.says)
			}
		}
	}
	// Several limits at once are all named.
	if r := ts.do("POST", "/api/v1/gpr", editor, gpr("priority", 300, "gpuShape", "A100")); r.code != 422 || !strings.Contains(r.errMsg(), "priority 300") || !strings.Contains(r.errMsg(), "A100") {
		t.Errorf("two limits: %d %s", r.code, r.raw)
	}

	// maxGPRs: two queued are allowed, the third is refused.
	ids := []string{}
	for range 2 {
		ids = append(ids, wantOK(t, ts.do("POST", "/api/v1/gpr", editor, gpr())).data()["gprId"].(string))
	}
	for _, path := range []string{"/api/v1/gpr", "/api/v1/gpr/waittime"} {
		r := ts.do("POST", path, editor, gpr())
		if r.code != 422 || !strings.Contains(r.errMsg(), "sliceName: workspace \""+ws+"\" may have at most 2 GPRs queued or provisioned at once, and has 2 (WorkspacePolicy \""+ws+"\", maxGPRs)") {
			t.Errorf("third GPR at %s: %d %s", path, r.code, r.raw)
		}
	}
	// Raising a GPR's priority above the range is refused too.
	if r := ts.do("PUT", "/api/v1/gpr", editor, map[string]any{"gprId": ids[0], "priority": 201}); r.code != 422 || !strings.Contains(r.errMsg(), `priority 201 is above the workspace's "medium" range`) {
		t.Errorf("priority update above the range: %d %s", r.code, r.raw)
	}
	wantOK(t, ts.do("PUT", "/api/v1/gpr", editor, map[string]any{"gprId": ids[0], "priority": 200}))

	// Loosened: the third fits. The other workspace never had limits.
	body["maxGPRs"] = 3
	wantOK(t, ts.do("PUT", "/api/v1/workspace-policies/"+ws, ts.owner, body))
	wantOK(t, ts.do("POST", "/api/v1/gpr", editor, gpr()))
	wantOK(t, ts.do("POST", "/api/v1/gpr/waittime", ts.owner, gpr("sliceName", other, "priority", 300, "gpuShape", "A100")))

	// Defaults: a low-band policy runs a default-priority GPR at 100.
	wantOK(t, ts.do("PUT", "/api/v1/workspace-policies/"+other, ts.owner, map[string]any{}))
	id := wantOK(t, ts.do("POST", "/api/v1/gpr", ts.owner, gpr("sliceName", other, "priority", nil))).data()["gprId"].(string)
	if r := wantOK(t, ts.do("GET", "/api/v1/gpr?gprId="+id, ts.owner, nil)); r.data()["priority"] != float64(100) {
		t.Errorf("default priority under a low policy: %s", r.raw)
	}
}

// wantOK fails the test unless r is a 200.
func wantOK(t testing.TB, r result) result {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.raw)
	}
	return r
}
