package mcp

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// TestPolicyLimitsOverMCP: an agent that asks for more than its
// workspace's policy allows gets the REST API's own 422, naming the
// policy, the field and the limit, from gprs_create and gprs_waittime; a
// workspace-scoped Viewer's agent reads the policy with policies_get.
func TestPolicyLimitsOverMCP(t *testing.T) {
	h := newHarness(t)
	owner := h.token(t, h.owner)
	ws := "mcp-pol-" + suffix()
	if code, body := h.rest(t, http.MethodPost, "/api/v1/slice-workspace", owner, map[string]any{
		"workspaceName": ws, "clusters": []string{"worker-1"}, "namespaces": []string{ws + "-ns"}, "username": "u"}); code != 200 {
		t.Fatalf("create workspace: %d %s", code, body)
	}
	t.Cleanup(func() {
		h.rest(t, http.MethodDelete, "/api/v1/slice-workspace", owner, map[string]string{"workspaceName": ws})
	})
	c := mcpgoInProcess(t, h.mcp, owner)
	c.call(t, "policies_update", map[string]any{"name": ws, "priorityRange": "medium", "gpuShapes": []any{"H100"}}).data(t)

	gpr := map[string]any{"gprName": "p", "sliceName": ws, "numberOfGPUs": 1, "exitDuration": "0d1h0m", "gpuShape": "H100", "priority": 250}
	for _, tool := range []string{"gprs_create", "gprs_waittime"} {
		path := map[string]string{"gprs_create": "/api/v1/gpr", "gprs_waittime": "/api/v1/gpr/waittime"}[tool]
		r := c.call(t, tool, gpr)
		_, rest := h.rest(t, http.MethodPost, path, owner, gpr)
		checkSameError(t, r, rest)
		if !strings.Contains(r.text, `priority 250 is above the workspace's \"medium\" range (101-200) (WorkspacePolicy \"`+ws+`\", priorityRange)`) {
			t.Errorf("%s: %s", tool, r.text)
		}
	}

	viewer := mcpgoInProcess(t, h.mcp, h.token(t, h.key(t, auth.KeyRequest{Name: "v", Role: auth.RoleViewer, Workspace: ws})))
	if got := viewer.call(t, "policies_get", map[string]any{"name": ws}).data(t)["gpuShapes"]; len(got.([]any)) != 1 {
		t.Errorf("policies_get as the workspace's viewer: gpuShapes %v", got)
	}
}
