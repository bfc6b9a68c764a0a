package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// TestMCPFlow drives the system the way an LLM agent does: streamable HTTP
// at /mcp with a bearer token, tools/list, then read and write tools.
func TestMCPFlow(t *testing.T) {
	s := newSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := client.NewStreamableHttpClient(s.api+"/mcp",
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + s.owner}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start MCP client: %v", err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "gpuspace-e2e", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	for _, want := range []string{"workspaces_create", "workspaces_list", "inventory_list", "gprs_create", "gprs_waittime", "gprs_list"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s (has %v)", want, names)
		}
	}

	call := func(name string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		req := mcp.CallToolRequest{}
		req.Params.Name = name
		req.Params.Arguments = args
		res, err := c.CallTool(ctx, req)
		if err != nil {
			t.Fatalf("tools/call %s: %v", name, err)
		}
		return res
	}
	text := func(r *mcp.CallToolResult) string {
		var b strings.Builder
		for _, c := range r.Content {
			if tc, ok := c.(mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String()
	}

	inv := call("inventory_list", map[string]any{})
	if inv.IsError || !strings.Contains(text(inv), "gpuNodeName") {
		t.Fatalf("inventory_list: error=%v %s", inv.IsError, text(inv))
	}
	ws := unique("e2e-mcp")
	created := call("workspaces_create", map[string]any{
		"workspaceName": ws, "clusters": []string{"worker-1"}, "namespaces": []string{ws},
		"username": "agent", "email": "agent@example.com",
	})
	if created.IsError {
		t.Fatalf("workspaces_create: %s", text(created))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.call(ctx, t, s.owner, "DELETE", "/api/v1/slice-workspace", map[string]string{"workspaceName": ws})
	})
	list := call("workspaces_list", map[string]any{})
	if list.IsError || !strings.Contains(text(list), ws) {
		t.Errorf("workspaces_list does not show %s: %s", ws, text(list))
	}
	// An invalid argument is the API's 422 as a readable tool error.
	bad := call("gprs_waittime", map[string]any{
		"gprName": "x", "sliceName": ws, "clusterName": "worker-1", "numberOfGPUs": 1,
		"numberOfGPUNodes": 1, "exitDuration": "forever", "priority": 500,
	})
	if !bad.IsError {
		t.Errorf("gprs_waittime with priority 500 and exitDuration 'forever' succeeded: %s", text(bad))
	}
	if !strings.Contains(text(bad), "priority") {
		t.Errorf("tool error does not name the invalid field: %s", text(bad))
	}
}
