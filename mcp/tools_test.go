package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuspace/gpuspace/apiserver"
)

var update = flag.Bool("update", false, "rewrite testdata/tools.golden.json from the current tools/list")

const goldenFile = "testdata/tools.golden.json"

// wireToolsList sends tools/list to s exactly as a client would and
// returns the result's tools as they go on the wire.
func wireToolsList(t testing.TB, s *Server, token string) []json.RawMessage {
	t.Helper()
	msg := json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
	resp := s.MCPServer().HandleMessage(ContextWithToken(context.Background(), token), msg)
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatalf("encode tools/list answer: %v", err)
	}
	var r struct {
		Result struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Result.Tools) == 0 {
		t.Fatalf("tools/list answer %s: %v", b, err)
	}
	if r.Result.NextCursor != "" {
		t.Fatalf("tools/list is paginated; the test reads one page")
	}
	return r.Result.Tools
}

// TestToolsGolden pins what tools/list tells an Owner — names, titles,
// descriptions, schemas, annotations — so that a change to an operation
// that changes a tool is seen in review. Run with -update to accept one.
func TestToolsGolden(t *testing.T) {
	h := newHarness(t)
	tok := h.token(t, h.owner)
	tools := wireToolsList(t, h.mcp, tok)
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, tl := range tools {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, tl, "  ", "  "); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("  ")
		buf.Write(pretty.Bytes())
		if i < len(tools)-1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("]\n")
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenFile)
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run go test ./mcp -run TestToolsGolden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("tools/list changed (-golden +now); if intended, rerun with -update:\n%s", diff)
	}

	// Both client libraries read the same definitions: what the official
	// SDK decodes over HTTP is what went on the wire.
	sdkTools := sdkHTTP(t, h.http.URL+"/mcp", tok).tools(t)
	for _, raw := range tools {
		var wire struct {
			Name         string          `json:"name"`
			Description  string          `json:"description"`
			InputSchema  json.RawMessage `json:"inputSchema"`
			OutputSchema json.RawMessage `json:"outputSchema"`
		}
		if err := json.Unmarshal(raw, &wire); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Description  string          `json:"description"`
			InputSchema  json.RawMessage `json:"inputSchema"`
			OutputSchema json.RawMessage `json:"outputSchema"`
		}
		if err := json.Unmarshal(sdkTools[wire.Name], &got); err != nil {
			t.Fatalf("SDK listing of %s: %v", wire.Name, err)
		}
		if got.Description != wire.Description || !jsonEqual(t, got.InputSchema, wire.InputSchema) || !jsonEqual(t, got.OutputSchema, wire.OutputSchema) {
			t.Errorf("the SDK client reads %s differently:\n%s\nwire:\n%s", wire.Name, sdkTools[wire.Name], raw)
		}
	}
	if len(sdkTools) != len(tools) {
		t.Errorf("SDK lists %d tools, the wire has %d", len(sdkTools), len(tools))
	}
}

// TestToolDefinitions checks the tools against the operations they come
// from: one tool per operation naming one, annotations equal to the
// operation's metadata, self-contained schemas, and descriptions that say
// what errors mean.
func TestToolDefinitions(t *testing.T) {
	api := apiserver.Describe("")
	tools, err := buildTools(api)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*tool{}
	for _, tl := range tools {
		byName[tl.def.Name] = tl
	}
	for _, op := range apiserver.Operations(api) {
		o := apiserver.OpOf(op)
		// That an alias names no tool of its own is apiserver's
		// TestOperationMetadata.
		name := o.MCPName()
		if name == "" {
			continue
		}
		tl := byName[name]
		if tl == nil {
			t.Errorf("operation %s names tool %s, which is missing", op.OperationID, name)
			continue
		}
		delete(byName, name)
		ro, de, id := o.ReadOnly(), o.Destructive(), o.Idempotent()
		a := tl.def.Annotations
		got := []bool{*a.ReadOnlyHint, *a.DestructiveHint, *a.IdempotentHint, *a.OpenWorldHint}
		if diff := cmp.Diff([]bool{ro, de, id, false}, got); diff != "" {
			t.Errorf("%s annotations readOnly, destructive, idempotent, openWorld (-metadata +tool):\n%s", name, diff)
		}
		for what, raw := range map[string][]byte{"input": tl.def.RawInputSchema, "output": tl.def.RawOutputSchema} {
			if bytes.Contains(raw, []byte(`"$ref"`)) {
				t.Errorf("%s %s schema is not self-contained: %s", name, what, raw)
			}
		}
		if !strings.Contains(tl.def.Description, "Errors come back as a tool error") {
			t.Errorf("%s description says nothing about errors:\n%s", name, tl.def.Description)
		}
		if strings.Contains(tl.def.Description, "/api/v1/") {
			t.Errorf("%s description points at a REST path, not a tool:\n%s", name, tl.def.Description)
		}
		// Units are declared, not guessed; a field that has one must not
		// go unexplained.
		schemas := string(tl.def.RawInputSchema) + string(tl.def.RawOutputSchema)
		for unit, fields := range map[apiserver.Unit][]string{
			apiserver.UnitGPUMemory: {`"memoryPerGPU"`, `"memory"`},
			apiserver.UnitDurations: {`"exitDuration"`, `"estimatedWaitTime"`},
			apiserver.UnitTimes:     {`"estimatedStartTime"`, `"startTimestamp"`},
		} {
			uses := slices.ContainsFunc(fields, func(f string) bool { return strings.Contains(schemas, f) })
			if uses && !slices.Contains(o.Units(), unit) {
				t.Errorf("%s: its schemas have %v but the operation does not declare the unit %q", name, fields, unit)
			}
		}
	}
	for name := range byName {
		t.Errorf("tool %s comes from no operation", name)
	}

	// How arguments map onto requests, for a tool of each shape.
	tests := []struct {
		tool                  string
		method, path          string
		pathParams, query     []string
		required              []string
		additionalProperties  any
		readOnly, destructive bool
	}{
		{"gprs_create", "POST", "/api/v1/gpr", nil, nil, []string{"gprName", "sliceName", "numberOfGPUs", "exitDuration"}, true, false, false},
		{"gprs_get", "GET", "/api/v1/gpr", nil, []string{"gprId"}, []string{"gprId"}, false, true, false},
		{"gprs_list", "GET", "/api/v1/gpr/list", nil, []string{"sliceName"}, nil, false, true, false},
		{"gprs_update", "PUT", "/api/v1/gpr", nil, nil, []string{"gprId"}, true, false, true},
		{"workspaces_update", "PUT", "/api/v1/slice-workspace/{name}", []string{"name"}, nil, []string{"name", "clusters", "namespaces", "username"}, true, false, false},
		{"workspaces_delete", "DELETE", "/api/v1/slice-workspace", nil, nil, []string{"workspaceName"}, true, false, true},
		{"inventory_list", "GET", "/api/v1/inventory/list", nil, nil, nil, false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.tool, func(t *testing.T) {
			tl := tools[slices.IndexFunc(tools, func(tl *tool) bool { return tl.def.Name == tc.tool })]
			var in struct {
				Required             []string `json:"required"`
				AdditionalProperties any      `json:"additionalProperties"`
			}
			if err := json.Unmarshal(tl.def.RawInputSchema, &in); err != nil {
				t.Fatal(err)
			}
			want := []any{tc.method, tc.path, tc.pathParams, tc.query, tc.required, tc.additionalProperties, tc.readOnly, tc.destructive}
			got := []any{tl.method, tl.path, tl.pathParams, tl.queryParams, in.Required, in.AdditionalProperties, tl.readOnly, tl.destruct}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
